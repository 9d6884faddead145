"""``benchmarks/bench_convergence.py`` end to end at toy size on the real data (issue 11): the table it writes
holds the steps that ran, every method asked, and the extra settings given with --set."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_convergence.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_toy_run_writes_the_table(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    args = ["--data", str(shared_data / "NUDT-SIRST"), "--steps", "2", "--eval-every", "1", "--batch", "2"]
    args += ["--crop", "64", "--models", "unet_s", "--classical", "tophat", "--test-limit", "3"]
    r = _run(*args, "--set", "loss.pos_weight=3", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    deep, tophat = res["rows"]
    assert (deep["method"], deep["steps"], len(deep["curve"])) == ("unet_s", 2, 2)
    assert tophat["kind"] == "classical" and tophat["metrics"]["frames"] == 3
    # the override reached the training run and is named in the table's caption
    assert "pos_weight: 3" in (out / "unet_s" / "config.yaml").read_text()
    assert "loss.pos_weight=3" in (out / "results.md").read_text()
    assert (out / "curves.png").stat().st_size > 0
    # a second run into the same folder is refused: it would overwrite the first one's results
    again = _run(*args, "--out", str(out))
    assert again.returncode == 2 and "earlier run" in again.stderr


@pytest.mark.slow
def test_bad_override_is_refused(shared_data: Path, tmp_path: Path) -> None:
    data = str(shared_data / "NUDT-SIRST")
    r = _run("--data", data, "--set", "no_equals_sign", "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "no_equals_sign" in r.stderr and "KEY=VALUE" in r.stderr
