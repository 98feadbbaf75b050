"""Visual scenes: a target object, distractors, ground textures and lighting, all randomizable.

Objects are created once and moved (hidden objects sit far below the ground), textures are
generated procedurally on first use and cached, so randomizing a scene at reset costs no
reload. Textures are written as PNG files (Pillow), which PyBullet's loader reads; at most
``max_textures`` are made per scene and then reused, so long training runs do not leak.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np
from ._pybullet import pb

HIDDEN = (0.0, 0.0, -50.0)


@dataclass
class SceneRandomization:
    """What a scene may vary per episode (all from the episode's generator)."""

    ground_textures: bool = True
    target_color_jitter: float = 0.15      # ± on each RGB channel of the target colour
    distractors: tuple[int, int] = (0, 3)  # [min, max] distractor objects
    light_direction: bool = True
    light_intensity: tuple[float, float] = (0.6, 1.0)
    ambient: tuple[float, float] = (0.4, 0.8)
    texture_styles: tuple[str, ...] = ("checker", "stripes", "noise", "tiles")
    walls: bool = False                    # textured walls around the arena (styles as the ground)
    walls_fraction: float = 0.0            # without ``walls``: share of episodes that get them
    # share of episodes whose background (what the renderer leaves empty, above the horizon) is one
    # random plain colour instead of the renderer's own; drawn last, so 0 leaves every other draw as it was
    sky_fraction: float = 0.0
    second_object_rgba: tuple | None = None  # a second sphere like the target, in another colour
    distractor_rgba: tuple | None = None   # one colour for all distractors (None: random colours)


@dataclass
class SceneState:
    target_position: np.ndarray | None = None
    target_radius: float = 0.15
    target_rgba: tuple = (1.0, 0.1, 0.1, 1.0)
    distractor_positions: list = field(default_factory=list)


def _write_png(path: str, rgb: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(path)


def make_texture(style: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A procedural RGB texture of one of the known styles."""
    c1 = rng.integers(0, 256, 3)
    c2 = rng.integers(0, 256, 3)
    y, x = np.mgrid[0:size, 0:size]
    if style == "checker":
        k = int(rng.integers(4, 17))
        mask = ((x // k + y // k) % 2).astype(bool)
    elif style == "stripes":
        k = int(rng.integers(3, 12))
        mask = ((x // k) % 2).astype(bool)
    elif style == "tiles":
        k = int(rng.integers(8, 20))
        mask = ((x % k) < 2) | ((y % k) < 2)
    elif style == "noise":
        lo = rng.random((size // 8, size // 8))
        mask = np.kron(lo, np.ones((8, 8))) > 0.5
    # styles below are never used in training (out-of-distribution evaluation)
    elif style == "dots":
        k = int(rng.integers(6, 14))
        mask = ((x % k - k / 2) ** 2 + (y % k - k / 2) ** 2) < (k / 3) ** 2
    elif style == "rings":
        k = float(rng.uniform(3, 8))
        mask = (np.hypot(x - size / 2, y - size / 2) // k % 2).astype(bool)
    elif style == "diagonal":
        k = int(rng.integers(3, 10))
        mask = (((x + y) // k) % 2).astype(bool)
    elif style == "gradient":
        t = (x / (size - 1))[..., None]
        return np.rint(c1 * (1 - t) + c2 * t).astype(np.uint8)
    else:
        raise ValueError(f"unknown texture style {style!r}")
    img = np.where(mask[..., None], c1, c2).astype(np.uint8)
    return img


class Scene:
    """Visual objects in a PyBullet world (no collision: the scene is for the camera)."""

    def __init__(self, client: int, plane_id: int, max_distractors: int = 4, max_textures_per_style: int = 8):
        self.client = client
        self.plane_id = plane_id
        self.max_textures_per_style = max_textures_per_style
        self._tmp = tempfile.TemporaryDirectory(prefix="lnn_drone_tex_")  # removed with the scene
        self._texture_dir = self._tmp.name
        self._textures_by_style: dict[str, list[int]] = {}
        self._targets: dict[float, int] = {}
        self.state = SceneState()
        self._distractors: list[int] = []
        shapes = [(pb.GEOM_BOX, {"halfExtents": [0.2, 0.2, 0.4]}), (pb.GEOM_SPHERE, {"radius": 0.25}),
                  (pb.GEOM_CYLINDER, {"radius": 0.15, "length": 1.0})]
        for i in range(max_distractors):
            geom, kw = shapes[i % len(shapes)]
            vis = pb.createVisualShape(geom, rgbaColor=[0.5, 0.5, 0.5, 1], physicsClientId=client, **kw)
            self._distractors.append(pb.createMultiBody(0, -1, vis, HIDDEN, physicsClientId=client))
        self.light: dict = {}
        vis = pb.createVisualShape(pb.GEOM_SPHERE, radius=0.15, rgbaColor=[0, 0, 1, 1], physicsClientId=client)
        self._second = pb.createMultiBody(0, -1, vis, HIDDEN, physicsClientId=client)
        self._walls: list[int] = []
        for half in ([0.1, 12.0, 3.0], [12.0, 0.1, 3.0], [12.0, 0.1, 3.0]):
            vis = pb.createVisualShape(pb.GEOM_BOX, halfExtents=half, rgbaColor=[1, 1, 1, 1], physicsClientId=client)
            self._walls.append(pb.createMultiBody(0, -1, vis, HIDDEN, physicsClientId=client))
        self.second_object_position: np.ndarray | None = None
        self.sky_rgb: tuple | None = None   # the episode's background colour (None: the renderer's)

    # ---------------------------------------------------------------- target
    def _target_body(self, radius: float) -> int:
        key = round(radius, 2)
        if key not in self._targets:
            vis = pb.createVisualShape(pb.GEOM_SPHERE, radius=key, rgbaColor=[1, 0, 0, 1], physicsClientId=self.client)
            self._targets[key] = pb.createMultiBody(0, -1, vis, HIDDEN, physicsClientId=self.client)
        return self._targets[key]

    def set_target(self, position, radius: float = 0.15, rgba=(1.0, 0.1, 0.1, 1.0)) -> None:
        for body in self._targets.values():
            pb.resetBasePositionAndOrientation(body, HIDDEN, [0, 0, 0, 1], physicsClientId=self.client)
        body = self._target_body(radius)
        pb.resetBasePositionAndOrientation(body, list(map(float, position)), [0, 0, 0, 1], physicsClientId=self.client)
        pb.changeVisualShape(body, -1, rgbaColor=list(rgba), physicsClientId=self.client)
        self.state.target_position = np.asarray(position, dtype=float)
        self.state.target_radius = round(radius, 2)
        self.state.target_rgba = tuple(rgba)

    def move_target(self, position) -> None:
        body = self._target_body(self.state.target_radius)
        pb.resetBasePositionAndOrientation(body, list(map(float, position)), [0, 0, 0, 1], physicsClientId=self.client)
        self.state.target_position = np.asarray(position, dtype=float)

    # ---------------------------------------------------------------- randomization
    def _texture(self, style: str, rng: np.random.Generator) -> int:
        made = self._textures_by_style.setdefault(style, [])
        if len(made) >= self.max_textures_per_style:
            return made[int(rng.integers(len(made)))]
        path = os.path.join(self._texture_dir, f"{style}_{len(made)}.png")
        _write_png(path, make_texture(style, rng))
        tex = pb.loadTexture(path, physicsClientId=self.client)
        made.append(tex)
        return tex

    def set_ground_texture(self, style: str, rng: np.random.Generator) -> None:
        pb.changeVisualShape(self.plane_id, -1, textureUniqueId=self._texture(style, rng), rgbaColor=[1, 1, 1, 1],
                             physicsClientId=self.client)

    def place_distractors(self, positions: list, colors: list) -> None:
        for i, body in enumerate(self._distractors):
            pos = positions[i] if i < len(positions) else HIDDEN
            pb.resetBasePositionAndOrientation(body, list(map(float, pos)), [0, 0, 0, 1], physicsClientId=self.client)
            if i < len(colors):
                pb.changeVisualShape(body, -1, rgbaColor=list(colors[i]), physicsClientId=self.client)
        self.state.distractor_positions = [np.asarray(p, dtype=float) for p in positions]

    def set_walls(self, style: str | None, rng: np.random.Generator) -> None:
        """Walls ahead and to both sides (x = 10 m, y = ±8 m), or none (``style`` None)."""
        poses = ([10.0, 0.0, 3.0], [0.0, 8.0, 3.0], [0.0, -8.0, 3.0])
        for body, pos in zip(self._walls, poses):
            if style is None:
                pb.resetBasePositionAndOrientation(body, HIDDEN, [0, 0, 0, 1], physicsClientId=self.client)
                continue
            pb.resetBasePositionAndOrientation(body, pos, [0, 0, 0, 1], physicsClientId=self.client)
            pb.changeVisualShape(body, -1, textureUniqueId=self._texture(style, rng), rgbaColor=[1, 1, 1, 1],
                                 physicsClientId=self.client)

    def set_second_object(self, position, radius: float, rgba) -> None:
        """A sphere like the target in another colour (``position`` None hides it)."""
        pos = HIDDEN if position is None else list(map(float, position))
        pb.resetBasePositionAndOrientation(self._second, pos, [0, 0, 0, 1], physicsClientId=self.client)
        if position is not None:
            pb.changeVisualShape(self._second, -1, rgbaColor=list(rgba), physicsClientId=self.client)
        self.second_object_position = None if position is None else np.asarray(position, dtype=float)

    def randomize(self, rng: np.random.Generator, cfg: SceneRandomization, avoid=None, avoid_radius: float = 1.0) -> None:
        """New ground texture, lighting and distractors; ``avoid`` keeps distractors off a point."""
        if cfg.ground_textures:
            self.set_ground_texture(str(rng.choice(list(cfg.texture_styles))), rng)
        # the extra draw only when walls are random: scenes without them keep their draws
        walls = cfg.walls or (cfg.walls_fraction > 0.0 and rng.random() < cfg.walls_fraction)
        self.set_walls(str(rng.choice(list(cfg.texture_styles))) if walls else None, rng)
        n = int(rng.integers(cfg.distractors[0], cfg.distractors[1] + 1))
        n = min(n, len(self._distractors))
        positions, colors = [], []
        while len(positions) < n:
            p = np.array([rng.uniform(-6, 8), rng.uniform(-6, 6), 0.4])
            if avoid is not None and np.linalg.norm(p[:2] - np.asarray(avoid)[:2]) < avoid_radius:
                continue
            if np.linalg.norm(p[:2]) < 1.0:  # keep clear of the start
                continue
            positions.append(p)
            colors.append(tuple(cfg.distractor_rgba) if cfg.distractor_rgba else (*rng.uniform(0.1, 0.9, 3), 1.0))
        self.place_distractors(positions, colors)
        light = {}
        if cfg.light_direction:
            az, el = rng.uniform(0, 2 * math.pi), rng.uniform(math.radians(30), math.radians(85))
            light["lightDirection"] = [math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)]
        k = rng.uniform(*cfg.light_intensity)
        light["lightColor"] = [k, k, k]
        light["lightAmbientCoeff"] = rng.uniform(*cfg.ambient)
        self.light = light
        self.sky_rgb = None
        if cfg.sky_fraction > 0.0 and rng.random() < cfg.sky_fraction:
            self.sky_rgb = tuple(int(c) for c in rng.integers(0, 256, 3))
