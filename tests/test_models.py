"""The IR-SAM2 network: one shared tester over every registered preset and variant, plus the contract details
of docs/DESIGN.md (outputs, head gate, config round trip, errors)."""

from __future__ import annotations

import json

import pytest
import torch

import irsam2
from irsam2.checkpoint import atomic_save, model_from_checkpoint, model_payload
from irsam2.models import InputSizeError, ModelConfigError, create_model, list_models
from irsam2.models.complexity import parameter_counts
from irsam2.utils import UserError

VARIANTS = ("official", "paper")
PRESETS = [(name, variant) for name in list_models("irsam2*") for variant in VARIANTS]


def _image(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, h, w, generator=g)


def test_presets_registered():
    assert {"irsam2_t", "irsam2_t_base", "irsam2_t_cqg", "irsam2_t_rhpm"} <= set(list_models())
    assert list_models("irsam2_t_c*") == ["irsam2_t_cqg"]


def test_official_parameter_total():
    counts = parameter_counts(create_model("irsam2_t", "official"))
    assert counts["raw"] == 25_562_457 and counts["paper"] == 25_550_841
    assert counts["trainable"] == counts["raw"]  # no SAM2 weights: the trunk trains


@pytest.mark.parametrize("name,variant", PRESETS)
def test_model_contract(name: str, variant: str, tmp_path):
    """Shared tester: forward/backward, sizes, bad size, determinism, batch independence, save/load."""
    torch.manual_seed(0)
    model = create_model(name, variant)
    model.set_head_enabled(True)  # exercise the head where the preset has one
    assert model.head_enabled == (model.head is not None)
    assert (model.head is not None) == (name in ("irsam2_t", "irsam2_t_rhpm", "irsam2_t_notrunk"))
    assert model.cqg.enabled == (name in ("irsam2_t", "irsam2_t_cqg", "irsam2_t_notrunk"))
    assert (model.trunk is None) == (name == "irsam2_t_notrunk")

    # training step, batch 2: three (B, 1, H, W) logits, gradients reach every trainable parameter
    model.train()
    outs = model(_image(2, 64, 64))
    assert isinstance(outs, tuple) and len(outs) == 3
    for o in outs:
        assert o.shape == (2, 1, 64, 64) and torch.isfinite(o).all()
    sum(o.square().mean() for o in outs).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"

    # a clear error naming the size
    with pytest.raises(InputSizeError, match="100x100"):
        model(_image(1, 100, 100))

    model.eval()
    with torch.no_grad():
        # non-square 96x160 and 128x128, batch 1
        assert all(o.shape == (1, 1, 96, 160) for o in model(_image(1, 96, 160, seed=1)))
        assert all(o.shape == (1, 1, 128, 128) for o in model(_image(1, 128, 128, seed=1)))
        # deterministic in eval mode; a sample's output does not depend on its batch neighbours
        xb = _image(2, 64, 64, seed=2)
        batched, again, single = model(xb), model(xb), model(xb[1:])
    assert all(torch.equal(p, q) for p, q in zip(batched, again))
    for p, q in zip(batched, single):
        torch.testing.assert_close(p[1:], q, atol=1e-4, rtol=1e-4)

    # save / load round trip through irsam2.checkpoint
    json.dumps(model.config)
    path = atomic_save(model_payload(model), tmp_path / "m.pt")
    loaded, _ = model_from_checkpoint(path)
    assert loaded.config == model.config and loaded.head_enabled == model.head_enabled
    with torch.no_grad():
        for p, q in zip(batched, loaded(xb)):
            torch.testing.assert_close(p, q, atol=0, rtol=0)


def test_training_step_128_batch_1():
    model = create_model("irsam2_t", freeze_trunk=True)
    model.set_head_enabled(True)
    outs = model(_image(1, 128, 128))
    sum(o.mean() for o in outs).backward()
    assert all(o.shape == (1, 1, 128, 128) for o in outs)
    assert model.trunk.blocks[0].attn.qkv.weight.grad is None  # frozen trunk
    assert (
        model.prompt1.body[0].weight.grad is not None
    )  # gradients pass through the frozen trunk to the prompts


def test_forward_256_full_model():
    model = create_model("irsam2_t").eval()
    model.set_head_enabled(True)
    with torch.no_grad():
        outs = model(_image(1, 256, 256))
    assert [tuple(o.shape) for o in outs] == [(1, 1, 256, 256)] * 3


