"""The training loader with worker processes and prefetch (issue 12, "data must not be the bottleneck"):
its batches keep the sample contract of docs/DESIGN.md that the in-process loader gives (shapes, dtypes,
per-target boxes/areas/contrasts consistent with the masks), and they reach the device through
``to_device``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine_helpers import tiny
from irsam2.data.targets import components
from irsam2.engine.config import load_config
from irsam2.engine.step import to_device
from irsam2.engine.trainer import Trainer


def _batches(tmp_path: Path, workers: int) -> list[dict]:
    over = tiny(tmp_path / f"w{workers}", **{"data.workers": workers, "data.prefetch": 2})
    over |= {"data.synthetic.num_images": 10, "train.batch_size": 4}  # 8 training, 2 validation
    t = Trainer(load_config("synthetic", over))
    t.setup()
    return [to_device(b, t.device) for b in t._epoch_loader(1, 0)]


def _check_contract(batch: dict, crop: int) -> None:
    b = batch["image"].shape[0]
    assert batch["image"].shape == (b, 3, crop, crop) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (b, 1, crop, crop) and set(batch["mask"].unique().tolist()) <= {0.0, 1.0}
    t = batch["boxes"].shape[0]
    assert (
        batch["boxes"].shape == (t, 4) and batch["areas"].shape == (t,) and batch["contrasts"].shape == (t,)
    )
    assert batch["box_batch"].dtype == torch.long and batch["box_batch"].shape == (t,)
    for i in range(b):
        mask = batch["mask"][i, 0].numpy() > 0.5
        n, _, stats, _ = components(mask)
        sel = (batch["box_batch"] == i).numpy()
        assert sel.sum() == n
        # the per-target areas are those of the mask's 8-connected components, in any order
        assert sorted(batch["areas"][sel].tolist()) == sorted(float(a) for a in stats[:n, 4])
        boxes = batch["boxes"][sel]
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= crop).all() and (boxes[:, 1] < boxes[:, 3]).all()
        assert np.isfinite(batch["contrasts"][sel].numpy()).all() or n == 0


def test_worker_loader_with_prefetch_keeps_the_sample_contract(tmp_path: Path) -> None:
    inproc = _batches(tmp_path, 0)
    workers = _batches(tmp_path, 2)
    assert len(inproc) == len(workers) == 2  # 8 training scenes, batch 4
    for a, b in zip(inproc, workers):
        _check_contract(a, 32)
        _check_contract(b, 32)
        # the same epoch order (the sampler is seeded by (seed, epoch)); augmentation draws may differ
        assert a["stem"] == b["stem"]
    # the same pixel statistics: the same scenes, normalised with the same training-split statistics
    mean0 = torch.cat([x["image"] for x in inproc]).mean()
    mean2 = torch.cat([x["image"] for x in workers]).mean()
    assert abs(float(mean0) - float(mean2)) < 0.5
