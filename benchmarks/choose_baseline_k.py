"""Choose each baseline's segmentation constant k (mask = saliency > mean + k * std) on TRAINING splits only.

    .venv/bin/python benchmarks/choose_baseline_k.py --methods tophat,maxmedian,pstnn \
        --data ../shared/data/NUDT-SIRST:nudt ../shared/data/NUAA-SIRST:nuaa_50_50 [--limit N] [--cache DIR]

For every method it computes the saliency maps of the training split (``trainval``: the release's whole
training split; never a test frame) of each dataset given, pools the frames of all datasets, and prints the
cumulative IoU at each k of a grid, then the k with the best pooled IoU. That k is what
``irsam2.baselines.DEFAULT_KS`` holds for the method (docs/baselines.md records the run). Saliency maps are
cached under --cache so that a rerun with another grid is fast. --limit N scores the first N training frames
of each dataset (for the slow methods IPI, RIPT, NRAM).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from irsam2.baselines import PAPER_NAMES, adaptive_threshold, get_baseline
from irsam2.data.io import read_frame, read_mask
from irsam2.data.layouts import resolve_split

GRID = (1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 20, 25, 30)


def load_split(root: Path, preset: str | None, limit: int | None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    r = resolve_split(root, "trainval", preset=preset)
    items = list(zip(r.stems, r.images, r.masks))[:limit]
    out = []
    for stem, ip, mp in items:
        f, _ = read_frame(ip)
        out.append((stem, f.astype(np.float64) * 255.0, read_mask(mp, size=f.shape)))
    return out


def saliency_maps(method: str, frames: list, cache: Path | None, tag: str) -> list[np.ndarray]:
    path = cache / f"{tag}_{method}_{len(frames)}.npz" if cache else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            return [z[s] for s, _, _ in frames]
    fn = get_baseline(method)
    t0 = time.perf_counter()
    maps = [fn(f) for _, f, _ in frames]
    print(
        f"  {method} on {tag}: {len(frames)} frames, {(time.perf_counter() - t0) / len(frames):.3f} s/frame"
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **{s: m for (s, _, _), m in zip(frames, maps)})
    return maps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="tophat,maxmedian,pstnn")
    ap.add_argument("--data", nargs="+", required=True, help="FOLDER[:PRESET] of each dataset")
    ap.add_argument("--limit", type=int, help="first N training frames of each dataset")
    ap.add_argument("--cache", type=Path, help="folder for cached saliency maps")
    args = ap.parse_args()
    datasets = []
    for spec in args.data:
        folder, _, preset = spec.partition(":")
        frames = load_split(Path(folder), preset or None, args.limit)
        datasets.append((Path(folder).name, frames))
        print(
            f"{Path(folder).name}: {len(frames)} training frames (trainval{f', {preset}' if preset else ''})"
        )
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        inter = np.zeros((len(datasets), len(GRID)))
        union = np.zeros((len(datasets), len(GRID)))
        for d, (tag, frames) in enumerate(datasets):
            for sal, (_, _, gt) in zip(saliency_maps(method, frames, args.cache, tag), frames):
                for j, k in enumerate(GRID):
                    pred = sal > adaptive_threshold(sal, k)
                    inter[d, j] += np.count_nonzero(pred & gt)
                    union[d, j] += np.count_nonzero(pred | gt)
        iou = 100 * inter / np.maximum(union, 1)
        pooled = 100 * inter.sum(0) / np.maximum(union.sum(0), 1)
        print(f"{PAPER_NAMES[method]}: training IoU (%) by k")
        print("  k       " + " ".join(f"{tag[:10]:>10}" for tag, _ in datasets) + "     pooled")
        for j, k in enumerate(GRID):
            print(f"  {k:<6g}  " + " ".join(f"{v:>10.2f}" for v in iou[:, j]) + f" {pooled[j]:>10.2f}")
        best = GRID[int(np.argmax(pooled))]
        print(f"  best pooled k for {method}: {best:g}")


if __name__ == "__main__":
    main()
