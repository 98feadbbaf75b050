"""The visual-target task: conditions, image corruptions, scoring, CLI, saliency, and a short
flight of the shipped IMU + camera model."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lnn_drone.cli import main as cli_main
from lnn_drone.sim.image_ops import Corruption, apply_corruption, blur
from lnn_drone.state import DroneState
from lnn_drone.training.vision import (CONDITIONS, START_POSITION, TARGET_RADIUS_M, VisualEvalSettings,
                                       condition_names, evaluate_visual, make_visual_env, ood_condition_names,
                                       score_visual)

MODEL = Path(__file__).resolve().parents[1] / "models" / "visual_target.safetensors"


def frame(rng: np.random.Generator | None = None) -> np.ndarray:
    rng = rng or np.random.default_rng(0)
    return rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)


# ---------------------------------------------------------------- image corruptions
@pytest.mark.parametrize("c", [Corruption(noise_std=10.0), Corruption(blur_sigma_px=1.0), Corruption(contrast=0.5),
                               Corruption(brightness=30.0), Corruption(color_gain=(1.2, 0.8, 1.0))],
                         ids=["noise", "blur", "contrast", "brightness", "color"])
def test_corruption_keeps_shape_and_dtype_and_changes_the_frame(c):
    img = frame()
    out = apply_corruption(img, c, np.random.default_rng(1))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img).mean() > 1.0


def test_identity_corruption_returns_an_equal_copy():
    img = frame()
    out = apply_corruption(img, Corruption())
    assert np.array_equal(out, img) and out is not img


def test_corruptions_do_what_they_say():
    flat = np.full((10, 10, 3), 100, np.uint8)
    assert np.all(apply_corruption(flat, Corruption(blur_sigma_px=2.0)) == 100)  # blur keeps a flat field
    low = apply_corruption(frame(), Corruption(contrast=0.5))
    assert low.astype(float).std() < 0.6 * frame().astype(float).std()
    edge = np.zeros((8, 8, 1))
    edge[:, 4:] = 1.0
    smooth = blur(edge, 1.0)
    assert 0.0 < smooth[0, 3, 0] < 0.5 < smooth[0, 4, 0] < 1.0
    a = apply_corruption(frame(), Corruption(noise_std=5.0), np.random.default_rng(3))
    b = apply_corruption(frame(), Corruption(noise_std=5.0), np.random.default_rng(3))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("bad, match", [(np.zeros((4, 4, 3), np.float32), "uint8"), (np.zeros((4, 4), np.uint8), "shape"),
                                        (np.zeros((4, 4, 4), np.uint8), "shape"), ([[1, 2, 3]], "numpy array")])
def test_malformed_images_are_refused_with_a_reason(bad, match):
    with pytest.raises(ValueError, match=match):
        apply_corruption(bad, Corruption(noise_std=1.0), np.random.default_rng(0))


# ---------------------------------------------------------------- conditions
def test_condition_registry_has_nominal_first_and_the_ood_set():
    names = condition_names()
    assert names[0] == "nominal" and len(set(names)) == len(names)
    ood = set(ood_condition_names())
    assert {"textures", "dim_light", "color_shift", "low_contrast", "distractors", "second_object", "noise", "blur",
            "latency_50ms", "quad250"} <= ood
    assert "nominal" not in ood and "moving_target" not in ood


def _first_frame(condition: str, steps: int = 3) -> tuple[np.ndarray, object]:
    env = make_visual_env(VisualEvalSettings(condition=condition))
    try:
        obs, _ = env.reset(seed=11, options={"state": DroneState(position=np.array(START_POSITION))})
        for _ in range(steps):
            obs, *_ = env.step(np.array([env.nominal_vehicle.hover_command, 0.0, 0.0, 0.0]))
        return obs["image"], env.target_position.copy()
    finally:
        env.close()


@pytest.mark.parametrize("condition", ["textures", "dim_light", "color_shift", "low_contrast", "noise", "blur",
                                       "second_object", "latency_50ms"])
def test_each_visual_condition_changes_what_the_camera_sees(condition):
    nominal, target = _first_frame("nominal")
    changed, target2 = _first_frame(condition)
    assert np.array_equal(target, target2)  # same episode, same target: only the condition differs
    assert changed.shape == nominal.shape and changed.dtype == np.uint8
    assert not np.array_equal(changed, nominal)


def test_walls_fraction_puts_walls_in_that_share_of_scenes():
    """``walls_fraction`` (a training knob) shows walls in about that share of scenes; the nominal
    scene (``train_scene``) has none."""
    from dataclasses import replace

    from lnn_drone.sim._pybullet import pb
    from lnn_drone.training.vision import train_scene

    env = make_visual_env(VisualEvalSettings())
    try:
        scene = env.unwrapped.scene

        def walls_shown(cfg) -> list[bool]:
            shown = []
            for seed in range(40):
                scene.randomize(np.random.default_rng(seed), cfg)
                shown.append(pb.getBasePositionAndOrientation(scene._walls[0], physicsClientId=scene.client)[0][2] > 0)
            return shown

        assert not any(walls_shown(train_scene()))
        assert 10 <= sum(walls_shown(replace(train_scene(), walls_fraction=0.5))) <= 30
    finally:
        env.close()


def test_sky_fraction_paints_only_the_empty_background_in_that_share_of_scenes():
    """``sky_fraction`` (a training knob): the pixels no object covers take one random plain colour
    in about that share of episodes; the ground, the target and the nominal scene are untouched."""
    from dataclasses import replace

    from lnn_drone.training.dagger_visual import VisualTrainConfig
    from lnn_drone.training.vision import train_scene

    def first_frame(scene_cfg, seed: int):
        env = make_visual_env(VisualEvalSettings(), scene=scene_cfg)
        try:
            obs, _ = env.reset(seed=seed, options={"state": DroneState(position=np.array(START_POSITION))})
            return obs["image"].copy(), env.unwrapped.scene.sky_rgb
        finally:
            env.close()

    painted = 0
    for seed in range(12):
        plain, none = first_frame(train_scene(), seed)
        sky_frame, sky = first_frame(replace(train_scene(), sky_fraction=0.5), seed)
        assert none is None
        empty = np.all(plain == 255, axis=2)        # the renderer's own background is white
        assert empty[0].all() and not empty[-1].any()   # top row: background; bottom row: ground
        if sky is None:
            assert np.array_equal(sky_frame, plain)     # a scene without it is the nominal one, draw for draw
            continue
        painted += 1
        assert np.all(sky_frame[empty] == np.array(sky, dtype=np.uint8))
        assert np.array_equal(sky_frame[~empty], plain[~empty])
    assert 2 <= painted <= 10, painted
    with pytest.raises(ValueError, match="sky_fraction"):
        VisualTrainConfig(inputs=["image", "imu_accel"], sky_fraction=1.5).check()


def test_quad250_condition_flies_the_other_vehicle():
    env = make_visual_env(VisualEvalSettings(condition="quad250"))
    try:
        assert env.nominal_vehicle.name != "crazyflie2" and env.nominal_vehicle.mass_kg > 0.1
    finally:
        env.close()


# ---------------------------------------------------------------- scoring
def _track(final_err: float, heading: float = 0.0, n: int = 241):
    goals = np.zeros((n, 3))
    pos = np.zeros((n, 3))
    pos[:, 0] = np.linspace(3.0, final_err, n)
    return pos, goals, np.full(n, heading)


def test_score_success_needs_the_whole_tail_near_the_goal_and_facing_the_target():
    dt, episode_s = 1 / 30, 8.0
    pos, goals, heading = _track(0.1)
    pos[-200:, 0] = 0.1  # arrived before the last 3 s
    assert score_visual(0, dt, episode_s, pos, goals, heading, False, True).success
    late = pos.copy()
    late[-30:, 0] = 0.8  # leaves the 0.5 m ball inside the window
    assert not score_visual(0, dt, episode_s, late, goals, heading, False, True).success
    assert not score_visual(0, dt, episode_s, pos, goals, np.full(len(pos), math.radians(40)), False, True).success
    assert not score_visual(0, dt, episode_s, pos, goals, heading, True, False).success
    r = score_visual(0, dt, episode_s, pos, goals, heading, False, True)
    assert r.final_distance_error_m == pytest.approx(0.1)


def test_expert_flies_the_protocol_and_the_summary_is_deterministic():
    s = VisualEvalSettings(episodes=3, seed=4)
    from lnn_drone.training.vision import VisualExpert

    a = evaluate_visual(VisualExpert(), s).to_json_dict()
    b = evaluate_visual(VisualExpert(), s).to_json_dict()
    assert a == b
    assert a["success_rate"] == 1.0 and a["final_distance_error_m_median"] < 0.1


def test_expert_slows_for_motor_lag_only_when_asked():
    """On slow motors the visual teacher slows its loops down by default; with ``slows_for_lag``
    off it keeps the nominal gains (a label the student can learn without seeing the lag)."""
    from lnn_drone.training.vision import VisualExpert, make_visual_env

    env = make_visual_env(VisualEvalSettings(episodes=1, seed=0))
    try:
        env.reset(seed=0)
        env.unwrapped.sim.set_motor_time_constants(0.08, 0.08)
        speeds = {}
        for slows in (True, False):
            expert = VisualExpert(slows_for_lag=slows)
            expert.reset([env])
            speeds[slows] = float(expert._inner._geo.speed[0])
        assert speeds[True] == pytest.approx(0.045 / 0.08) and speeds[False] == 1.0
    finally:
        env.close()


def test_expert_lead_matches_its_slowed_loop_when_asked():
    """The teacher's lead on a moving target is v kv / kp; with ``lead_matches_loop`` it is the lag of
    the slowed loop, v kv / (kp s), and on slow motors the teacher then trails a moving target less."""
    from lnn_drone.training.vision import VisualExpert, make_visual_env, run_visual_episodes

    class SlowMotors:
        """The teacher on a vehicle with 60 ms motors (the recipe's slowest), logging the tail lag."""

        def __init__(self, inner):
            self.inner, self.name, self.along = inner, inner.name, []

        def reset(self, envs):
            for e in envs:
                e.unwrapped.sim.set_motor_time_constants(0.06, 0.06)
            self.inner.reset(envs)
            self.along = []

        def act(self, observations, envs):
            b = envs[0].unwrapped
            direction = b.target_velocity / np.linalg.norm(b.target_velocity)
            self.along.append(float((b.sim.position - b.goal[:3]) @ direction))
            return self.inner.act(observations, envs)

    s = VisualEvalSettings(condition="moving_target", episodes=1, seed=0)
    env = make_visual_env(s)
    try:
        lag = {}
        for matches in (False, True):
            c = SlowMotors(VisualExpert(lead_matches_loop=matches))
            run_visual_episodes([env], c, s, [0])
            speed = float(c.inner._inner._geo.speed[0])
            lead = c.inner.lead([env.unwrapped])[0]
            v = env.unwrapped.target_velocity
            expected = v * VisualExpert.GAINS["kv"] / VisualExpert.GAINS["kp"] / (speed if matches else 1.0)
            np.testing.assert_allclose(lead, expected, rtol=1e-12)
            lag[matches] = -float(np.mean(c.along[-90:]))        # metres behind the moving standoff point
        assert speed == pytest.approx(0.045 / 0.06)
        assert lag[True] < lag[False] - 0.05, lag
    finally:
        env.close()


def test_expert_integral_action_removes_the_lag_it_would_have_without_the_target_velocity():
    """A teacher blind to the target's velocity (no lead, as a student is) trails a moving target;
    with integral action on its position error the lag goes. The integral winds up only near the
    standoff point (not during the approach) and stays within its bound."""
    from lnn_drone.training.vision import VisualExpert, make_visual_env, run_visual_episodes

    class BlindToVelocity(VisualExpert):
        def lead(self, bases):
            return np.zeros((len(bases), 3))

    class Logged:
        def __init__(self, inner):
            self.inner, self.name, self.along, self.integral = inner, inner.name, [], []

        def reset(self, envs):
            self.inner.reset(envs)
            self.along, self.integral = [], []

        def act(self, observations, envs):
            b = envs[0].unwrapped
            direction = b.target_velocity / np.linalg.norm(b.target_velocity)
            self.along.append(float((b.sim.position - b.goal[:3]) @ direction))
            out = self.inner.act(observations, envs)
            self.integral.append(self.inner.integral[0].copy())
            return out

    s = VisualEvalSettings(condition="moving_target", episodes=1, seed=0)
    env = make_visual_env(s)
    try:
        lag, integral = {}, {}
        for gain in (0.0, 1.5):
            c = Logged(BlindToVelocity(integral_gain=gain))
            run_visual_episodes([env], c, s, [0])
            lag[gain] = -float(np.mean(c.along[-90:]))       # metres behind the moving standoff point
            integral[gain] = np.array(c.integral)
        assert lag[0.0] > 0.4 and lag[1.5] < 0.2, lag
        assert not integral[0.0].any()
        assert not integral[1.5][0].any()                     # 2-6 m away at the start: outside the gate
        assert np.abs(integral[1.5]).max() <= 0.6 and np.abs(integral[1.5][-1]).max() > 0.05
    finally:
        env.close()
    with pytest.raises(ValueError, match="integral_gain"):
        VisualExpert(integral_gain=-1.0)


# ---------------------------------------------------------------- CLI
def test_cli_lists_conditions_nominal_first(capsys):
    assert cli_main(["eval", "--task", "visual_target", "--list-conditions"]) == 0
    lines = capsys.readouterr().out.split()
    assert lines == list(CONDITIONS) and lines[0] == "nominal"


def test_cli_json_has_the_required_keys(capsys):
    rc = cli_main(["eval", "--task", "visual_target", "--controller", "expert", "--condition", "noise",
                   "--episodes", "2", "--seed", "1", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("success_rate", "success_ci_low", "final_distance_error_m_median", "episodes"):
        assert key in out
    assert out["episodes"] == 2 and out["condition"] == "noise" and 0.0 <= out["success_ci_low"] <= out["success_rate"]


def test_cli_refuses_an_unknown_condition(capsys):
    assert cli_main(["eval", "--task", "visual_target", "--condition", "fog", "--episodes", "1"]) == 2
    assert "unknown condition" in capsys.readouterr().err


def test_report_keeps_its_notes_and_reevaluates_a_cell_whose_controller_changed(tmp_path, capsys):
    """The report is regenerated from the cached cells; a cell stands only for the controller it
    measured (its SHA-256), and the Notes a user keeps in a file survive the rerun."""
    from lnn_drone.training.vision_report import controller_digest

    out = tmp_path / "report"
    out.mkdir()
    stale = {"episodes": 1, "settings": {"seed": 0}, "success_rate": -1.0, "controller_sha256": "another controller"}
    (out / "results.json").write_text(json.dumps({"cells": {"expert": {"nominal": stale}}}))
    notes = tmp_path / "notes.md"
    notes.write_text("- the expert is privileged\n")
    args = ["report", "--task", "visual_target", "expert", "--episodes", "1", "--conditions", "nominal",
            "--out", str(out), "--notes", str(notes), "--no-progress"]
    assert cli_main(args) == 0
    cell = json.loads((out / "results.json").read_text())["cells"]["expert"]["nominal"]
    assert cell["controller_sha256"] == controller_digest("expert") and 0.0 <= cell["success_rate"] <= 1.0
    page = (out / "report.md").read_text()
    assert "## Notes" in page and "- the expert is privileged" in page and "| nominal |" in page
    capsys.readouterr()
    assert cli_main(args[:-3] + ["--notes", str(tmp_path / "missing.md")]) == 2
    assert "missing.md" in capsys.readouterr().err


def test_the_expert_cells_are_keyed_by_its_code_not_its_name(monkeypatch):
    """An edited teacher must not inherit the old teacher's cached cells."""
    from lnn_drone.training import vision
    from lnn_drone.training.vision_report import controller_digest

    before = controller_digest("expert")
    assert before.startswith("expert-code:") and before == controller_digest("expert")
    # the class source is what is hashed; a changed gain is a changed source line
    import inspect
    src = inspect.getsource(vision.VisualExpert).replace("kp=4.0", "kp=5.0")
    monkeypatch.setattr(inspect, "getsource", lambda obj, _orig=inspect.getsource: src if obj is vision.VisualExpert else _orig(obj))
    assert controller_digest("expert") != before


# ---------------------------------------------------------------- saliency
def test_projected_target_lands_on_the_rendered_sphere():
    from lnn_drone.training.saliency import project_target

    env = make_visual_env(VisualEvalSettings())
    try:
        hits = 0
        for seed in (0, 1, 3):
            obs, _ = env.reset(seed=seed, options={"state": DroneState(position=np.array(START_POSITION))})
            u, v, r = project_target(env.sim.rotation_matrix, env.sim.position, env.target_position, TARGET_RADIUS_M,
                                     64, 48, 90.0)
            img = obs["image"].astype(int)
            red = (img[..., 0] > img[..., 1] + 40) & (img[..., 0] > img[..., 2] + 40)
            ys, xs = np.nonzero(red)
            if 0 < len(xs) < 60:  # the target alone (not a red ground)
                hits += 1
                assert abs(xs.mean() + 0.5 - u) < 1.5 + r and abs(ys.mean() + 0.5 - v) < 1.5 + r
        assert hits >= 2
    finally:
        env.close()


@pytest.mark.skipif(not MODEL.exists(), reason="the shipped model is missing")
def test_saliency_maps_have_one_nonnegative_map_per_frame():
    from lnn_drone.training.vision_report import record_flight, saliency_for_flight

    flight = record_flight(str(MODEL), "nominal", index=0, seconds=1.0)
    sal = saliency_for_flight(str(MODEL), flight)
    t, h, w = sal.shape
    assert t == len(flight["input_image"]) and (h, w) == flight["input_image"].shape[1:3]
    assert np.isfinite(sal).all() and (sal >= 0).all() and sal.max() > 0


# ---------------------------------------------------------------- the shipped model
def test_shipped_model_reads_only_imu_and_camera():
    from lnn_drone.policy.model_file import load_model

    from lnn_drone.policy.policy import Policy

    model = load_model(MODEL)
    assert not set(model.input_names) & {"odom", "goal", "goal_error", "goal_error_integral", "hover_thrust"}
    assert Policy(model).required_observations == {"image", "imu", "attitude"}  # camera + IMU topics only
    assert model.config.core == "cfc" and model.config.wiring == "ncp"


@pytest.mark.slow
def test_shipped_model_flies_to_the_visual_target():
    """A few seeded nominal episodes with the numpy runtime. The model was released at 95 % (N = 100,
    seeds 0 and 1) and flies 8 of these 8; even at 91 %, fewer than 4 of 8 has a probability of
    ~0.03 %, so this fails on a real regression (a broken runtime, model or camera path flies none),
    not on chance."""
    from lnn_drone.training.agents import PolicyAgent
    from lnn_drone.training.vision import setup_for_model

    agent = PolicyAgent(MODEL)
    s = VisualEvalSettings(episodes=8, seed=7, setup=setup_for_model(agent.model))
    summary = evaluate_visual(agent, s)
    assert summary.success_rate >= 4 / 8, summary.to_json_dict()
    assert summary.crash_rate <= 2 / 8 and summary.final_distance_error_m_median < 0.5


# ---------------------------------------------------------------- inputs and training
def test_gravity_body_is_roll_and_pitch_only():
    from lnn_drone.frames import axis_angle_to_quat
    from lnn_drone.policy.features import get_feature

    f = get_feature("gravity_body").fn
    assert np.allclose(f({"attitude": np.array([0, 0, 0, 1.0])}), [0, 0, 1])
    yawed = axis_angle_to_quat(np.array([0, 0, 1.0]), 1.2)
    assert np.allclose(f({"attitude": yawed}), [0, 0, 1])  # yaw is not observable from an IMU: not read
    rolled = axis_angle_to_quat(np.array([1.0, 0, 0]), math.radians(30))
    g = f({"attitude": rolled})
    assert g[1] == pytest.approx(math.sin(math.radians(30))) and g[2] == pytest.approx(math.cos(math.radians(30)))


def test_visual_training_config_refuses_odometry_inputs():
    from lnn_drone.config import from_dict
    from lnn_drone.training.dagger_visual import VisualTrainConfig

    with pytest.raises(ValueError, match="odometry"):
        from_dict(VisualTrainConfig, {"inputs": ["image", "imu", "goal_error"]})
    with pytest.raises(ValueError, match="odometry"):  # its drag term reads the odometry's velocity
        from_dict(VisualTrainConfig, {"inputs": ["image", "imu", "hover_thrust"]})
    with pytest.raises(ValueError, match="image"):
        from_dict(VisualTrainConfig, {"inputs": ["imu"]})


def test_dagger_trains_a_camera_policy_without_odometry(tmp_path):
    from lnn_drone.policy.model_file import load_model
    from lnn_drone.policy.policy import Policy
    from lnn_drone.training.dagger_visual import VisualDaggerTrainer, VisualTrainConfig

    # the shipped recipe's inputs and image normalisation
    cfg = VisualTrainConfig(inputs=["image", "imu_accel", "gravity_body"], action_mode="ctbr",
                            control_hz=30.0, episode_s=3.5, iterations=1, expert_episodes=2, episodes_per_iteration=2,
                            updates_first=2, updates_per_iteration=2, batch_size=2, window_steps=8, burn_in_steps=4,
                            rollout_batch=2, check_episodes=1,
                            network={"vector_encoder_units": 8, "image_features": 8, "image_normalization": "per_frame"},
                            loss_weights=[50.0, 1.0, 1.0, 1.0])
    trainer = VisualDaggerTrainer(cfg, tmp_path / "run", progress=False)
    try:
        trainer.run()
    finally:
        trainer.close()
    frames = trainer.dataset.episodes[0].inputs["image"]
    assert frames.dtype == np.uint8 and frames.shape[1:] == (48, 64, 3)
    assert len(trainer.dataset.episodes) == 4 and (tmp_path / "run" / "train_log.csv").read_text().count("\n") == 3
    model = load_model(tmp_path / "run" / "checkpoint.safetensors")
    assert model.config.image_input.shape == (48, 64, 3) and model.config.action.mode == "ctbr"
    assert model.config.image_normalization == "per_frame"
    policy = Policy(model, available_observations={"imu", "image", "attitude"})
    assert policy.required_observations == {"imu", "image", "attitude"}


def test_saturation_penalty_revives_a_camera_encoder_stuck_at_plus_minus_one(tmp_path):
    """The failure of two seeds in three: every camera feature's tanh saturated, so no gradient
    reaches the encoder and imitation alone never brings it back. The penalty on pre-activations
    beyond +-2 does; within +-2 it is exactly zero."""
    from dataclasses import replace

    import torch

    from lnn_drone.training.dagger import IMAGE_SATURATION_BOUND, saturation_penalty
    from lnn_drone.training.dagger_visual import VisualDaggerTrainer, VisualTrainConfig

    assert float(saturation_penalty(torch.tensor([-IMAGE_SATURATION_BOUND, 0.5, IMAGE_SATURATION_BOUND]))) == 0.0
    assert float(saturation_penalty(torch.tensor([3.0, -4.0]))) == pytest.approx((1.0 + 4.0) / 2)
    cfg = VisualTrainConfig(inputs=["image", "imu_accel", "gravity_body"], action_mode="ctbr", control_hz=30.0, lr=0.005,
                            episode_s=1.0, batch_size=2, window_steps=8, burn_in_steps=4, rollout_batch=2,
                            network={"vector_encoder_units": 8, "image_features": 8, "image_normalization": "per_frame"})
    trainer = VisualDaggerTrainer(cfg, tmp_path / "run", progress=False)
    try:
        trainer.collect(0, 2, 0.0)              # two expert episodes
        trainer.build_network()
        rng = np.random.default_rng(0)
        frames = torch.from_numpy(trainer.dataset.chunks(2, 8, 4, rng)[0]["image"].reshape(-1, 48, 64, 3))
        start = {k: v.clone() for k, v in trainer.net.state_dict().items()}
        saturated = {}
        for weight in (0.0, 1.0):
            trainer.net.load_state_dict(start)
            with torch.no_grad():
                trainer.net.image_encoder.fc.bias.fill_(6.0)      # every feature at tanh(6) = 0.99999
            trainer.optimizer = torch.optim.Adam(trainer.net.parameters())   # fresh moments; lr from the recipe
            trainer.cfg = replace(cfg, image_saturation_penalty=weight)
            trainer.train(1, 30)
            with torch.no_grad():
                saturated[weight] = float((trainer.net.image_encoder(frames).abs() > 0.999).float().mean())
        assert saturated[0.0] == 1.0 and saturated[1.0] < 0.25, saturated     # share of features at +-1
    finally:
        trainer.close()
    with pytest.raises(ValueError, match="image_saturation_penalty"):
        VisualTrainConfig(inputs=["image", "imu_accel"], image_saturation_penalty=-1.0).check()


def test_walls_curriculum_starts_at_its_iteration(tmp_path):
    """``walls_from_iteration``: no walls variable in the scenes before it (so those iterations
    are the walls-free recipe's), ``walls_fraction`` from it on."""
    from lnn_drone.training.dagger_visual import VisualDaggerTrainer, VisualTrainConfig

    cfg = VisualTrainConfig(inputs=["image", "imu_accel", "gravity_body"], iterations=3, rollout_batch=1,
                            walls_fraction=0.4, walls_from_iteration=2)
    trainer = VisualDaggerTrainer(cfg, tmp_path / "run", progress=False)
    try:
        scene = lambda: trainer.envs[0].unwrapped.task.scene  # noqa: E731
        for iteration, want in ((0, 0.0), (1, 0.0), (2, 0.4), (3, 0.4)):
            trainer._episode_reset(iteration, 0)
            assert scene().walls_fraction == want
    finally:
        trainer.close()
    with pytest.raises(ValueError, match="walls_from_iteration"):
        VisualTrainConfig(inputs=["image", "imu_accel"], iterations=3, walls_from_iteration=4).check()


def test_recipe_passes_the_teacher_integral_action_to_its_teacher(tmp_path):
    from lnn_drone.training.dagger_visual import VisualDaggerTrainer, VisualTrainConfig

    cfg = VisualTrainConfig(inputs=["image", "imu_accel", "gravity_body"], iterations=1, rollout_batch=1,
                            expert_integral_gain=1.5, expert_integral_limit_m=0.4, expert_integral_gate_m=0.7)
    trainer = VisualDaggerTrainer(cfg, tmp_path / "run", progress=False)
    try:
        e = trainer.expert
        assert (e.integral_gain, e.integral_limit_m, e.integral_gate_m) == (1.5, 0.4, 0.7)
    finally:
        trainer.close()
    assert VisualTrainConfig().expert_integral_gain == 0.0   # the shipped teacher: off
    with pytest.raises(ValueError, match="expert_integral"):
        VisualTrainConfig(inputs=["image", "imu_accel"], expert_integral_gate_m=0.0).check()


def test_policy_node_logic_takes_the_attitude_from_the_imu_tick():
    from lnn_drone.ros.node_config import PolicyNodeConfig
    from lnn_drone.ros.policy_logic import PolicyCore

    class Needs:
        required = {"imu", "attitude", "image"}
        mode = "ctbr"
        neurons = None
        seen: list = []

        def reset(self):
            pass

        def compute(self, obs, dt):
            self.seen.append(obs["attitude"].copy())
            return np.array([0.4, 0.0, 0.0, 0.0])

    c = Needs()
    period = 33_333_333
    pc = PolicyCore(PolicyNodeConfig(failsafe_action="hover"), c, 0.4, period / 1e9)
    cmds = []
    for k in range(1, 4):
        t = k * period
        q = np.array([0.0, 0.0, math.sin(0.05 * k), math.cos(0.05 * k)])
        pc.on_sample("image", t, np.zeros((48, 64, 3), np.uint8), t)
        pc.on_sample("attitude", t, q, t)  # the node feeds it just before the imu of the same message
        out = pc.on_sample("imu", t, np.zeros(6), t)
        cmds.append(out)
        assert out is not None and not out.failsafe and out.stamp_ns == t
        assert np.allclose(c.seen[-1], q)


def test_target_view_labels_follow_the_camera_geometry():
    """Straight ahead: azimuth and elevation 0 at the range; to the left and above: both positive;
    behind or outside the field of view: flagged out of view (the loss skips those steps)."""
    from lnn_drone.training.target_view import LOG_RANGE_CENTRE, target_view_labels

    eye = np.eye(3).flatten()
    ahead = target_view_labels(eye, (0.0, 0.0, 1.0), (3.03, 0.0, 1.0), 64, 48, 90.0)
    assert ahead == pytest.approx([0.0, 0.0, math.log(3.0) - LOG_RANGE_CENTRE, 1.0], abs=1e-6)
    left_up = target_view_labels(eye, (0.0, 0.0, 1.0), (2.03, 1.0, 1.5), 64, 48, 90.0)
    assert left_up[0] == pytest.approx(math.atan2(1.0, 2.0), abs=1e-6) and left_up[1] > 0 and left_up[3] == 1.0
    yawed = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).flatten()   # facing +y: +x is to the right
    assert target_view_labels(yawed, (0.0, 0.0, 1.0), (1.0, 3.0, 1.0), 64, 48, 90.0)[0] < 0
    for target in ((-3.0, 0.0, 1.0), (1.0, 3.0, 1.0), (1.0, 0.0, 4.0)):   # behind, beside, far above
        assert target_view_labels(eye, (0.0, 0.0, 1.0), target, 64, 48, 90.0).tolist() == [0.0] * 4


def tiny_visual_config(**kw):
    """A visual DAgger recipe small enough for a test: 2 expert episodes, 8-step windows, the
    target-view loss on."""
    from lnn_drone.training.dagger_visual import VisualTrainConfig

    base = dict(inputs=["image", "imu_accel", "gravity_body"], action_mode="ctbr", control_hz=30.0, episode_s=3.5,
                iterations=1, expert_episodes=2, episodes_per_iteration=2, updates_first=40, updates_per_iteration=2,
                batch_size=2, window_steps=8, burn_in_steps=4, rollout_batch=2, check_episodes=1, target_view_weight=1.0,
                network={"vector_encoder_units": 8, "image_features": 8, "image_normalization": "per_frame"})
    return VisualTrainConfig(**{**base, **kw})


def test_relative_velocity_labels_are_in_the_heading_frame():
    """Forward / left / up of the drone's heading, whatever its tilt; the target's velocity less the
    drone's, so a drone flying along with the target reads zero."""
    from lnn_drone.training.relative_velocity import relative_velocity_label

    eye = np.eye(3).flatten()
    assert relative_velocity_label(eye, (0.0, 0.0, 0.0), (0.5, 0.0, 0.0)) == pytest.approx([0.5, 0.0, 0.0])
    assert relative_velocity_label(eye, (0.5, 0.0, 0.0), (0.5, 0.0, 0.0)) == pytest.approx([0.0, 0.0, 0.0])
    yawed = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).flatten()   # facing +y
    assert relative_velocity_label(yawed, (0.0, 0.0, 0.0), (0.5, 0.0, -0.1)) == pytest.approx([0.0, -0.5, -0.1])
    c, s = math.cos(0.3), math.sin(0.3)
    pitched = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]).flatten()       # nose down, heading +x
    assert relative_velocity_label(pitched, (0.0, 0.0, 0.0), (0.0, 0.0, 1.0)) == pytest.approx([0.0, 0.0, 1.0])


