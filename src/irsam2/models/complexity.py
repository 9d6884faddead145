"""Model complexity in the paper's convention (paper Table 7, spec section 8).

- Parameters: the per-component table of the spec (raw counts) and the paper's total, which leaves out the
  trunk's two position embeddings, the neck's LayerNorm2d and the q_task token (25,550,841 for ``official``).
- FLOPs: 2 x multiply-accumulates at 1x3x256x256 (the paper's 30.47 G), counted with torch's
  ``FlopCounterMode`` (which already reports 2 x MACs for convolutions and matmuls) plus what it misses:
  scaled-dot-product attention on CPU (QK^T and AV: 2 * 2 * B * heads * Lq * Lk * d) and FFTs (5 N log2 N per
  transform of N points, complex).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# component label -> attribute paths on IRSAM2 (spec section 8 table, in its order)
COMPONENTS: OrderedDict[str, tuple[str, ...]] = OrderedDict(
    [
        ("trunk (Hiera-Tiny blocks 0-9, patch and position embeddings)", ("trunk",)),
        ("detail branch d0", ("detail0",)),
        ("detail branch d1", ("detail1",)),
        ("detail branch d2", ("detail2",)),
        ("self-prompt PG(96)", ("prompt1",)),
        ("self-prompt PG(192)", ("prompt2",)),
        ("RC(96->192) for f3", ("fuse3",)),
        ("RC(192->384) for f4", ("fuse4",)),
        ("neck (F_in)", ("neck",)),
        ("positional encoding from d0", ("dense_pe.branch0",)),
        ("positional encoding from d1", ("dense_pe.branch1",)),
        ("positional encoding from d2", ("dense_pe.branch2",)),
        ("positional encoding grouped fusion", ("dense_pe.fuse",)),
        ("CQG refine", ("cqg.refine",)),
        ("q_task token", ("cqg.q_task",)),
        ("two-way transformer", ("transformer",)),
        ("upscale", ("upscale",)),
        ("hypernetwork", ("hyper",)),
        ("projection", ("project",)),
        ("skip-conv SK(96)", ("skip2",)),
        ("skip-conv SK(48)", ("skip1",)),
        ("skip-conv SK(24)", ("skip0",)),
        ("up-block UP(96)", ("up2",)),
        ("up-block UP(48)", ("up1",)),
        ("up-block UP(24)", ("up0",)),
        ("mask heads", ("mask_head2", "mask_head1", "mask_head0")),
        ("RHPM head stem", ("head.stem",)),
        ("RHPM head fusion conv", ("head.fusion",)),
    ]
)

# Parameters the paper's count leaves out (spec section 8).
PAPER_EXCLUDED = (
    "trunk.pos_embed",
    "trunk.pos_embed_window",
    "neck.1.weight",
    "neck.1.bias",
    "cqg.q_task.weight",
)


def _module(model: nn.Module, path: str) -> nn.Module | None:
    try:
        return model.get_submodule(path)
    except AttributeError:
        return None


def _is_irsam2(model: nn.Module) -> bool:
    """The component tables and the paper's exclusions name IR-SAM2's parts: other networks reuse some
    attribute names (ACM's ``head``, SCTransNet's ``transformer``) for different things."""
    from irsam2.models.irsam2 import IRSAM2

    return isinstance(model, IRSAM2)


def component_parameters(model: nn.Module) -> OrderedDict[str, int]:
    """Raw parameter count per component of the spec's table (0 for a component the preset leaves out);
    empty for a network that is not IR-SAM2."""
    out: OrderedDict[str, int] = OrderedDict()
    if not _is_irsam2(model):
        return out
    for label, paths in COMPONENTS.items():
        mods = [m for m in (_module(model, p) for p in paths) if m is not None]
        out[label] = sum(p.numel() for m in mods for p in m.parameters())
    return out


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """``{"paper", "raw", "trainable"}`` counts; ``paper`` drops the parameters in ``PAPER_EXCLUDED`` (IR-SAM2
    only: another network's ``paper`` count is its raw count)."""
    named = dict(model.named_parameters())
    raw = sum(p.numel() for p in named.values())
    excluded = sum(named[n].numel() for n in PAPER_EXCLUDED if n in named) if _is_irsam2(model) else 0
    trainable = sum(p.numel() for p in named.values() if p.requires_grad)
    return {"paper": raw - excluded, "raw": raw, "trainable": trainable}


# Coarser groups for the FLOP table (attribute paths on IRSAM2).
FLOP_COMPONENTS: OrderedDict[str, tuple[str, ...]] = OrderedDict(
    [
        ("trunk (Hiera-Tiny blocks 0-9)", ("trunk",)),
        ("detail branch d0/d1/d2", ("detail0", "detail1", "detail2")),
        ("self-prompts PG(96)/PG(192)", ("prompt1", "prompt2")),
        ("stage fusions RC for f3/f4", ("fuse3", "fuse4")),
        ("neck", ("neck",)),
        ("positional encoding", ("dense_pe",)),
        ("CQG (RHPM + top-K + refine)", ("cqg",)),
        ("two-way transformer", ("transformer",)),
        ("upscale/hypernetwork/projection", ("upscale", "hyper", "project")),
        ("skip-convs", ("skip2", "skip1", "skip0")),
        ("up-blocks", ("up2", "up1", "up0")),
        ("mask heads", ("mask_head2", "mask_head1", "mask_head0")),
        ("RHPM head (3 RHPM + convs)", ("head",)),
    ]
)

aten = torch.ops.aten


def _sdpa_cpu_flops(q_shape, k_shape, v_shape, *args: Any, out_shape=None, **kwargs: Any) -> int:
    """QK^T and AV of scaled-dot-product attention: 2 * B * heads * Lq * Lk * (E + Ev)."""
    *batch, lq, e = q_shape
    lk, ev = k_shape[-2], v_shape[-1]
    return 2 * math.prod(batch) * lq * lk * (e + ev)


def _fft_flops(x_shape, dim, *args: Any, out_shape=None, **kwargs: Any) -> int:
    """5 N log2 N per transform of N points (N: product of the transformed sizes), times their number."""
    dims = [d % len(x_shape) for d in dim]
    n = math.prod(x_shape[d] for d in dims)
    # c2r: the output carries the full last-dim length
    if out_shape is not None and len(out_shape) == len(x_shape):
        n = max(n, math.prod(out_shape[d] for d in dims))
    batch = math.prod(x_shape) // max(1, math.prod(x_shape[d] for d in dims))
    return int(5 * batch * n * math.log2(max(n, 2)))


EXTRA_FLOP_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops,
    aten._fft_c2c: _fft_flops,
    aten._fft_r2c: _fft_flops,
    aten._fft_c2r: _fft_flops,
}
ATTENTION_OPS = (
    aten._scaled_dot_product_flash_attention_for_cpu,
    aten._scaled_dot_product_flash_attention,
    aten._scaled_dot_product_efficient_attention,
    aten._scaled_dot_product_cudnn_attention,
)
FFT_OPS = (aten._fft_c2c, aten._fft_r2c, aten._fft_c2r)


