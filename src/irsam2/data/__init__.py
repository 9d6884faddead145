"""Data for IR-SAM2: benchmark layouts, users' own frames, synthetic scenes, transforms and batching.

See DESIGN.md "Tensors and samples" for the item contract, and the module docstrings for the details:
:mod:`~irsam2.data.io` (reading frames and masks), :mod:`~irsam2.data.layouts` (layouts, splits, presets),
:mod:`~irsam2.data.transforms` (normalisation, padding, augmentation), :mod:`~irsam2.data.targets`
(per-target annotations), :mod:`~irsam2.data.stats` (norm and target statistics),
:mod:`~irsam2.data.synthetic` (synthetic infrared scenes) and :mod:`~irsam2.data.dataset`.
"""

from __future__ import annotations

from irsam2.data.dataset import FrameDataset, IRSTDDataset, SyntheticIRDataset, collate, list_dataset
from irsam2.data.io import (
    IMAGE_EXTENSIONS,
    DataRepairWarning,
    list_images,
    read_frame,
    read_mask,
    write_frame,
    write_mask,
)
from irsam2.data.layouts import (
    PRESETS,
    carve_validation,
    check_preset_counts,
    detect_layout,
    read_split_file,
    resolve_split,
    write_split_file,
)
from irsam2.data.stats import compute_norm_stats, compute_target_stats
from irsam2.data.synthetic import SceneConfig, generate_scene, write_synthetic_dataset
from irsam2.data.targets import compute_targets
from irsam2.data.transforms import (
    CopyPasteBank,
    TrainAugment,
    crop_to_size,
    normalise,
    pad_to_multiple,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "PRESETS",
    "CopyPasteBank",
    "DataRepairWarning",
    "FrameDataset",
    "IRSTDDataset",
    "SceneConfig",
    "SyntheticIRDataset",
    "TrainAugment",
    "carve_validation",
    "check_preset_counts",
    "collate",
    "compute_norm_stats",
    "compute_target_stats",
    "compute_targets",
    "crop_to_size",
    "detect_layout",
    "generate_scene",
    "list_dataset",
    "list_images",
    "normalise",
    "pad_to_multiple",
    "read_frame",
    "read_mask",
    "read_split_file",
    "resolve_split",
    "write_frame",
    "write_mask",
    "write_split_file",
    "write_synthetic_dataset",
]
