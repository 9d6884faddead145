"""ROC curves of infrared small target detection (spec section 8: pixel ROC with AUC, and Pd against Fa).

- Pixel ROC: over a fixed sweep of thresholds, TPR = predicted target pixels / target pixels and FPR =
  predicted background pixels / background pixels, a pixel being predicted when its score is ``> threshold``.
  Accumulated with one histogram of scores per class and frame (``searchsorted`` + ``bincount``), so a frame
  costs O(pixels x log thresholds) whatever the number of thresholds. AUC is the trapezoid area under the
  points sorted by FPR, closed with (0, 0) (threshold above every score) and (1, 1) (threshold below every
  score).
- Pd-Fa: the target-level metrics of :mod:`irsam2.metrics.seg` (same protocol) at each of a shorter list of
  thresholds (each costs a connected-component pass per frame).

Default thresholds are for probabilities in [0, 1] (sigmoid of the logits); pass your own for other scores.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from irsam2.metrics.seg import (
    DEFAULT_PROTOCOL,
    SegmentationMetrics,
    binarize_gt,
    resolve_protocol,
    to_numpy_2d,
)

DEFAULT_THRESHOLDS = np.linspace(0.0, 1.0, 201)
DEFAULT_PDFA_THRESHOLDS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)


def _sorted_unique(values: Any, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{what}: at least one threshold is needed")
    if np.isnan(a).any():
        raise ValueError(f"{what}: thresholds must not be NaN")
    return np.unique(a)


def auc_trapezoid(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under (fpr, tpr) points of a threshold sweep, closed with (0, 0) and (1, 1)."""
    x = np.concatenate([[0.0], np.asarray(fpr, np.float64), [1.0]])
    y = np.concatenate([[0.0], np.asarray(tpr, np.float64), [1.0]])
    if np.isnan(x).any() or np.isnan(y).any():
        return float("nan")
    order = np.lexsort((y, x))  # by FPR, then TPR: a monotone staircase
    return float(np.trapezoid(y[order], x[order]))


class ROCAccumulator:
    """Pixel TPR/FPR over ``thresholds`` (with AUC) and Pd/Fa over ``pdfa_thresholds``, frame by frame.

    ``update(score, gt, name)`` takes one frame at its own resolution, in the same score space as the
    thresholds. ``state_dict()`` / ``merge()`` reduce across ranks like :class:`SegmentationMetrics`.
    """

    def __init__(
        self,
        thresholds: Any = None,
        pdfa_thresholds: Any = DEFAULT_PDFA_THRESHOLDS,
        protocol: str = DEFAULT_PROTOCOL,
        centroid_dist: float = 3.0,
    ) -> None:
        self.thresholds = _sorted_unique(
            DEFAULT_THRESHOLDS if thresholds is None else thresholds, "thresholds"
        )
        pdfa = () if pdfa_thresholds is None else pdfa_thresholds
        self.pdfa_thresholds = _sorted_unique(pdfa, "pdfa_thresholds") if len(pdfa) else np.zeros(0)
        self.protocol = resolve_protocol(protocol)
        self.centroid_dist = float(centroid_dist)
        self.reset()

    def reset(self) -> None:
        n = len(self.thresholds)
        self.tp = np.zeros(n, np.int64)  # target pixels with score > threshold
        self.fp = np.zeros(n, np.int64)  # background pixels with score > threshold
        self.positives = 0
        self.negatives = 0
        self.frames = 0
        self._pdfa = [
            SegmentationMetrics(float(t), self.protocol, self.centroid_dist, keep_per_image=False)
            for t in self.pdfa_thresholds
        ]

    def _above(self, scores: np.ndarray) -> np.ndarray:
        """For each threshold, how many of ``scores`` are strictly above it."""
        # searchsorted(side="left") = number of thresholds strictly below the score
        idx = np.searchsorted(self.thresholds, scores, side="left")
        counts = np.bincount(idx, minlength=len(self.thresholds) + 1)
        tail = np.cumsum(counts[::-1])[::-1]  # tail[k] = #scores with idx >= k
        return tail[1:]  # score > thresholds[k]  <=>  idx >= k + 1

    def update(self, score: Any, gt: Any, name: str | None = None) -> None:
        s = to_numpy_2d(score, "score", name)
        g = binarize_gt(to_numpy_2d(gt, "gt", name))
        if s.shape != g.shape:
            where = f" for {name}" if name else ""
            raise ValueError(f"score and gt sizes differ{where}: {s.shape} vs {g.shape}")
        if s.dtype == bool:
            s = s.astype(np.float64)
        elif np.issubdtype(s.dtype, np.floating) and np.isnan(s).any():
            s = np.where(np.isnan(s), -np.inf, s)  # NaN never counts as predicted
        pos = s[g]
        neg = s[~g]
        self.tp += self._above(pos)
        self.fp += self._above(neg)
        self.positives += int(pos.size)
        self.negatives += int(neg.size)
        self.frames += 1
        for m in self._pdfa:
            m.update(s, g, name)

    def compute(self) -> dict:
        with np.errstate(invalid="ignore", divide="ignore"):
            tpr = self.tp / self.positives if self.positives else np.full(len(self.thresholds), np.nan)
            fpr = self.fp / self.negatives if self.negatives else np.full(len(self.thresholds), np.nan)
        pdfa = [m.compute() for m in self._pdfa]
        return {
            "protocol": self.protocol,
            "frames": self.frames,
            "thresholds": self.thresholds.tolist(),
            "tpr": tpr.tolist(),
            "fpr": fpr.tolist(),
            "auc": auc_trapezoid(fpr, tpr),
            "positives": self.positives,
            "negatives": self.negatives,
            "pdfa_thresholds": self.pdfa_thresholds.tolist(),
            "pd": [r["pd"] for r in pdfa],
            "fa": [r["fa"] for r in pdfa],
            "pdfa_detected": [r["detected"] for r in pdfa],
            "pdfa_targets": [r["targets"] for r in pdfa],
            "pdfa_false_alarm_pixels": [r["false_alarm_pixels"] for r in pdfa],
        }

    def state_dict(self) -> dict:
        return {
            "thresholds": self.thresholds.tolist(),
            "pdfa_thresholds": self.pdfa_thresholds.tolist(),
            "protocol": self.protocol,
            "centroid_dist": self.centroid_dist,
            "tp": self.tp.tolist(),
            "fp": self.fp.tolist(),
            "positives": self.positives,
            "negatives": self.negatives,
            "frames": self.frames,
            "pdfa": [m.state_dict() for m in self._pdfa],
        }

    def merge(self, other: ROCAccumulator | dict) -> ROCAccumulator:
        s = other.state_dict() if isinstance(other, ROCAccumulator) else other
        if (
            s["thresholds"] != self.thresholds.tolist()
            or s["pdfa_thresholds"] != self.pdfa_thresholds.tolist()
        ):
            raise ValueError("cannot merge ROC accumulators with different thresholds")
        if s["protocol"] != self.protocol or s["centroid_dist"] != self.centroid_dist:
            raise ValueError("cannot merge ROC accumulators with different protocol or centroid distance")
        self.tp += np.asarray(s["tp"], np.int64)
        self.fp += np.asarray(s["fp"], np.int64)
        self.positives += int(s["positives"])
        self.negatives += int(s["negatives"])
        self.frames += int(s["frames"])
        for m, ms in zip(self._pdfa, s["pdfa"]):
            m.merge(ms)
        return self