def _subtree_flops(totals: dict[str, int], name: str) -> int:
    """FLOPs under module ``name``; where the module itself was never called (the IR-SAM2 forward steps the
    trunk's blocks one by one), the sum over its outermost called descendants."""
    if name in totals:
        return totals[name]
    inside = [k for k in totals if k.startswith(name + ".")]
    outermost = [k for k in inside if not any(k.startswith(o + ".") for o in inside if o != k)]
    return sum(totals[k] for k in outermost)


def count_flops(
    model: nn.Module, size: tuple[int, int] = (256, 256), batch: int = 1, head: bool | None = True
) -> dict[str, Any]:
    """FLOPs (2 x MACs) of one forward pass at ``batch x 3 x size``, in the paper's convention.

    ``head``: open the RHPM head's gate for the count (True, the full model as the paper counts it), close it
    (False), or leave the model's gate as it is (None). Returns ``{"total", "attention", "fft", "macs",
    "components": {label: flops}, "other": flops outside the listed components}``; ``components`` is empty
    (and ``other`` the total) for a network that is not IR-SAM2.
    """
    was_training = model.training
    gate = getattr(model, "head_enabled", None)
    model.eval()
    if head is not None and hasattr(model, "set_head_enabled"):
        model.set_head_enabled(head)
    p = next(model.parameters())
    x = torch.zeros(batch, 3, *size, device=p.device, dtype=p.dtype)
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
            model(x)
    finally:
        model.train(was_training)
        if gate is not None:
            model.set_head_enabled(gate)
    counts = counter.get_flop_counts()
    root = type(model).__name__
    total = counter.get_total_flops()
    glob = counts.get("Global", {})
    components: OrderedDict[str, int] = OrderedDict()
    totals = {name: sum(ops.values()) for name, ops in counts.items()}
    for label, paths in FLOP_COMPONENTS.items() if _is_irsam2(model) else ():
        components[label] = sum(_subtree_flops(totals, f"{root}.{path}") for path in paths)
    return {
        "total": total,
        "macs": total // 2,
        "attention": sum(v for k, v in glob.items() if k in ATTENTION_OPS),
        "fft": sum(v for k, v in glob.items() if k in FFT_OPS),
        "components": components,
        "other": total - sum(components.values()),
        "input": [batch, 3, *size],
    }


__all__ = [
    "COMPONENTS",
    "FLOP_COMPONENTS",
    "PAPER_EXCLUDED",
    "component_parameters",
    "count_flops",
    "parameter_counts",
]
