"""Shared pieces of the model-driven baselines: input checks, the patch-image / patch-tensor construction of
IPI (Gao et al., TIP 2013) and RIPT (Dai & Wu, JSTARS 2017), their reconstruction,
the structure-tensor eigenvalues used by the local priors of RIPT and PSTNN, and the low-rank proximal steps.

Frames are grey levels on the 8-bit scale (0-255), which is the scale the published parameters assume
(e.g. the 0.01 offsets of the reweighting and the PSTNN penalty mu = 2e-3).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from irsam2.utils import UserError

# ----------------------------------------------------------------------------------------------------
# input


def as_frame(frame: np.ndarray, name: str = "frame") -> np.ndarray:
    """A finite 2-D float64 copy of `frame`, or a UserError that says what is wrong."""
    arr = np.asarray(frame)
    if arr.ndim != 2:
        raise UserError(f"{name}: expected a single-channel (H, W) frame, got shape {arr.shape}")
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise UserError(f"{name}: frame {arr.shape} is too small (need at least 2x2)")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise UserError(f"{name}: expected a real numeric frame, got dtype {arr.dtype}")
    out = arr.astype(np.float64, copy=True)
    if not np.all(np.isfinite(out)):
        raise UserError(f"{name}: frame holds NaN or infinite values")
    return out


# ----------------------------------------------------------------------------------------------------
# patch image / patch tensor


def patch_positions(length: int, patch: int, step: int) -> np.ndarray:
    """Top-left offsets of the sliding window along one axis.

    Windows start every `step` pixels and a last window is placed flush with the far border, so every pixel is
    covered (the layout of the authors' releases: ceil((L - p) / s) + 1 windows).
    """
    if patch > length:
        raise ValueError(f"patch {patch} larger than axis {length}")
    n = int(np.ceil((length - patch) / step)) + 1
    pos = np.arange(n) * step
    pos[-1] = length - patch
    return pos


def pad_to_patch(img: np.ndarray, patch: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Frames smaller than the patch are mirror-padded up to it (cropped again after reconstruction)."""
    h, w = img.shape
    ph, pw = max(0, patch - h), max(0, patch - w)
    if ph or pw:
        img = np.pad(img, ((0, ph), (0, pw)), mode="symmetric")
    return img, (h, w)


def extract_patches(img: np.ndarray, patch: int, step: int) -> np.ndarray:
    """(P, patch, patch) stack of windows, column-major window order (rows vary fastest), by stride tricks."""
    rows = patch_positions(img.shape[0], patch, step)
    cols = patch_positions(img.shape[1], patch, step)
    view = sliding_window_view(img, (patch, patch))  # (H-p+1, W-p+1, p, p), no copy
    # column-major order over windows like the MATLAB releases (meshgrid over (col, row))
    return view[rows[None, :], cols[:, None]].reshape(-1, patch, patch)


def _flat_indices(shape: tuple[int, int], patch: int, step: int) -> np.ndarray:
    """(P, patch, patch) flat pixel index of every window element, in the order of `extract_patches`."""
    rows = patch_positions(shape[0], patch, step)
    cols = patch_positions(shape[1], patch, step)
    r0 = np.broadcast_to(rows[None, :], (cols.size, rows.size)).reshape(-1)
    c0 = np.broadcast_to(cols[:, None], (cols.size, rows.size)).reshape(-1)
    ar = np.arange(patch)
    return (r0[:, None, None] + ar[None, :, None]) * shape[1] + (c0[:, None, None] + ar[None, None, :])


def fold_patches(patches: np.ndarray, shape: tuple[int, int], patch: int, step: int, reduce: str = "mean"):
    """Inverse of `extract_patches`: each pixel gets the mean (or median) of the windows covering it.

    The mean is a weighted bincount over flat pixel indices (no np.add.at); the median stacks the
    windows into layers where they do not overlap and takes a NaN-aware median across layers.
    """
    idx = _flat_indices(shape, patch, step)
    size = shape[0] * shape[1]
    if reduce == "mean":
        acc = np.bincount(idx.ravel(), weights=patches.ravel(), minlength=size)
        cnt = np.bincount(idx.ravel(), minlength=size)
        return (acc / np.maximum(cnt, 1)).reshape(shape)
    if reduce != "median":
        raise ValueError(f"reduce must be 'mean' or 'median', got {reduce!r}")
    rows = patch_positions(shape[0], patch, step)
    cols = patch_positions(shape[1], patch, step)
    # windows i and i + k*ceil(p/s) never overlap, except the flush last one: give it its own layer class
    period = int(np.ceil(patch / step))
    ri = np.arange(rows.size)
    ci = np.arange(cols.size)
    rcls = np.where(ri == rows.size - 1, period, ri % period)
    ccls = np.where(ci == cols.size - 1, period, ci % period)
    layer = (ccls[:, None] * (period + 1) + rcls[None, :]).reshape(-1)  # window order: rows fastest
    n_layers = (period + 1) ** 2
    stack = np.full((n_layers, size), np.nan)
    stack[np.broadcast_to(layer[:, None, None], idx.shape), idx] = patches
    return np.nanmedian(stack, axis=0).reshape(shape)


def patch_image(img: np.ndarray, patch: int, step: int) -> np.ndarray:
    """IPI patch-image D (patch*patch, P): each column a vectorised window (Gao et al. 2013)."""
    return extract_patches(img, patch, step).reshape(-1, patch * patch).T


def unpatch_image(d: np.ndarray, shape: tuple[int, int], patch: int, step: int, reduce: str = "mean"):
    return fold_patches(d.T.reshape(-1, patch, patch), shape, patch, step, reduce)


# ----------------------------------------------------------------------------------------------------
# structure tensor


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """Normalised size x size Gaussian (MATLAB fspecial('gaussian') semantics)."""
    ax = np.arange(size) - (size - 1) / 2
    g = np.exp(-(ax**2) / (2 * sigma**2))
    k = np.outer(g, g)
    return k / k.sum()


def structure_tensor_eigs(img: np.ndarray, size: int, sigma_pre: float, sigma_int: float):
    """Eigenvalues lambda1 >= lambda2 of the structure tensor J = K * (grad u grad u^T), u = G * img.

    Pre-smoothing G and integration window K are size x size Gaussians (symmetric borders); the gradient is
    the central difference. Used by the local priors of RIPT and PSTNN
    (Zhang & Peng 2019).
    """
    u = ndimage.correlate(img, gaussian_kernel(size, sigma_pre), mode="reflect")
    gy, gx = np.gradient(u)
    k = gaussian_kernel(size, sigma_int)
    j11 = ndimage.correlate(gx * gx, k, mode="reflect")
    j12 = ndimage.correlate(gx * gy, k, mode="reflect")
    j22 = ndimage.correlate(gy * gy, k, mode="reflect")
    root = np.sqrt((j11 - j22) ** 2 + 4 * j12**2)
    return 0.5 * (j11 + j22 + root), 0.5 * (j11 + j22 - root)


def minmax(x: np.ndarray) -> np.ndarray:
    """Rescale to [0, 1] (MATLAB mat2gray); a constant array maps to zeros."""
    lo, hi = float(x.min()), float(x.max())
    if hi - lo <= 0:
        return np.zeros_like(x)
    return (x - lo) / (hi - lo)


# ----------------------------------------------------------------------------------------------------
# proximal steps


def soft(x: np.ndarray, t) -> np.ndarray:
    """Entry-wise soft threshold sign(x) max(|x| - t, 0)."""
    return x - np.clip(x, -t, t)


def soft_nonneg(x: np.ndarray, t) -> np.ndarray:
    """Soft threshold followed by projection on x >= 0 (targets are brighter than their surroundings)."""
    return np.maximum(x - t, 0.0)


def svd_small_side(m: np.ndarray):
    """Singular values and smaller-side singular vectors from the eigen-decomposition of the Gram matrix.

    Returns (Q, s, tall): s descending, Q the right (tall matrix) or left (wide matrix) singular vectors.
    Exact to Gram precision (singular values below about sqrt(eps) * s_max are unreliable), which is ample for
    thresholding, and much cheaper than a full SVD for the very unequal unfoldings used here.
    """
    tall = m.shape[0] >= m.shape[1]
    g = m.T @ m if tall else m @ m.T
    ev, q = np.linalg.eigh(g)
    ev = np.maximum(ev[::-1], 0.0)
    q = q[:, ::-1]
    s = np.sqrt(ev)
    return q, s, tall


def shrink_singular_values(m: np.ndarray, fn) -> tuple[np.ndarray, int]:
    """U diag(fn(s)) V^T for a shrinkage 0 <= fn(s) <= s (s sorted descending), and the rank kept."""
    q, s, tall = svd_small_side(m)
    new = fn(s)
    keep = (new > 0) & (s > 0)
    r = int(keep.sum())
    if r == 0:
        return np.zeros_like(m), 0
    # U diag(f) V^T = M Q diag(f / s) Q^T (tall) or Q diag(f / s) Q^T M (wide)
    qk = q[:, keep] * np.sqrt(new[keep] / s[keep])
    return ((m @ qk) @ qk.T if tall else qk @ (qk.T @ m)), r


def svt(m: np.ndarray, tau: float) -> tuple[np.ndarray, int]:
    """Singular value thresholding U max(S - tau, 0) V^T, and the rank kept."""
    return shrink_singular_values(m, lambda s: np.maximum(s - tau, 0.0))


def randomized_svd(
    m: np.ndarray, k: int, n_iter: int = 2, rng: np.random.Generator | None = None, oversample: int = 10
):
    """Top-k SVD by a randomised range finder with `n_iter` power iterations (Halko et al. 2011)."""
    rng = rng or np.random.default_rng(0)
    k = min(k, *m.shape)
    y = m @ rng.standard_normal((m.shape[1], min(k + oversample, *m.shape)))
    q, _ = np.linalg.qr(y)
    for _ in range(n_iter):
        q, _ = np.linalg.qr(m.T @ q)
        q, _ = np.linalg.qr(m @ q)
    ub, s, vt = np.linalg.svd(q.T @ m, full_matrices=False)
    return q @ ub[:, :k], s[:k], vt[:k]


def svt_lowrank(
    m: np.ndarray, tau: float, rank_hint: int, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """SVT that only computes the singular triplets above `tau`: randomised SVD with a rank that grows until
    the smallest computed singular value falls below `tau` (the rank-prediction idea of inexact ALM), falling
    back to the exact small-side SVD when the rank gets large."""
    small = min(m.shape)
    if small <= 64:  # the exact small-side SVD is already cheap
        return svt(m, tau)
    k = max(rank_hint + 5, 8)
    while 2 * k < small // 3:  # past that the exact small-side SVD is cheaper
        u, s, vt = randomized_svd(m, k, n_iter=2, rng=rng)
        if s[-1] <= tau:
            keep = s > tau
            r = int(keep.sum())
            return (u[:, keep] * (s[keep] - tau)) @ vt[keep], r
        k *= 2
    return svt(m, tau)
