"""The training engine: the paper's recipe (spec section 8), the release's loss schedule and gate (spec 7).

``train(config) -> TrainResult`` runs a whole training: Adan with per-epoch cosine annealing, gradient
accumulation up to the recipe's batch, CUDA autocast (bf16/fp16) or plain CPU, the loss schedule whose gate is
measured on the *validation* split carved from the training split (never the test split), checkpoints ``last``
(every ``train.last_every`` epochs, 1 by default) and ``best`` (validation IoU; of the moving average of the
weights with ``train.ema``), TensorBoard scalars, a CSV log and a progress bar (on a terminal
only: a log file gets one line per epoch).

Resuming. Data order and augmentation randomness are a function of ``(seed, epoch, rank)``: at the start of
every epoch the sampler, the loader's generator and the process RNGs are reseeded from it, so a run resumed
from an epoch-boundary checkpoint reproduces the uninterrupted run's losses. A stop inside an epoch (Ctrl-C,
time budget) saves the position in the epoch and the RNG states; resuming skips the samples already seen and
restores the RNGs, which is exact with ``data.workers = 0`` (with worker processes the augmentation draws are
reassigned). A run killed with SIGKILL resumes from the last epoch boundary, losing at most one epoch.

Several processes (torchrun): DistributedDataParallel, each rank sees a disjoint shard of every epoch's order,
validation metrics are reduced across ranks, and only rank 0 writes files."""

from __future__ import annotations

import contextlib
import csv
import functools
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from irsam2.checkpoint import atomic_save, model_payload
from irsam2.engine import checkpoints as C
from irsam2.engine import distributed as D
from irsam2.engine.config import Config, LossConfig, config_from_dict, load_config, save_config
from irsam2.engine.data_setup import TrainSource, build_train_source, derive_seed
from irsam2.engine.ema import ModelEma
from irsam2.engine.run_dir import RUN_FILES, RunDir, check_output
from irsam2.engine.step import LossMeter, TrainStep, compile_forward, compile_forward_loss, to_device
from irsam2.utils import UserError, logger, progress

CKPT_LAST = "last.pt"
CKPT_BEST = "best.pt"
LOG_CSV = "log.csv"
WARNINGS_TXT = "warnings.txt"
NO_SAM2_WARNING = (
    "no SAM2 weights (model.pretrained is null): the Hiera trunk trains from scratch and accuracy will be "
    "far below the paper's. Pass --pretrained sam2.1_hiera_tiny (downloaded once) or a checkpoint path; "
    "`--pretrained none` (model.pretrained: none) trains from scratch without this warning."
)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the message names the files of the offending batch."""


def _optimizer_error(e: Exception, cfg: Config) -> UserError:
    """An optimizer failure (e.g. an update that overflows float32) as one line naming the keys to change."""
    oc = cfg.optim
    return UserError(
        f"the optimizer step failed with optim.lr={oc.lr:g} (optim.name={oc.name}, optim.eps={oc.eps:g}, "
        f"optim.weight_decay={oc.weight_decay:g}): {str(e).splitlines()[0]}; lower optim.lr"
    )


def _torch_optimizer(oc: Any, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """AdamW, Adagrad or SGD from ``optim``; fused where ``optim.fused`` allows and torch has it."""
    if oc.name == "adamw":
        make: Callable[..., torch.optim.Optimizer] = functools.partial(
            torch.optim.AdamW,
            params,
            lr=oc.lr,
            betas=tuple(oc.betas),
            weight_decay=oc.weight_decay,
            eps=oc.eps,
        )
    elif oc.name == "adagrad":  # betas unused
        make = functools.partial(
            torch.optim.Adagrad, params, lr=oc.lr, weight_decay=oc.weight_decay, eps=oc.eps
        )
    else:
        make = functools.partial(
            torch.optim.SGD, params, lr=oc.lr, momentum=oc.betas[0], weight_decay=oc.weight_decay
        )
    if oc.fused is False:
        return make()
    try:
        return make(fused=True)
    except (RuntimeError, TypeError, ValueError):
        unfused = make()  # a range error (lr, eps, ...) surfaces here with the optimizer's own message
        if oc.fused is True:  # asked for explicitly: say so rather than silently run another kernel
            raise RuntimeError(
                f"optim.fused=true: this torch ({torch.__version__}) has no fused {oc.name} for these "
                "weights' device; set optim.fused=auto or false"
            ) from None
        return unfused


@dataclass
class TrainResult:
    """What a training run produced (paths are None on ranks other than 0)."""

    out_dir: Path
    last: Path | None
    best: Path | None
    history: list[dict[str, Any]]
    epochs_done: int
    status: str  # "completed" | "time_budget" | "interrupted" | "stopped"
    best_val_iou: float | None
    step_losses: list[float] = field(default_factory=list)  # this process's per-optimizer-step losses
    first_step_s: float | None = None  # wall time of the first step (torch.compile's compilation included)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "last": str(self.last) if self.last else None,
            "best": str(self.best) if self.best else None,
            "epochs_done": self.epochs_done,
            "status": self.status,
            "best_val_iou": self.best_val_iou,
            "first_step_s": self.first_step_s,
        }


# ----------------------------------------------------------------------------------------------------
# RNG states as checkpoint-safe values (tensors and plain lists: loadable with weights_only=True)


def seed_process(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 - the global RNG is what we make reproducible
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    py = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [int(py[0]), [int(v) for v in py[1]], py[2]],
        "numpy": [
            str(np_state[0]),
            np.asarray(np_state[1]).astype(np.int64).tolist(),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [t.cpu() for t in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    py = state["python"]
    random.setstate((int(py[0]), tuple(int(v) for v in py[1]), py[2]))
    npst = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (npst[0], np.asarray(npst[1], dtype=np.uint32), int(npst[2]), int(npst[3]), float(npst[4]))
    )
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([t.cpu().to(torch.uint8) for t in cuda])


# ----------------------------------------------------------------------------------------------------
# samplers and loaders


# ----------------------------------------------------------------------------------------------------
# Ctrl-C


class _StopFlag:
    """First SIGINT: stop after the current optimizer step (and save); a second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self.reason = "interrupted"
        self._old: dict[int, Any] = {}

    def request(self, reason: str = "stopped") -> None:
        self.requested, self.reason = True, reason

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.reason = True, "interrupted"
        logger.warning("interrupt: finishing the current step and saving (press Ctrl-C again to abort)")

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            # SIGTERM too: schedulers and torchrun's agent send it before killing a job
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


