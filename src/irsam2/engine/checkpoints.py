"""The training engine's checkpoints: lean ``best.pt``, resume checks and what a resume may change (issue 15).

``last.pt`` holds everything a resume needs (weights, optimizer, scheduler, loss schedule, RNG states,
history). ``best.pt`` -- the file people share, evaluate and deploy -- holds the weights and the metadata to
rebuild and run the model (:data:`LEAN_KEYS`), optionally in half precision (``train.best_half``); it cannot
be resumed. ``eval``, ``predict`` and ``export`` accept both (``irsam2.checkpoint.model_from_checkpoint``).

Resuming (``train --resume``) continues the checkpoint's run: a key of the new config that differs from the
checkpoint's ``train_config`` is either applied or refused with the list of keys.

- Keys that only change how the run is executed or reported are applied (:data:`RUNTIME_KEYS`: device,
  workers, progress, TensorBoard, time budget, the dataset's location, ...).
- ``train.epochs`` is applied: the run continues to the new number of epochs on the cosine schedule of a run
  of that length (the learning rate after ``e`` done epochs becomes that schedule's value at ``e``, then
  anneals to ``sched.min_lr`` at the new end). Fewer epochs than already done is refused.
- Any other difference (learning rate, loss, model, data, ...) would silently not apply to the restored
  optimizer/schedule state, or would change the run's meaning: it is refused.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from irsam2.checkpoint import load_irsam2_checkpoint
from irsam2.engine.config import Config, config_from_dict
from irsam2.utils import UserError

LEAN_KEYS = (
    "format",
    "format_version",
    "model_config",
    "model",
    "head_enabled",
    "norm",
    "target_stats",
    "epoch",
    "global_step",
    "best",
    "train_config",
)
RESUME_KEYS = ("optimizer", "scheduler", "epoch", "rng", "loss_schedule")
RUNTIME_KEYS = frozenset(
    {
        "name",
        "out",
        "data.root",
        "data.workers",
        "data.strict",
        "model.pretrained",  # the weights come from the checkpoint
        "train.device",
        "train.time_budget_s",
        "train.progress",
        "train.tensorboard",
        "train.val_batch_size",
        "train.best_half",
        "optim.fused",  # the same update, another kernel (rounding only)
        "train.last_every",
    }
)
_FP16_MAX = 65504.0


def lean_state(state: dict[str, Any], half: bool = False) -> dict[str, Any]:
    """``best.pt``'s payload: weights and rebuild metadata only; ``half`` stores floating-point weights in
    float16 (a tensor with values beyond float16's range stays float32)."""
    lean = {k: state[k] for k in LEAN_KEYS if k in state}
    if half:
        weights = {}
        for k, v in lean["model"].items():
            if v.is_floating_point() and v.dtype == torch.float32 and bool(v.abs().max() <= _FP16_MAX):
                v = v.half()
            weights[k] = v
        lean["model"] = weights
        lean["weights_dtype"] = "float16"
    return lean


def resume_path(resume: str | Path | bool, out: str | Path | None) -> Path:
    """The checkpoint a ``--resume`` means: ``<out>/last.pt`` (``True``, ``"last"``) or the path given."""
    if resume is True or str(resume) in ("", "auto", "last"):
        if out is None:
            raise UserError("--resume: give --out (the run folder) or the checkpoint to resume from")
        path = Path(out) / "last.pt"
        if not path.exists():
            raise UserError(f"--resume: no last.pt in {out} to resume from")
        return path
    return Path(resume)  # type: ignore[arg-type]


def read_resume_checkpoint(path: Path) -> dict[str, Any]:
    """Load and check a checkpoint to resume from (before any data is read)."""
    ckpt = load_irsam2_checkpoint(path, map_location="cpu")
    for key in RESUME_KEYS:
        if key not in ckpt:
            hint = " (best.pt holds only the weights: resume from last.pt)" if key == "optimizer" else ""
            raise UserError(
                f"{path}: not a training checkpoint (no {key!r}); it can be evaluated, not resumed{hint}"
            )
    if not isinstance(ckpt.get("train_config"), dict):
        raise UserError(f"{path}: the checkpoint has no training config ('train_config') to resume with")
    return ckpt


def base_config(path: Path) -> dict[str, Any]:
    """The config a resume starts from when no --config is given: the ``config.yaml`` beside the checkpoint
    (it always equals the checkpoints' config), else the checkpoint's own ``train_config``."""
    import yaml

    beside = path.parent / "config.yaml"
    if beside.is_file():
        data = yaml.safe_load(beside.read_text())
        if isinstance(data, dict):
            return data
    return dict(read_resume_checkpoint(path)["train_config"])


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and k != "overrides":  # model.overrides compares as one value
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def check_resume_config(path: Path, ckpt: dict[str, Any], cfg: Config) -> None:
    """Refuse a resume whose config differs from the checkpoint's in keys that cannot be applied."""
    try:
        old = config_from_dict(ckpt["train_config"])
    except UserError as e:
        raise UserError(f"{path}: its training config does not load in this irsam2: {e}") from None
    a, b = _flatten(old.to_dict()), _flatten(cfg.to_dict())
    refused = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k) and k not in RUNTIME_KEYS]
    refused = [k for k in refused if k != "train.epochs"]
    if refused:
        listed = "; ".join(f"{k}: {a.get(k)!r} in the checkpoint, {b.get(k)!r} now" for k in refused)
        raise UserError(
            f"--resume {path}: these config keys differ from the run being resumed and cannot be applied to "
            f"it: {listed}. Drop them to continue the run, or start a new run (another --out, or --overwrite)"
        )
    done = int(ckpt["epoch"])
    if cfg.train.epochs < done:
        raise UserError(
            f"--resume {path}: train.epochs={cfg.train.epochs} but the run has already done {done} epochs"
        )


def replan_schedule(scheduler: Any, cfg: Config, done: int, old_epochs: int) -> bool:
    """After a resume with another ``train.epochs``: continue on the cosine schedule of a ``train.epochs``
    run (spec 8: annealed per epoch to ``sched.min_lr``), i.e. the learning rate becomes that schedule's value
    after ``done`` epochs. True if anything changed."""
    if cfg.train.epochs == old_epochs or not isinstance(
        scheduler, torch.optim.lr_scheduler.CosineAnnealingLR
    ):
        return False
    total, low = cfg.train.epochs, scheduler.eta_min
    scheduler.T_max = total
    for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
        # the chainable form steps on from each group's current lr: put it on the new curve
        group["lr"] = low + (base - low) * (1 + math.cos(math.pi * done / total)) / 2
    scheduler._last_lr = [g["lr"] for g in scheduler.optimizer.param_groups]
    return True
