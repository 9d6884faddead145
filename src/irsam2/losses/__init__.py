"""Losses (spec section 7; docs/DESIGN.md "Losses").

``build_loss(name, **kwargs)`` builds one of ``LOSSES``: ``csa`` (the paper's loss), ``sls``, ``bce``,
``soft_iou``, ``dice``, ``target_centric`` (the alternatives of the paper's Table 3), and ``bce_iou``
(BCE + soft IoU: the ``scratch`` recipe's loss). Every loss is called as
``loss_fn(outputs, batch, flags=None)`` and returns a scalar: the sum over the model's outputs.

The training-split target statistics (``area_mean``, ``contrast_mean``, checkpoint key ``target_stats``)
may be passed to every loss; those without the target-centric term ignore them. Any other unknown keyword is
an error.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from irsam2.losses.base import SupervisedLoss
from irsam2.losses.basic import BCEIoULoss, BCELoss, DiceLoss, SoftIoULoss
from irsam2.losses.csa import CSALoss
from irsam2.losses.schedule import ALL_ON, LossFlags, LossSchedule
from irsam2.losses.sls import SLSLoss
from irsam2.losses.target_centric import TargetCentricLoss
from irsam2.utils import UserError

LOSSES: dict[str, type[SupervisedLoss]] = {
    "csa": CSALoss,
    "sls": SLSLoss,
    "bce": BCELoss,
    "soft_iou": SoftIoULoss,
    "dice": DiceLoss,
    "target_centric": TargetCentricLoss,
    "bce_iou": BCEIoULoss,
}

_TARGET_STATS = ("area_mean", "contrast_mean")


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """The loss ``name`` (see ``LOSSES``) built with ``kwargs``; clear errors for unknown names/keys."""
    key = str(name).lower().replace("-", "_")
    if key not in LOSSES:
        raise UserError(f"unknown loss {name!r}; choose one of {', '.join(sorted(LOSSES))}")
    cls = LOSSES[key]
    if not cls.uses_target_stats:
        kwargs = {k: v for k, v in kwargs.items() if k not in _TARGET_STATS}
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise UserError(
            f"loss {key!r}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(accepted) or 'none'}"
        )
    return cls(**kwargs)


__all__ = [
    "ALL_ON",
    "BCEIoULoss",
    "LOSSES",
    "BCELoss",
    "CSALoss",
    "DiceLoss",
    "LossFlags",
    "LossSchedule",
    "SLSLoss",
    "SoftIoULoss",
    "TargetCentricLoss",
    "build_loss",
]
