"""Padded Hiera windows: IR-SAM2's training step with the trunk's exact padding-free form against timm's own.

SAM2's stage-3 blocks attend in 14 x 14 windows; a smaller token map (4 x 4 at a 64 x 64 input, 8 x 8 at 128)
is zero-padded to fill them. ``irsam2.models.hiera.PaddedWindowBlock`` computes the same attention without
pushing the padding through the attention's linear layers. This script times one training step (forward,
backward, fused AdamW) of ``irsam2_t`` with each form, alternating round after round so that other load hits
both alike, and prints the median per-round time ratio (ours / timm's) per input size, plus the largest output
difference of the two forms on the same weights.

Usage: .venv/bin/python benchmarks/bench_hiera.py [--threads 2] [--rounds 6] [--sizes 64:8,128:4,256:2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from timm.models.hieradet_sam2 import MultiScaleBlock

from irsam2.models import create_model
from irsam2.models.hiera import PaddedWindowBlock


def _set_form(model: torch.nn.Module, cls: type) -> None:
    for blk in model.trunk.blocks:
        blk.__class__ = cls


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch's choice)")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds per size (default: 6)")
    parser.add_argument("--sizes", default="64:8,128:4,256:2", help="size:batch pairs (default: %(default)s)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("irsam2_t").train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    print(f"irsam2_t training step, {torch.get_num_threads()} thread(s), {args.rounds} alternating rounds")
    print("| input | batch | timm padded (s) | padding-free (s) | ratio | max output diff |")
    print("|---|---|---|---|---|---|")
    for spec in args.sizes.split(","):
        size, batch = (int(v) for v in spec.split(":"))
        x = torch.randn(batch, 3, size, size)

        def step(x: torch.Tensor = x) -> None:
            loss = model(x)[0].float().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        times: dict[type, list[float]] = {MultiScaleBlock: [], PaddedWindowBlock: []}
        for cls in times:  # warm-up of both forms
            _set_form(model, cls)
            step()
        for _ in range(args.rounds):
            for cls in times:
                _set_form(model, cls)
                t0 = time.perf_counter()
                step()
                times[cls].append(time.perf_counter() - t0)
        ratios = [b / a for a, b in zip(times[MultiScaleBlock], times[PaddedWindowBlock], strict=True)]
        model.eval()
        with torch.no_grad():
            outs = []
            for cls in times:
                _set_form(model, cls)
                outs.append(model(x)[0])
        model.train()
        diff = (outs[0] - outs[1]).abs().max().item()
        med = [statistics.median(times[c]) for c in times] + [statistics.median(ratios)]
        print(f"| {size}x{size} | {batch} | {med[0]:.3f} | {med[1]:.3f} | {med[2]:.3f} | {diff:.2e} |")
    _set_form(model, PaddedWindowBlock)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
