"""Per-image ground-truth target annotations (spec section 7, target-centric auxiliary loss).

A target is an 8-connected component of the mask. For each one the dataset computes, once per item and in the
coordinates of the transformed image:

- ``boxes``: ``(x0, y0, x1, y1)`` with x1, y1 exclusive;
- ``areas``: pixel count;
- ``centroids``: ``(x, y)`` mean pixel position;
- ``contrasts``: local contrast ``|mean(image inside the target) - mean(image in the patch outside any
  target)|``
  on the normalised image, where the patch is the box dilated by ``margin`` pixels (3, the value the spec
  fixes
  for dataset statistics) and clipped to the image. A patch with no background pixel has contrast 0.

The training step therefore never runs connected components. Everything is vectorised: components come from
OpenCV, per-target sums from ``bincount`` and patch sums from integral images.
"""

from __future__ import annotations

import cv2
import numpy as np

EMPTY = {
    "boxes": np.zeros((0, 4), np.float32),
    "areas": np.zeros((0,), np.float32),
    "centroids": np.zeros((0, 2), np.float32),
    "contrasts": np.zeros((0,), np.float32),
}


def components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """8-connected components: ``(n, labels, stats, centroids)`` without the background row."""
    n, labels, stats, cents = cv2.connectedComponentsWithStats(
        np.ascontiguousarray(mask, dtype=np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    return n - 1, labels, stats[1:], cents[1:]


def compute_targets(mask: np.ndarray, image: np.ndarray, margin: int = 3) -> dict[str, np.ndarray]:
    """Annotations of every target of ``mask`` (bool ``(H, W)``) on ``image`` (float, normalised)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return {k: v.copy() for k, v in EMPTY.items()}
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    # Work inside the region holding every target and its patch: usually a small fraction of the frame.
    oy, ox = max(int(rows[0]) - margin, 0), max(int(cols[0]) - margin, 0)
    ey, ex = min(int(rows[-1]) + 1 + margin, h), min(int(cols[-1]) + 1 + margin, w)
    m = mask[oy:ey, ox:ex]
    img = image[oy:ey, ox:ex].astype(np.float64)
    n, labels, stats, cents = components(m)
    rh, rw = m.shape
    x0 = stats[:, cv2.CC_STAT_LEFT]
    y0 = stats[:, cv2.CC_STAT_TOP]
    x1 = x0 + stats[:, cv2.CC_STAT_WIDTH]
    y1 = y0 + stats[:, cv2.CC_STAT_HEIGHT]
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.float64)

    inside = np.bincount(labels.ravel(), weights=img.ravel(), minlength=n + 1)[1:] / areas

    # Patch sums over background pixels only, through integral images of the region.
    bg = ~m
    s_val = cv2.integral(np.where(bg, img, 0.0))
    s_cnt = cv2.integral(bg.astype(np.float64))
    px0 = np.clip(x0 - margin, 0, rw)
    py0 = np.clip(y0 - margin, 0, rh)
    px1 = np.clip(x1 + margin, 0, rw)
    py1 = np.clip(y1 + margin, 0, rh)

    def box_sum(s: np.ndarray) -> np.ndarray:
        return s[py1, px1] - s[py0, px1] - s[py1, px0] + s[py0, px0]

    cnt = box_sum(s_cnt)
    out_mean = np.divide(box_sum(s_val), cnt, out=np.zeros(n), where=cnt > 0.5)
    contrasts = np.where(cnt > 0.5, np.abs(inside - out_mean), 0.0)
    boxes = np.stack([x0 + ox, y0 + oy, x1 + ox, y1 + oy], axis=1)
    return {
        "boxes": boxes.astype(np.float32),
        "areas": areas.astype(np.float32),
        "centroids": (cents + [ox, oy]).astype(np.float32),
        "contrasts": contrasts.astype(np.float32),
    }
