"""Catch host-device synchronisation inside a training step, on any device (issue 12).

A GPU training step that reads a value back to the host (``.item()``, ``float(t)``, ``bool(t)``), or runs an
op whose output shape depends on the data (``nonzero``, ``masked_select``, boolean indexing, ``unique``,
``repeat_interleave`` without ``output_size``), stalls the host until the GPU has caught up: the kernel queue
drains and the GPU idles while Python prepares the next kernels. :class:`NoHostSync` is a
``TorchDispatchMode`` that raises :class:`HostSyncError` on exactly those ops, so a CPU test can prove a step
free of them (on the CPU they cost nothing, which is why they creep in unnoticed). The mode sees the ops of
the backward pass too (autograd carries the dispatch-mode stack into its worker).

On CUDA, :func:`cuda_sync_guard` adds ``torch.cuda.set_sync_debug_mode("error")``, which also catches blocking
copies between host and device that no CPU test can see.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# Packets whose every overload forces a sync on a GPU (a value read back, or an output shape that depends on
# the data).
_FORBIDDEN_PACKETS = (
    "_local_scalar_dense",  # .item(), int(t), float(t), bool(t)
    "item",
    "nonzero",
    "nonzero_numpy",
    "argwhere",
    "masked_select",
    "is_nonzero",
    "equal",
    "allclose",
    "unique_consecutive",
    "unique_dim",
    "unique_dim_consecutive",
    "_unique",
    "_unique2",
    "bincount",
    "histc",
    "_cuda_syncwith",
)


class HostSyncError(RuntimeError):
    """An op that forces a host-device synchronisation ran inside a :class:`NoHostSync` region."""


def _forbidden_overloads() -> set[Any]:
    out: set[Any] = set()
    for name in _FORBIDDEN_PACKETS:
        packet = getattr(aten, name, None)
        if packet is None:
            continue
        for ov in packet.overloads():
            out.add(getattr(packet, ov))
    return out


def _bool_index(args: tuple[Any, ...]) -> bool:
    """``aten.index`` / ``index_put`` with a boolean mask among the indices (lowered to ``nonzero``)."""
    if len(args) < 2 or not isinstance(args[1], (list, tuple)):
        return False
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in args[1])


class _NoHostReads(TorchFunctionMode):
    """The Python-level reads that dispatch no op on a CPU tensor (``tolist``, ``numpy``, ``cpu``)."""

    _READS = frozenset({torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.cpu, torch.Tensor.item})

    def __init__(self, allow: set[str]) -> None:
        super().__init__()
        self.allow = allow

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func in self._READS and func.__name__ not in self.allow:
            raise HostSyncError(f"host-device sync inside a training step: Tensor.{func.__name__}()")
        return func(*args, **(kwargs or {}))


class NoHostSync(TorchDispatchMode):
    """Raise :class:`HostSyncError` on ops that synchronise the host with a GPU (see the module docstring).

    ``allow``: op packet names to let through (for example ``{"nonzero"}`` while narrowing a failure down).
    ``seen`` counts every op dispatched, so a test can check that the region actually ran work.
    """

    def __init__(self, allow: set[str] | frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.allow = set(allow)
        self.forbidden = {o for o in _forbidden_overloads() if o._overloadpacket.__name__ not in self.allow}
        self.seen = 0

    def __enter__(self) -> NoHostSync:
        self._reads = _NoHostReads(self.allow)
        self._reads.__enter__()
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        self._reads.__exit__(*exc)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        self.seen += 1
        name = func._overloadpacket.__name__
        reason = None
        if func in self.forbidden:
            reason = "reads a value back to the host or has a data-dependent output shape"
        elif name in ("index", "index_put", "index_put_", "_index_put_impl_") and _bool_index(args):
            reason = "boolean-mask indexing (lowered to nonzero)"
        elif (
            name == "repeat_interleave"
            and kwargs.get("output_size") is None
            and "int" not in func._overloadname
        ):
            reason = "repeat_interleave with a tensor of repeats and no output_size"
        elif name in ("_to_copy", "to", "copy_") and self._device_to_host(func, args, kwargs):
            reason = "copies a device tensor to the host"
        if reason is not None and name not in self.allow:
            raise HostSyncError(f"host-device sync inside a training step: {func} {reason}")
        return func(*args, **kwargs)

    @staticmethod
    def _device_to_host(func: Any, args: tuple, kwargs: dict) -> bool:
        # Only meaningful where a device exists: on a CPU-only run every tensor is on the host.
        name = func._overloadpacket.__name__
        if name == "copy_" and len(args) >= 2:
            dst, src = args[0], args[1]
            return isinstance(src, torch.Tensor) and src.device.type != "cpu" and dst.device.type == "cpu"
        if name == "_to_copy" and args and isinstance(args[0], torch.Tensor):
            dev = kwargs.get("device")
            return args[0].device.type != "cpu" and dev is not None and torch.device(dev).type == "cpu"
        return False


@contextlib.contextmanager
def cuda_sync_guard(device: torch.device | str) -> Iterator[None]:
    """``torch.cuda.set_sync_debug_mode("error")`` for the block on a CUDA device (nothing elsewhere)."""
    device = torch.device(device)
    if device.type != "cuda":
        yield
        return
    old = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(old)


@contextlib.contextmanager
def no_host_sync(device: torch.device | str = "cpu", allow: set[str] | frozenset[str] = frozenset()):
    """Both checks together: the dispatch mode everywhere, plus CUDA's sync debug mode on a GPU."""
    mode = NoHostSync(allow)
    with cuda_sync_guard(device), mode:
        yield mode


__all__ = ["HostSyncError", "NoHostSync", "cuda_sync_guard", "no_host_sync"]
