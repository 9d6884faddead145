"""Top-hat: white morphological top-hat filtering (Rivest & Fortin, "Detection of dim targets in digital
infrared imagery by morphological image processing", Optical Engineering 35(7), 1996) -- Table 1 row
"Top-hat".

The background is the grey-level opening of the frame by a flat structuring element, i.e. the frame with every
bright structure smaller than the element removed; the saliency is the frame minus its opening, so only bright
structures smaller than the element remain. Default element: a 3x3 square, the setting the low-rank papers of
Table 1 (NRAM, PSTNN) list for their Top-hat comparison; pass `size` to match larger targets.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from irsam2.baselines.common import as_frame


def tophat(frame: np.ndarray, size: int = 3, shape: str = "square") -> np.ndarray:
    """White top-hat saliency map `frame - opening(frame)` (H, W), >= 0.

    size: side of the flat structuring element (pixels); shape: "square" (separable, fastest) or "disk".
    """
    img = as_frame(frame)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if shape == "square":
        opened = ndimage.grey_opening(img, size=(size, size), mode="reflect")
    elif shape == "disk":
        r = (size - 1) / 2
        yy, xx = np.mgrid[:size, :size] - r
        opened = ndimage.grey_opening(img, footprint=(yy**2 + xx**2) <= r * r + 1e-9, mode="reflect")
    else:
        raise ValueError(f"shape must be 'square' or 'disk', got {shape!r}")
    return img - opened
