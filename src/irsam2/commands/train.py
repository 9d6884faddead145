"""``irsam2 train``: train IR-SAM2 (spec sections 7 and 8) or any registered network."""

from __future__ import annotations

import argparse
import json

HELP = """Train IR-SAM2 from a preset (irstd1k, nudt, nuaa, synthetic) or a YAML config.

The presets hold the paper's recipe (spec section 8): Adan lr 0.01, weight decay 1e-4, betas (0.98, 0.92,
0.99), cosine annealing to 1e-6 over 300 epochs, batch 12, 256x256 crops, and the loss schedule of the
variant: `official` follows the release's warm-up, whose gate is measured on a validation split carved from
the training split; `paper` trains with the full CSA and the RHPM head from the first step (force either with
--set loss.schedule=release|none). Writes <out>/last.pt every epoch,
<out>/best.pt on validation IoU, <out>/log.csv, TensorBoard logs in <out>/tb and the resolved
<out>/config.yaml.

--model NAME trains any registered network (irsam2 bench --all lists them: IR-SAM2 presets and the deep
baselines acm, dnanet, ...). A baseline trains with its own paper's loss and recipe (AdaGrad, soft-IoU, its
epochs and batch) on top of the dataset preset (--recipe paper, its default); --recipe common keeps this
project's common recipe (the preset's) instead, --recipe scratch the recipe for networks from random weights.
--set KEY=VALUE wins over every recipe.

Output folder: a --out that already holds files is refused; pass --resume to continue the run in it, or
--overwrite to replace it (only a folder of irsam2 run files; the old run is removed once the new one has
started). A start that fails (bad config, checkpoint or data, an optimizer error) leaves nothing behind.
best.pt holds the weights only (--set train.best_half=true: float16); last.pt also the optimizer state.

Resuming: without --config the run's own config (config.yaml beside the checkpoint) is used.
--set train.epochs=N continues to N epochs on the cosine schedule of an N-epoch run (the learning rate
moves to that schedule's value at the epochs done and anneals to sched.min_lr at epoch N); device, workers,
time budget, progress/TensorBoard and the dataset's location may change too. Any other key that differs
from the checkpoint's config is refused (the message lists them).

Examples:
  irsam2 train --config nudt --data ../shared/data/NUDT-SIRST --pretrained sam2.1_hiera_tiny \\
      --out runs/nudt
  irsam2 train --config nudt --data ../shared/data/NUDT-SIRST --recipe scratch --out runs/nudt-scratch
  irsam2 train --config synthetic --set train.epochs=2 --set data.crop_size=64
  irsam2 train --config nudt --data ../shared/data/NUDT-SIRST --model dnanet --out runs/dnanet_nudt
  irsam2 train --config nudt --data ../shared/data/NUDT-SIRST --model acm --recipe common
  irsam2 train --out runs/nudt --resume --set train.epochs=400
  irsam2 train --config nudt --data ../shared/data/NUDT-SIRST --compile --set train.log_every=50
  torchrun --nproc_per_node 4 -m irsam2 train --config irstd1k --data IRSTD-1k --set train.sync_bn=true
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        help="preset name or YAML file (default: synthetic; with --resume: the run's own config)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.epochs=50 --set model.overrides.topk=5 (repeatable)",
    )
    parser.add_argument(
        "--model", help="registered network to train (sets model.name; default: the config's)"
    )
    parser.add_argument(
        "--recipe",
        choices=["release", "scratch", "paper", "common"],
        default=None,
        help="training recipe on top of the preset. release: the preset as is (the IR-SAM2 authors' recipe, "
        "made for SAM2 trunk weights); scratch: for a network from random weights (BCE + soft IoU with "
        "per-target and hard-negative terms, AdamW 2e-3, warm-up + cosine per step, target-holding crops, no "
        "zoom or blur); paper: the network's own paper recipe "
        "(the default with --model of a deep baseline); common: the preset's recipe for any network",
    )
    parser.add_argument("--data", help="dataset folder (sets data.root)")
    parser.add_argument(
        "--pretrained",
        help="SAM2 weights for the trunk (model.pretrained): sam2.1_hiera_tiny or sam2_hiera_tiny "
        "(downloaded once into the torch hub cache), a checkpoint path, or none (from scratch, no warning)",
    )
    parser.add_argument("--out", help="output folder (sets out)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="last",
        default=None,
        metavar="CKPT",
        help="continue a run: from <out>/last.pt, or from the checkpoint given",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in a non-empty --out (once the new run has started)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="refuse data repairs instead of warning (data.strict)"
    )
    parser.add_argument(
        "--time-budget", type=float, help="stop cleanly after this many seconds (train.time_budget_s)"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model's forward (train.compile; the first step's time, compile included, is "
        "logged)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def run(args: argparse.Namespace) -> int:
    from irsam2.engine.config import (
        apply_overrides,
        config_from_dict,
        load_config,
        parse_override,
        save_config,
    )
    from irsam2.engine.trainer import train
    from irsam2.models import network_spec

    overrides = dict(parse_override(s) for s in args.overrides)
    if args.model:
        overrides["model.name"] = args.model
    recipe = args.recipe
    if recipe is None and args.model and network_spec(args.model) is not None:
        recipe = "paper"  # a deep baseline trains with its own paper's recipe unless told otherwise
    if recipe is not None:
        overrides["recipe"] = recipe  # resolved by load_config (engine.config.with_recipe); --set wins
    if args.data:
        overrides["data.root"] = args.data  # paths verbatim (not through YAML)
    if args.pretrained:
        overrides["model.pretrained"] = args.pretrained
    if args.out:
        overrides["out"] = args.out
    if args.time_budget is not None:
        overrides["train.time_budget_s"] = args.time_budget
    if args.compile:
        overrides["train.compile"] = True
    if args.strict:
        overrides["data.strict"] = True
    if args.config is None and args.resume is not None:
        from irsam2.engine.checkpoints import base_config, resume_path

        path = resume_path(args.resume, args.out)
        cfg = config_from_dict(apply_overrides(base_config(path), overrides))
    else:
        cfg = load_config(args.config or "synthetic", overrides)
    if args.print_config:
        import sys
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as d:
            sys.stdout.write(save_config(cfg, Path(d) / "c.yaml").read_text())
        return 0
    result = train(cfg, resume=args.resume, overwrite=args.overwrite)
    if result.last is not None:  # rank 0
        print(json.dumps(result.to_dict(), indent=2))
    return 130 if result.status == "interrupted" else 0
