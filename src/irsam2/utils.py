"""Small helpers shared by every layer of the package."""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

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


class LineProgress:
    """A stand-in for a tqdm bar when its stream is not a terminal (CI logs, ``nohup``, ``cmd > log 2>&1``).

    tqdm redraws its bar with carriage returns; in a file every redraw becomes a line, thousands per epoch.
    This object takes the same calls (iteration, ``update``, ``set_postfix``, ``close``) and writes one line
    when the phase ends: what, how many, how long, the rate and the last postfix.
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        file: TextIO | None = None,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self._start = int(initial)
        self.file = file
        self.postfix = ""
        self._t0 = time.perf_counter()
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LineProgress: nothing to iterate (pass an iterable)")
        try:
            for x in self.iterable:
                yield x
                self.n += 1
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **kwargs: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kwargs.items())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        dt = time.perf_counter() - self._t0
        done = self.n - self._start
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        rate = f", {done / dt:.2f} {self.unit}/s" if dt > 0 and done else ""
        extra = f", {self.postfix}" if self.postfix else ""
        head = f"{self.desc}: " if self.desc else ""
        print(
            f"{head}{count} {self.unit} in {dt:.1f} s{rate}{extra}", file=self.file or sys.stderr, flush=True
        )


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    disable: bool = False,
    leave: bool = True,
    initial: int = 0,
    file: TextIO | None = None,
    summary: bool = True,
) -> Any:
    """A tqdm bar when its stream (stderr unless ``file``) is a terminal, else a :class:`LineProgress` that
    writes one summary line per phase (none with ``summary=False``, for callers that log their own line);
    nothing at all with ``disable``."""
    stream = file or sys.stderr
    isatty = getattr(stream, "isatty", None)
    tty = bool(callable(isatty) and isatty())
    if disable or (not tty and not summary):
        from tqdm import tqdm

        return tqdm(iterable, total=total, disable=True)
    if tty:
        from tqdm import tqdm

        return tqdm(
            iterable, total=total, desc=desc or None, unit=unit, leave=leave, initial=initial, file=stream,
            dynamic_ncols=True,
        )  # fmt: skip
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, file=file)
