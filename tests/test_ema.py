"""The moving average of the weights: its update rule; in the trainer, what is validated, kept and resumed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from engine_helpers import tiny
from irsam2.checkpoint import safe_load
from irsam2.engine.ema import ModelEma
from irsam2.engine.sync_check import NoHostSync
from irsam2.engine.trainer import Trainer, train


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_update_rule_warm_up_and_buffers() -> None:
    net = _net()
    ema = ModelEma(net, decay=0.9)
    w0 = net[0].weight.detach().clone()
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())
    with torch.no_grad():
        net[0].weight.add_(1.0)
    net(torch.randn(5, 3))  # train mode: BatchNorm's running statistics and its counter move
    ema.update()  # decay min(0.9, 1/10) = 0.1: the average takes 90 % of the new weights
    torch.testing.assert_close(ema.module[0].weight, 0.1 * w0 + 0.9 * (w0 + 1.0))
    torch.testing.assert_close(ema.module[1].running_mean, 0.9 * net[1].running_mean)
    assert int(ema.module[1].num_batches_tracked) == 1  # integer buffers are copied
    w1 = ema.module[0].weight.clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
    ema.update()  # decay min(0.9, 2/11)
    d = 2 / 11
    torch.testing.assert_close(ema.module[0].weight, d * w1 + (1 - d) * net[0].weight.detach())
    for _ in range(200):
        ema.update()
    assert ema.current_decay() == 0.9


def test_update_makes_no_host_sync() -> None:
    net = _net()
    ema = ModelEma(net, decay=0.99)
    with NoHostSync() as mode:
        ema.update()
    assert mode.seen > 0


def test_bad_decay_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        ModelEma(_net(), decay=1.0)


def test_trainer_validates_keeps_and_resumes_the_average(tmp_path: Path) -> None:
    seen: dict[int, dict[str, torch.Tensor]] = {}

    def keep(t: Trainer, row: dict[str, Any]) -> None:
        assert t.ema is not None
        seen[row["epoch"]] = {k: v.clone() for k, v in t.ema.module.state_dict().items()}

    over = {"train.ema": 0.5}
    full = train("synthetic", overrides=tiny(tmp_path / "full", **over), on_epoch=keep)
    last = safe_load(full.last)
    best = safe_load(full.best)
    top = max(h["val_iou"] for h in full.history)
    best_epoch = next(h["epoch"] for h in full.history if h["val_iou"] == top)  # only a rise replaces best
    # best.pt holds the weights that were validated: the average at the best epoch, not the live weights
    for k, v in best["model"].items():
        torch.testing.assert_close(v, seen[best_epoch][k], msg=k)
    assert last["ema"]["updates"] == len(full.step_losses)
    live = last["model"]
    assert any(not torch.equal(live[k], last["ema"]["model"][k]) for k in live if live[k].is_floating_point())

    def stop_after_first_epoch(t: Trainer, row: dict[str, Any]) -> None:
        t.stop.request("stopped")

    out = tmp_path / "resumed"
    train("synthetic", overrides=tiny(out, **over), on_epoch=stop_after_first_epoch)
    again = train("synthetic", overrides=tiny(out, **over), resume=True)
    assert again.status == "completed" and again.epochs_done == 2
    resumed = safe_load(out / "last.pt")["ema"]
    assert resumed["updates"] == last["ema"]["updates"]
    for k, v in last["ema"]["model"].items():
        torch.testing.assert_close(resumed["model"][k], v, rtol=1e-5, atol=1e-6, msg=k)
