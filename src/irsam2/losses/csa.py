"""CSA: the contrast and shape-aware adaptive loss, ``L_CSA = L_SLS + w_aux * L_aux``.

Paper section 2.2.4 ("Contrast and Shape-Aware Adaptive Loss"); spec section 7. Applied to each output of the
model and summed with equal weight. ``flags`` (``LossFlags``, from ``LossSchedule``) select the release's
schedule: plain soft IoU during warm-up, then alpha-weighted IoU, then, once the gate opens, also the location
term and ``w_aux`` x the target-centric auxiliary loss. ``flags=None`` is the full CSA.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from irsam2.losses.base import SupervisedLoss
from irsam2.losses.schedule import LossFlags
from irsam2.losses.sls import SLSLoss
from irsam2.losses.target_centric import TargetCentricLoss
from irsam2.utils import UserError


class CSALoss(SupervisedLoss):
    """SLS + ``w_aux`` x target-centric auxiliary loss (w_aux = 0.2, the paper's Table 4 choice)."""

    uses_target_stats = True

    def __init__(
        self,
        w_aux: float = 0.2,
        area_mean: float | None = None,
        contrast_mean: float | None = None,
        patch_size: int = 48,
        margin_min: int = 2,
        margin_max: int = 5,
        eps: float = 1e-6,
        target_weighting: bool = False,
    ) -> None:
        super().__init__()
        w_aux = float(w_aux)
        if not w_aux >= 0:
            raise UserError(f"csa loss: w_aux must be >= 0, got {w_aux}")
        self.w_aux = w_aux
        self.sls_loss = SLSLoss(eps=eps, target_weighting=target_weighting)
        self.aux_loss = TargetCentricLoss(area_mean, contrast_mean, patch_size, margin_min, margin_max, eps)

    def prepare(self, like: torch.Tensor, batch: Mapping[str, Any], flags: LossFlags) -> Any:
        # The patches (and their random margins) are only drawn when the auxiliary term is on.
        return self.aux_loss.prepare_targets(like, batch) if flags.aux and self.w_aux > 0 else None

    def total(self, logits: torch.Tensor, mask: torch.Tensor, ctx: Any, flags: LossFlags) -> torch.Tensor:
        probs = torch.sigmoid(logits)
        loss = self.sls_loss.sls(probs, mask, flags)
        if ctx is not None:
            loss = loss + self.w_aux * self.aux_loss.aux(probs, mask, ctx)
        return loss
