"""ONNX export of the frame model and an onnxruntime runner (`irsam2 export`, `irsam2 predict --onnx`).

The exported graph is :class:`irsam2.engine.inference.FrameModel`: input ``frame`` ``(B, 1, H, W)`` float32
in [0, 1], output ``logits`` ``(B, 1, H, W)``; the checkpoint's normalisation and the 3-channel replication
are inside the graph, so a caller needs nothing but the frame. The batch dimension is dynamic; H x W is
fixed at export time (``--size``, default 256 x 256, multiples of 32; see `export_onnx` for why). The runner
pads a frame with the training mean (0 after normalisation, as evaluation pads) up to that size and crops
the logits back; a frame larger than the export size is refused with a message to re-export at a larger
size.

The export goes through the dynamo exporter (``torch.onnx.export(..., dynamo=True)``), which translates the
FFTs of the RHPM head (spec section 6). Two ops of RHPM have no ONNX translation in torch and get one here:
``aten.searchsorted`` (for a sorted ``s`` and value ``v``, the count of ``s < v``, ``<=`` for
``right=True``: an exact reformulation) and the stable ``aten.sort`` behind ``argsort(stable=True)``
(``TopK`` over the axis). A third, the global ``aten.adaptive_max_pool2d`` of the RC blocks, has one only
from torch 2.14 on, and gets one here for older torch (``ReduceMax`` and ``ArgMax``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from irsam2.engine.inference import MULTIPLE, FrameRunner, pad_to_multiple
from irsam2.utils import UserError

logger = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4  # largest |onnxruntime - torch| on the logits accepted by `irsam2 export`
INPUT_NAME, OUTPUT_NAME = "frame", "logits"


def _searchsorted_onnx(sorted_sequence, values, out_int32=False, right=False, side=None, sorter=None):  # noqa: ANN001, ANN202
    """ONNX translation of ``aten.searchsorted.Tensor``: the count of entries below each value."""
    from onnxscript import INT32, INT64
    from onnxscript import opset18 as op

    if sorter is not None:
        raise NotImplementedError("searchsorted with a sorter has no ONNX translation here")
    s = op.Unsqueeze(sorted_sequence, [-2])  # (..., 1, N)
    v = op.Unsqueeze(values, [-1])  # (..., K, 1)
    below = op.LessOrEqual(s, v) if (right or side == "right") else op.Less(s, v)
    count = op.ReduceSum(op.Cast(below, to=INT64.dtype), [-1], keepdims=0)
    return op.Cast(count, to=INT32.dtype) if out_int32 else count


def _sort_onnx(self, stable=None, dim=-1, descending=False):  # noqa: ANN001, ANN202
    """ONNX translation of ``aten.sort.stable`` (``argsort(stable=True)``) through ``TopK`` over the axis.

    ``TopK`` does not promise a stable order among equal keys. RHPM sorts radii, and the cutoff radius it
    reads does not depend on the order inside a group of equal radii (see ``irsam2.models.rhpm``); the parity
    check of `irsam2 export` verifies the result.
    """
    from onnxscript import opset18 as op

    k = op.Gather(op.Shape(self), [dim])
    values, indices = op.TopK(self, k, axis=dim, largest=int(bool(descending)), sorted=1)
    return values, indices


def _global_max_pool_onnx(self, output_size):  # noqa: ANN001, ANN202
    """ONNX translation of ``aten.adaptive_max_pool2d`` to 1 x 1 (the channel attention of the RC blocks),
    which torch's exporter leaves untranslated before torch 2.14 ("No decompositions registered", torch
    2.11): the maximum over H x W and the flat index of where it is."""
    from onnxscript import opset18 as op

    if list(output_size) != [1, 1]:
        raise NotImplementedError(
            f"adaptive_max_pool2d to {list(output_size)}: only 1 x 1 is translated here"
        )
    values = op.ReduceMax(self, [-2, -1], keepdims=1)
    indices = op.Unsqueeze(op.ArgMax(op.Reshape(self, [0, 0, -1]), axis=-1, keepdims=1), [-1])
    return values, indices


def _custom_translations() -> dict:
    import torch

    return {
        torch.ops.aten.searchsorted.Tensor: _searchsorted_onnx,
        torch.ops.aten.sort.stable: _sort_onnx,
        torch.ops.aten.adaptive_max_pool2d.default: _global_max_pool_onnx,
    }


def export_onnx(
    model: Any,
    norm: dict,
    path: str | os.PathLike,
    height: int = 256,
    width: int = 256,
    opset: int = 18,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export ``model`` (an IR-SAM2 in eval mode) wrapped as a frame model to ``path``.

    The batch dimension is dynamic; height and width are fixed at ``height x width`` (multiples of 32).
    Symbolic sizes are not exported: with torch 2.14 the RHPM radius grid and its ``fftshift`` are specialised
    to the example size by the exporter, which gives wrong results (not errors) at other sizes. Returns
    ``{"path", "seconds"}``.
    """
    import torch

    from irsam2.engine.inference import FrameModel

    if height % MULTIPLE or width % MULTIPLE or height <= 0 or width <= 0:
        raise UserError(f"export size {height}x{width}: both must be positive multiples of {MULTIPLE}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame_model = FrameModel(model, norm["mean"], norm["std"]).eval()
    example = torch.rand(2, 1, height, width)
    start = time.perf_counter()
    program = torch.onnx.export(
        frame_model,
        (example,),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
        custom_translation_table=_custom_translations(),
        opset_version=opset,
        verbose=False,
        optimize=True,
    )
    meta = {
        "irsam2.input": f"{INPUT_NAME} (B, 1, {height}, {width}) float32 in [0, 1]; pad with the mean",
        "irsam2.output": f"{OUTPUT_NAME} (B, 1, {height}, {width}) float32, target where > 0",
        "irsam2.norm": json.dumps({"mean": float(norm["mean"]), "std": float(norm["std"])}),
        "irsam2.export_size": f"{height}x{width}",
    }
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    for key, value in meta.items():
        program.model.metadata_props[key] = value
    program.save(str(path))
    return {"path": str(path), "seconds": time.perf_counter() - start}


def _session(path: str | os.PathLike, device: str | None = None):  # noqa: ANN202
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise UserError("onnxruntime is not installed: pip install 'irsam2[onnx]'") from e
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such ONNX file")
    available = ort.get_available_providers()
    want_cuda = device in (None, "auto") or str(device).startswith("cuda")
    providers = ["CPUExecutionProvider"]
    if want_cuda and "CUDAExecutionProvider" in available:
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), providers=providers)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise UserError(f"{path}: not a loadable ONNX model: {str(e).splitlines()[0][:300]}") from e


