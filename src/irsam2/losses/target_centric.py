"""The target-centric auxiliary loss L_aux of CSA, after the TDA loss of Shoji et al. 2025.

Paper section 2.2.4 ("Auxiliary Supervision": p_t, the patch box, L_t and L_aux); spec section 7.

Per ground-truth target t (an 8-connected component; its box comes precomputed from the dataset, so the loss
makes no connected-components call):

- patch = bounding box dilated by d pixels on every side, d uniform in {2, 3, 4, 5} drawn per target,
  clipped to the image; one draw per call, shared by the model's outputs;
- importance ``p_t = 1 + sigmoid(-s_t / s_mean) + sigmoid(-c_t / c_mean)`` (no gradient) from the area s_t
  and the local contrast c_t (``batch["areas"]``, ``batch["contrasts"]``) against the training-split means;
- prediction (probabilities) and mask cropped to the patch and resized to 48 x 48, bilinearly for the
  prediction and nearest for the mask, exactly as ``F.interpolate`` (``align_corners=False`` /
  ``"nearest"``) would resize the crop, but for all targets of the batch in one gather;
- ``I_t = (sum pg + 1e-6) / (sum p + sum g - sum pg + 1e-6)`` clamped to [1e-6, 1];
  ``L_t = -(1 - I_t ** p_t) log I_t``; mean over the targets of an image, then over the images with targets.
  Images without targets contribute nothing; a batch without targets gives 0 (still attached to the graph).
  An optional ``batch["box_valid"]`` ``(T,)`` (bool) marks padding slots (False) that count nowhere: batches
  built on the device (:mod:`irsam2.data.on_device`) carry a fixed number of slots per image so that their
  shapes never depend on the data.
  Because the prediction is resized bilinearly and the mask nearest, even a perfect prediction of a tiny
  target keeps I_t < 1 (a 1-pixel target: L_t ~ 0.8); the minimum is still reached at the perfect prediction.

``area_mean`` / ``contrast_mean`` are the training-split statistics (docs/DESIGN.md, checkpoint key
``target_stats``). When left ``None`` the means of the current batch's targets are used instead, which keeps
p_t in its range but makes it relative to the batch; pass the dataset's values for training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from irsam2.losses.base import SupervisedLoss
from irsam2.losses.schedule import LossFlags
from irsam2.utils import UserError


def importance(
    areas: torch.Tensor,
    contrasts: torch.Tensor,
    area_mean: float | torch.Tensor,
    contrast_mean: float | torch.Tensor,
) -> torch.Tensor:
    """``p_t = 1 + sigmoid(-s_t / s_mean) + sigmoid(-c_t / c_mean)`` in (1, 2): larger if smaller/dimmer."""
    s = areas.detach().float()
    c = contrasts.detach().float()
    # Documented repair: a non-finite statistic (a target without surrounding pixels) counts as average.
    # (a python number or a device tensor as the fill: building a device tensor from a number would copy)
    s = torch.where(torch.isfinite(s), s, area_mean)
    c = torch.where(torch.isfinite(c), c, contrast_mean)
    return 1.0 + torch.sigmoid(-s / area_mean) + torch.sigmoid(-c / contrast_mean)


def draw_margins(
    n: int,
    low: int = 2,
    high: int = 5,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n`` margins uniform in {low, ..., high}, drawn on the CPU (a seed gives the same draw anywhere).

    On a GPU they travel through pinned memory without blocking the host (a pageable copy would sync).
    Inside ``torch.compile`` (``train.compile_loss``) they are drawn on ``device`` itself, so that the
    compiled step holds no host tensor and can be replayed as a CUDA graph: on a CPU that is the same draw,
    on a GPU one from the GPU's generator. ``randint_like`` gives ``randint``'s numbers for a seed and, unlike
    ``randint``, traces with a symbolic ``n`` (the loader's target count; torch 2.11-2.14)."""
    device = torch.device(device)
    if generator is None and torch.compiler.is_compiling():
        return torch.randint_like(torch.empty(n, dtype=torch.int64, device=device), low, high + 1)
    m = torch.randint(low, high + 1, (n,), generator=generator)
    if device.type == "cuda":
        return m.pin_memory().to(device, non_blocking=True)
    return m.to(device)


