"""Does IR-SAM2 learn real infrared targets? A fixed-work convergence benchmark (issue 11).

Trains IR-SAM2 from scratch (no SAM2 weights: none can be downloaded on the development machines) on
NUDT-SIRST's training split with the ``scratch`` recipe, for a fixed number of optimizer steps, seed and crop
size (no wall-clock budget: the work is the same on every machine, only the time differs), validates every
``--eval-every`` steps on the validation split carved from the training split, evaluates the
validation-selected checkpoint (``best.pt``) on all test frames at native resolution under the default metrics
protocol, and prints one table beside the classical baselines (Top-hat, Max-median, PSTNN at their defaults)
and a ~0.84 M-parameter plain U-Net trained with the same steps, crops, batch and recipe.

    python benchmarks/bench_convergence.py                       # the CPU benchmark (defaults below)
    python benchmarks/bench_convergence.py --device cuda --steps 6000 --crop 256 --batch 12   # on a GPU

Writes ``<out>/results.json``, ``<out>/results.md`` (the table) and ``<out>/curves.png`` (validation IoU,
nIoU, Fa and flooded frames per evaluation, every model). ``<out>`` must not hold an earlier run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "NUDT-SIRST"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _commit() -> str:
    try:
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        return _git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def train_and_test(name: str, args: argparse.Namespace, out: Path) -> dict:
    """Train ``name`` with the scratch recipe for ``args.steps`` steps; test its best.pt on the test split."""
    from irsam2.checkpoint import model_from_checkpoint
    from irsam2.data import IRSTDDataset
    from irsam2.engine.config import load_config
    from irsam2.engine.evaluate import evaluate_model
    from irsam2.engine.trainer import train
    from irsam2.utils import pick_device

    evals = max(math.ceil(args.steps / args.eval_every), 1)
    overrides = {
        "recipe": "scratch",
        "data.root": str(args.data),
        "data.crop_size": args.crop,
        "data.workers": args.workers,
        "model.name": name,
        "train.batch_size": args.batch,
        "train.epochs": evals,  # one "epoch" = eval_every steps: the schedule and the curve follow steps
        "train.max_steps_per_epoch": args.eval_every,
        "train.seed": args.seed,
        "train.device": args.device,
        "train.progress": False,
        "train.tensorboard": False,
        "train.channels_last": args.channels_last,
        "out": str(out / name),
    }
    overrides.update(args.overrides)  # --set: the same extra settings for every deep model
    cfg = load_config("nudt", overrides)
    t0 = time.perf_counter()
    result = train(cfg)
    train_s = time.perf_counter() - t0
    # an "epoch" stops at the end of the data too: with fewer training batches than --eval-every, fewer
    # steps run than asked; the table reports the steps that ran
    steps_done = len(result.step_losses)
    if steps_done < args.steps:
        print(f"note: {name} ran {steps_done} optimizer steps, not {args.steps}: one pass over the training "
              f"split holds fewer than --eval-every {args.eval_every} batches", flush=True)  # fmt: skip
    model, ckpt = model_from_checkpoint(result.best or result.last)
    device = pick_device(args.device)
    model.to(device)
    test = IRSTDDataset(args.data, split="test", preset="nudt", train=False, norm=ckpt["norm"])
    if args.test_limit:
        test = torch.utils.data.Subset(test, range(min(args.test_limit, len(test))))
    t1 = time.perf_counter()
    res = evaluate_model(model, test, device=device, roc=False, batch_size=4)
    test_s = time.perf_counter() - t1
    m = res.metrics[0]
    curve = [
        {
            k: h.get(k)
            for k in ("epoch", "val_iou", "val_niou", "val_pd", "val_fa", "val_flooded", "train_loss")
        }
        for h in result.history
    ]
    return {
        "method": name,
        "kind": "deep",
        "params": sum(p.numel() for p in model.parameters()),
        "steps": steps_done,
        "best_epoch": ckpt.get("epoch"),
        "train_s": train_s,
        "test_s": test_s,
        "metrics": m,
        "curve": curve,
    }


def classical(name: str, args: argparse.Namespace) -> dict:
    from irsam2.baselines import DEFAULT_KS, PAPER_NAMES, get_baseline, score_map
    from irsam2.data.io import read_frame, read_mask
    from irsam2.engine.evaluate import EvalAccumulator, split_files

    k = DEFAULT_KS[name]  # each method's default threshold (docs/baselines.md)
    stems, images, masks = split_files(args.data, "test", preset="nudt")
    if args.test_limit:
        stems, images, masks = stems[: args.test_limit], images[: args.test_limit], masks[: args.test_limit]
    acc = EvalAccumulator(0.0, roc=False, score_is_logit=False)
    fn = get_baseline(name)
    t0 = time.perf_counter()
    for stem, ip, mp in zip(stems, images, masks):
        f, _ = read_frame(ip)
        acc.add(score_map(fn(f.astype(np.float64) * 255.0), k), read_mask(mp, size=f.shape), stem)
    return {
        "method": PAPER_NAMES[name],
        "kind": "classical",
        "params": 0,
        "steps": 0,
        "k": k,
        "train_s": 0.0,
        "test_s": time.perf_counter() - t0,
        "metrics": acc.result({}).metrics[0],
        "curve": [],
    }


def table(rows: list[dict]) -> str:
    cols = ("method", "params", "steps", "train s", "IoU", "nIoU", "Pd", "Fa (1e-6)", "flooded")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        m = r["metrics"]
        params = f"{r['params'] / 1e6:.2f} M" if r["params"] else "-"
        lines.append(
            f"| {r['method']} | {params} | {r['steps'] or '-'} | {r['train_s']:.0f} | {m['iou']:.2f} | "
            f"{m['niou']:.2f} | {m['pd']:.2f} | {m['fa']:.1f} | {m.get('flooded', 0)} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for r in rows:
        if not r["curve"]:
            continue
        per_eval = r["steps"] / max(len(r["curve"]), 1)  # steps between evaluations as they ran
        steps = [round(c["epoch"] * per_eval) for c in r["curve"]]
        for ax, key in zip(axes, ("val_iou", "val_niou", "val_fa", "val_flooded")):
            ax.plot(steps, [c.get(key) for c in r["curve"]], marker="o", label=r["method"])
            ax.set_title(key.replace("val_", "validation "))
            ax.set_xlabel("optimizer steps")
    axes[2].set_yscale("symlog")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="NUDT-SIRST folder (default: ../shared/data)"
    )
    p.add_argument("--steps", type=int, default=560, help="optimizer steps per deep model")
    p.add_argument("--eval-every", type=int, default=140, help="validate every N steps (<= batches per pass)")
    p.add_argument("--crop", type=int, default=128, help="training crop size (multiple of 32)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--workers", type=int, default=1, help="data loader workers")
    p.add_argument("--models", default="irsam2_t,unet_s", help="deep models (registry names)")
    p.add_argument("--classical", default="tophat,maxmedian,pstnn", help="classical methods ('' for none)")
    p.add_argument("--test-limit", type=int, default=None, help="score the first N test frames (smoke runs)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="train in NCHW (default: channels_last, about 10 %% faster on the 2-core CPU)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config override for every deep model (repeatable), e.g. --set loss.pos_weight=3",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default: runs/bench_convergence-<time>)"
    )
    args = p.parse_args()
    from irsam2.engine.config import parse_override  # the parser of `irsam2 train --set`
    from irsam2.utils import UserError

    try:
        args.overrides = dict(parse_override(o) for o in args.overrides)
    except UserError as e:
        print(e, file=sys.stderr)
        return 2
    if not args.data.is_dir():
        print(f"{args.data}: NUDT-SIRST not found (give --data); nothing measured", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or REPO / "runs" / time.strftime("bench_convergence-%Y%m%d-%H%M%S")
    if out.exists() and any(out.iterdir()):
        print(f"{out}: holds an earlier run; give another --out", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    info = {
        "commit": _commit(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs",
        "device": args.device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {k: str(v) for k, v in vars(args).items()},
    }
    print(json.dumps(info, indent=2), flush=True)
    t0 = time.perf_counter()
    rows = []
    for name in [m for m in args.models.split(",") if m]:
        rows.append(train_and_test(name, args, out))
        print(table(rows[-1:]), flush=True)
    for name in [m for m in args.classical.split(",") if m]:
        rows.append(classical(name, args))
    info["total_s"] = time.perf_counter() - t0
    protocol = rows[0]["metrics"]["protocol"] if rows else "?"
    text = (
        f"NUDT-SIRST test split, {rows[0]['metrics']['frames'] if rows else 0} frames at native resolution, "
        f"metrics protocol `{protocol}`; deep models trained from scratch (the steps of the table, batch "
        f"{args.batch}, {args.crop} crops, recipe `scratch`"
        + "".join(f", {k}={v}" for k, v in args.overrides.items())
        + ", checkpoint chosen on the validation split)\n\n"
        + table(rows)
        + f"\n\ncommit {info['commit']}, {info['machine']}, torch {info['torch']}, "
        f"{info['threads']} thread{'s' if info['threads'] != 1 else ''}, total {info['total_s']:.0f} s\n"
    )
    print(text)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps({"info": info, "rows": rows}, indent=2, default=float))
    plot(rows, out / "curves.png")
    print(f"wrote {out}/results.md, results.json, curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