class OnnxPredictor(FrameRunner):
    """Runs an exported frame model with onnxruntime: NumPy in, NumPy out, no torch in the loop."""

    def __init__(
        self, path: str | os.PathLike, batch_size: int = 8, threshold: float = 0.0, device: str | None = None
    ) -> None:
        super().__init__(batch_size, threshold)
        self.path = Path(path)
        self.session = _session(path, device)
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise UserError(f"{path}: not an irsam2 export (expected one (B, 1, H, W) input)")
        self.input_name = inputs[0].name
        shape = inputs[0].shape
        self.fixed_size = (
            (shape[2], shape[3]) if isinstance(shape[2], int) and isinstance(shape[3], int) else None
        )
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        try:  # pad with the training mean (0 after normalisation), as the torch Predictor does
            self.pad_value = float(json.loads(self.metadata["irsam2.norm"])["mean"])
        except (KeyError, ValueError, TypeError):
            logger.warning("%s: no irsam2.norm metadata; padding frames with 0", path)

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def run_batch(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        h, w = x.shape[2:]
        if self.fixed_size is None or (h, w) == self.fixed_size:
            return self.session.run(None, {self.input_name: x})[0]
        fh, fw = self.fixed_size
        if h > fh or w > fw:
            raise UserError(
                f"{self.path}: exported for {fh}x{fw} frames; a {h}x{w} (padded) frame does not fit: "
                f"re-export with `irsam2 export --size {max(h, fh)} {max(w, fw)}`"
            )
        x = np.pad(x, ((0, 0), (0, 0), (0, fh - h), (0, fw - w)), constant_values=self.pad_value)
        return self.session.run(None, {self.input_name: x})[0][:, :, :h, :w]


def check_parity(
    frame_model: Any, runner: OnnxPredictor, frames: list[np.ndarray], batch_size: int = 2
) -> dict[str, float]:
    """Largest and mean |onnxruntime - torch| of the logits over ``frames`` (each ``(H, W)`` in [0, 1]).

    Each frame is padded (training mean) to the export size, exactly the input the runner gives onnxruntime,
    and the frames go in batches of ``batch_size`` (a batch size other than the export's 2 exercises the
    dynamic batch).
    """
    import torch

    worst, total, count = 0.0, 0.0, 0
    frame_model = frame_model.eval()
    padded = []
    for f in frames:
        p = pad_to_multiple(np.asarray(f, dtype=np.float32), value=runner.pad_value)
        if runner.fixed_size is not None:
            fh, fw = runner.fixed_size
            if p.shape[0] > fh or p.shape[1] > fw:
                p = p[:fh, :fw]  # a check frame larger than the export size: compare on its top-left part
            p = np.pad(p, ((0, fh - p.shape[0]), (0, fw - p.shape[1])), constant_values=runner.pad_value)
        padded.append(p)
    groups: dict[tuple[int, ...], list[np.ndarray]] = {}
    for p in padded:
        groups.setdefault(p.shape, []).append(p)
    for group in groups.values():
        for i in range(0, len(group), batch_size):
            x = np.stack(group[i : i + batch_size])[:, None]
            with torch.inference_mode():
                ref = frame_model(torch.from_numpy(x)).float().numpy()
            got = runner.session.run(None, {runner.input_name: x})[0]
            diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
            worst = max(worst, float(diff.max()))
            total += float(diff.sum())
            count += diff.size
    return {"max_abs_diff": worst, "mean_abs_diff": total / max(count, 1), "frames": len(frames)}