def test_head_gate_and_outputs():
    torch.manual_seed(0)
    model = create_model("irsam2_t").eval()
    assert model.head_enabled is False  # official: closed until the engine opens it
    x = _image(1, 64, 64)
    with torch.no_grad():
        final_off, m1, m2 = model(x)
        mask0, mask1, mask2 = model.decode(*model.encode(x), (64, 64))
        torch.testing.assert_close(final_off, mask0)
        torch.testing.assert_close(m1, mask1)
        model.set_head_enabled(True)
        final_on, m1_on, _ = model(x)
        p = model.head.fusion(torch.cat([mask0, mask1, mask2], 1))
    torch.testing.assert_close(m1_on, m1)
    assert not torch.allclose(final_on, final_off)
    assert torch.equal(final_on > 0, p > 0)  # P_final = P (1 + X) has the sign of P (spec 6 note)

    assert create_model("irsam2_t", "paper").head_enabled is True
    ablated = create_model("irsam2_t", rhpm_head=False)
    ablated.set_head_enabled(True)
    assert ablated.head is None and ablated.head_enabled is False


def test_config_rebuilds_architecture():
    model = create_model("irsam2_t_cqg", "paper", topk=5, lambdas=(0.15, 0.25, 0.35), fusion_kernel=3)
    cfg = json.loads(json.dumps(model.config))
    assert cfg == {
        "name": "irsam2_t_cqg",
        "variant": "paper",
        "overrides": {"topk": 5, "lambdas": [0.15, 0.25, 0.35], "fusion_kernel": 3},
    }
    again = create_model(cfg["name"], cfg["variant"], **cfg["overrides"])
    assert again.cfg == model.cfg
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


def test_overrides_change_the_network():
    assert create_model(fusion_kernel=1).head.fusion.kernel_size == (1, 1)
    assert create_model("irsam2_t", "paper").head.fusion.kernel_size == (1, 1)
    m = create_model(rhpm_norm="paper", rhpm_zeroing="<", lambdas=[0.3, 0.2, 0.1], topk=3, cqg_lambda=0.5)
    assert [r.lam for r in m.head.rhpm] == [0.3, 0.2, 0.1]
    assert {r.norm for r in m.head.rhpm} == {"paper"} and m.cqg.rhpm.zeroing == "<"
    assert m.cqg.topk == 3 and m.cqg.rhpm.lam == 0.5
    assert not hasattr(create_model(cqg=False).cqg, "refine")
    assert not hasattr(create_model(head_input="image").head, "stem")


def test_bad_config_errors():
    with pytest.raises(ModelConfigError, match="'frobnicate'"):
        create_model("irsam2_t", frobnicate=1)
    with pytest.raises(UserError, match="unknown model 'irsam2_xl'"):
        create_model("irsam2_xl")
    with pytest.raises(ValueError, match="unknown variant"):
        create_model("irsam2_t", "release")
    with pytest.raises(ModelConfigError, match="lambdas"):
        create_model(lambdas=(0.1, 0.2))
    with pytest.raises(ModelConfigError, match="fusion_kernel"):
        create_model(fusion_kernel=5)
    with pytest.raises(InputSizeError, match=r"\(B, 3, H, W\)"):
        create_model()(torch.zeros(1, 1, 64, 64))


def test_trunk_freezing_without_pretrained():
    assert not create_model().trunk_frozen
    model = create_model(freeze_trunk=True)
    assert model.trunk_frozen
    counts = parameter_counts(model)
    assert counts["trainable"] == counts["raw"] - 13_263_552


def test_package_exports():
    assert irsam2.create_model is create_model
    assert callable(irsam2.load_sam2_checkpoint) and irsam2.list_models() == list_models()


def test_position_embedding_cache_follows_the_weights(tmp_path):
    trunk = create_model("irsam2_t_base").trunk
    with torch.no_grad():
        first = trunk.position_embedding(16, 24)
        assert trunk.position_embedding(16, 24) is first  # cached in inference
        trunk.pos_embed.add_(1.0)  # any in-place update (optimizer step, weight load) invalidates it
        second = trunk.position_embedding(16, 24)
    torch.testing.assert_close(second, trunk._position_embedding(16, 24))
    assert not torch.allclose(first, second)
    emb = trunk.position_embedding(16, 24)  # with gradients on and trainable embeddings: computed, not cached
    assert emb.requires_grad and emb is not trunk.position_embedding(16, 24)
