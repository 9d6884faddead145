"""The paper's ablation sweeps (Tables 2-6): configurations, commands and the collected table."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import pytest

from irsam2.cli import main
from irsam2.engine.config import load_config, parse_override
from irsam2.engine.sweep import TABLES, build_sweep, collect, format_commands
from irsam2.utils import UserError


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    for name in ("IRSTD-1k", "NUDT-SIRST", "NUAA-SIRST"):
        (tmp_path / "data" / name).mkdir(parents=True)
    return tmp_path / "data"


def _config(run) -> dict:  # the config each printed command builds
    cmd = run.train_command()
    sets = [cmd[i + 1] for i, c in enumerate(cmd) if c == "--set"]
    return load_config(cmd[cmd.index("--config") + 1], sets).to_dict()


def test_table2_components(data_dir: Path) -> None:
    runs = build_sweep("table2", data_dir)
    assert len(runs) == 4 * 3 and {r.dataset for r in runs} == {"irstd1k", "nudt", "nuaa"}
    names = [_config(r)["model"]["name"] for r in runs if r.dataset == "nuaa"]
    assert names == ["irsam2_t_base", "irsam2_t_rhpm", "irsam2_t_cqg", "irsam2_t"]
    full = [r for r in runs if r.dataset == "irstd1k"][-1]
    assert full.setting.paper["irstd1k"] == (69.75, 96.60, 9.03)


@pytest.mark.parametrize(
    ("table", "key", "values"),
    [
        ("table3", ("loss", "name"), ["bce", "soft_iou", "target_centric", "sls", "csa"]),
        ("table4", ("loss", "w_aux"), [0.5, 0.3, 0.2, 0.1]),
        ("table5", ("model", "overrides", "topk"), [1, 5, 10, 20]),
        (
            "table6",
            ("model", "overrides", "lambdas"),
            [[0.1, 0.1, 0.1], [0.2, 0.2, 0.2], [0.4, 0.4, 0.4], [0.1, 0.2, 0.4]],
        ),
    ],
)
def test_tables_build_the_paper_settings(data_dir: Path, table: str, key: tuple, values: list) -> None:
    runs = build_sweep(table, data_dir)
    per_dataset = 3 if table == "table3" else 2
    assert len(runs) == len(values) * per_dataset
    got = []
    for r in runs[: len(values)]:
        c = _config(r)
        for k in key:
            c = c[k]
        got.append(c)
        base = load_config(r.dataset)  # everything else is the dataset's preset recipe
        assert _config(r)["optim"] == base.to_dict()["optim"] and _config(r)["data"]["dataset"] == r.dataset
    assert got == values
    # the paper's best setting carries the main result of Table 1
    assert any(s.paper.get("nudt") == (94.18, 98.94, 2.97) for s in TABLES[table].settings)


def test_models_build_from_the_sweep_overrides() -> None:
    from irsam2.models import create_model

    for table in ("table5", "table6"):
        for s in TABLES[table].settings:
            over = {k.split(".")[-1]: v for k, v in s.overrides.items()}
            create_model("irsam2_t", **over)  # every override is a real model switch


def test_dry_run_prints_commands_and_missing_datasets_are_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "NUDT-SIRST").mkdir()
    assert main(["sweep", "table4", "--data", str(tmp_path), "--dry-run", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("irsam2 train")]
    # commands for a cluster name every dataset of the table, at its usual folder under --data
    assert len(lines) == 8 and sum("--config nudt" in ln for ln in lines) == 4
    assert f"--data {tmp_path / 'IRSTD-1k'}" in lines[0] and "loss.w_aux=0.5" in lines[0]
    assert shlex.split(lines[0])[:2] == ["irsam2", "train"]
    # running needs the data: datasets without a folder are left out, none at all is an error
    assert {r.dataset for r in build_sweep("table4", tmp_path)} == {"nudt"}
    with pytest.raises(UserError, match="none of"):
        build_sweep("table4", tmp_path / "empty")
    with pytest.raises(UserError, match="unknown sweep"):
        build_sweep("table9", tmp_path)


def test_collect_puts_the_paper_beside_ours(data_dir: Path, tmp_path: Path) -> None:
    runs = build_sweep("table5", data_dir, out=tmp_path / "sweep", datasets=["nudt"])
    runs[1].out.mkdir(parents=True)
    (runs[1].out / "test_metrics.json").write_text(json.dumps({"iou": 91.5, "pd": 97.0, "fa": 3.25}))
    md, csv_path = collect(runs, tmp_path / "sweep")
    rows = list(csv.DictReader(open(csv_path)))
    assert [r["setting"] for r in rows] == ["K = 1", "K = 5", "K = 10", "K = 20"]
    assert rows[1]["paper_iou"] == "93.98" and rows[1]["ours_iou"] == "91.5" and rows[0]["ours_iou"] == ""
    text = md.read_text()
    assert "| NUDT-SIRST | K = 5 | 93.98 | 91.50 | 98.62 | 97.00 | 2.29 | 3.25 |" in text
    assert "| NUDT-SIRST | K = 1 | 91.95 | - |" in text
    assert "irsam2 eval" in format_commands(runs) and parse_override("a=1") == ("a", 1)


def test_table1_dry_run_lists_every_model_and_method(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from irsam2.engine.sweep import CLASSICAL
    from irsam2.models import list_models, network_spec

    runs = build_sweep("table1", data_dir, datasets=["nudt"])
    deep = [n for n in list_models() if network_spec(n) is not None] + ["irsam2_t"]
    assert [r.setting.method for r in runs[: len(CLASSICAL)]] == list(CLASSICAL)
    assert [r.overrides.get("model.name") for r in runs[len(CLASSICAL) :]] == deep
    dna = next(r for r in runs if r.overrides.get("model.name") == "dnanet")
    assert _config(dna)["optim"]["name"] == "adagrad" and dna.setting.paper["nudt"] == (79.98, 96.93, 12.78)
    common = build_sweep("table1", data_dir, datasets=["nudt"], recipe="common", only=["dnanet"])
    assert len(common) == 1 and _config(common[0])["optim"]["name"] == "adan"
    assert main(["sweep", "table1", "--data", str(data_dir), "--datasets", "nudt", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "irsam2 baselines --methods pstnn --preset nudt" in out and "model.name=dnanet" in out


def test_table1_tiny_synthetic_run_is_resumable(tmp_path: Path) -> None:
    from irsam2.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "data" / "NUDT-SIRST", n_train=6, n_test=2, size=32, layout="50_50")
    extra = {
        "train.epochs": 1,
        "train.batch_size": 2,
        "train.progress": False,
        "train.tensorboard": False,
        "data.crop_size": 32,
        "data.workers": 0,
        "data.val_fraction": 0.2,
    }
    args = ["sweep", "table1", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "out")]
    args += ["--datasets", "nudt", "--models", "acm,tophat"]
    args += [a for k, v in extra.items() for a in ("--set", f"{k}={v}")]
    with pytest.warns(UserWarning, match="expects 663"):
        assert main(args) == 0
    with open(tmp_path / "out" / "table1.csv") as f:
        rows = {r["setting"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"Top-hat", "ACMNet"} and all(r["ours_iou"] != "" for r in rows.values())
    assert rows["ACMNet"]["paper_iou"] == "68.48"
    assert (tmp_path / "out" / "table1_pd_fa.png").stat().st_size > 1000
    assert "| NUDT-SIRST | ACMNet |" in (tmp_path / "out" / "table1.md").read_text()
    # resumable: a second call finds every row done and trains nothing
    done = tmp_path / "out" / "table1" / "nudt" / "ACMNet" / "test_metrics.json"
    stamp = done.stat().st_mtime_ns
    assert main([*args, "--resume"]) == 0  # (reads no split files: no preset-count warning either)
    assert done.stat().st_mtime_ns == stamp
    assert json.loads(done.read_text())["iou"] == pytest.approx(float(rows["ACMNet"]["ours_iou"]))
