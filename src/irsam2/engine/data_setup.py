"""The training engine's data: training and validation datasets, normalisation and target statistics.

The validation split is carved deterministically from the *training* split (spec section 7: the gate and every
model-selection decision use it; the test split is never touched in training) and recorded in
``<out>/val_split.txt`` so that a resumed run validates on the same frames. Without ``data.root`` the run uses
in-memory synthetic infrared scenes (``irsam2.data.SyntheticIRDataset``), with disjoint scenes for validation.

Training batches come from one :class:`TrainSource`, chosen here by :func:`build_train_source`:
:class:`LoaderSource` (a DataLoader: workers decode and augment each item on the CPU) or, with
``data.on_device``, :class:`DeviceSource` (the split held on the training device and augmented there in batch,
:mod:`irsam2.data.on_device`). Both visit the same frames in the same order (a ``DistributedSampler`` of
``(seed, epoch, rank)``) and resume inside an epoch by skipping the samples already seen.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

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
            scale=(float(cfg.data.scale[0]), float(cfg.data.scale[1])),
            blur_p=cfg.data.blur_p,
            scale_base=cfg.data.scale_base,
            target_crop_p=cfg.data.target_crop_p,
            whole_targets=cfg.data.whole_targets,
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


# ----------------------------------------------------------------------------------------------------
# training batch sources


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (seed, epoch, rank, stream)."""
    return int(
        np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0] >> 1
    )


class _SkipSampler(Sampler[int]):
    """The first ``skip`` indices of another sampler left out (resuming inside an epoch)."""

    def __init__(self, base: Sampler[int], skip: int) -> None:
        self.base, self.skip = base, int(skip)

    def __iter__(self) -> Iterator[int]:
        for i, idx in enumerate(self.base):
            if i >= self.skip:
                yield idx

    def __len__(self) -> int:
        return max(len(self.base) - self.skip, 0)  # type: ignore[arg-type]


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; numpy and random follow it so augmentation is
    # reproducible from (seed, epoch).
    s = torch.initial_seed() % (2**32)
    np.random.seed(s)  # noqa: NPY002
    random.seed(s)


class TrainSource(Protocol):
    """Where training micro-batches come from: ``epoch(epoch, skip_samples)`` yields collated batches of
    ``micro`` images (1-based ``epoch``; ``skip_samples`` already seen in a resumed epoch)."""

    def epoch(self, epoch: int, skip_samples: int) -> Iterable[dict[str, Any]]: ...


@dataclass
class _Shard:
    """This process's share of an epoch: the sampler every source uses."""

    dataset: Dataset
    seed: int
    rank: int
    world: int

    def sampler(self, epoch: int) -> DistributedSampler:
        base = DistributedSampler(
            self.dataset,
            num_replicas=self.world,
            rank=self.rank,
            shuffle=True,
            seed=self.seed,
            drop_last=True,
        )
        base.set_epoch(epoch)
        return base


class LoaderSource:
    """A DataLoader over the training dataset: workers decode and augment on the CPU (pinned on CUDA)."""

    def __init__(self, shard: _Shard, micro: int, workers: int, prefetch: int, pin: bool) -> None:
        self.shard, self.micro, self.workers, self.prefetch, self.pin = shard, micro, workers, prefetch, pin

    def epoch(self, epoch: int, skip_samples: int) -> DataLoader:
        from irsam2.data import collate

        base = self.shard.sampler(epoch)
        sampler: Sampler[int] = _SkipSampler(base, skip_samples) if skip_samples else base
        gen = torch.Generator()
        gen.manual_seed(derive_seed(self.shard.seed, epoch, self.shard.rank, 1))
        return DataLoader(
            self.shard.dataset,
            batch_size=self.micro,
            sampler=sampler,
            num_workers=self.workers,
            collate_fn=collate,
            drop_last=True,
            generator=gen,
            worker_init_fn=_seed_worker if self.workers else None,
            pin_memory=self.pin,  # then the step's copies are asynchronous
            prefetch_factor=self.prefetch if self.workers else None,
            persistent_workers=False,
        )


class DeviceSource:
    """Batches built on the training device from the split held there (``data.on_device``).

    The host only shuffles indices (the same order as :class:`LoaderSource`) and sends each batch's indices
    (pinned, non-blocking on CUDA); the augmentation's random numbers come from a generator on the device
    seeded from ``(seed, epoch, rank)``, so a run is repeatable and a resumed epoch replays the skipped draws.
    """

    def __init__(self, shard: _Shard, micro: int, device: torch.device) -> None:
        from irsam2.data.on_device import DeviceTrainSet

        self.shard, self.micro, self.device = shard, micro, torch.device(device)
        self.data = DeviceTrainSet(shard.dataset, self.device)

    def _indices(self, idx: list[int]) -> torch.Tensor:
        t = torch.tensor(idx, dtype=torch.long)
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def epoch(self, epoch: int, skip_samples: int) -> Iterator[dict[str, Any]]:
        order = list(self.shard.sampler(epoch))
        gen = self.data.generator(derive_seed(self.shard.seed, epoch, self.shard.rank, 2))
        m = self.micro
        for _ in range(skip_samples // m):  # the skipped batches' draws: the rest of the epoch is the same
            self.data.draw(m, gen)
        for start in range(skip_samples - skip_samples % m, len(order) - m + 1, m):
            chunk = order[start : start + m]
            yield self.data.with_meta(self.data.batch(self._indices(chunk), gen), chunk)


def build_train_source(
    cfg: Config, train: Dataset, micro: int, device: torch.device, rank: int = 0, world: int = 1
) -> TrainSource:
    """The run's training batch source (``data.on_device`` picks :class:`DeviceSource`)."""
    shard = _Shard(train, cfg.train.seed, rank, world)
    if cfg.data.on_device:
        src = DeviceSource(shard, micro, device)
        if rank == 0:
            logger.info(
                "data.on_device: %d training frames (%.2f GB) held on %s, augmented there in batch",
                len(src.data),
                src.data.nbytes() / 1e9,
                device,
            )
        return src
    workers = cfg.data.workers
    return LoaderSource(shard, micro, workers, cfg.data.prefetch, pin=torch.device(device).type == "cuda")
