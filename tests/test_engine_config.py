"""Training config: presets carry the paper's recipe (spec 8); unknown keys and bad values are errors naming
the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from irsam2.cli import main
from irsam2.engine.config import Config, config_from_dict, list_presets, load_config, parse_override
from irsam2.utils import UserError


@pytest.mark.parametrize("preset", ["irstd1k", "nudt", "nuaa"])
def test_benchmark_presets_hold_the_paper_recipe(preset: str) -> None:
    c = load_config(preset)
    assert (c.optim.name, c.optim.lr, c.optim.weight_decay, c.optim.eps) == ("adan", 0.01, 1e-4, 1e-8)
    assert c.optim.betas == [0.98, 0.92, 0.99]
    assert (c.sched.name, c.sched.min_lr, c.train.epochs) == ("cosine", 1e-6, 300)
    assert (c.train.batch_size, c.data.crop_size, c.data.dataset) == (12, 256, preset)
    assert (c.loss.name, c.loss.w_aux, c.loss.warmup_epochs, c.loss.gate_iou) == ("csa", 0.2, 20, 0.4)
    assert c.data.copy_paste == (preset == "irstd1k")  # spec 8: copy-paste only for IRSTD-1k


def test_every_preset_loads_and_synthetic_is_small() -> None:
    assert {"irstd1k", "nudt", "nuaa", "synthetic"} <= set(list_presets())
    c = load_config("synthetic")
    assert c.data.root is None and c.data.crop_size <= 128 and c.train.epochs <= 5


def test_overrides_are_typed() -> None:
    c = load_config(
        "nudt",
        ["train.epochs=7", "optim.lr=1e-3", "train.channels_last=true", "model.overrides.topk=5", "out=/x/y"],
    )
    assert c.train.epochs == 7 and c.optim.lr == pytest.approx(1e-3) and c.train.channels_last is True
    assert c.model.overrides == {"topk": 5} and c.out == "/x/y"
    assert parse_override("model.overrides.lambdas=[0.1,0.2,0.4]") == (
        "model.overrides.lambdas",
        [0.1, 0.2, 0.4],
    )


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.epoch=3", "train.epoch"),
        ("trian.epochs=3", "trian"),
        ("train.epochs=abc", "train.epochs"),
        ("train.epochs=2.5", "train.epochs"),
        ("optim.lr=fast", "optim.lr"),
        ("optim.lr=-1", "optim.lr"),
        ("train.amp=fp8", "train.amp"),
        ("optim.betas=[0.9,0.99]", "optim.betas"),
        ("data.crop_size=100", "data.crop_size"),
        ("train.channels_last=maybe", "train.channels_last"),
        ("train.epochs.x=1", "train.epochs"),
        ("optim.fused=maybe", "optim.fused"),
        ("loss.w_hard=-1", "loss.w_hard"),
        ("loss.hard_fraction=0", "loss.hard_fraction"),
        ("data.scale=[2.0,0.5]", "data.scale"),
        ("data.scale=[0,1]", "data.scale"),
        ("data.blur_p=2", "data.blur_p"),
        ("train.ema=1.0", "train.ema"),
        ("train.last_every=0", "train.last_every"),
    ],
)
def test_bad_override_names_the_key(override: str, key: str) -> None:
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        load_config("nudt", [override])


def test_yaml_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 3\n  bogus: 1\n")
    with pytest.raises(UserError, match=r"bad\.yaml.*train\.bogus"):
        load_config(str(bad))
    with pytest.raises(UserError, match="unknown config preset 'nope'"):
        load_config("nope")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [1, 2\n")
    with pytest.raises(UserError, match="broken.yaml: not valid YAML"):
        load_config(str(broken))


def test_round_trip_through_dict() -> None:
    c = load_config("irstd1k", ["model.overrides.lambdas=[0.2,0.2,0.2]"])
    again = config_from_dict(c.to_dict())
    assert again == c and isinstance(again, Config)


def test_cli_reports_a_bad_key_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", "synthetic", "--set", "train.epoch=3"]) == 2
    err = capsys.readouterr().err
    assert "train.epoch" in err and "Traceback" not in err


def test_cli_print_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", "nudt", "--data", "/d/NUDT-SIRST", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "root: /d/NUDT-SIRST" in out and "lr: 0.01" in out


def test_scratch_recipe_applies_between_preset_and_user_overrides() -> None:
    c = load_config("nudt", {"recipe": "scratch", "optim.lr": 5e-4})
    assert c.recipe == "scratch"
    assert (c.loss.name, c.loss.schedule, c.optim.name, c.sched.name) == (
        "bce_iou",
        False,
        "adamw",
        "warmup_cosine",
    )
    assert c.optim.lr == 5e-4  # the user's --set wins over the recipe
    assert c.data.dataset == "nudt" and c.train.epochs == 300  # the preset's other keys stay
    assert (c.data.scale, c.data.blur_p) == ([1.0, 1.0], 0.0)  # no zoom, no blur from scratch
    assert (c.loss.w_target, c.loss.w_hard) == (0.25, 0.15)
    release = load_config("nudt")
    assert release.recipe == "release"
    assert (release.data.scale, release.data.blur_p) == ([0.5, 2.0], 0.5)  # the release keeps its own


def test_a_saved_config_keeps_its_resolved_values(tmp_path: Path) -> None:
    from irsam2.engine.config import save_config

    c = load_config("nudt", {"recipe": "scratch", "optim.lr": 5e-4})
    path = save_config(c, tmp_path / "config.yaml")
    again = load_config(str(path))
    assert again.recipe == "scratch" and again.optim.lr == 5e-4  # the recipe is not re-applied over it


def test_unknown_recipe_is_an_error_naming_the_key() -> None:
    with pytest.raises(UserError, match="recipe"):
        load_config("nudt", {"recipe": "fast"})


def test_warmup_cosine_rises_linearly_then_decays_to_min_lr() -> None:
    import torch

    from irsam2.engine.trainer import warmup_cosine

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, total_steps=100, warmup_steps=10, min_lr=0.01)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1 / 11) and lrs[9] == pytest.approx(10 / 11)
    assert lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # monotone decay after the warm-up
    assert lrs[-1] == pytest.approx(0.01, abs=2e-3) and opt.param_groups[0]["lr"] == pytest.approx(0.01)


def test_zoom_range_reaches_the_augmentation() -> None:
    from irsam2.engine.data_setup import _augment

    assert _augment(load_config("nudt")).scale == (0.5, 2.0)  # the release's range by default
    aug = _augment(load_config("nudt", ["data.scale=[0.8,1.25]", "data.blur_p=0"]))
    assert (aug.scale, aug.blur_p) == ((0.8, 1.25), 0.0)
