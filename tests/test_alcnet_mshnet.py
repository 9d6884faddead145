"""What the shared model tester (test_model_zoo.py) does not cover for ALCNet and MSHNet: ALCNet's
parameter-free local contrast layer on known inputs, and MSHNet's multi-scale head."""

from __future__ import annotations

import torch

from irsam2.losses import build_loss
from irsam2.models import create_model, model_recipe
from irsam2.models.alcnet import local_contrast, multiscale_local_contrast


def _point(h: int = 32, w: int = 32, value: float = 1.0) -> torch.Tensor:
    x = torch.zeros(1, 1, h, w)
    x[0, 0, h // 2, w // 2] = value
    return x


def test_local_contrast_of_a_point_target() -> None:
    x = _point()
    lc = local_contrast(x, 3)
    # the target: both neighbours at distance 3 are background in every direction -> (0 - 1)(0 - 1) = 1
    assert lc[0, 0, 16, 16] == 1.0
    # a pixel 3 away from the target sees it on one side only: (1 - 0)(0 - 0) = 0
    assert lc[0, 0, 16, 19] == 0.0 and lc[0, 0, 13, 13] == 0.0
    assert lc.sum() == 1.0
    # a dark point gives the same positive contrast (the product of two negative differences)
    assert torch.equal(local_contrast(-x, 3), lc)


def test_local_contrast_rejects_edges_and_flat_background() -> None:
    flat = torch.full((1, 2, 16, 16), 0.7)
    assert torch.equal(local_contrast(flat, 2), torch.zeros_like(flat))
    # a vertical bright line: along the line (direction (1, 0)) the neighbours are as bright as the centre,
    # so the minimum over directions is 0 on the line: a line is not a point target
    line = torch.zeros(1, 1, 16, 16)
    line[..., :, 8] = 1.0
    assert local_contrast(line, 2).abs().max() == 0.0


def test_local_contrast_is_cyclic_and_parameter_free() -> None:
    # a target in the corner: its neighbours wrap around the map; the contrast is the same as in the middle
    x = _point()
    corner = torch.roll(x, shifts=(16, 16), dims=(-2, -1))
    assert torch.equal(
        local_contrast(corner, 5), torch.roll(local_contrast(x, 5), shifts=(16, 16), dims=(-2, -1))
    )
    # shifts larger than the map wrap modulo its size (small inputs)
    assert torch.equal(local_contrast(x, 32 + 3), local_contrast(x, 3))
    # multi-scale: the maximum over the shifts, per channel
    y = torch.randn(2, 3, 24, 20)
    ms = multiscale_local_contrast(y, (2, 5))
    assert torch.equal(ms, torch.maximum(local_contrast(y, 2), local_contrast(y, 5)))
    net = create_model("alcnet")
    assert net.shifts == (13, 17)


def test_alcnet_backbone_resolutions() -> None:
    net = create_model("alcnet").eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        c1 = net.layer1(net.stem(x))
        c2 = net.layer2(c1)
        c3 = net.layer3(c2)
    assert c1.shape == (1, 16, 64, 96) and c2.shape == (1, 32, 32, 48) and c3.shape == (1, 64, 16, 24)


def test_mshnet_multi_scale_head() -> None:
    net = create_model("mshnet").train()
    x = torch.randn(2, 3, 64, 64)
    outs = net(x)
    # the final prediction first, then one per decoder scale, all at the input size
    assert len(outs) == 5 and all(o.shape == (2, 1, 64, 64) for o in outs)
    # each scale's logits come from its decoder level: full, 1/2, 1/4 and 1/8 resolution before upsampling
    sizes = []
    hooks = [
        h.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[-2:]))) for h in net.scale_heads
    ]
    outs = net(x)
    for h in hooks:
        h.remove()
    assert sizes == [(64, 64), (32, 32), (16, 16), (8, 8)]
    # SLS (the paper's loss, and the recipe's) supervises all five outputs
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 30:34, 40:43] = 1
    loss = build_loss("sls")(outs, {"mask": mask})
    loss.backward()
    assert all(h.weight.grad is not None and h.weight.grad.abs().sum() > 0 for h in net.scale_heads)


def test_recipes() -> None:
    assert model_recipe("mshnet")["loss.name"] == "sls"
    assert model_recipe("alcnet")["loss.name"] == "soft_iou"
    assert model_recipe("alcnet")["optim.name"] == model_recipe("mshnet")["optim.name"] == "adagrad"
