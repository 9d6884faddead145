"""The shared model tester: every registered network (IR-SAM2 presets and deep baselines) honours the model
contract of ``irsam2.models.base`` and goes through the same engine, checkpoint and deployment code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from irsam2.checkpoint import atomic_save, model_from_checkpoint, model_payload
from irsam2.engine.inference import FrameModel, Predictor
from irsam2.losses import build_loss
from irsam2.models import InputSizeError, ModelConfigError, create_model, list_models, network_spec

ZOO = list_models()
BASELINES = [n for n in ZOO if network_spec(n) is not None]
NORM = {"mean": 0.3, "std": 0.2}


def _build(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(name)


def _perturb_bn(model: torch.nn.Module) -> None:
    """Non-trivial BN statistics, so that eval-mode checks cannot pass on identity normalisation alone."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def test_registry_lists_every_baseline() -> None:
    assert {"acm", "alcnet", "dnanet", "mshnet", "sctransnet", "uiunet"} <= set(BASELINES)
    assert {"irsam2_t", "irsam2_t_base"} <= set(ZOO)
    with pytest.raises(ModelConfigError, match="unknown override 'nope'.*dnanet"):
        create_model("dnanet", nope=1)
    with pytest.raises(ModelConfigError, match="one variant"):
        create_model("acm", variant="paper")
    with pytest.raises(ModelConfigError, match="pretrained SAM2 weights"):
        create_model("acm", pretrained="sam2.pt")
    with pytest.raises(ModelConfigError, match="unknown model"):
        create_model("no_such_net")


# Published counts that our paper-faithful network does not reach, with the reason (kept visible as a strict
# xfail rather than bending an architecture to a number): ALCNet's tabulated 0.427 M (MSHNet paper, Table 1)
# was counted on a third-party port; the authors' released configuration has 0.3726 M (irsam2.models.alcnet).
_PARAMS_KNOWN_GAP = {"alcnet": "tabulated 0.427 M is a port's count; the released ALCNet has 0.3726 M"}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=_PARAMS_KNOWN_GAP[n]))
        if n in _PARAMS_KNOWN_GAP
        else n
        for n in BASELINES
    ],
)
def test_parameter_count_matches_paper(name: str) -> None:
    spec = network_spec(name)
    assert spec is not None and spec.paper_params is not None, f"{name}: no paper parameter count"
    n = sum(p.numel() for p in create_model(name).parameters())
    assert abs(n / 1e6 - spec.paper_params) <= 0.01 * spec.paper_params, (
        f"{name}: {n / 1e6:.4f} M parameters, the paper ({spec.params_source}) {spec.paper_params} M"
    )


@pytest.mark.parametrize("name", ZOO)
def test_forward_backward_and_config(name: str) -> None:
    model = _build(name).train()
    x = torch.randn(2, 3, 32, 64)
    outs = model(x)
    assert isinstance(outs, tuple) and len(outs) >= 1
    for o in outs:
        assert o.shape == (2, 1, 32, 64) and torch.isfinite(o).all()
    mask = torch.zeros(2, 1, 32, 64)
    mask[:, :, 10:13, 20:23] = 1
    loss = build_loss("soft_iou")(outs, {"mask": mask})
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None]
    gated = {"head."}  # IR-SAM2's RHPM head gets no gradient while its gate is closed (DESIGN.md)
    missing = [n for n in missing if not any(n.startswith(g) for g in gated)]
    assert not missing, f"{name}: parameters without gradient: {missing[:5]}"
    # the config rebuilds the same architecture
    cfg = model.config
    assert cfg["name"] == name
    rebuilt = create_model(cfg["name"], cfg["variant"], **cfg["overrides"])
    assert [k for k in rebuilt.state_dict()] == [k for k in model.state_dict()]
    with pytest.raises(InputSizeError, match="multiples of 32"):
        model(torch.randn(1, 3, 40, 64))
    with pytest.raises(InputSizeError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(1, 1, 32, 32))


@pytest.mark.parametrize("name", ZOO)
def test_one_channel_frames_of_odd_size_through_padding(name: str) -> None:
    model = _build(name).eval()
    _perturb_bn(model)
    rng = np.random.default_rng(0)
    frames = [rng.random((37, 45), dtype=np.float32), rng.random((64, 32), dtype=np.float32)]
    preds = Predictor(model, NORM, device="cpu").predict(frames)
    assert [p.shape for p in preds] == [(37, 45), (64, 32)]
    # the same as padding with the mean by hand, replicating the channel, and cropping the final output
    padded = np.full((64, 64), NORM["mean"], dtype=np.float32)
    padded[:37, :45] = frames[0]
    x = (torch.from_numpy(padded)[None, None] - NORM["mean"]) / NORM["std"]
    with torch.inference_mode():
        ref = model(x.expand(1, 3, 64, 64).contiguous())[0][0, 0, :37, :45].numpy()
    np.testing.assert_allclose(preds[0], ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ZOO)
