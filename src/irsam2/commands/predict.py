"""Detect small targets in image files, folders and videos with a trained IR-SAM2 (or its ONNX export).

Frames of any size, 8- or 16-bit, no masks needed. For each frame it writes, under --out:
  masks/<frame>.png      the binary mask (0/255) at the frame's own size (logit > --threshold)
  overlays/<frame>.png   the frame with the mask in red and each target boxed in green
  targets/<frame>.json   its targets: centroid (x, y), box (x0, y0, x1, y1; x1, y1 exclusive), area,
                         peak score
and summary.json with one line per frame. Video frames are named <video>_<index>. An unreadable image or
video is skipped with a warning; the skipped files are listed at the end (and in summary.json) and the
command then exits with status 1. A --out that holds results is refused unless --overwrite.

Example:
  irsam2 predict frames/ clip.mp4 extra.png --checkpoint runs/demo/checkpoint.pt --out predictions
  irsam2 predict frames/ --onnx irsam2.onnx --out predictions     # onnxruntime, no torch in the loop
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from irsam2.utils import UserError, progress

HELP = __doc__
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".wmv", ".m4v", ".webm")
logger = logging.getLogger(__name__)
PREDICT_FILES = ("masks", "targets", "overlays", "summary.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files, folders of images, video files"
    )
    parser.add_argument(
        "--checkpoint", type=Path, help="an irsam2 checkpoint (from `irsam2 train` or the demo)"
    )
    parser.add_argument(
        "--onnx", type=Path, help="run this ONNX export (from `irsam2 export`) with onnxruntime"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("predictions"), help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the results in a non-empty --out folder"
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="frames per forward pass (default: %(default)s)"
    )
    parser.add_argument("--threshold", type=float, default=0.0, help="logit threshold (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1")
    parser.add_argument("--recursive", action="store_true", help="also read images in sub-folders")
    parser.add_argument("--video-step", type=int, default=1, help="keep every N-th video frame (default: 1)")
    parser.add_argument("--no-overlays", action="store_true", help="skip the overlay images")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


class FrameSource:
    """Resolves the inputs up front (so that a missing or unsupported input fails before any work) and then
    streams ``(key, frame, meta)`` with frames float32 ``(H, W)`` in [0, 1]."""

    def __init__(self, inputs: list[str], recursive: bool = False, video_step: int = 1) -> None:
        from irsam2.data.io import IMAGE_EXTENSIONS, list_images

        if video_step < 1:
            raise UserError(f"--video-step must be at least 1, got {video_step}")
        self.video_step = video_step
        self.entries: list[tuple[str, Path]] = []  # ("image" | "video", path)
        for raw in inputs:
            path = Path(raw)
            if path.is_dir():
                found = [p for p in list_images(path, recursive=recursive)]
                it = path.rglob("*") if recursive else path.iterdir()
                videos = sorted(p for p in it if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
                if not found and not videos:
                    raise UserError(
                        f"{path}: no images ({', '.join(IMAGE_EXTENSIONS)}) or videos in this folder"
                    )
                self.entries += [("image", p) for p in found] + [("video", p) for p in videos]
            elif path.is_file():
                suffix = path.suffix.lower()
                if suffix in VIDEO_EXTENSIONS:
                    self.entries.append(("video", path))
                elif suffix in IMAGE_EXTENSIONS:
                    self.entries.append(("image", path))
                else:
                    raise UserError(
                        f"{path}: unsupported file type {suffix or '(none)'!r}; expected an image "
                        f"({', '.join(IMAGE_EXTENSIONS)}) or a video ({', '.join(VIDEO_EXTENSIONS)})"
                    )
            else:
                raise UserError(f"{path}: no such file or folder")
        self.skipped: list[tuple[str, str]] = []  # (file, why): unreadable inputs, left out
        self.names = self._unique_names()
        self.video_lengths = {p: self._video_length(p) for kind, p in self.entries if kind == "video"}

    def _unique_names(self) -> dict[Path, str]:
        names: dict[Path, str] = {}
        used: set[str] = set()
        for _, p in self.entries:
            name, n = p.stem, 1
            while name in used:  # same stem in two folders: keep both outputs
                n += 1
                name = f"{p.stem}_{n}"
            used.add(name)
            names[p] = name
        return names

    @staticmethod
    def _open_video(path: Path):  # noqa: ANN205
        try:
            import cv2
        except ImportError as e:
            raise UserError(f"{path}: reading videos needs opencv: pip install 'irsam2[video]'") from e
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise UserError(f"{path}: cannot open the video (unreadable file or unsupported codec)")
        return cap

    def _video_length(self, path: Path) -> int:
        import cv2

        cap = self._open_video(path)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        return max(n, 0)

    def __len__(self) -> int:
        images = sum(1 for kind, _ in self.entries if kind == "image")
        frames = sum(-(-n // self.video_step) for n in self.video_lengths.values())
        return images + frames

    def __iter__(self) -> Iterator[tuple[str, np.ndarray, dict]]:
        from irsam2.data.io import read_frame

        for kind, path in self.entries:
            try:
                if kind == "image":
                    frame, depth = read_frame(path)
                    yield self.names[path], frame, {"source": str(path), "bit_depth": depth}
                else:
                    yield from self._video_frames(path)
            except UserError as e:  # one bad file must not cost the good frames their results
                logger.warning("skipped: %s", e)
                self.skipped.append((str(path), str(e)))

    def _video_frames(self, path: Path) -> Iterator[tuple[str, np.ndarray, dict]]:
        import cv2

        cap = self._open_video(path)
        index, read = 0, 0
        try:
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                if index % self.video_step == 0:
                    if img.ndim == 3:
                        img = cv2.cvtColor(
                            img, cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
                        )
                    depth = 16 if img.dtype == np.uint16 else 8
                    frame = img.astype(np.float32) / (65535.0 if depth == 16 else 255.0)
                    meta = {"source": str(path), "frame_index": index, "bit_depth": depth}
                    read += 1
                    yield f"{self.names[path]}_{index:06d}", frame, meta
                index += 1
        finally:
            cap.release()
        if read == 0:
            raise UserError(f"{path}: no frame could be decoded from this video")


def _frame_json(record: dict) -> str:
    """Indented JSON with one target per line (readable, and diff-friendly for many targets)."""
    head = {k: v for k, v in record.items() if k != "targets"}
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    targets = ",\n".join(f"    {json.dumps(t)}" for t in record["targets"])
    body = f'  "targets": [\n{targets}\n  ]' if record["targets"] else '  "targets": []'
    return "{\n" + "\n".join(lines) + "\n" + body + "\n}\n"


def make_runner(args: argparse.Namespace):  # noqa: ANN201
    """The torch `Predictor` for --checkpoint, or the onnxruntime runner for --onnx."""
    if args.onnx is not None:
        from irsam2.deploy.onnx import OnnxPredictor

        if args.checkpoint is not None:
            logger.warning("both --onnx and --checkpoint given: running the ONNX file %s", args.onnx)
        device = None if args.device == "auto" else args.device
        return OnnxPredictor(args.onnx, batch_size=args.batch_size, threshold=args.threshold, device=device)
    if args.checkpoint is None:
        raise UserError("give --checkpoint CKPT (an irsam2 checkpoint) or --onnx FILE (an irsam2 export)")
    from irsam2.engine.inference import Predictor

    return Predictor.from_checkpoint(
        args.checkpoint, device=args.device, batch_size=args.batch_size, threshold=args.threshold
    )


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from irsam2.data.io import write_mask
    from irsam2.engine.inference import render_overlay
    from irsam2.engine.run_dir import check_output, clear_entries

    out = Path(args.out)
    mode = check_output(out, overwrite=args.overwrite, ours=PREDICT_FILES)
    source = FrameSource(args.inputs, recursive=args.recursive, video_step=args.video_step)
    runner = make_runner(args)
    if mode == "replace":  # inputs and model are good: replace the old predictions
        clear_entries(out, PREDICT_FILES)
    folders = {
        name: out / name for name in ("masks", "targets") + (() if args.no_overlays else ("overlays",))
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    engine = f"onnxruntime {runner.providers}" if args.onnx is not None else f"torch on {runner.device}"
    print(
        f"irsam2 predict: {len(source)} frames from {len(source.entries)} inputs, {engine}, "
        f"batch {args.batch_size}"
    )

    summary, n_targets = [], 0
    start = time.perf_counter()
    bar = progress(total=len(source), desc="predict", unit="frame", disable=args.quiet)
    for pred in runner.predict_stream(source):
        targets = pred.targets()
        n_targets += len(targets)
        h, w = pred.frame.shape
        record = {
            "frame": pred.key,
            **pred.meta,
            "size": [h, w],
            "threshold": runner.threshold,
            "num_targets": len(targets),
            "targets": [t.to_dict() for t in targets],
        }
        write_mask(folders["masks"] / f"{pred.key}.png", pred.mask)
        (folders["targets"] / f"{pred.key}.json").write_text(_frame_json(record))
        if "overlays" in folders:
            overlay = render_overlay(pred.frame, pred.mask, targets)
            Image.fromarray(overlay).save(folders["overlays"] / f"{pred.key}.png")
        summary.append({k: record[k] for k in ("frame", "source", "size", "num_targets")})
        bar.update(1)
    bar.close()
    seconds = time.perf_counter() - start
    summary.sort(key=lambda r: r["frame"])
    meta = {
        "checkpoint": str(args.checkpoint) if args.onnx is None else None,
        "onnx": str(args.onnx) if args.onnx is not None else None,
        "engine": engine,
        "frames": len(summary),
        "targets": n_targets,
        "seconds": round(seconds, 3),
        "frames_per_second": round(len(summary) / seconds, 3) if seconds > 0 else None,
        "skipped": [{"file": f, "error": why} for f, why in source.skipped],
    }
    (out / "summary.json").write_text(json.dumps({**meta, "per_frame": summary}, indent=1) + "\n")
    print(
        f"irsam2 predict: {len(summary)} frames, {n_targets} targets, {seconds:.1f} s "
        f"({meta['frames_per_second']} frames/s) -> {out}"
    )
    if source.skipped:
        import sys

        print(f"irsam2 predict: skipped {len(source.skipped)} unreadable inputs:", file=sys.stderr)
        for f, why in source.skipped:
            print(f"  {why}" if why.startswith(f) else f"  {f}: {why}", file=sys.stderr)
        return 1
    return 0
