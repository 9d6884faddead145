"""Loading official SAM2 Hiera-Tiny checkpoints (spec section 2) from files the tests write themselves."""

from __future__ import annotations

import logging

import pytest
import timm
import torch

from irsam2.checkpoint import atomic_save, model_payload
from irsam2.models import create_model, load_sam2_checkpoint
from irsam2.models.complexity import parameter_counts
from irsam2.utils import UserError

TRUNK_PARAMS = 13_263_552


def _official_state_dict(timm_model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm's HieraDet state dict under Meta's SAM2 names, plus some non-trunk SAM2 keys."""
    sd = {}
    for k, v in timm_model.state_dict().items():
        if k.startswith("head."):
            continue
        k = k.replace("mlp.fc1.", "mlp.layers.0.").replace("mlp.fc2.", "mlp.layers.1.")
        sd[f"image_encoder.trunk.{k}"] = v.clone()
    sd["image_encoder.neck.convs.0.conv.weight"] = torch.randn(256, 768, 1, 1)
    sd["sam_mask_decoder.iou_token.weight"] = torch.randn(1, 256)
    sd["memory_attention.layers.0.norm1.weight"] = torch.randn(256)
    sd["no_mem_embed"] = torch.randn(1, 1, 256)
    return sd


@pytest.fixture(scope="module")
def hiera_tiny() -> torch.nn.Module:
    torch.manual_seed(123)
    return timm.create_model("sam2_hiera_tiny", pretrained=False, num_classes=0).eval()


@pytest.fixture(scope="module")
def tiny_ckpt(hiera_tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("sam2") / "sam2_hiera_tiny.pt"
    atomic_save({"model": _official_state_dict(hiera_tiny)}, path)
    return path


def test_trunk_matches_timm_after_loading(hiera_tiny, tiny_ckpt, caplog):
    model = create_model("irsam2_t_base")
    with caplog.at_level(logging.INFO, logger="irsam2"):
        summary = load_sam2_checkpoint(model, tiny_ckpt)
    # 10 blocks x 12 tensors + 2 stage-change projections x 2 + patch weight/bias + 2 position embeddings:
    # 128; stage 4 (blocks 10, 11) = 14 + 12 tensors
    assert summary == {"loaded": 128, "ignored_stage4": 26, "ignored_non_trunk": 4, "frozen": True}
    assert "ignored on purpose" in caplog.text
    assert model.trunk_frozen

    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ref = hiera_tiny.patch_embed(x)
        ref = hiera_tiny._pos_embed(ref)
        for blk in hiera_tiny.blocks[:10]:
            ref = blk(ref)
        ours = model.trunk(x)
    assert ours.shape == (2, 4, 6, 384)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_create_model_pretrained_freezes_by_default(tiny_ckpt):
    model = create_model("irsam2_t", pretrained=tiny_ckpt)
    counts = parameter_counts(model)
    assert counts["trainable"] == counts["raw"] - TRUNK_PARAMS == 12_298_905  # release: 12.31 M (spare conv)
    assert model.trunk.blocks[4].attn.qkv.weight.requires_grad is False
    model = create_model("irsam2_t", pretrained=tiny_ckpt, freeze_trunk=False)
    assert parameter_counts(model)["trainable"] == counts["raw"]
    model = create_model("irsam2_t")
    load_sam2_checkpoint(model, tiny_ckpt, freeze=False)
    assert not model.trunk_frozen


def test_hiera_small_checkpoint_is_refused(tmp_path):
    torch.manual_seed(0)
    small = timm.create_model("sam2_hiera_small", pretrained=False, num_classes=0)
    path = tmp_path / "sam2_hiera_small.pt"
    atomic_save({"model": _official_state_dict(small)}, path)
    with pytest.raises(UserError, match=r"unexpected trunk keys: blocks\.12\..*16 blocks.*Hiera-Small"):
        load_sam2_checkpoint(create_model("irsam2_t_base"), path)


def test_truncated_file(tiny_ckpt, tmp_path):
    data = tiny_ckpt.read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"cut\.pt: the checkpoint is truncated or corrupt"):
        load_sam2_checkpoint(create_model("irsam2_t_base"), path)


def test_files_that_are_not_sam2_checkpoints(tmp_path):
    model = create_model("irsam2_t_base")
    text = tmp_path / "notes.txt"
    text.write_text("this is not a checkpoint\n")
    with pytest.raises(UserError, match=r"notes\.txt: not a PyTorch checkpoint"):
        load_sam2_checkpoint(model, text)
    tensor = atomic_save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(UserError, match=r"tensor\.pt: not a SAM2 checkpoint: it holds a Tensor"):
        load_sam2_checkpoint(model, tensor)
    other = atomic_save({"model": {"backbone.conv1.weight": torch.zeros(1)}}, tmp_path / "resnet.pt")
    with pytest.raises(UserError, match=r"resnet\.pt: no image_encoder\.trunk\.\* keys.*backbone\.conv1"):
        load_sam2_checkpoint(model, other)
    ours = atomic_save(model_payload(model), tmp_path / "irsam2.pt")
    with pytest.raises(UserError, match=r"irsam2\.pt: this is an irsam2 checkpoint"):
        load_sam2_checkpoint(model, ours)
    with pytest.raises(UserError, match=r"missing\.pt: no such checkpoint file"):
        load_sam2_checkpoint(model, tmp_path / "missing.pt")


def test_missing_and_mismatched_keys_are_named(hiera_tiny, tmp_path):
    sd = _official_state_dict(hiera_tiny)
    del sd["image_encoder.trunk.blocks.3.attn.qkv.weight"]
    sd["image_encoder.trunk.blocks.5.norm1.weight"] = torch.zeros(97)
    sd["image_encoder.trunk.blocks.2.attn.extra"] = torch.zeros(1)
    path = atomic_save({"model": sd}, tmp_path / "edited.pt")
    model = create_model("irsam2_t_base")
    before = {k: v.clone() for k, v in model.trunk.state_dict().items()}
    with pytest.raises(UserError) as err:
        load_sam2_checkpoint(model, path)
    msg = str(err.value)
    assert "missing trunk keys: blocks.3.attn.qkv.weight" in msg
    assert "unexpected trunk keys: blocks.2.attn.extra" in msg
    assert "blocks.5.norm1.weight (97,) vs (384,)" in msg
    # nothing was loaded and nothing frozen on failure
    assert all(torch.equal(before[k], v) for k, v in model.trunk.state_dict().items())
    assert not model.trunk_frozen
