"""Score the model-driven baselines of the paper's Table 1 (Top-hat, Max-median, IPI, RIPT, NRAM, PSTNN) on a
dataset split under the same protocol as `irsam2 eval`.

Each frame is read at its own resolution, scaled to the 8-bit grey range (0-255, the scale the methods'
published parameters assume), turned into a saliency map by the method, and segmented by the rule of those
papers: saliency > mean + k * std of the map. k is per method by default (irsam2.baselines.DEFAULT_KS:
Top-hat 12, Max-median 4, PSTNN 16, IPI/RIPT/NRAM 3), each chosen on the training splits of NUDT-SIRST and
NUAA-SIRST, never on a test frame (docs/baselines.md); --k sets one k for every method. IoU, nIoU and Pd are
printed in %, Fa in 1e-6, with the metrics protocol of each row (see `irsam2 eval --help`). Writes under
--out, one folder per method, the same files as `irsam2 eval`: metrics.json and per_image.csv (worst first);
plus summary.json over all methods. A --out that holds results is refused unless --overwrite.

Examples:
  irsam2 baselines --data ../shared/data/NUDT-SIRST --methods tophat,maxmedian,pstnn --out runs/baselines_nudt
  irsam2 baselines --data ../shared/data/NUAA-SIRST --preset nuaa_50_50 --methods ipi,ript,nram --workers 8
  irsam2 baselines --data data/NUDT-SIRST --methods pstnn --k 5 --limit 50 --protocol all
"""

from __future__ import annotations

import argparse
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from irsam2.commands import add_data_repair_arguments, add_protocol_argument, protocols_from_args
from irsam2.utils import UserError, progress