# ----------------------------------------------------------------------------------------------------


_to_device = to_device  # the name benchmarks/bench_train.py imports


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _batch_files(batch: dict[str, Any]) -> list[str]:
    return [str(p) for p in batch.get("path", batch.get("stem", []))]


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_lr: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 over ``warmup_steps`` optimizer steps, then cosine to ``min_lr`` at
    ``total_steps``; stepped once per optimizer step (the ``scratch`` recipe: a trunk trained from random
    weights diverges or stalls without a warm-up at Adam-like learning rates)."""
    total = max(int(total_steps), 1)
    warm = min(max(int(warmup_steps), 0), total - 1)

    def factor(step: int, base: float) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        t = min((step - warm) / max(total - warm, 1), 1.0)
        floor = min(min_lr / base, 1.0) if base > 0 else 0.0
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))

    bases = [g["lr"] for g in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, [lambda s, b=b: factor(s, b) for b in bases])


def _freeze_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def loss_from_config(lc: LossConfig, stats: dict[str, float | None]) -> nn.Module:
    """The loss ``lc`` names, with its settings and the training split's target statistics (spec 7)."""
    from irsam2.losses import build_loss

    kwargs: dict[str, Any] = {k: stats[k] for k in ("area_mean", "contrast_mean") if k in stats}
    if lc.name == "csa":
        kwargs["w_aux"] = lc.w_aux
    if lc.name == "bce_iou":
        kwargs |= {
            "pos_weight": lc.pos_weight,
            "w_target": lc.w_target,
            "w_hard": lc.w_hard,
            "hard_fraction": lc.hard_fraction,
        }
    return build_loss(lc.name, **kwargs)


