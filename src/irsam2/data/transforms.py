"""Training augmentation and test-time padding (spec sections 1 and 8).

Normalisation and padding
    Every frame is read as float32 in [0, 1] and normalised as ``(x - mean) / std`` with the training split's
    statistics (``irsam2.data.compute_norm_stats``). Normalisation happens *before* the geometric transforms,
    and
    every pad adds the value **0 in normalised units**, i.e. the training split's mean raw level: padding is
    as
    neutral as the network's input allows and does not depend on the frame. Masks are padded with 0.

Training (:class:`TrainAugment`), in this order
    1. copy-paste (optional, probability 0.5): 1 to 100 target crops drawn from a :class:`CopyPasteBank` built
       from the *training split only* are pasted (target pixels only, raw intensities) at random places, and
       their masks are OR-ed into the mask; done on the raw frame, before normalisation;
    2. horizontal flip, probability 0.5;
    3. rescale so that the long side is ``u * scale_base`` with ``u ~ U[0.5, 2.0]`` (image bilinear, mask
       nearest); ``scale_base`` defaults to the frame's own long side (``None``), *not* the crop size: the
       test runs at native resolution, so training zooms around native scale whatever the crop. Tying it to
       the crop (as before) shrank every NUDT-SIRST frame by 0.25-1.0 at crop 128, so targets were seen
       smaller in training than at test. For 256-pixel frames this is the release's "[0.5, 2] x 256";
       ``scale_base=256`` reproduces the release exactly on other sizes;
    4. pad bottom/right to at least ``crop_size`` in both directions;
    5. random ``crop_size`` x ``crop_size`` crop (with probability ``target_crop_p`` one that holds a target
       pixel; 0 by default, as the spec); with ``whole_targets`` no crop cuts a target (its origin is
       drawn again while the window holds part of a target's bounding box; off by default, as the spec);
    6. Gaussian blur of the image (not the mask), probability 0.5, sigma ``~ U[0, 1]`` pixels.

Test (:func:`pad_to_multiple`)
    Pad bottom/right to the next multiple of 32 and remember the original ``(h, w)``; :func:`crop_to_size`
    crops any output map back exactly, so metrics are computed at the frame's own resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from irsam2.data.targets import components


def normalise(frame: np.ndarray, norm: dict[str, float]) -> np.ndarray:
    """``(frame - mean) / std`` as float32."""
    return (frame - np.float32(norm["mean"])) * np.float32(1.0 / norm["std"])


def pad_to(image: np.ndarray, mask: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad bottom/right to at least ``(h, w)``: image with 0 (normalised units), mask with False."""
    ph, pw = max(h - image.shape[0], 0), max(w - image.shape[1], 0)
    if ph == 0 and pw == 0:
        return image, mask
    return np.pad(image, ((0, ph), (0, pw))), np.pad(mask, ((0, ph), (0, pw)))


