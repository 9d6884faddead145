"""`irsam2 eval` and irsam2.engine.evaluate: native resolution, --resize, predictions folders, clear
errors."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from irsam2.commands import eval as eval_cmd
from irsam2.data.io import DataRepairWarning, read_mask, write_frame, write_mask
from irsam2.engine.evaluate import evaluate_model, evaluate_predictions, split_files
from irsam2.utils import UserError

SIZES = [(64, 64), (50, 70), (64, 64), (37, 45)]  # mixed sizes, as in NUAA-SIRST


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="irsam2 eval")
    eval_cmd.add_arguments(p)
    return p.parse_args(argv)


def make_dataset(root: Path) -> list[tuple[str, np.ndarray]]:
    """images/ + masks/ + test.txt with frames of several sizes; returns (stem, mask) of the test frames."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    out = []
    for i, (h, w) in enumerate(SIZES + [(64, 64)]):
        stem = f"f{i}"
        mask = np.zeros((h, w), bool)
        for _ in range(2):
            y, x = rng.integers(2, h - 6), rng.integers(2, w - 6)
            mask[y : y + 3, x : x + 2] = True
        frame = np.clip(rng.normal(0.3, 0.05, (h, w)) + 0.5 * mask, 0, 1)
        write_frame(root / "images" / f"{stem}.png", frame)
        write_mask(root / "masks" / f"{stem}.png", mask)
        out.append((stem, mask))
    (root / "train.txt").write_text("f4\n")
    (root / "test.txt").write_text("".join(f"f{i}\n" for i in range(len(SIZES))))
    return out[: len(SIZES)]


