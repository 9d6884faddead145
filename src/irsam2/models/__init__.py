"""IR-SAM2 network, presets, the deep baselines (one registry) and SAM2 checkpoint loading."""

from irsam2.models.base import InputSizeError, SegmentationNet
from irsam2.models.irsam2 import IRSAM2, IRSAM2Config
from irsam2.models.registry import (
    ModelConfigError,
    NetworkSpec,
    create_model,
    list_models,
    model_recipe,
    network_spec,
    register_model,
    register_network,
)
from irsam2.models.sam2_checkpoint import load_sam2_checkpoint

__all__ = [
    "IRSAM2",
    "IRSAM2Config",
    "InputSizeError",
    "ModelConfigError",
    "NetworkSpec",
    "SegmentationNet",
    "create_model",
    "list_models",
    "load_sam2_checkpoint",
    "model_recipe",
    "network_spec",
    "register_model",
    "register_network",
]
