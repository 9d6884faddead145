"""Dataset statistics stored with every model (DESIGN.md "Tensors and samples"; spec sections 1 and 7).

- :func:`compute_norm_stats`: mean and standard deviation of the [0, 1]-scaled frames of the training split,
  pixel-weighted (every pixel of every frame counts once), accumulated in float64. The network input is
  ``(x - mean) / std``. No per-dataset number is hard-coded anywhere.
- :func:`compute_target_stats`: ``area_mean`` and ``contrast_mean`` of the ground-truth targets of the
  training
  split (8-connected components, local contrast on the normalised frame with the fixed margin 3), the
  ``s_mean``
  and ``c_mean`` of the target-centric auxiliary loss (spec section 7).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from irsam2.data.io import read_frame
from irsam2.data.targets import compute_targets
from irsam2.data.transforms import normalise
from irsam2.utils import UserError

_NORM_CACHE: dict[tuple[str, ...], dict[str, float]] = {}


def _frames(source: Any) -> Iterable[np.ndarray]:
    if hasattr(source, "raw_frames"):
        yield from source.raw_frames()
        return
    for x in source:
        if isinstance(x, np.ndarray):
            yield x.astype(np.float32, copy=False)
        elif isinstance(x, (str, os.PathLike)):
            yield read_frame(x)[0]
        else:
            raise TypeError(f"compute_norm_stats: cannot use {type(x).__name__} as a frame")


def compute_norm_stats(source: Any) -> dict[str, float]:
    """``{"mean", "std"}`` over a dataset (anything with ``raw_frames()``), image paths or [0, 1] arrays.

    Results for a list of paths are cached per process (key: the paths), since train and validation datasets
    of one run share the training split's statistics.
    """
    key = None
    if (
        isinstance(source, (list, tuple))
        and source
        and all(isinstance(p, (str, os.PathLike)) for p in source)
    ):
        key = tuple(str(p) for p in source)
        if key in _NORM_CACHE:
            return dict(_NORM_CACHE[key])
    total, total_sq, count = 0.0, 0.0, 0
    for f in _frames(source):
        f64 = f.astype(np.float64)
        total += float(f64.sum())
        total_sq += float(np.square(f64).sum())
        count += f.size
    if count == 0:
        raise UserError("cannot compute normalisation statistics: no frames")
    mean = total / count
    std = float(np.sqrt(max(total_sq / count - mean * mean, 0.0)))
    if std < 1e-6:
        raise UserError(
            f"cannot normalise: the training frames are constant (mean {mean:.6f}, std {std:.2e})"
        )
    out = {"mean": float(mean), "std": std}
    if key is not None:
        _NORM_CACHE[key] = dict(out)
    return out


def compute_target_stats(dataset: Any, margin: int = 3) -> dict[str, float]:
    """``{"area_mean", "contrast_mean", "n_targets"}`` over a dataset's full frames (no augmentation).

    ``dataset`` must provide ``raw_items()`` yielding ``(frame, mask)`` and ``norm`` (the datasets of this
    package do). Call it on the training split.
    """
    areas: list[np.ndarray] = []
    contrasts: list[np.ndarray] = []
    norm = dataset.norm
    for frame, mask in dataset.raw_items():
        t = compute_targets(mask, normalise(frame, norm), margin)
        areas.append(t["areas"])
        contrasts.append(t["contrasts"])
    a = np.concatenate(areas) if areas else np.zeros(0)
    c = np.concatenate(contrasts) if contrasts else np.zeros(0)
    if a.size == 0:
        raise UserError("cannot compute target statistics: the training split has no targets")
    return {"area_mean": float(a.mean()), "contrast_mean": float(c.mean()), "n_targets": int(a.size)}