def patch_boxes(boxes: torch.Tensor, margins: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Integer patches ``(T, 4)`` (x0, y0, x1, y1 exclusive): boxes dilated by ``margins``, clipped.

    Fractional boxes are widened to whole pixels; every patch keeps at least one pixel.
    """
    b = boxes.detach().float()
    m = margins.to(b.device).float()
    x0 = (torch.floor(b[:, 0]) - m).clamp(0, width - 1)
    y0 = (torch.floor(b[:, 1]) - m).clamp(0, height - 1)
    x1 = torch.maximum(torch.ceil(b[:, 2]) + m, x0 + 1).clamp(max=width)
    y1 = torch.maximum(torch.ceil(b[:, 3]) + m, y0 + 1).clamp(max=height)
    return torch.stack([x0, y0, x1, y1], dim=1).long()


def _bilinear_axis(start: torch.Tensor, length: torch.Tensor, size: int):
    """Source indices and weights of ``F.interpolate(mode="bilinear", align_corners=False)``, one axis."""
    scale = length.float() / size  # float32, as torch computes it
    dst = torch.arange(size, device=start.device, dtype=torch.float32)
    src = ((dst[None] + 0.5) * scale[:, None] - 0.5).clamp(min=0.0)
    last = (length - 1)[:, None]
    i0 = torch.minimum(src.floor().long(), last)
    lam = (src - i0.float()).clamp(0.0, 1.0)
    i1 = torch.minimum(i0 + 1, last)
    return start[:, None] + i0, start[:, None] + i1, lam


def _nearest_axis(start: torch.Tensor, length: torch.Tensor, size: int) -> torch.Tensor:
    """Source indices of ``F.interpolate(mode="nearest")`` along one axis."""
    scale = length.float() / size
    dst = torch.arange(size, device=start.device, dtype=torch.float32)
    idx = torch.minimum((dst[None] * scale[:, None]).floor().long(), (length - 1)[:, None])
    return start[:, None] + idx


@dataclass
class PatchIndex:
    """Flat gather indices into a ``(B, H, W)`` map for all targets' ``size x size`` patches."""

    bilinear: torch.Tensor  # (T, 4, S, S): the four neighbours 00, 01, 10, 11
    weights: torch.Tensor  # (T, 4, S, S): their bilinear weights
    nearest: torch.Tensor  # (T, S, S)


def patch_index(
    box_batch: torch.Tensor, patches: torch.Tensor, height: int, width: int, size: int = 48
) -> PatchIndex:
    """Gather indices resizing every patch to ``size x size`` (bilinear and nearest), all targets at once."""
    base = (box_batch.long() * (height * width))[:, None, None]
    x0, y0, x1, y1 = patches.unbind(1)
    r0, r1, ly = _bilinear_axis(y0, y1 - y0, size)
    c0, c1, lx = _bilinear_axis(x0, x1 - x0, size)
    row0, row1 = base + r0[:, :, None] * width, base + r1[:, :, None] * width
    bil = torch.stack(
        [row0 + c0[:, None, :], row0 + c1[:, None, :], row1 + c0[:, None, :], row1 + c1[:, None, :]], 1
    )
    ly, lx = ly[:, :, None], lx[:, None, :]
    wts = torch.stack([(1.0 - ly) * (1.0 - lx), (1.0 - ly) * lx, ly * (1.0 - lx), ly * lx], 1)
    rn = _nearest_axis(y0, y1 - y0, size)
    cn = _nearest_axis(x0, x1 - x0, size)
    near = base + rn[:, :, None] * width + cn[:, None, :]
    return PatchIndex(bil, wts, near)


def _gather(maps: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``maps`` ``(..., B, H, W)`` read at flat ``(B, H, W)`` indices ``idx``: ``(..., *idx.shape)``."""
    lead = maps.shape[:-3]
    flat = maps.reshape(-1, maps.shape[-3:].numel())
    # gather (backward: one scatter-add, no sort, no host sync), the same indices for every leading entry
    vals = flat.gather(1, idx.reshape(1, -1).expand(flat.shape[0], -1))
    return vals.view(*lead, *idx.shape)


def gather_bilinear(maps: torch.Tensor, index: PatchIndex) -> torch.Tensor:
    """Bilinearly resized patches ``(..., T, S, S)`` of ``maps`` ``(..., B, H, W)`` (differentiable)."""
    return (_gather(maps, index.bilinear) * index.weights).sum(-3)


def gather_nearest(maps: torch.Tensor, index: PatchIndex) -> torch.Tensor:
    """Nearest-resized patches ``(..., T, S, S)`` of ``maps`` ``(..., B, H, W)``."""
    return _gather(maps, index.nearest)


def _check_stat(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise UserError(
            f"target-centric loss: {name} (training-split target statistic) must be > 0, got {value}"
        )
    return value


def _batch_mean(x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the finite (and valid) entries (kept > 0; without any, a tiny positive value): no host sync."""
    finite = torch.isfinite(x)
    if valid is not None:
        finite = finite & valid
    total = torch.where(finite, x, torch.zeros_like(x)).sum()
    return (total / finite.sum().clamp(min=1)).clamp(min=1e-6)


@dataclass
class TargetContext:
    index: PatchIndex
    p_t: torch.Tensor  # (T,)
    box_batch: torch.Tensor  # (T,)
    counts: torch.Tensor  # (B,) targets per image
    valid: torch.Tensor | None = None  # (T,) float, 0 for padding slots (batch["box_valid"]); None: all real


class TargetCentricLoss(SupervisedLoss):
    """L_aux alone (Table 3, "TDA loss" [41]); ``flags`` are accepted and ignored (the term is always on)."""

    uses_target_stats = True

    def __init__(
        self,
        area_mean: float | None = None,
        contrast_mean: float | None = None,
        patch_size: int = 48,
        margin_min: int = 2,
        margin_max: int = 5,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.area_mean = _check_stat("area_mean", area_mean)
        self.contrast_mean = _check_stat("contrast_mean", contrast_mean)
        if int(patch_size) < 1:
            raise UserError(f"target-centric loss: patch_size must be >= 1, got {patch_size}")
        if not 0 <= int(margin_min) <= int(margin_max):
            raise UserError(
                f"target-centric loss: need 0 <= margin_min <= margin_max, got {margin_min}, {margin_max}"
            )
        self.patch_size = int(patch_size)
        self.margin_min = int(margin_min)
        self.margin_max = int(margin_max)
        self.eps = float(eps)

    def prepare_targets(self, like: torch.Tensor, batch: Mapping[str, Any]) -> TargetContext:
        """Patches, gather indices and importances for all targets of ``batch`` (shared by the outputs)."""
        for key in ("boxes", "box_batch", "areas", "contrasts"):
            if key not in batch:
                raise KeyError(
                    f"target-centric loss: the batch has no {key!r} entry; it needs the per-target boxes, "
                    "areas and contrasts of irsam2.data.collate"
                )
        bsz, _, h, w = like.shape
        dev = like.device
        boxes = torch.as_tensor(batch["boxes"]).to(dev).reshape(-1, 4)
        box_batch = torch.as_tensor(batch["box_batch"]).to(dev).long().reshape(-1)
        areas = torch.as_tensor(batch["areas"]).to(dev).float().reshape(-1)
        contrasts = torch.as_tensor(batch["contrasts"]).to(dev).float().reshape(-1)
        n = boxes.shape[0]
        if n:
            # checked on the device without reading it back (a CUDA device asserts when the kernel runs)
            in_range = ((box_batch >= 0) & (box_batch < bsz)).all()
            try:
                torch._assert_async(in_range, f"box_batch values out of range for batch {bsz}")
            except RuntimeError as e:
                raise ValueError(f"target-centric loss: {e}") from None
        if not (box_batch.numel() == areas.numel() == contrasts.numel() == n):
            raise ValueError(
                f"target-centric loss: boxes ({n}), box_batch ({box_batch.numel()}), areas ({areas.numel()}) "
                f"and contrasts ({contrasts.numel()}) must have one entry per target"
            )
        valid = None
        if batch.get("box_valid") is not None:
            valid = torch.as_tensor(batch["box_valid"]).to(dev).reshape(-1).bool()
            if valid.numel() != n:
                raise ValueError(
                    f"target-centric loss: box_valid ({valid.numel()}) needs one entry per target ({n})"
                )
        margins = draw_margins(n, self.margin_min, self.margin_max, device=dev)
        patches = patch_boxes(boxes, margins, h, w)
        index = patch_index(box_batch, patches, h, w, self.patch_size)
        # Documented fallback when the training-split statistics are not given: the batch's own means.
        s_mean = _batch_mean(areas, valid) if self.area_mean is None else self.area_mean
        c_mean = _batch_mean(contrasts, valid) if self.contrast_mean is None else self.contrast_mean
        p_t = importance(areas, contrasts, s_mean, c_mean)
        weight = torch.ones_like(areas) if valid is None else valid.float()
        counts = areas.new_zeros(bsz).index_add(0, box_batch, weight)
        return TargetContext(index, p_t, box_batch, counts, None if valid is None else weight)

    def aux(self, probs: torch.Tensor, mask: torch.Tensor, ctx: TargetContext) -> torch.Tensor:
        """L_aux summed over the outputs: probabilities ``(K, B, 1, H, W)`` (or ``(B, 1, H, W)``), mask
        ``(B, 1, H, W)``."""
        pred = gather_bilinear(probs[..., 0, :, :], ctx.index)  # (K, T, S, S)
        gt = gather_nearest(mask[:, 0], ctx.index)  # (T, S, S), the same for every output
        inter = (pred * gt).sum((-2, -1))
        union = pred.sum((-2, -1)) + gt.sum((-2, -1)) - inter
        iou = ((inter + self.eps) / (union + self.eps)).clamp(self.eps, 1.0)
        l_t = -(1.0 - iou.pow(ctx.p_t)) * torch.log(iou)  # (K, T)
        if ctx.valid is not None:
            l_t = l_t * ctx.valid  # padding slots count nowhere (finite: iou is clamped away from 0)
        # Mean over the targets of each image, then over the images that have targets (no host sync).
        sums = l_t.new_zeros(*l_t.shape[:-1], ctx.counts.numel()).index_add(l_t.dim() - 1, ctx.box_batch, l_t)
        per_image = sums / ctx.counts.clamp(min=1.0)
        return per_image.sum() / (ctx.counts > 0).sum().clamp(min=1)

    def prepare(self, like: torch.Tensor, batch: Mapping[str, Any], flags: LossFlags) -> TargetContext:
        return self.prepare_targets(like, batch)

    def total(self, logits: torch.Tensor, mask: torch.Tensor, ctx: Any, flags: LossFlags) -> torch.Tensor:
        return self.aux(torch.sigmoid(logits), mask, ctx)
