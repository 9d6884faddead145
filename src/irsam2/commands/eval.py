"""Evaluate a checkpoint (or a folder of predictions) on a test split: IoU, nIoU, Pd, Fa, ROC (spec 8).

Metrics are computed at each frame's own resolution (a checkpoint's input is padded to a multiple of 32, its
output cropped back; predictions are scored as they are) unless --resize is given; IoU, nIoU and Pd are
printed in %, Fa in 1e-6, each row with the protocol that produced it:
  basicirstd  (default) the field's rule (BasicIRSTD, PyIRSTDMetrics): targets in label order each take the
              first free predicted component whose centroid is < 3 px away; Fa = pixels of unmatched
              predicted components / all pixels. Comparable with published tables.
  optimal     one-to-one optimal assignment (most targets credited, independent of label order); same Fa.
              'standard' is its old name.
  legacy      the older codebases' rule (greedy matching; unmatched components with a matched one's area are
              dropped from Fa), for comparison with older papers and the IR-SAM2 release only.
  all         a row for each.
nIoU counts a frame with no target and no prediction as 0, as the reference code does.
Writes under --out (a folder that holds results is refused unless --overwrite): metrics.json,
per_image.csv (worst first), roc.csv, pdfa.csv, roc.png, overlays/
(--overlays N: the N worst frames, detected targets boxed green, missed red, false alarms yellow).

--predictions DIR scores files named <stem>.png/.bmp/.tif/.npy (one per test frame) under the same protocol:
binary masks or score maps in [0, 1] (8-bit / 255), thresholded at > 0.5 unless --threshold is given; .npy
maps outside [0, 1] are taken for logits.

Examples:
  irsam2 eval --data data/NUDT-SIRST --checkpoint runs/nudt/best.pt
  irsam2 eval --data data/NUAA-SIRST --preset nuaa --checkpoint best.pt --protocol all --overlays 10
  irsam2 eval --data data/NUDT-SIRST --split test --predictions other_tool/masks --resize 256
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from irsam2.commands import add_data_repair_arguments, add_protocol_argument, protocols_from_args
from irsam2.utils import UserError

HELP = __doc__
EVAL_FILES = ("metrics.json", "per_image.csv", "roc.csv", "pdfa.csv", "roc.png", "overlays")
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, required=True, help="dataset folder (any layout irsam2.data detects)"
    )
    parser.add_argument("--split", default="test", help="split to evaluate (default: %(default)s)")
    parser.add_argument(
        "--preset", help="dataset preset pinning the release split: nuaa, nuaa_50_50, nudt, irstd1k"
    )
    parser.add_argument(
        "--split-file", type=Path, help="a text file of stems to evaluate (wins over --split)"
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="an irsam2 checkpoint to run")
    src.add_argument(
        "--predictions", type=Path, help="a folder of predicted masks / score maps, <stem>.<ext>"
    )
    parser.add_argument("--out", type=Path, help="output folder (default: eval_<checkpoint or folder name>)")
    add_protocol_argument(parser)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the results in a non-empty --out folder"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        help="prediction threshold, strict '>': on logits with --checkpoint (default 0), "
        "on [0, 1] scores with --predictions (default 0.5)",
    )
    parser.add_argument(
        "--resize", type=int, help="resize frames and masks to NxN (256: the release's protocol)"
    )
    parser.add_argument(
        "--overlays", type=int, default=0, metavar="N", help="draw the N worst frames (default 0)"
    )
    add_data_repair_arguments(parser)
    parser.add_argument("--no-roc", action="store_true", help="skip the ROC and Pd-Fa sweeps")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1")
    parser.add_argument(
        "--batch-size", type=int, default=4, help="frames per forward pass (default: %(default)s)"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="data loading processes (default: %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from irsam2.engine.evaluate import evaluate_model, evaluate_predictions, split_files, write_outputs

    if args.overlays < 0:
        raise UserError(f"--overlays must be 0 or more, got {args.overlays}")
    if not args.data.is_dir():
        raise UserError(f"{args.data}: dataset folder not found")
    from irsam2.engine.run_dir import check_output, clear_entries

    source = args.checkpoint.stem if args.checkpoint is not None else args.predictions.resolve().name
    out = args.out or Path(f"eval_{source}")
    mode = check_output(out, overwrite=args.overwrite, ours=EVAL_FILES)  # before any work
    protocols = protocols_from_args(args)
    split = args.split  # an explicit --split-file wins over it (irsam2.data.layouts)
    common = dict(
        resize=args.resize,
        protocols=protocols,
        roc=not args.no_roc,
        keep_worst=args.overlays,
        progress=not args.quiet,
    )
    settings = {"data": str(args.data), "split": str(args.split_file or args.split), "preset": args.preset}
    if args.checkpoint is not None:
        from irsam2.checkpoint import model_from_checkpoint
        from irsam2.data import IRSTDDataset
        from irsam2.utils import pick_device

        model, ckpt = model_from_checkpoint(args.checkpoint)
        norm = ckpt.get("norm")
        if not norm or "mean" not in norm or "std" not in norm:
            raise UserError(
                f"{args.checkpoint}: checkpoint has no 'norm' entry (mean, std); re-save it with irsam2"
            )
        device = pick_device(args.device)
        dataset = IRSTDDataset(
            args.data,
            split=split,
            preset=args.preset,
            split_file=args.split_file,
            train=False,
            norm=norm,
            strict=args.strict,
            mask_threshold=args.mask_threshold,
        )
        threshold = 0.0 if args.threshold is None else args.threshold
        name = args.checkpoint.stem
        settings |= {
            "checkpoint": str(args.checkpoint),
            "name": name,
            "model": ckpt["model_config"].get("name"),
        }
        result = evaluate_model(
            model.to(device),
            dataset,
            device=device,
            threshold=threshold,
            batch_size=args.batch_size,
            workers=args.workers,
            settings=settings,
            **common,
        )
    else:
        stems, images, masks = split_files(args.data, split, preset=args.preset, split_file=args.split_file)
        threshold = 0.5 if args.threshold is None else args.threshold
        name = args.predictions.resolve().name
        settings |= {"name": name}
        result = evaluate_predictions(
            args.predictions,
            stems,
            images,
            masks,
            threshold=threshold,
            settings=settings,
            strict=args.strict,
            mask_threshold=args.mask_threshold,
            **common,
        )
    if mode == "replace":  # the evaluation succeeded: only now is the old one removed
        clear_entries(out, EVAL_FILES)
    paths = write_outputs(result, out, overlays=args.overlays)
    print(result.table())
    print(
        f"wrote {paths['json']}, {paths['per_image'].name}"
        + (", roc.csv, pdfa.csv, roc.png" if result.roc else "")
    )
    if args.overlays:
        print(
            f"overlays of the {min(args.overlays, len(result.per_image))} worst frames in {out / 'overlays'}"
        )
    return 0
