"""Training, evaluation and inference engines (DESIGN.md: engine/).

Kept free of imports so that ``import irsam2.engine.<module>`` pays only for that module.
"""

from typing import Any as _Any

# The training engine's public API, imported on first use: ``irsam2.engine.train(config) -> TrainResult``.
_LAZY = {
    "train": "irsam2.engine.trainer",
    "Trainer": "irsam2.engine.trainer",
    "TrainResult": "irsam2.engine.trainer",
    "TrainingDiverged": "irsam2.engine.trainer",
    "Config": "irsam2.engine.config",
    "load_config": "irsam2.engine.config",
}


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'irsam2.engine' has no attribute {name!r}")
