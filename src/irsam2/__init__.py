"""IR-SAM2: infrared small target detection with SAM2 (Remote Sensing 2026, 18, 1891)."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "create_model", "list_models", "load_sam2_checkpoint"]


def __getattr__(name: str) -> Any:
    # Lazy so that `import irsam2.data` does not pay for timm and the model code.
    if name in ("create_model", "list_models", "load_sam2_checkpoint"):
        from irsam2 import models

        return getattr(models, name)
    raise AttributeError(f"module 'irsam2' has no attribute {name!r}")