def pad_to_multiple(
    image: np.ndarray, mask: np.ndarray, multiple: int = 32
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Test-time padding to a multiple of ``multiple``; returns the padded pair and original ``(h, w)``."""
    h, w = image.shape
    th, tw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    image, mask = pad_to(image, mask, th, tw)
    return image, mask, (h, w)


def crop_to_size(x, orig_size: Sequence[int]):
    """Crop the last two dimensions of an array or tensor back to ``orig_size = (h, w)``."""
    h, w = int(orig_size[0]), int(orig_size[1])
    return x[..., :h, :w]


@dataclass
class CopyPasteBank:
    """Target crops (raw intensities and masks) cut from training frames.

    Build it from the training split only (:meth:`add` per frame); the datasets refuse to build one from a
    validation or test split.
    """

    margin: int = 0
    crops: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def add(self, frame: np.ndarray, mask: np.ndarray) -> None:
        n, labels, stats, _ = components(mask)
        h, w = mask.shape
        for i in range(n):
            x, y, bw, bh = (int(v) for v in stats[i, :4])
            x0, y0 = max(x - self.margin, 0), max(y - self.margin, 0)
            x1, y1 = min(x + bw + self.margin, w), min(y + bh + self.margin, h)
            cm = labels[y0:y1, x0:x1] == i + 1
            self.crops.append((frame[y0:y1, x0:x1].copy(), cm))

    def __len__(self) -> int:
        return len(self.crops)

    def paste(self, frame: np.ndarray, mask: np.ndarray, count: int, rng: np.random.Generator) -> None:
        """Paste ``count`` random crops in place (target pixels only)."""
        h, w = mask.shape
        for k in rng.integers(0, len(self.crops), size=count):
            crop, cm = self.crops[k]
            ch, cw = cm.shape
            if ch > h or cw > w:
                continue
            y = int(rng.integers(0, h - ch + 1))
            x = int(rng.integers(0, w - cw + 1))
            frame[y : y + ch, x : x + cw][cm] = crop[cm]
            mask[y : y + ch, x : x + cw] |= cm


def boxes_from_stats(stats: np.ndarray) -> np.ndarray:
    """Inclusive boxes ``(y0, x0, y1, x1)``, (K, 4), from the component ``stats`` of :func:`components`."""
    x0, y0 = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    y1 = y0 + stats[:, cv2.CC_STAT_HEIGHT] - 1
    x1 = x0 + stats[:, cv2.CC_STAT_WIDTH] - 1
    return np.stack([y0, x0, y1, x1], axis=1).reshape(-1, 4)


def target_boxes(mask: np.ndarray) -> np.ndarray:
    """Inclusive boxes ``(y0, x0, y1, x1)`` of the 8-connected components of a boolean mask, (K, 4)."""
    return boxes_from_stats(components(mask)[2])


def window_cuts(y0: Any, x0: Any, y1: Any, x1: Any, y: Any, x: Any, size: int) -> Any:
    """Elementwise: whether the ``size`` x ``size`` window at ``(y, x)`` holds part, but not all, of the box
    ``(y0, x0, y1, x1)`` (inclusive); NumPy arrays or torch tensors, broadcast."""
    meets = (y0 < y + size) & (y1 >= y) & (x0 < x + size) & (x1 >= x)
    inside = (y0 >= y) & (y1 < y + size) & (x0 >= x) & (x1 < x + size)
    return meets & ~inside


def cuts_a_box(boxes: np.ndarray, y: int, x: int, size: int) -> bool:
    """Whether the ``size`` x ``size`` window at ``(y, x)`` holds part, but not all, of any box."""
    return bool(len(boxes)) and bool(np.any(window_cuts(*boxes.T, y, x, size)))


@dataclass
class TrainAugment:
    """Spec section 8 training augmentation; see the module docstring for the order of the steps."""

    crop_size: int = 256
    scale: tuple[float, float] = (0.5, 2.0)
    scale_base: int | None = None  # long side = u * scale_base (None: u * the frame's own long side)
    flip_p: float = 0.5
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.0, 1.0)
    bank: CopyPasteBank | None = None
    copy_paste_p: float = 0.5
    copy_paste_count: tuple[int, int] = (1, 100)
    # probability that the crop is placed so that it holds a target pixel (uniform otherwise); 0 = the spec's
    # uniform crop. Crops smaller than the frame often miss the few target pixels of a frame; a share of
    # target-holding crops gives every step a positive signal (foreground oversampling, as nnU-Net does).
    target_crop_p: float = 0.0
    # crops never cut a target: an origin whose window would hold part of a target (its 8-connected
    # bounding box crossing the crop edge) is drawn again, up to ``WHOLE_TRIES`` times. Cut targets are what
    # makes a blob at an image edge look like a target: ~20 % of the targets in 128 crops of NUDT-SIRST
    # touch the crop edge, 1.3 % of its test targets touch the frame edge, and the frame edge held ~40 % of
    # the false-alarm pixels of a network trained on cut crops (docs/results.md, issue 11, session 9).
    whole_targets: bool = False

    WHOLE_TRIES = 32  # after as many cutting draws the last one is kept (a target larger than the crop)

    def _crop_origin(self, mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
        if not self.whole_targets or not mask.any():
            return self._draw_origin(mask, rng)
        boxes = target_boxes(mask)
        c = self.crop_size
        for _ in range(self.WHOLE_TRIES):
            y, x = self._draw_origin(mask, rng)
            if not cuts_a_box(boxes, y, x, c):
                break
        return y, x

    def _draw_origin(self, mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
        c = self.crop_size
        hmax, wmax = mask.shape[0] - c, mask.shape[1] - c
        if self.target_crop_p > 0 and rng.random() < self.target_crop_p:
            ys, xs = np.nonzero(mask)
            if len(ys):
                k = int(rng.integers(0, len(ys)))
                ty, tx = int(ys[k]), int(xs[k])
                # any origin whose window holds (ty, tx), within the frame
                y = int(rng.integers(max(0, ty - c + 1), min(hmax, ty) + 1))
                x = int(rng.integers(max(0, tx - c + 1), min(wmax, tx) + 1))
                return y, x
        return int(rng.integers(0, hmax + 1)), int(rng.integers(0, wmax + 1))

    def paste(self, frame: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
        """Step 1 (raw frame, in place)."""
        if self.bank is not None and len(self.bank) and rng.random() < self.copy_paste_p:
            lo, hi = self.copy_paste_count
            self.bank.paste(frame, mask, int(rng.integers(lo, hi + 1)), rng)

    def geometric(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Steps 2-6 on the normalised image."""
        if rng.random() < self.flip_p:
            image, mask = image[:, ::-1], mask[:, ::-1]
        h, w = image.shape
        long_side = rng.uniform(*self.scale) * (self.scale_base or max(h, w))
        f = long_side / max(h, w)
        nh, nw = max(round(h * f), 1), max(round(w * f), 1)
        if (nh, nw) != (h, w):
            image = cv2.resize(np.ascontiguousarray(image), (nw, nh), interpolation=cv2.INTER_LINEAR)
            mask = cv2.resize(
                np.ascontiguousarray(mask).view(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST_EXACT
            ).view(bool)
        c = self.crop_size
        image, mask = pad_to(image, mask, c, c)
        y, x = self._crop_origin(mask, rng)
        image = np.ascontiguousarray(image[y : y + c, x : x + c])
        mask = np.ascontiguousarray(mask[y : y + c, x : x + c])
        if rng.random() < self.blur_p:
            sigma = rng.uniform(*self.blur_sigma)
            if sigma > 0.05:  # below this the kernel is a delta
                image = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
        return image, mask