def save_roc_csv(result: dict, path: str | Path) -> Path:
    """Pixel ROC points, one row per threshold."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["threshold", "tpr", "fpr"])
        for t, tp, fp in zip(result["thresholds"], result["tpr"], result["fpr"]):
            w.writerow([f"{t:.6g}", f"{tp:.8g}", f"{fp:.8g}"])
    return path


def save_pdfa_csv(result: dict, path: str | Path) -> Path:
    """Pd (%) and Fa (1e-6) per threshold, with the counts behind them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["threshold", "pd_percent", "fa_1e-6", "detected", "targets", "false_alarm_pixels", "protocol"]
        )
        rows = zip(
            result["pdfa_thresholds"],
            result["pd"],
            result["fa"],
            result["pdfa_detected"],
            result["pdfa_targets"],
            result["pdfa_false_alarm_pixels"],
        )
        for t, pd, fa, det, tgt, fap in rows:
            w.writerow([f"{t:.6g}", f"{pd:.6g}", f"{fa:.6g}", det, tgt, fap, result["protocol"]])
    return path


def plot_curves(result: dict, path: str | Path, title: str = "") -> Path:
    """Draw the pixel ROC (with AUC) and the Pd-Fa curve side by side into a PNG (matplotlib, Agg backend)."""
    # The object API renders PNG with the Agg canvas and leaves the global pyplot backend alone.
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(10, 4.5), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    fpr = np.concatenate([[1.0], np.asarray(result["fpr"], np.float64), [0.0]])
    tpr = np.concatenate([[1.0], np.asarray(result["tpr"], np.float64), [0.0]])
    ax1.plot(fpr, tpr, lw=1.5, label=f"AUC = {result['auc']:.4f}")
    ax1.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    ax1.set_xscale("symlog", linthresh=1e-5)
    ax1.set_xlim(0, 1)
    ax1.set_ylim(0, 1.01)
    ax1.set_xlabel("pixel false positive rate (symlog)")
    ax1.set_ylabel("pixel true positive rate")
    ax1.set_title("pixel ROC")
    ax1.legend(loc="lower right")
    ax1.grid(alpha=0.3)
    if len(result["pdfa_thresholds"]):
        fa = np.asarray(result["fa"], np.float64)
        pd = np.asarray(result["pd"], np.float64)
        ax2.plot(fa, pd, marker="o", ms=3, lw=1.2)
        for t, x, y in zip(result["pdfa_thresholds"], fa, pd):
            ax2.annotate(f"{t:g}", (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax2.set_xscale("symlog", linthresh=1.0)  # Fa spans 0 to 1e6 across thresholds
    ax2.set_xlabel("Fa (x 1e-6, symlog)")
    ax2.set_ylabel("Pd (%)")
    ax2.set_title(f"Pd vs Fa ({result['protocol']} protocol)")
    ax2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    return path
