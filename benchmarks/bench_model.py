"""IR-SAM2 forward speed on the CPU, measured in one run (issue: speed targets).

Prints, at 256x256 batch 1 (by default):
- the forward-time ratio of the full model (CQG + RHPM head, gate open) over the model without CQG and without
  the RHPM head (``irsam2_t_base``): target <= 1.02. The two are timed in alternation, round after round, so
  that load from other processes hits both alike; the ratio is the median of the per-round ratios, in wall
  time and in this process's CPU time (which a busy shared machine disturbs less).
- the full model's effective GFLOP/s (FLOPs in the paper's convention / median forward time) beside this
  machine's fp32 matmul GFLOP/s measured in the same run with the same threads (aim: 40 %).

Usage: .venv/bin/python benchmarks/bench_model.py [--threads 1] [--rounds 30] [--size 256] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from irsam2.models import create_model
from irsam2.models.complexity import count_flops


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def matmul_gflops(n: int = 1024, reps: int = 10) -> float:
    """fp32 GEMM rate: median over ``reps`` products of two n x n matrices (2 n^3 FLOPs each)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    times = [_timed(lambda: a @ b)[0] for _ in range(reps)]
    return 2 * n**3 / statistics.median(times) / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared 2-core machine a 2-thread pool under load is up to "
        "10x slower and its timings scatter; 0 keeps torch's own choice)",
    )
    parser.add_argument("--rounds", type=int, default=30, help="alternating timing rounds (default: 30)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    full = create_model("irsam2_t").eval()
    full.set_head_enabled(True)
    base = create_model("irsam2_t_base").eval()
    x = torch.randn(1, 3, args.size, args.size)
    flops = count_flops(full, (args.size, args.size))["total"]

    with torch.inference_mode():
        for _ in range(3):  # warm-up: allocator, kernels, the RHPM radius caches
            full(x)
            base(x)
        gemm_before = matmul_gflops()
        t_full, t_base, ratios, cpu_ratios = [], [], [], []
        for i in range(args.rounds):
            # alternate the order too, so that neither model always runs right after the other
            if i % 2:
                tb, tf = _timed(lambda: base(x)), _timed(lambda: full(x))
            else:
                tf, tb = _timed(lambda: full(x)), _timed(lambda: base(x))
            t_full.append(tf[0])
            t_base.append(tb[0])
            ratios.append(tf[0] / tb[0])
            cpu_ratios.append(tf[1] / tb[1])
        gemm_after = matmul_gflops()

    med_full, med_base = statistics.median(t_full), statistics.median(t_base)
    gemm = max(gemm_before, gemm_after)
    eff = flops / med_full / 1e9
    result = {
        "size": args.size,
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
        "full_ms": med_full * 1e3,
        "base_ms": med_base * 1e3,
        "ratio_full_over_base": statistics.median(ratios),
        "cpu_time_ratio_full_over_base": statistics.median(cpu_ratios),
        "ratio_of_medians": med_full / med_base,
        "full_gflops_paper_convention": flops / 1e9,
        "effective_gflop_s": eff,
        "matmul_gflop_s": gemm,
        "fraction_of_matmul": eff / gemm,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"CPU, {result['threads']} threads, 1x3x{args.size}x{args.size}, {args.rounds} alternating rounds "
        f"(1-min load average {result['load_average']:.1f}: other processes disturb these numbers)"
    )
    print(
        f"full model (CQG + RHPM head): {result['full_ms']:.1f} ms   "
        f"without CQG and head: {result['base_ms']:.1f} ms"
    )
    print(
        f"forward-time ratio full / base: {result['ratio_full_over_base']:.4f} (median of per-round ratios; "
        f"ratio of medians {result['ratio_of_medians']:.4f}; target <= 1.02)"
    )
    print(
        f"same ratio in process CPU time: {result['cpu_time_ratio_full_over_base']:.4f} (less disturbed by "
        f"other processes than wall time; with several threads it also counts their spin-waits)"
    )
    print(
        f"effective rate: {eff:.1f} GFLOP/s ({flops / 1e9:.2f} GFLOPs per forward) vs fp32 matmul "
        f"{gemm:.1f} GFLOP/s: {100 * eff / gemm:.1f} % (aim 40 %)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
