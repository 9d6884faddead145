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


def _module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    gc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gc)
    return gc


def _wheel(folder: Path, name: str) -> Path:
    """A minimal pure-Python wheel of a one-module package ``name`` (what --prepare carries)."""
    import zipfile

    whl = folder / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": "VALUE = 42\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{k},,\n" for k in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(whl, "w") as z:
        for k, v in {**files, f"{info}/RECORD": record}.items():
            z.writestr(k, v)
    return whl


def test_install_puts_carried_wheels_on_the_path_and_falls_back_to_src(tmp_path: Path, monkeypatch) -> None:
    """--install on the GPU machine: the missing package from .whl/ into a folder of its own on the path
    (offline, the real pip), and, where `pip install -e` of this package fails (an image's setuptools too old
    for pyproject's license field), the source folder on the path instead."""
    import os
    import subprocess as sp

    gc = _module()
    name = "irsam2_carried_probe"
    wheels = tmp_path / "whl"
    wheels.mkdir()
    _wheel(wheels, name)
    monkeypatch.setattr(gc, "WHEELS", wheels)
    monkeypatch.setattr(gc, "SITE", tmp_path / "site")
    monkeypatch.setattr(gc, "NEEDED", {name: name.replace("_", "-")})
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    real_run = sp.run

    def run(cmd, *args, **kwargs):  # the editable install fails as an old setuptools would
        if "-e" in cmd:
            return sp.CompletedProcess(cmd, 1, "", "ERROR: setuptools>=77 is required")
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(gc.subprocess, "run", run)
    res = gc.install()
    assert res["installed_from_wheels"] == [name.replace("_", "-")]
    assert (tmp_path / "site" / name / "__init__.py").is_file()
    assert res["package"] == "src on the path (pip install -e failed: ERROR: setuptools>=77 is required)"
    assert sys.path[:2] == [str(REPO / "src"), str(tmp_path / "site")]
    assert os.environ["PYTHONPATH"].split(os.pathsep)[:2] == [str(REPO / "src"), str(tmp_path / "site")]


def test_a_failing_part_is_reported_and_the_check_goes_on() -> None:
    gc = _module()

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
