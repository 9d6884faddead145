"""The Hiera trunk's padded-window blocks against timm's: one attention, padding kept out of its layers."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
from timm.models.hieradet_sam2 import MultiScaleBlock

from irsam2.models.hiera import TIMM_KWARGS, HieraTrunk, PaddedWindowBlock


@pytest.fixture(scope="module")
def timm_block() -> MultiScaleBlock:
    """Block 4 of SAM2 Hiera-Tiny: stage 3, 384 channels, 4 heads, 14 x 14 windows, no q-pooling."""
    torch.manual_seed(0)
    full = timm.create_model("sam2_hiera_tiny", pretrained=False, num_classes=0, **TIMM_KWARGS)
    blk = full.blocks[4]
    assert blk.window_size == (14, 14) and blk.pool is None and blk.attn.num_heads == 4
    with torch.no_grad():  # timm initialises the qkv bias to zero: make the padded tokens' values non-trivial
        blk.attn.qkv.bias.normal_(0.0, 0.5)
    return blk


def _pair(blk: MultiScaleBlock) -> tuple[MultiScaleBlock, MultiScaleBlock]:
    ours = copy.deepcopy(blk)
    ours.__class__ = PaddedWindowBlock
    return blk, ours


@pytest.mark.parametrize(
    "hw",
    [(4, 4), (8, 6), (14, 5), (16, 16), (22, 30)],
    ids=["one-window", "one-window-rect", "one-window-edge", "four-windows", "six-windows"],
)
def test_padded_windows_equal_timm(timm_block, hw):
    ref, ours = _pair(timm_block)
    x = torch.randn(2, *hw, 384, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y_ref, y = ref(x), ours(x2)
    torch.testing.assert_close(y, y_ref, atol=2e-5, rtol=1e-5)
    g = torch.randn_like(y_ref)
    y_ref.backward(g)
    ref_grads = {n: p.grad.clone() for n, p in ref.named_parameters()}
    ref.zero_grad()
    y.backward(g)
    torch.testing.assert_close(x2.grad, x.grad, atol=2e-5, rtol=1e-4)
    for n, p in ours.named_parameters():  # the bias gets the padded tokens' share of the gradient too
        torch.testing.assert_close(p.grad, ref_grads[n], atol=1e-4, rtol=1e-4, msg=n)
    ours.zero_grad()


def test_maps_that_fill_their_windows_take_timms_path(timm_block):
    ref, ours = _pair(timm_block)
    x = torch.randn(1, 14, 28, 384)
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))


def test_trunk_uses_the_padded_window_form_and_keeps_sam2_names():
    trunk = HieraTrunk()
    assert all(isinstance(b, PaddedWindowBlock) for b in trunk.blocks)
    names = set(trunk.state_dict())
    assert {"blocks.4.attn.qkv.weight", "blocks.4.attn.qkv.bias", "blocks.4.mlp.layers.0.weight"} <= names
    clone = copy.deepcopy(trunk)  # the class swap survives copies (EMA, sweeps)
    assert isinstance(clone.blocks[4], PaddedWindowBlock)
