"""Reporting evaluation results as the paper reports them (spec section 8; paper section 4.2, Tables 1-3).

IoU, nIoU and Pd in %, Fa in units of 1e-6, each row labelled with the metrics protocol that produced it
(``basicirstd``, ``optimal`` or ``legacy``, see :mod:`irsam2.metrics.seg`; the rule of each is printed under
the table), the threshold, and the evaluation resolution. Also:
the JSON file of an evaluation, the per-image CSV sorted worst first, and overlays of the worst frames with
detected targets (green), missed targets (red) and false alarms (yellow) boxed.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from irsam2.metrics.seg import PROTOCOL_RULES, FrameAnalysis

COLOURS = {
    "detected": (0, 220, 0),  # ground-truth target with a matched prediction
    "missed": (255, 40, 40),  # ground-truth target without one
    "false": (255, 220, 0),  # predicted component matched to no target
    "mask": (0, 160, 255),  # predicted pixels, tinted
}

PER_IMAGE_FIELDS = (
    "name",
    "protocol",
    "iou",
    "targets",
    "detections",
    "missed",
    "false_components",
    "false_alarm_pixels",
    "pred_components",
    "intersection",
    "union",
    "height",
    "width",
)


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def format_table(rows: Sequence[dict], resolution: str = "", title: str = "") -> str:
    """A fixed-width table, one row per result (``SegmentationMetrics.compute()``, optionally ``auc``)."""
    head = ["protocol", "thresh", "IoU(%)", "nIoU(%)", "Pd(%)", "Fa(1e-6)", "AUC", "frames", "targets"]
    lines = []
    if title:
        lines.append(title)
    if resolution:
        lines.append(f"resolution: {resolution}")
    body = []
    for r in rows:
        body.append(
            [
                str(r["protocol"]),
                f"{r['threshold']:g}",
                _fmt(r["iou"]),
                _fmt(r["niou"]),
                "no targets" if not r["targets"] else _fmt(r["pd"]),
                _fmt(r["fa"]),
                _fmt(r.get("auc"), 4),
                str(r["frames"]),
                str(r["targets"]),
            ]
        )
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines.append("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(head, widths))))
    for b in body:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(b, widths))))
    if not rows:
        lines.append("no results")
        return "\n".join(lines)
    lines.append(
        "IoU: cumulative over the set; nIoU: mean per image (a frame with no target and no prediction "
        f"counts 0); Pd: 8-connected targets, centroid < d = {rows[0]['centroid_dist']:g} px; "
        "Fa: false-alarm pixels / all pixels"
    )
    for p in dict.fromkeys(str(r["protocol"]) for r in rows):
        lines.append(f"  {p}: {PROTOCOL_RULES.get(p, '?')}")
    return "\n".join(lines)


def _json_safe(x: Any) -> Any:
    """NaN/inf become null (JSON has no NaN); numpy scalars and arrays become Python ones."""
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return _json_safe(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(payload: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(payload), indent=2) + "\n")
    return path


def worst_first(records: Sequence[dict]) -> list[dict]:
    """Lowest IoU first; ties broken by more missed targets, then more false-alarm pixels, then name."""
    return sorted(records, key=lambda r: (r["iou"], -r["missed"], -r["false_alarm_pixels"], str(r["name"])))


def write_per_image_csv(records: Sequence[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(PER_IMAGE_FIELDS), extrasaction="ignore")
        w.writeheader()
        for r in worst_first(records):
            w.writerow({k: (f"{r[k]:.6f}" if k == "iou" else r[k]) for k in PER_IMAGE_FIELDS})
    return path


def _to_display(image: np.ndarray) -> np.ndarray:
    """A grey frame of any range as uint8 (min-max stretched; a flat frame becomes mid-grey)."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3:
        img = img[0] if img.shape[0] in (1, 3) else img.mean(-1)
    lo, hi = float(np.nanmin(img)), float(np.nanmax(img))
    if not hi > lo:
        return np.full(img.shape, 128, np.uint8)
    return np.clip((img - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)


def draw_overlay(
    image: np.ndarray,
    analysis: FrameAnalysis,
    path: str | Path,
    title: str = "",
    min_side: int = 384,
) -> Path:
    """Save a PNG of the frame with predicted pixels tinted and targets boxed by outcome.

    Green: detected target; red: missed target; yellow: false alarm (predicted component matched to no
    target). Small frames are enlarged by an integer factor (nearest) so that the boxes stay visible.
    """
    grey = _to_display(image)
    h, w = grey.shape
    if analysis.gt_labels.shape != (h, w):
        raise ValueError(f"overlay: image is {h}x{w} but the analysis is {analysis.gt_labels.shape}")
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    pred = analysis.pred_labels > 0
    rgb[pred] = 0.5 * rgb[pred] + 0.5 * np.array(COLOURS["mask"], np.float32)
    k = max(1, int(math.ceil(min_side / max(1, min(h, w)))))
    canvas = Image.fromarray(rgb.astype(np.uint8)).resize((w * k, h * k), Image.NEAREST)
    band = 14 if title else 0
    out = Image.new("RGB", (w * k, h * k + band), (0, 0, 0))
    out.paste(canvas, (0, band))
    draw = ImageDraw.Draw(out)
    pad = 2

    def box(sl: tuple[slice, slice], colour: tuple[int, int, int]) -> None:
        y0, y1 = sl[0].start * k - pad, sl[0].stop * k + pad - 1
        x0, x1 = sl[1].start * k - pad, sl[1].stop * k + pad - 1
        draw.rectangle([x0, y0 + band, x1, y1 + band], outline=colour, width=max(1, k // 2))

    for i, sl in enumerate(ndimage.find_objects(analysis.gt_labels)):
        if sl is not None:
            box(sl, COLOURS["detected"] if analysis.gt_detected[i] else COLOURS["missed"])
    for i, sl in enumerate(ndimage.find_objects(analysis.pred_labels)):
        if sl is not None and not analysis.pred_matched[i]:
            box(sl, COLOURS["false"])
    if title:
        draw.text((2, 1), title, fill=(255, 255, 255))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path)
    return path
