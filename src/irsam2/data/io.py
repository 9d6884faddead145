"""Reading infrared frames and ground-truth masks (spec section 1; DESIGN.md "Tensors and samples").

Frames
    PNG, BMP, TIFF and JPEG in the PIL modes ``1``, ``L``, ``LA``, ``P``, ``RGB``, ``RGBA``, ``I;16`` (and its
    byte-order variants), ``I`` and ``F``. Colour frames are reduced to one channel with PIL's luma
    conversion,
    which is exact for the grey-stored-as-RGB frames of NUDT-SIRST and NUAA-SIRST. The result is float32 in
    [0, 1]:
    8-bit frames are divided by 255, 16-bit frames (``I;16``, or ``I`` with values up to 65535) by 65535. A
    14-bit
    sensor frame stored in a 16-bit container therefore lands in [0, 0.25]: nothing is clipped or stretched,
    and
    the per-dataset normalisation (``(x - mean) / std``, computed from the training split) takes care of
    scale.
    Float (``F``) frames must already lie in [0, 1].

Masks
    Binarised at ``> 127`` when the mask holds values above 1 (8-bit 0/255 masks, including IRSTD-1k's
    few grey pixels) and at ``> 0`` for 0/1 masks, or at ``> threshold`` when one is given
    (``data.mask_threshold``, ``--mask-threshold``). Values strictly between 0 and 255 are reported
    (:class:`MaskValueWarning`, once per file; :func:`scan_masks` summarises a dataset in one warning) and
    refused in strict mode; a mask whose target pixels all sit at or below 127 -- the default rule would
    empty it -- is refused naming the file. A mask whose size differs from its image (NUAA-SIRST
    ``Misc_111`` in the public release) is repaired by a nearest-neighbour resize with a
    :class:`DataRepairWarning` naming the file, or refused with :class:`~irsam2.utils.UserError` in strict
    mode (``data.strict``, ``--strict``).

Every unreadable or corrupt file raises :class:`~irsam2.utils.UserError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from irsam2.utils import UserError

IMAGE_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")

# PIL modes that hold one 16-bit channel.
_MODES_16 = ("I;16", "I;16L", "I;16B", "I;16N")


class DataRepairWarning(UserWarning):
    """A defect of the input data was repaired (the message names the file and the repair)."""


class MaskValueWarning(DataRepairWarning):
    """A mask holds values strictly between 0 and 255, which binarisation at > 127 keeps or drops."""


_REPORTED_MASKS: set[str] = set()  # masks whose grey values were already reported in this process


def _binarise(a: np.ndarray, path: Path, strict: bool, threshold: float | None) -> tuple[np.ndarray, int]:
    """The boolean mask and the number of grey pixels (values strictly between 0 and 255, or 65535)."""
    if threshold is not None:  # the user's explicit rule: nothing to report
        return a > threshold, 0
    top = a.max() if a.size else 0
    if top <= 1:
        return a > 0, 0
    m = a > 127
    grey = int(np.count_nonzero((a > 0) & (a != 255) & (a != 65535)))
    if grey:
        if not m.any():
            raise UserError(
                f"{path}: the mask's target pixels all have values <= 127 (largest {int(top)}): binarised at "
                "> 127 it would be empty. Redraw it with 255 for targets, or set data.mask_threshold "
                "(--mask-threshold), e.g. 0 to count every non-zero pixel as target"
            )
        if strict:
            raise UserError(
                f"{path}: {grey} mask pixels have values strictly between 0 and 255 (strict mode; otherwise "
                "binarised at > 127 with a warning)"
            )
    return m, grey


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        img = Image.open(path)
        img.load()  # decode now so that truncated files fail here, not later
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise UserError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None
    return img


def _to_array(img: Image.Image, path: Path) -> tuple[np.ndarray, int]:
    """One channel as an integer or float array, and the bit depth (8, 16, or 32 for float)."""
    mode = img.mode
    if mode in _MODES_16:
        return np.asarray(img).astype(np.uint16, copy=False), 16
    if mode == "I":
        a = np.asarray(img)
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 65535:
            raise UserError(
                f"{path}: 32-bit integer image with values in [{lo}, {hi}] is not a 8/16-bit frame"
            )
        return a.astype(np.uint16), 16
    if mode == "F":
        a = np.asarray(img, dtype=np.float32)
        if not np.isfinite(a).all() or a.min() < 0.0 or a.max() > 1.0:
            raise UserError(f"{path}: float image must hold finite values in [0, 1]")
        return a, 32
    if mode in (
        "L",
        "P",
        "RGB",
        "RGBA",
        "LA",
        "1",
        "CMYK",
        "YCbCr",
        "LAB",
        "HSV",
        "PA",
        "La",
        "RGBa",
        "RGBX",
    ):
        if mode != "L":
            img = img.convert("L")  # palette lookup / luma; exact for grey stored as colour
        return np.asarray(img), 8
    raise UserError(f"{path}: unsupported image mode {mode!r}")


def _read_fast(path: Path) -> tuple[np.ndarray, int] | None:
    """OpenCV decoder for the common cases (faster than PIL, keeps 16-bit colour); None = let PIL decide."""
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None:
        return None
    if a.ndim == 3:
        if a.shape[2] == 1:
            a = a[..., 0]
        elif a.shape[2] in (3, 4):
            # Same fixed-point luma weights as PIL's "L" conversion: exact for grey stored as colour.
            a = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY if a.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
        else:
            return None
    if a.ndim != 2:
        return None
    if a.dtype == np.uint8:
        return a, 8
    if a.dtype == np.uint16:
        return a, 16
    return None


def _read_array(path: Path) -> tuple[np.ndarray, int]:
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    fast = _read_fast(path) if path.suffix.lower() in IMAGE_EXTENSIONS else None
    if fast is not None:
        return fast
    with _open(path) as img:  # unusual modes, and a clear error for corrupt files
        return _to_array(img, path)


def read_frame(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read one infrared frame.

    Returns ``(frame, bit_depth)``: ``frame`` is float32 ``(H, W)`` in [0, 1] (8-bit / 255, 16-bit / 65535),
    ``bit_depth`` is 8, 16 or 32 (float input).
    """
    path = Path(path)
    a, depth = _read_array(path)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise UserError(f"{path}: expected a 2-D image, got an array of shape {a.shape}")
    if depth == 8:
        return a.astype(np.float32) * np.float32(1.0 / 255.0), 8
    if depth == 16:
        return a.astype(np.float32) * np.float32(1.0 / 65535.0), 16
    return np.ascontiguousarray(a, dtype=np.float32), 32


