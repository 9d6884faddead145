"""One optimizer step of the training recipe (spec section 8) without host-device synchronisation (issue 12).

:class:`TrainStep` runs forward (under autocast), the loss, backward and the optimizer update for one
optimizer step made of ``accum`` micro-batches. It never reads a value back to the host: the step's loss stays
on the device, accumulated in a :class:`LossMeter` that the trainer reads every ``train.log_every`` steps
(one sync per read), and that check is where a NaN/inf loss is noticed. Between two reads the optimizer may
have taken a few more steps on a diverged model; the trainer reads before every checkpoint, so a diverged
model is never saved (the last good ``last.pt`` / ``best.pt`` stay as they were).

``compile=True`` wraps the model's forward in ``torch.compile`` (:func:`compile_forward`); the loss and the
optimizer stay eager. :func:`compile_forward_loss` compiles forward and loss as one function instead: one
graph, and AOTAutograd's backward for both, so the loss's few hundred small ops (a kernel launch each on a
GPU) fuse too. Device batches (``data.on_device``) have a fixed number of target slots per image, so one
graph serves every step; from the DataLoader the number of targets changes per batch, which costs one
recompilation with that length dynamic. The trainer reports the first step's wall time, which includes the
compilation.

Batches come in through :func:`to_device` (outside the step: pinned host memory, ``non_blocking`` copies);
the per-target tensors of the collated batch have a data-dependent length, which is fine for eager kernels
and marked dynamic for the compiled forward (the forward only sees the fixed-size image).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


def to_device(batch: dict[str, Any], device: torch.device, channels_last: bool = False) -> dict[str, Any]:
    """The tensors of a collated batch on ``device`` (asynchronous from pinned memory); the rest as is."""
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if k == "image" and channels_last:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


def compile_forward(
    model: nn.Module, mode: str | None = None, backend: str = "inductor"
) -> Callable[[torch.Tensor], Any]:
    """``torch.compile`` of the model's forward (``mode``: None, "reduce-overhead", "max-autotune", ...).

    The input shape is fixed in training (crops), so the graph is compiled once, at the first step."""
    return torch.compile(model, mode=mode, backend=backend)


def compile_forward_loss(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    autocast: Callable[[], contextlib.AbstractContextManager],
    mode: str | None = None,
    backend: str = "inductor",
) -> Callable[[dict[str, Any], Any], torch.Tensor]:
    """``loss_fn(model(batch["image"]), batch, flags)`` under ``torch.compile``, the forward under
    ``autocast()``; the returned callable takes ``(batch, flags)``.

    Only the batch's tensors enter the compiled function: its file names change every batch and would fail
    dynamo's guards (a recompilation per step). ``flags`` (the loss schedule's switches) is guarded on: a
    change of the schedule, once per run, recompiles."""

    def forward_loss(image: torch.Tensor, tensors: dict[str, torch.Tensor], flags: Any) -> torch.Tensor:
        with autocast():
            outputs = model(image)
        return loss_fn(outputs, tensors, flags)

    compiled = torch.compile(forward_loss, mode=mode, backend=backend)

    def call(batch: dict[str, Any], flags: Any) -> torch.Tensor:
        tensors = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
        return compiled(batch["image"], tensors, flags)

    return call


@dataclass
class LossMeter:
    """Per-step losses kept on the device; :meth:`read` returns them as floats with one host sync."""

    pending: list[torch.Tensor] = field(default_factory=list)
    files: list[list[str]] = field(default_factory=list)  # the batch files of each pending step

    def add(self, loss: torch.Tensor, files: list[str]) -> None:
        self.pending.append(loss.detach().float().reshape(()))
        self.files.append(files)

    def __len__(self) -> int:
        return len(self.pending)

    def read(self) -> tuple[list[float], int | None, list[str]]:
        """(losses of the pending steps, index of the first non-finite one or None, its files); clears."""
        if not self.pending:
            return [], None, []
        values = torch.stack(self.pending).cpu().tolist()  # the one sync per read
        files = self.files
        self.pending, self.files = [], []
        bad = next((i for i, v in enumerate(values) if not (v == v and abs(v) != float("inf"))), None)
        return values, bad, (files[bad] if bad is not None else [])


class TrainStep:
    """Forward, loss, backward and optimizer update of one optimizer step; no host sync (module docstring).

    ``model``: the (possibly DDP-wrapped) network; ``params``: the parameters to clip; ``scaler``: a
    ``torch.amp.GradScaler`` (fp16; disabled otherwise; an enabled scaler checks for inf gradients on the host
    in ``step``, the one sync this class cannot avoid, so prefer bf16). ``no_sync``: the DDP context that
    skips the gradient all-reduce on all but the last micro-batch. ``forward``: what to call instead of
    ``model`` (its :func:`compile_forward` form). ``forward_loss``: forward and loss in one call (the
    :func:`compile_forward_loss` form), used instead of both when given.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[..., torch.Tensor],
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        params: list[nn.Parameter],
        accum: int = 1,
        amp_dtype: torch.dtype | None = None,
        device_type: str = "cpu",
        grad_clip: float | None = None,
        no_sync: Callable[[], contextlib.AbstractContextManager] | None = None,
        forward: Callable[[torch.Tensor], Any] | None = None,
        forward_loss: Callable[[dict[str, Any], Any], torch.Tensor] | None = None,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.scaler = scaler
        self.params = params
        self.accum = int(accum)
        self.amp_dtype = amp_dtype
        self.device_type = device_type
        self.grad_clip = grad_clip
        self.no_sync = no_sync
        # the forward actually called: the model, or its compiled form (compile_forward), built once per run
        self.forward: Callable[[torch.Tensor], Any] = forward if forward is not None else model
        self.forward_loss = forward_loss

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.amp_dtype)

    def micro(self, batch: dict[str, Any], flags: Any, last: bool = True) -> torch.Tensor:
        """Forward, loss and backward of one micro-batch; returns its loss (detached, on the device).

        Backward runs even on a NaN loss: every DDP rank must reach the same gradient all-reduce.
        """
        sync = contextlib.nullcontext()
        if self.no_sync is not None and not last:
            sync = self.no_sync()
        with sync:
            if self.forward_loss is not None:
                loss = self.forward_loss(batch, flags)
            else:
                with self.autocast():
                    outputs = self.forward(batch["image"])
                loss = self.loss_fn(outputs, batch, flags)
            self.scaler.scale(loss / self.accum).backward()
        return loss.detach()

    def update(self) -> None:
        """Clip (optionally), step the optimizer and clear the gradients. ``clip_grad_norm_`` and the
        optimizer scale the gradients by device tensors: no value comes back to the host."""
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=None)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def __call__(self, batches: list[dict[str, Any]], flags: Any) -> torch.Tensor:
        """One optimizer step over ``batches`` (the micro-batches); the mean loss as a device tensor."""
        total: torch.Tensor | None = None
        for i, batch in enumerate(batches):
            loss = self.micro(batch, flags, last=i == len(batches) - 1)
            part = loss.float() / self.accum
            total = part if total is None else total + part
        self.update()
        assert total is not None, "a training step needs at least one micro-batch"
        return total


__all__ = ["LossMeter", "TrainStep", "compile_forward", "compile_forward_loss", "to_device"]
