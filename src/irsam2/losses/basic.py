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

    ``w_hard`` > 0 adds a hard-negative term (online hard example mining, Shrivastava et al., CVPR 2016, on
    pixels): per frame, the mean BCE of its ``hard_fraction`` highest-scoring background pixels, counting
    only pixels more than ``HARD_GUARD`` px from every target (a target's own rim belongs to its detection,
    not to a false alarm). The mean BCE over ~10^4 background pixels per frame leaves an isolated
    false alarm (a hot pixel, a glint speck: the field's Fa) a gradient of ~10^-4; this term gives the
    worst few of them the weight of a target.
    """

    uses_target_stats = True  # used only when w_target > 0
    HARD_GUARD = 2  # px: background pixels this close to a target are left out of the hard-negative term

    def __init__(
        self,
        pos_weight: float = 1.0,
        smooth: float = 1.0,
        w_target: float = 0.0,
        w_hard: float = 0.0,
        hard_fraction: float = 0.005,
        area_mean: float | None = None,
        contrast_mean: float | None = None,
    ) -> None:
        super().__init__()
        if not pos_weight > 0:
            raise ValueError(f"pos_weight must be > 0, got {pos_weight!r}")
        if not w_target >= 0:
            raise ValueError(f"w_target must be >= 0, got {w_target!r}")
        if not w_hard >= 0:
            raise ValueError(f"w_hard must be >= 0, got {w_hard!r}")
        if not 0 < hard_fraction <= 1:
            raise ValueError(f"hard_fraction must be in (0, 1], got {hard_fraction!r}")
        self.pos_weight = float(pos_weight)
        self.smooth = float(smooth)
        self.w_target = float(w_target)
        self.w_hard = float(w_hard)
        self.hard_fraction = float(hard_fraction)
        self.target = TargetCentricLoss(area_mean, contrast_mean) if self.w_target > 0 else None

    def hard_negatives(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Sum over outputs of the batch mean of each frame's top-k background BCE (k from the frame size)."""
        g = self.HARD_GUARD
        near = F.max_pool2d(mask.float(), 2 * g + 1, stride=1, padding=g) > 0  # (B, 1, H, W)
        # -inf out of the ranking: BCE(-inf, 0) = softplus(-inf) = 0 with a zero gradient
        bg = logits.masked_fill(near.expand_as(logits), float("-inf")).flatten(-3)  # (K, B, HW)
        k = max(1, int(self.hard_fraction * bg.shape[-1]))  # from the shape: no host sync
        top = bg.topk(k, dim=-1).values
        return F.softplus(top).mean(dim=(-2, -1)).sum()

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
        loss = bce + iou
        if self.target is not None:
            loss = loss + self.w_target * self.target.aux(p.view_as(logits), mask, ctx)
        if self.w_hard > 0:
            loss = loss + self.w_hard * self.hard_negatives(logits, mask)
        return loss
