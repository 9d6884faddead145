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
    """One row of a paper table: its label, the config overrides that build it, the paper's (IoU, Pd, Fa).

    ``method``: a model-driven baseline of ``irsam2.baselines`` scored without training (Table 1's classical
    rows); None for a network trained with the overrides."""

    label: str
    overrides: dict[str, Any]
    paper: dict[str, tuple[float | None, float | None, float | None]]
    method: str | None = None


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
    table_title: str = ""

    @property
    def slug(self) -> str:
        keep = "".join(c if c.isalnum() or c in "._-" else "_" for c in self.setting.label)
        return "_".join(filter(None, keep.split("_")))

    def train_command(self) -> list[str]:
        if self.setting.method is not None:  # scored without training
            return ["irsam2", "baselines", "--methods", self.setting.method, "--preset", self.dataset,
                    "--data", str(self.data_root), "--out", str(self.out)]  # fmt: skip
        cmd = ["irsam2", "train", "--config", self.dataset, "--out", str(self.out)]
        if self.data_root is not None:
            cmd += ["--data", str(self.data_root)]
        for k, v in self.overrides.items():
            cmd += ["--set", f"{k}={_yaml_value(v)}"]
        return cmd

    def eval_command(self) -> list[str]:
        if self.setting.method is not None:
            return []
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


# The paper's Table 1 (IoU %, Pd %, Fa 1e-6 on IRSTD-1k, NUDT-SIRST, NUAA-SIRST), read from the text
# extraction where each row's cells run together; None marks a cell whose digits split two ways (see
# docs/baselines.md). Keys: registered model names and irsam2.baselines method names.
PAPER_TABLE1: dict[str, tuple[str, dict[str, tuple[float | None, float | None, float | None]]]] = {
    "tophat": ("Top-hat", {"irstd1k": (5.59, 69.36, 702.36), "nudt": (22.26, 91.32, 771.51),
                           "nuaa": (None, 79.74, 16456.0)}),
    "maxmedian": ("Max-median", {"irstd1k": (7.00, 65.21, 59.73), "nudt": (4.20, 58.41, 36.89),
                                 "nuaa": (6.02, 84.34, 774.3)}),
    "ipi": ("IPI", {"irstd1k": (27.92, 81.37, 16.18), "nudt": (28.63, 74.49, 41.23),
                    "nuaa": (1.09, 87.05, 30467.0)}),
    "ript": ("RIPT", {"irstd1k": (14.11, 77.55, 28.31), "nudt": (29.17, 91.85, None),
                      "nuaa": (None, 69.76, 59.33)}),
    "nram": ("NRAM", {"irstd1k": (None, 72.48, 24.73), "nudt": (12.08, 72.58, 84.77),
                      "nuaa": (6.93, 56.40, 19.27)}),
    "pstnn": ("PSTNN", {"irstd1k": (24.57, 71.99, 35.26), "nudt": (27.72, 66.13, 44.17),
                        "nuaa": (30.30, 72.80, 48.99)}),
    "acm": ("ACMNet", {"irstd1k": (60.33, 93.27, 68.49), "nudt": (68.48, 96.26, 10.27),
                       "nuaa": (69.44, 92.02, 22.71)}),
    "alcnet": ("ALCNet", {"irstd1k": (63.52, 85.86, 12.96), "nudt": (85.03, 97.89, 18.20),
                          "nuaa": (73.74, 97.25, 26.79)}),
    "dnanet": ("DNANet", {"irstd1k": (65.71, 91.84, 17.61), "nudt": (79.98, 96.93, 12.78),
                          "nuaa": (74.81, 93.53, 38.27)}),
    "uiunet": ("UIUNet", {"irstd1k": (65.37, 89.23, 21.52), "nudt": (90.52, 98.83, 8.34),
                          "nuaa": (77.53, 92.40, 9.33)}),
    "mshnet": ("MSHNet", {"irstd1k": (67.16, 93.88, 15.03), "nudt": (80.55, 97.99, 11.77),
                          "nuaa": (73.5, 97.25, 31.05)}),
    "sctransnet": ("SCTransNet", {"irstd1k": (68.03, 93.27, 10.74), "nudt": (94.09, 98.62, 4.29),
                                  "nuaa": (77.5, 96.95, 13.92)}),
    "irsam2_t": ("IR-SAM2", _FULL),
}  # fmt: skip
CLASSICAL = ("tophat", "maxmedian", "ipi", "ript", "nram", "pstnn")
TABLE_NAMES = ("table1", *TABLES)


def table1(recipe: str = "paper", pretrained: str | None = None) -> Table:
    """Table 1: every classical method of ``irsam2.baselines`` and every registered deep baseline, plus
    IR-SAM2. ``recipe``: ``paper`` trains each baseline with its own paper's recipe, ``common`` with the
    dataset preset's (this project's protocol). ``pretrained``: SAM2 weights for the IR-SAM2 row only."""
    from irsam2.models import list_models, model_recipe, network_spec

    if recipe not in ("paper", "common"):
        raise UserError(f"--recipe must be paper or common, got {recipe!r}")
    rows = [Setting(PAPER_TABLE1[m][0], {}, PAPER_TABLE1[m][1], method=m) for m in CLASSICAL]
    for name in [n for n in list_models() if network_spec(n) is not None] + ["irsam2_t"]:
        title, paper = PAPER_TABLE1.get(name, (name, {}))
        overrides: dict[str, Any] = {"model.name": name}
        if recipe == "paper":
            overrides.update(model_recipe(name))
        if name == "irsam2_t" and pretrained:
            overrides["model.pretrained"] = pretrained
        rows.append(Setting(title, overrides, paper))
    return Table(
        "table1", f"Table 1: comparison with other methods ({recipe} recipes)", DATASETS, tuple(rows)
    )


