"""Per-frame time of the Table 1 baselines at 256 x 256 (issue 8 targets).

    .venv/bin/python benchmarks/bench_baselines.py [--frames 5] [--methods tophat,pstnn]

Uses NUDT-SIRST test frames from ../shared/data when present (256 x 256 already), else synthetic 256 x 256
scenes. Prints the median and max wall time per frame for each method beside its target. The numbers depend on
the machine's load (the development machine has 2 shared cores): quote them with the load average printed.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from irsam2.baselines import BASELINES

TARGET_S = {"tophat": 0.020, "maxmedian": 0.020, "pstnn": 0.5, "ipi": 3.0, "ript": 3.0, "nram": 3.0}
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "NUDT-SIRST"


def load_frames(n: int) -> tuple[list[np.ndarray], str]:
    split = DATA / "50_50" / "test.txt"
    if split.is_file():
        from PIL import Image

        stems = [s.strip() for s in split.read_text().split() if s.strip()][:n]
        frames = []
        for stem in stems:
            with Image.open(DATA / "images" / f"{stem}.png") as im:
                frames.append(np.asarray(im.convert("L"), dtype=np.float64))
        return frames, f"NUDT-SIRST test frames {stems[0]}..{stems[-1]}"
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(n):
        bg = 90 + 300 * ndimage.gaussian_filter(rng.normal(size=(256, 256)), 6) + rng.normal(0, 2, (256, 256))
        yy, xx = np.mgrid[:256, :256]
        cy, cx = rng.uniform(30, 226, 2)
        frames.append(np.clip(bg + 60 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4.0), 0, 255))
    return frames, "synthetic 256 x 256 scenes"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=5, help="frames timed per method (after one warm-up)")
    ap.add_argument("--methods", default=",".join(BASELINES), help="comma-separated subset")
    args = ap.parse_args()
    frames, source = load_frames(args.frames)
    print(f"source: {source}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'method':<10} {'median ms':>10} {'max ms':>10} {'target ms':>10}  verdict")
    failed = 0
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        fn = BASELINES[name]
        fn(frames[0])  # warm-up (BLAS threads, caches)
        times = []
        for f in frames:
            t0 = time.perf_counter()
            fn(f)
            times.append(time.perf_counter() - t0)
        med, worst = float(np.median(times)), float(np.max(times))
        ok = med < TARGET_S[name]
        failed += not ok
        verdict = "ok" if ok else "SLOW"
        print(f"{name:<10} {1e3 * med:>10.1f} {1e3 * worst:>10.1f} {1e3 * TARGET_S[name]:>10.0f}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
