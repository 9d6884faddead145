"""RHPM (paper section 2.2.3, spec section 6): the vectorised radius search against a brute-force loop, the
normalisation and zeroing switches, and the cascade head's sign property."""

from __future__ import annotations

import math

import pytest
import torch

from irsam2.models.rhpm import RHPM, RHPMHead, _sorted_grid, radial_cutoff, radius_grid, rhpm

SIZES = [(16, 16), (8, 12), (7, 9), (32, 32)]


def _brute_cutoff(x: torch.Tensor, lam: float) -> list[float]:
    """Per sample: loop over the distinct radii of the shifted spectrum, return the first enclosing lam."""
    h, w = x.shape[-2:]
    spec = torch.fft.fftshift(torch.fft.fft2(x.double(), norm="ortho"), dim=(-2, -1))
    power = spec.abs().square().mean(dim=1)  # (B, h, w)
    r = radius_grid(h, w).double()
    radii = sorted(set(r.flatten().tolist()))
    cuts = []
    for b in range(x.shape[0]):
        total = power[b].sum().item()
        for rad in radii:
            if power[b][r <= rad + 1e-12].sum().item() >= lam * total:
                cuts.append(rad)
                break
    return cuts


def _brute_rhpm(x: torch.Tensor, lam: float, zeroing: str) -> torch.Tensor:
    """The spec's recipe step by step on the shifted spectrum, with the loop cutoff."""
    h, w = x.shape[-2:]
    spec = torch.fft.fftshift(torch.fft.fft2(x.double(), norm="ortho"), dim=(-2, -1))
    r = radius_grid(h, w).double()
    out = []
    for b, cut in enumerate(_brute_cutoff(x, lam)):
        zero = (r <= cut + 1e-12) if zeroing == "<=" else (r < cut - 1e-12)
        filtered = spec[b] * (~zero)
        out.append(torch.fft.ifft2(torch.fft.ifftshift(filtered, dim=(-2, -1))).abs())
    return torch.stack(out).float()


@pytest.mark.parametrize("h,w", SIZES)
@pytest.mark.parametrize("lam", [0.1, 0.2, 0.4, 0.9])
def test_vectorised_cutoff_equals_brute_force(h: int, w: int, lam: float):
    g = torch.Generator().manual_seed(h * 100 + w)
    x = torch.randn(5, 4, h, w, generator=g) + torch.rand(5, 1, 1, 1, generator=g) * 3  # varied DC energy
    r, order, r_sorted = _sorted_grid(h, w, x.device)
    power = torch.fft.fft2(x, norm="ortho").abs().square().mean(dim=1).reshape(5, -1)
    cut = radial_cutoff(power, r_sorted, order, lam).squeeze(1)
    torch.testing.assert_close(cut.double(), torch.tensor(_brute_cutoff(x, lam), dtype=torch.float64))
    torch.testing.assert_close(
        radial_cutoff(power, r_sorted, order, lam, count=True).squeeze(1), cut
    )  # export

    # the disc of radius r_cut holds at least lam of the energy; the next smaller radius holds less
    radii = torch.unique(r)
    for b in range(5):
        enclosed = power[b][r <= cut[b]].sum()
        assert enclosed >= lam * power[b].sum() * (1 - 1e-6)
        smaller = radii[radii < cut[b]]
        if len(smaller):
            assert power[b][r <= smaller.max()].sum() < lam * power[b].sum()


@pytest.mark.parametrize("zeroing", ["<=", "<"])
@pytest.mark.parametrize("h,w", [(16, 16), (8, 12), (7, 9)])
def test_rhpm_equals_brute_force_recipe(h: int, w: int, zeroing: str):
    x = torch.randn(3, 2, h, w, generator=torch.Generator().manual_seed(7))
    expected = _brute_rhpm(x, 0.3, zeroing)
    torch.testing.assert_close(rhpm(x, 0.3, "official", zeroing), expected, atol=1e-5, rtol=1e-4)


def test_official_normalisation_scales_by_inverse_sqrt_hw():
    x = torch.randn(2, 3, 16, 24)
    official, paper = rhpm(x, 0.2, "official"), rhpm(x, 0.2, "paper")
    torch.testing.assert_close(official * math.sqrt(16 * 24), paper, atol=1e-5, rtol=1e-5)
    assert RHPM(0.2, "paper")(x).shape == x.shape


def test_zeroing_switch_and_central_ties():
    # for even sizes the four central bins tie at the smallest radius
    r = radius_grid(8, 8)
    assert int((r == r.min()).sum()) == 4
    x = torch.randn(2, 1, 8, 8)
    # a tiny lambda puts r_cut at the smallest radius: "<" keeps all, "<=" removes the four central bins
    torch.testing.assert_close(rhpm(x, 1e-9, "paper", "<"), x.abs(), atol=1e-5, rtol=1e-5)
    strict = rhpm(x, 1e-9, "paper", "<=")
    assert not torch.allclose(strict, x.abs(), atol=1e-3)
    torch.testing.assert_close(
        strict, _brute_rhpm(x, 1e-9, "<=") * 8, atol=1e-5, rtol=1e-4
    )  # paper: x sqrt(hw)


def test_rhpm_is_differentiable_and_per_sample():
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    y = rhpm(x, 0.2)
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.no_grad():
        torch.testing.assert_close(rhpm(x[2:3], 0.2), y[2:3])


@pytest.mark.parametrize("input_kind,kernel", [("stem", 3), ("image", 1)])
def test_head_final_logits_have_the_sign_of_p(input_kind: str, kernel: int):
    torch.manual_seed(0)
    head = RHPMHead((0.1, 0.2, 0.4), input_kind, kernel, "official" if kernel == 3 else "paper").eval()
    img = torch.randn(2, 3, 32, 32)
    masks = [torch.randn(2, 1, 32, 32) * 3 for _ in range(3)]
    with torch.no_grad():
        final = head(img, *masks)
        p = head.fusion(torch.cat(masks, dim=1))
        x = head.modulation(img, tuple(masks))
    assert ((x >= 0.5) & (x <= 1)).all()  # sigmoid of a magnitude (float32 saturates at 1)
    torch.testing.assert_close(final, p * x + p)
    assert torch.equal(torch.sign(final), torch.sign(p))
    assert [m.lam for m in head.rhpm] == [0.1, 0.2, 0.4]  # index 0 shallowest (mask0), used last
