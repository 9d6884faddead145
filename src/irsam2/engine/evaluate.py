"""Evaluation of a model, or of a folder of predictions, on a test split (spec sections 1 and 8).

Native protocol (default): every frame is padded at the bottom/right to a multiple of 32 (0 in normalised
units, the dataset's test-time padding), run through the model, and the final logits are cropped back to the
frame's own size, so IoU, nIoU, Pd, Fa and the ROC are computed at each frame's own resolution -- frames of
different sizes in one test set (NUAA-SIRST) included. ``resize=256`` reproduces the release's protocol
instead: image resized to 256 x 256 (bilinear), mask resized with nearest neighbour, metrics computed at 256
x 256.

Score spaces. Model mode: the metrics threshold applies to the logits (default 0); the ROC and Pd-Fa sweeps
use probabilities (sigmoid). Predictions mode: image files are scaled to [0, 1] (8-bit / 255, 16-bit / 65535);
``.npy`` files are used as they are when they lie in [0, 1], and taken for logits (sigmoid applied, with a
warning) otherwise; the metrics threshold applies to these [0, 1] scores (default 0.5).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from irsam2.metrics import DEFAULT_PROTOCOL, ROCAccumulator, SegmentationMetrics, analyse_frame
from irsam2.metrics.report import (
    draw_overlay,
    format_table,
    worst_first,
    write_json,
    write_per_image_csv,
)
from irsam2.metrics.roc import DEFAULT_PDFA_THRESHOLDS, plot_curves, save_pdfa_csv, save_roc_csv
from irsam2.utils import UserError
from irsam2.utils import progress as progress_bar

log = logging.getLogger("irsam2.evaluate")

MULTIPLE = 32  # the network's total stride (DESIGN.md, Model)
PRED_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".npy")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))  # overflow-free logistic


def _resize(a: np.ndarray, size: int, nearest: bool) -> np.ndarray:
    import cv2

    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    src = a.astype(np.uint8) if a.dtype == bool else a.astype(np.float32, copy=False)
    out = cv2.resize(src, (size, size), interpolation=interp)
    return out.astype(bool) if a.dtype == bool else out


@dataclass
class EvalResult:
    """Everything an evaluation produced; ``write_outputs`` turns it into files."""

    metrics: list[dict]  # one SegmentationMetrics.compute() per protocol, plus "auc"
    roc: dict | None
    per_image: list[dict]  # records of the first protocol
    settings: dict
    worst: list[dict] = field(
        default_factory=list
    )  # record + image/pred/gt of the worst frames, for overlays

    def table(self) -> str:
        return format_table(self.metrics, resolution=self.settings.get("resolution", ""))


class EvalAccumulator:
    """Feeds frames to one SegmentationMetrics per protocol and the ROC; keeps the worst frames."""

    def __init__(
        self,
        threshold: float,
        protocols: Sequence[str] = (DEFAULT_PROTOCOL,),
        score_is_logit: bool = True,
        roc: bool = True,
        roc_thresholds: Any = None,
        pdfa_thresholds: Any = DEFAULT_PDFA_THRESHOLDS,
        keep_worst: int = 0,
    ) -> None:
        if not protocols:
            raise UserError("at least one metrics protocol is needed")
        self.metrics = [SegmentationMetrics(threshold, p) for p in protocols]
        self.score_is_logit = score_is_logit
        self.roc = ROCAccumulator(roc_thresholds, pdfa_thresholds, protocols[0]) if roc else None
        self.keep_worst = int(keep_worst)
        self._worst: list[tuple[tuple, dict]] = []

    def add(self, score: np.ndarray, gt: np.ndarray, name: str, image: np.ndarray | None = None) -> None:
        for m in self.metrics:
            m.update(score, gt, name)
        if self.roc is not None:
            self.roc.update(_sigmoid(score) if self.score_is_logit else score, gt, name)
        if self.keep_worst > 0:
            rec = self.metrics[0].per_image[-1]
            key = (rec["iou"], -rec["missed"], -rec["false_alarm_pixels"], str(rec["name"]))
            self._worst.append(
                (key, {"record": rec, "image": image, "pred": self.metrics[0].binarize(score), "gt": gt > 0})
            )
            if len(self._worst) > 2 * self.keep_worst:  # bounded memory: keep the worst ones so far
                self._worst.sort(key=lambda kv: kv[0])
                del self._worst[self.keep_worst :]

    def result(self, settings: dict) -> EvalResult:
        roc = self.roc.compute() if self.roc is not None else None
        rows = []
        for m in self.metrics:
            r = m.compute()
            r["auc"] = roc["auc"] if roc is not None else None
            rows.append(r)
        self._worst.sort(key=lambda kv: kv[0])
        worst = [v for _, v in self._worst[: self.keep_worst]]
        return EvalResult(rows, roc, list(self.metrics[0].per_image), settings, worst)


def _check_resize(resize: int | None) -> None:
    if resize is not None and (resize <= 0 or resize % MULTIPLE):
        raise UserError(f"--resize must be a positive multiple of {MULTIPLE}, got {resize}")


def _forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out[0] if isinstance(out, (tuple, list)) else out


def _pad(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[-2:]
    ph, pw = (-h) % MULTIPLE, (-w) % MULTIPLE
    if ph == 0 and pw == 0:
        return img
    return np.pad(img, ((0, 0), (0, ph), (0, pw)))  # 0 in normalised units: the training mean


def _as_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _identity(x: Any) -> Any:
    return x


@torch.no_grad()
def evaluate_model(
    model: torch.nn.Module,
    dataset: Iterable[dict],
    *,
    device: str | torch.device = "cpu",
    resize: int | None = None,
    threshold: float = 0.0,
    protocols: Sequence[str] = (DEFAULT_PROTOCOL,),
    roc: bool = True,
    roc_thresholds: Any = None,
    pdfa_thresholds: Any = DEFAULT_PDFA_THRESHOLDS,
    keep_worst: int = 0,
    batch_size: int = 4,
    workers: int = 0,
    progress: bool = False,
    settings: dict | None = None,
) -> EvalResult:
    """Run ``model`` (eval mode) over dataset items (DESIGN.md: image, mask, stem, orig_size) and score them.

    Frames are batched only with frames of the same padded size (never padded to a batch's largest frame).
    """
    _check_resize(resize)
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    device = torch.device(device)
    model.eval()
    acc = EvalAccumulator(threshold, protocols, True, roc, roc_thresholds, pdfa_thresholds, keep_worst)
    if isinstance(dataset, torch.utils.data.Dataset) and workers > 0:
        items: Iterable[dict] = torch.utils.data.DataLoader(
            dataset, batch_size=None, num_workers=workers, collate_fn=_identity
        )
    else:
        items = dataset
    buckets: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray, str]]] = {}

    def flush(group: list[tuple[np.ndarray, np.ndarray, str]]) -> None:
        x = torch.from_numpy(np.stack([_pad(img) for img, _, _ in group])).to(device)
        logits = _forward(model, x).float().cpu().numpy()
        for j, (img, gt, stem) in enumerate(group):
            h, w = gt.shape
            acc.add(logits[j, 0, :h, :w], gt, stem, img[0] if keep_worst else None)

    bar = None
    if progress:
        bar = progress_bar(
            total=len(dataset) if hasattr(dataset, "__len__") else None, desc="eval", unit="frame"
        )
    for item in items:
        h, w = (int(v) for v in item.get("orig_size", _as_numpy(item["mask"]).shape[-2:]))
        img = _as_numpy(item["image"]).astype(np.float32, copy=False)[:, :h, :w]
        gt = _as_numpy(item["mask"]).reshape(-1, *_as_numpy(item["mask"]).shape[-2:])[0, :h, :w] > 0.5
        if resize is not None:
            img = np.stack([_resize(c, resize, nearest=False) for c in img])
            gt = _resize(gt, resize, nearest=True)
        key = _pad(img).shape[-2:]
        group = buckets.setdefault(key, [])
        group.append((img, gt, str(item["stem"])))
        if len(group) >= batch_size:
            flush(buckets.pop(key))
        if bar is not None:
            bar.update(1)
    for group in buckets.values():
        flush(group)
    if bar is not None:
        bar.close()
    info = {"mode": "model", "resolution": resolution_name(resize), "device": str(device)} | (settings or {})
    return acc.result(info)


def resolution_name(resize: int | None, padded: bool = True) -> str:
    """How frames were scored; ``padded``: a model ran on them (padded to its stride, then cropped back)."""
    if resize is None:
        if not padded:  # predictions and baselines are scored as they are
            return "native (each frame at its own size)"
        return "native (padded to a multiple of 32, cropped back)"
    return f"resized to {resize}x{resize} (the release's protocol)"


# -- predictions mode ---------------------------------------------------------------------------------------
def index_predictions(folder: str | os.PathLike) -> dict[str, Path]:
    """``stem -> file`` for the prediction files of a folder (images or ``.npy``); duplicates are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: predictions folder not found")
    index: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in PRED_EXTENSIONS:
            if p.stem in index:
                raise UserError(
                    f"{folder}: two prediction files for stem {p.stem!r}: {index[p.stem].name}, {p.name}"
                )
            index[p.stem] = p
    if not index:
        raise UserError(f"{folder}: no prediction files ({', '.join(PRED_EXTENSIONS)})")
    return index


def read_prediction(path: Path) -> tuple[np.ndarray, bool]:
    """A prediction as float scores in [0, 1]; the flag says whether logits were converted (``.npy`` only)."""
    if path.suffix.lower() == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise UserError(f"{path}: not a readable .npy array: {e}") from e
        a = np.squeeze(a)
        if a.ndim != 2:
            raise UserError(f"{path}: expected a (H, W) score map, got shape {a.shape}")
        if a.dtype == bool:
            return a.astype(np.float32), False
        a = a.astype(np.float64)
        if np.isnan(a).any():
            raise UserError(f"{path}: the score map holds NaN values")
        if a.min() < 0 or a.max() > 1:
            return _sigmoid(a), True
        return a, False
    from irsam2.data.io import read_frame

    frame, _ = read_frame(path)
    return frame, False


def split_files(
    root: str | os.PathLike, split: str, **kwargs: Any
) -> tuple[list[str], list[Path], list[Path]]:
    """Stems, image files and mask files of a split of a dataset folder (layout detected by irsam2.data)."""
    from irsam2.data.layouts import resolve_split

    r = resolve_split(root, split, **kwargs)
    return list(r.stems), list(r.images), list(r.masks)


def evaluate_predictions(
    predictions: str | os.PathLike,
    stems: Sequence[str],
    images: Sequence[Path],
    masks: Sequence[Path],
    *,
    resize: int | None = None,
    threshold: float = 0.5,
    protocols: Sequence[str] = (DEFAULT_PROTOCOL,),
    roc: bool = True,
    roc_thresholds: Any = None,
    pdfa_thresholds: Any = DEFAULT_PDFA_THRESHOLDS,
    keep_worst: int = 0,
    progress: bool = False,
    settings: dict | None = None,
    strict: bool = False,
    mask_threshold: float | None = None,
) -> EvalResult:
    """Score a folder of predicted masks / score maps (``<stem>.<ext>``) against the split's ground truth
    (masks read as :func:`irsam2.data.io.read_mask` with ``strict`` and ``mask_threshold``)."""
    from PIL import Image

    from irsam2.data.io import read_frame, read_mask, scan_masks

    _check_resize(resize)
    index = index_predictions(predictions)
    missing = [s for s in stems if s not in index]
    if missing:
        shown = ", ".join(missing[:20]) + (f", ... ({len(missing) - 20} more)" if len(missing) > 20 else "")
        raise UserError(f"{predictions}: no prediction for {len(missing)} of {len(stems)} frames: {shown}")
    scan_masks(list(masks), "ground truth", strict, mask_threshold)
    acc = EvalAccumulator(threshold, protocols, False, roc, roc_thresholds, pdfa_thresholds, keep_worst)
    converted = []
    it: Iterable = zip(stems, images, masks)
    if progress:
        it = progress_bar(list(it), desc="eval", unit="frame")
    for stem, img_path, mask_path in it:
        with Image.open(img_path) as im:
            size = (im.height, im.width)
        gt = read_mask(mask_path, size=size, strict=strict, threshold=mask_threshold)
        score, was_logit = read_prediction(index[stem])
        if was_logit:
            converted.append(stem)
        if resize is not None:
            gt = _resize(gt, resize, nearest=True)
            if score.shape != gt.shape:
                score = _resize(score, resize, nearest=False)
        elif score.shape != gt.shape:
            raise UserError(
                f"{index[stem]}: prediction is {score.shape[1]}x{score.shape[0]} but the frame is "
                f"{gt.shape[1]}x{gt.shape[0]}; predictions must be at the frame's own resolution "
                f"(or pass --resize 256 to score both at 256x256)"
            )
        image = None
        if keep_worst:
            image = read_frame(img_path)[0]
            if resize is not None:
                image = _resize(image, resize, nearest=False)
        acc.add(score, gt, stem, image)
    if converted:
        warnings.warn(
            f"{predictions}: {len(converted)} .npy score maps lie outside [0, 1] and were taken for logits "
            f"(sigmoid applied), e.g. {converted[0]}",
            UserWarning,
            stacklevel=2,
        )
    info = {
        "mode": "predictions",
        "predictions": str(predictions),
        "resolution": resolution_name(resize, padded=False),
    }
    return acc.result(info | (settings or {}))


# -- files ---------------------------------------------------------------------------------------------------
def write_outputs(result: EvalResult, out_dir: str | os.PathLike, overlays: int = 0) -> dict[str, Path]:
    """metrics.json, per_image.csv (worst first), roc.csv, pdfa.csv, roc.png and ``overlays/`` PNGs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    payload = {"settings": result.settings, "metrics": result.metrics}
    if result.roc is not None:
        payload["roc"] = {
            k: result.roc[k] for k in ("auc", "thresholds", "tpr", "fpr", "pdfa_thresholds", "pd", "fa")
        }
    paths["json"] = write_json(payload, out / "metrics.json")
    paths["per_image"] = write_per_image_csv(result.per_image, out / "per_image.csv")
    if result.roc is not None:
        paths["roc_csv"] = save_roc_csv(result.roc, out / "roc.csv")
        paths["pdfa_csv"] = save_pdfa_csv(result.roc, out / "pdfa.csv")
        paths["roc_png"] = plot_curves(
            result.roc, out / "roc.png", title=str(result.settings.get("name", ""))
        )
    if overlays > 0:
        odir = out / "overlays"
        m0 = result.metrics[0]
        names = {r["name"]: i for i, r in enumerate(worst_first(result.per_image))}
        for w in result.worst[:overlays]:
            rec = w["record"]
            a = analyse_frame(w["pred"], w["gt"], m0["protocol"], m0["centroid_dist"])
            rank = names.get(rec["name"], 0)
            title = (
                f"{rec['name']}  IoU {100 * rec['iou']:.1f}%  targets {rec['targets']}  detected "
                f"{rec['detections']}  false px {rec['false_alarm_pixels']}"
            )
            img = w["image"] if w["image"] is not None else np.zeros(w["gt"].shape, np.float32)
            p = draw_overlay(img, a, odir / f"{rank + 1:03d}_{_safe(rec['name'])}.png", title=title)
            paths[f"overlay_{rank + 1}"] = p
    return paths


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]