class Trainer:
    """One training run; see the module docstring. Most users call :func:`train`."""

    def __init__(
        self,
        cfg: Config,
        resume: str | Path | bool | None = None,
        on_step: Callable[[Trainer, dict[str, Any]], None] | None = None,
        on_epoch: Callable[[Trainer, dict[str, Any]], None] | None = None,
        overwrite: bool = False,
    ) -> None:
        self.cfg = cfg
        self.overwrite = overwrite
        self.started = False  # the first optimizer step succeeded: the run folder is real (run_dir)
        self.out = Path(cfg.out)
        self.resume = resume
        self.on_step = on_step
        self.on_epoch = on_epoch
        self.stop = _StopFlag()
        self.history: list[dict[str, Any]] = []
        self.ema: ModelEma | None = None
        self.step_losses: list[float] = []
        self.best_iou: float | None = None
        self.epoch = 0  # completed epochs
        self.step_in_epoch = 0  # optimizer steps done in the current, unfinished epoch
        self.global_step = 0
        self._writer: Any = None
        self._val_time = 0.0
        self._forward: Any = None  # the compiled forward (train.compile), built once
        self._forward_loss: Any = None  # forward and loss compiled together (train.compile_loss), built once
        self.first_step_s: float | None = None  # wall time of this process's first step (compile included)
        self.warnings: list[str] = []  # run-level warnings, also written to <out>/warnings.txt

    # -- set-up --------------------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        self.dist = D.setup(cfg.train.device)
        self.device = self.dist.device
        if cfg.train.sync_bn and self.dist.distributed and self.device.type != "cuda":
            raise UserError(
                "config key 'train.sync_bn': SyncBatchNorm needs CUDA (use train.freeze_bn on CPU)"
            )
        world = self.dist.world_size
        micro = cfg.train.micro_batch or max(cfg.train.batch_size // world, 1)
        if cfg.train.batch_size % (micro * world):
            raise UserError(
                f"config key 'train.batch_size' ({cfg.train.batch_size}) must be a multiple of "
                f"train.micro_batch ({micro}) x processes ({world})"
            )
        self.micro = micro
        self.accum = cfg.train.batch_size // (micro * world)
        self.amp_dtype = self._amp_dtype()
        try:
            # checkpoints (--resume, --pretrained) and the optimizer are checked before any data is read
            self._resume_ckpt = self._read_resume() if self.resume else None
            self._open_run_dir()
            seed_process(cfg.train.seed)  # the same initial weights on every rank and in every run of a seed
            self._build_model()
            self._build_optim()
            if self._resume_ckpt is not None:
                self._check_resume_model()
            self._build_data()
            self._build_sched()
            self._build_loss()
            tc = cfg.train
            if tc.compile and tc.compile_loss:  # the loss as set up here joins the model's graph
                self._forward_loss = compile_forward_loss(
                    self.model, self.loss_fn, self._autocast, tc.compile_mode, tc.compile_backend
                )
            elif tc.compile:
                self._forward = compile_forward(self.model, tc.compile_mode, tc.compile_backend)
            # the average starts from the initial weights; a resume restores it below
            self.ema = ModelEma(self.model_core, cfg.train.ema) if cfg.train.ema > 0 else None
            if self._resume_ckpt is not None:
                self._load_resume()
            self._apply_gate()
        except BaseException:
            if getattr(self, "run_dir", None) is not None:
                self.run_dir.abort()
            raise

    def _open_run_dir(self) -> None:
        """Refuse a non-empty --out (unless resumed or overwritten); stage a new run (run_dir.RunDir)."""
        in_place = self.resume_path is not None and self.resume_path.parent.resolve() == self.out.resolve()
        mode = check_output(
            self.out, overwrite=self.overwrite, resume=in_place, can_resume=True, ours=RUN_FILES
        )
        token = D.broadcast_object(os.getpid(), self.dist)  # one staging name on every rank
        self.run_dir = RunDir(self.out, mode, token, is_main=self.dist.is_main)

    def _amp_dtype(self) -> torch.dtype | None:
        amp = self.cfg.train.amp
        if amp == "none" or (amp == "auto" and self.device.type != "cuda"):
            return None
        if amp == "fp16" and self.device.type != "cuda":
            raise UserError("config key 'train.amp': fp16 autocast needs CUDA (use bf16 or none on CPU)")
        if amp == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if amp == "bf16" else torch.float16

    def _build_data(self) -> None:
        from irsam2.engine.data_setup import build_training_data

        # rank 0 first: it writes the validation split file that the other ranks then read
        if self.dist.is_main:
            self.data = build_training_data(self.cfg, is_main=True, out=self.run_dir.work)
        D.barrier(self.dist)
        if not self.dist.is_main:
            self.data = build_training_data(self.cfg, is_main=False, out=self.run_dir.work)
        n = len(self.data.train)
        per_step = self.micro * self.dist.world_size
        if n < per_step:
            raise UserError(
                f"the training split has {n} images, fewer than one step's {per_step} "
                "(train.micro_batch x processes)"
            )
        self.train_source: TrainSource = build_train_source(
            self.cfg, self.data.train, self.micro, self.device, self.dist.rank, self.dist.world_size
        )

    def _build_model(self) -> None:
        from irsam2.models import create_model, network_spec
        from irsam2.models.hub import is_no_weights, resolve_pretrained

        mc = self.cfg.model
        overrides = dict(mc.overrides)
        pretrained = mc.pretrained
        # `pretrained: none` (a string) is the explicit, silent choice; deep baselines have no SAM2 trunk
        if mc.pretrained is None and network_spec(mc.name) is None:
            self.warnings.append(NO_SAM2_WARNING)
            if self.dist.is_main:
                logger.warning(NO_SAM2_WARNING)
        elif not is_no_weights(pretrained):
            if self.dist.is_main:  # rank 0 downloads a named checkpoint once; the others then hit the cache
                pretrained = resolve_pretrained(pretrained)
            D.barrier(self.dist)
            pretrained = resolve_pretrained(pretrained)
        try:
            model = create_model(mc.name, variant=mc.variant, pretrained=pretrained, **overrides)
        except (TypeError, ValueError) as e:
            raise UserError(f"config key 'model': {e}") from e
        if self.cfg.train.sync_bn and self.dist.distributed:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(self.device)
        if self.cfg.train.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model_core = model
        if self.dist.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # the gated head and ablation switches leave parameters unused in some steps
            self.model: nn.Module = nn.parallel.DistributedDataParallel(
                model, device_ids=ids, find_unused_parameters=True
            )
        else:
            self.model = model

    def _build_optim(self) -> None:
        oc = self.cfg.optim
        params = [p for p in self.model_core.parameters() if p.requires_grad]
        if not params:
            raise UserError("the model has no trainable parameters (frozen trunk and everything else?)")
        try:
            if oc.name == "adan":
                from pytorch_optimizer import Adan

                # Adan's reference form: proximal (non-decoupled) weight decay, as pytorch-optimizer's default
                self.optimizer = Adan(
                    params, lr=oc.lr, betas=tuple(oc.betas), weight_decay=oc.weight_decay, eps=oc.eps
                )
            else:
                self.optimizer = _torch_optimizer(oc, params)
        except (ValueError, RuntimeError) as e:  # the optimizer's own range checks
            raise UserError(f"config key 'optim': {str(e).splitlines()[0]}") from None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

    def _build_sched(self) -> None:
        """The learning-rate schedule; after the data (a per-step schedule needs the steps per epoch)."""
        sc = self.cfg.sched
        self.per_step_sched = sc.name == "warmup_cosine"
        if sc.name == "cosine":
            self.scheduler: Any = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=self.cfg.train.epochs, eta_min=sc.min_lr
            )
        elif sc.name == "warmup_cosine":
            total = self.cfg.train.epochs * self._steps_per_epoch()
            self.scheduler = warmup_cosine(
                self.optimizer,
                total_steps=total,
                warmup_steps=max(sc.warmup_steps, round(sc.warmup_fraction * total)),
                min_lr=sc.min_lr,
            )
        else:
            self.scheduler = torch.optim.lr_scheduler.ConstantLR(self.optimizer, factor=1.0, total_iters=0)

    def _build_loss(self) -> None:
        from irsam2.losses import LossSchedule

        lc = self.cfg.loss
        self.loss_fn = loss_from_config(lc, self.data.target_stats or {})
        self.loss_fn.to(self.device)
        # the variant picks the schedule unless loss.schedule forces one (Config.release_schedule, spec 9)
        release = self.cfg.release_schedule()
        self.schedule = LossSchedule(
            warmup_epochs=lc.warmup_epochs, gate_iou=lc.gate_iou, always_open=not release
        )
        if self.dist.is_main:
            logger.info(
                "loss: %s, %s (%s variant, loss.schedule=%s)",
                lc.name,
                "the release's warm-up schedule and gate"
                if release
                else "every term and the head from the first step",
                self.cfg.model.variant,
                lc.schedule,
            )

    def _apply_gate(self) -> None:
        core = self.model_core
        if hasattr(core, "set_head_enabled"):
            # the head follows the loss gate, which is open from the start without the release's schedule
            core.set_head_enabled(self.schedule.gate_open)
        if self.ema is not None:
            self.ema.sync_attributes(core)

    # -- checkpoints ---------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        payload = model_payload(self.model_core, norm=self.data.norm, target_stats=self.data.target_stats)
        payload.update(
            {
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step,
                "world_size": self.dist.world_size,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "loss_schedule": self.schedule.state_dict(),
                "rng": capture_rng_state(),
                "train_config": self.cfg.to_dict(),
                "best": self.best_iou,
                "history": [dict(h) for h in self.history],
                "step_losses": list(self.step_losses),
            }
        )
        if self.ema is not None:
            payload["ema"] = self.ema.state_dict()
        return payload

    def save(self, best: bool = False, head_enabled: bool | None = None, last: bool = True) -> None:
        """Write ``last`` (and ``best``). ``head_enabled``: the head state the weights were validated with
        (the gate may open just after validation; a resume re-applies the gate from the loss schedule).
        ``last=False`` skips ``last.pt`` (``train.last_every``): it is the large one, optimizer included."""
        if not self.dist.is_main:
            return
        self._start()
        if best or last:  # the full state (optimizer, RNG, history) only when a checkpoint takes it
            self._write_checkpoints(best, head_enabled, last)
        save_config(self.cfg, self.out / "config.yaml")  # always the config of the checkpoints beside it

    def _write_checkpoints(self, best: bool, head_enabled: bool | None, last: bool) -> None:
        state = self.state()
        if head_enabled is not None:
            state["head_enabled"] = bool(head_enabled)
        if best:  # lean: weights and rebuild metadata only (engine/checkpoints.py)
            validated = state if self.ema is None else {**state, "model": state["ema"]["model"]}
            atomic_save(C.lean_state(validated, half=self.cfg.train.best_half), self.out / CKPT_BEST)
        if last:
            atomic_save(state, self.out / CKPT_LAST)

    def _start(self) -> None:
        """The run has started (first optimizer step done): make its folder real and open the logs."""
        if self.started:
            return
        self.started = True
        self.run_dir.commit()
        self._open_logs()

    @property
    def resume_path(self) -> Path | None:
        return C.resume_path(self.resume, self.out) if self.resume else None

    def _read_resume(self) -> dict[str, Any]:
        path = self.resume_path
        assert path is not None
        ckpt = C.read_resume_checkpoint(path)
        C.check_resume_config(path, ckpt, self.cfg)
        return ckpt

    def _check_resume_model(self) -> None:
        ckpt, path = self._resume_ckpt, self.resume_path
        if ckpt["model_config"] != dict(self.model_core.config):
            raise UserError(
                f"{path}: its model config {ckpt['model_config']} differs from this run's "
                f"{self.model_core.config}"
            )

    def _load_resume(self) -> None:
        path, ckpt = self.resume_path, self._resume_ckpt
        self._resume_ckpt = None  # the big state dicts are not needed once restored
        try:
            self.model_core.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise UserError(
                f"{path}: cannot restore the model/optimizer state: {str(e).splitlines()[0]}"
            ) from e
        self.scheduler.load_state_dict(ckpt["scheduler"])
        old_epochs = int(ckpt["train_config"]["train"]["epochs"])
        if C.replan_schedule(self.scheduler, self.cfg, int(ckpt["epoch"]), old_epochs) and self.dist.is_main:
            logger.info(
                "train.epochs %d -> %d: continuing on the cosine schedule of a %d-epoch run (lr %.3g)",
                old_epochs,
                self.cfg.train.epochs,
                self.cfg.train.epochs,
                self.optimizer.param_groups[0]["lr"],
            )
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None:
            try:
                self.ema.load_state_dict(ckpt["ema"])
            except (RuntimeError, KeyError) as e:
                raise UserError(f"{path}: cannot restore the EMA weights (train.ema): {e}") from e
        self.schedule.load_state_dict(ckpt["loss_schedule"])
        self.epoch = int(ckpt["epoch"])
        self.step_in_epoch = int(ckpt.get("step_in_epoch", 0))
        self.global_step = int(ckpt.get("global_step", 0))
        self.best_iou = ckpt.get("best")
        self.history = [dict(h) for h in ckpt.get("history", [])]
        self.step_losses = [float(v) for v in ckpt.get("step_losses", [])]
        if int(ckpt.get("world_size", 1)) != self.dist.world_size and self.step_in_epoch:
            logger.warning("resuming inside an epoch with another number of processes: the epoch restarts")
            self.step_in_epoch = 0
        if self.step_in_epoch and self.dist.world_size == 1:
            restore_rng_state(ckpt["rng"])
        if self.dist.is_main:
            where = f"epoch {self.epoch}" + (f" + {self.step_in_epoch} steps" if self.step_in_epoch else "")
            logger.info("resumed from %s at %s", path, where)

    # -- logging -------------------------------------------------------------------------------------------
    def _open_logs(self) -> None:
        if not self.dist.is_main:
            return
        save_config(self.cfg, self.out / "config.yaml")
        if self.warnings:
            (self.out / WARNINGS_TXT).write_text("".join(f"WARNING: {w}\n" for w in self.warnings))
        self._rewrite_csv()
        if self.cfg.train.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # purge_step drops events a killed run wrote after its last checkpoint
                self._writer = SummaryWriter(str(self.out / "tb"), purge_step=self.global_step or None)
            except ImportError:  # pragma: no cover - tensorboard is a dependency
                logger.warning("tensorboard is not installed: no TensorBoard logs")

    def _rewrite_csv(self) -> None:
        rows = self.history
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        path = self.out / LOG_CSV
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys or ["epoch"])
            w.writeheader()
            for r in rows:
                w.writerow(r)

    def _log_epoch(self, row: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        self._rewrite_csv()  # small file; rewriting keeps the header right when new columns appear
        if self._writer is not None:
            for k, v in row.items():
                if (
                    k != "epoch"
                    and isinstance(v, (int, float))
                    and not isinstance(v, bool)
                    and math.isfinite(v)
                ):
                    self._writer.add_scalar(f"epoch/{k}", v, row["epoch"])
            self._writer.flush()

    # -- training ------------------------------------------------------------------------------------------
    def _epoch_loader(self, epoch: int, skip_samples: int) -> Iterable[dict[str, Any]]:
        """This epoch's micro-batches from the run's training source (engine/data_setup.py)."""
        return self.train_source.epoch(epoch, skip_samples)

    def _steps_per_epoch(self) -> int:
        n = len(self.data.train) // self.dist.world_size // self.micro // self.accum
        cap = self.cfg.train.max_steps_per_epoch
        return max(min(n, cap) if cap else n, 1)

    def _make_step(self) -> TrainStep:
        """The sync-free training step (engine/step.py) over this run's model, loss and optimizer."""
        no_sync = self.model.no_sync if self.dist.distributed else None  # type: ignore[operator]
        return TrainStep(
            self.model,
            self.loss_fn,
            self.optimizer,
            self.scaler,
            params=list(self.model_core.parameters()),
            accum=self.accum,
            amp_dtype=self.amp_dtype,
            device_type=self.device.type,
            grad_clip=self.cfg.optim.grad_clip,
            no_sync=no_sync,
            forward=self._forward,
            forward_loss=self._forward_loss,
        )

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _train_epoch(self, epoch: int, t_start: float) -> dict[str, Any]:
        """One epoch (1-based ``epoch``); returns its log row. Stops early when asked (self.stop)."""
        cfg = self.cfg
        steps = self._steps_per_epoch()
        resume_step = self.step_in_epoch
        if resume_step == 0:
            # (seed, epoch, rank) fixes this epoch's order and augmentation, whatever happened before
            seed_process(derive_seed(cfg.train.seed, epoch, self.dist.rank))
        if hasattr(self.data.train, "set_epoch"):
            self.data.train.set_epoch(epoch)
        loader = self._epoch_loader(epoch, resume_step * self.accum * self.micro)
        flags = self.schedule.flags(epoch)
        self.model.train()
        if cfg.train.freeze_bn:
            _freeze_bn(self.model)
        lr = self.optimizer.param_groups[0]["lr"]
        bar = None
        if cfg.train.progress and self.dist.is_main:
            # a bar on a terminal only; in a log file the epoch's row (_print_row) is its one line
            bar = progress(
                total=steps, initial=resume_step, desc=f"epoch {epoch}/{cfg.train.epochs}", unit="step",
                leave=False, summary=False,
            )  # fmt: skip
        t0 = time.perf_counter()
        loss_sum, loss_n = 0.0, 0
        it = iter(loader)
        step = self._make_step()
        meter = LossMeter()
        # Losses are read back (one host sync) every `log_every` steps, at the epoch's end and before any
        # stop; a per-step callback needs every step's value, so it reads each step.
        every = 1 if self.on_step is not None else cfg.train.log_every
        self.optimizer.zero_grad(set_to_none=True)

        def flush() -> bool:
            """Read the pending losses (one sync); agree with the other ranks on NaN and stop requests;
            raise on a non-finite loss. Returns whether every rank is to stop now."""
            nonlocal loss_sum, loss_n
            values, bad, files = meter.read()
            stop_now = self.stop.requested
            diverged = bad is not None
            if self.dist.distributed:
                n_bad, n_stop = D.all_reduce_sum([float(diverged), float(stop_now)], self.dist)
                diverged, stop_now = n_bad > 0, n_stop > 0
                if stop_now and not self.stop.requested:
                    self.stop.request("interrupted")
            if diverged:
                # nothing is saved: last.pt / best.pt keep the weights of the last good epoch
                self.optimizer.zero_grad(set_to_none=True)
                if bad is None:
                    value, which, names = "non-finite", self.step_in_epoch, "(on another process)"
                else:
                    value = str(values[bad])
                    which = self.step_in_epoch - len(values) + bad + 1
                    names = ", ".join(files)
                raise TrainingDiverged(
                    f"the training loss became {value} at epoch {epoch}, step {which}; batch files: {names}. "
                    "Lower optim.lr, check these frames, or use train.amp=none."
                )
            first = self.step_in_epoch - len(values)
            for i, v in enumerate(values):
                self.step_losses.append(v)
                loss_sum += v
                loss_n += 1
                if self._writer is not None:
                    self._writer.add_scalar("train/loss_step", v, self.global_step - len(values) + i + 1)
                if self.on_step is not None:
                    self.on_step(self, {"epoch": epoch, "step": first + i + 1, "loss": v, "lr": lr})
            if bar is not None and values:
                bar.set_postfix(loss=f"{values[-1]:.4f}", lr=f"{lr:.2e}")
                bar.update(len(values))
            if values:
                self._start()  # the first losses came back finite: the run has started (its folder is real)
            return stop_now or (self.stop.requested and not self.dist.distributed)

        while self.step_in_epoch < steps:
            t_step = time.perf_counter() if self.first_step_s is None else None
            files: list[str] = []
            total: torch.Tensor | None = None
            for micro_i in range(self.accum):
                try:
                    batch = next(it)
                except StopIteration:
                    break
                files += _batch_files(batch)
                batch = to_device(batch, self.device, cfg.train.channels_last)
                loss = step.micro(batch, flags, last=micro_i == self.accum - 1)
                part = loss.float() / self.accum
                total = part if total is None else total + part
            if total is None:
                break
            try:
                step.update()
            except RuntimeError as e:
                raise _optimizer_error(e, cfg) from None
            if self.per_step_sched:
                self.scheduler.step()
            if self.ema is not None:
                self.ema.update()
            meter.add(total, files)
            self.step_in_epoch += 1
            self.global_step += 1
            if t_step is not None:
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)  # once per run: the first step's real duration
                self.first_step_s = time.perf_counter() - t_step
                if cfg.train.compile and self.dist.is_main:
                    logger.info("first training step (torch.compile included): %.1f s", self.first_step_s)
            budget = cfg.train.time_budget_s
            # the clock is rank 0's, shared at the next read; the last step decides alone
            if budget is not None and time.perf_counter() - t_start + self._val_time >= budget:
                if self.dist.is_main or not self.dist.distributed:
                    self.stop.request("time_budget")
            read_now = len(meter) >= every or self.step_in_epoch >= steps
            if not self.dist.distributed and self.stop.requested:
                read_now = True  # one process: stop at once (ranks stop together, at a read step)
            if read_now and flush():
                break
        if len(meter):  # the loader ran dry before the planned steps
            flush()
        if bar is not None:
            bar.close()
        if self.dist.distributed:
            # every rank leaves the epoch with the same stop decision and reason (validation is collective)
            req, budget_hit = D.all_reduce_sum(
                [
                    float(self.stop.requested),
                    float(self.stop.requested and self.stop.reason == "time_budget"),
                ],
                self.dist,
            )
            if req > 0:
                self.stop.request("time_budget" if budget_hit > 0 else "interrupted")
        dt = time.perf_counter() - t0
        images = loss_n * self.accum * self.micro * self.dist.world_size
        mean_loss = D.all_reduce_sum([loss_sum, float(loss_n)], self.dist)
        return {
            "epoch": epoch,
            "train_loss": mean_loss[0] / max(mean_loss[1], 1.0),
            "lr": lr,
            "alpha": int(flags.alpha),
            "location": int(flags.location),
            "aux": int(flags.aux),
            "train_time_s": dt,
            "images_per_s": images / dt if dt > 0 else float("nan"),
        }

    # -- validation ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        """IoU, nIoU, Pd, Fa on the validation split (each frame at its own size), reduced over the ranks.

        Pd and Fa by the default metrics protocol (``basicirstd``), named in ``val_protocol``.
        """
        from irsam2.data import collate
        from irsam2.metrics import SegmentationMetrics

        t0 = time.perf_counter()
        core = self.model_core if self.ema is None else self.ema.module  # the weights best.pt will hold
        was_training = core.training
        core.eval()
        metrics = SegmentationMetrics(keep_per_image=False)
        ds = self.data.val
        idx = list(range(self.dist.rank, len(ds), self.dist.world_size))
        loader = DataLoader(
            torch.utils.data.Subset(ds, idx),
            batch_size=None,
            num_workers=min(self.cfg.data.workers, 2),
        )
        buckets: dict[tuple[int, ...], list[dict[str, Any]]] = {}

        def flush(items: list[dict[str, Any]]) -> None:
            batch = _to_device(collate(items), self.device, self.cfg.train.channels_last)
            with self._autocast():
                final = core(batch["image"])[0]
            final = final.float().cpu().numpy()
            masks = batch["mask"].cpu().numpy()
            for j, (h, w) in enumerate(batch["orig_size"]):
                metrics.update(final[j, 0, :h, :w], masks[j, 0, :h, :w] > 0.5, name=batch["stem"][j])

        for item in loader:
            key = tuple(item["image"].shape)
            buckets.setdefault(key, []).append(item)
            if len(buckets[key]) >= self.cfg.train.val_batch_size:
                flush(buckets.pop(key))
        for items in buckets.values():
            flush(items)
        merged = SegmentationMetrics(keep_per_image=False)
        for state in D.all_gather_objects(metrics.state_dict(), self.dist):
            merged.merge(state)
        res = merged.compute()
        core.train(was_training)
        self._val_time = time.perf_counter() - t0
        return {
            "val_iou": res["iou"],
            "val_niou": res["niou"],
            "val_pd": res["pd"],
            "val_fa": res["fa"],
            "val_flooded": res["flooded"],
            "val_protocol": res["protocol"],
            "val_time_s": self._val_time,
        }

    # -- the loop ------------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        try:
            return self._run()
        except BaseException:
            self.run_dir.abort()  # a run that never started leaves nothing behind
            raise
        finally:
            if not self.started:
                self.run_dir.abort()

    def _run(self) -> TrainResult:
        cfg = self.cfg
        t_start = time.perf_counter()
        status = "completed"
        with self.stop:
            try:
                while self.epoch < cfg.train.epochs:
                    epoch = self.epoch + 1
                    row = self._train_epoch(epoch, t_start)
                    finished = self.step_in_epoch >= self._steps_per_epoch()
                    if not finished and self.step_in_epoch == 0:
                        status = self.stop.reason  # stopped before the first step: nothing to save
                        break
                    last_epoch = epoch == cfg.train.epochs
                    do_val = finished and (epoch % cfg.train.val_every == 0 or last_epoch)
                    # a run stopped by its time budget is validated so that `best` reflects its last weights;
                    # Ctrl-C exits at once
                    if do_val or (self.stop.requested and self.stop.reason == "time_budget"):
                        row.update(self.validate())
                    improved = False
                    head_validated = bool(getattr(self.model_core, "head_enabled", True))
                    val_iou = row.get("val_iou")
                    if val_iou is not None and math.isfinite(val_iou):
                        improved = self.best_iou is None or val_iou > self.best_iou
                        if improved:
                            self.best_iou = val_iou
                    if finished:
                        if val_iou is not None and math.isfinite(val_iou):
                            if self.schedule.end_epoch(epoch, val_iou / 100.0):
                                row["gate_opened"] = 1
                            self._apply_gate()
                        if not self.per_step_sched:
                            self.scheduler.step()  # cosine annealing stepped once per epoch (spec 8)
                        self.epoch = epoch
                        self.step_in_epoch = 0
                    row["gate_open"] = int(self.schedule.gate_open)
                    row["head_enabled"] = int(bool(getattr(self.model_core, "head_enabled", True)))
                    row["time_s"] = time.perf_counter() - t_start
                    if finished:
                        self.history.append(row)
                        self._log_epoch(row)
                    # last.pt every last_every epochs, and whenever the loop ends here (done, stopped)
                    write_last = (
                        not finished or last_epoch or self.stop.requested or epoch % cfg.train.last_every == 0
                    )
                    self.save(best=improved, head_enabled=head_validated, last=write_last)
                    if self.dist.is_main:
                        self._print_row(row, finished)
                    if self.on_epoch is not None:
                        self.on_epoch(self, row)
                    if self.stop.requested:
                        status = self.stop.reason
                        break
            finally:
                if self._writer is not None:
                    self._writer.close()
        main = self.dist.is_main
        best = self.out / CKPT_BEST
        last = self.out / CKPT_LAST
        return TrainResult(
            out_dir=self.out,
            last=last if main and last.exists() else None,
            best=best if main and best.exists() else None,
            history=self.history,
            epochs_done=self.epoch,
            status=status,
            best_val_iou=self.best_iou,
            step_losses=self.step_losses,
            first_step_s=self.first_step_s,
        )

    def _print_row(self, row: dict[str, Any], finished: bool) -> None:
        what = (
            f"epoch {row['epoch']}"
            if finished
            else f"epoch {row['epoch']} (partial, {self.step_in_epoch} steps)"
        )
        parts = [what, f"loss {row['train_loss']:.4f}", f"lr {row['lr']:.2e}"]
        if "val_iou" in row:
            pd = "no targets" if math.isnan(row["val_pd"]) else f"{row['val_pd']:.2f}"  # Pd undefined
            parts.append(
                f"val IoU {row['val_iou']:.2f} nIoU {row['val_niou']:.2f} Pd {pd} "
                f"Fa {row['val_fa']:.1f} flooded {row.get('val_flooded', 0)} ({row.get('val_protocol', '?')})"
            )
        parts.append(f"{row['images_per_s']:.1f} img/s")
        if finished and self.epoch < self.cfg.train.epochs:
            per_epoch = row.get("train_time_s", 0.0) + row.get("val_time_s", 0.0)
            eta = int(per_epoch * (self.cfg.train.epochs - self.epoch))
            budget = self.cfg.train.time_budget_s
            if budget is not None and "time_s" in row:  # the budget ends the run first: say so
                eta = min(eta, max(0, int(budget - row["time_s"])))
            parts.append(f"ETA {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}")
        logger.info(" | ".join(parts))


def train(
    config: Config | dict[str, Any] | str,
    *,
    overrides: list[str] | dict[str, Any] | None = None,
    resume: str | Path | bool | None = None,
    on_step: Callable[[Trainer, dict[str, Any]], None] | None = None,
    on_epoch: Callable[[Trainer, dict[str, Any]], None] | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train IR-SAM2 and return the checkpoints' paths and the history.

    ``config``: a :class:`Config`, a nested dict, or a preset name / YAML path (``overrides`` as ``a.b=value``
    strings or a dict apply to the last two). ``resume``: True (``<out>/last.pt``) or a checkpoint path; what
    a resume may change: :mod:`irsam2.engine.checkpoints`. A non-empty ``out`` is refused unless resumed
    or ``overwrite`` (:mod:`irsam2.engine.run_dir`). A wall-clock budget is ``train.time_budget_s``.
    """
    if isinstance(config, str):
        cfg = load_config(config, overrides)
    elif isinstance(config, dict):
        from irsam2.engine.config import apply_overrides

        cfg = config_from_dict(apply_overrides(config, overrides or []))
    else:
        cfg = config
        if overrides:
            from irsam2.engine.config import apply_overrides

            cfg = config_from_dict(apply_overrides(cfg.to_dict(), overrides))
    trainer = Trainer(cfg, resume=resume, on_step=on_step, on_epoch=on_epoch, overwrite=overwrite)
    try:
        trainer.setup()
        return trainer.run()
    finally:
        D.cleanup(trainer.dist) if hasattr(trainer, "dist") else None