HELP = __doc__
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, required=True, help="dataset folder (any layout irsam2.data detects)"
    )
    parser.add_argument(
        "--methods",
        default="tophat,maxmedian,ipi,ript,nram,pstnn",
        help="comma-separated baselines (default: %(default)s)",
    )
    parser.add_argument("--split", default="test", help="split to score (default: %(default)s)")
    parser.add_argument(
        "--preset", help="dataset preset pinning the release split: nuaa, nuaa_50_50, nudt, irstd1k"
    )
    parser.add_argument("--split-file", type=Path, help="a text file of stems to score (wins over --split)")
    parser.add_argument("--out", type=Path, help="output folder (default: baselines_<data folder name>)")
    parser.add_argument(
        "--k",
        type=float,
        default=None,
        help="segmentation threshold mean + k * std of the saliency map, for every method "
        "(default: each method's own k, irsam2.baselines.DEFAULT_KS)",
    )
    add_protocol_argument(parser)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the results in a non-empty --out folder"
    )
    add_data_repair_arguments(parser)
    parser.add_argument("--limit", type=int, help="score only the first N frames of the split (quick runs)")
    parser.add_argument(
        "--workers", type=int, default=1, help="processes computing saliency maps (default: %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _saliency(job: tuple[str, str, np.ndarray]) -> tuple[np.ndarray, float]:
    """Worker: (method, frame name, frame 0-255) -> (saliency map, seconds)."""
    from irsam2.baselines import get_baseline

    method, name, frame = job
    t0 = time.perf_counter()
    try:
        sal = get_baseline(method)(frame)
    except UserError as e:
        raise UserError(f"{name}: {e}") from None
    return sal, time.perf_counter() - t0


def run(args: argparse.Namespace) -> int:
    from irsam2.baselines import DEFAULT_KS, PAPER_NAMES, get_baseline, score_map
    from irsam2.data.io import read_frame, read_mask, scan_masks
    from irsam2.engine.evaluate import EvalAccumulator, resolution_name, split_files, write_outputs
    from irsam2.metrics.report import format_table, write_json

    if not args.data.is_dir():
        raise UserError(f"{args.data}: dataset folder not found")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise UserError("--methods: give at least one of tophat, maxmedian, ipi, ript, nram, pstnn")
    methods = [get_baseline(m).__name__ for m in methods]  # validates, normalises spelling
    if args.workers < 1:
        raise UserError(f"--workers must be 1 or more, got {args.workers}")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be 1 or more, got {args.limit}")
    from irsam2.baselines import BASELINES
    from irsam2.engine.run_dir import check_output, clear_entries

    out = args.out or Path(f"baselines_{args.data.resolve().name}")
    ours = [*BASELINES, "summary.json"]
    mode = check_output(out, overwrite=args.overwrite, ours=ours)
    protocols = protocols_from_args(args)
    stems, images, masks = split_files(args.data, args.split, preset=args.preset, split_file=args.split_file)
    if args.limit is not None:
        stems, images, masks = stems[: args.limit], images[: args.limit], masks[: args.limit]
    if not stems:
        raise UserError(f"{args.data}: split {args.split!r} has no frames")
    # frames scaled to the 8-bit grey range whatever their bit depth; masks at the frame's size
    scan_masks(masks, f"{args.data} ({args.split})", args.strict, args.mask_threshold)
    frames, gts = [], []
    for img_path, mask_path in zip(images, masks):
        f, _ = read_frame(img_path)
        frames.append(f.astype(np.float64) * 255.0)
        gts.append(read_mask(mask_path, size=f.shape, strict=args.strict, threshold=args.mask_threshold))
    if mode == "replace":  # the frames are read: replace the old results
        clear_entries(out, ours)
    summary = []
    pool = ProcessPoolExecutor(args.workers) if args.workers > 1 else None
    try:
        for method in methods:
            k = DEFAULT_KS[method] if args.k is None else float(args.k)
            acc = EvalAccumulator(0.0, protocols, score_is_logit=False, roc=False)
            jobs = [(method, s, f) for s, f in zip(stems, frames)]
            results = pool.map(_saliency, jobs, chunksize=4) if pool else map(_saliency, jobs)
            if not args.quiet:
                results = progress(results, total=len(jobs), desc=method, unit="frame")
            seconds = 0.0
            for (sal, dt), stem, gt in zip(results, stems, gts):
                seconds += dt
                acc.add(score_map(sal, k), gt, stem)
            settings = {
                "name": method,
                "method": PAPER_NAMES[method],
                "data": str(args.data),
                "split": str(args.split_file or args.split),
                "preset": args.preset,
                "frames": len(stems),
                "limit": args.limit,
                "segmentation": f"saliency > mean + {k:g} * std",
                "k": k,
                "seconds_per_frame": seconds / len(stems),
                "mode": "baselines",
                "resolution": resolution_name(None, padded=False),
            }
            result = acc.result(settings)
            paths = write_outputs(result, out / method)
            print(format_table(result.metrics, title=f"{PAPER_NAMES[method]} ({method}), k = {k:g}"))
            print(f"wrote {paths['json']}, {paths['per_image'].name}; {seconds / len(stems):.3f} s/frame")
            for row in result.metrics:
                summary.append(row | settings | {"method": method, "paper_name": PAPER_NAMES[method]})
    finally:
        if pool is not None:
            pool.shutdown()
    write_json(
        {"data": str(args.data), "split": str(args.split_file or args.split), "rows": summary},
        out / "summary.json",
    )
    head = ("method", "protocol", "k", "IoU(%)", "nIoU(%)", "Pd(%)", "Fa(1e-6)", "s/frame")
    print(f"{head[0]:<11} {head[1]:<10} " + " ".join(f"{h:>8}" for h in head[2:]))
    for r in summary:
        print(
            f"{r['paper_name']:<11} {r['protocol']:<10} {r['k']:>8g} {r['iou']:>8.2f} {r['niou']:>8.2f} "
            f"{r['pd']:>8.2f} {r['fa']:>8.2f} {r['seconds_per_frame']:>8.3f}"
        )
    print(f"wrote {out / 'summary.json'}")
    return 0
