"""Does IR-SAM2 learn real infrared targets? A fixed-work convergence benchmark (issue 11).

Trains IR-SAM2 from scratch (no SAM2 weights: none can be downloaded on the development machines) on
NUDT-SIRST's training split with the ``scratch`` recipe, for a fixed number of optimizer steps, seed and crop
size (no wall-clock budget: the work is the same on every machine, only the time differs), in epochs of
``--epoch-steps`` steps, validates every ``--val-every`` epochs and after the last on the validation split
carved from the training split, evaluates the validation-selected checkpoint (``best.pt``) on all test frames
at native resolution under the default metrics protocol, and prints one table beside the classical baselines
(Top-hat, Max-median, PSTNN at their defaults) and a ~0.84 M-parameter plain U-Net trained with the same
steps, crops, batch and recipe.

On a CPU the jobs run in two lanes (``--lanes 2``, the default): IR-SAM2 in one process, the U-Net and the
classical methods in another, one thread each, and the lane left running takes every thread once the other
is done (on two cores, two one-thread processes get through about 1.2x the work of one two-thread process).
The rows' seconds are wall times inside their lane; ``--lanes 1`` runs the jobs one after another.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def _nothing() -> None:
    pass


def train_and_test(
    name: str, args: argparse.Namespace, out: Path, tick: Callable[[], None] = _nothing
) -> dict:
    """Train ``name`` with the scratch recipe for ``args.steps`` steps; test its best.pt on the test split.

    ``tick`` is called after every optimizer step and before the test (the lanes' thread hand-over)."""
    from irsam2.checkpoint import model_from_checkpoint
    from irsam2.data import IRSTDDataset
    from irsam2.engine.config import load_config
    from irsam2.engine.evaluate import evaluate_model
    from irsam2.engine.trainer import train
    from irsam2.utils import pick_device

    epochs = max(math.ceil(args.steps / args.epoch_steps), 1)
    overrides = {
        "recipe": "scratch",
        "data.root": str(args.data),
        "data.crop_size": args.crop,
        "data.workers": args.workers,
        "model.name": name,
        "train.batch_size": args.batch,
        "train.epochs": epochs,  # one "epoch" = epoch_steps steps: the schedule and the curve follow steps
        "train.max_steps_per_epoch": args.epoch_steps,
        "train.val_every": args.val_every,  # and after the last epoch
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
    result = train(cfg, on_step=lambda trainer, info: tick())
    train_s = time.perf_counter() - t0
    # an "epoch" stops at the end of the data too: with fewer training batches than --epoch-steps, fewer
    # steps run than asked; the table reports the steps that ran
    steps_done = len(result.step_losses)
    if steps_done < args.steps:
        print(f"note: {name} ran {steps_done} optimizer steps, not {args.steps}: one pass over the training "
              f"split holds fewer than --epoch-steps {args.epoch_steps} batches", flush=True)  # fmt: skip
    model, ckpt = model_from_checkpoint(result.best or result.last)
    device = pick_device(args.device)
    model.to(device)
    test = IRSTDDataset(args.data, split="test", preset="nudt", train=False, norm=ckpt["norm"])
    if args.test_limit:
        test = torch.utils.data.Subset(test, range(min(args.test_limit, len(test))))
    tick()
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
        if h.get("val_iou") is not None  # the validated epochs (--val-every)
    ]
    return {
        "job": name,
        "method": name,
        "kind": "deep",
        "params": sum(p.numel() for p in model.parameters()),
        "steps": steps_done,
        "epoch_steps": steps_done / max(len(result.history), 1),  # as they ran
        "best_epoch": ckpt.get("epoch"),
        "train_s": train_s,
        "test_s": test_s,
        "metrics": m,
        "curve": curve,
    }


def classical(name: str, args: argparse.Namespace, tick: Callable[[], None] = _nothing) -> dict:
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
        tick()
        f, _ = read_frame(ip)
        acc.add(score_map(fn(f.astype(np.float64) * 255.0), k), read_mask(mp, size=f.shape), stem)
    return {
        "job": name,
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


def run_jobs(
    jobs: list[tuple[str, str]], args: argparse.Namespace, out: Path, tick: Callable[[], None]
) -> list:
    """Run ``(kind, name)`` jobs in order ("deep": train and test; "classical": score); their rows."""
    rows = []
    for kind, name in jobs:
        if kind == "deep":
            rows.append(train_and_test(name, args, out, tick))
            print(table(rows[-1:]), flush=True)
        else:
            rows.append(classical(name, args, tick))
    return rows


def _lane(jobs: list, args: argparse.Namespace, out: Path, threads: int, all_threads: int, mine: Any,
          other: Any, queue: Any) -> None:  # fmt: skip
    """One lane (a process): its jobs on ``threads`` threads, on all of them once the other lane is done."""
    import traceback

    torch.set_num_threads(threads)
    bumped = False

    def tick() -> None:
        nonlocal bumped
        if not bumped and other.is_set():
            torch.set_num_threads(all_threads)
            bumped = True
            print(f"[{jobs[0][1]} lane] the other lane is done: {all_threads} threads from now", flush=True)

    try:
        queue.put(("ok", run_jobs(jobs, args, out, tick)))
    except BaseException:
        queue.put(("error", traceback.format_exc()))
    finally:
        mine.set()


def run_in_lanes(jobs: list[tuple[str, str]], args: argparse.Namespace, out: Path, threads: int) -> list:
    """The first job in one process, the others in a second, one thread each at the start; when a lane is
    done the other takes every thread. On a 2-core CPU two single-thread processes do about 1.2x the work of
    one two-thread process (small convolutions and SVDs scale poorly over threads), so the benchmark's total
    is shorter; what each job computes is the same (only the thread count, hence rounding, differs)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # no fork of a process holding OpenMP threads
    queue = ctx.Queue()
    done = [ctx.Event(), ctx.Event()]
    parts = [jobs[:1], jobs[1:]]
    procs = [
        ctx.Process(
            target=_lane,
            args=(
                parts[i],
                args,
                out,
                max(threads - 1, 1) if i == 0 else 1,
                threads,
                done[i],
                done[1 - i],
                queue,
            ),
        )  # fmt: skip
        for i in (0, 1)
    ]
    for p in procs:
        p.start()
    results: dict[int, list] = {}
    errors = []
    for _ in procs:  # read before join: a lane blocks on a full queue until its rows are taken
        status, payload = queue.get()
        if status == "ok":
            results[len(results)] = payload
        else:
            errors.append(payload)
    for p in procs:
        p.join()
    if errors:
        raise RuntimeError("a benchmark lane failed:\n" + "\n".join(errors))
    order = {name: i for i, (_, name) in enumerate(jobs)}
    rows = [r for part in results.values() for r in part]
    return sorted(rows, key=lambda r: order[r["job"]])


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
        steps = [round(c["epoch"] * r["epoch_steps"]) for c in r["curve"]]
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
    p.add_argument("--steps", type=int, default=700, help="optimizer steps per deep model")
    p.add_argument(
        "--epoch-steps",
        "--eval-every",
        dest="epoch_steps",
        type=int,
        default=140,
        help="optimizer steps per training epoch (at most the batches of one pass over the split)",
    )
    p.add_argument(
        "--val-every",
        type=int,
        default=2,
        help="validate every N epochs and after the last (default 2: at steps 280, 560, 700)",
    )
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
        "--lanes",
        type=int,
        choices=(1, 2),
        default=2,
        help="2 (default, CPU only): the first deep model in one process and the rest in another, one thread "
        "each until one is done; 1: every job in turn on all threads",
    )
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
    from irsam2.utils import UserError, pick_device

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
    jobs = [("deep", m) for m in args.models.split(",") if m]
    jobs += [("classical", c) for c in args.classical.split(",") if c]
    threads = torch.get_num_threads()
    lanes = args.lanes if len(jobs) > 1 and threads > 1 and pick_device(args.device).type == "cpu" else 1
    info["lanes"] = lanes
    print(f"{len(jobs)} jobs, {threads} threads, {lanes} lane(s)", flush=True)
    t0 = time.perf_counter()
    if lanes == 2:
        rows = run_in_lanes(jobs, args, out, threads)
    else:
        rows = run_jobs(jobs, args, out, _nothing)
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
        f"{info['threads']} threads in {info['lanes']} lane(s), total {info['total_s']:.0f} s\n"
    )
    print(text)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps({"info": info, "rows": rows}, indent=2, default=float))
    plot(rows, out / "curves.png")
    print(f"wrote {out}/results.md, results.json, curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
