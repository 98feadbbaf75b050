"""Imitation data: episodes of model inputs and expert labels, stored without pickle.

One episode = a dict of input arrays (T, dim) plus labels (T, 4). The aggregated DAgger set
is saved as a single ``.npz`` (``allow_pickle=False``) so a run can resume from it.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Episode:
    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    source: str = "expert"   # who flew it: "expert" or "student"

    @property
    def length(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Dataset:
    input_names: list[str]
    episodes: list[Episode] = field(default_factory=list)

    def add(self, episode: Episode) -> None:
        if episode.length > 0:
            self.episodes.append(episode)

    @property
    def steps(self) -> int:
        return sum(e.length for e in self.episodes)

    def normalization(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per-input mean and std over all steps (std floored so constant features stay finite)."""
        out = {}
        for name in self.input_names:
            if self.episodes and self.episodes[0].inputs[name].ndim == 4:
                out[name] = self._image_normalization(name)
                continue
            x = np.concatenate([e.inputs[name] for e in self.episodes]).astype(np.float64)
            out[name] = (x.mean(0), np.maximum(x.std(0), 1e-3))
        return out

    def _image_normalization(self, name: str, frames: int = 2000) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std of uint8 frames scaled to [0, 1], from an even subsample
        (every frame would cost gigabytes of float64)."""
        stride = max(1, self.steps // frames)
        x = np.concatenate([e.inputs[name][::stride] for e in self.episodes]).reshape(-1, 3) / 255.0
        return x.mean(0), np.maximum(x.std(0), 1e-3)

    def batches(self, batch_size: int, rng: np.random.Generator):
        """Padded mini-batches of whole episodes: (inputs (B,T,d), labels (B,T,4), mask (B,T))."""
        order = rng.permutation(len(self.episodes))
        for start in range(0, len(order), batch_size):
            eps = [self.episodes[i] for i in order[start:start + batch_size]]
            t = max(e.length for e in eps)
            mask = np.zeros((len(eps), t), dtype=np.float32)
            labels = np.zeros((len(eps), t, eps[0].labels.shape[1]), dtype=np.float32)
            inputs = {n: np.zeros((len(eps), t, eps[0].inputs[n].shape[1]), dtype=np.float32) for n in self.input_names}
            for i, e in enumerate(eps):
                mask[i, : e.length] = 1.0
                labels[i, : e.length] = e.labels
                for n in self.input_names:
                    inputs[n][i, : e.length] = e.inputs[n]
            yield inputs, labels, mask

    def chunks(self, batch_size: int, length: int, burn_in: int, rng: np.random.Generator):
        """One mini-batch of random windows for truncated BPTT: ``burn_in`` steps warm the
        recurrent state up (no loss) before ``length`` scored steps; a window that starts at an
        episode's first step is scored from its start (the state there really is zero)."""
        total = burn_in + length
        lengths = np.array([e.length for e in self.episodes])
        weights = lengths / lengths.sum()
        picks = rng.choice(len(self.episodes), size=batch_size, p=weights)
        mask = np.zeros((batch_size, total), dtype=np.float32)
        labels = np.zeros((batch_size, total, self.episodes[0].labels.shape[1]), dtype=np.float32)
        first = self.episodes[0].inputs
        inputs = {n: np.zeros((batch_size, total, *first[n].shape[1:]),
                              dtype=np.uint8 if first[n].dtype == np.uint8 else np.float32)
                  for n in self.input_names}
        for i, k in enumerate(picks):
            e = self.episodes[k]
            # a draw in [-burn_in, 0] means "the episode's start", so early steps are trained on
            # as often as any others
            start = max(0, int(rng.integers(-burn_in, max(1, e.length - burn_in))))
            n = min(total, e.length - start)
            labels[i, :n] = e.labels[start:start + n]
            for name in self.input_names:
                inputs[name][i, :n] = e.inputs[name][start:start + n]
            mask[i, (0 if start == 0 else burn_in):n] = 1.0
        return inputs, labels, mask

    def save(self, path: str | Path) -> None:
        arrays: dict[str, np.ndarray] = {"names": np.array(self.input_names),
                                         "sources": np.array([e.source for e in self.episodes]),
                                         "lengths": np.array([e.length for e in self.episodes], dtype=np.int64)}
        if self.episodes:
            arrays["labels"] = np.concatenate([e.labels for e in self.episodes])
            for n in self.input_names:
                arrays["input_" + n] = np.concatenate([e.inputs[n] for e in self.episodes])
        images = any(a.ndim == 4 for k, a in arrays.items() if k.startswith("input_"))
        path = Path(path)
        tmp = path.with_name(path.name + ".partial")
        # camera frames barely compress and zlib over gigabytes takes minutes: store them raw
        with tmp.open("wb") as f:
            (np.savez if images else np.savez_compressed)(f, **arrays)
        # atomic: a run stopped while saving keeps the previous dataset, never half of a new one
        os.replace(tmp, path)

    def truncate(self, n_episodes: int) -> None:
        """Keep the first ``n_episodes`` (episodes are only ever appended, so this is the dataset as it was)."""
        if not 0 <= n_episodes <= len(self.episodes):
            raise ValueError(f"cannot keep {n_episodes} episodes of a dataset holding {len(self.episodes)}")
        del self.episodes[n_episodes:]

    @classmethod
    def load(cls, path: str | Path) -> "Dataset":
        try:
            return cls._load(path)
        except (zipfile.BadZipFile, EOFError, KeyError, ValueError) as exc:
            raise ValueError(f"{path} is damaged or not a dataset saved by lnn_drone ({type(exc).__name__}: {exc})") from None

    @classmethod
    def _load(cls, path: str | Path) -> "Dataset":
        with np.load(path, allow_pickle=False) as z:
            names = [str(n) for n in z["names"]]
            ds = cls(names)
            if "labels" not in z:
                return ds
            bounds = np.concatenate([[0], np.cumsum(z["lengths"])])
            labels = z["labels"]
            inputs = {n: z["input_" + n] for n in names}
            for i, src in enumerate(z["sources"]):
                a, b = bounds[i], bounds[i + 1]
                ds.episodes.append(Episode({n: inputs[n][a:b] for n in names}, labels[a:b], str(src)))
        return ds