def test_relative_velocity_loss_trains_a_head_on_the_core_state_that_is_not_in_the_model_file(tmp_path):
    """With ``relative_velocity_weight`` (beside the target-view loss) the dataset records both
    label sets after the commands, the head reads the core's whole state, and the model file is
    the plain policy."""
    from dataclasses import replace

    import torch

    from lnn_drone.policy.model_file import load_model, save_network
    from lnn_drone.training.dagger_visual import VisualDaggerTrainer, VisualTrainConfig

    cfg = tiny_visual_config(iterations=0, updates_first=30, moving_fraction=1.0, relative_velocity_weight=1.0)
    trainer = VisualDaggerTrainer(cfg, tmp_path / "run", progress=False)
    try:
        trainer.collect(0, 2, 0.0)
        labels = trainer.dataset.episodes[0].labels
        assert labels.shape[1] == 4 + 4 + 3
        assert np.abs(labels[0, 8:10]).max() > 0.1        # a moving target: relative velocity from the first step
        trainer.build_network()
        assert trainer.velocity_head.in_features == trainer.net.state_size
        head_before = trainer.velocity_head.weight.detach().clone()
        trainer.train(0, 30)
        assert trainer.last_auxiliary_loss is not None and np.isfinite(trainer.last_auxiliary_loss)
        assert not torch.equal(head_before, trainer.velocity_head.weight)   # the head is in the optimizer
        with pytest.raises(ValueError, match="labels per step"):
            trainer.auxiliary_loss(torch.zeros(2, 12, 4), torch.ones(2, 12))
        save_network(tmp_path / "m.safetensors", trainer.net)
    finally:
        trainer.close()
    plain = VisualDaggerTrainer(replace(cfg, target_view_weight=0.0, relative_velocity_weight=0.0), tmp_path / "r2",
                                progress=False)
    try:
        plain.collect(0, 1, 0.0)
        plain.build_network()
        assert plain.velocity_head is None and plain.dataset.episodes[0].labels.shape[1] == 4
    finally:
        plain.close()
    assert set(load_model(tmp_path / "m.safetensors").tensors) == set(plain.net.state_dict())
    with pytest.raises(ValueError, match="relative_velocity_weight"):
        VisualTrainConfig(inputs=["image", "imu_accel"], relative_velocity_weight=float("nan")).check()


