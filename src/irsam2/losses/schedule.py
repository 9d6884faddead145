"""The release's loss schedule and warm-up gate (spec section 7, "Schedule in the release"; spec section 9,
"head gate").

Epochs are **1-based**: ``flags(1)`` is the first training epoch. With ``warmup_epochs=20``:

- epochs 1..20: plain soft IoU (``LossFlags(alpha=False, location=False, aux=False)``);
- from epoch 21 on: alpha-weighted IoU (``alpha=True``);
- once the gate has opened (``end_epoch(epoch, val_iou)`` with ``epoch > warmup_epochs`` and
  ``val_iou >= gate_iou``): also the location term and ``w_aux`` x the target-centric auxiliary loss, for
  good.

The same gate switches the RHPM cascade head on; the engine does that with
``model.set_head_enabled(schedule.gate_open)``. ``always_open=True`` is the paper's un-scheduled CSA (spec
section 9, head gate "always on"): the gate is open from the start and every term is on from epoch 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from irsam2.utils import UserError, logger


@dataclass(frozen=True)
class LossFlags:
    """Which optional terms of SLS / CSA are active (spec section 7).

    alpha: weight the IoU by the scale weight alpha (else plain soft IoU).
    location: add the polar location term of SLS.
    aux: add ``w_aux`` x the target-centric auxiliary loss.
    """

    alpha: bool = True
    location: bool = True
    aux: bool = True


ALL_ON = LossFlags(True, True, True)


class LossSchedule:
    """Small state object driven by the training engine; its ``state_dict()`` goes into checkpoints."""

    def __init__(self, warmup_epochs: int = 20, gate_iou: float = 0.40, always_open: bool = False) -> None:
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise UserError(f"loss schedule: warmup_epochs must be an integer >= 0, got {warmup_epochs!r}")
        gate_iou = float(gate_iou)
        if not 0.0 <= gate_iou <= 1.0:
            raise UserError(f"loss schedule: gate_iou must be an IoU fraction in [0, 1], got {gate_iou!r}")
        self.warmup_epochs = warmup_epochs
        self.gate_iou = gate_iou
        self.always_open = bool(always_open)
        self.gate_open = self.always_open
        # Epoch at whose end the gate opened (None: closed, 0: open from the start).
        self.opened_epoch: int | None = 0 if self.always_open else None

    @staticmethod
    def _check_epoch(epoch: int) -> int:
        if isinstance(epoch, bool) or int(epoch) != epoch or epoch < 1:
            raise ValueError(f"LossSchedule epochs are 1-based (the first epoch is 1), got {epoch!r}")
        return int(epoch)

    def flags(self, epoch: int) -> LossFlags:
        """Loss terms for training epoch ``epoch`` (1-based)."""
        epoch = self._check_epoch(epoch)
        if self.gate_open:
            return ALL_ON
        if epoch > self.warmup_epochs:
            return LossFlags(alpha=True, location=False, aux=False)
        return LossFlags(alpha=False, location=False, aux=False)

    def end_epoch(self, epoch: int, val_iou: float) -> bool:
        """Record the validation IoU (a fraction in [0, 1]) measured at the end of ``epoch`` (1-based).

        Opens the gate for good when ``epoch > warmup_epochs`` and ``val_iou >= gate_iou``. Returns True only
        on the call that opened it.
        """
        epoch = self._check_epoch(epoch)
        val_iou = float(val_iou)
        if val_iou > 1.0 + 1e-6:
            raise ValueError(
                f"LossSchedule.end_epoch: val_iou must be a fraction in [0, 1], got {val_iou} "
                "(a percentage? divide by 100)"
            )
        if self.gate_open or math.isnan(val_iou):
            return False
        if epoch > self.warmup_epochs and val_iou >= self.gate_iou:
            self.gate_open = True
            self.opened_epoch = epoch
            logger.info(
                "loss gate opened after epoch %d (val IoU %.4f >= %.2f)", epoch, val_iou, self.gate_iou
            )
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {
            "warmup_epochs": self.warmup_epochs,
            "gate_iou": self.gate_iou,
            "always_open": self.always_open,
            "gate_open": self.gate_open,
            "opened_epoch": self.opened_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the gate. The configuration (warm-up, threshold) stays the one this object was built with;
        a differing saved configuration is reported with a warning."""
        if not isinstance(state, dict) or "gate_open" not in state:
            raise UserError("loss_schedule state: expected a dict with key 'gate_open' (checkpoint damaged?)")
        for key in ("warmup_epochs", "gate_iou", "always_open"):
            if key in state and state[key] != getattr(self, key):
                logger.warning(
                    "loss schedule: checkpoint has %s=%r, the current configuration %r is kept",
                    key,
                    state[key],
                    getattr(self, key),
                )
        self.gate_open = bool(state["gate_open"]) or self.always_open
        opened = state.get("opened_epoch")
        self.opened_epoch = (0 if self.always_open else None) if not self.gate_open else opened

    def __repr__(self) -> str:
        return (
            f"LossSchedule(warmup_epochs={self.warmup_epochs}, gate_iou={self.gate_iou}, "
            f"always_open={self.always_open}, gate_open={self.gate_open})"
        )
