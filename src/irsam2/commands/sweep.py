"""``irsam2 sweep``: the paper's comparison (Table 1) and ablation tables (Tables 2-6), one command each."""

from __future__ import annotations

import argparse

HELP = (
    """Run the paper's comparison (Table 1) or ablations (Tables 2 to 6) beside the paper's numbers.

table1: every classical method (Top-hat ... PSTNN, scored without training) and every registered deep
network (the baselines with their own paper's recipe, or --recipe common for this project's, and IR-SAM2) on
the three datasets; also writes <out>/table1_pd_fa.png (Pd against Fa, ours filled, the paper's hollow).
table2: components (baseline, +RHPM, +CQG, full) on IRSTD-1k, NUDT-SIRST, NUAA-SIRST
table3: loss functions (BCE, IoU, TDA, SLS, CSA) on the three datasets
table4: w_aux in {0.5, 0.3, 0.2, 0.1};  table5: K in {1, 5, 10, 20};  table6: the RHPM lambdas
(tables 4-6 on IRSTD-1k and NUDT-SIRST). --data is a folder holding the dataset folders (IRSTD-1k,
NUDT-SIRST, NUAA-SIRST); datasets not found there are left out. Each configuration is trained with the
dataset's preset and its best checkpoint (validation IoU) is evaluated on the test split. Results:
<out>/<table>.md and .csv. A sweep whose runs are already in --out is refused: --resume continues it
(finished runs are kept, interrupted ones resumed), --overwrite replaces each run as its new one starts.

Examples:
  irsam2 sweep table5 --data ../shared/data --dry-run          # print the commands for a cluster
  irsam2 sweep table2 --data ../shared/data --datasets nudt --set train.epochs=100
  irsam2 sweep table2 --data ../shared/data --datasets nudt --set train.epochs=100 --resume
  irsam2 sweep table3 --data ../shared/data --collect-only     # tabulate the runs that have finished
  irsam2 sweep table1 --data ../shared/data --datasets nudt --models dnanet,acm,pstnn --dry-run
"""
    + """
A sweep is resumable: finished rows (test_metrics.json) are skipped, interrupted trainings resume.
"""
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from irsam2.engine.sweep import TABLE_NAMES

    parser.add_argument("table", choices=sorted(TABLE_NAMES), help="which paper table to reproduce")
    parser.add_argument(
        "--data", help="folder holding the dataset folders (IRSTD-1k, NUDT-SIRST, NUAA-SIRST)"
    )
    parser.add_argument("--out", default="runs/sweep", help="output folder (default runs/sweep)")
    parser.add_argument("--datasets", help="comma-separated subset: irstd1k,nudt,nuaa")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config override",
    )
    parser.add_argument(
        "--models", help="table1: comma-separated subset of rows (model or method names, e.g. dnanet,pstnn)"
    )
    parser.add_argument(
        "--recipe",
        choices=["paper", "common"],
        default="paper",
        help="table1: train each baseline with its paper's recipe or with the common one (default: paper)",
    )
    parser.add_argument("--pretrained", help="table1: SAM2 Hiera-Tiny checkpoint for the IR-SAM2 row")
    parser.add_argument("--dry-run", action="store_true", help="print the train/eval commands and exit")
    parser.add_argument(
        "--resume", action="store_true", help="continue a sweep in --out (finished runs are kept)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the runs of an earlier sweep of this table"
    )
    parser.add_argument(
        "--collect-only", action="store_true", help="only gather existing results into the table"
    )


def run(args: argparse.Namespace) -> int:
    from irsam2.engine.config import parse_override
    from irsam2.engine.sweep import build_sweep, collect, format_commands, run_sweep
    from irsam2.utils import UserError

    if args.data is None and not args.dry_run:
        raise UserError("--data DIR is required (a folder holding IRSTD-1k, NUDT-SIRST, NUAA-SIRST)")
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
    extra = dict(parse_override(s) for s in args.overrides)
    only = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    runs = build_sweep(
        args.table,
        args.data,
        args.out,
        datasets=datasets,
        extra=extra,
        require_data=not args.dry_run,
        recipe=args.recipe,
        pretrained=args.pretrained,
        only=only,
    )
    if args.dry_run:
        print(format_commands(runs))
        return 0
    if not args.collect_only:
        from pathlib import Path

        from irsam2.engine.run_dir import check_output

        # the table's runs live in <out>/<table>/<dataset>/<setting>: refuse to mix with an earlier sweep
        check_output(
            Path(args.out) / args.table,
            overwrite=args.overwrite,
            resume=args.resume,
            can_resume=True,
            ours=[r.dataset for r in runs],
        )
        run_sweep(runs, overwrite=args.overwrite)
    md, csv_path = collect(runs, args.out)
    print(md.read_text())
    print(f"written: {md} and {csv_path}")
    return 0
