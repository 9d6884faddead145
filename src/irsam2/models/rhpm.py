"""Radial High-Pass Modulator (RHPM), paper section 2.2.3 (Eqs. for E, r_cut, M, X_lambda) and spec section 6.

``RHPM_lambda(x)``: 2-D FFT, power spectrum averaged over channels per sample, the smallest radius ``r_cut``
whose disc encloses at least ``lambda`` of the energy, zero the disc, inverse FFT, magnitude. The radius
search is vectorised over the batch: bins are sorted by radius once per spectrum size (cached), the per-sample
energies are accumulated in that order and ``searchsorted`` finds the first position reaching ``lambda *
total``. The radius at that position is ``r_cut`` even when several bins share a radius (ties), because the
enclosed energy of a radius counts the whole ring and every smaller radius ends before that position. No
Python loop over samples and no host synchronisation: shapes depend only on the input's size.

The filter is applied on the unshifted spectrum with an ``ifftshift``-ed radius grid, which is the same as
``fftshift`` -> mask -> ``ifftshift`` without moving the complex data twice.

Switches (spec section 9): ``norm="official"`` takes the forward FFT with ``norm="ortho"`` and the inverse
with the default normalisation (output scaled by 1/sqrt(h*w)); ``norm="paper"`` keeps both orthonormal.

``zeroing="<="`` (official, the release): radii on the normalised grid ``linspace(-1, 1)`` per axis, r_cut
is the smallest grid radius whose disc (radius <= r) holds lambda of the energy, bins with radius <= r_cut
are zeroed.

``zeroing="<"`` (paper, section 2.2.3): the paper's rule as a whole, not only its comparison. Distances are
in pixels from the spectral origin ``(c_u, c_v) = (h//2, w//2)`` of the shifted spectrum; ``E_low(r)`` is the
energy of the bins with distance < r; ``r_cut = argmin r s.t. 1 <= r <= min(h, w)/2, E_low(r) >= lambda
E_total``; ``M = 0`` where ``d^2 < r_cut^2``. Readings (docs/DESIGN.md): r runs over the integers (pixel
radii: over the reals the minimum is not attained, since ``E_low`` steps just above each bin distance), and
when no r up to ``min(h, w)/2`` encloses lambda of the energy, r_cut is that bound, ``max(1,
floor(min(h, w)/2))``. As r >= 1 the DC bin (distance 0) is always removed. On the release's grid with ``<``
the four central bins of an even-sized spectrum tie at the smallest radius and nothing would be zeroed
whenever they hold lambda of the energy; the pixel rule has no such case.
"""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("official", "paper")
ZEROINGS = ("<=", "<")