def test_target_view_loss_trains_a_head_that_is_not_in_the_model_file(tmp_path):
    """With ``target_view_weight`` the dataset records the view labels after the commands, the
    loss is logged, and the saved model has exactly the tensors of a model trained without it."""
    from dataclasses import replace

    import torch

    from lnn_drone.policy.model_file import load_model
    from lnn_drone.training.dagger_visual import VisualDaggerTrainer, VisualTrainConfig

    cfg = tiny_visual_config()
    trainer = VisualDaggerTrainer(cfg, tmp_path / "run", progress=False)
    try:
        trainer.collect(0, 2, 0.0)
        labels = trainer.dataset.episodes[0].labels
        assert labels.shape[1] == 8 and set(np.unique(labels[:, 7])) <= {0.0, 1.0} and labels[:, 7].mean() > 0.5
        trainer.build_network()
        head_before = trainer.view_head.weight.detach().clone()
        trainer.train(0, 40)
        assert trainer.last_auxiliary_loss is not None and np.isfinite(trainer.last_auxiliary_loss)
        assert not torch.equal(head_before, trainer.view_head.weight)   # the head is in the optimizer
    finally:
        trainer.close()
    trainer = VisualDaggerTrainer(cfg, tmp_path / "run2", progress=False)
    try:
        trainer.run()
    finally:
        trainer.close()
    log = (tmp_path / "run2" / "train_log.csv").read_text().splitlines()
    assert "aux_loss" in log[0].split(",") and len(log) == 3
    plain = VisualDaggerTrainer(replace(cfg, target_view_weight=0.0), tmp_path / "run3", progress=False)
    try:
        plain.collect(0, 1, 0.0)
        assert plain.dataset.episodes[0].labels.shape[1] == 4
        plain.build_network()
        assert plain.view_head is None
    finally:
        plain.close()
    model = load_model(tmp_path / "run2" / "checkpoint.safetensors")
    assert set(model.tensors) == set(plain.net.state_dict())
    with pytest.raises(ValueError, match="target_view_weight"):
        VisualTrainConfig(inputs=["image", "imu_accel"], target_view_weight=-0.5).check()
