"""Model complexity and speed as in the paper's Table 7: parameters, FLOPs and frames per second.

Parameters are reported three ways: as the paper counts them (without the trunk's position embeddings, the
neck's LayerNorm2d and the query token: 25.55 M), raw, and trainable. FLOPs are 2 x multiply-accumulates of
one forward at 1x3x256x256 (by default) including attention and FFT work (paper: 30.47 G). FPS is measured at
batch 1 and batched, on the CPU and on CUDA when present, after warm-up, with synchronised timing (median of
the timed calls).

Examples:
  irsam2 bench --complexity                      # parameters, FLOPs and the per-component table only
  irsam2 bench                                   # complexity, then FPS on CPU (and CUDA when present)
  irsam2 bench --device cuda --batch 16 --bf16 --cuda-graphs --json
  irsam2 bench --device cuda --batch 16 --bf16 --compile --compile-mode max-autotune
  irsam2 bench --checkpoint runs/demo/checkpoint.pt --size 96x160
  irsam2 bench --model dnanet                    # any registered network
  irsam2 bench --all --iters 5                   # every network in one table, like the paper's Table 7
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from irsam2.utils import UserError

HELP = __doc__
logger = logging.getLogger(__name__)


def _size(text: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or HxW, got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or any(p <= 0 or p % 32 for p in parts):
        raise argparse.ArgumentTypeError(f"size {text!r}: height and width must be positive multiples of 32")
    return parts[0], parts[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="irsam2_t", help="registered preset (default: %(default)s)")
    parser.add_argument("--variant", default="official", choices=["official", "paper"])
    parser.add_argument("--checkpoint", type=Path, help="an irsam2 checkpoint: bench the model it stores")
    parser.add_argument(
        "--size", type=_size, default=(256, 256), help="N or HxW, multiples of 32 (default 256)"
    )
    parser.add_argument(
        "--all", action="store_true", help="every registered network in one table (the paper's Table 7)"
    )
    parser.add_argument("--complexity", action="store_true", help="parameters and FLOPs only, no timing")
    parser.add_argument(
        "--no-head", action="store_true", help="count and time with the RHPM head gate closed"
    )
    parser.add_argument(
        "--device",
        default="all",
        help="all (CPU, plus CUDA when present), cpu, cuda or cuda:N (default: all)",
    )
    parser.add_argument("--batch", type=int, default=8, help="batched FPS uses this batch size (default: 8)")
    parser.add_argument("--iters", type=int, default=20, help="timed forwards per measurement (default: 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed forwards first (default: 3)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--bf16", action="store_true", help="autocast to bfloat16 while timing")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model before timing")
    parser.add_argument(
        "--compile-mode",
        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
        help="torch.compile mode (with --compile; reduce-overhead and max-autotune use CUDA graphs on CUDA)",
    )
    parser.add_argument(
        "--compile-backend",
        default="inductor",
        choices=["inductor", "aot_eager", "eager"],
        help="torch.compile backend (default: %(default)s; the others check the tracing quickly)",
    )
    parser.add_argument("--cuda-graphs", action="store_true", help="replay a captured CUDA graph (CUDA only)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def _build(args: argparse.Namespace) -> torch.nn.Module:
    if args.checkpoint is not None:
        from irsam2.checkpoint import model_from_checkpoint

        model, _ = model_from_checkpoint(args.checkpoint)
        return model
    from irsam2.models import create_model

    return create_model(args.model, args.variant)


def _devices(spec: str) -> list[str]:
    if spec == "all":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {spec}: CUDA is not available on this machine")
    if spec != "cpu" and not spec.startswith("cuda"):
        raise UserError(f"--device {spec!r}: use all, cpu, cuda or cuda:N")
    return [spec]


def complexity_report(model: torch.nn.Module, size: tuple[int, int], head: bool) -> dict:
    from irsam2.models.complexity import component_parameters, count_flops, parameter_counts

    flops = count_flops(model, size, batch=1, head=head)
    return {
        "params": parameter_counts(model),
        "params_by_component": dict(component_parameters(model)),
        "flops": flops["total"],
        "macs": flops["macs"],
        "attention_flops": flops["attention"],
        "fft_flops": flops["fft"],
        "flops_by_component": dict(flops["components"]),
        "flops_input": flops["input"],
    }


# The IR-SAM2 paper's Table 7 (Params in M) for the full model; the baselines carry theirs in the registry.
IRSAM2_PAPER_PARAMS = {"irsam2_t": 25.55}


def _paper_params(name: str) -> float | None:
    from irsam2.models import network_spec

    spec = network_spec(name)
    return spec.paper_params if spec is not None else IRSAM2_PAPER_PARAMS.get(name)


def _speeds(model: torch.nn.Module, devices: list[str], batches: list[int], args: argparse.Namespace) -> list:
    from irsam2.models.speed import measure_fps

    out = []
    for device in devices:
        for batch in batches:
            try:
                r = measure_fps(
                    model,
                    device,
                    batch,
                    args.size,
                    args.iters,
                    args.warmup,
                    bf16=args.bf16,
                    compile=args.compile,
                    cuda_graphs=args.cuda_graphs and device.startswith("cuda"),
                    compile_mode=args.compile_mode,
                    compile_backend=args.compile_backend,
                )
            except torch.OutOfMemoryError as e:
                raise UserError(f"--batch {batch} does not fit on {device}: {str(e).splitlines()[0]}") from e
            out.append(r)
            logger.debug("timed %s", r)
        model.to("cpu")
    return out


def zoo_table(args: argparse.Namespace, devices: list[str]) -> list[dict]:
    """One row per registered network: parameters (measured and the paper's), FLOPs, FPS at batch 1."""
    from irsam2.models import create_model, list_models
    from irsam2.models.complexity import count_flops, parameter_counts

    rows = []
    for name in list_models():
        model = create_model(name)
        if hasattr(model, "set_head_enabled"):
            model.set_head_enabled(not args.no_head)
        counted = count_flops(model, args.size, batch=1, head=None)
        speed = _speeds(model, devices, [1], args)
        rows.append(
            {
                "model": name,
                "params": parameter_counts(model)["paper"],
                "paper_params_m": _paper_params(name),
                "flops": counted["total"],
                "macs": counted["macs"],
                "fps": {r["device"]: r["fps"] for r in speed},
            }
        )
    return rows


def _print_zoo(rows: list[dict], size: tuple[int, int], devices: list[str]) -> None:
    h, w = size
    fps_cols = "".join(f"{'FPS ' + d:>14}" for d in devices)
    print(f"Every registered network at 1x3x{h}x{w} (FPS: batch 1, median of timed forwards; "
          "FLOPs = 2 x MACs: papers print either under the name FLOPs)")  # fmt: skip
    print(f"{'model':<16}{'Params (M)':>12}{'paper (M)':>11}{'FLOPs (G)':>11}{'MACs (G)':>10}{fps_cols}")
    for r in rows:
        paper = f"{r['paper_params_m']:.2f}" if r["paper_params_m"] is not None else "-"
        fps = "".join(f"{r['fps'][d]:>14.2f}" for d in devices)
        print(
            f"{r['model']:<16}{r['params'] / 1e6:>12.3f}{paper:>11}{r['flops'] / 1e9:>11.2f}"
            f"{r['macs'] / 1e9:>10.2f}{fps}"
        )


def run(args: argparse.Namespace) -> int:
    if args.batch < 1 or args.iters < 1 or args.warmup < 0:
        raise UserError("--batch and --iters must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [] if args.complexity else _devices(args.device)
    if args.compile_mode and not args.compile:
        raise UserError("--compile-mode needs --compile")
    if args.cuda_graphs and not any(d.startswith("cuda") for d in devices):
        raise UserError("--cuda-graphs needs a CUDA device (--device cuda); none is being timed")
    if args.all:
        if args.checkpoint is not None:
            raise UserError("--all benches every registered network; drop --checkpoint (or --all)")
        rows = zoo_table(args, devices)
        if args.json:
            print(json.dumps({"size": list(args.size), "rows": rows}, indent=2))
        else:
            _print_zoo(rows, args.size, devices)
        return 0
    model = _build(args)
    head = not args.no_head
    name = model.config.get("name"), model.config.get("variant")
    report: dict = {"model": model.config, "head_enabled": head, **complexity_report(model, args.size, head)}
    if hasattr(model, "set_head_enabled"):
        model.set_head_enabled(head)

    report["speed"] = _speeds(model, devices, sorted({1, args.batch}), args)

    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    p = report["params"]
    h, w = args.size
    is_irsam2 = hasattr(model, "set_head_enabled")
    print(f"{name[0]} ({name[1]})" + (f", RHPM head {'on' if head else 'off'}" if is_irsam2 else ""))
    print(
        f"parameters: {p['paper'] / 1e6:.2f} M as the paper counts them, {p['raw']:,} raw, "
        f"{p['trainable']:,} trainable"
    )
    print(
        f"FLOPs at 1x3x{h}x{w}: {report['flops'] / 1e9:.2f} G (2 x {report['macs'] / 1e9:.2f} G MACs; "
        f"attention {report['attention_flops'] / 1e9:.2f} G, FFT {report['fft_flops'] / 1e6:.1f} M)"
    )
    if is_irsam2:  # the component tables name IR-SAM2's parts
        print("\nparameters by component:")
        for label, n in report["params_by_component"].items():
            print(f"  {n:>12,}  {label}")
        print("\nFLOPs by component:")
        for label, n in report["flops_by_component"].items():
            print(f"  {n / 1e9:>9.3f} G  {label}")
    if report["speed"]:
        print("\nspeed (median of timed forwards):")
        for r in report["speed"]:
            flags = ", ".join(k for k in ("bf16", "compile", "cuda_graphs") if r[k]) or "fp32 eager"
            first = f", first call {r['first_call_s']:.1f} s" + (" incl. compile" if r["compile"] else "")
            print(
                f"  {r['device']:<6} batch {r['batch']:>3}: {r['fps']:8.2f} FPS  "
                f"({r['median_s'] * 1e3:.1f} ms/batch; {flags}{first})"
            )
    fps = {f"{r['device']} b{r['batch']}": r["fps"] for r in report["speed"]}
    print("\nTable 7 row:")
    print(f"  {'Method':<16}{'Params (M)':>12}{'FLOPs (G)':>12}  FPS (f/s)")
    fps_text = ", ".join(f"{v:.2f} ({k})" for k, v in fps.items()) or "-"
    print(f"  {name[0]:<16}{p['paper'] / 1e6:>12.2f}{report['flops'] / 1e9:>12.2f}  {fps_text}")
    return 0
