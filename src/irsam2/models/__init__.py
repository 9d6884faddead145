"""IR-SAM2 network, presets and SAM2 checkpoint loading (spec sections 2 to 6 and 9)."""

from irsam2.models.irsam2 import IRSAM2, InputSizeError, IRSAM2Config
from irsam2.models.registry import ModelConfigError, create_model, list_models, register_model
from irsam2.models.sam2_checkpoint import load_sam2_checkpoint

__all__ = [
    "IRSAM2",
    "IRSAM2Config",
    "InputSizeError",
    "ModelConfigError",
    "create_model",
    "list_models",
    "load_sam2_checkpoint",
    "register_model",
]
