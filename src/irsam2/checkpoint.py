"""Checkpoint files: atomic writes and safe loads (``torch.load(..., weights_only=True)``).

A checkpoint is one dict (see docs/DESIGN.md): ``format``, ``format_version``, ``model_config``, ``model``
(state dict), ``head_enabled``, ``norm``, ``target_stats`` and, from the training engine, the optimizer,
scheduler, loss-schedule and RNG states.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from irsam2.utils import UserError

FORMAT = "irsam2"
FORMAT_VERSION = 1
_LOAD_ERRORS = (
    zipfile.BadZipFile,
    EOFError,
    pickle.UnpicklingError,
    RuntimeError,
    ValueError,
    IndexError,
    KeyError,
)


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` with ``torch.save`` to a temp file in the same folder, fsync, then rename over ``path``.

    A crash at any point leaves either the old file or the new one, never a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


_UNSAFE_HINT = (
    "it may be unsafe: do not load it with a full (non-weights-only) unpickler unless you trust its source"
)


def _load_error(path: Path, e: BaseException) -> UserError:
    """Our own message for a failed weights-only load (torch's ends with advice to load the file unsafely,
    which is wrong for random bytes and dangerous for a malicious pickle): not a checkpoint, truncated, or
    holding objects that are not allowed."""
    with open(path, "rb") as f:
        head = f.read(4)
    text = str(e)
    if head.startswith(b"PK\x03\x04"):  # a zip archive: the PyTorch format since 1.6
        if not zipfile.is_zipfile(path) or "central directory" in text or isinstance(e, EOFError):
            return UserError(
                f"{path}: the checkpoint is truncated or corrupt (an interrupted download, copy or save?)"
            )
        if "GLOBAL" in text or "global" in text:
            found = re.search(r"GLOBAL ([\w.]+)", text)
            what = f" ({found[1]})" if found else ""
            return UserError(
                f"{path}: the checkpoint holds Python objects that are not allowed in a weights-only "
                f"checkpoint{what}; {_UNSAFE_HINT}"
            )
        return UserError(f"{path}: the checkpoint is corrupt (its archive could not be read)")
    if head[:1] == b"\x80":  # a bare pickle: a legacy torch.save or any Python pickle, which may run code
        return UserError(
            f"{path}: a plain Python pickle or an old-format checkpoint, not a weights-only PyTorch "
            f"checkpoint; {_UNSAFE_HINT}"
        )
    return UserError(f"{path}: not a PyTorch checkpoint (another kind of file)")


def safe_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with errors that name the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a checkpoint file")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the file is empty (an interrupted download or copy?)")
    try:
        with warnings.catch_warnings():  # torch's note on a bare pickle's protocol: noise for users
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    # IndexError/KeyError: the weights-only unpickler on a file that is no pickle at all (e.g. text)
    except _LOAD_ERRORS as e:
        raise _load_error(path, e) from None


def model_payload(model: torch.nn.Module, norm: dict | None = None, target_stats: dict | None = None) -> dict:
    """The inference part of a checkpoint: enough to rebuild and run the model."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": dict(model.config),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "head_enabled": bool(getattr(model, "head_enabled", True)),
        "norm": dict(norm) if norm is not None else None,
        "target_stats": dict(target_stats) if target_stats is not None else None,
    }


def load_irsam2_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load and validate an irsam2 checkpoint (not a SAM2 one: see ``irsam2.load_sam2_checkpoint``)."""
    ckpt = safe_load(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        hint = ""
        if isinstance(ckpt, dict) and "model" in ckpt and isinstance(ckpt["model"], dict):
            if any(str(k).startswith("image_encoder.") for k in ckpt["model"]):
                hint = " It looks like a SAM2 checkpoint: pass it as --pretrained to `irsam2 train` instead."
        raise UserError(f"{path}: not an irsam2 checkpoint (no 'format': 'irsam2' entry).{hint}")
    if int(ckpt.get("format_version", 0)) > FORMAT_VERSION:
        raise UserError(
            f"{path}: checkpoint format version {ckpt['format_version']} is newer than this irsam2 "
            f"understands ({FORMAT_VERSION}); upgrade irsam2"
        )
    for key in ("model_config", "model"):
        if key not in ckpt:
            raise UserError(f"{path}: checkpoint has no {key!r} entry")
    return ckpt


def model_from_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model of an irsam2 checkpoint, load its weights strictly; return (model in eval, ckpt)."""
    from irsam2.models import create_model  # models sit below this helper in the data flow

    ckpt = load_irsam2_checkpoint(path, map_location)
    cfg = ckpt["model_config"]
    try:
        model = create_model(cfg["name"], variant=cfg.get("variant", "official"), **cfg.get("overrides", {}))
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: cannot rebuild the model from its stored config {cfg}: {e}") from e
    try:
        result = model.load_state_dict(ckpt["model"], strict=False)
    except RuntimeError as e:  # shape mismatches: a checkpoint of another architecture
        first = str(e).strip().splitlines()
        raise UserError(
            f"{path}: weights do not fit the model {cfg.get('name')!r}: {' '.join(first[1:3])}"
        ) from e
    if result.missing_keys or result.unexpected_keys:
        raise UserError(
            f"{path}: weights do not match the model {cfg.get('name')!r}: "
            f"missing {result.missing_keys[:5]}{'...' if len(result.missing_keys) > 5 else ''}, "
            f"unexpected {result.unexpected_keys[:5]}{'...' if len(result.unexpected_keys) > 5 else ''}"
        )
    if hasattr(model, "set_head_enabled"):
        model.set_head_enabled(bool(ckpt.get("head_enabled", True)))
    model.eval()
    return model, ckpt
