"""RHPM (paper section 2.2.3, spec section 6): the vectorised radius search against a brute-force loop, the
normalisation and zeroing switches, and the cascade head's sign property."""

from __future__ import annotations

import math

import pytest
import torch

from irsam2.models.rhpm import RHPM, RHPMHead, _sorted_grid, radial_cutoff, radius_grid, rhpm, rhpm_keep
from rhpm_reference import brute_paper as _brute_paper
from rhpm_reference import scene as _scene

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


@pytest.mark.parametrize("h,w", [(16, 16), (8, 12), (7, 9)])
def test_rhpm_equals_brute_force_recipe(h: int, w: int):
    x = torch.randn(3, 2, h, w, generator=torch.Generator().manual_seed(7))
    expected = _brute_rhpm(x, 0.3, "<=")
    torch.testing.assert_close(rhpm(x, 0.3, "official", "<="), expected, atol=1e-5, rtol=1e-4)


def test_official_normalisation_scales_by_inverse_sqrt_hw():
    x = torch.randn(2, 3, 16, 24)
    official, paper = rhpm(x, 0.2, "official"), rhpm(x, 0.2, "paper")
    torch.testing.assert_close(official * math.sqrt(16 * 24), paper, atol=1e-5, rtol=1e-5)
    assert RHPM(0.2, "paper")(x).shape == x.shape


def test_zeroing_switch_and_central_ties():
    # for even sizes the four central bins of the release's grid tie at the smallest radius
    r = radius_grid(8, 8)
    assert int((r == r.min()).sum()) == 4
    x = torch.randn(2, 1, 8, 8)
    # a tiny lambda: the paper's rule (pixel radii, r_cut >= 1) removes exactly the DC bin, i.e. the mean
    torch.testing.assert_close(
        rhpm(x, 1e-9, "paper", "<"), (x - x.mean(dim=(-2, -1), keepdim=True)).abs(), atol=1e-5, rtol=1e-5
    )
    # the release's rule puts r_cut at the smallest grid radius and removes the four central bins
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


# ----------------------------------------------------------------------------------------------------
# The paper's rule (zeroing "<", section 2.2.3): pixel radii from (H//2, W//2), integer r_cut in
# [1, min(H, W)/2], M = 0 where d^2 < r_cut^2.


def _zeros_of(cut: int, h: int, w: int) -> int:
    """Number of bins with d^2 < cut^2 around (h//2, w//2)."""
    return sum(1 for u in range(h) for v in range(w) if (u - h // 2) ** 2 + (v - w // 2) ** 2 < cut**2)


PAPER_SIZES = [(64, 64), (128, 128), (256, 256), (63, 63), (65, 97), (97, 64), (7, 9)]


@pytest.mark.parametrize("h,w", PAPER_SIZES)
@pytest.mark.parametrize("kind", ["random", "scene"])
def test_paper_rhpm_equals_the_equations(h: int, w: int, kind: str):
    g = torch.Generator().manual_seed(h * 1000 + w)
    if kind == "random":
        x = torch.randn(2, 3, h, w, generator=g) + torch.rand(2, 1, 1, 1, generator=g) * 2
    elif h >= 16 and w >= 16:
        x = torch.cat([_scene(h, w, 0), _scene(h, w, 1)])
    else:
        pytest.skip("the scene generator needs 16 px or more")
    for lam in (0.1, 0.2, 0.4):
        expected, cuts, gap = _brute_paper(x, lam)
        assert gap > 1e-5, "test data too close to a tie in floating point"
        keep = rhpm_keep(x, lam, "<")
        assert (keep[:, 0, 0, 0] == 0).all()  # the DC bin (unshifted index 0, 0) always goes
        assert [int((keep[i] == 0).sum()) for i in range(2)] == [_zeros_of(c, h, w) for c in cuts]
        out = rhpm(x, lam, "paper", "<")
        scale = float(expected.abs().max())
        torch.testing.assert_close(out, expected, atol=1e-5 * scale, rtol=1e-4)
        assert (out - x.abs()).abs().amax() > 1e-3 * scale  # the stage changes its input
        # the official normalisation only scales the paper rule's output
        torch.testing.assert_close(
            rhpm(x, lam, "official", "<") * math.sqrt(h * w), out, atol=1e-4 * scale, rtol=1e-4
        )


def test_paper_cutoff_is_the_bound_when_no_disc_reaches_lambda():
    # a checkerboard puts the energy at the Nyquist corner: no disc of radius <= min(H, W)/2 holds 40 %
    u = torch.arange(16)
    x = ((-1.0) ** (u[:, None] + u[None, :]))[None, None] + 0.01 * torch.randn(1, 1, 16, 16)
    expected, cuts, gap = _brute_paper(x, 0.4)
    assert cuts == [8] and gap > 1e-5
    assert int((rhpm_keep(x, 0.4, "<") == 0).sum()) == _zeros_of(8, 16, 16)
    torch.testing.assert_close(rhpm(x, 0.4, "paper", "<"), expected, atol=1e-5, rtol=1e-4)


def test_pixel_rings_are_exact():
    from irsam2.models.rhpm import pixel_ring_grid

    for h, w in [(8, 8), (7, 9), (256, 256), (511, 1024)]:
        ring = pixel_ring_grid(h, w).to(torch.int64)
        d2 = (torch.arange(h)[:, None] - h // 2) ** 2 + (torch.arange(w)[None, :] - w // 2) ** 2
        assert ((ring - 1) ** 2 <= d2).all() and (d2 < ring**2).all()  # the smallest integer r with d < r
        assert ring[h // 2, w // 2] == 1  # the spectral origin is in ring 1: r_cut >= 1 removes it


def test_paper_rhpm_has_no_host_sync_and_a_gradient():
    x = torch.randn(3, 2, 32, 32, requires_grad=True)
    y = rhpm(x, 0.2, "paper", "<")
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with torch.no_grad():
        torch.testing.assert_close(rhpm(x[1:2], 0.2, "paper", "<"), y[1:2])  # per sample
    if torch.cuda.is_available():  # no .item()/nonzero: the filter runs without a device-to-host sync
        xc = x.detach().cuda()
        rhpm(xc, 0.2, "paper", "<")  # warm the grid cache
        torch.cuda.set_sync_debug_mode("error")
        try:
            rhpm(xc, 0.2, "paper", "<")
        finally:
            torch.cuda.set_sync_debug_mode("default")


def test_paper_head_gates_with_the_mask_probability():
    torch.manual_seed(0)
    head = RHPMHead((0.1, 0.2, 0.4), "image", 1, "paper", "<").eval()
    img = torch.randn(2, 3, 32, 32)
    masks = tuple(torch.randn(2, 1, 32, 32) * 4 for _ in range(3))
    with torch.no_grad():
        x = img.mean(dim=1, keepdim=True)
        for i, lam in ((2, 0.4), (1, 0.2), (0, 0.1)):
            x = rhpm(x * torch.sigmoid(masks[i]) + x, lam, "paper", "<")
        torch.testing.assert_close(head.modulation(img, masks), torch.sigmoid(x))
        # very negative logits close the gate (probability ~0): the cascade sees the image itself; raw logits
        # would have fed it -29 x the image, which RHPM (homogeneous) scales by 29
        closed = tuple(torch.full((2, 1, 32, 32), -30.0) for _ in range(3))
        x = img.mean(dim=1, keepdim=True)
        for lam in (0.4, 0.2, 0.1):
            x = rhpm(x, lam, "paper", "<")
        torch.testing.assert_close(head.modulation(img, closed), torch.sigmoid(x))
