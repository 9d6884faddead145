"""Segmentation and detection metrics of infrared small target detection (spec section 8; paper section 4.2).

Definitions (threshold: a pixel is predicted when its score is ``> threshold``; default 0 on logits):

- **IoU** -- cumulative over the test set: the sum of intersections over the sum of unions (what the field's
  tables call "mIoU").
- **nIoU** -- the mean of the per-image IoU over every frame. A frame whose union is empty (no target, no
  prediction) scores 0, as in the field's reference code (BasicIRSTD / DNANet's sample-wise metric and
  PyIRSTDMetrics, which divide by zero into 0); a frame with no target but a prediction scores 0 too.
- **Pd** -- ground-truth and predicted masks are split into 8-connected components, labelled in raster order
  of their first pixel (``scipy.ndimage.label``, the same order as ``skimage.measure.label``). A target is
  detected when a predicted component's centroid (mean pixel coordinate) lies strictly closer than
  ``centroid_dist`` (3) pixels (Euclidean). Each predicted component is matched to at most one target and each
  target to at most one component, by the protocol's rule below. Pd = detected targets / all targets.
- **Fa** -- the pixels of predicted components matched to no target, over all pixels of all frames; reported
  in units of 1e-6.

Protocols (the matching rule and the Fa rule; every result names its protocol):

- ``"basicirstd"`` (default) -- the field's rule, as in BasicIRSTD's current ``PD_FA`` and PyIRSTDMetrics'
  ``ProbabilityDetectionAndFalseAlarmRate``: targets are visited in label order and each takes the first
  still-free predicted component (in label order) whose centroid is closer than ``centroid_dist``; Fa counts
  every pixel of every unmatched predicted component. Use it to compare with published tables.
- ``"optimal"`` -- a stricter alternative that does not depend on label order: among all one-to-one matchings
  that use only pairs closer than ``centroid_dist``, one with the most pairs, and among those the smallest
  total centroid distance (``scipy.optimize.linear_sum_assignment`` on the candidate pairs). Greedy matching
  can give a blob lying between two targets to the target that a second blob could also have detected and
  miss the other; the optimal assignment credits every target the predictions can support. Fa as above.
  ``"standard"`` is its deprecated old name (accepted with a warning).
- ``"legacy"`` -- the older DNANet-style ``PD_FA`` (BasicIRSTD before it changed its Fa, and the IR-SAM2
  release): the greedy matching above, but Fa counts the area of every predicted component *whose area differs
  from the area of every matched component* -- an unmatched component that happens to have the same pixel
  count as a matched one is dropped (the bug). Never the default.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

PROTOCOLS = ("basicirstd", "optimal", "legacy")
DEFAULT_PROTOCOL = "basicirstd"
DEPRECATED_PROTOCOLS = {"standard": "optimal"}  # old name -> current name
# One line per protocol, printed under every table and saved with every result.
PROTOCOL_RULES = {
    "basicirstd": "greedy: targets in label order take the first free component < d px; "
    "Fa = all unmatched components' pixels",
    "optimal": "optimal one-to-one assignment of components < d px; Fa = all unmatched components' pixels",
    "legacy": "greedy as basicirstd, but Fa drops unmatched components whose area equals a matched one's",
}
_EIGHT = np.ones((3, 3), dtype=bool)  # 3x3 structure: 8-connectivity


def resolve_protocol(protocol: str) -> str:
    """The current name of a metrics protocol; a deprecated name warns, an unknown one raises ValueError."""
    if protocol in DEPRECATED_PROTOCOLS:
        new = DEPRECATED_PROTOCOLS[protocol]
        warnings.warn(
            f"metrics protocol {protocol!r} is deprecated: it is the optimal assignment, now named {new!r}; "
            f"the default is {DEFAULT_PROTOCOL!r}, the field's greedy rule",
            FutureWarning,
            stacklevel=3,
        )
        return new
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown metrics protocol {protocol!r}; choose one of {PROTOCOLS}")
    return protocol


def expand_protocols(choice: str) -> tuple[str, ...]:
    """The protocols a ``--protocol`` value names: one, or ``all``; ``both`` is an old name of ``all``."""
    if choice == "both":
        warnings.warn(
            "--protocol both is deprecated: use 'all' (a row for each of basicirstd, optimal, legacy)",
            FutureWarning,
            stacklevel=2,
        )
        choice = "all"
    if choice == "all":
        return PROTOCOLS
    return (resolve_protocol(choice),)


def to_numpy_2d(x: Any, what: str = "array", name: str | None = None) -> np.ndarray:
    """A numpy or torch map of shape ``(H, W)`` (leading singleton dims allowed) as a 2-D numpy array."""
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().float().cpu().numpy() if x.dtype.is_floating_point else x.detach().cpu().numpy()
    a = np.asarray(x)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        where = f" for {name}" if name else ""
        raise ValueError(f"{what}{where}: expected a (H, W) map, got shape {tuple(np.shape(x))}")
    return a


def binarize_gt(gt: np.ndarray) -> np.ndarray:
    """Ground truth as bool: ``> 0.5`` for floats in [0, 1], ``!= 0`` otherwise (0/255 masks included)."""
    if gt.dtype == bool:
        return gt
    if np.issubdtype(gt.dtype, np.floating):
        return gt > 0.5
    return gt != 0


def _components(mask: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """8-connected labels, count, areas ``(n,)`` and centroids ``(n, 2)`` (row, col), vectorised."""
    labels, n = ndimage.label(mask, structure=_EIGHT)
    if n == 0:
        return labels, 0, np.zeros(0, np.int64), np.zeros((0, 2))
    rows, cols = np.nonzero(labels)
    lab = labels[rows, cols]
    areas = np.bincount(lab, minlength=n + 1)[1:]
    cy = np.bincount(lab, weights=rows, minlength=n + 1)[1:] / areas
    cx = np.bincount(lab, weights=cols, minlength=n + 1)[1:] / areas
    return labels, n, areas, np.stack([cy, cx], axis=1)


def match_components(
    pred_centroids: np.ndarray,
    gt_centroids: np.ndarray,
    centroid_dist: float,
    protocol: str = DEFAULT_PROTOCOL,
) -> list[tuple[int, int]]:
    """One-to-one (pred index, gt index) pairs closer than ``centroid_dist``, by the protocol's rule.

    ``basicirstd`` and ``legacy`` match greedily in label order; ``optimal`` by maximum-cardinality,
    minimum-distance assignment. Indices are 0-based label order.
    """
    protocol = resolve_protocol(protocol)
    n_p, n_g = len(pred_centroids), len(gt_centroids)
    if n_p == 0 or n_g == 0:
        return []
    d = np.sqrt(((pred_centroids[:, None, :] - gt_centroids[None, :, :]) ** 2).sum(-1))  # (n_p, n_g)
    ok = d < centroid_dist
    if protocol in ("basicirstd", "legacy"):
        pairs: list[tuple[int, int]] = []
        taken = np.zeros(n_p, dtype=bool)
        for g in range(n_g):  # targets in label order, first free prediction in label order
            cand = np.flatnonzero(ok[:, g] & ~taken)
            if len(cand):
                taken[cand[0]] = True
                pairs.append((int(cand[0]), g))
        return pairs
    # Optimal: only components with at least one candidate partner take part (noisy maps: thousands of blobs).
    rows = np.flatnonzero(ok.any(1))
    cols = np.flatnonzero(ok.any(0))
    if len(rows) == 0:
        return []
    sub_ok = ok[np.ix_(rows, cols)]
    if (
        sub_ok.sum() == min(len(rows), len(cols))
        and (sub_ok.sum(0) <= 1).all()
        and (sub_ok.sum(1) <= 1).all()
    ):
        r, c = np.nonzero(sub_ok)  # the common case: no ambiguity, nothing to optimise
        return [(int(rows[i]), int(cols[j])) for i, j in zip(r, c)]
    # Invalid pairs cost more than any set of valid ones, so the assignment first maximises the number of
    # valid pairs, then minimises their total distance.
    big = centroid_dist * min(len(rows), len(cols)) + 1.0
    cost = np.where(sub_ok, d[np.ix_(rows, cols)], big)
    r, c = linear_sum_assignment(cost)
    return [(int(rows[i]), int(cols[j])) for i, j in zip(r, c) if sub_ok[i, j]]


@dataclass
class FrameAnalysis:
    """Everything the metrics know about one frame (also used to draw overlays)."""

    pred_labels: np.ndarray  # (H, W) int, 0 background, 1..n_pred
    gt_labels: np.ndarray  # (H, W) int, 0 background, 1..n_gt
    pred_areas: np.ndarray  # (n_pred,)
    gt_areas: np.ndarray  # (n_gt,)
    pred_centroids: np.ndarray  # (n_pred, 2) row, col
    gt_centroids: np.ndarray  # (n_gt, 2)
    pairs: list[tuple[int, int]]  # (pred index, gt index), 0-based
    pred_matched: np.ndarray  # (n_pred,) bool
    gt_detected: np.ndarray  # (n_gt,) bool
    false_alarm_pixels: int  # by the protocol used
    intersection: int
    union: int

    @property
    def n_pred(self) -> int:
        return len(self.pred_areas)

    @property
    def n_gt(self) -> int:
        return len(self.gt_areas)


def analyse_frame(
    pred: np.ndarray, gt: np.ndarray, protocol: str = DEFAULT_PROTOCOL, centroid_dist: float = 3.0
) -> FrameAnalysis:
    """Components, matching and false-alarm pixels of one frame; ``pred`` and ``gt`` boolean ``(H, W)``."""
    protocol = resolve_protocol(protocol)
    p_lab, n_p, p_area, p_cent = _components(pred)
    g_lab, n_g, g_area, g_cent = _components(gt)
    pairs = match_components(p_cent, g_cent, centroid_dist, protocol)
    pred_matched = np.zeros(n_p, dtype=bool)
    gt_detected = np.zeros(n_g, dtype=bool)
    for pi, gi in pairs:
        pred_matched[pi] = True
        gt_detected[gi] = True
    if protocol == "legacy":
        # the popular codebases' rule: drop every component whose area equals some matched component's area
        fa = int(p_area[~np.isin(p_area, p_area[pred_matched])].sum())
    else:
        fa = int(p_area[~pred_matched].sum())
    inter = int(np.count_nonzero(pred & gt))
    union = int(np.count_nonzero(pred | gt))
    return FrameAnalysis(
        p_lab, g_lab, p_area, g_area, p_cent, g_cent, pairs, pred_matched, gt_detected, fa, inter, union
    )


def frame_iou(intersection: int, union: int) -> float:
    """Per-image IoU; 0.0 for a frame with neither target nor prediction, as the field's reference code."""
    return 0.0 if union == 0 else intersection / union