def test_checkpoint_round_trip(name: str, tmp_path: Path) -> None:
    model = _build(name, seed=3).eval()
    _perturb_bn(model)
    path = atomic_save(model_payload(model, norm=NORM), tmp_path / f"{name}.pt")
    loaded, ckpt = model_from_checkpoint(path)
    assert ckpt["model_config"] == model.config and ckpt["norm"] == NORM
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        a, b = model(x), loaded(x)
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v)
    # a different network's weights are refused with a clear error
    other = "acm" if name != "acm" else "dnanet"
    ckpt["model_config"] = create_model(other).config
    atomic_save(ckpt, tmp_path / "mixed.pt")
    with pytest.raises(Exception, match="weights do not"):
        model_from_checkpoint(tmp_path / "mixed.pt")


# The dynamo exporter takes minutes on the bigger graphs (DNANet's nested nodes, IR-SAM2): those are `slow`.
_FAST_EXPORT = {"acm"}


@pytest.mark.parametrize(
    "name",
    [n if n in _FAST_EXPORT else pytest.param(n, marks=pytest.mark.slow) for n in BASELINES + ["irsam2_t"]],
)
def test_onnx_export_parity(name: str, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from irsam2.deploy.onnx import OnnxPredictor, check_parity, export_onnx

    model = _build(name).eval()
    _perturb_bn(model)
    export_onnx(model, NORM, tmp_path / f"{name}.onnx", 64, 64)
    runner = OnnxPredictor(tmp_path / f"{name}.onnx", device="cpu")
    rng = np.random.default_rng(1)
    frames = [rng.random((64, 64), dtype=np.float32), rng.random((50, 61), dtype=np.float32)]
    parity = check_parity(FrameModel(model, NORM["mean"], NORM["std"]), runner, frames, batch_size=3)
    assert parity["max_abs_diff"] < 1e-3, parity


def test_train_a_baseline_with_its_paper_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`irsam2 train --model acm` applies ACM's own recipe (AdaGrad, soft-IoU); --set still wins."""
    from engine_helpers import tiny
    from irsam2.cli import main
    from irsam2.engine.config import load_config

    sets = [f"{k}={v}" for k, v in tiny(tmp_path / "acm").items()] + ["train.epochs=1"]
    args = ["train", "--config", "synthetic", "--model", "acm"] + [a for s in sets for a in ("--set", s)]
    assert main(args) == 0
    cfg = load_config(tmp_path / "acm" / "config.yaml")
    assert (cfg.model.name, cfg.optim.name, cfg.loss.name, cfg.loss.schedule) == (
        "acm",
        "adagrad",
        "soft_iou",
        False,
    )
    assert cfg.train.epochs == 1  # the user's --set wins over the recipe's 300
    model, ckpt = model_from_checkpoint(tmp_path / "acm" / "best.pt")
    assert ckpt["model_config"]["name"] == "acm" and model.config == create_model("acm").config
    capsys.readouterr()
    # --recipe common keeps the preset's recipe
    assert (
        main(["train", "--config", "synthetic", "--model", "acm", "--recipe", "common", "--print-config"])
        == 0
    )
    out = capsys.readouterr().out
    assert "name: acm" in out and "name: adan" in out and "name: csa" in out


def test_bench_all_lists_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    from irsam2.cli import main

    assert main(["bench", "--all", "--complexity", "--size", "64", "--json"]) == 0
    import json

    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert set(rows) == set(ZOO)
    assert rows["dnanet"]["paper_params_m"] == 4.69 and rows["dnanet"]["params"] == sum(
        p.numel() for p in create_model("dnanet").parameters()
    )
    assert all(r["flops"] > 0 and r["flops"] == 2 * r["macs"] for r in rows.values())
    # the text table carries both conventions, since papers print either under the name "FLOPs"
    assert main(["bench", "--all", "--complexity", "--size", "64"]) == 0
    text = capsys.readouterr().out
    assert "FLOPs (G)" in text and "MACs (G)" in text and "dnanet" in text
