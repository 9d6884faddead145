"""The paper's ablations (Tables 2 to 6, paper section 3.3) as configurations, runs and one collected table.

Each table is a list of settings (config overrides) crossed with the datasets the paper reports for it. A
sweep either runs every configuration with :func:`irsam2.engine.train` followed by a test-split evaluation of
the ``best`` checkpoint (selected on validation IoU), or prints the equivalent ``irsam2 train`` / ``irsam2
eval`` commands for a cluster. :func:`collect` gathers whatever results exist into markdown and CSV with the
paper's numbers beside ours. The paper's numbers below are read from Tables 2-6 of the paper's text (IoU and
Pd in %, Fa in 1e-6)."""

from __future__ import annotations

import csv
import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irsam2.utils import UserError, logger

DATASETS = ("irstd1k", "nudt", "nuaa")
DATASET_TITLES = {"irstd1k": "IRSTD-1k", "nudt": "NUDT-SIRST", "nuaa": "NUAA-SIRST"}
# folder names under --data that hold each benchmark (as released / as in ../shared/data)
DATASET_FOLDERS = {
    "irstd1k": ("IRSTD-1k", "IRSTD1k", "irstd1k", "IRSTD-1K"),
    "nudt": ("NUDT-SIRST", "NUDT_SIRST", "nudt", "NUDT"),
    "nuaa": ("NUAA-SIRST", "NUAA_SIRST", "nuaa", "sirst", "SIRST"),
}
RESULT_FILE = "test_metrics.json"


@dataclass(frozen=True)
class Setting:
    """One row of a paper table: its label, the config overrides that build it, the paper's (IoU, Pd, Fa)."""

    label: str
    overrides: dict[str, Any]
    paper: dict[str, tuple[float, float, float]]


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    datasets: tuple[str, ...]
    settings: tuple[Setting, ...]


_FULL = {"irstd1k": (69.75, 96.60, 9.03), "nudt": (94.18, 98.94, 2.97), "nuaa": (75.16, 99.08, 4.79)}

TABLES: dict[str, Table] = {
    "table2": Table(
        "table2",
        "Table 2: ablation of the components (RHPM head, CQG)",
        DATASETS,
        (
            Setting(
                "baseline (no RHPM, no CQG)",
                {"model.name": "irsam2_t_base"},
                {
                    "irstd1k": (65.43, 93.53, 17.15),
                    "nudt": (91.47, 98.41, 3.84),
                    "nuaa": (73.68, 99.08, 6.56),
                },
            ),
            Setting(
                "+ RHPM",
                {"model.name": "irsam2_t_rhpm"},
                {
                    "irstd1k": (67.20, 88.77, 8.50),
                    "nudt": (87.36, 98.94, 3.24),
                    "nuaa": (72.03, 100.0, 32.65),
                },
            ),
            Setting(
                "+ CQG",
                {"model.name": "irsam2_t_cqg"},
                {
                    "irstd1k": (66.84, 92.51, 7.51),
                    "nudt": (86.22, 98.41, 4.59),
                    "nuaa": (73.65, 97.24, 21.29),
                },
            ),
            Setting("IR-SAM2 (RHPM + CQG)", {"model.name": "irsam2_t"}, _FULL),
        ),
    ),
    "table3": Table(
        "table3",
        "Table 3: loss functions",
        DATASETS,
        (
            Setting(
                "BCE",
                {"loss.name": "bce"},
                {
                    "irstd1k": (63.44, 84.69, 4.55),
                    "nudt": (94.52, 98.94, 1.84),
                    "nuaa": (72.77, 98.16, 17.92),
                },
            ),
            Setting(
                "IoU",
                {"loss.name": "soft_iou"},
                {
                    "irstd1k": (63.15, 93.54, 36.97),
                    "nudt": (90.65, 98.20, 3.77),
                    "nuaa": (74.12, 97.25, 9.94),
                },
            ),
            Setting(
                "TDA (target-centric alone)",
                {"loss.name": "target_centric"},
                {
                    "irstd1k": (65.28, 95.93, 25.81),
                    "nudt": (88.98, 98.73, 7.63),
                    "nuaa": (71.40, 98.16, 21.11),
                },
            ),
            Setting(
                "SLS",
                {"loss.name": "sls"},
                {
                    "irstd1k": (67.64, 90.14, 7.52),
                    "nudt": (85.68, 98.73, 8.16),
                    "nuaa": (73.62, 98.24, 14.58),
                },
            ),
            Setting("CSA (ours)", {"loss.name": "csa"}, _FULL),
        ),
    ),
    "table4": Table(
        "table4",
        "Table 4: weight w_aux of the auxiliary loss in CSA",
        ("irstd1k", "nudt"),
        (
            Setting(
                "w_aux = 0.5",
                {"loss.w_aux": 0.5},
                {"irstd1k": (65.95, 90.81, 10.24), "nudt": (90.33, 97.24, 2.18)},
            ),
            Setting(
                "w_aux = 0.3",
                {"loss.w_aux": 0.3},
                {"irstd1k": (67.46, 93.93, 7.06), "nudt": (90.84, 98.51, 11.23)},
            ),
            Setting("w_aux = 0.2", {"loss.w_aux": 0.2}, {"irstd1k": _FULL["irstd1k"], "nudt": _FULL["nudt"]}),
            Setting(
                "w_aux = 0.1",
                {"loss.w_aux": 0.1},
                {"irstd1k": (68.91, 95.59, 8.35), "nudt": (92.77, 98.94, 4.25)},
            ),
        ),
    ),
    "table5": Table(
        "table5",
        "Table 5: number K of candidate points in the CQG",
        ("irstd1k", "nudt"),
        (
            Setting(
                "K = 1",
                {"model.overrides.topk": 1},
                {"irstd1k": (67.38, 95.91, 14.12), "nudt": (91.95, 98.73, 8.09)},
            ),
            Setting(
                "K = 5",
                {"model.overrides.topk": 5},
                {"irstd1k": (69.30, 96.41, 5.62), "nudt": (93.98, 98.62, 2.29)},
            ),
            Setting(
                "K = 10", {"model.overrides.topk": 10}, {"irstd1k": _FULL["irstd1k"], "nudt": _FULL["nudt"]}
            ),
            Setting(
                "K = 20",
                {"model.overrides.topk": 20},
                {"irstd1k": (68.19, 95.79, 10.93), "nudt": (93.29, 98.94, 4.61)},
            ),
        ),
    ),
    "table6": Table(
        "table6",
        "Table 6: energy filtering rates [lambda0, lambda1, lambda2] of the RHPM head (shallow to deep)",
        ("irstd1k", "nudt"),
        (
            Setting(
                "[0.1, 0.1, 0.1]",
                {"model.overrides.lambdas": [0.1, 0.1, 0.1]},
                {"irstd1k": (67.17, 95.91, 14.12), "nudt": (92.06, 98.73, 7.14)},
            ),
            Setting(
                "[0.2, 0.2, 0.2]",
                {"model.overrides.lambdas": [0.2, 0.2, 0.2]},
                {"irstd1k": (68.50, 96.26, 9.50), "nudt": (93.47, 98.51, 1.37)},
            ),
            Setting(
                "[0.4, 0.4, 0.4]",
                {"model.overrides.lambdas": [0.4, 0.4, 0.4]},
                {"irstd1k": (65.81, 97.27, 11.69), "nudt": (89.04, 98.09, 8.06)},
            ),
            Setting(
                "[0.1, 0.2, 0.4]",
                {"model.overrides.lambdas": [0.1, 0.2, 0.4]},
                {"irstd1k": _FULL["irstd1k"], "nudt": _FULL["nudt"]},
            ),
        ),
    ),
}


