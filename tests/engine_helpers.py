"""Shared by the engine tests: the smallest training run the engine accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tiny(out: Path, **extra: Any) -> dict[str, Any]:
    """Overrides of the `synthetic` preset: 5 scenes 32x32 (4 training, 1 validation), batch 2, 2 epochs."""
    cfg: dict[str, Any] = {
        "out": str(out),
        "train.epochs": 2,
        "train.batch_size": 2,
        "train.progress": False,
        "train.tensorboard": False,
        "data.synthetic.num_images": 5,
        "data.synthetic.size": 32,
        "data.crop_size": 32,
        "data.workers": 0,
    }
    cfg.update(extra)
    return cfg
