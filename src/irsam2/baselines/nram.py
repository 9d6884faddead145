"""NRAM: non-convex rank approximation minimisation joint l2,1 norm (Zhang, Peng, Zhang, Cao & Peng, "Infrared
Small Target Detection via Non-Convex Rank Approximation Minimization Joint l2,1 Norm", Remote Sensing
10(11):1821, 2018) -- Table 1 row "NRAM".

The IPI patch-image D is split into background B, target T and residual strong edges E:

    min  ||B||_gamma + lambda ||W (.) T||_1 + beta ||E||_{2,1}   s.t.  D = B + T + E

with the gamma-norm ||B||_gamma = sum_i (1 + gamma) s_i / (gamma + s_i) as a non-convex surrogate of the rank
(Sec. 3.1), the reweighted l1 norm W = C / (|T| + eps) (Sec. 3.2) and the column-wise l2,1 norm that collects
line-like edge residuals. Solved by ADMM (Algorithm 1) whose B step is DC programming on the singular values
(Algorithm 2): s <- max(s_A - w / mu, 0) with w = d||.||_gamma/ds at the previous iterate.

Defaults: 50 x 50 windows, step 10, lambda = 1 / sqrt(max(m, n)), gamma = 0.002, C = sqrt(min(m, n)) / 2.5,
mu_0 = 3 sqrt(max(m, n)), tolerance 1e-7 on ||D - B - T - E||_F / ||D||_F (the paper's settings as we read
them), intensities scaled to [0, 1] (the gamma-norm is not scale-invariant). Our choices where we have no
published number (documented deviations): beta = 10 lambda for the l2,1 term (a column with more than about
100 active pixels, i.e. an edge, is cheaper in E than in T), eps = 0.01 as in the authors' other releases,
rho = 1.1 (the schedule of Kang et al.'s non-convex RPCA solver), at most 500 outer and 10 DC iterations,
and the DC iteration starts from the previous B's singular values (zeros at the first step).
"""

from __future__ import annotations

import numpy as np

from irsam2.baselines.common import as_frame, pad_to_patch, patch_image, shrink_singular_values, unpatch_image


def gamma_norm_shrink(
    s_a: np.ndarray, s_prev: np.ndarray, gamma: float, mu: float, inner: int = 10, tol: float = 1e-6
) -> np.ndarray:
    """DC programming for min_s sum_i (1+gamma) s_i / (gamma + s_i) + mu/2 ||s - s_a||^2 (NRAM Algorithm 2):
    linearise the concave gamma-norm at the current iterate (starting from the previous B's singular values,
    zeros at the first step) and solve the weighted thresholding s = max(s_a - w / mu, 0)."""
    s = s_prev
    for _ in range(inner):
        w = (1.0 + gamma) * gamma / (gamma + s) ** 2
        new = np.maximum(s_a - w / mu, 0.0)
        done = np.linalg.norm(new - s) <= tol * max(1.0, float(np.linalg.norm(s)))
        s = new
        if done:
            break
    return s


def nram(
    frame: np.ndarray,
    patch: int = 50,
    step: int = 10,
    lambda_l: float = 1.0,
    beta_ratio: float = 10.0,
    gamma: float = 0.002,
    mu0_coef: float = 3.0,
    rho: float = 1.1,
    eps: float = 0.01,
    tol: float = 1e-7,
    max_iter: int = 500,
    reduce: str = "mean",
    return_info: bool = False,
):
    """NRAM target map (H, W); with `return_info` also a dict: iterations, converged, residual, rank."""
    img = as_frame(frame)
    work, (h, w) = pad_to_patch(img, patch)
    # the gamma-norm is not scale-invariant: gamma = 0.002 is meant for intensities in [0, 1]
    d = patch_image(work / 255.0, patch, step)
    m, n = d.shape
    lam = lambda_l / np.sqrt(max(m, n))
    beta = beta_ratio * lam
    c = np.sqrt(min(m, n)) / 2.5
    norm_d = float(np.linalg.norm(d))
    if norm_d == 0 or np.ptp(d) == 0:  # constant frame: all background
        out = np.zeros((h, w))
        return (out, {"iterations": 0, "converged": True, "residual": 0.0, "rank": 1}) if return_info else out
    mu = mu0_coef * np.sqrt(max(m, n))
    b = np.zeros_like(d)
    t = np.zeros_like(d)
    e = np.zeros_like(d)
    y = np.zeros_like(d)
    weight = np.ones_like(d)
    rank, residual, converged, iterations = 0, np.inf, False, 0
    sig = np.zeros(min(m, n))  # singular values of the current B (descending)

    def dc_step(s_a: np.ndarray, mu: float) -> np.ndarray:
        nonlocal sig
        sig = gamma_norm_shrink(s_a, sig, gamma, mu)
        return sig

    for it in range(1, max_iter + 1):
        iterations = it
        b, rank = shrink_singular_values(d - t - e + y / mu, lambda s, mu=mu: dc_step(s, mu))
        q = d - b - e + y / mu
        t = q - np.clip(q, -lam * weight / mu, lam * weight / mu)
        r = d - b - t + y / mu
        norms = np.linalg.norm(r, axis=0)
        e = r * (np.maximum(norms - beta / mu, 0.0) / np.maximum(norms, 1e-300))
        z = d - b - t - e
        residual = float(np.linalg.norm(z)) / norm_d
        if residual < tol:
            converged = True
            break
        y += mu * z
        weight = c / (np.abs(t) + eps)
        mu *= rho
    out = 255.0 * unpatch_image(t, work.shape, patch, step, reduce)[:h, :w]
    if return_info:
        return out, {"iterations": iterations, "converged": converged, "residual": residual, "rank": rank}
    return out
