"""Forward-pass timing for ``irsam2 bench`` and ``benchmarks/bench_model.py`` (paper Table 7's FPS column).

Timing is synchronised (CUDA work is awaited before the clock stops), preceded by warm-up calls, and reported
as the median over the timed calls so that a busy shared machine disturbs it less than a mean would.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_runner(
    model: nn.Module,
    x: torch.Tensor,
    bf16: bool = False,
    compile: bool = False,
    cuda_graphs: bool = False,
    compile_mode: str | None = None,
    compile_backend: str = "inductor",
) -> Callable[[], object]:
    """A no-argument callable running one inference forward of ``model`` on ``x`` (same device).

    ``bf16``: autocast to bfloat16 (the FFTs of RHPM stay float32). ``compile``: ``torch.compile`` the model
    (``compile_mode``: None, "reduce-overhead" (CUDA graphs inside), "max-autotune", ...). ``cuda_graphs``:
    capture one forward in a CUDA graph and replay it (CUDA only; the shapes are static at inference).
    """
    device = x.device
    model = model.eval()
    fn: Callable[[torch.Tensor], object] = model
    if compile:
        # static shapes: one graph per batch size instead of a slower dynamic-shape recompile
        fn = torch.compile(model, mode=compile_mode, backend=compile_backend, dynamic=False)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def run_eager() -> object:
        with torch.inference_mode(), autocast:
            return fn(x)

    if not cuda_graphs:
        return run_eager
    if device.type != "cuda":
        raise ValueError("CUDA graphs need a CUDA device")
    static_x = x.clone()
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream), torch.no_grad(), autocast:
        for _ in range(3):  # warm-up on a side stream (fills caches, picks kernels) before capture
            fn(static_x)
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad(), autocast:
        out = fn(static_x)

    def run_graph() -> object:
        graph.replay()
        return out

    return run_graph


def time_calls(
    run: Callable[[], object], device: torch.device, iters: int = 20, warmup: int = 3
) -> list[float]:
    """Seconds per call of ``run`` (after ``warmup`` untimed calls), each synchronised."""
    for _ in range(warmup):
        run()
    _sync(device)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def measure_fps(
    model: nn.Module,
    device: torch.device | str = "cpu",
    batch: int = 1,
    size: tuple[int, int] = (256, 256),
    iters: int = 20,
    warmup: int = 3,
    bf16: bool = False,
    compile: bool = False,
    cuda_graphs: bool = False,
    compile_mode: str | None = None,
    compile_backend: str = "inductor",
) -> dict:
    """Frames per second of inference forwards at ``batch x 3 x size``: median over ``iters`` timed calls.

    ``first_call_s``: the wall time of building the runner and its first call (torch.compile's compilation
    or the CUDA graph's capture included)."""
    device = torch.device(device)
    model = model.to(device)
    x = torch.randn(batch, 3, *size, device=device)
    _sync(device)
    t0 = time.perf_counter()
    run = make_runner(
        model,
        x,
        bf16=bf16,
        compile=compile,
        cuda_graphs=cuda_graphs,
        compile_mode=compile_mode,
        compile_backend=compile_backend,
    )
    run()
    _sync(device)
    first = time.perf_counter() - t0
    times = time_calls(run, device, iters, max(warmup - 1, 0))
    med = statistics.median(times)
    return {
        "device": str(device),
        "batch": batch,
        "size": list(size),
        "median_s": med,
        "min_s": min(times),
        "fps": batch / med,
        "iters": iters,
        "bf16": bf16,
        "compile": compile,
        "compile_mode": compile_mode,
        "cuda_graphs": cuda_graphs,
        "first_call_s": first,
    }
