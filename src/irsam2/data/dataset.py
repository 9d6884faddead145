"""Datasets and batching (DESIGN.md "Tensors and samples"; spec sections 1, 7 and 8).

An item is a dict:

- ``image``: float32 ``(3, H, W)``, the single infrared channel normalised as ``(x - mean) / std`` (x in
  [0, 1]; ``norm`` = the training split's statistics) and replicated three times;
- ``mask``: float32 ``(1, H, W)`` in {0, 1};
- ``boxes`` ``(N, 4)`` (x0, y0, x1, y1; x1, y1 exclusive), ``areas`` ``(N,)``, ``centroids`` ``(N, 2)`` (x,
  y),
  ``contrasts`` ``(N,)``: per 8-connected target, in the coordinates of ``image``, computed here once
  (:mod:`irsam2.data.targets`);
- ``stem``, ``path`` (image file), ``orig_size`` ``(h, w)``: the size before test-time padding.

Training items (``train=True``) go through :class:`~irsam2.data.transforms.TrainAugment` and are
``crop_size`` square. Other items are padded bottom/right to a multiple of ``pad_multiple`` (32) with 0 in
normalised units; crop outputs back with ``crop_to_size(x, orig_size)``.

Augmentation randomness is drawn from torch's generator, so ``seed_everything`` and the DataLoader's
per-worker
seeding make runs reproducible.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from irsam2.data.io import read_frame, read_mask, scan_masks
from irsam2.data.layouts import PRESETS, ResolvedSplit, check_preset_counts, detect_layout, resolve_split
from irsam2.data.stats import compute_norm_stats, compute_target_stats
from irsam2.data.synthetic import SceneConfig, generate_scene
from irsam2.data.targets import compute_targets
from irsam2.data.transforms import CopyPasteBank, TrainAugment, normalise, pad_to_multiple
from irsam2.utils import UserError

logger = logging.getLogger(__name__)


def _check_norm(norm: Any) -> dict[str, float] | None:
    if norm is None:
        return None
    try:
        out = {"mean": float(norm["mean"]), "std": float(norm["std"])}
    except (KeyError, TypeError, ValueError):
        raise UserError(f"norm must be a dict with numeric 'mean' and 'std', got {norm!r}") from None
    if not np.isfinite(out["mean"]) or not out["std"] > 0:
        raise UserError(f"norm needs a finite mean and a positive std, got {out}")
    return out


class FrameDataset(Dataset):
    """Shared item pipeline; subclasses implement ``__len__``, :meth:`load` and :meth:`_default_norm`."""

    def __init__(
        self,
        train: bool,
        crop_size: int = 256,
        norm: dict[str, float] | None = None,
        pad_multiple: int = 32,
        augment: TrainAugment | None = None,
    ) -> None:
        if crop_size < 1 or pad_multiple < 1:
            raise UserError(f"crop_size and pad_multiple must be positive, got {crop_size}, {pad_multiple}")
        self.train = bool(train)
        self.crop_size = int(crop_size)
        self.pad_multiple = int(pad_multiple)
        self.augment = augment or TrainAugment(crop_size=self.crop_size)
        self._norm = _check_norm(norm)

    # -- to implement -------------------------------------------------------------------------------------
    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str, str]:
        """``(frame float32 [0, 1], mask bool, stem, path)`` of item ``index``, untransformed."""
        raise NotImplementedError

    def _default_norm(self) -> dict[str, float]:
        raise NotImplementedError

    # -- statistics -------------------------------------------------------------------------------------
    @property
    def norm(self) -> dict[str, float]:
        """Normalisation statistics; computed on first use when not given (read it in the main process
        before building a DataLoader so that workers do not each recompute it)."""
        if self._norm is None:
            self._norm = self._default_norm()
        return self._norm

    def raw_items(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(self)):
            frame, mask, _, _ = self.load(i)
            yield frame, mask

    def raw_frames(self) -> Iterator[np.ndarray]:
        for frame, _ in self.raw_items():
            yield frame

    def target_stats(self) -> dict[str, float]:
        """``{"area_mean", "contrast_mean", "n_targets"}`` over this dataset's full frames (spec 7)."""
        return compute_target_stats(self)

    # -- items ----------------------------------------------------------------------------------------------
    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index %= len(self)
        frame, mask, stem, path = self.load(index)
        norm = self.norm
        if self.train:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
            if self.augment.bank is not None:
                frame, mask = frame.copy(), mask.copy()
                self.augment.paste(frame, mask, rng)
            image, mask = self.augment.geometric(normalise(frame, norm), mask, rng)
            orig_size = image.shape
        else:
            image, mask, orig_size = pad_to_multiple(normalise(frame, norm), mask, self.pad_multiple)
        t = compute_targets(mask, image, margin=3)
        img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
        return {
            "image": img.unsqueeze(0).repeat(3, 1, 1),
            "mask": torch.from_numpy(mask.astype(np.float32))[None],
            "boxes": torch.from_numpy(t["boxes"]),
            "areas": torch.from_numpy(t["areas"]),
            "centroids": torch.from_numpy(t["centroids"]),
            "contrasts": torch.from_numpy(t["contrasts"]),
            "stem": stem,
            "path": path,
            "orig_size": (int(orig_size[0]), int(orig_size[1])),
        }


