"""Contrast Query Generator (paper section 2.2.2, spec section 4)."""

from __future__ import annotations

import math

import torch
from torch import nn

from irsam2.models.cqg import ContrastQueryGenerator, sine_embedding


def _hand_pe(x: float, y: float, dim: int = 256) -> torch.Tensor:
    """Spec 4 step 4 written out: 128 per axis, temperature 10000, 2*pi, sin even / cos odd, [pe_y, pe_x]."""
    half = dim // 2

    def axis(v: float) -> list[float]:
        out = []
        for i in range(half):
            a = v * 2 * math.pi / 10000 ** (2 * (i // 2) / half)
            out.append(math.sin(a) if i % 2 == 0 else math.cos(a))
        return out

    return torch.tensor(axis(y) + axis(x))


def test_sine_embedding_matches_hand_formula():
    pts = torch.tensor([[0.0, 0.0], [0.25, 0.5], [0.9375, 0.125]])
    pe = sine_embedding(pts, 256)
    for (x, y), row in zip(pts.tolist(), pe):
        torch.testing.assert_close(row, _hand_pe(x, y), atol=1e-5, rtol=1e-5)


def test_topk_aggregation_on_planted_energy_map():
    cqg = ContrastQueryGenerator(dim=256, topk=3).eval()
    cqg.rhpm = nn.Identity()  # plant the energy map directly: S = channel mean of F_in
    f_in = torch.zeros(2, 256, 8, 16)
    planted = {(1, 2): 5.0, (6, 15): 4.0, (3, 9): 3.0}  # (row, col): energy
    for (row, col), v in planted.items():
        f_in[0, :, row, col] = v
    f_in[1, :, 4, 4] = 2.0  # sample 1: one spike and zeros elsewhere (ties at 0 are excluded below)
    f_in[1, :, 0, 7] = 1.0
    f_in[1, :, 7, 0] = 0.5
    with torch.no_grad():
        t_agg = cqg.aggregate(f_in)
        q = cqg(f_in)

    s = torch.tensor(list(planted.values()))
    alpha = torch.softmax(s, 0)
    expected0 = sum(a * _hand_pe(col / 16, row / 8) for a, (row, col) in zip(alpha, planted))
    torch.testing.assert_close(t_agg[0], expected0, atol=1e-5, rtol=1e-5)
    alpha1 = torch.softmax(torch.tensor([2.0, 1.0, 0.5]), 0)
    pts1 = [(4, 4), (0, 7), (7, 0)]
    expected1 = sum(a * _hand_pe(col / 16, row / 8) for a, (row, col) in zip(alpha1, pts1))
    torch.testing.assert_close(t_agg[1], expected1, atol=1e-5, rtol=1e-5)
    # Q = q_task + refine(T_agg), one token per sample
    with torch.no_grad():
        torch.testing.assert_close(q, (cqg.q_task.weight + cqg.refine(t_agg)).unsqueeze(1))
    assert q.shape == (2, 1, 256)


def test_high_pass_filter_finds_a_planted_target():
    """Through the real RHPM: a point on a smooth bright background is the top energy position."""
    cqg = ContrastQueryGenerator(dim=256, topk=1).eval()
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    f_in = (5.0 + 2.0 * yy + xx).expand(1, 256, 16, 16).clone()
    f_in[0, :, 11, 5] += 3.0
    with torch.no_grad():
        t_agg = cqg.aggregate(f_in)
    torch.testing.assert_close(t_agg[0], _hand_pe(5 / 16, 11 / 16), atol=1e-5, rtol=1e-5)


def test_without_cqg_the_query_is_the_learned_token():
    cqg = ContrastQueryGenerator(dim=256, enabled=False)
    assert not hasattr(cqg, "refine") and not hasattr(cqg, "rhpm")
    a, b = cqg(torch.randn(3, 256, 4, 4)), cqg(torch.zeros(3, 256, 4, 4))
    torch.testing.assert_close(a, cqg.q_task.weight.expand(3, 1, 256))
    torch.testing.assert_close(a, b)
    assert sum(p.numel() for p in cqg.parameters()) == 256


def test_k_larger_than_the_map_and_paper_refine():
    cqg = ContrastQueryGenerator(dim=256, topk=10, refine="mlp")
    q = cqg(torch.randn(2, 256, 2, 2))  # 4 positions < K
    assert q.shape == (2, 1, 256) and torch.isfinite(q).all()
    assert isinstance(cqg.refine[0], nn.LayerNorm)
