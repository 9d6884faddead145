"""The training engine on tiny synthetic data: the loss goes down, checkpoints and logs are complete, NaN
stops the run."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from engine_helpers import tiny
from irsam2.checkpoint import model_from_checkpoint, safe_load
from irsam2.engine.trainer import Trainer, TrainingDiverged, train
from irsam2.utils import UserError


def test_loss_goes_down_on_a_fixed_batch(tmp_path: Path) -> None:
    # two training frames, batch 2, no augmentation: every step sees the same batch
    r = train(
        "synthetic",
        overrides=tiny(
            tmp_path,
            **{
                "data.synthetic.num_images": 3,
                "data.val_fraction": 0.34,
                "data.augment": False,
                "loss.schedule": False,
                "train.epochs": 4,
                "train.val_every": 4,
                "sched.name": "constant",
            },
        ),
    )
    losses = r.step_losses
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 1e-3, losses


def test_checkpoints_logs_history_and_the_gate(tmp_path: Path) -> None:
    seen: list[tuple[bool, bool]] = []

    def on_epoch(t: Trainer, row: dict[str, Any]) -> None:
        seen.append((t.schedule.gate_open, t.model_core.head_enabled))

    # warm-up 1 epoch, gate_iou 0: the gate opens at the end of epoch 2 (past the warm-up), the head with it
    r = train(
        "synthetic",
        overrides=tiny(tmp_path, **{"train.tensorboard": True, "loss.gate_iou": 0.0}),
        on_epoch=on_epoch,
    )
    assert seen == [(False, False), (True, True)]
    assert r.status == "completed" and r.epochs_done == 2 and len(r.history) == 2
    assert r.last == tmp_path / "last.pt" and r.best == tmp_path / "best.pt"
    ck = safe_load(r.last)  # weights_only=True
    for key in ("model", "model_config", "norm", "target_stats", "optimizer", "scheduler", "epoch", "rng"):
        assert key in ck, key
    assert ck["epoch"] == 2 and ck["loss_schedule"]["gate_open"] is True
    assert ck["train_config"]["train"]["epochs"] == 2 and len(ck["history"]) == 2
    assert isinstance(ck["rng"]["python"], list) and isinstance(ck["rng"]["numpy"], list)
    # cosine annealing stepped once per epoch: lr(epoch 2) = min + (lr0 - min) (1 + cos(pi / 2)) / 2
    assert r.history[1]["lr"] == pytest.approx(1e-6 + (0.01 - 1e-6) * 0.5)
    # the loss terms follow the schedule: soft IoU in the warm-up, then alpha-weighted
    assert (r.history[0]["alpha"], r.history[1]["alpha"]) == (0, 1)
    model, _ = model_from_checkpoint(r.best)
    assert model(torch.zeros(1, 3, 32, 32))[0].shape == (1, 1, 32, 32)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    assert {"train_loss", "val_iou", "val_pd", "val_fa", "lr", "time_s", "gate_open"} <= set(rows[0])
    assert [row["gate_open"] for row in rows] == ["0", "1"]
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert (tmp_path / "config.yaml").is_file()


def test_last_checkpoint_every_n_epochs_and_always_at_the_end(tmp_path: Path) -> None:
    seen: list[int | None] = []

    def on_epoch(t: Trainer, row: dict[str, Any]) -> None:  # called after the epoch's checkpoints
        last = tmp_path / "last.pt"
        seen.append(safe_load(last)["epoch"] if last.exists() else None)

    r = train(
        "synthetic",
        overrides=tiny(tmp_path, **{"train.epochs": 3, "train.last_every": 2}),
        on_epoch=on_epoch,
    )
    assert r.status == "completed" and seen == [None, 2, 3]
    assert (tmp_path / "best.pt").is_file()


def test_nan_loss_names_the_batch_files(tmp_path: Path) -> None:
    from irsam2.engine.config import load_config

    t = Trainer(load_config("synthetic", tiny(tmp_path)))
    t.setup()
    # a NaN loss (kept off the network's graph so that its backward costs nothing)
    t.loss_fn = lambda outputs, batch, flags=None: torch.full((), float("nan"), requires_grad=True)
    with pytest.raises(TrainingDiverged, match=r"synthetic:0:\d"):
        t.run()


def test_time_budget_stops_cleanly_with_a_checkpoint(tmp_path: Path) -> None:
    r = train("synthetic", overrides=tiny(tmp_path, **{"train.time_budget_s": 0.01, "train.epochs": 50}))
    assert r.status == "time_budget" and r.last is not None and r.best is not None
    ck = safe_load(r.last)
    assert ck["epoch"] == 0 and ck["step_in_epoch"] == 1


def test_bad_batch_configuration_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="train.batch_size"):
        train("synthetic", overrides=tiny(tmp_path, **{"train.batch_size": 3, "train.micro_batch": 2}))


@pytest.mark.slow
def test_real_nudt_split_feeds_the_engine(tmp_path: Path, shared_data: Path) -> None:
    """NUDT-SIRST as released: the 50_50 training split minus a carved validation split, recorded."""
    over = tiny(
        tmp_path,
        **{
            "data.root": str(shared_data / "NUDT-SIRST"),
            "data.dataset": "nudt",
            "data.crop_size": 64,
            "data.val_fraction": 0.02,
            "train.epochs": 1,
            "train.max_steps_per_epoch": 1,
        },
    )
    r = train("nudt", overrides=over)
    val = (tmp_path / "val_split.txt").read_text().split()
    train_stems = (shared_data / "NUDT-SIRST" / "50_50" / "train.txt").read_text().split()
    test_stems = set((shared_data / "NUDT-SIRST" / "50_50" / "test.txt").read_text().split())
    assert len(val) == round(0.02 * len(train_stems)) and set(val) <= set(train_stems)
    assert not set(val) & test_stems  # selection never sees the test split
    ck = safe_load(r.last)
    assert 0 < ck["norm"]["std"] < 1 and ck["target_stats"]["area_mean"] > 0
    assert math.isfinite(r.history[0]["val_iou"])


def test_dataset_folder_with_an_explicit_split_file(tmp_path: Path) -> None:
    """A user's folder and split file: the validation frames are carved from that split and recorded."""
    from irsam2.data import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "data", n_train=6, n_test=2, size=32, seed=3)
    over = tiny(
        tmp_path / "run",
        **{
            "data.root": str(data),
            "data.split": str(data / "train.txt"),
            "data.val_fraction": 0.34,
            "train.epochs": 1,
        },
    )
    r = train("synthetic", overrides=over)
    val = (tmp_path / "run" / "val_split.txt").read_text().split()
    kept = (tmp_path / "run" / "train_split.txt").read_text().split()
    assert len(val) == 2 and sorted(val + kept) == sorted((data / "train.txt").read_text().split())
    assert not set(val) & set((data / "test.txt").read_text().split())
    assert r.status == "completed" and len(r.step_losses) == 2  # 4 training frames, batch 2


def test_scratch_recipe_trains_with_a_per_step_schedule(tmp_path: Path) -> None:
    from irsam2.engine.config import load_config

    cfg = load_config("synthetic", {**tiny(tmp_path / "run"), "recipe": "scratch", "sched.warmup_steps": 1})
    lrs: list[float] = []
    result = train(cfg, on_step=lambda t, info: lrs.append(t.optimizer.param_groups[0]["lr"]))
    assert result.status == "completed" and len(lrs) == 4  # 2 epochs x 2 steps
    assert lrs[0] == pytest.approx(2e-3)  # the recipe's peak, after the one warm-up step
    assert lrs[-1] == pytest.approx(1e-6)  # cosine to min_lr at the last step
    assert all(math.isfinite(h["train_loss"]) for h in result.history)
    assert "val_flooded" in result.history[-1]
