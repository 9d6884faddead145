"""The optimizer the trainer builds (``optim.fused``): torch's fused kernel where it has one, the same update
as the per-tensor loop to rounding, no host sync in its step, and a clear error where fused is required but
missing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from irsam2.engine.sync_check import NoHostSync
from irsam2.engine.trainer import _torch_optimizer


def _optim(name: str, fused: bool | str) -> SimpleNamespace:
    return SimpleNamespace(name=name, lr=1e-2, betas=[0.9, 0.99], weight_decay=1e-2, eps=1e-8, fused=fused)


def _params() -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(shape, generator=g)) for shape in ((17, 5), (5,), (3, 3, 3, 2))]


@pytest.mark.parametrize("name", ["adamw", "sgd", "adagrad"])
def test_auto_takes_the_fused_kernel_on_the_cpu_and_false_does_not(name: str) -> None:
    assert _torch_optimizer(_optim(name, "auto"), _params()).defaults.get("fused") is True
    assert not _torch_optimizer(_optim(name, False), _params()).defaults.get("fused")


@pytest.mark.parametrize("name", ["adamw", "sgd", "adagrad"])
def test_fused_and_unfused_take_the_same_steps_to_rounding(name: str) -> None:
    runs = []
    for fused in (True, False):
        params = _params()
        opt = _torch_optimizer(_optim(name, fused), params)
        g = torch.Generator().manual_seed(1)
        for _ in range(5):
            for p in params:
                p.grad = torch.randn(p.shape, generator=g)
            opt.step()
        runs.append([p.detach().clone() for p in params])
    start = _params()
    for a, b, s in zip(*runs, start, strict=True):
        assert (a - s).abs().max() > 1e-3  # the steps moved the weights
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_step_has_no_host_sync() -> None:
    params = _params()
    opt = _torch_optimizer(_optim("adamw", "auto"), params)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()  # the first step allocates the state
    with NoHostSync() as mode:
        opt.step()
    assert mode.seen > 0


class _NoFusedAdamW(torch.optim.AdamW):
    """AdamW as on a device torch has no fused kernel for."""

    def __init__(self, *args, fused: bool | None = None, **kwargs) -> None:
        if fused:
            raise RuntimeError(
                "`fused=True` requires all the params to be floating point Tensors of supported devices"
            )
        super().__init__(*args, **kwargs)


def test_without_a_fused_kernel_auto_falls_back_and_true_says_why(monkeypatch) -> None:
    monkeypatch.setattr(torch.optim, "AdamW", _NoFusedAdamW)
    opt = _torch_optimizer(_optim("adamw", "auto"), _params())
    assert not opt.defaults.get("fused")
    with pytest.raises(
        RuntimeError, match=r"optim\.fused=true: .* no fused adamw .*optim\.fused=auto or false"
    ):
        _torch_optimizer(_optim("adamw", True), _params())


def test_a_range_error_keeps_the_optimizers_own_message_with_fused_asked() -> None:
    bad = _optim("adamw", True)
    bad.eps = -1.0
    with pytest.raises(ValueError, match="epsilon"):
        _torch_optimizer(bad, _params())
