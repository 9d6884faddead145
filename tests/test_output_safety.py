"""Issue 15 beyond `train`: every command refuses a non-empty output (naming it, offering --overwrite), masks
are never silently emptied, --strict exists, predict skips unreadable files and says so, "no targets"."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from irsam2.checkpoint import atomic_save, model_payload
from irsam2.cli import main
from irsam2.data import IRSTDDataset, write_synthetic_dataset
from irsam2.data.io import MaskValueWarning
from irsam2.utils import UserError


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("d") / "syn", n_train=2, n_test=2, size=32, seed=0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from irsam2 import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ck") / "model.pt"
    atomic_save(model_payload(create_model("irsam2_t_base").eval(), norm={"mean": 0.3, "std": 0.1}), path)
    return path


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], folder: Path, resume: bool = False) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(folder) in err and "--overwrite" in err and ("--resume" in err) == resume, err


def test_eval_refuses_a_non_empty_out_and_overwrite_replaces_only_its_own(data: Path, tmp_path: Path, capsys):
    out = tmp_path / "ev"
    argv = ["eval", "--data", str(data), "--predictions", str(data / "masks"), "--out", str(out), "--quiet"]
    assert main(argv) == 0
    (out / "roc.png").unlink()  # the next run must not leave a stale file behind either
    first = (out / "metrics.json").read_bytes()
    _refused(capsys, argv, out)
    assert (out / "metrics.json").read_bytes() == first
    assert main([*argv, "--no-roc", "--overwrite"]) == 0
    assert not (out / "roc.csv").exists() and (out / "metrics.json").is_file()
    (out / "notes.txt").write_text("mine")
    assert main([*argv, "--overwrite"]) == 2
    assert "did not write (notes.txt)" in capsys.readouterr().err and (out / "notes.txt").exists()


def test_baselines_export_and_sweep_refuse_existing_outputs(
    data: Path, checkpoint: Path, tmp_path: Path, capsys
):
    out = tmp_path / "bl"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    _refused(capsys, ["baselines", "--data", str(data), "--methods", "tophat", "--out", str(out)], out)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"an earlier export")
    assert main(["export", "--checkpoint", str(checkpoint), "--onnx", str(onnx)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert onnx.read_bytes() == b"an earlier export"
    (tmp_path / "NUDT-SIRST").mkdir()
    runs = tmp_path / "sw" / "table4"
    (runs / "nudt" / "w_aux_0.5").mkdir(parents=True)
    (runs / "nudt" / "w_aux_0.5" / "last.pt").write_bytes(b"x")
    argv = ["sweep", "table4", "--data", str(tmp_path), "--datasets", "nudt", "--out", str(tmp_path / "sw")]
    _refused(capsys, argv, runs, resume=True)


def test_predict_skips_unreadable_files_lists_them_and_exits_non_zero(
    checkpoint: Path, tmp_path: Path, capsys
):
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("a", "c"):
        Image.fromarray(np.full((32, 40), 60, np.uint8)).save(frames / f"{name}.png")
    (frames / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "pred"
    argv = ["predict", str(frames), "--checkpoint", str(checkpoint), "--out", str(out), "--quiet"]
    argv += ["--device", "cpu", "--no-overlays"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "skipped 1 unreadable inputs" in err and "b.png" in err
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["a.png", "c.png"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 2 and summary["skipped"][0]["file"].endswith("b.png")
    _refused(capsys, argv, out)


def _grey_dataset(root: Path, values: dict[str, int]) -> Path:
    """The synthetic dataset with the targets of some test masks redrawn at other grey values."""
    data = write_synthetic_dataset(root, n_train=1, n_test=len(values), size=32, seed=1)
    stems = (data / "test.txt").read_text().split()
    for stem, v in zip(stems, values.values()):
        p = data / "masks" / f"{stem}.png"
        m = np.asarray(Image.open(p))
        Image.fromarray(np.where(m > 0, v, 0).astype(np.uint8)).save(p)
    return data


def test_a_mask_that_binarising_would_empty_is_refused_unless_a_threshold_is_set(tmp_path: Path) -> None:
    data = _grey_dataset(tmp_path / "g", {"low": 100})
    with pytest.raises(
        UserError, match=r"masks/syn_\d+\.png: the mask's target pixels all have values <= 127"
    ):
        IRSTDDataset(data, split="test", norm={"mean": 0.3, "std": 0.1})
    ds = IRSTDDataset(data, split="test", norm={"mean": 0.3, "std": 0.1}, mask_threshold=0)
    assert ds.load(0)[1].any()  # the target is kept


def test_grey_masks_warn_once_per_dataset_and_strict_refuses_them(tmp_path: Path) -> None:
    data = _grey_dataset(tmp_path / "g", {"a": 200, "b": 180})
    # a 77-valued block beside a real target: dropped by > 127, so it is reported
    stem = (data / "test.txt").read_text().split()[0]
    p = data / "masks" / f"{stem}.png"
    m = np.asarray(Image.open(p)).copy()
    m[0:3, 0:3] = 77
    Image.fromarray(m).save(p)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = IRSTDDataset(data, split="test", norm={"mean": 0.3, "std": 0.1})
        for i in range(len(ds)):
            ds[i]
    grey = [w for w in caught if issubclass(w.category, MaskValueWarning)]
    assert len(grey) == 1 and "2 of 2 masks hold values strictly between 0 and 255" in str(grey[0].message)
    with pytest.raises(UserError, match=r"syn_\d+\.png: \d+ mask pixels have values strictly.*strict mode"):
        IRSTDDataset(data, split="test", norm={"mean": 0.3, "std": 0.1}, strict=True)


def test_strict_is_a_real_option(tmp_path: Path) -> None:
    from irsam2.engine.config import load_config

    assert load_config("synthetic", {"data.strict": True}).data.strict is True
    data = _grey_dataset(tmp_path / "g", {"a": 200})
    out = tmp_path / "ev"
    argv = ["eval", "--data", str(data), "--predictions", str(data / "masks"), "--out", str(out), "--quiet"]
    assert main([*argv, "--strict"]) == 2 and not out.exists()


def test_no_targets_instead_of_pd_nan(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from irsam2.engine.config import load_config
    from irsam2.engine.trainer import Trainer
    from irsam2.metrics.report import format_table

    t = Trainer(load_config("synthetic", {"train.epochs": 1}))
    row = {"epoch": 1, "train_loss": 0.5, "lr": 0.01, "images_per_s": 3.0}
    row |= {"val_iou": 0.0, "val_niou": 0.0, "val_pd": math.nan, "val_fa": 0.0}
    with caplog.at_level(logging.INFO, logger="irsam2"):
        t._print_row(row, finished=True)
    assert "Pd no targets" in caplog.text and "nan" not in caplog.text
    res = {"protocol": "standard", "threshold": 0.0, "iou": 0.0, "niou": 0.0, "pd": math.nan, "fa": 0.0}
    res |= {"frames": 2, "targets": 0, "centroid_dist": 3.0}
    assert "no targets" in format_table([res])
