"""Contrast Query Generator (CQG), paper section 2.2.2 and spec section 4.

``F_hp = RHPM_0.2(F_in)``; energy map ``S`` = channel mean of ``F_hp``; the Top-K positions ``p_k``
(normalised coordinates x = col / w, y = row / h) and values ``s_k``; ``T_agg = sum_k softmax(s)_k PE(p_k)``
with a 2-D sine embedding; ``Q = q_task + refine(T_agg)``. Everything is batched: one ``topk`` over the
flattened map, no loop.

``refine`` is ``GELU(LN(Linear(T)))`` in the release (``"linear"``) and ``MLP(LN(T))`` in the paper
(``"mlp"``: LayerNorm, Linear, GELU, Linear). With CQG disabled the query is the learned token ``q_task``
alone (the SAM-SPL baseline of the ablation) and neither the filter nor ``refine`` exists.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from irsam2.models.rhpm import RHPM

REFINES = ("linear", "mlp")


def sine_embedding(xy: torch.Tensor, dim: int = 256, temperature: float = 10000.0) -> torch.Tensor:
    """2-D sine positional embedding of normalised points.

    xy: (..., 2) as (x, y) in [0, 1). Returns (..., dim) as ``[pe_y, pe_x]``; each half has ``dim/2`` entries
    with frequency ``temperature ** (2 * (i // 2) / (dim/2))`` for index i, sin on even and cos on odd
    indices, after scaling the coordinates by 2*pi.
    """
    half = dim // 2
    i = torch.arange(half, device=xy.device, dtype=torch.float32)
    freq = temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / half)
    angles = (xy.float() * (2 * math.pi)).unsqueeze(-1) / freq  # (..., 2, half)
    pe = torch.where((i % 2 == 0), angles.sin(), angles.cos())
    return torch.cat([pe[..., 1, :], pe[..., 0, :]], dim=-1)


class ContrastQueryGenerator(nn.Module):
    """Builds the decoder's single query token ``Q`` (B, 1, dim) from ``F_in`` (B, dim, h, w)."""

    def __init__(
        self,
        dim: int = 256,
        topk: int = 10,
        lam: float = 0.2,
        refine: str = "linear",
        enabled: bool = True,
        rhpm_norm: str = "official",
        rhpm_zeroing: str = "<=",
    ) -> None:
        super().__init__()
        self.dim, self.topk, self.enabled = dim, int(topk), bool(enabled)
        if self.enabled:
            if refine not in REFINES:
                raise ValueError(f"cqg_refine must be one of {REFINES}, got {refine!r}")
            self.rhpm = RHPM(lam, rhpm_norm, rhpm_zeroing)
            if refine == "linear":
                self.refine: nn.Module = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim), nn.GELU())
            else:
                self.refine = nn.Sequential(
                    nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim)
                )
        self.q_task = nn.Embedding(1, dim)

    def aggregate(self, f_in: torch.Tensor) -> torch.Tensor:
        """``T_agg`` (B, dim): softmax(s_k)-weighted sine embeddings of the Top-K energy positions."""
        b, _, h, w = f_in.shape
        energy = self.rhpm(f_in).mean(dim=1).reshape(b, h * w)
        k = min(self.topk, h * w)  # tiny inputs have fewer positions than K
        values, idx = energy.topk(k, dim=-1)
        xy = torch.stack(
            [(idx % w).float() / w, torch.div(idx, w, rounding_mode="floor").float() / h], dim=-1
        )
        alpha = values.softmax(dim=-1)
        return (alpha.unsqueeze(-1) * sine_embedding(xy, self.dim)).sum(dim=1)

    def forward(self, f_in: torch.Tensor) -> torch.Tensor:
        q = self.q_task.weight.unsqueeze(0).expand(f_in.shape[0], -1, -1)
        if not self.enabled:
            return q.clone()  # not a view of the parameter (a no_grad view would keep requires_grad)
        return q + self.refine(self.aggregate(f_in).to(q.dtype)).unsqueeze(1)