def read_mask(
    path: str | os.PathLike,
    size: tuple[int, int] | None = None,
    strict: bool = False,
    threshold: float | None = None,
) -> np.ndarray:
    """Read a ground-truth mask as a boolean ``(H, W)`` array.

    ``size`` is the ``(h, w)`` of the image the mask belongs to; a mask of another size is resized with
    nearest neighbour and a :class:`DataRepairWarning`, or refused (``UserError``) when ``strict``.
    ``threshold``: target where value > threshold (None: the default rule of the module docstring).
    """
    path = Path(path)
    a, _ = _read_array(path)
    if a.ndim != 2:
        raise UserError(f"{path}: expected a 2-D mask, got an array of shape {a.shape}")
    m, grey = _binarise(a, path, strict, threshold)
    if grey and str(path) not in _REPORTED_MASKS:
        _REPORTED_MASKS.add(str(path))
        warnings.warn(
            f"{path}: {grey} mask pixels have values strictly between 0 and 255; binarised at > 127 "
            "(set data.mask_threshold to choose, data.strict=true to refuse)",
            MaskValueWarning,
            stacklevel=2,
        )
    if size is not None and tuple(m.shape) != tuple(size):
        msg = f"{path}: mask is {m.shape[1]}x{m.shape[0]} but its image is {size[1]}x{size[0]}"
        if strict:
            raise UserError(msg + " (strict mode)")
        warnings.warn(msg + "; resized with nearest neighbour", DataRepairWarning, stacklevel=2)
        m = cv2.resize(m.view(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST_EXACT).astype(
            bool
        )
    return m


def scan_masks(
    paths: list[Path] | list[str], name: str, strict: bool = False, threshold: float | None = None
) -> list[Path]:
    """Check every mask of a dataset once: refuse the ones binarisation would empty (or, ``strict``, any grey
    value) naming the file, and summarise the masks with grey values in one :class:`MaskValueWarning`.
    Returns those masks (later reads of them stay silent)."""
    flagged: list[Path] = []
    for p in map(Path, paths):
        a, _ = _read_array(p)
        if _binarise(a, p, strict, threshold)[1]:
            flagged.append(p)
    fresh = [p for p in flagged if str(p) not in _REPORTED_MASKS]
    _REPORTED_MASKS.update(str(p) for p in flagged)
    if fresh:
        shown = ", ".join(p.name for p in fresh[:5])
        shown += f" and {len(fresh) - 5} more" if len(fresh) > 5 else ""
        warnings.warn(
            f"{name}: {len(fresh)} of {len(paths)} masks hold values strictly between 0 and 255, binarised "
            f"at > 127 (values <= 127 are dropped): {shown}. Set data.mask_threshold (--mask-threshold) to "
            "choose the cut, or data.strict=true (--strict) to refuse such masks",
            MaskValueWarning,
            stacklevel=2,
        )
    return flagged


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files (by extension, case-insensitive) in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder")
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def write_frame(path: str | os.PathLike, frame: np.ndarray, bit_depth: int = 8) -> None:
    """Write a [0, 1] float frame (or an integer array already in range) as an 8- or 16-bit greyscale file."""
    path = Path(path)
    if bit_depth not in (8, 16):
        raise UserError(f"{path}: bit depth must be 8 or 16, got {bit_depth}")
    if np.issubdtype(frame.dtype, np.floating):
        top = 255.0 if bit_depth == 8 else 65535.0
        frame = np.rint(np.clip(frame, 0.0, 1.0) * top)
    frame = frame.astype(np.uint8 if bit_depth == 8 else np.uint16)
    Image.fromarray(frame).save(path)


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write a boolean mask as an 8-bit 0/255 PNG."""
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(Path(path))
