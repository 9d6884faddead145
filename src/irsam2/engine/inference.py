"""Inference on raw frames: pad to a multiple of 32, batch, run, crop back, extract targets.

Spec sections 1 and 8: a single-channel infrared frame of any size (8- or 16-bit, scaled to [0, 1]) is
padded to a multiple of 32 for the network and the output is cropped back so that the mask has the frame's
own resolution; the binary mask is ``logit > 0`` and targets are its 8-connected components.

The batching, padding and target extraction here are plain NumPy and shared by the torch `Predictor` and the
onnxruntime runner of :mod:`irsam2.deploy.onnx`; both run the same "frame model": a ``(B, 1, H, W)`` frame
in [0, 1] (H, W multiples of 32) in, the final logits ``(B, 1, H, W)`` out, the checkpoint's normalisation
inside.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from irsam2.utils import UserError, pick_device

MULTIPLE = 32  # the trunk's total stride: H and W must be multiples of it (DESIGN.md, Model)
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def pad_to_multiple(frame: np.ndarray, multiple: int = MULTIPLE, value: float = 0.0) -> np.ndarray:
    """Pad an ``(H, W)`` frame at the bottom and right to multiples of ``multiple`` with ``value``.

    The runners pass the training mean, i.e. 0 after normalisation: the same test-time padding as
    ``irsam2.data.transforms.pad_to_multiple`` uses for evaluation, so predictions match the evaluated model.
    """
    h, w = frame.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return frame
    return np.pad(frame, ((0, ph), (0, pw)), mode="constant", constant_values=value)


def padded_shape(shape: tuple[int, int], multiple: int = MULTIPLE) -> tuple[int, int]:
    h, w = shape
    return h + (-h) % multiple, w + (-w) % multiple


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


@dataclass
class Target:
    """One detected target: an 8-connected component of ``logit > threshold``.

    ``box`` is ``(x0, y0, x1, y1)`` with x1, y1 exclusive (DESIGN.md convention), ``centroid`` is ``(x, y)``,
    the unweighted mean of the component's pixel coordinates; ``peak_score`` is the highest sigmoid
    probability in the component and ``peak_logit`` its logit.
    """

    centroid: tuple[float, float]
    box: tuple[int, int, int, int]
    area: int
    peak_score: float
    peak_logit: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "centroid": [round(self.centroid[0], 3), round(self.centroid[1], 3)],
            "box": list(self.box),
            "area": self.area,
            "peak_score": round(self.peak_score, 6),
            "peak_logit": round(self.peak_logit, 4),
        }


def extract_targets(logits: np.ndarray, threshold: float = 0.0) -> list[Target]:
    """8-connected components of ``logits > threshold`` as `Target` records, ordered by peak score."""
    mask = logits > threshold
    labels, n = ndimage.label(mask, structure=EIGHT_CONNECTED)
    if n == 0:
        return []
    index = np.arange(1, n + 1)
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    centres = ndimage.center_of_mass(mask, labels, index)
    peaks = ndimage.maximum(logits, labels, index)
    targets = []
    for i, sl in enumerate(ndimage.find_objects(labels)):
        cy, cx = centres[i]
        box = (int(sl[1].start), int(sl[0].start), int(sl[1].stop), int(sl[0].stop))
        peak = float(peaks[i])
        targets.append(
            Target((float(cx), float(cy)), box, int(areas[i]), float(sigmoid(np.float64(peak))), peak)
        )
    targets.sort(key=lambda t: -t.peak_logit)
    return targets


@dataclass
class FramePrediction:
    """The network's output for one frame, at the frame's own size."""

    key: str
    frame: np.ndarray  # (H, W) float32 in [0, 1]
    logits: np.ndarray  # (H, W) float32
    threshold: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        return self.logits > self.threshold

    def targets(self) -> list[Target]:
        return extract_targets(self.logits, self.threshold)


class FrameRunner:
    """Batches frames of any size through a frame model; subclasses implement `run_batch`.

    Frames are grouped by padded size (never padded to a batch's largest frame: with the FFT-based RHPM head
    the output would then depend on which frames share the batch).
    """

    def __init__(self, batch_size: int = 8, threshold: float = 0.0, pad_value: float = 0.0) -> None:
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.threshold = float(threshold)
        self.pad_value = float(pad_value)  # the training mean: 0 after normalisation

    def run_batch(self, x: np.ndarray) -> np.ndarray:
        """``(B, 1, H, W)`` float32 frames in [0, 1] -> ``(B, 1, H, W)`` float32 logits."""
        raise NotImplementedError

    def _flush(self, pending: list[tuple[str, np.ndarray, dict]]) -> list[FramePrediction]:
        x = np.stack([pad_to_multiple(f, value=self.pad_value) for _, f, _ in pending])[:, None].astype(
            np.float32, copy=False
        )
        out = self.run_batch(x)
        return [
            FramePrediction(key, frame, np.ascontiguousarray(out[i, 0, : frame.shape[0], : frame.shape[1]]),
                            self.threshold, meta)
            for i, (key, frame, meta) in enumerate(pending)
        ]  # fmt: skip

    def predict_stream(
        self, items: Iterable[tuple[str, np.ndarray, dict]] | Iterable[tuple[str, np.ndarray]]
    ) -> Iterator[FramePrediction]:
        """Yield a `FramePrediction` per ``(key, frame[, meta])``; order follows batch completion."""
        pending: dict[tuple[int, int], list[tuple[str, np.ndarray, dict]]] = {}
        for item in items:
            key, frame = item[0], item[1]
            meta = item[2] if len(item) > 2 else {}
            frame = np.asarray(frame, dtype=np.float32)
            if frame.ndim != 2:
                raise UserError(f"{key}: expected a single-channel (H, W) frame, got shape {frame.shape}")
            group = pending.setdefault(padded_shape(frame.shape), [])
            group.append((key, frame, meta))
            if len(group) >= self.batch_size:
                yield from self._flush(group)
                group.clear()
        for group in pending.values():
            if group:
                yield from self._flush(group)

    def predict(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Logits ``(H, W)`` for each frame, in input order."""
        results = {p.key: p.logits for p in self.predict_stream((str(i), f) for i, f in enumerate(frames))}
        return [results[str(i)] for i in range(len(frames))]


