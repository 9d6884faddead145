"""`irsam2 demo` end to end through a subprocess, with a tiny budget: the report folder is complete."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def test_demo_writes_a_complete_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "irsam2", "demo", "--out", str(out), "--budget-seconds", "8", "--size", "64",
           "--train-images", "16", "--test-images", "4", "--batch-size", "4", "--overlays", "2"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    # the printed table and the files
    assert "| IR-SAM2 |" in r.stdout and "| Top-hat |" in r.stdout
    assert ("beats Top-hat" in r.stdout) != ("does NOT beat Top-hat" in r.stdout)
    for name in ("README.md", "metrics.json", "roc.png", "checkpoint.pt"):
        assert (out / name).is_file(), name
    assert len(list((out / "overlays").glob("*.png"))) == 2
    assert (out / "data" / "train.txt").is_file() and (out / "data" / "test.txt").is_file()

    # the numbers in the report are the measured ones, and the verdict follows them
    m = json.loads((out / "metrics.json").read_text())
    ours, tophat = m["metrics"]["IR-SAM2"], m["metrics"]["Top-hat"]
    assert m["beats_tophat_on_iou"] == (ours["iou"] > tophat["iou"])
    for metrics in (ours, tophat):
        assert 0.0 <= metrics["iou"] <= 100.0 and 0.0 <= metrics["pd"] <= 100.0
    readme = (out / "README.md").read_text()
    assert f"{ours['iou']:.2f}" in readme and f"{tophat['iou']:.2f}" in readme
    assert ("**beats**" in readme) == m["beats_tophat_on_iou"]
    assert "irsam2 train --config nudt" in readme and "irsam2 predict" in readme and "roc.png" in readme
    assert m["training"]["status"] in ("completed", "time_budget")

    # the checkpoint is a working irsam2 checkpoint: predict runs on a test frame with it
    frame = out / "data" / "images" / (out / "data" / "test.txt").read_text().split()[0]
    from irsam2.cli import main

    assert main(["predict", f"{frame}.png", "--checkpoint", str(out / "checkpoint.pt"), "--out",
                 str(tmp_path / "pred"), "--quiet"]) == 0  # fmt: skip
    assert np.asarray(Image.open(next((tmp_path / "pred" / "masks").glob("*.png")))).shape == (64, 64)
