"""Cost of the CSA loss as a fraction of a full IR-SAM2 training step (issue 4, target <= 10 %).

Measures, in one run on the CPU (``--device cuda``: on a GPU instead):

- CSA forward + backward (all terms on: alpha, location, w_aux x target-centric) on three outputs of a
  batch of 12 at 256 x 256 with 1 to 10 targets per image (median of ``--loss-reps`` after two warm-ups);
- one full training step of ``irsam2.create_model("irsam2_t")``: forward, CSA, backward, Adan step (the
  spec's optimiser settings), RHPM head on (the gate open, the heavier configuration). The trunk is frozen as
  in training from SAM2 weights (``--trainable-trunk`` to train it too). A batch-12 step takes seconds on a
  CPU, so by default it is timed ``--step-reps`` = 1 time after one warm-up step.

Prints both times and their ratio. The machine's cores are shared: numbers move with the load of other jobs.

    .venv/bin/python benchmarks/bench_loss.py [--batch 12 --size 256 --loss-reps 10 --step-reps 1]
    .venv/bin/python benchmarks/bench_loss.py --threads 1   # the loss's own work, free of scheduling waits
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import irsam2
from irsam2.data.targets import compute_targets
from irsam2.losses import build_loss


def make_batch(batch: int, size: int, seed: int = 0) -> dict:
    """Synthetic collated batch: 1-10 rectangular targets of 1-9 px sides per image, on a noise image."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((batch, size, size)).astype(np.float32)
    masks = np.zeros((batch, size, size), dtype=bool)
    parts: dict[str, list] = {"boxes": [], "areas": [], "contrasts": [], "box_batch": []}
    for i in range(batch):
        for _ in range(rng.integers(1, 11)):
            hh, ww = rng.integers(1, 10, size=2)
            y, x = rng.integers(0, size - hh), rng.integers(0, size - ww)
            masks[i, y : y + hh, x : x + ww] = True
            images[i, y : y + hh, x : x + ww] += 2.0
        t = compute_targets(masks[i], images[i], margin=3)
        for key in ("boxes", "areas", "contrasts"):
            parts[key].append(torch.from_numpy(t[key]))
        parts["box_batch"].append(torch.full((len(t["areas"]),), i, dtype=torch.long))
    out = {k: torch.cat(v) for k, v in parts.items()}
    out["image"] = torch.from_numpy(images)[:, None].repeat(1, 3, 1, 1)
    out["mask"] = torch.from_numpy(masks[:, None].astype(np.float32))
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_loss(loss_fn, batch: dict, reps: int, device: torch.device) -> float:
    b, _, h, w = batch["mask"].shape
    gen = torch.Generator().manual_seed(1)
    outs = [torch.randn(b, 1, h, w, generator=gen).to(device).requires_grad_(True) for _ in range(3)]
    times = []
    for i in range(reps + 2):
        for o in outs:
            o.grad = None
        sync(device)
        t0 = time.perf_counter()
        loss_fn(outs, batch).backward()
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def profile_loss(loss_fn, batch: dict, device: torch.device) -> None:
    from torch.profiler import ProfilerActivity, profile

    b, _, h, w = batch["mask"].shape
    outs = [torch.randn(b, 1, h, w, device=device).requires_grad_(True) for _ in range(3)]
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(5):
            loss_fn(outs, batch).backward()
        sync(device)
    key = "cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=20, max_name_column_width=40))


def time_step(loss_fn, batch: dict, reps: int, trainable_trunk: bool, device: torch.device) -> float:
    model = irsam2.create_model("irsam2_t").to(device)
    model.set_trunk_frozen(not trainable_trunk)
    model.set_head_enabled(True)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        from pytorch_optimizer import Adan

        opt = Adan(params, lr=0.01, weight_decay=1e-4, betas=(0.98, 0.92, 0.99), eps=1e-8)
    except ImportError:  # a machine without pytorch-optimizer: a comparable first-order optimiser
        print("pytorch-optimizer missing: the step uses torch.optim.AdamW instead of Adan")
        opt = torch.optim.AdamW(params, lr=0.01, weight_decay=1e-4)
    times = []
    for i in range(reps + 1):
        sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(batch["image"]), batch)
        loss.backward()
        opt.step()
        sync(device)
        if i >= 1:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--loss-reps", type=int, default=10)
    ap.add_argument("--step-reps", type=int, default=1)
    ap.add_argument("--trainable-trunk", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--profile", action="store_true", help="also print the torch profiler table of the loss")
    ap.add_argument("--device", default="cpu", help="cpu (the issue's measure) or cuda")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    batch = {k: v.to(device) for k, v in make_batch(args.batch, args.size).items()}
    loss_fn = build_loss(
        "csa", area_mean=float(batch["areas"].mean()), contrast_mean=float(batch["contrasts"].mean())
    )
    n_t = batch["boxes"].shape[0]
    print(
        f"torch {torch.__version__} on {device}, {torch.get_num_threads()} CPU threads; "
        f"batch {args.batch} at {args.size}, {n_t} targets"
    )
    t_loss = time_loss(loss_fn, batch, args.loss_reps, device)
    print(f"CSA forward+backward, 3 outputs: {t_loss * 1e3:.1f} ms (median of {args.loss_reps})")
    if args.profile:
        profile_loss(loss_fn, batch, device)
    t_step = time_step(loss_fn, batch, args.step_reps, args.trainable_trunk, device)
    trunk = "trainable" if args.trainable_trunk else "frozen"
    print(
        f"full training step (irsam2_t, trunk {trunk}, head on, Adan): {t_step:.2f} s "
        f"(median of {args.step_reps} after 1 warm-up)"
    )
    print(f"ratio loss / step: {t_loss / t_step:.4f} ({100 * t_loss / t_step:.2f} %, target <= 10 %)")


if __name__ == "__main__":
    main()
