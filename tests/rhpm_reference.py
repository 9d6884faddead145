"""Shared by the RHPM and paper-variant tests: the paper's RHPM equations (section 2.2.3) written out with
plain loops, and a real-looking infrared frame."""

from __future__ import annotations

import math

import torch


def brute_paper(x: torch.Tensor, lam: float, norm: str = "paper") -> tuple[torch.Tensor, list[int], float]:
    """The paper's equations with plain loops over pixels and radii, in float64.

    Returns (|iFFT(F * M)| as (B, C, h, w), r_cut per sample, the smallest gap |E_low(r)/E_total - lam| over
    the radii the search looked at: a test asserts it is no tie in floating point).
    """
    b, c, h, w = x.shape
    spec = torch.fft.fftshift(torch.fft.fft2(x.double(), norm="ortho"), dim=(-2, -1))
    power = (spec.real.square() + spec.imag.square()).mean(dim=1)  # E(u, v), averaged over channels
    cu, cv = h // 2, w // 2
    r_max = max(1, min(h, w) // 2)  # integer radii with 1 <= r <= min(H, W)/2
    outs, cuts, gap = [], [], math.inf
    for i in range(b):
        e = power[i].tolist()
        by_d2: dict[int, float] = {}  # energy per squared distance, summed pixel by pixel
        total = 0.0
        for u in range(h):
            for v in range(w):
                d2 = (u - cu) ** 2 + (v - cv) ** 2
                by_d2[d2] = by_d2.get(d2, 0.0) + e[u][v]
                total += e[u][v]
        r_cut = r_max  # no radius in range reaches lambda: the bound
        for r in range(1, r_max + 1):
            e_low = sum(val for d2, val in by_d2.items() if d2 < r * r)
            gap = min(gap, abs(e_low / total - lam))
            if e_low >= lam * total:
                r_cut = r
                break
        m = torch.ones(h, w, dtype=torch.float64)
        for u in range(h):
            for v in range(w):
                if (u - cu) ** 2 + (v - cv) ** 2 < r_cut**2:
                    m[u, v] = 0.0
        filtered = torch.fft.ifftshift(spec[i] * m, dim=(-2, -1))
        outs.append(torch.fft.ifft2(filtered, norm="ortho" if norm == "paper" else "backward").abs())
        cuts.append(r_cut)
    return torch.stack(outs).float(), cuts, gap


def scene(h: int, w: int, index: int) -> torch.Tensor:
    """A real-looking infrared frame (synthetic clutter and targets), normalised, as (1, 1, h, w)."""
    from irsam2.data.synthetic import SceneConfig, generate_scene

    img = torch.from_numpy(generate_scene(index, seed=3, config=SceneConfig(size=(h, w))).image)
    return ((img - img.mean()) / img.std().clamp_min(1e-6))[None, None]