@dataclass
class SweepRun:
    """One configuration of a sweep: a table row on one dataset."""

    table: str
    setting: Setting
    dataset: str
    data_root: Path | None
    out: Path
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        keep = "".join(c if c.isalnum() or c in "._-" else "_" for c in self.setting.label)
        return "_".join(filter(None, keep.split("_")))

    def train_command(self) -> list[str]:
        cmd = ["irsam2", "train", "--config", self.dataset, "--out", str(self.out)]
        if self.data_root is not None:
            cmd += ["--data", str(self.data_root)]
        for k, v in self.overrides.items():
            cmd += ["--set", f"{k}={_yaml_value(v)}"]
        return cmd

    def eval_command(self) -> list[str]:
        cmd = ["irsam2", "eval", "--checkpoint", str(self.out / "best.pt"), "--split", "test"]
        cmd += ["--data", str(self.data_root), "--preset", self.dataset, "--out", str(self.out / "test")]
        return cmd


def _yaml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_yaml_value(x) for x in v) + "]"
    return str(v)


def find_dataset(data: Path, dataset: str) -> Path | None:
    """The folder of ``dataset`` under ``data`` (or ``data`` itself when it is that dataset)."""
    for name in DATASET_FOLDERS[dataset]:
        if (data / name).is_dir():
            return data / name
    if data.name in DATASET_FOLDERS[dataset]:
        return data
    return None


def build_sweep(
    table: str,
    data: str | Path | None,
    out: str | Path = "runs/sweep",
    datasets: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    require_data: bool = True,
) -> list[SweepRun]:
    """Every configuration of ``table`` (``table2`` ... ``table6``) on the datasets found under ``data``."""
    if table not in TABLES:
        raise UserError(f"unknown sweep {table!r}; choose one of {', '.join(TABLES)}")
    t = TABLES[table]
    wanted = list(datasets) if datasets else list(t.datasets)
    for d in wanted:
        if d not in t.datasets:
            raise UserError(f"{table} has no dataset {d!r}; the paper reports it on {', '.join(t.datasets)}")
    runs = []
    for d in wanted:
        root = find_dataset(Path(data), d) if data is not None else None
        if root is None:
            if require_data:
                where = f"under {data}" if data is not None else "(no --data given)"
                logger.warning("%s: no %s folder %s; its runs are left out", table, DATASET_TITLES[d], where)
                continue
            # printing commands for another machine: the dataset's usual folder name under --data
            root = Path(data if data is not None else "DATA") / DATASET_FOLDERS[d][0]
        for s in t.settings:
            run = SweepRun(table, s, d, root, Path(out) / table / d, dict(s.overrides))
            run.out = run.out / run.slug
            run.overrides.update(extra or {})
            runs.append(run)
    if not runs:
        raise UserError(f"{table}: none of {', '.join(DATASET_TITLES[d] for d in wanted)} found under {data}")
    return runs


