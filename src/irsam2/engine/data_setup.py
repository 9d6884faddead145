"""The training engine's data: training and validation datasets, normalisation and target statistics.

The validation split is carved deterministically from the *training* split (spec section 7: the gate and every
model-selection decision use it; the test split is never touched in training) and recorded in
``<out>/val_split.txt`` so that a resumed run validates on the same frames. Without ``data.root`` the run uses
in-memory synthetic infrared scenes (``irsam2.data.SyntheticIRDataset``), with disjoint scenes for validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from irsam2.engine.config import Config
from irsam2.utils import UserError, logger

VAL_FILE = "val_split.txt"
TRAIN_FILE = "train_split.txt"
SYNTHETIC_VAL_SEED_OFFSET = 7919  # validation scenes: another seed, so never the training scenes


@dataclass
class TrainingData:
    train: Dataset
    val: Dataset
    norm: dict[str, float]
    target_stats: dict[str, Any]
    description: str


def _augment(cfg: Config) -> Any:
    from irsam2.data import TrainAugment

    if cfg.data.augment:
        return TrainAugment(
            crop_size=cfg.data.crop_size,
            scale_base=cfg.data.scale_base,
            target_crop_p=cfg.data.target_crop_p,
        )
    # no augmentation: a fixed-size crop of a frame rescaled so its long side is the crop size
    return TrainAugment(
        crop_size=cfg.data.crop_size,
        scale=(1.0, 1.0),
        scale_base=cfg.data.crop_size,
        flip_p=0.0,
        blur_p=0.0,
        copy_paste_p=0.0,
    )


def _real(cfg: Config, out: Path) -> tuple[Dataset, Dataset, str]:
    from irsam2.data import IRSTDDataset, carve_validation, read_split_file, write_split_file

    dc = cfg.data
    root = Path(dc.root)  # type: ignore[arg-type]
    if not root.is_dir():
        raise UserError(f"data.root: {root} is not a folder")
    preset = dc.dataset
    common: dict[str, Any] = {
        "root": root,
        "preset": preset,
        "crop_size": dc.crop_size,
        "seed": cfg.train.seed,
        "strict": dc.strict,
        "mask_threshold": dc.mask_threshold,
    }
    if dc.split:
        # an explicit split file wins over the layout; carve the validation frames out of it here
        val_path, train_path = out / VAL_FILE, out / TRAIN_FILE
        stems = read_split_file(dc.split)
        if val_path.is_file() and train_path.is_file():
            train_stems, val_stems = read_split_file(train_path), read_split_file(val_path)
        else:
            train_stems, val_stems = carve_validation(stems, dc.val_fraction, cfg.train.seed)
            write_split_file(train_path, train_stems)
            write_split_file(val_path, val_stems)
        train = IRSTDDataset(
            split="train",
            split_file=train_path,
            train=True,
            copy_paste=dc.copy_paste,
            augment=_augment(cfg),
            **common,
        )
        val = IRSTDDataset(split="val", split_file=val_path, train=False, norm=train.norm, **common)
    else:
        vf = out / VAL_FILE
        train = IRSTDDataset(
            split="train",
            train=True,
            copy_paste=dc.copy_paste,
            val_fraction=dc.val_fraction,
            val_file=vf,
            augment=_augment(cfg),
            **common,
        )
        val = IRSTDDataset(
            split="val", train=False, norm=train.norm, val_fraction=dc.val_fraction, val_file=vf, **common
        )
    desc = f"{root} ({preset or 'auto layout'}): {len(train)} training / {len(val)} validation frames"
    return train, val, desc


def _synthetic(cfg: Config) -> tuple[Dataset, Dataset, str]:
    from irsam2.data import SyntheticIRDataset

    sc = cfg.data.synthetic
    n_val = max(1, round(sc.num_images * cfg.data.val_fraction)) if cfg.data.val_fraction > 0 else 1
    n_train = max(sc.num_images - n_val, 1)
    train = SyntheticIRDataset(
        n_train,
        size=sc.size,
        seed=sc.seed,
        train=True,
        crop_size=cfg.data.crop_size,
        copy_paste=cfg.data.copy_paste,
        cache=True,
        augment=_augment(cfg),
    )
    val = SyntheticIRDataset(
        n_val,
        size=sc.size,
        seed=sc.seed + SYNTHETIC_VAL_SEED_OFFSET,
        train=False,
        norm=train.norm,
        cache=True,
    )
    desc = f"synthetic scenes {sc.size}x{sc.size} (seed {sc.seed}): {n_train} training / {n_val} validation"
    return train, val, desc


def build_training_data(cfg: Config, is_main: bool = True, out: Path | None = None) -> TrainingData:
    """Datasets, the training split's normalisation and target statistics (stored in every checkpoint)."""
    out = Path(out if out is not None else cfg.out)
    if cfg.data.root:
        train, val, desc = _real(cfg, out)
    else:
        train, val, desc = _synthetic(cfg)
    norm = dict(train.norm)  # type: ignore[attr-defined]
    stats = dict(train.target_stats())  # type: ignore[attr-defined]
    if is_main:
        logger.info("data: %s; norm mean %.4f std %.4f", desc, norm["mean"], norm["std"])
    return TrainingData(train=train, val=val, norm=norm, target_stats=stats, description=desc)
