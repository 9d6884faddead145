"""SLS: the scale and location sensitive loss (Liu et al., CVPR 2024), the primary term of CSA.

Paper section 2.2.4 ("Primary Supervision", L_SLS = L_S + L_L); formulas as in spec section 7. Per image, with
p = sigmoid(logit) and g the mask:

- P = sum p, G = sum g, I = sum p g, IoU = I / (P + G - I + eps);
- scale weight alpha = (min(P, G) + v + eps) / (max(P, G) + v + eps), v = ((P - G) / 2)^2
  (the eps, not in the spec's formula, only keeps P = G = 0 from giving 0 / 0; it is 1e-6 pixels);
- scale loss ``1 - mean_b(alpha IoU)`` (``1 - mean_b(IoU)`` when ``flags.alpha`` is off: the warm-up loss);
- location term: x_hat = mean over pixels of p * col / W, y_hat = mean of p * row / H (divided by H W, not
  by sum p), d = sqrt(x_hat^2 + y_hat^2 + 1e-8), theta = arctan(y_hat / (x_hat + 1e-8)) (computed as atan2:
  the same value for these non-negative coordinates, with a stable gradient); the same for g;
  ``L_loc = 1 - min(d_p, d_g) / (max(d_p, d_g) + 1e-8) + (4 / pi^2) (theta_p - theta_g)^2``, mean over the
  batch (``target_weighting=True``: HDNet's variant, images weighted by beta_b = G_b / sum G; off in the
  release).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from irsam2.losses.base import SupervisedLoss
from irsam2.losses.schedule import LossFlags


def scale_terms(
    probs: torch.Tensor, mask: torch.Tensor, eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image IoU and scale weight alpha, each ``(..., B)``, for probabilities ``(..., B, 1, H, W)``."""
    p = probs.flatten(-3)
    g = mask.flatten(-3)
    big_p, big_g = p.sum(-1), g.sum(-1)
    inter = (p * g).sum(-1)
    iou = inter / (big_p + big_g - inter + eps)
    v = ((big_p - big_g) / 2.0) ** 2
    alpha = (torch.minimum(big_p, big_g) + v + eps) / (torch.maximum(big_p, big_g) + v + eps)
    return iou, alpha


def polar_centre(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(d, theta) per image of the reference's centre (x_hat, y_hat) of ``maps`` ``(..., B, 1, H, W)``."""
    h, w = maps.shape[-2:]
    m = maps[..., 0, :, :]
    cols = torch.arange(w, device=maps.device, dtype=maps.dtype) / w
    rows = torch.arange(h, device=maps.device, dtype=maps.dtype) / h
    # Weighted sums as matrix-vector products (no coordinate grid; strided reductions are slow on CPU).
    x_hat = (m @ cols).sum(-1) / (h * w)
    y_hat = (rows @ m).sum(-1) / (h * w)
    d = torch.sqrt(x_hat * x_hat + y_hat * y_hat + 1e-8)
    theta = torch.atan2(y_hat, x_hat + 1e-8)
    return d, theta


def location_term(probs: torch.Tensor, mask: torch.Tensor, target_weighting: bool = False) -> torch.Tensor:
    """The polar location term L_L of SLS (mean over the batch, or beta-weighted), summed over any leading
    output dimension of ``probs`` ``(..., B, 1, H, W)``; ``mask`` is ``(B, 1, H, W)``."""
    d_p, t_p = polar_centre(probs)
    d_g, t_g = polar_centre(mask)
    per_image = 1.0 - torch.minimum(d_p, d_g) / (torch.maximum(d_p, d_g) + 1e-8)
    per_image = per_image + (4.0 / math.pi**2) * (t_p - t_g) ** 2
    if not target_weighting:
        return per_image.mean(-1).sum()
    big_g = mask.flatten(-3).sum(-1)
    beta = big_g / big_g.sum().clamp(min=1.0)
    return (beta * per_image).sum()


class SLSLoss(SupervisedLoss):
    """SLS alone (Table 3, "SLS loss" [39]): scale loss (+ location term when ``flags.location``)."""

    def __init__(self, eps: float = 1e-6, target_weighting: bool = False) -> None:
        super().__init__()
        self.eps = float(eps)
        self.target_weighting = bool(target_weighting)

    def sls(self, probs: torch.Tensor, mask: torch.Tensor, flags: LossFlags) -> torch.Tensor:
        """SLS summed over the leading output dimension of ``probs`` ``(K, B, 1, H, W)``."""
        iou, alpha = scale_terms(probs, mask, self.eps)
        loss = (1.0 - ((alpha * iou) if flags.alpha else iou).mean(-1)).sum()
        if flags.location:
            loss = loss + location_term(probs, mask, self.target_weighting)
        return loss

    def total(self, logits: torch.Tensor, mask: torch.Tensor, ctx: Any, flags: LossFlags) -> torch.Tensor:
        return self.sls(torch.sigmoid(logits), mask, flags)
