"""`irsam2 predict` through a subprocess: mixed 8/16-bit frames of odd sizes, a video, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from irsam2.checkpoint import atomic_save, model_payload
from irsam2.engine.inference import FrameRunner, extract_targets, pad_to_multiple

NORM = {"mean": 0.3, "std": 0.2}


def irsam2(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "irsam2", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained IR-SAM2 with the RHPM head on (so the FFT path runs), saved as an irsam2 checkpoint."""
    from irsam2 import create_model

    torch.manual_seed(0)
    model = create_model("irsam2_t").eval()
    model.set_head_enabled(True)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    atomic_save(model_payload(model, norm=NORM), path)
    return path


def _frames(folder: Path) -> dict[str, tuple[int, int]]:
    """A folder mixing 8-bit and 16-bit PNGs of sizes that are not multiples of 32; returns stem -> (h, w)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sizes = {"a8": (50, 70), "b16": (64, 64), "c8": (37, 100)}
    for stem, (h, w) in sizes.items():
        if stem.endswith("16"):
            a = (rng.random((h, w)) * 16000 + 2000).astype(np.uint16)  # a 14-bit-like sensor range
            a[30:33, 30:33] = 15000
        else:
            a = (rng.random((h, w)) * 60 + 40).astype(np.uint8)
            a[20:23, 20:23] = 250
        Image.fromarray(a).save(folder / f"{stem}.png")
    return sizes


def _video(path: Path, n: int = 3, size: tuple[int, int] = (48, 80)) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (size[1], size[0]))
    assert writer.isOpened()
    for i in range(n):
        img = np.full((*size, 3), 60, np.uint8)
        img[10 + i : 14 + i, 20:24] = 255
        writer.write(img)
    writer.release()
    return path


def test_targets_are_8_connected_components() -> None:
    logits = np.full((20, 30), -5.0, np.float32)
    logits[2:4, 3:6] = 2.0  # a 2x3 blob
    logits[4, 6] = 1.0  # touches the blob diagonally only: same 8-connected component
    logits[10, 20] = 3.0  # a single pixel
    targets = extract_targets(logits)
    assert [t.area for t in targets] == [1, 7]  # ordered by peak score
    big = targets[1]
    assert big.box == (3, 2, 7, 5)  # x0, y0, x1, y1 with x1, y1 exclusive
    assert big.peak_logit == pytest.approx(2.0)
    assert big.peak_score == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-6)
    ys, xs = np.nonzero(logits > 0)
    small = ys < 8
    assert big.centroid == pytest.approx((xs[small].mean(), ys[small].mean()))
    assert extract_targets(np.full((5, 5), -1.0)) == []


def test_runner_pads_batches_and_crops_back() -> None:
    seen: list[tuple[int, ...]] = []

    class Echo(FrameRunner):
        def run_batch(self, x: np.ndarray) -> np.ndarray:
            seen.append(x.shape)
            return x * 2 - 1

    frames = [
        np.random.default_rng(i).random(s, dtype=np.float32)
        for i, s in enumerate([(40, 70), (33, 64), (64, 64)])
    ]
    out = Echo(batch_size=2, pad_value=0.5).predict(frames)
    assert sorted(seen) == [(1, 1, 64, 96), (2, 1, 64, 64)]  # grouped by padded size, never mixed
    for f, o in zip(frames, out):
        assert o.shape == f.shape and np.allclose(o, f * 2 - 1)
    assert pad_to_multiple(np.zeros((33, 40)), value=0.5)[40, 50] == 0.5


def test_predict_folder_and_video(tmp_path: Path, checkpoint: Path) -> None:
    sizes = _frames(tmp_path / "frames")
    video = _video(tmp_path / "clip.avi")
    single = tmp_path / "frames" / "a8.png"
    out = tmp_path / "out"
    ckpt = ["--checkpoint", str(checkpoint), "--quiet", "--device", "cpu"]
    r = irsam2("predict", str(tmp_path / "frames"), str(video), *ckpt, "--out", str(out), "--batch-size", "2")
    assert r.returncode == 0, r.stderr
    assert "6 frames" in r.stdout
    expected = {**sizes, **{f"clip_{i:06d}": (48, 80) for i in range(3)}}
    for stem, (h, w) in expected.items():
        mask = np.asarray(Image.open(out / "masks" / f"{stem}.png"))
        assert mask.shape == (h, w) and set(np.unique(mask)) <= {0, 255}
        overlay = np.asarray(Image.open(out / "overlays" / f"{stem}.png"))
        assert overlay.shape == (h, w, 3)
        record = json.loads((out / "targets" / f"{stem}.json").read_text())
        assert record["size"] == [h, w] and record["num_targets"] == len(record["targets"])
        # the JSON and the mask agree: the targets' areas add up to the mask's pixels
        assert sum(t["area"] for t in record["targets"]) == int((mask > 0).sum())
        for t in record["targets"]:
            x0, y0, x1, y1 = t["box"]
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h and 0 < t["peak_score"] <= 1
    assert json.loads((out / "targets" / "b16.json").read_text())["bit_depth"] == 16
    assert json.loads((out / "targets" / "clip_000002.json").read_text())["frame_index"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 6 and len(summary["per_frame"]) == 6

    # the same frame alone gives the same mask as inside the batched folder run (no cross-frame effects)
    from irsam2.cli import main

    assert main(["predict", str(single), *ckpt, "--out", str(tmp_path / "one")]) == 0
    alone = np.asarray(Image.open(tmp_path / "one" / "masks" / "a8.png"))
    assert np.array_equal(alone, np.asarray(Image.open(out / "masks" / "a8.png")))


def test_unreadable_input_is_named_without_traceback(tmp_path: Path, checkpoint: Path) -> None:
    _frames(tmp_path / "frames")
    bad = tmp_path / "frames" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    r = irsam2(
        "predict", str(tmp_path / "frames"), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")
    )
    # issue 15: the good frames still get their results; the bad file is skipped, listed, and the exit is 1
    assert r.returncode == 1 and "broken.png" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "skipped 1 unreadable inputs" in r.stderr
    assert sorted(p.stem for p in (tmp_path / "o" / "masks").iterdir()) == ["a8", "b16", "c8"]


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The CLI entry point in-process (same error handling as the command, without a new interpreter)."""
    from irsam2.cli import main

    code = main(["predict", *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_predict_errors_are_clear(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _frames(tmp_path / "frames")
    frames, out = str(tmp_path / "frames"), str(tmp_path / "o")

    code, err = _main(capsys, frames, "--checkpoint", str(tmp_path / "nope.pt"), "--out", out)
    assert code == 2 and "nope.pt" in err and "no such checkpoint" in err

    other = tmp_path / "other.pt"  # a checkpoint of another model: a plain state dict of some network
    torch.save(torch.nn.Linear(4, 2).state_dict(), other)
    code, err = _main(capsys, frames, "--checkpoint", str(other), "--out", out)
    assert code == 2 and "other.pt" in err and "not an irsam2 checkpoint" in err

    wrong = tmp_path / "wrong.pt"  # irsam2 format, but the weights of another architecture (no CQG)
    payload = torch.load(checkpoint, weights_only=True)
    payload["model"] = {k: v for k, v in payload["model"].items() if not k.startswith("cqg.")}
    torch.save(payload, wrong)
    code, err = _main(capsys, frames, "--checkpoint", str(wrong), "--out", out)
    assert code == 2 and "wrong.pt" in err and "do not match" in err

    code, err = _main(capsys, str(tmp_path / "missing_dir"), "--checkpoint", str(checkpoint))
    assert code == 2 and "missing_dir" in err

    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    code, err = _main(capsys, str(notes), "--checkpoint", str(checkpoint))
    assert code == 2 and "notes.txt" in err and "unsupported" in err

    fake_video = tmp_path / "fake.mp4"
    fake_video.write_bytes(b"not a video")
    code, err = _main(capsys, str(fake_video), "--checkpoint", str(checkpoint))
    assert code == 2 and "fake.mp4" in err

    code, err = _main(capsys, frames)
    assert code == 2 and "--checkpoint" in err
