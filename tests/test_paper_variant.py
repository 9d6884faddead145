"""The ``paper`` variant (spec section 9): it differs from ``official`` only in the table's switches, every
RHPM stage of a full forward follows the paper's equations and removes at least the DC bin, and the engine
trains it with the full CSA and the head open from the first step."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from engine_helpers import tiny
from irsam2.engine.config import load_config
from irsam2.engine.trainer import Trainer, train
from irsam2.models import create_model
from irsam2.models.registry import resolve_config
from irsam2.models.rhpm import RHPM, rhpm_keep
from irsam2.utils import UserError
from rhpm_reference import brute_paper, scene

# spec section 9's model switches, each with the value the paper variant must take
PAPER_SWITCHES = {
    "rhpm_norm": "paper",  # consistent inverse FFT normalisation
    "rhpm_zeroing": "<",  # pixel radii from (H//2, W//2), r_cut >= 1, d < r_cut
    "fusion_kernel": 1,  # 1x1 fusion conv for P
    "cqg_refine": "mlp",  # MLP(LN)
    "head_input": "image",  # raw image I (gated by sigmoid(mask), like the release)
    "head_enabled": True,  # head gate always on
}


def test_paper_differs_from_official_only_in_the_spec_switches():
    official = dataclasses.asdict(resolve_config("irsam2_t", "official", {}))
    paper = dataclasses.asdict(resolve_config("irsam2_t", "paper", {}))
    assert {k for k in official if official[k] != paper[k]} == set(PAPER_SWITCHES)
    assert {k: paper[k] for k in PAPER_SWITCHES} == PAPER_SWITCHES
    # and in the engine: the loss schedule follows the variant (the last row of the table)
    assert load_config("nudt").release_schedule() is True
    assert load_config("nudt", ["model.variant=paper"]).release_schedule() is False
    for preset in ("irstd1k", "nudt", "nuaa", "synthetic"):
        assert load_config(preset).loss.schedule is True  # presets keep `schedule: true`


@pytest.mark.parametrize(
    "variant,schedule,release",
    [
        ("official", True, True),
        ("paper", True, False),
        ("official", False, False),
        ("paper", "none", False),
        ("paper", "release", True),
        ("official", "release", True),
    ],
)
def test_loss_schedule_follows_the_variant_unless_forced(variant: str, schedule: Any, release: bool):
    cfg = load_config("synthetic", {"model.variant": variant, "loss.schedule": schedule})
    assert cfg.release_schedule() is release


def test_bad_loss_schedule_is_a_user_error():
    with pytest.raises(UserError, match="loss.schedule"):
        load_config("synthetic", ["loss.schedule=sometimes"])


@pytest.fixture(scope="module")
def paper_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("irsam2_t", "paper").eval()
    assert model.head_enabled
    return model


def _stages(model: torch.nn.Module) -> dict[str, RHPM]:
    stages = {"cqg": model.cqg.rhpm}
    stages.update({f"head{i}": m for i, m in enumerate(model.head.rhpm)})
    return stages


@pytest.mark.parametrize("h,w", [(64, 64), (128, 128), (256, 256), (96, 160)])
@pytest.mark.parametrize("kind", ["random", "scene"])
def test_every_paper_rhpm_stage_removes_dc_and_changes_its_input(
    paper_model: torch.nn.Module, h: int, w: int, kind: str
):
    if kind == "random":
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(h + w))
    else:
        x = scene(h, w, index=h + w).expand(1, 3, h, w).contiguous()
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, name=name: seen.__setitem__(name, (inp[0], out)))
        for name, m in _stages(paper_model).items()
    ]
    try:
        with torch.no_grad():
            paper_model(x)
    finally:
        for hk in hooks:
            hk.remove()
    assert set(seen) == {"cqg", "head0", "head1", "head2"}  # all four stages ran
    for name, (inp, out) in seen.items():
        lam = _stages(paper_model)[name].lam
        assert inp.shape[-2:] == ((h // 16, w // 16) if name == "cqg" else (h, w))
        assert (rhpm_keep(inp, lam, "<")[:, 0, 0, 0] == 0).all(), f"{name} keeps the DC bin"
        scale = float(out.abs().max())
        assert (out - inp.float().abs()).abs().amax() > 1e-3 * scale, f"{name} returns |input| unchanged"
        expected, cuts, gap = brute_paper(inp, lam)
        assert min(cuts) >= 1 and gap > 1e-5, (name, cuts, gap)
        torch.testing.assert_close(out, expected, atol=1e-5 * scale, rtol=1e-4, msg=name)


def _engine(tmp_path: Path, **extra: Any) -> Trainer:
    # gate_iou 1.0 cannot be reached: under the release schedule the head would stay closed throughout
    t = Trainer(load_config("synthetic", tiny(tmp_path, **{"loss.gate_iou": 1.0, **extra})))
    t.setup()
    return t


@pytest.mark.parametrize(
    "variant,schedule,full",
    [
        ("paper", True, True),
        ("official", True, False),
        ("paper", "release", False),
        ("official", False, True),
    ],
)
def test_engine_picks_the_schedule_from_the_variant(tmp_path: Path, variant: str, schedule: Any, full: bool):
    t = _engine(tmp_path, **{"model.variant": variant, "loss.schedule": schedule})
    all_on = (True, True, True)
    assert dataclasses.astuple(t.schedule.flags(1)) == (all_on if full else (False, False, False))
    assert t.model_core.head_enabled is full and t.schedule.gate_open is full


def test_engine_trains_the_paper_variant_with_the_full_csa_from_the_first_step(tmp_path: Path):
    heads: list[bool] = []
    rows: list[dict[str, Any]] = []
    train(
        "synthetic",
        overrides=tiny(
            tmp_path,
            **{
                "model.variant": "paper",
                "loss.gate_iou": 1.0,
                "train.epochs": 1,
                "train.max_steps_per_epoch": 1,
            },
        ),
        on_step=lambda t, info: heads.append(t.model_core.head_enabled),
        on_epoch=lambda t, row: rows.append(row),
    )
    assert heads == [True]
    assert [(r["alpha"], r["location"], r["aux"], r["gate_open"]) for r in rows] == [(1, 1, 1, 1)]
