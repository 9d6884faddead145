"""An exponential moving average of the weights (Polyak averaging), validated and kept as ``best.pt``.

``ema = d * ema + (1 - d) * weights`` after every optimizer step, on every floating-point parameter and buffer
(BatchNorm's running statistics included; integer buffers are copied). The decay starts low and rises to
``decay`` as ``min(decay, (1 + n) / (10 + n))`` after n updates (the ``num_updates`` form of TensorFlow's
``ExponentialMovingAverage``), so that a short run is not averaged with its random initial weights.

The update is one ``torch._foreach_lerp_`` per dtype group with a Python-float weight: no host sync.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class ModelEma:
    """The averaged copy of ``model`` (``.module``, eval mode, no gradients) and its update count."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        # (averaged, live) tensors, matched by name once: floating ones grouped by dtype for one lerp each,
        # the others (BatchNorm's counters) copied
        live = dict(model.named_parameters()) | dict(model.named_buffers())
        mine = dict(self.module.named_parameters()) | dict(self.module.named_buffers())
        if live.keys() != mine.keys():
            raise ValueError("the EMA copy and the model have different parameters")
        self._groups: dict[torch.dtype, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        self._copied: list[tuple[torch.Tensor, torch.Tensor]] = []
        for k, avg in mine.items():
            if avg.is_floating_point():
                a, c = self._groups.setdefault(avg.dtype, ([], []))
                a.append(avg)
                c.append(live[k])
            else:
                self._copied.append((avg, live[k]))

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the live weights (those of the model given at construction)."""
        weight = 1.0 - self.current_decay()
        for a, c in self._groups.values():
            torch._foreach_lerp_(a, c, weight)
        for avg, cur in self._copied:
            avg.copy_(cur)
        self.updates += 1

    def sync_attributes(self, model: nn.Module) -> None:
        """Carry non-tensor switches (the gated head of IR-SAM2) over to the average."""
        if hasattr(model, "head_enabled") and hasattr(self.module, "set_head_enabled"):
            self.module.set_head_enabled(bool(model.head_enabled))

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self.updates = int(state["updates"])


__all__ = ["ModelEma"]