#: a frame whose predicted positive fraction exceeds this is "flooded": the symptom of an image-global
#: failure (issue 11), counted beside IoU so that a few such frames cannot hide in the totals.
FLOOD_FRACTION = 0.10


@dataclass
class _Totals:
    frames: int = 0
    pixels: int = 0
    intersection: int = 0
    union: int = 0
    iou_sum: float = 0.0
    targets: int = 0
    detected: int = 0
    fa_pixels: int = 0
    pred_components: int = 0
    flooded: int = 0
    per_image: list[dict] = field(default_factory=list)


class SegmentationMetrics:
    """Accumulates IoU, nIoU, Pd and Fa over frames of any size (spec section 8).

    ``update(score, gt, name)`` takes one frame at its own resolution: ``score`` a logit/score map compared
    ``> threshold``, ``gt`` the ground-truth mask (bool, {0, 1} or 0/255). ``compute()`` returns iou, niou
    and pd in %, fa in 1e-6, with the protocol, threshold and counts. ``per_image`` holds one record per
    frame. For distributed evaluation, gather every rank's ``state_dict()`` and ``merge()`` them into one
    accumulator.
    """

    def __init__(
        self,
        threshold: float = 0.0,
        protocol: str = DEFAULT_PROTOCOL,
        centroid_dist: float = 3.0,
        keep_per_image: bool = True,
    ) -> None:
        protocol = resolve_protocol(protocol)
        if not centroid_dist > 0:
            raise ValueError(f"centroid_dist must be positive, got {centroid_dist}")
        self.threshold = float(threshold)
        self.protocol = protocol
        self.centroid_dist = float(centroid_dist)
        self.keep_per_image = keep_per_image
        self._t = _Totals()

    def reset(self) -> None:
        self._t = _Totals()

    @property
    def per_image(self) -> list[dict]:
        return self._t.per_image

    def binarize(self, score: Any, name: str | None = None) -> np.ndarray:
        """The predicted mask ``score > threshold`` as a bool ``(H, W)`` array."""
        s = to_numpy_2d(score, "score", name)
        return s > self.threshold

    def update(self, score: Any, gt: Any, name: str | None = None) -> FrameAnalysis:
        """Add one frame; returns its analysis (components, matching, false-alarm pixels)."""
        pred = self.binarize(score, name)
        g = binarize_gt(to_numpy_2d(gt, "gt", name))
        if pred.shape != g.shape:
            where = f" for {name}" if name else ""
            raise ValueError(f"score and gt sizes differ{where}: {pred.shape} vs {g.shape}")
        a = analyse_frame(pred, g, self.protocol, self.centroid_dist)
        return self.add_analysis(a, name=name, shape=g.shape, pred_pixels=int(pred.sum()))

    def add_analysis(
        self,
        a: FrameAnalysis,
        name: str | None,
        shape: tuple[int, int],
        pred_pixels: int | None = None,
    ) -> FrameAnalysis:
        t = self._t
        iou = frame_iou(a.intersection, a.union)
        frac = pred_pixels / max(int(shape[0]) * int(shape[1]), 1) if pred_pixels is not None else 0.0
        t.flooded += int(frac > FLOOD_FRACTION)
        t.frames += 1
        t.pixels += int(shape[0]) * int(shape[1])
        t.intersection += a.intersection
        t.union += a.union
        t.iou_sum += iou
        t.targets += a.n_gt
        t.detected += len(a.pairs)
        t.fa_pixels += a.false_alarm_pixels
        t.pred_components += a.n_pred
        if self.keep_per_image:
            t.per_image.append(
                {
                    "name": name if name is not None else f"frame_{t.frames - 1:05d}",
                    "protocol": self.protocol,
                    "height": int(shape[0]),
                    "width": int(shape[1]),
                    "iou": iou,
                    "intersection": a.intersection,
                    "union": a.union,
                    "targets": a.n_gt,
                    "detections": len(a.pairs),
                    "missed": a.n_gt - len(a.pairs),
                    "pred_components": a.n_pred,
                    "false_components": int((~a.pred_matched).sum()),
                    "false_alarm_pixels": a.false_alarm_pixels,
                    "pred_fraction": frac,
                }
            )
        return a

    def compute(self) -> dict:
        """iou, niou, pd in %; fa in 1e-6; NaN where undefined (no frames, no union, no targets)."""
        t = self._t
        nan = float("nan")
        return {
            "protocol": self.protocol,
            "protocol_rule": PROTOCOL_RULES[self.protocol],
            "threshold": self.threshold,
            "centroid_dist": self.centroid_dist,
            "iou": 100.0 * t.intersection / t.union if t.union else nan,
            "niou": 100.0 * t.iou_sum / t.frames if t.frames else nan,
            "pd": 100.0 * t.detected / t.targets if t.targets else nan,
            "fa": 1e6 * t.fa_pixels / t.pixels if t.pixels else nan,
            "frames": t.frames,
            "pixels": t.pixels,
            "targets": t.targets,
            "detected": t.detected,
            "false_alarm_pixels": t.fa_pixels,
            "pred_components": t.pred_components,
            "flooded": t.flooded,
        }

    # -- reduction across ranks / shards -------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Plain Python numbers and lists (picklable, JSON-able), enough to ``merge`` or restore."""
        t = self._t
        return {
            "threshold": self.threshold,
            "protocol": self.protocol,
            "centroid_dist": self.centroid_dist,
            "frames": t.frames,
            "pixels": t.pixels,
            "intersection": t.intersection,
            "union": t.union,
            "iou_sum": t.iou_sum,
            "targets": t.targets,
            "detected": t.detected,
            "fa_pixels": t.fa_pixels,
            "pred_components": t.pred_components,
            "flooded": t.flooded,
            "per_image": [dict(r) for r in t.per_image],
        }

    def load_state_dict(self, state: dict) -> None:
        self.reset()
        self.merge(state)

    def merge(self, other: SegmentationMetrics | dict) -> SegmentationMetrics:
        """Add another accumulator (or its ``state_dict``) computed with the same settings."""
        s = other.state_dict() if isinstance(other, SegmentationMetrics) else other
        for key in ("threshold", "protocol", "centroid_dist"):
            if s[key] != getattr(self, key):
                raise ValueError(
                    f"cannot merge metrics with different {key}: {s[key]!r} vs {getattr(self, key)!r}"
                )
        t = self._t
        t.frames += int(s["frames"])
        t.pixels += int(s["pixels"])
        t.intersection += int(s["intersection"])
        t.union += int(s["union"])
        t.iou_sum += float(s["iou_sum"])
        t.targets += int(s["targets"])
        t.detected += int(s["detected"])
        t.fa_pixels += int(s["fa_pixels"])
        t.pred_components += int(s["pred_components"])
        t.flooded += int(s.get("flooded", 0))
        if self.keep_per_image:
            t.per_image.extend(dict(r) for r in s["per_image"])
        return self
