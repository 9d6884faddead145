"""``irsam2 train --compile`` and ``irsam2 bench --compile`` on the CPU with tiny inputs (issue 12).

The compiled paths are traced for real (dynamo + AOTAutograd with the ``aot_eager`` backend, which checks the
same graph capture as inductor without generating C++, so a test takes seconds); the first step's time,
compilation included, is reported. CUDA graphs need a GPU and are skipped here with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine_helpers import tiny
from irsam2.cli import main
from irsam2.engine.trainer import train


def test_train_compile_matches_eager_and_reports_the_first_step(tmp_path: Path) -> None:
    over = tiny(tmp_path / "eager", **{"train.epochs": 1})
    eager = train("synthetic", overrides=over)
    over = tiny(tmp_path / "compiled", **{"train.epochs": 1, "train.compile": True})
    over["train.compile_backend"] = "aot_eager"
    compiled = train("synthetic", overrides=over)
    assert compiled.status == "completed" and compiled.first_step_s is not None and compiled.first_step_s > 0
    # the same graph, traced: the same losses up to float re-association
    assert compiled.step_losses == pytest.approx(eager.step_losses, rel=1e-4, abs=1e-5)
    assert compiled.to_dict()["first_step_s"] == compiled.first_step_s


def test_train_cli_compile_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", "synthetic", "--compile", "--print-config"]) == 0
    assert "compile: true" in capsys.readouterr().out


def test_bench_compile_reports_fps_and_first_call(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "--device", "cpu", "--size", "32", "--batch", "1", "--iters", "1", "--warmup", "1"]
    assert main([*args, "--compile", "--compile-backend", "aot_eager", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (speed,) = report["speed"]
    assert speed["compile"] is True and speed["fps"] > 0 and speed["first_call_s"] > 0


def test_bench_compile_mode_needs_compile() -> None:
    args = ["bench", "--device", "cpu", "--size", "32", "--compile-mode", "max-autotune"]
    assert main(args) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cuda_graph_runner_matches_eager() -> None:
    from irsam2.models import create_model
    from irsam2.models.speed import make_runner

    model = create_model("irsam2_t").cuda().eval()
    model.set_head_enabled(True)
    x = torch.randn(2, 3, 64, 64, device="cuda")
    ref = make_runner(model, x)()[0].clone()
    out = make_runner(model, x, cuda_graphs=True)()[0]
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("on_device", [True, False], ids=["on-device", "loader"])
def test_train_compile_loss_matches_eager(tmp_path: Path, on_device: bool) -> None:
    """Forward and loss compiled as one function (train.compile_loss): the same losses as eager. Device
    batches have fixed shapes (one graph; aot_eager: AOTAutograd's joint graph); the loader's number of
    targets changes from batch to batch: one recompilation marks it dynamic, not one per batch (dynamo's
    symbolic trace is what failed there, so the quicker eager backend suffices)."""
    from torch._dynamo.utils import counters

    extra = {"train.epochs": 2, "data.on_device": on_device, "loss.schedule": False}
    eager = train("synthetic", overrides=tiny(tmp_path / "eager", **extra))
    torch._dynamo.reset()  # no state from another test's shapes
    counters.clear()
    over = tiny(tmp_path / "compiled", **extra, **{"train.compile": True, "train.compile_loss": True})
    over["train.compile_backend"] = "aot_eager" if on_device else "eager"
    compiled = train("synthetic", overrides=over)
    assert compiled.status == "completed" and compiled.first_step_s is not None
    assert len(compiled.step_losses) == len(eager.step_losses) == 4
    # the same computation up to float re-association, compounded over three Adan steps (lr 0.01); a missing
    # or doubled loss term moves a loss by percents
    assert compiled.step_losses == pytest.approx(eager.step_losses, rel=1e-3, abs=1e-5)
    assert 1 <= counters["stats"]["unique_graphs"] <= (1 if on_device else 2)


def test_compile_loss_needs_compile() -> None:
    from irsam2.engine.config import load_config
    from irsam2.utils import UserError

    with pytest.raises(UserError, match="'train.compile_loss' needs train.compile"):
        load_config("synthetic", {"train.compile_loss": True, "data.on_device": True})
