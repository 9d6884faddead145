"""Training crops that never cut a target (``data.whole_targets``, the ``scratch`` recipe; issue 11).

A target cut by a crop edge teaches the network that a blob at an image edge is a target; at test time the
frame edge then holds false alarms (docs/results.md, issue 11, session 9). Both pipelines are checked:
the CPU one (:class:`~irsam2.data.TrainAugment`) and the batched one
(:class:`~irsam2.data.on_device.DeviceTrainSet`).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from irsam2.data import FrameDataset, TrainAugment
from irsam2.data.on_device import DeviceTrainSet
from irsam2.data.transforms import cuts_a_box, target_boxes
from irsam2.engine.sync_check import NoHostSync

NORM = {"mean": 0.25, "std": 0.3}


def _mask(seed: int, size: int = 96, n: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), bool)
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(2, 9, 2))
        y, x = int(rng.integers(0, size - h)), int(rng.integers(0, size - w))
        mask[y : y + h, x : x + w] = True
    return mask


class _Frames(FrameDataset):
    def __init__(self, augment: TrainAugment, n: int = 4) -> None:
        super().__init__(train=True, crop_size=augment.crop_size, norm=NORM, augment=augment)
        self.masks = [_mask(s) for s in range(n)]

    def __len__(self) -> int:
        return len(self.masks)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, str, str]:
        m = self.masks[index]
        return np.where(m, 0.9, 0.2).astype(np.float32), m, f"f{index}", f"memory:{index}"


def test_target_boxes_and_cuts() -> None:
    mask = np.zeros((20, 20), bool)
    mask[2:5, 3:7] = True  # rows 2-4, cols 3-6
    mask[10, 10] = mask[11, 11] = True  # one 8-connected target
    boxes = target_boxes(mask)
    assert sorted(map(tuple, boxes.tolist())) == [(2, 3, 4, 6), (10, 10, 11, 11)]
    assert not cuts_a_box(boxes, 0, 0, 8)  # holds the first whole, misses the second
    assert cuts_a_box(boxes, 3, 0, 8)  # top edge through the first
    assert cuts_a_box(boxes, 0, 5, 8)  # left edge through the first
    assert cuts_a_box(boxes, 11, 4, 8)  # top edge between the two pixels of the second
    assert not cuts_a_box(boxes, 12, 12, 8) and not cuts_a_box(target_boxes(np.zeros((9, 9), bool)), 0, 0, 4)


@pytest.mark.parametrize("target_crop_p", [0.0, 1.0])
def test_cpu_crops_never_cut_a_target(target_crop_p: float) -> None:
    c, cut, cut_plain, held = 24, 0, 0, 0
    for seed in range(300):
        mask = _mask(seed)
        boxes = target_boxes(mask)
        for whole in (True, False):
            aug = TrainAugment(c, target_crop_p=target_crop_p, whole_targets=whole)
            y, x = aug._crop_origin(mask, np.random.default_rng(seed))
            if whole:
                cut += cuts_a_box(boxes, y, x, c)
                held += bool(mask[y : y + c, x : x + c].any())
            else:
                cut_plain += cuts_a_box(boxes, y, x, c)
    assert cut == 0
    assert cut_plain > 30  # without the option, crops do cut targets: the check above can fail
    if target_crop_p == 1.0:
        assert held == 300  # target crops still hold a (whole) target


def _area_per_label(dev: DeviceTrainSet) -> torch.Tensor:
    """(N, K) pixels of each target in its whole frame."""
    lab = dev.labels.long()
    return torch.stack([(lab == j + 1).sum((1, 2)) for j in range(dev.k)], dim=1)


@pytest.mark.parametrize("target_crop_p", [0.0, 0.5])
def test_device_crops_never_cut_a_target(target_crop_p: float) -> None:
    n = 600
    idx = torch.arange(n) % 4
    cut = {}
    for whole in (True, False):
        aug = TrainAugment(24, scale=(1.0, 1.0), blur_p=0.0, target_crop_p=target_crop_p, whole_targets=whole)
        dev = DeviceTrainSet(_Frames(aug), "cpu")
        full = _area_per_label(dev)[idx]  # (n, K)
        out = dev.batch(idx, dev.generator(3))
        areas = out["areas"].view(n, dev.k)
        # without zoom a target's area in the crop is 0 (outside) or its whole area (inside); else it is cut
        cut[whole] = int(((areas > 0) & (areas < full)).sum())
    assert cut[True] == 0
    assert cut[False] > 30


def test_device_whole_target_crops_have_no_host_sync() -> None:
    aug = TrainAugment(24, target_crop_p=0.5, whole_targets=True)
    dev = DeviceTrainSet(_Frames(aug), "cpu")
    with NoHostSync() as mode:
        batch = dev.batch(torch.arange(8) % 4, dev.generator(0))
    assert mode.seen > 50 and batch["image"].shape == (8, 3, 24, 24)
