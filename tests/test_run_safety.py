"""Issue 15: a run never destroys another, a failed start leaves nothing, resume honours or refuses overrides,
best.pt is lean, stale temporary files are cleaned, optimizer errors are one line naming the key."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from engine_helpers import tiny
from irsam2.checkpoint import model_from_checkpoint, safe_load
from irsam2.engine.run_dir import OutputExists
from irsam2.engine.trainer import train
from irsam2.utils import UserError


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    r = train("synthetic", overrides=tiny(out))
    assert r.status == "completed"
    return out


def _copy(run: Path, dst: Path) -> Path:
    shutil.copytree(run, dst)
    return dst


def _snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file's size, modification time and (small files) bytes: any rewrite changes it."""
    return {
        str(p.relative_to(folder)): (
            p.stat().st_size,
            p.stat().st_mtime_ns,
            p.read_bytes() if p.stat().st_size < 1 << 20 else b"",
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".irsam2-" in p.name]


def test_a_second_run_into_a_finished_run_is_refused(finished: Path, tmp_path: Path) -> None:
    run = _copy(finished, tmp_path / "a")
    before = _snapshot(run)
    with pytest.raises(OutputExists, match=r"a: the folder already holds results.*--resume.*--overwrite"):
        train("synthetic", overrides=tiny(run))
    assert _snapshot(run) == before and not _leftovers(tmp_path)


def test_failed_starts_leave_nothing_and_never_touch_an_existing_run(finished: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "deep" / "fresh"
    with pytest.raises(UserError, match="optim.lr"):  # fails at the first optimizer step
        train("synthetic", overrides=tiny(fresh, **{"optim.lr": 1e38}))
    assert not (tmp_path / "deep").exists()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="bad.pt: not a PyTorch checkpoint"):
        train("synthetic", overrides=tiny(fresh), resume=str(bad))
    assert not (tmp_path / "deep").exists()
    # --overwrite with a start that fails: the old run is untouched
    run = _copy(finished, tmp_path / "old")
    before = _snapshot(run)
    with pytest.raises(UserError, match="optim.lr"):
        train("synthetic", overrides=tiny(run, **{"optim.lr": 1e38}), overwrite=True)
    with pytest.raises(UserError, match="train.batch_size"):
        train(
            "synthetic",
            overrides=tiny(run, **{"train.batch_size": 3, "train.micro_batch": 2}),
            overwrite=True,
        )
    assert _snapshot(run) == before and not _leftovers(tmp_path)


def test_overwrite_replaces_a_run_folder_only(finished: Path, tmp_path: Path) -> None:
    run = _copy(finished, tmp_path / "r")
    old_last = (run / "last.pt").read_bytes()
    r = train("synthetic", overrides=tiny(run, **{"train.epochs": 1}), overwrite=True)
    assert r.epochs_done == 1 and safe_load(run / "last.pt")["epoch"] == 1
    assert (run / "last.pt").read_bytes() != old_last and not _leftovers(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputExists, match=r"holds files irsam2 did not write \(thesis.tex\)"):
        train("synthetic", overrides=tiny(home), overwrite=True)
    assert (home / "thesis.tex").read_text() == "years of work"


def test_resume_refuses_overrides_it_cannot_apply_and_leaves_config_alone(
    finished: Path, tmp_path: Path
) -> None:
    run = _copy(finished, tmp_path / "r")
    before = _snapshot(run)
    with pytest.raises(
        UserError, match=r"loss\.w_aux: 0\.2 in the checkpoint, 0\.3 now; optim\.lr: 0\.01 in"
    ):
        train("synthetic", overrides=tiny(run, **{"optim.lr": 0.5, "loss.w_aux": 0.3}), resume=True)
    with pytest.raises(UserError, match=r"train.epochs=1 but the run has already done 2 epochs"):
        train("synthetic", overrides=tiny(run, **{"train.epochs": 1}), resume=True)
    assert _snapshot(run) == before  # config.yaml and the log are rewritten only by a run that started


def test_resume_with_more_epochs_extends_the_schedule(finished: Path, tmp_path: Path) -> None:
    run = _copy(finished, tmp_path / "r")
    (run / ".last.pt.x1y2.tmp").write_bytes(b"half a checkpoint")  # a save killed with SIGKILL
    r = train("synthetic", overrides=tiny(run, **{"train.epochs": 4, "data.workers": 0}), resume=True)
    assert r.status == "completed" and [h["epoch"] for h in r.history] == [1, 2, 3, 4]
    assert not (run / ".last.pt.x1y2.tmp").exists()
    # epochs 3 and 4 follow the cosine schedule of a 4-epoch run (spec 8): lr0 0.01 down to 1e-6
    for h in r.history[2:]:
        e = h["epoch"] - 1
        assert h["lr"] == pytest.approx(1e-6 + (0.01 - 1e-6) * (1 + math.cos(math.pi * e / 4)) / 2)
    ck = safe_load(run / "last.pt")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved == ck["train_config"] and saved["train"]["epochs"] == 4


def test_best_is_lean_and_optionally_half(finished: Path, tmp_path: Path) -> None:
    best, last = safe_load(finished / "best.pt"), safe_load(finished / "last.pt")
    assert "optimizer" not in best and "rng" not in best and "optimizer" in last
    assert (finished / "best.pt").stat().st_size < 0.5 * (finished / "last.pt").stat().st_size
    model, _ = model_from_checkpoint(finished / "best.pt")
    assert model(torch.zeros(1, 3, 32, 32))[0].shape == (1, 1, 32, 32)
    with pytest.raises(UserError, match=r"not a training checkpoint.*resume from last.pt"):
        train("synthetic", overrides=tiny(tmp_path / "x"), resume=str(finished / "best.pt"))
    r = train("synthetic", overrides=tiny(tmp_path / "h", **{"train.epochs": 1, "train.best_half": True}))
    half = safe_load(r.best)
    floats = [v for v in half["model"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    model, _ = model_from_checkpoint(r.best)  # eval/predict/export load it into a float32 model
    assert next(model.parameters()).dtype == torch.float32


def test_stale_staging_folder_of_a_killed_start_is_removed(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / f".run.irsam2-{int(dead.stdout)}.partial"
    stale.mkdir()
    (stale / "val_split.txt").write_text("syn_0\n")
    train("synthetic", overrides=tiny(tmp_path / "run", **{"train.epochs": 1}))
    assert not stale.exists() and (tmp_path / "run" / "last.pt").is_file()


def test_resume_and_pretrained_checkpoints_are_checked_before_the_data(tmp_path: Path) -> None:
    bad = tmp_path / "sam2.pt"
    bad.write_bytes(b"junk, not a checkpoint")
    no_data = {"data.root": str(tmp_path / "no_such_dataset")}  # reading it would fail with another error
    with pytest.raises(UserError, match=r"sam2.pt: not a PyTorch checkpoint"):
        train("synthetic", overrides=tiny(tmp_path / "r", **no_data, **{"model.pretrained": str(bad)}))
    with pytest.raises(UserError, match=r"sam2.pt: not a PyTorch checkpoint"):
        train("synthetic", overrides=tiny(tmp_path / "r", **no_data), resume=str(bad))
    assert not (tmp_path / "r").exists() and not _leftovers(tmp_path)
