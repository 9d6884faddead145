"""Conventional losses of the paper's Table 3 (spec section 7, "Other losses"): BCE, soft IoU, Dice.

Each is applied to every output and summed with equal weight, like CSA; ``flags`` are accepted and ignored.
Soft IoU and Dice are per image and averaged over the batch, with the usual IRSTD smoothing of 1 (so an image
without targets and without prediction costs ~0 and false alarms on it still get a gradient).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from irsam2.losses.base import SupervisedLoss
from irsam2.losses.schedule import LossFlags
from irsam2.losses.target_centric import TargetCentricLoss


class BCELoss(SupervisedLoss):
    """Binary cross-entropy on the logits, mean over pixels (Table 3, "BCE loss" [36])."""

    def total(self, logits: torch.Tensor, mask: torch.Tensor, ctx: Any, flags: LossFlags) -> torch.Tensor:
        # K outputs of equal size: the sum of their means is K times the mean over all of them.
        return F.binary_cross_entropy_with_logits(logits, mask.expand_as(logits)) * logits.shape[0]


class SoftIoULoss(SupervisedLoss):
    """``1 - mean_b (I + s) / (P + G - I + s)`` with p = sigmoid(logit) (Table 3, "IoU loss" [37])."""

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        self.smooth = float(smooth)

    def total(self, logits: torch.Tensor, mask: torch.Tensor, ctx: Any, flags: LossFlags) -> torch.Tensor:
        p = torch.sigmoid(logits).flatten(-3)  # (K, B, HW)
        g = mask.flatten(-3)
        inter = (p * g).sum(-1)
        union = p.sum(-1) + g.sum(-1) - inter
        return (1.0 - ((inter + self.smooth) / (union + self.smooth)).mean(-1)).sum()


class DiceLoss(SupervisedLoss):
    """``1 - mean_b (2 I + s) / (P + G + s)`` (Table 3 family, "Dice" [38])."""

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        self.smooth = float(smooth)

    def total(self, logits: torch.Tensor, mask: torch.Tensor, ctx: Any, flags: LossFlags) -> torch.Tensor:
        p = torch.sigmoid(logits).flatten(-3)  # (K, B, HW)
        g = mask.flatten(-3)
        inter = (p * g).sum(-1)
        return (1.0 - ((2.0 * inter + self.smooth) / (p.sum(-1) + g.sum(-1) + self.smooth)).mean(-1)).sum()


class BCEIoULoss(SupervisedLoss):
    """``BCE(pos_weight) + soft IoU`` per output: the ``scratch`` recipe's loss (docs/results.md, issue 11).

    Soft IoU and SLS alone are region losses: their gradient on a background pixel is ``I / U^2`` (SLS) or
    ``(I + s) / (U + s)^2`` (soft IoU), which vanishes on a crop without a target and on a frame that is
    already flooded (U ~ H W). A network trained from scratch with them alone learns targets but never learns
    to hold whole textured frames negative, and at test time image-global terms (the up-blocks' pooled
    context) flood some frames. The pixel-wise BCE term charges every false-positive pixel on its own, so
    the flooded state has a large gradient; ``pos_weight`` (> 1) offsets the ~1:1000 class balance of
    small targets.

    ``w_target`` > 0 adds the paper's target-centric term ``L_aux`` (spec section 7, Eq. of the TDA loss;
    :class:`irsam2.losses.target_centric.TargetCentricLoss`) with that weight: an IoU per target, averaged per
    image, its importance raised for small and dim targets. Soft IoU is one ratio per image, so a 1-pixel
    target beside a 40-pixel one barely moves it; the per-target term charges each missed target on its own.
    """

    uses_target_stats = True  # used only when w_target > 0

    def __init__(
        self,
        pos_weight: float = 1.0,
        smooth: float = 1.0,
        w_target: float = 0.0,
        area_mean: float | None = None,
        contrast_mean: float | None = None,
    ) -> None:
        super().__init__()
        if not pos_weight > 0:
            raise ValueError(f"pos_weight must be > 0, got {pos_weight!r}")
        if not w_target >= 0:
            raise ValueError(f"w_target must be >= 0, got {w_target!r}")
        self.pos_weight = float(pos_weight)
        self.smooth = float(smooth)
        self.w_target = float(w_target)
        self.target = TargetCentricLoss(area_mean, contrast_mean) if self.w_target > 0 else None

    def prepare(self, like: torch.Tensor, batch: Any, flags: LossFlags) -> Any:
        return None if self.target is None else self.target.prepare_targets(like, batch)

    def total(self, logits: torch.Tensor, mask: torch.Tensor, ctx: Any, flags: LossFlags) -> torch.Tensor:
        target = mask.expand_as(logits)
        pw = torch.tensor(self.pos_weight, device=logits.device, dtype=logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw) * logits.shape[0]
        p = torch.sigmoid(logits).flatten(-3)
        g = mask.flatten(-3)
        inter = (p * g).sum(-1)
        union = p.sum(-1) + g.sum(-1) - inter
        iou = (1.0 - ((inter + self.smooth) / (union + self.smooth)).mean(-1)).sum()
        if self.target is None:
            return bce + iou
        return bce + iou + self.w_target * self.target.aux(p.view_as(logits), mask, ctx)
