"""``benchmarks/gpu_check.py`` end to end on the CPU at smoke size (issue 12): the one prepared GPU script
must not rot between the sessions that get a GPU. Synthetic scenes, so no data is needed; the sync-free step
test it runs is tests/test_engine_step.py itself, and the compiled rows are tests/test_compile.py's paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--cpu-smoke", "--synthetic", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)


def test_speed_run_and_inference_sections(tmp_path: Path) -> None:
    out = tmp_path / "check"
    r = _run("--skip", "sync", "--train-rows", "on-device,on-device+compile-loss", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "gpu_check.json").read_text())
    assert res["mode"] == "cpu-smoke" and res["args"]["data"] is None
    rows = {t["row"]: t for t in res["train_speed"]}
    assert set(rows) == {"on-device", "on-device+compile-loss"}
    assert all(t["on_device"] for t in rows.values())
    assert rows["on-device+compile-loss"]["compile"] and not rows["on-device"]["compile"]
    parts = {
        "on-device": {"data", "forward", "loss", "backward", "optimizer"},
        "on-device+compile-loss": {"data", "forward+loss", "backward", "optimizer"},  # one compiled call
    }
    for name, t in rows.items():
        assert t["images_per_s"] > 0 and t["first_step_s"] > 0
        assert set(t["profile"]) == parts[name]
        assert abs(sum(t["profile"].values()) - 100.0) < 1e-6 and t["profile"]["backward"] > 0
    run = res["short_run"]  # the faster eager row: the only one here
    assert run["row"] == "on-device" and run["test"] == "synthetic test scenes" and run["head_enabled"]
    assert 0.0 <= run["iou"] <= 100.0 and Path(run["checkpoint"]).is_file()
    inf = res["inference"]
    assert inf["weights"] == "trained weights (section 4)"
    assert {(s["variant"], s["batch"]) for s in inf["speeds"]} == {
        (v, b) for v in ("fp32 eager", "bf16 eager") for b in (1, 2)
    }
    (parity,) = inf["parity"]
    assert parity["variant"] == "bf16 eager" and parity["frames"] == 4
    assert "short run" in r.stdout and "train on-device" in r.stdout  # the summary table
    # a second check into the same folder would overwrite the first one's results: refused
    again = _run("--skip", "sync", "--skip", "train", "--skip", "run", "--skip", "infer", "--out", str(out))
    assert again.returncode != 0 and "earlier check" in again.stderr


def test_full_recipe_section(tmp_path: Path) -> None:
    out = tmp_path / "recipe"
    r = _run("--full-recipe", "--epochs", "2", "--full-steps", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "gpu_check.json").read_text())
    assert set(res) >= {"full_recipe", "env", "total_s"} and "train_speed" not in res
    fr = res["full_recipe"]
    assert (fr["status"], fr["epochs_done"], fr["epochs_planned"]) == ("completed", 2, 2)
    assert fr["row"] == "on-device" and fr["best_val_iou"] is not None
    # the scratch recipe reached the run
    cfg = (out / "full_recipe" / "config.yaml").read_text()
    assert "name: bce_iou" in cfg and "on_device: true" in cfg
    assert "full recipe" in r.stdout and "completed: 2 of 2 epochs" in r.stdout


def test_unknown_training_row_is_a_clear_error(tmp_path: Path) -> None:
    r = _run("--train-rows", "loader,gpu-magic", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "--train-rows: unknown ['gpu-magic']" in r.stderr


def test_a_failing_part_is_reported_and_the_check_goes_on() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    gc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gc)

    def boom() -> dict:
        raise RuntimeError("inductor: no kernel for this op\nlong traceback ...")

    r = gc._guarded("on-device+compile-loss", boom)
    assert r == {"error": "RuntimeError: inductor: no kernel for this op"}
    res = {
        "mode": "gpu",
        "env": {"gpu": "H200", "torch": "x"},
        "args": {"batch": 12, "size": 256},
        "train_speed": [{"row": "on-device+compile-loss"} | r],
        "total_s": 1.0,
    }
    assert "train on-device+compile-loss | FAILED: RuntimeError: inductor" in gc.summary(res)


def test_parts_past_the_deadline_are_not_started_and_the_table_still_prints(tmp_path: Path) -> None:
    out = tmp_path / "late"
    r = _run("--skip", "sync", "--train-rows", "loader", "--deadline-s", "1e-9", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "gpu_check.json").read_text())
    (row,) = res["train_speed"]
    for part in (row, res["short_run"], res["inference"]):
        assert part["error"].startswith("not started:") and "--deadline-s" in part["error"]
    assert "train loader | not started:" in r.stdout and "total time" in r.stdout