class Oracle(torch.nn.Module):
    """Logits read from the image (which the test set equal to the mask): checks padding, cropping,
    batching."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        assert x.shape[-1] % 32 == 0 and x.shape[-2] % 32 == 0
        self.shapes.append(tuple(x.shape))
        y = x[:, :1] * 10.0
        return y, y, y


def oracle_items(shift: tuple[int, int] = (0, 0)) -> list[dict]:
    rng = np.random.default_rng(1)
    items = []
    for i, (h, w) in enumerate(SIZES):
        mask = np.zeros((h, w), np.float32)
        mask[10:13, 20:23] = 1
        mask[h - 4 : h - 2, w - 3 : w - 1] = (
            1  # near the bottom-right corner: padding must be cropped exactly
        )
        score = np.roll(mask, shift, axis=(0, 1)) * 2 - 1 + rng.normal(0, 0.01, (h, w)).astype(np.float32)
        ph, pw = (-h) % 32, (-w) % 32  # the dataset's test-time padding
        img = np.pad(score, ((0, ph), (0, pw)))
        items.append(
            {
                "image": torch.from_numpy(np.repeat(img[None], 3, 0)),
                "mask": torch.from_numpy(np.pad(mask, ((0, ph), (0, pw)))[None]),
                "stem": f"s{i}",
                "orig_size": (h, w),
            }
        )
    return items


def test_evaluate_model_native_resolution_with_mixed_sizes():
    model = Oracle()
    r = evaluate_model(model, oracle_items(), batch_size=2, keep_worst=2)
    m = r.metrics[0]
    assert m["iou"] == pytest.approx(100.0) and m["niou"] == pytest.approx(100.0)
    assert m["pd"] == 100.0 and m["fa"] == 0.0 and m["targets"] == 8
    assert m["pixels"] == sum(h * w for h, w in SIZES)
    by_name = {p["name"]: (p["height"], p["width"]) for p in r.per_image}
    assert [by_name[f"s{i}"] for i in range(len(SIZES))] == SIZES  # records follow batch completion
    assert r.roc is not None and r.roc["auc"] == pytest.approx(1.0)
    # batches only join frames of the same padded size: (64, 64) twice, (64, 96), (64, 64) for 37x45
    assert sorted(model.shapes) == sorted([(2, 3, 64, 64), (1, 3, 64, 96), (1, 3, 64, 64)])
    assert len(r.worst) == 2


def test_evaluate_model_shifted_prediction_and_resize_protocol():
    shifted = evaluate_model(Oracle(), oracle_items(shift=(0, 3)), roc=False).metrics[0]
    assert shifted["pd"] == 0.0  # every blob 3 px off: not strictly closer than 3
    assert shifted["false_alarm_pixels"] == 4 * (9 + 4)
    r = evaluate_model(Oracle(), oracle_items(), resize=256, protocols=("basicirstd", "legacy"), roc=False)
    assert [(p["height"], p["width"]) for p in r.per_image] == [(256, 256)] * 4
    assert [m["protocol"] for m in r.metrics] == ["basicirstd", "legacy"]
    assert r.metrics[0]["pd"] == 100.0 and "256x256" in r.settings["resolution"]
    with pytest.raises(UserError, match="multiple of 32"):
        evaluate_model(Oracle(), oracle_items(), resize=100)


def test_predictions_folder_scores_and_errors(tmp_path: Path):
    truth = make_dataset(tmp_path / "data")
    stems, images, masks = split_files(tmp_path / "data", "test")
    assert stems == [s for s, _ in truth]
    pred = tmp_path / "pred"
    pred.mkdir()
    for stem, mask in truth:
        write_mask(pred / f"{stem}.png", mask)
    r = evaluate_predictions(pred, stems, images, masks, keep_worst=1)
    m = r.metrics[0]
    assert (m["iou"], m["pd"], m["fa"], m["threshold"]) == (100.0, 100.0, 0.0, 0.5)
    # a logit score map as .npy: sigmoid applied, with a warning
    (pred / "f1.png").unlink()
    np.save(pred / "f1.npy", np.where(truth[1][1], 4.0, -4.0))
    with pytest.warns(UserWarning, match="logits"):
        assert evaluate_predictions(pred, stems, images, masks).metrics[0]["iou"] == 100.0
    # missing stems are listed
    (pred / "f1.npy").unlink()
    (pred / "f3.png").unlink()
    with pytest.raises(UserError, match=r"no prediction for 2 of 4 frames: f1, f3"):
        evaluate_predictions(pred, stems, images, masks)
    # a prediction of the wrong size names the file, unless --resize scores both at NxN
    write_mask(pred / "f1.png", np.zeros((10, 10), bool))
    write_mask(pred / "f3.png", truth[3][1])
    with pytest.raises(UserError, match=r"f1\.png: prediction is 10x10 but the frame is 70x50"):
        evaluate_predictions(pred, stems, images, masks)
    r = evaluate_predictions(pred, stems, images, masks, resize=64)
    assert r.metrics[0]["frames"] == 4 and r.per_image[1]["height"] == 64
    with pytest.raises(UserError, match="predictions folder not found"):
        evaluate_predictions(tmp_path / "nope", stems, images, masks)


def test_cli_predictions_mode_writes_everything(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    truth = make_dataset(tmp_path / "data")
    pred = tmp_path / "pred"
    pred.mkdir()
    for k, (stem, mask) in enumerate(truth):
        p = mask.copy()
        if k == 2:
            p[:] = False  # missed everything
            p[0:2, 0:2] = True  # and one false alarm of 4 px
        write_mask(pred / f"{stem}.png", p)
    out = tmp_path / "out"
    args = parse(["--data", str(tmp_path / "data"), "--predictions", str(pred), "--out", str(out)])
    args.overlays, args.protocol, args.quiet = 2, "all", True
    assert eval_cmd.run(args) == 0
    printed = capsys.readouterr().out
    assert "Fa(1e-6)" in printed and "IoU(%)" in printed
    assert "padded" not in printed and "each frame at its own size" in printed  # predictions: scored as given
    for protocol in ("basicirstd", "optimal", "legacy"):  # a row and its rule for each
        assert sum(line.lstrip().startswith(protocol) for line in printed.splitlines()) == 2
    data = json.loads((out / "metrics.json").read_text())
    std = data["metrics"][0]
    assert std["protocol"] == "basicirstd" and std["false_alarm_pixels"] == 4
    assert [m["protocol"] for m in data["metrics"]] == ["basicirstd", "optimal", "legacy"]
    assert "greedy" in std["protocol_rule"]
    assert std["pd"] == pytest.approx(100 * 6 / 8)
    assert std["fa"] == pytest.approx(1e6 * 4 / sum(h * w for h, w in SIZES))
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert rows[0]["name"] == "f2" and rows[0]["false_alarm_pixels"] == "4"  # worst first
    assert {r["protocol"] for r in rows} == {"basicirstd"}
    assert [float(r["iou"]) for r in rows] == sorted(float(r["iou"]) for r in rows)
    assert (out / "roc.csv").is_file() and (out / "pdfa.csv").is_file()
    assert (out / "roc.png").read_bytes()[:4] == b"\x89PNG"
    overlays = sorted((out / "overlays").glob("*.png"))
    assert len(overlays) == 2 and overlays[0].name.startswith("001_f2")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from irsam2 import create_model
    from irsam2.checkpoint import atomic_save, model_payload

    torch.manual_seed(0)
    model = create_model("irsam2_t")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    atomic_save(model_payload(model, norm={"mean": 0.3, "std": 0.1}), path)
    return path


def test_cli_checkpoint_mode_on_synthetic_frames(tmp_path: Path, tiny_checkpoint: Path, capsys):
    from irsam2.data import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "syn", n_train=1, n_test=3, size=64, seed=0)
    out = tmp_path / "out"
    args = parse(
        ["--data", str(data), "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--overlays", "1"]
    )
    args.device, args.quiet = "cpu", True
    assert eval_cmd.run(args) == 0
    printed = capsys.readouterr().out
    assert "basicirstd" in printed and "padded to a multiple of 32" in printed
    res = json.loads((out / "metrics.json").read_text())
    m = res["metrics"][0]
    assert m["frames"] == 3 and m["pixels"] == 3 * 64 * 64 and m["threshold"] == 0.0
    assert res["settings"]["checkpoint"] == str(tiny_checkpoint) and res["settings"]["mode"] == "model"
    assert 0.0 <= res["roc"]["auc"] <= 1.0
    assert len(list(csv.DictReader((out / "per_image.csv").open()))) == 3
    assert len(list((out / "overlays").glob("*.png"))) == 1


def test_cli_checkpoint_errors(tmp_path: Path, tiny_checkpoint: Path):
    make_dataset(tmp_path / "data")
    base = ["--data", str(tmp_path / "data"), "--quiet", "--device", "cpu"]
    with pytest.raises(UserError, match="no such checkpoint"):
        eval_cmd.run(parse(base + ["--checkpoint", str(tmp_path / "missing.pt")]))
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not an irsam2 checkpoint"):
        eval_cmd.run(parse(base + ["--checkpoint", str(tmp_path / "other.pt")]))
    ck = torch.load(tiny_checkpoint, weights_only=True)
    ck["norm"] = None
    torch.save(ck, tmp_path / "nonorm.pt")
    with pytest.raises(UserError, match="'norm'"):
        eval_cmd.run(parse(base + ["--checkpoint", str(tmp_path / "nonorm.pt")]))
    with pytest.raises(UserError, match="dataset folder not found"):
        eval_cmd.run(parse(["--data", str(tmp_path / "nope"), "--predictions", str(tmp_path)]))
    with pytest.raises(SystemExit):  # --checkpoint and --predictions are exclusive
        parse(base + ["--checkpoint", "a.pt", "--predictions", "p"])


def test_cli_main_reports_user_errors_without_traceback(tmp_path: Path, capsys):
    from irsam2.cli import main

    assert main(["eval", "--data", str(tmp_path), "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert "irsam2 eval: error:" in err and "Traceback" not in err


@pytest.mark.slow
def test_nuaa_ground_truth_as_predictions_scores_perfectly(shared_data: Path, tmp_path: Path):
    """Mixed sizes and the Misc_111 mask defect of the real NUAA-SIRST release, at native resolution."""
    root = shared_data / "NUAA-SIRST"
    stems, images, masks = split_files(root, "test", preset="nuaa_50_50")
    pred = tmp_path / "pred"
    pred.mkdir()
    from PIL import Image

    for stem, ip, mp in zip(stems, images, masks):
        with Image.open(ip) as im:
            size = (im.height, im.width)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataRepairWarning)  # Misc_111: mask repaired to its image's size
            write_mask(pred / f"{stem}.png", read_mask(mp, size=size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataRepairWarning)
        r = evaluate_predictions(pred, stems, images, masks, protocols=("basicirstd", "legacy"), roc=False)
    for m in r.metrics:
        assert (m["iou"], m["niou"], m["pd"], m["fa"]) == (100.0, 100.0, 100.0, 0.0)
    assert len({(p["height"], p["width"]) for p in r.per_image}) > 5
    shutil.rmtree(pred)
