"""Shared plumbing of the losses: every output of the model supervised with equal weight (spec section 7).

A loss module is called as ``loss_fn(outputs, batch, flags=None)`` (docs/DESIGN.md "Losses"): ``outputs`` a
tensor or a tuple/list of logits ``(B, 1, H, W)``, ``batch`` the collated dict of ``irsam2.data``.
Subclasses implement ``prepare`` (once per call: work shared by the outputs) and ``total``, which gets the
outputs stacked as ``(K, B, 1, H, W)`` and returns the sum of the K per-output losses: one pass of batched
operations instead of K, which matters on a GPU, where this loss is bound by kernel launches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from irsam2.losses.schedule import ALL_ON, LossFlags


def as_outputs(outputs: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The model's outputs as a non-empty list of ``(B, 1, H, W)`` logits of one shape."""
    outs = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
    if not outs:
        raise ValueError("loss: got no outputs to supervise")
    for i, o in enumerate(outs):
        if not isinstance(o, torch.Tensor) or o.dim() != 4 or o.shape[1] != 1:
            shape = tuple(o.shape) if isinstance(o, torch.Tensor) else type(o).__name__
            raise ValueError(f"loss: output {i} must be logits of shape (B, 1, H, W), got {shape}")
        if o.shape != outs[0].shape:
            raise ValueError(f"loss: output {i} has shape {tuple(o.shape)}, output 0 {tuple(outs[0].shape)}")
    return outs


def get_mask(batch: Mapping[str, Any], like: torch.Tensor) -> torch.Tensor:
    """``batch["mask"]`` as float32 ``(B, 1, H, W)`` on ``like``'s device, without gradient."""
    if "mask" not in batch:
        raise KeyError("loss: the batch has no 'mask' entry (collate it with irsam2.data.collate)")
    mask = torch.as_tensor(batch["mask"])
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    if tuple(mask.shape) != tuple(like.shape):
        raise ValueError(
            f"loss: batch['mask'] has shape {tuple(mask.shape)}, the outputs {tuple(like.shape)}"
        )
    return mask.detach().to(device=like.device, dtype=torch.float32)


class SupervisedLoss(nn.Module):
    """Sum over the outputs of one loss; subclasses compute it for all outputs at once (``total``)."""

    #: whether the module uses the training-split target statistics (area_mean, contrast_mean).
    uses_target_stats = False

    def prepare(self, like: torch.Tensor, batch: Mapping[str, Any], flags: LossFlags) -> Any:
        """Per-call work shared by all outputs (for example the target patches)."""
        return None

    def total(self, logits: torch.Tensor, mask: torch.Tensor, ctx: Any, flags: LossFlags) -> torch.Tensor:
        """Sum over k of the loss of ``logits[k]`` (``(K, B, 1, H, W)``, float32) against ``mask``."""
        raise NotImplementedError

    def forward(
        self,
        outputs: torch.Tensor | Sequence[torch.Tensor],
        batch: Mapping[str, Any],
        flags: LossFlags | None = None,
    ) -> torch.Tensor:
        outs = as_outputs(outputs)
        flags = ALL_ON if flags is None else flags
        mask = get_mask(batch, outs[0])
        ctx = self.prepare(outs[0], batch, flags)
        # Float32 even under autocast; every output gets equal weight.
        stacked = outs[0].float()[None] if len(outs) == 1 else torch.stack([o.float() for o in outs])
        return self.total(stacked, mask, ctx, flags)
