"""PSTNN: partial sum of the tensor nuclear norm (Zhang & Peng, "Infrared Small Target Detection Based on
Partial Sum of the Tensor Nuclear Norm", Remote Sensing 11(4):382, 2019) -- Table 1 row "PSTNN".

The frame is cut into a patch tensor D (n1 x n2 x n3, non-overlapping 40 x 40 windows stacked along the third
mode) and split as D = B + T with

    min  ||B||_{PSTNN} + lambda ||W (.) T||_1   s.t.  D = B + T,

where the PSTNN norm leaves the N largest singular values of every Fourier-domain frontal slice unpenalised
(t-SVD of Kilmer & Martin) and W = W_sw / W_p combines the reweighting W_sw = c / (|T| + 0.01)
with the local prior W_p = minmax(corner strength * max(lambda1, lambda2)) of the structure tensor.
The solver is ADMM. Defaults are the published ones (authors' release): 40 x 40 patches,
step 40, lambda = 0.7 / sqrt(max(n1, n2) n3), mu0 = 2e-3, rho = 1.05, tol = 1e-3, 500 iterations, N from the
0.1 singular-value ratio of the mode-3 unfolding, c = N; the loop also stops once the support of T is stable.
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
)


def pstnn_prior(img: np.ndarray) -> np.ndarray:
    """Local structure prior W_p: corner strength l1 l2 / (l1 + l2) times max(l1, l2), rescaled to [0, 1]."""
    l1, l2 = structure_tensor_eigs(img, size=3, sigma_pre=2.0, sigma_int=9.0)
    den = l1 + l2
    corner = np.divide(l1 * l2, den, out=np.zeros_like(den), where=den > 0)
    return minmax(corner * np.maximum(l1, l2))


def estimate_n(tensor: np.ndarray, ratio: float = 0.1) -> int:
    """Number of unpenalised singular values: the leading singular values of the mode-3 unfolding whose
    ratio to the largest is >= `ratio` (at least 1)."""
    mat = tensor.reshape(tensor.shape[0], -1)  # (n3, n1*n2): tensor stored n3-first
    s = np.linalg.svd(mat, compute_uv=False)
    if s[0] <= 0:
        return 1
    return max(1, int(np.sum(s / s[0] >= ratio)))


def prox_pstnn(x: np.ndarray, n_keep: int, tau: float) -> np.ndarray:
    """Proximal step of the PSTNN norm on a tensor stored (n3, n1, n2): FFT along the third mode, per-slice
    SVD (batched over the independent half of the spectrum, the rest by conjugate symmetry), keep the `n_keep`
    largest singular values and shrink the others by `tau`, inverse FFT."""
    n3 = x.shape[0]
    f = np.fft.rfft(x, axis=0)  # (n3//2+1, n1, n2): the other slices are conjugates
    u, s, vt = np.linalg.svd(f, full_matrices=False)
    shrunk = np.maximum(s - tau, 0.0)
    shrunk[:, :n_keep] = s[:, :n_keep]
    return np.fft.irfft((u * shrunk[:, None, :]) @ vt, n=n3, axis=0)


def pstnn(
    frame: np.ndarray,
    patch: int = 40,
    step: int = 40,
    lambda_l: float = 0.7,
    mu0: float = 2e-3,
    rho: float = 1.05,
    max_mu: float = 1e10,
    tol: float = 1e-3,
    max_iter: int = 500,
    ratio_n: float = 0.1,
    eps: float = 0.01,
    return_info: bool = False,
):
    """PSTNN target map T reconstructed from the patch tensor (H, W); with `return_info` also a dict with
    `iterations`, `converged`, `residual`, `n_keep`."""
    img = as_frame(frame)
    work, (h, w) = pad_to_patch(img, patch)
    d = extract_patches(work, patch, step)  # (n3, n1, n2)
    prior = extract_patches(pstnn_prior(work), patch, step)
    n3, n1, n2 = d.shape
    lam = lambda_l / np.sqrt(max(n1, n2) * n3)
    n_keep = estimate_n(d, ratio_n)
    norm_d = np.linalg.norm(d)
    b = np.zeros_like(d)
    t = np.zeros_like(d)
    y = np.zeros_like(d)
    weight = np.ones_like(d)
    mu = mu0
    converged, residual, iterations = False, np.inf, 0
    with np.errstate(divide="ignore", invalid="ignore"):
        for it in range(1, max_iter + 1):
            iterations = it
            prev_support = int(np.count_nonzero(t > 0))
            b = prox_pstnn(d - t - y / mu, n_keep, 1.0 / mu)
            t = soft_nonneg(d - b - y / mu, weight * (lam / mu))  # weight may be +inf where the prior is 0
            weight = n_keep / ((np.abs(t) + eps) * prior)
            dy = b + t - d
            residual = float(np.linalg.norm(dy) / norm_d) if norm_d > 0 else 0.0
            support = int(np.count_nonzero(t > 0))
            if residual < tol or (prev_support > 0 and support == prev_support):
                converged = True
                break
            y = y + mu * dy
            mu = min(rho * mu, max_mu)
    out = fold_patches(t, work.shape, patch, step, "mean")[:h, :w]
    if return_info:
        return out, {"iterations": iterations, "converged": converged, "residual": residual, "n_keep": n_keep}
    return out