class FrameModel(torch.nn.Module):
    """The frame model: 1-channel frame in [0, 1] -> the model's final logits (spec section 1).

    Normalises with the checkpoint's training-split mean/std and replicates the channel 3x for the SAM2 trunk,
    so that callers (and the exported ONNX file) need no knowledge of the normalisation.
    """

    def __init__(self, model: torch.nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(float(mean)), persistent=False)
        self.register_buffer("std", torch.tensor(float(std)), persistent=False)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        x = (frame - self.mean) / self.std
        return self.model(torch.cat([x, x, x], dim=1))[0]


def norm_from_checkpoint(ckpt: dict, source: str | os.PathLike = "checkpoint") -> tuple[float, float]:
    norm = ckpt.get("norm")
    if not norm or "mean" not in norm or "std" not in norm:
        raise UserError(
            f"{source}: checkpoint has no 'norm' entry with mean and std; re-save it with irsam2 train"
        )
    return float(norm["mean"]), float(norm["std"])


class Predictor(FrameRunner):
    """Runs an IR-SAM2 model from a checkpoint on frames of any size, on CUDA when present."""

    def __init__(
        self,
        model: torch.nn.Module,
        norm: dict | tuple[float, float],
        device: str | torch.device | None = None,
        batch_size: int = 8,
        threshold: float = 0.0,
    ) -> None:
        mean, std = (norm["mean"], norm["std"]) if isinstance(norm, dict) else norm
        super().__init__(batch_size, threshold, pad_value=mean)
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.frame_model = FrameModel(model, mean, std).to(self.device).eval()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | None = None, **kwargs: Any) -> Predictor:
        from irsam2.checkpoint import model_from_checkpoint

        model, ckpt = model_from_checkpoint(path, map_location="cpu")
        return cls(model, norm_from_checkpoint(ckpt, path), device=device, **kwargs)

    @torch.inference_mode()
    def run_batch(self, x: np.ndarray) -> np.ndarray:
        out = self.frame_model(torch.from_numpy(x).to(self.device, non_blocking=True))
        return out.float().cpu().numpy()


def display_frame(frame: np.ndarray) -> np.ndarray:
    """An 8-bit view of a [0, 1] frame, stretched between its 0.5 and 99.5 percentiles.

    Only for display: 14-bit frames in 16-bit containers occupy a small part of [0, 1] and would look black.
    """
    lo, hi = np.percentile(frame, (0.5, 99.5))
    if hi - lo < 1e-6:
        lo, hi = float(frame.min()), float(frame.min()) + 1.0
    return np.rint(np.clip((frame - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)


def render_overlay(
    frame: np.ndarray,
    mask: np.ndarray,
    targets: list[Target],
    gt: np.ndarray | None = None,
    margin: int = 2,
) -> np.ndarray:
    """RGB ``(H, W, 3)`` uint8: the frame in grey, the predicted mask tinted red, each target boxed in green.

    With ``gt`` the ground-truth outline is drawn in cyan (used by the demo's report).
    """
    grey = display_frame(frame)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    m = mask.astype(bool)
    rgb[m] = (0.4 * rgb[m] + 0.6 * np.array([255, 40, 40])).astype(np.uint8)
    if gt is not None:
        g = gt.astype(bool)
        edge = g & ~ndimage.binary_erosion(g, structure=EIGHT_CONNECTED)
        rgb[edge] = (0, 220, 255)
    h, w = m.shape
    for t in targets:
        x0, y0, x1, y1 = t.box
        x0, y0 = max(x0 - margin, 0), max(y0 - margin, 0)
        x1, y1 = min(x1 + margin, w) - 1, min(y1 + margin, h) - 1  # inclusive corners of the drawn box
        green = (40, 255, 40)
        rgb[y0, x0 : x1 + 1] = green
        rgb[y1, x0 : x1 + 1] = green
        rgb[y0 : y1 + 1, x0] = green
        rgb[y0 : y1 + 1, x1] = green
    return rgb
