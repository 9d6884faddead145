"""Resume: an interrupted run continues exactly like the uninterrupted one (same losses, same weights);
Ctrl-C saves and exits; a SIGKILL loses at most the unfinished epoch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from engine_helpers import tiny
from irsam2.checkpoint import safe_load
from irsam2.engine.trainer import Trainer, train


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[float], dict[str, torch.Tensor]]:
    out = tmp_path_factory.mktemp("uninterrupted")
    r = train("synthetic", overrides=tiny(out))
    return r.step_losses, safe_load(r.last)["model"]


def _assert_same(
    run_dir: Path, ref: tuple[list[float], dict[str, torch.Tensor]], losses: list[float]
) -> None:
    ref_losses, ref_weights = ref
    assert losses == pytest.approx(ref_losses, rel=1e-5, abs=1e-6)
    weights = safe_load(run_dir / "last.pt")["model"]
    for k, v in ref_weights.items():
        torch.testing.assert_close(weights[k], v, rtol=1e-5, atol=1e-6, msg=k)


def test_resume_at_an_epoch_boundary_and_after_ctrl_c_reproduces_the_run(
    tmp_path: Path, reference: Any
) -> None:
    def stop_after_first_epoch(t: Trainer, row: dict[str, Any]) -> None:
        t.stop.request("stopped")

    first = train("synthetic", overrides=tiny(tmp_path), on_epoch=stop_after_first_epoch)
    assert first.status == "stopped" and first.epochs_done == 1
    assert safe_load(tmp_path / "last.pt")["step_in_epoch"] == 0

    def ctrl_c_in_epoch_two(t: Trainer, info: dict[str, Any]) -> None:
        if info["epoch"] == 2 and info["step"] == 1:
            os.kill(os.getpid(), signal.SIGINT)  # the real signal: the handler asks the loop to stop and save

    second = train("synthetic", overrides=tiny(tmp_path), resume=True, on_step=ctrl_c_in_epoch_two)
    assert second.status == "interrupted" and second.epochs_done == 1
    ck = safe_load(tmp_path / "last.pt")
    assert (ck["epoch"], ck["step_in_epoch"]) == (1, 1)
    third = train("synthetic", overrides=tiny(tmp_path), resume=str(tmp_path / "last.pt"))
    assert third.status == "completed" and third.epochs_done == 2 and len(third.history) == 2
    # boundary resume and mid-epoch resume together: the same losses and weights as the uninterrupted run
    _assert_same(tmp_path, reference, third.step_losses)


def test_sigkill_mid_epoch_then_resume_loses_at_most_one_epoch(tmp_path: Path) -> None:
    sets = [
        f"{k}={v}" for k, v in tiny(tmp_path, **{"train.epochs": 2, "data.synthetic.num_images": 5}).items()
    ]
    cmd = [sys.executable, "-m", "irsam2", "train", "--config", "synthetic"]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "last.pt"
    try:
        deadline = time.time() + 300
        while not last.exists():  # written atomically at the end of epoch 1; epoch 2 then starts
            assert proc.poll() is None, "training exited before its first checkpoint"
            assert time.time() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    ck = safe_load(last)
    assert ck["epoch"] == 1 and ck["step_in_epoch"] == 0  # a complete, loadable epoch-1 checkpoint
    r = train(
        "synthetic",
        overrides=tiny(tmp_path, **{"train.epochs": 2, "data.synthetic.num_images": 5}),
        resume=True,
    )
    assert r.status == "completed" and [h["epoch"] for h in r.history] == [1, 2]
    assert r.history[0] == ck["history"][0]  # epoch 1 kept, only the killed epoch was redone
