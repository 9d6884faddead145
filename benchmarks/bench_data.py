"""Data loading speed: read + training transforms + target annotations, one worker (issue 3 target >= 200/s).

Usage: .venv/bin/python benchmarks/bench_data.py [--root ../shared/data/NUDT-SIRST] [--n 300] [--copy-paste]

Runs in this process (what one DataLoader worker does) over the NUDT-SIRST training split after a short
warm-up, and prints images per second: wall clock, and per CPU second of this process (which the load of
other processes on a shared machine disturbs less). Falls back to a synthetic folder written to a temporary
directory when the real data is absent (and says so).
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
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
