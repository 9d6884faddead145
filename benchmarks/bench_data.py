"""Data loading speed: read + training transforms + target annotations, one worker (issue 3 target >= 200/s).

Usage: .venv/bin/python benchmarks/bench_data.py [--root ../shared/data/NUDT-SIRST] [--n 300] [--copy-paste]
       [--device cpu|cuda] [--batch 12]

Runs in this process (what one DataLoader worker does) over the NUDT-SIRST training split after a short
warm-up, and prints images per second: wall clock, and per CPU second of this process (which the load of
other processes on a shared machine disturbs less). Falls back to a synthetic folder written to a temporary
directory when the real data is absent (and says so).

The last row, in the same run, is ``data.on_device`` (:mod:`irsam2.data.on_device`): the split held on
``--device`` (CUDA when present, else the CPU, one thread) and whole batches of ``--batch`` augmented there;
it prints images per second and its ratio to the cached one-worker rate above.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import torch

from irsam2.data import IRSTDDataset, SyntheticIRDataset, write_synthetic_dataset


def main() -> None:
    default_root = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "NUDT-SIRST"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=default_root)
    ap.add_argument("--n", type=int, default=300, help="items timed")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--copy-paste", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # one DataLoader worker = one thread
    torch.manual_seed(0)

    tmp = None
    root = args.root
    if not root.is_dir():
        tmp = tempfile.TemporaryDirectory()
        root = write_synthetic_dataset(tmp.name, 200, 10, size=256, seed=0)
        print(f"{args.root} absent: timing a synthetic 256x256 folder instead")
    norm = {"mean": 0.5, "std": 0.25}
    rate_cached = float("nan")
    for cache in (False, True):
        ds = IRSTDDataset(
            root, "trainval", norm=norm, crop_size=args.crop, copy_paste=args.copy_paste, cache=cache
        )
        n = min(args.n, len(ds)) if cache else args.n
        if cache:  # fill the cache: the first epoch decodes as usual
            for i in range(n):
                ds[i]
        else:
            for i in range(10):  # warm-up (page cache, lazy imports)
                ds[i]
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            ds[i % len(ds)]
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        what = "cached frames (epochs after the first), " if cache else ""
        if cache:
            rate_cached = n / dt
        print(
            f"{root}: {n} items, {what}loading + training transforms at {args.crop}x{args.crop}: "
            f"{n / dt:.1f} images/s per worker ({1000 * dt / n:.2f} ms/image wall; "
            f"{n / dc:.1f} images/s of this process's CPU time)"
        )

    syn = SyntheticIRDataset(64, size=256, seed=0, train=True, norm={"mean": 0.5, "std": 0.25})
    t0 = time.perf_counter()
    for i in range(64):
        syn[i]
    dt = time.perf_counter() - t0
    print(f"synthetic 256x256 generation + training transforms: {64 / dt:.1f} images/s per worker")
    bench_on_device(root, norm, args, rate_cached)
    if tmp is not None:
        tmp.cleanup()


def bench_on_device(root: Path, norm: dict, args: argparse.Namespace, rate_cached: float) -> None:
    """Batches built on the device (data.on_device) from the same training split, same crop."""
    from irsam2.data import TrainAugment
    from irsam2.data.on_device import DeviceTrainSet

    dev = torch.device(args.device)
    aug = TrainAugment(crop_size=args.crop)
    ds = IRSTDDataset(root, "trainval", norm=norm, crop_size=args.crop, augment=aug)
    t0 = time.perf_counter()
    data = DeviceTrainSet(ds, dev)
    load_s = time.perf_counter() - t0
    gen = data.generator(0)
    order = torch.randperm(len(data) * 4, generator=torch.Generator().manual_seed(0)) % len(data)
    batches = [order[i : i + args.batch].to(dev) for i in range(0, len(order) - args.batch + 1, args.batch)]

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for idx in batches[:3]:  # warm-up
        data.batch(idx, gen)
    sync()
    steps = max(3, min(len(batches), -(-args.n // args.batch)))
    t0 = time.perf_counter()
    for i in range(steps):
        data.batch(batches[i % len(batches)], gen)
    sync()
    dt = time.perf_counter() - t0
    rate = steps * args.batch / dt
    print(
        f"data.on_device on {dev} ({len(data)} frames held, {data.nbytes() / 1e6:.0f} MB, loaded in "
        f"{load_s:.1f} s): batch {args.batch} at {args.crop}x{args.crop}: {rate:.1f} images/s "
        f"({1000 * dt / steps:.2f} ms/batch); {rate / rate_cached:.2f} x the cached one-worker rate above"
    )


if __name__ == "__main__":
    main()
