"""RIPT: reweighted infrared patch-tensor model (Dai & Wu, "Reweighted Infrared Patch-Tensor Model With Both
Nonlocal and Local Priors for Single-Frame Small Target Detection", IEEE JSTARS 10(8):3752-3767, 2017) --
Table 1 row "RIPT".

Overlapping windows are stacked into a patch tensor F (n1 x n2 x n3) and split as F = B + T with

    min  sum_i ||B_(i)||_*  +  lambda ||W (.) T||_1   s.t.  F = B + T,  T >= 0,

the low-rank term being the sum of the nuclear norms of the three unfoldings (SNN, nonlocal prior) and
W = W_rw (.) W_ls the reweighting W_rw = 1 / (|T| + 0.01) times the local structure prior
W_ls = exp(h minmax(lambda1 - lambda2)) from the structure tensor (edge strength). The solver is the
ADMM with a decreasing penalty. Defaults are the published ones (authors' release): 30 x 30
patches, step 10, lambda = 0.7 / sqrt(min(n1, n2, n3)), mu0 = 5 std(F), mu <- mu / 1.5, h = 1, tol = 1e-7, and
the loop stops when the support of T stops changing. The release has no iteration cap; we add max_iter = 100
(mu has shrunk by 1.5^100 by then).
"""

from __future__ import annotations

import numpy as np

from irsam2.baselines.common import (
    as_frame,
    extract_patches,
    fold_patches,
    minmax,
    pad_to_patch,
    soft_nonneg,
    structure_tensor_eigs,
    svt,
)


def _unfold(x: np.ndarray, mode: int) -> np.ndarray:
    return np.moveaxis(x, mode, 0).reshape(x.shape[mode], -1)


def _fold(m: np.ndarray, mode: int, shape: tuple[int, ...]) -> np.ndarray:
    moved = (shape[mode],) + tuple(s for i, s in enumerate(shape) if i != mode)
    return np.moveaxis(m.reshape(moved), 0, mode)


def ript_prior(img: np.ndarray, h: float = 1.0) -> np.ndarray:
    """Local structure weight exp(h * minmax(lambda1 - lambda2)): large on edges, 1 on flat areas."""
    l1, l2 = structure_tensor_eigs(img, size=3, sigma_pre=1.2, sigma_int=2.0)
    return np.exp(h * minmax(l1 - l2))


def ript(
    frame: np.ndarray,
    patch: int = 30,
    step: int = 10,
    lambda_l: float = 0.7,
    mu_coef: float = 5.0,
    h: float = 1.0,
    rho: float = 1.5,
    tol: float = 1e-7,
    max_iter: int = 100,
    eps: float = 0.01,
    return_info: bool = False,
):
    """RIPT target map T reconstructed from the patch tensor (H, W); with `return_info` also a dict with
    `iterations`, `converged`, `residual`."""
    img = as_frame(frame)
    work, (h0, w0) = pad_to_patch(img, patch)
    f = extract_patches(work, patch, step)  # (n3, n1, n2): tensor stored n3-first
    w_ls = extract_patches(ript_prior(work, h), patch, step)
    shape = f.shape
    lam = lambda_l / np.sqrt(min(shape))
    mu = mu_coef * float(f.std())
    norm_f = np.linalg.norm(f)
    n_modes = 3
    lagr = [np.zeros_like(f) for _ in range(n_modes)]
    bs = [f.copy() for _ in range(n_modes)]
    t = np.zeros_like(f)
    weight = w_ls.copy()
    prev_support = t.size
    converged, residual, iterations = False, np.inf, 0
    if mu <= 0 or norm_f == 0:  # constant frame: all background
        out = np.zeros((h0, w0))
        return (out, {"iterations": 0, "converged": True, "residual": 0.0}) if return_info else out
    for it in range(1, max_iter + 1):
        iterations = it
        for i in range(n_modes):
            # exact SVT via the Gram matrix of the short side: ranks grow past what a randomised SVD saves
            bs[i] = _fold(svt(_unfold(f + mu * lagr[i] - t, i), mu)[0], i, shape)
        acc = sum(bs[i] - f - mu * lagr[i] for i in range(n_modes))
        t = soft_nonneg(-acc / n_modes, weight * (mu * lam / n_modes))
        weight = w_ls / (np.abs(t) + eps)
        for i in range(n_modes):
            lagr[i] -= (bs[i] + t - f) / mu
        mu /= rho
        b = sum(bs) / n_modes
        residual = float(np.linalg.norm(f - b - t) / norm_f)
        support = int(np.count_nonzero(t > 0))
        if residual < tol or support == prev_support:
            converged = True
            break
        prev_support = support
    out = fold_patches(t, work.shape, patch, step, "mean")[:h0, :w0]
    if return_info:
        return out, {"iterations": iterations, "converged": converged, "residual": residual}
    return out
