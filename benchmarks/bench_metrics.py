"""Throughput of the metric accumulators (issue 5: >= 500 frames/s at 256x256 on the CPU, network excluded).

Run: ``.venv/bin/python benchmarks/bench_metrics.py [--frames 300] [--size 256]``. Prints frames per second
for SegmentationMetrics (IoU, nIoU, Pd, Fa) on typical frames (a few targets, a few false blobs) and on noisy
frames (thousands of predicted components), and for the ROC accumulator. Numbers depend on the machine's load.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from irsam2.metrics import ROCAccumulator, SegmentationMetrics


def make_frames(n: int, size: int, noisy: bool, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        gt = np.zeros((size, size), bool)
        for _ in range(rng.integers(1, 4)):  # 1-3 small targets
            y, x = rng.integers(5, size - 8, 2)
            gt[y : y + rng.integers(2, 6), x : x + rng.integers(2, 6)] = True
        score = rng.normal(-4.0, 1.0, (size, size)).astype(np.float32)
        score[ndimage.binary_dilation(gt) if rng.random() < 0.5 else gt] = 3.0
        for _ in range(rng.integers(0, 3)):  # a few false blobs
            y, x = rng.integers(0, size - 3, 2)
            score[y : y + 2, x : x + 2] = 2.0
        if noisy:
            score += rng.normal(0, 1.0, (size, size)).astype(np.float32) * 2.5  # ~5% pixels above 0
        frames.append((score, gt))
    return frames


def rate(acc_factory, frames: list, repeats: int) -> float:
    best = 0.0
    for _ in range(repeats):
        acc = acc_factory()
        t0 = time.perf_counter()
        for i, (s, g) in enumerate(frames):
            acc.update(s, g, f"f{i}")
        acc.compute()
        best = max(best, len(frames) / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3, help="best of N passes (the CPU is shared)")
    args = ap.parse_args()
    typical = make_frames(args.frames, args.size, noisy=False)
    noisy = make_frames(max(args.frames // 3, 1), args.size, noisy=True, seed=1)
    n_comp = np.mean([ndimage.label(s > 0, np.ones((3, 3)))[1] for s, _ in noisy[:10]])
    print(f"frames {args.size}x{args.size}, best of {args.repeats} passes")
    for protocol in ("basicirstd", "optimal", "legacy"):
        r = rate(lambda p=protocol: SegmentationMetrics(protocol=p), typical, args.repeats)
        print(f"SegmentationMetrics {protocol:<10}, typical frames: {r:8.1f} frames/s  (target >= 500)")
    for protocol in ("basicirstd", "optimal"):
        r = rate(lambda p=protocol: SegmentationMetrics(protocol=p), noisy, args.repeats)
        print(f"SegmentationMetrics {protocol:<10}, noisy frames (~{n_comp:.0f} comp.): {r:8.1f} frames/s")
    probs = [(1 / (1 + np.exp(-s.astype(np.float64))), g) for s, g in typical[: args.frames // 3]]
    r = rate(lambda: ROCAccumulator(pdfa_thresholds=None), probs, args.repeats)
    print(f"ROCAccumulator pixel ROC (201 thresholds):   {r:8.1f} frames/s")
    r = rate(ROCAccumulator, probs, args.repeats)
    print(f"ROCAccumulator ROC + Pd-Fa (13 thresholds):  {r:8.1f} frames/s")


if __name__ == "__main__":
    main()
