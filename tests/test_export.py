"""`irsam2 export` round trip: dynamo export with the RHPM FFTs, parity with torch, `predict --onnx`."""

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

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

NORM = {"mean": 0.3, "std": 0.2}


def irsam2(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "irsam2", *args], capture_output=True, text=True, timeout=timeout
    )


def test_searchsorted_and_sort_translations_are_exact(tmp_path: Path) -> None:
    """The two ONNX translations this package registers agree with torch, ties and batch included."""
    import onnxruntime as ort

    from irsam2.deploy.onnx import _custom_translations

    class Search(torch.nn.Module):
        def forward(self, energy: torch.Tensor, radius: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            order = torch.argsort(radius, stable=True)
            cum = energy[:, order].cumsum(-1)
            idx = torch.searchsorted(cum, 0.4 * cum[:, -1:])
            return radius[order][idx], torch.searchsorted(cum, cum[:, 3:4].contiguous(), right=True)

    energy = torch.rand(3, 16)
    radius = torch.tensor([0.5, 0.1, 0.1, 0.9, 0.3, 0.3, 0.3, 0.7, 0.2, 0.8, 0.6, 0.4, 0.4, 1.0, 0.05, 0.95])
    program = torch.onnx.export(
        Search().eval(),
        (energy, radius),
        dynamo=True,
        dynamic_shapes=({0: torch.export.Dim("b", min=1, max=64)}, None),
        custom_translation_table=_custom_translations(),
        verbose=False,
    )
    path = tmp_path / "search.onnx"
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(0)
    for b in (1, 5):
        e = torch.rand(b, 16, generator=gen)
        # no cumulative sum within float32 rounding of the 0.4 quantile: ORT and torch may sum in another
        # order, and a near-tie would then pick a different index (the deliberate tie at cum[3] is exact)
        cum = e.double().cumsum(-1)
        assert ((cum - 0.4 * cum[:, -1:]).abs() > 1e-4).all()
        got = session.run(None, {i.name: v.numpy() for i, v in zip(session.get_inputs(), (e, radius))})
        want = Search()(e, radius)
        assert np.array_equal(got[0], want[0].numpy())
        assert np.array_equal(got[1], want[1].numpy())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from irsam2 import create_model

    torch.manual_seed(0)
    model = create_model("irsam2_t").eval()
    model.set_head_enabled(True)  # the RHPM cascade (FFTs, searchsorted) must be in the graph
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    atomic_save(model_payload(model, norm=NORM), path)
    return path


def test_export_round_trip(tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "real"
    real.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((64, 64)) * 200).astype(np.uint8)).save(real / "f8.png")
    Image.fromarray((rng.random((50, 40)) * 30000).astype(np.uint16)).save(real / "f16.png")
    onnx_path = tmp_path / "model.onnx"

    r = irsam2("export", "--checkpoint", str(checkpoint), "--onnx", str(onnx_path), "--size", "64",
               "--check-data", str(real), "--check-frames", "2")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS" in r.stdout
    diffs = [
        float(line.split("max |diff| ")[1].split(",")[0])
        for line in r.stdout.splitlines()
        if "max |diff|" in line
    ]
    assert len(diffs) == 2 and max(diffs) < 1e-4, r.stdout  # random frames and the real folder

    # the ONNX file: one (B, 1, 64, 64) input with a symbolic batch, normalisation metadata
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 64, 64]

    # predict --onnx agrees with predict --checkpoint (same masks; logits within the parity tolerance)
    out_onnx, out_torch = tmp_path / "p_onnx", tmp_path / "p_torch"
    from irsam2.cli import main

    assert main(["predict", str(real), "--onnx", str(onnx_path), "--out", str(out_onnx), "--quiet"]) == 0
    assert "onnxruntime" in capsys.readouterr().out
    assert (
        main(["predict", str(real), "--checkpoint", str(checkpoint), "--out", str(out_torch), "--quiet"]) == 0
    )
    for stem in ("f8", "f16"):
        a = json.loads((out_onnx / "targets" / f"{stem}.json").read_text())
        b = json.loads((out_torch / "targets" / f"{stem}.json").read_text())
        assert a["size"] == b["size"]
        assert [t["box"] for t in a["targets"]] == [t["box"] for t in b["targets"]]
        for ta, tb in zip(a["targets"], b["targets"]):
            assert ta["peak_logit"] == pytest.approx(tb["peak_logit"], abs=1e-3)

    # a frame larger than the export size is refused with a clear message
    big = tmp_path / "big"
    big.mkdir()
    Image.fromarray(np.zeros((100, 64), np.uint8)).save(big / "tall.png")
    code = main(["predict", str(big), "--onnx", str(onnx_path), "--out", str(tmp_path / "p_big"), "--quiet"])
    assert code == 2 and "re-export" in capsys.readouterr().err


def test_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from irsam2.cli import main

    assert (
        main(["export", "--checkpoint", str(tmp_path / "none.pt"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    )
    assert "none.pt" in capsys.readouterr().err
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "frame.png")
    assert main(["predict", str(tmp_path), "--onnx", str(tmp_path / "none.onnx")]) == 2
    assert "none.onnx" in capsys.readouterr().err