_GRID_CACHE: dict[tuple[int, int, str, str], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def radius_grid(h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Radius of each bin of a shifted (h, w) spectrum on the release's grid, linspace(-1, 1) per axis."""
    ys = torch.linspace(-1.0, 1.0, h, device=device)
    xs = torch.linspace(-1.0, 1.0, w, device=device)
    return torch.sqrt(ys[:, None] ** 2 + xs[None, :] ** 2)


def pixel_ring_grid(h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Per bin of a shifted (h, w) spectrum, the smallest integer r with ``d < r`` (``floor(d) + 1``), where d
    is the pixel distance from the spectral origin (h//2, w//2); exact integer arithmetic, float32 values.

    ``E_low(r)`` of the paper is the energy of the bins whose ring is <= r, and ``d^2 < r_cut^2`` holds
    exactly when ``ring <= r_cut`` (r_cut an integer).
    """
    dy = torch.arange(h, dtype=torch.int64) - h // 2
    dx = torch.arange(w, dtype=torch.int64) - w // 2
    d2 = dy[:, None] ** 2 + dx[None, :] ** 2
    s = torch.sqrt(d2.double()).floor().to(torch.int64)  # isqrt, corrected below against rounding
    s = torch.where(s * s > d2, s - 1, s)
    s = torch.where((s + 1) * (s + 1) <= d2, s + 1, s)
    return (s + 1).to(device=device, dtype=torch.float32)


def _sorted_grid(
    h: int, w: int, device: torch.device, kind: str = "<="
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(unshifted radius grid, flattened; its argsort; the sorted radii), cached per size, device and rule.

    ``kind="<="``: the release's normalised radii; ``"<"``: the paper's pixel rings (``pixel_ring_grid``).
    """
    key = (h, w, str(device), kind)
    hit = _GRID_CACHE.get(key)
    if hit is None or torch.compiler.is_compiling():
        grid = radius_grid(h, w, device) if kind == "<=" else pixel_ring_grid(h, w, device)
        r = torch.fft.ifftshift(grid, dim=(-2, -1)).reshape(-1)
        # topk rather than argsort: it exports to ONNX; the order inside a ring of equal radius is irrelevant
        r_sorted, order = r.topk(r.numel(), largest=False, sorted=True)
        hit = (r, order, r_sorted)
        if not torch.compiler.is_compiling():
            _GRID_CACHE[key] = hit
    return hit


def radial_cutoff(
    energy: torch.Tensor,
    radius_sorted: torch.Tensor,
    order: torch.Tensor,
    lam: float,
    count: bool | None = None,
) -> torch.Tensor:
    """Smallest radius enclosing at least ``lam`` of the energy, per sample.

    energy: (B, N) power per bin (unshifted layout), order: argsort of the bins' radii, radius_sorted: the
    radii in that order. ``count``: find the position by counting instead of ``searchsorted`` (the default
    while tracing for export, as ONNX has no searchsorted). Returns (B, 1).
    """
    cum = energy.index_select(1, order).cumsum(dim=-1, dtype=torch.float64)
    target = lam * cum[:, -1:]
    if count or (count is None and torch.compiler.is_compiling()):
        # the same search as a count (cum is non-decreasing): ONNX has no searchsorted
        idx = (cum < target).sum(dim=-1, keepdim=True)
    else:
        idx = torch.searchsorted(cum, target)
    return radius_sorted[idx.clamp(max=cum.shape[-1] - 1)]


def _keep_mask(spec: torch.Tensor, lam: float, zeroing: str) -> torch.Tensor:
    """The filter M (1 keep, 0 zero) of a batch of unshifted spectra (B, C, h, w), as (B, 1, h, w) float32."""
    b, _, h, w = spec.shape
    r, order, r_sorted = _sorted_grid(h, w, spec.device, zeroing)
    with torch.no_grad():  # the cutoff is a selection: no gradient flows through it
        power = spec.real.square() + spec.imag.square()  # |F|^2, 5x faster than abs().square() on the CPU
        power = (power[:, 0] if power.shape[1] == 1 else power.mean(dim=1)).reshape(b, h * w)
        r_cut = radial_cutoff(power, r_sorted, order, lam).to(r.dtype)
        if zeroing == "<=":
            keep = r[None, :] > r_cut
        else:
            # paper: integer r_cut in [1, min(h, w)/2] (rings start at 1, so only the upper bound clamps);
            # a bin is zeroed when d^2 < r_cut^2, i.e. its ring is <= r_cut
            keep = r[None, :] > r_cut.clamp(max=float(max(1, min(h, w) // 2)))
        return keep.to(torch.float32).reshape(b, 1, h, w)


def rhpm_keep(x: torch.Tensor, lam: float, zeroing: str = "<=") -> torch.Tensor:
    """The filter ``M`` that ``rhpm(x, lam, zeroing=zeroing)`` applies, unshifted (DC at [..., 0, 0]),
    (B, 1, h, w) with 1 where a bin is kept and 0 where it is zeroed."""
    if zeroing not in ZEROINGS:
        raise ValueError(f"rhpm zeroing must be one of {ZEROINGS}, got {zeroing!r}")
    return _keep_mask(torch.fft.fft2(x.float(), norm="ortho"), lam, zeroing)


def rhpm(x: torch.Tensor, lam: float, norm: str = "official", zeroing: str = "<=") -> torch.Tensor:
    """Functional RHPM on (B, C, h, w); returns ``|ifft2(F * M)|`` in float32 (see module docstring)."""
    if zeroing not in ZEROINGS:
        raise ValueError(f"rhpm zeroing must be one of {ZEROINGS}, got {zeroing!r}")
    x = x.float()  # FFTs have no half/bfloat16 kernels on CPU; keep the filter in float32 under autocast too
    spec = torch.fft.fft2(x, norm="ortho")
    keep = _keep_mask(spec, lam, zeroing)
    inv_norm = "backward" if norm == "official" else "ortho"
    out = torch.fft.ifft2(spec * keep, norm=inv_norm)
    if out.requires_grad:
        return out.abs()  # abs has a safe gradient at 0
    return (out.real.square() + out.imag.square()).sqrt()  # inference: same value, ~3x faster than abs


class RHPM(nn.Module):
    """``RHPM_lambda`` as a module (no parameters)."""

    def __init__(self, lam: float, norm: str = "official", zeroing: str = "<=") -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"rhpm_norm must be one of {NORMS}, got {norm!r}")
        if zeroing not in ZEROINGS:
            raise ValueError(f"rhpm_zeroing must be one of {ZEROINGS}, got {zeroing!r}")
        self.lam, self.norm, self.zeroing = float(lam), norm, zeroing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rhpm(x, self.lam, self.norm, self.zeroing)

    def extra_repr(self) -> str:
        return f"lambda={self.lam}, norm={self.norm!r}, zeroing={self.zeroing!r}"


class RHPMHead(nn.Module):
    """The residual cascaded RHPM head (paper Fig. 3, spec section 6) producing ``P_final``.

    ``input_kind="stem"`` (official): ``X0 = ReLU(BN(Conv3x3(3->1)(img)))``; ``"image"`` (paper): the raw
    single-channel image (channel mean of the replicated input). Both gate each stage's input with the mask
    probability, ``X * sigmoid(mask_i) + X`` (spec section 9; the paper's ``I * Mask + I`` read with Mask a
    probability map). Stages run deepest first with ``lambdas[2]``, ``lambdas[1]``, ``lambdas[0]`` (index 0
    shallowest). ``P = Conv(3->1)(concat[mask0, mask1, mask2])`` with ``fusion_kernel`` 3 (official) or 1
    (paper); ``P_final = P * sigmoid(X) + P`` has the sign of P.
    """

    def __init__(
        self,
        lambdas: tuple[float, float, float] = (0.1, 0.2, 0.4),
        input_kind: str = "stem",
        fusion_kernel: int = 3,
        norm: str = "official",
        zeroing: str = "<=",
    ) -> None:
        super().__init__()
        if input_kind not in ("stem", "image"):
            raise ValueError(f"head_input must be 'stem' or 'image', got {input_kind!r}")
        self.input_kind = input_kind
        if input_kind == "stem":
            self.stem = nn.Sequential(nn.Conv2d(3, 1, 3, padding=1), nn.BatchNorm2d(1), nn.ReLU())
        self.rhpm = nn.ModuleList(RHPM(lam, norm, zeroing) for lam in lambdas)
        self.fusion = nn.Conv2d(3, 1, fusion_kernel, padding=fusion_kernel // 2)

    def modulation(
        self, img: torch.Tensor, masks: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """The cascade's output ``X`` in (0, 1), (B, 1, H, W)."""
        # both variants gate with the mask probability sigmoid(mask): a raw logit would flip the features'
        # sign where it is negative (the paper writes ``I * Mask + I``; reading in docs/DESIGN.md)
        x = self.stem(img) if self.input_kind == "stem" else img.mean(dim=1, keepdim=True)
        for i in (2, 1, 0):  # deepest mask first
            x = self.rhpm[i](x * torch.sigmoid(masks[i]) + x)
        return torch.sigmoid(x)

    def forward(
        self, img: torch.Tensor, mask0: torch.Tensor, mask1: torch.Tensor, mask2: torch.Tensor
    ) -> torch.Tensor:
        # stack of (B, H, W) maps: a plain NCHW result (cat of 1-channel channels-last maps is slow on CPU)
        p = self.fusion(torch.stack([mask0[:, 0], mask1[:, 0], mask2[:, 0]], dim=1))
        x = self.modulation(img, (mask0, mask1, mask2))
        return p * x + p


__all__ = ["RHPM", "RHPMHead", "pixel_ring_grid", "radial_cutoff", "radius_grid", "rhpm", "rhpm_keep"]
