"""Export a trained IR-SAM2 to ONNX (dynamo exporter, dynamic batch) and check it against torch.

The ONNX file takes a (B, 1, H, W) float32 frame in [0, 1] (normalisation inside the graph) and returns the
final logits (B, 1, H, W); a pixel is a target where the logit is > 0. H x W is fixed by --size (multiples of
32); `irsam2 predict --onnx` pads smaller frames to it. After the export, onnxruntime and torch run the same
random frames and real frames (--check-data, or synthetic infrared frames when it is absent) and the largest
absolute difference of the logits is printed; the command fails (exit 1) when it reaches 1e-4.

Example:
  irsam2 export --checkpoint runs/demo/checkpoint.pt --onnx irsam2.onnx --check-data ../data/NUDT-SIRST/images
  irsam2 predict frames/ --onnx irsam2.onnx --out predictions
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from irsam2.utils import UserError

HELP = __doc__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="an irsam2 checkpoint")
    parser.add_argument("--onnx", type=Path, required=True, metavar="OUT", help="the ONNX file to write")
    parser.add_argument(
        "--size",
        type=int,
        nargs="+",
        default=[256],
        metavar="N",
        help="H [W] of the exported input (default 256)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --onnx file")
    parser.add_argument("--check-data", type=Path, help="a folder of real frames for the parity check")
    parser.add_argument(
        "--check-frames", type=int, default=4, help="frames per parity set (default: %(default)s)"
    )
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default: %(default)s)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="parity limit (default: %(default)s)")


def _size(values: list[int]) -> tuple[int, int]:
    if len(values) not in (1, 2):
        raise UserError(f"--size takes one or two numbers, got {values}")
    h, w = (values[0], values[0]) if len(values) == 1 else values
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise UserError(f"--size {h} {w}: height and width must be positive multiples of 32")
    return h, w


def check_frames(folder: Path | None, n: int, size: tuple[int, int], seed: int = 0) -> tuple[str, list]:
    """Real frames for the parity check: the first ``n`` of ``folder``, else ``n`` synthetic scenes."""
    if folder is not None:
        from irsam2.data.io import list_images, read_frame

        paths = list_images(folder)
        if not paths:
            raise UserError(f"{folder}: no images for the parity check")
        return str(folder), [read_frame(p)[0] for p in paths[:n]]
    from irsam2.data.synthetic import SceneConfig, generate_scene

    cfg = SceneConfig(size=size)
    return "synthetic infrared scenes", [generate_scene(i, seed, cfg).image for i in range(n)]


def run(args: argparse.Namespace) -> int:
    from irsam2.checkpoint import model_from_checkpoint
    from irsam2.deploy.onnx import OnnxPredictor, check_parity, export_onnx
    from irsam2.engine.inference import FrameModel, norm_from_checkpoint
    from irsam2.engine.run_dir import check_output_file

    h, w = _size(args.size)
    check_output_file(args.onnx, overwrite=args.overwrite)
    if args.check_frames < 1:
        raise UserError(f"--check-frames must be at least 1, got {args.check_frames}")
    model, ckpt = model_from_checkpoint(args.checkpoint)
    mean, std = norm_from_checkpoint(ckpt, args.checkpoint)
    real_name, real = check_frames(args.check_data, args.check_frames, (h, w))  # fail early on a bad folder
    print(
        f"irsam2 export: {ckpt['model_config'].get('name')} from {args.checkpoint} -> {args.onnx} ({h}x{w})"
    )
    info = export_onnx(
        model,
        {"mean": mean, "std": std},
        args.onnx,
        h,
        w,
        opset=args.opset,
        metadata={
            "irsam2.model_config": json.dumps(ckpt["model_config"]),
            "irsam2.checkpoint": args.checkpoint,
        },
    )
    print(f"exported in {info['seconds']:.1f} s ({Path(args.onnx).stat().st_size / 1e6:.1f} MB)")

    runner = OnnxPredictor(args.onnx, device="cpu")
    frame_model = FrameModel(model, mean, std).eval()
    rng = np.random.default_rng(0)
    random = [rng.random((h, w), dtype=np.float32) for _ in range(args.check_frames)]
    results = {
        "random frames": check_parity(frame_model, runner, random, batch_size=3),
        real_name: check_parity(frame_model, runner, real, batch_size=3),
    }
    worst = max(r["max_abs_diff"] for r in results.values())
    for name, r in results.items():
        print(
            f"parity onnxruntime vs torch on {r['frames']} {name}: "
            f"max |diff| {r['max_abs_diff']:.3e}, mean {r['mean_abs_diff']:.3e}"
        )
    ok = worst < args.tolerance
    print(
        f"largest difference {worst:.3e} {'<' if ok else '>='} {args.tolerance:g}: {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1
