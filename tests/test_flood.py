"""The flood of issue 11, in isolation: why a network trained from scratch turned whole frames positive.

Diagnosis (docs/results.md, "Learning from scratch"): the release's warm-up loss (soft IoU, then SLS) is a
region loss. Its gradient on a background pixel is ``I / U^2``: zero on a crop without a target and
vanishing on a frame that is already all positive (U ~ H W). Nothing in training charges a textured frame
for being flooded, and at test time the up-blocks' pooled context (``UP``: ``u + Linear(GAP(skip))``, spec 5)
moves the logits of a whole frame together, so some frames flood. The ``scratch`` recipe adds a pixel-wise
BCE term, whose gradient on a flooded frame is large. These tests hold each link of that chain.
"""

from __future__ import annotations

import torch

from irsam2.losses import LossFlags, build_loss
from irsam2.metrics import SegmentationMetrics
from irsam2.models.decoder import UpBlock

WARMUP = LossFlags(alpha=False, location=False, aux=False)  # the release's first 20 epochs


def _batch(mask: torch.Tensor) -> dict:
    return {"mask": mask, "image": torch.zeros(mask.shape[0], 3, *mask.shape[-2:])}


def _background_grad(name: str, logits: torch.Tensor, mask: torch.Tensor, **kw) -> float:
    logits = logits.clone().requires_grad_(True)
    loss = build_loss(name, **kw)(logits, _batch(mask), WARMUP if name == "sls" else None)
    loss.backward()
    return float(logits.grad[mask == 0].abs().sum())


def test_region_losses_do_not_push_down_a_target_free_crop():
    mask = torch.zeros(1, 1, 32, 32)
    flooded = torch.full((1, 1, 32, 32), 2.0)
    assert _background_grad("sls", flooded, mask) == 0.0  # exactly no gradient
    assert _background_grad("bce_iou", flooded, mask, pos_weight=10.0) > 0.5


def test_a_flooded_frame_costs_bce_iou_but_almost_nothing_to_sls():
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 30:33, 30:33] = 1.0
    flooded = torch.full((1, 1, 64, 64), 2.0)
    sls = _background_grad("sls", flooded, mask)
    bce_iou = _background_grad("bce_iou", flooded, mask, pos_weight=10.0)
    assert sls < 1e-3
    assert bce_iou > 1000 * sls


def test_up_block_pooled_context_moves_every_pixel_together():
    # The global path: a change of the skip map's mean (a textured frame) shifts the up-block's output
    # everywhere, not only where the texture is. The training loss is what must hold that shift down.
    torch.manual_seed(0)
    up = UpBlock(8).eval()
    x = torch.randn(1, 8, 8, 8)
    skip = torch.randn(1, 8, 16, 16)
    with torch.no_grad():
        up.from_skip.weight.mul_(10)
        a = up(x, skip)
        b = up(x, skip + torch.zeros_like(skip).index_fill_(3, torch.tensor([0]), 50.0))  # one column changed
    changed = (a - b).abs().amax(dim=1)[0] > 1e-4
    assert changed.float().mean() > 0.9  # far from the changed column too


def test_validation_counts_flooded_frames():
    m = SegmentationMetrics()
    gt = torch.zeros(32, 32, dtype=torch.bool)
    gt[10:12, 10:12] = True
    m.update(torch.where(gt, 1.0, -1.0), gt, "ok")
    m.update(torch.full((32, 32), 1.0), gt, "flooded")
    edge = torch.full((32, 32), -1.0)
    edge[:3] = 1.0  # 96 / 1024 = 9.4 % positive: not flooded
    m.update(edge, gt, "edge")
    r = m.compute()
    assert r["flooded"] == 1
    assert [p["pred_fraction"] for p in m.per_image] == [4 / 1024, 1.0, 96 / 1024]
