"""Load the Hiera-Tiny trunk of an official SAM2 / SAM2.1 checkpoint into IR-SAM2 (spec section 2).

Meta ships ``sam2_hiera_tiny.pt`` and ``sam2.1_hiera_tiny.pt`` as ``{"model": state_dict}`` with the trunk
under ``image_encoder.trunk.``. IR-SAM2 uses the trunk's first three stages only: every trunk key of blocks
0-9 and the patch/position embeddings must be present with equal shapes (strict); the stage-4 blocks 10 and 11
and everything outside the trunk (FPN neck, memory modules, SAM mask decoder, ...) are ignored on purpose, and
the log says so. Anything else is an error naming the missing keys, unexpected trunk keys and shape
mismatches.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from irsam2.checkpoint import safe_load
from irsam2.utils import UserError

logger = logging.getLogger(__name__)

PREFIX = "image_encoder.trunk."
TINY_BLOCKS = 12  # Hiera-Tiny has 12 blocks; IR-SAM2 keeps 0-9, blocks 10 and 11 form stage 4
_STAGE4 = re.compile(r"^blocks\.(10|11)\.")
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def _first(items: list[str], n: int = 6) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _state_dict_of(obj: Any, path: Path) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise UserError(
            f"{path}: not a SAM2 checkpoint: it holds a {type(obj).__name__}, expected a dict whose 'model' "
            f"entry holds image_encoder.trunk.* weights (as in Meta's sam2_hiera_tiny.pt)"
        )
    if obj.get("format") == "irsam2":
        raise UserError(
            f"{path}: this is an irsam2 checkpoint, not a SAM2 one; load it with `irsam2 eval/predict "
            f"--checkpoint` or resume training from it instead of passing it as SAM2 weights"
        )
    sd = obj.get("model", obj)
    if not isinstance(sd, dict):
        raise UserError(f"{path}: its 'model' entry is a {type(sd).__name__}, expected a state dict")
    if not any(isinstance(k, str) and k.startswith(PREFIX) for k in sd):
        sample = _first([str(k) for k in sd], 4) or "none"
        raise UserError(
            f"{path}: no {PREFIX}* keys, so not a SAM2 checkpoint (keys found: {sample}); IR-SAM2 needs "
            f"Meta's sam2_hiera_tiny.pt or sam2.1_hiera_tiny.pt"
        )
    return sd


def load_sam2_checkpoint(model: torch.nn.Module, path: str | os.PathLike, freeze: bool | None = None) -> dict:
    """Load the SAM2 Hiera-Tiny trunk weights of ``path`` into ``model.trunk`` strictly.

    ``freeze``: freeze the trunk afterwards; None follows the model's ``freeze_trunk`` override, which itself
    defaults to freezing when pretrained weights are loaded. Returns a summary
    ``{"loaded", "ignored_stage4", "ignored_non_trunk", "frozen"}``.
    """
    path = Path(path)
    sd = _state_dict_of(safe_load(path), path)
    trunk_sd = {k[len(PREFIX) :]: v for k, v in sd.items() if isinstance(k, str) and k.startswith(PREFIX)}
    expected = model.trunk.state_dict()

    stage4 = sorted(k for k in trunk_sd if _STAGE4.match(k))
    unexpected = sorted(k for k in trunk_sd if k not in expected and not _STAGE4.match(k))
    missing = sorted(k for k in expected if k not in trunk_sd)
    mismatched = [
        f"{k} {tuple(trunk_sd[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in trunk_sd
        and (not isinstance(trunk_sd[k], torch.Tensor) or trunk_sd[k].shape != expected[k].shape)
    ]
    if unexpected or missing or mismatched:
        problems = []
        if missing:
            problems.append(f"missing trunk keys: {_first(missing)}")
        if unexpected:
            problems.append(f"unexpected trunk keys: {_first(unexpected)}")
        if mismatched:
            problems.append(f"shape mismatches (checkpoint vs Hiera-Tiny): {_first(mismatched, 4)}")
        n_blocks = 1 + max((int(m.group(1)) for k in trunk_sd if (m := _BLOCK.match(k))), default=-1)
        hint = ""
        if n_blocks != TINY_BLOCKS or mismatched:
            hint = (
                f" The checkpoint's trunk has {n_blocks} blocks (Hiera-Tiny has {TINY_BLOCKS}, 96 channels): "
                f"it looks like another SAM2 size (e.g. Hiera-Small has 16 blocks); IR-SAM2 needs "
                f"sam2_hiera_tiny.pt or sam2.1_hiera_tiny.pt."
            )
        raise UserError(f"{path}: does not fit the IR-SAM2 Hiera-Tiny trunk: {'; '.join(problems)}.{hint}")

    model.trunk.load_state_dict({k: trunk_sd[k] for k in expected}, strict=True)
    non_trunk = sum(1 for k in sd if not (isinstance(k, str) and k.startswith(PREFIX)))
    if freeze is None:
        cfg_freeze = getattr(getattr(model, "cfg", None), "freeze_trunk", None)
        freeze = True if cfg_freeze is None else bool(cfg_freeze)
    model.set_trunk_frozen(freeze)
    logger.info(
        "%s: loaded %d SAM2 trunk tensors (blocks 0-9); ignored on purpose %d stage-4 trunk tensors and %d "
        "tensors outside the trunk (IR-SAM2 uses only the trunk's first three stages); trunk %s",
        path,
        len(expected),
        len(stage4),
        non_trunk,
        "frozen" if freeze else "trainable",
    )
    return {
        "loaded": len(expected),
        "ignored_stage4": len(stage4),
        "ignored_non_trunk": non_trunk,
        "frozen": freeze,
    }
