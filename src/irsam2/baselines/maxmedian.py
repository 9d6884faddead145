"""Max-median filter (Deshpande, Er, Venkateswarlu & Chan, "Max-mean and max-median filters for detection of
small targets", Proc. SPIE 3809, 1999) -- Table 1 row "Max-median".

Within an N x N window centred on each pixel, the medians along the horizontal, vertical, diagonal and
anti-diagonal lines through the centre are taken; their maximum is the background estimate, which preserves
edges (an edge keeps at least one line median high) while a point target is removed by all four. The
saliency is the frame minus that estimate. Default window: 5 x 5, the support listed for Max-median in the
comparison tables of the low-rank papers of Table 1.
"""

from __future__ import annotations

import numpy as np

from irsam2.baselines.common import as_frame

DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))  # horizontal, vertical, diagonal, anti-diagonal


def _median5(a, b, c, d, e):
    """Median of five arrays by a min/max network: the larger of the pair minima and the smaller of the pair
    maxima bracket the middle value once the two extremes of (a, b, c, d) are discarded."""
    lo = np.maximum(np.minimum(a, b), np.minimum(c, d))
    hi = np.minimum(np.maximum(a, b), np.maximum(c, d))
    return np.maximum(np.minimum(e, np.maximum(lo, hi)), np.minimum(lo, hi))


def maxmedian(frame: np.ndarray, size: int = 5) -> np.ndarray:
    """Max-median saliency map `frame - max(line medians)` (H, W). `size` must be odd."""
    img = as_frame(frame)
    if size < 3 or size % 2 == 0:
        raise ValueError(f"size must be an odd integer >= 3, got {size}")
    r = size // 2
    padded = np.pad(img, r, mode="symmetric")
    h, w = img.shape
    background = None
    for dy, dx in DIRECTIONS:
        # the `size` pixels of this line through every centre, as shifted views of the padded frame
        line = [padded[r + dy * o : r + dy * o + h, r + dx * o : r + dx * o + w] for o in range(-r, r + 1)]
        med = _median5(*line) if size == 5 else np.partition(np.stack(line), r, axis=0)[r]
        background = med if background is None else np.maximum(background, med)
    return img - background