def get_table(table: str, recipe: str = "paper", pretrained: str | None = None) -> Table:
    if table == "table1":
        return table1(recipe, pretrained)
    if table not in TABLES:
        raise UserError(f"unknown sweep {table!r}; choose one of {', '.join(TABLE_NAMES)}")
    return TABLES[table]


def build_sweep(
    table: str,
    data: str | Path | None,
    out: str | Path = "runs/sweep",
    datasets: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    require_data: bool = True,
    recipe: str = "paper",
    pretrained: str | None = None,
    only: list[str] | None = None,
) -> list[SweepRun]:
    """Every configuration of ``table`` (``table1`` ... ``table6``) on the datasets found under ``data``.

    ``only``: keep the rows whose label, model name or method is listed (table1's ``--models``)."""
    t = get_table(table, recipe, pretrained)
    if only:
        keys = {s.lower() for s in only}
        kept = tuple(
            s
            for s in t.settings
            if {s.label.lower(), str(s.method).lower(), str(s.overrides.get("model.name")).lower()} & keys
        )
        if not kept:
            raise UserError(f"{table}: no row matches {', '.join(only)}")
        t = Table(t.name, t.title, t.datasets, kept)
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
            run = SweepRun(table, s, d, root, Path(out) / table / d, dict(s.overrides), t.title)
            run.out = run.out / run.slug
            if s.method is None:
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
        if r.eval_command():
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
        if r.setting.method is not None:
            metrics = evaluate_classical(r.setting.method, r)
            r.out.mkdir(parents=True, exist_ok=True)
            (r.out / RESULT_FILE).write_text(json.dumps(metrics, indent=2))
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


def evaluate_classical(method: str, run: SweepRun) -> dict[str, Any]:
    """A model-driven baseline on the test split under the protocol of ``irsam2 baselines``: each frame at its
    own size in grey levels 0-255, saliency > mean + k std with the method's default k (``DEFAULT_KS``, chosen
    on training splits), the default metrics protocol."""
    import numpy as np

    from irsam2.baselines import DEFAULT_KS, get_baseline, score_map
    from irsam2.data.io import read_frame, read_mask
    from irsam2.engine.evaluate import EvalAccumulator, split_files
    from irsam2.metrics.seg import DEFAULT_PROTOCOL

    fn = get_baseline(method)
    stems, images, masks = split_files(run.data_root, "test", preset=run.dataset)
    k = DEFAULT_KS[fn.__name__]
    acc = EvalAccumulator(0.0, (DEFAULT_PROTOCOL,), score_is_logit=False, roc=False)
    for stem, img_path, mask_path in zip(stems, images, masks, strict=True):
        frame, _ = read_frame(img_path)
        acc.add(
            score_map(fn(frame.astype(np.float64) * 255.0), k),
            read_mask(mask_path, frame.shape),
            stem,
        )
    result = acc.result({"name": method, "mode": "baselines", "k": k, "frames": len(stems)})
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
        f"# {runs[0].table_title}",
        "",
        "IoU and Pd in %, Fa in 1e-6; 'paper' from the paper's table, 'ours' measured on the test split",
        "with the checkpoint selected on validation IoU ('-': not run yet). 'protocol' is the Pd/Fa rule of",
        "our numbers (irsam2.metrics.seg); the paper's numbers come from the release's code, whose Fa drops",
        "unmatched components of a matched one's area (irsam2's 'legacy' protocol).",
        "",
        "| dataset | setting | IoU paper | IoU ours | Pd paper | Pd ours | Fa paper | Fa ours | protocol |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['dataset']} | {row['setting']} | {_fmt(row['paper_iou'])} | {_fmt(row['ours_iou'])} | "
            f"{_fmt(row['paper_pd'])} | {_fmt(row['ours_pd'])} | "
            f"{_fmt(row['paper_fa'])} | {_fmt(row['ours_fa'])} | {row['protocol'] or '-'} |"
        )
    md_path = out / f"{table}.md"
    md_path.write_text("\n".join(lines) + "\n")
    if table == "table1":
        scatter_pd_fa(rows, out / "table1_pd_fa.png")
    return md_path, csv_path


def scatter_pd_fa(rows: list[dict[str, Any]], path: Path) -> Path:
    """Pd against Fa (log axis) per dataset: ours filled, the paper's hollow, one colour per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    methods = list(dict.fromkeys(r["setting"] for r in rows))
    colours = plt.get_cmap("tab20")(range(len(methods)))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4.2), squeeze=False)
    for ax, d in zip(axes[0], datasets, strict=True):
        for r in (r for r in rows if r["dataset"] == d):
            c = colours[methods.index(r["setting"])]
            for fa, pd, kw in (
                (r["ours_fa"], r["ours_pd"], {"marker": "o", "color": c}),
                (r["paper_fa"], r["paper_pd"], {"marker": "o", "facecolors": "none", "edgecolors": c}),
            ):
                if fa is not None and pd is not None and math.isfinite(fa) and math.isfinite(pd):
                    ax.scatter(max(fa, 1e-2), pd, s=36, **kw)
        ax.set_xscale("log")
        ax.set_title(d)
        ax.set_xlabel("Fa (1e-6, log)")
        ax.set_ylabel("Pd (%)")
        ax.grid(True, alpha=0.3)
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", color=colours[i], label=m) for i, m in enumerate(methods)
    ]
    handles.append(plt.Line2D([], [], marker="o", linestyle="", color="k", mfc="none", label="(paper)"))
    fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