def format_commands(runs: list[SweepRun]) -> str:
    lines = []
    for r in runs:
        lines.append(f"# {r.table} | {DATASET_TITLES[r.dataset]} | {r.setting.label}")
        lines.append(shlex.join(r.train_command()))
        lines.append(shlex.join(r.eval_command()))
    return "\n".join(lines)


def run_sweep(runs: list[SweepRun], evaluate: bool = True, overwrite: bool = False) -> None:
    """Train every configuration in this process (resuming finished or interrupted ones), then evaluate.
    ``overwrite``: train every configuration anew, each replacing its old run folder when it starts."""
    from irsam2.engine.trainer import train

    for i, r in enumerate(runs, 1):
        logger.info("sweep %d/%d: %s | %s | %s", i, len(runs), r.table, r.dataset, r.setting.label)
        overrides = dict(r.overrides)
        overrides["out"] = str(r.out)
        if r.data_root is not None:
            overrides["data.root"] = str(r.data_root)
        done = r.out / RESULT_FILE
        if done.exists() and not overwrite:
            logger.info("  already done: %s", done)
            continue
        resume = (r.out / "last.pt").exists() and not overwrite
        result = train(r.dataset, overrides=overrides, resume=True if resume else None, overwrite=overwrite)
        if result.status not in ("completed",):
            logger.warning("  run stopped (%s); the sweep stops here", result.status)
            return
        if evaluate and result.best is not None:
            metrics = evaluate_on_test(result.best, r)
            (r.out / RESULT_FILE).write_text(json.dumps(metrics, indent=2))


def evaluate_on_test(checkpoint: Path, run: SweepRun) -> dict[str, Any]:
    """IoU, nIoU, Pd, Fa of ``checkpoint`` on the dataset's test split (never used for selection), at each
    frame's own resolution, with the checkpoint's normalisation."""
    from irsam2.checkpoint import model_from_checkpoint
    from irsam2.data import IRSTDDataset
    from irsam2.engine.evaluate import evaluate_model
    from irsam2.utils import pick_device

    device = pick_device("auto")
    model, ckpt = model_from_checkpoint(checkpoint, map_location="cpu")
    ds = IRSTDDataset(run.data_root, split="test", preset=run.dataset, train=False, norm=ckpt["norm"])
    result = evaluate_model(model.to(device), ds, device=device, roc=False, workers=2)
    return dict(result.metrics[0])


def _read_result(run: SweepRun) -> dict[str, Any] | None:
    for p in (run.out / RESULT_FILE, run.out / "test" / "metrics.json"):
        if p.is_file():
            try:
                data = json.loads(p.read_text())
            except json.JSONDecodeError:
                logger.warning("%s: unreadable JSON, ignored", p)
                continue
            return data.get("metrics", data) if isinstance(data, dict) else None
    return None


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.2f}"


def collect(runs: list[SweepRun], out: str | Path) -> tuple[Path, Path]:
    """One markdown and one CSV table: every configuration with the paper's IoU/Pd/Fa beside ours."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = runs[0].table
    rows = []
    for r in runs:
        ours = _read_result(r) or {}
        p_iou, p_pd, p_fa = r.setting.paper.get(r.dataset, (None, None, None))
        rows.append(
            {
                "table": r.table,
                "dataset": DATASET_TITLES[r.dataset],
                "setting": r.setting.label,
                "paper_iou": p_iou,
                "ours_iou": ours.get("iou"),
                "paper_pd": p_pd,
                "ours_pd": ours.get("pd"),
                "paper_fa": p_fa,
                "ours_fa": ours.get("fa"),
                "protocol": ours.get("protocol", ""),
                "run": str(r.out),
            }
        )
    csv_path = out / f"{table}.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [
        f"# {TABLES[table].title}",
        "",
        "IoU and Pd in %, Fa in 1e-6; 'paper' from the paper's table, 'ours' measured on the test split",
        "with the checkpoint selected on validation IoU ('-': not run yet).",
        "",
        "| dataset | setting | IoU paper | IoU ours | Pd paper | Pd ours | Fa paper | Fa ours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['dataset']} | {row['setting']} | {_fmt(row['paper_iou'])} | {_fmt(row['ours_iou'])} | "
            f"{_fmt(row['paper_pd'])} | {_fmt(row['ours_pd'])} | "
            f"{_fmt(row['paper_fa'])} | {_fmt(row['ours_fa'])} |"
        )
    md_path = out / f"{table}.md"
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, csv_path
