"""Small helpers shared by every layer of the package."""

from __future__ import annotations

import logging
import random

import numpy as np
import torch

logger = logging.getLogger("irsam2")


class UserError(Exception):
    """An error caused by the user's input (a file, a key, a value).

    The message names the file or key and says what is wrong; the command line prints it without a
    stack trace.
    """


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 - code that still uses the legacy global RNG
    torch.manual_seed(seed)


def pick_device(name: str | None = None) -> torch.device:
    """`None`/"auto" picks CUDA when present, else CPU."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available on this machine")
    return torch.device(name)
