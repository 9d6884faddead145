"""Metrics of infrared small target detection (spec section 8): IoU, nIoU, Pd, Fa, pixel ROC and Pd-Fa."""

from __future__ import annotations

from irsam2.metrics.roc import ROCAccumulator, auc_trapezoid
from irsam2.metrics.seg import (
    DEFAULT_PROTOCOL,
    PROTOCOLS,
    FrameAnalysis,
    SegmentationMetrics,
    analyse_frame,
    match_components,
    resolve_protocol,
)

__all__ = [
    "DEFAULT_PROTOCOL",
    "PROTOCOLS",
    "FrameAnalysis",
    "ROCAccumulator",
    "SegmentationMetrics",
    "analyse_frame",
    "auc_trapezoid",
    "match_components",
    "resolve_protocol",
]