class IRSTDDataset(FrameDataset):
    """A benchmark or user dataset on disk, in any layout of :mod:`irsam2.data.layouts`.

    ``split``: ``train`` / ``val`` (carved from the training split, ``val_fraction``, recorded in ``val_file``
    when given) / ``trainval`` / ``test`` / ``all``. ``preset``: ``nuaa``, ``nuaa_50_50``, ``nudt``,
    ``irstd1k`` or None (auto-detect). ``split_file`` always wins. ``train`` (augment) defaults to
    ``split in ("train", "trainval")``. ``norm`` None: computed from the training split of the same folder
    (pass the checkpoint's ``norm`` for evaluation). ``copy_paste`` None: the preset's default (IRSTD-1k
    only);
    the bank is built from this (training) split at construction. ``strict``: refuse repairable defects
    (mask size mismatch, grey mask values) instead of repairing them with a warning. ``mask_threshold``:
    target where mask value > it (None: :func:`irsam2.data.io.read_mask`'s default rule). Every mask is
    checked at construction (:func:`~irsam2.data.io.scan_masks`: one warning per dataset). ``cache``: keep
    decoded frames in memory (per DataLoader worker; about ``H * W * 2`` bytes per 8-bit item) so that later
    epochs skip decoding.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        preset: str | None = None,
        split_file: str | os.PathLike | None = None,
        train: bool | None = None,
        crop_size: int = 256,
        norm: dict[str, float] | None = None,
        strict: bool = False,
        copy_paste: bool | None = None,
        seed: int = 0,
        val_fraction: float = 0.1,
        val_file: str | os.PathLike | None = None,
        split_dir: str | None = None,
        pad_multiple: int = 32,
        augment: TrainAugment | None = None,
        cache: bool = False,
        mask_threshold: float | None = None,
    ) -> None:
        super().__init__(
            train=split in ("train", "trainval") if train is None else train,
            crop_size=crop_size,
            norm=norm,
            pad_multiple=pad_multiple,
            augment=augment,
        )
        self.root = Path(root)
        self.split = split
        self.preset = preset
        self.strict = bool(strict)
        self.seed = int(seed)
        self.layout = detect_layout(root, preset, split_dir)
        if preset is not None and split_file is None:
            check_preset_counts(self.layout, preset)
        self.resolved: ResolvedSplit = resolve_split(
            root, split, preset, split_file, split_dir, val_fraction, val_file, seed, layout=self.layout
        )
        self._split_file = split_file
        # Decoded frames (integer levels, as stored) and masks, per process: later epochs skip PNG decoding.
        self._cache: dict[int, tuple[np.ndarray, float, np.ndarray]] | None = {} if cache else None
        if not self.resolved.stems:
            raise UserError(f"{self.root}: split {split!r} has no items")
        self.mask_threshold = mask_threshold
        scan_masks(list(self.resolved.masks), f"{self.root} ({split})", self.strict, mask_threshold)
        if copy_paste is None:
            copy_paste = bool(preset and PRESETS[preset].copy_paste)
        if copy_paste and self.train:
            if split in ("val", "test"):
                raise UserError(f"copy-paste bank must come from the training split, not {split!r}")
            bank = CopyPasteBank()
            for i in range(len(self)):
                frame, mask, _, _ = self.load(i)
                bank.add(frame, mask)
            self.augment.bank = bank
            logger.info("copy-paste bank: %d target crops from %d %s images", len(bank), len(self), split)

    @property
    def stems(self) -> list[str]:
        return self.resolved.stems

    def __len__(self) -> int:
        return len(self.resolved.stems)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str, str]:
        ip, mp = self.resolved.images[index], self.resolved.masks[index]
        if self._cache is not None and index in self._cache:
            levels, scale, mask = self._cache[index]
            frame = levels.astype(np.float32) * np.float32(scale)
        else:
            frame, depth = read_frame(ip)
            mask = read_mask(mp, frame.shape, strict=self.strict, threshold=self.mask_threshold)
            if self._cache is not None:
                scale = {8: 1.0 / 255.0, 16: 1.0 / 65535.0}.get(depth)
                if scale is None:  # float frames are kept as they are
                    self._cache[index] = (frame, 1.0, mask)
                else:
                    levels = np.rint(frame / np.float32(scale)).astype(np.uint8 if depth == 8 else np.uint16)
                    self._cache[index] = (levels, scale, mask)
        return frame, mask, self.resolved.stems[index], str(ip)

    def raw_frames(self) -> Iterator[np.ndarray]:
        for p in self.resolved.images:  # no mask needed
            yield read_frame(p)[0]

    def _default_norm(self) -> dict[str, float]:
        lay = self.layout
        if self._split_file is None and lay.train_file is not None:
            train = resolve_split(lay.root, "trainval", layout=lay)
            logger.info("normalisation statistics from the training split %s", lay.train_file)
            return compute_norm_stats(list(train.images))
        if self.split in ("train", "trainval", "all"):
            return compute_norm_stats(list(self.resolved.images))
        raise UserError(
            f"{self.root}: no training split to compute normalisation statistics from; pass norm= "
            "(the training split's statistics, stored in the checkpoint under 'norm')"
        )


class SyntheticIRDataset(FrameDataset):
    """``n`` synthetic infrared scenes (:mod:`irsam2.data.synthetic`) generated on the fly from ``(seed, i)``.

    Same item format as :class:`IRSTDDataset`; ``stem`` is ``syn_<i>`` and ``path`` ``synthetic:<seed>:<i>``.
    ``norm`` None: computed from up to 64 of this dataset's frames (pass the training set's ``norm`` to a test
    set). ``crop_size`` defaults to the scene size. ``cache`` keeps generated scenes in memory. Extra keyword
    arguments go to :class:`~irsam2.data.synthetic.SceneConfig` (``n_targets``, ``area_range``, ``scr_range``,
    ``backgrounds``).
    """

    def __init__(
        self,
        n: int,
        size: int | tuple[int, int] = 256,
        seed: int = 0,
        bit_depth: int = 8,
        train: bool = False,
        crop_size: int | None = None,
        norm: dict[str, float] | None = None,
        copy_paste: bool = False,
        pad_multiple: int = 32,
        cache: bool = False,
        augment: TrainAugment | None = None,
        **scene_kwargs: Any,
    ) -> None:
        if n < 1:
            raise UserError(f"synthetic dataset size must be at least 1, got {n}")
        self.config = SceneConfig(size=size, bit_depth=bit_depth, **scene_kwargs)
        super().__init__(
            train=train,
            crop_size=crop_size or min(self.config.size),
            norm=norm,
            pad_multiple=pad_multiple,
            augment=augment,
        )
        self.n = int(n)
        self.seed = int(seed)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None
        self.stems = [f"syn_{i:06d}" for i in range(self.n)]
        if copy_paste and self.train:
            bank = CopyPasteBank()
            for frame, mask in self.raw_items():
                bank.add(frame, mask)
            self.augment.bank = bank

    def __len__(self) -> int:
        return self.n

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str, str]:
        if self._cache is not None and index in self._cache:
            frame, mask = self._cache[index]
        else:
            scene = generate_scene(index, self.seed, self.config)
            frame, mask = scene.image, scene.mask
            if self._cache is not None:
                self._cache[index] = (frame, mask)
        return frame, mask, self.stems[index], f"synthetic:{self.seed}:{index}"

    def _default_norm(self) -> dict[str, float]:
        idx = np.unique(np.linspace(0, self.n - 1, min(self.n, 64)).round().astype(int))
        return compute_norm_stats([self.load(int(i))[0] for i in idx])


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch items: stack ``image``/``mask``; concatenate per-target tensors to ``(T, ...)`` with
    ``box_batch`` ``(T,)`` (the index of each target's image); keep ``stem``/``path``/``orig_size`` as lists.

    Images of one batch must share a size (training crops do; test items of different sizes need batch 1 or
    a size-grouping sampler).
    """
    if not items:
        raise ValueError("collate: empty batch")
    shapes = {tuple(it["image"].shape) for it in items}
    if len(shapes) > 1:
        raise UserError(
            f"cannot batch images of different sizes {sorted(shapes)}; use batch size 1 for these"
        )
    out: dict[str, Any] = {
        "image": torch.stack([it["image"] for it in items]),
        "mask": torch.stack([it["mask"] for it in items]),
    }
    for key in ("boxes", "areas", "centroids", "contrasts"):
        if all(key in it for it in items):
            out[key] = torch.cat([it[key] for it in items])
    out["box_batch"] = torch.cat(
        [torch.full((len(it["areas"]),), b, dtype=torch.long) for b, it in enumerate(items)]
    )
    for key in ("stem", "path", "orig_size"):
        out[key] = [it[key] for it in items]
    return out


def list_dataset(root: str | os.PathLike, preset: str | None = None) -> dict[str, int]:
    """Split sizes of a dataset folder without reading any image (``{"trainval": n, "test": m}``)."""
    lay = detect_layout(root, preset)
    out = {}
    for split in ("trainval", "test"):
        if (lay.train_file if split == "trainval" else lay.test_file) is not None:
            out[split] = len(resolve_split(root, split, layout=lay).stems)
    return out


__all__ = ["FrameDataset", "IRSTDDataset", "SyntheticIRDataset", "collate", "list_dataset"]
