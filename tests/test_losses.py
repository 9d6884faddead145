"""Tests of irsam2.losses (spec section 7): SLS, target-centric loss, CSA, Table 3 losses, schedule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from irsam2.losses import LOSSES, LossFlags, LossSchedule, build_loss
from irsam2.losses.sls import location_term, scale_terms
from irsam2.losses.target_centric import (
    TargetCentricLoss,
    draw_margins,
    gather_bilinear,
    gather_nearest,
    importance,
    patch_boxes,
    patch_index,
)
from irsam2.utils import UserError

EIGHT = np.ones((3, 3), dtype=int)  # 8-connectivity


def make_batch(masks: np.ndarray, image: torch.Tensor | None = None, margin: int = 3) -> dict:
    """A collated batch as irsam2.data would build it; components found here, in the test, with scipy."""
    b, h, w = masks.shape
    if image is None:
        image = torch.zeros(b, 3, h, w)
    boxes, box_batch, areas, contrasts = [], [], [], []
    for i in range(b):
        lab, n = ndi.label(masks[i], structure=EIGHT)
        for sl, k in zip(ndi.find_objects(lab), range(1, n + 1)):
            y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
            boxes.append([x0, y0, x1, y1])
            box_batch.append(i)
            areas.append(float((lab == k).sum()))
            py0, py1, px0, px1 = (
                max(y0 - margin, 0),
                min(y1 + margin, h),
                max(x0 - margin, 0),
                min(x1 + margin, w),
            )
            img = image[i, 0, py0:py1, px0:px1].numpy()
            inside = (lab == k)[py0:py1, px0:px1]
            outside = masks[i, py0:py1, px0:px1] == 0
            contrasts.append(float(abs(img[inside].mean() - img[outside].mean())))
    return {
        "image": image,
        "mask": torch.from_numpy(masks[:, None].astype(np.float32)),
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "box_batch": torch.tensor(box_batch, dtype=torch.long),
        "areas": torch.tensor(areas, dtype=torch.float32),
        "contrasts": torch.tensor(contrasts, dtype=torch.float32),
    }


def perfect_logits(mask: torch.Tensor, big: float = 20.0) -> torch.Tensor:
    return (mask * 2 - 1) * big


def random_scene(b: int = 3, h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    masks = np.zeros((b, h, w), dtype=np.uint8)
    for i in range(b):
        for _ in range(rng.integers(1, 5)):
            y, x = rng.integers(0, h - 6), rng.integers(0, w - 6)
            masks[i, y : y + rng.integers(1, 6), x : x + rng.integers(1, 6)] = 1
    return masks


# ----------------------------------------------------------------------------------------------- SLS by hand


def target_3x3() -> np.ndarray:
    m = np.zeros((1, 16, 16), dtype=np.uint8)
    m[0, 5:8, 9:12] = 1  # rows 5..7, cols 9..11
    return m


def test_sls_hand_computed_3x3():
    batch = make_batch(target_3x3())
    g = batch["mask"]
    logits = torch.full_like(g, -40.0)  # p ~ 4e-18 outside
    logits[g > 0] = 0.0  # p = 0.5 on the target
    p = torch.sigmoid(logits)
    iou, alpha = scale_terms(p, g)
    # P = 4.5, G = 9, I = 4.5 -> IoU = 4.5 / 9; v = ((4.5 - 9) / 2)^2 = 5.0625
    assert iou.item() == pytest.approx(0.5, abs=1e-6)
    assert alpha.item() == pytest.approx((4.5 + 5.0625) / (9 + 5.0625), abs=1e-6)
    # centres: x_hat = sum p col / (16 * 256); same direction for p and g, half the length
    xg, yg = 3 * (9 + 10 + 11) / 4096, 3 * (5 + 6 + 7) / 4096
    dg = math.sqrt(xg**2 + yg**2 + 1e-8)
    dp = math.sqrt((xg / 2) ** 2 + (yg / 2) ** 2 + 1e-8)
    ang = math.atan2(yg / 2, xg / 2 + 1e-8) - math.atan2(yg, xg + 1e-8)
    expect_loc = 1 - dp / (dg + 1e-8) + 4 / math.pi**2 * ang**2
    assert expect_loc == pytest.approx(0.5, abs=1e-4)
    assert location_term(p, g).item() == pytest.approx(expect_loc, abs=1e-5)
    sls = build_loss("sls")
    expect_scale = 1 - 0.5 * (4.5 + 5.0625) / (9 + 5.0625)
    assert sls(logits, batch).item() == pytest.approx(expect_scale + expect_loc, abs=1e-5)
    # the schedule's stages: warm-up = plain soft IoU, then alpha, then + location
    assert sls(logits, batch, LossFlags(False, False, False)).item() == pytest.approx(0.5, abs=1e-6)
    assert sls(logits, batch, LossFlags(True, False, False)).item() == pytest.approx(expect_scale, abs=1e-6)


def test_target_centric_hand_computed_3x3():
    batch = make_batch(target_3x3())
    logits = torch.zeros_like(batch["mask"])  # p = 0.5 everywhere
    loss = TargetCentricLoss(area_mean=9.0, contrast_mean=1.0, margin_min=3, margin_max=3)
    batch["contrasts"] = torch.tensor([1.0])
    # 9x9 patch -> 48x48: nearest keeps source rows 3..5 for 16 output rows each -> 16x16 ones.
    # I = 128 / (1152 + 256 - 128) = 0.1; p_t = 1 + 2 sigmoid(-1)
    p_t = 1 + 2 / (1 + math.e)
    expect = -(1 - 0.1**p_t) * math.log(0.1)
    assert loss(logits, batch).item() == pytest.approx(expect, rel=1e-5)
    # CSA adds w_aux times this to SLS
    csa = build_loss("csa", w_aux=0.2, area_mean=9.0, contrast_mean=1.0, margin_min=3, margin_max=3)
    sls = build_loss("sls")
    assert csa(logits, batch).item() == pytest.approx(sls(logits, batch).item() + 0.2 * expect, rel=1e-5)


# ------------------------------------------------------------------------------------- minimum and location


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_perfect_prediction_is_the_minimum(name):
    batch = make_batch(random_scene())
    kwargs = {"margin_min": 3, "margin_max": 3} if name in ("csa", "target_centric") else {}
    loss_fn = build_loss(name, area_mean=10.0, contrast_mean=0.5, **kwargs)  # fixed margin: comparable calls
    perfect = perfect_logits(batch["mask"])
    best = loss_fn((perfect, perfect, perfect), batch).item()
    if name not in ("csa", "target_centric"):
        assert best < 1e-4
    # (The 48x48 patches resize the prediction bilinearly and the mask nearest, so even a perfect prediction
    # of a tiny target has I_t < 1: the auxiliary term's minimum is not 0, but it is still reached there.)
    gen = torch.Generator().manual_seed(1)
    others = [perfect * 0.25, perfect * 0.2 + 2.0 * torch.randn(perfect.shape, generator=gen)]
    others.append(torch.roll(perfect, shifts=2, dims=-1))
    dilated = torch.from_numpy(ndi.binary_dilation(batch["mask"][:, 0].numpy(), structure=np.ones((1, 3, 3))))
    others.append(perfect_logits(dilated[:, None].float()))
    ring = perfect_logits(batch["mask"]) + (dilated[:, None].float() - batch["mask"]) * 18.0  # p ~ 0.12
    others.append(ring)
    for other in others:
        assert loss_fn((other, other, other), batch).item() > best


def test_moving_the_blob_away_raises_the_location_term():
    m = np.zeros((1, 64, 64), dtype=np.uint8)
    m[0, 20:25, 20:25] = 1
    g = torch.from_numpy(m[:, None].astype(np.float32))
    values = []
    for shift in range(0, 25, 4):
        logits = perfect_logits(torch.roll(g, shifts=(shift, shift // 2), dims=(-1, -2)))
        values.append(location_term(torch.sigmoid(logits), g).item())
    assert values[0] < 1e-4
    assert all(b > a for a, b in zip(values, values[1:])), values


# ------------------------------------------------------------------------------------ target-centric parts


def test_importance_larger_for_smaller_and_dimmer_targets():
    areas = torch.tensor([4.0, 40.0, 4.0, 4.0])
    contrasts = torch.tensor([1.0, 1.0, 0.1, 1.0])
    p = importance(areas, contrasts, area_mean=20.0, contrast_mean=0.5)
    assert p[0] > p[1]  # smaller
    assert p[2] > p[3]  # dimmer
    assert torch.all((p > 1) & (p < 2))
    assert p[0].item() == pytest.approx(1 + 1 / (1 + math.exp(0.2)) + 1 / (1 + math.exp(2.0)), abs=1e-6)


def test_margins_uniform_in_2_to_5_and_patches_clipped():
    torch.manual_seed(0)
    d = draw_margins(2000)
    assert set(d.tolist()) == {2, 3, 4, 5}
    counts = torch.bincount(d)[2:].float() / 2000
    assert torch.all((counts > 0.2) & (counts < 0.3))
    boxes = torch.tensor([[10.0, 10.0, 13.0, 12.0], [0.0, 1.0, 2.0, 3.0], [60.0, 62.0, 64.0, 64.0]])
    pb = patch_boxes(boxes, torch.tensor([2, 5, 3]), height=64, width=64)
    assert pb.tolist() == [[8, 8, 15, 14], [0, 0, 7, 8], [57, 59, 64, 64]]


@pytest.mark.parametrize("size", [48, 7])
def test_batched_patches_equal_per_target_interpolate(size):
    gen = torch.Generator().manual_seed(3)
    maps = torch.rand(2, 70, 90, generator=gen)
    # small, large (downsampled), touching every border, single pixel, non-square
    patches = torch.tensor(
        [[10, 12, 19, 21], [0, 0, 90, 70], [5, 0, 60, 9], [80, 60, 90, 70], [33, 33, 34, 34], [2, 40, 75, 47]]
    )
    box_batch = torch.tensor([0, 1, 1, 0, 1, 0])
    index = patch_index(box_batch, patches, 70, 90, size)
    bil = gather_bilinear(maps, index)
    near = gather_nearest(maps, index)
    for t, (x0, y0, x1, y1) in enumerate(patches.tolist()):
        crop = maps[box_batch[t], y0:y1, x0:x1][None, None]
        ref_b = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
        ref_n = F.interpolate(crop, size=(size, size), mode="nearest")[0, 0]
        torch.testing.assert_close(bil[t], ref_b, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(near[t], ref_n, atol=0, rtol=0)


def reference_aux(probs, mask, batch, margin, area_mean, contrast_mean):
    """Per-target loop as the spec words it (crop, F.interpolate, soft IoU, focal-like log)."""
    h, w = mask.shape[-2:]
    per_image: dict[int, list[torch.Tensor]] = {}
    for t in range(batch["boxes"].shape[0]):
        x0, y0, x1, y1 = (int(v) for v in batch["boxes"][t])
        x0, y0, x1, y1 = max(x0 - margin, 0), max(y0 - margin, 0), min(x1 + margin, w), min(y1 + margin, h)
        b = int(batch["box_batch"][t])
        p = F.interpolate(
            probs[b : b + 1, :, y0:y1, x0:x1], size=(48, 48), mode="bilinear", align_corners=False
        )
        g = F.interpolate(mask[b : b + 1, :, y0:y1, x0:x1], size=(48, 48), mode="nearest")
        inter = (p * g).sum()
        iou = ((inter + 1e-6) / (p.sum() + g.sum() - inter + 1e-6)).clamp(1e-6, 1)
        s, c = batch["areas"][t], batch["contrasts"][t]
        p_t = 1 + torch.sigmoid(-s / area_mean) + torch.sigmoid(-c / contrast_mean)
        per_image.setdefault(b, []).append(-(1 - iou**p_t) * torch.log(iou))
    return torch.stack([torch.stack(v).mean() for v in per_image.values()]).mean()


def test_target_centric_equals_the_per_target_loop():
    masks = random_scene(b=4, seed=5)
    masks[2] = 0  # an image without targets
    image = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    batch = make_batch(masks, image)
    logits = torch.randn(4, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    loss = TargetCentricLoss(area_mean=12.0, contrast_mean=0.7, margin_min=4, margin_max=4)
    got = loss(logits, batch)
    ref = reference_aux(torch.sigmoid(logits), batch["mask"], batch, 4, 12.0, 0.7)
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)
    # every output supervised with equal weight
    three = loss((logits, logits * 0.5, logits), batch)
    ref_half = reference_aux(torch.sigmoid(logits * 0.5), batch["mask"], batch, 4, 12.0, 0.7)
    assert three.item() == pytest.approx((2 * ref + ref_half).item(), rel=1e-5)


def test_default_statistics_are_the_batch_means():
    batch = make_batch(random_scene(seed=2), torch.randn(3, 3, 64, 64))
    logits = torch.randn(3, 1, 64, 64)
    s, c = batch["areas"].mean().item(), batch["contrasts"].mean().item()
    a = TargetCentricLoss(margin_min=3, margin_max=3)(logits, batch)
    b = TargetCentricLoss(area_mean=s, contrast_mean=c, margin_min=3, margin_max=3)(logits, batch)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


# ------------------------------------------------------------------------------- gradients and empty masks


def test_gradients_reach_the_prediction_only():
    batch = make_batch(random_scene(seed=4), torch.randn(3, 3, 64, 64))
    for key in ("mask", "areas", "contrasts", "image"):
        batch[key] = batch[key].clone().requires_grad_(True)
    outs = [torch.randn(3, 1, 64, 64, requires_grad=True) for _ in range(3)]
    loss = build_loss("csa", area_mean=10.0, contrast_mean=0.5)(outs, batch)
    others = [batch[k] for k in ("mask", "areas", "contrasts", "image")]
    grads = torch.autograd.grad(loss, outs + others, allow_unused=True)
    for gr in grads[:3]:
        assert gr is not None and torch.isfinite(gr).all() and gr.abs().sum() > 0
    assert all(gr is None for gr in grads[3:])


def test_images_without_targets_add_no_aux_loss():
    masks = random_scene(b=2, seed=7)
    batch_one = make_batch(masks[:1])
    both = np.concatenate([masks[:1], np.zeros_like(masks[:1])])
    batch_two = make_batch(both)
    logits = torch.randn(1, 1, 64, 64)
    logits_two = torch.cat([logits, torch.randn(1, 1, 64, 64)])
    loss = TargetCentricLoss(area_mean=10.0, contrast_mean=1.0, margin_min=3, margin_max=3)
    assert loss(logits_two, batch_two).item() == pytest.approx(loss(logits, batch_one).item(), rel=1e-6)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_batch_without_any_target_is_finite(name):
    batch = make_batch(np.zeros((2, 32, 32), dtype=np.uint8))
    assert batch["boxes"].shape == (0, 4)
    outs = [torch.randn(2, 1, 32, 32, requires_grad=True) for _ in range(3)]
    loss = build_loss(name)(outs, batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(o.grad).all() for o in outs)
    # all-background prediction far below sigmoid's float32 range: still no NaN
    very_low = torch.full((2, 1, 32, 32), -200.0, requires_grad=True)
    loss = build_loss(name)((very_low,), batch)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(very_low.grad).all()


def test_no_connected_components_call_inside_the_loss(monkeypatch):
    batch = make_batch(random_scene(seed=9))

    def forbidden(*args, **kwargs):
        raise AssertionError("connected components called inside the loss")

    monkeypatch.setattr(ndi, "label", forbidden)
    loss = build_loss("csa", area_mean=10.0, contrast_mean=0.5)((torch.randn(3, 1, 64, 64),) * 3, batch)
    assert torch.isfinite(loss)


# ------------------------------------------------------------------------------------------ every loss


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_named_loss_is_a_finite_scalar_with_gradient(name):
    batch = make_batch(random_scene(seed=11), torch.randn(3, 3, 64, 64))
    outs = tuple(torch.randn(3, 1, 64, 64, requires_grad=True) for _ in range(3))
    loss = build_loss(name, area_mean=10.0, contrast_mean=0.5)(outs, batch)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    for o in outs:
        assert o.grad is not None and torch.isfinite(o.grad).all() and o.grad.abs().sum() > 0


def test_outputs_summed_with_equal_weight_and_flags():
    batch = make_batch(random_scene(seed=12))
    a, b = torch.randn(3, 1, 64, 64), torch.randn(3, 1, 64, 64)
    for name in ("sls", "bce", "soft_iou", "dice"):
        fn = build_loss(name)
        assert fn((a, b), batch).item() == pytest.approx(fn(a, batch).item() + fn(b, batch).item(), rel=1e-6)
    csa = build_loss("csa", area_mean=10.0, contrast_mean=0.5, margin_min=3, margin_max=3)
    aux = build_loss("target_centric", area_mean=10.0, contrast_mean=0.5, margin_min=3, margin_max=3)
    sls = build_loss("sls")
    for flags in (LossFlags(False, False, False), LossFlags(True, False, False)):
        assert csa(a, batch, flags).item() == pytest.approx(sls(a, batch, flags).item(), rel=1e-6)
    full = sls(a, batch).item() + 0.2 * aux(a, batch).item()
    assert csa(a, batch).item() == pytest.approx(full, rel=1e-6)
    assert csa(a, batch, LossFlags(True, True, True)).item() == pytest.approx(full, rel=1e-6)


def test_build_loss_errors():
    with pytest.raises(UserError, match="unknown loss 'focal'"):
        build_loss("focal")
    with pytest.raises(UserError, match="unknown option"):
        build_loss("csa", waux=0.3)
    with pytest.raises(UserError, match="area_mean"):
        build_loss("csa", area_mean=0.0)
    build_loss("bce", area_mean=10.0, contrast_mean=0.5)  # target statistics are accepted by every loss
    with pytest.raises(ValueError, match="shape"):
        build_loss("bce")(torch.zeros(2, 1, 16, 16), {"mask": torch.zeros(2, 1, 8, 8)})
    with pytest.raises(KeyError, match="boxes"):
        build_loss("csa")(torch.zeros(2, 1, 16, 16), {"mask": torch.zeros(2, 1, 16, 16)})


# ------------------------------------------------------------------------------------------- schedule


def test_schedule_transitions_and_state():
    s = LossSchedule(warmup_epochs=20, gate_iou=0.40)
    assert s.flags(1) == LossFlags(False, False, False)
    assert s.flags(20) == LossFlags(False, False, False)
    assert s.flags(21) == LossFlags(True, False, False)
    assert not s.end_epoch(20, 0.95)  # still warming up
    assert not s.end_epoch(21, 0.39)
    assert not s.gate_open
    assert s.end_epoch(22, 0.40)
    assert s.gate_open and s.flags(23) == LossFlags(True, True, True)
    assert not s.end_epoch(23, 0.05)  # open for good
    assert s.gate_open
    state = s.state_dict()
    assert json.loads(json.dumps(state)) == state  # plain Python types
    fresh = LossSchedule()
    fresh.load_state_dict(state)
    assert fresh.gate_open and fresh.opened_epoch == 22 and fresh.flags(24) == LossFlags(True, True, True)
    with pytest.raises(ValueError, match="1-based"):
        s.flags(0)
    with pytest.raises(ValueError, match="percentage"):
        LossSchedule().end_epoch(30, 45.0)
    always = LossSchedule(always_open=True)
    assert always.gate_open and always.flags(1) == LossFlags(True, True, True)
    short = LossSchedule(warmup_epochs=0, gate_iou=0.5)
    assert short.flags(1) == LossFlags(True, False, False)
    assert not short.end_epoch(1, float("nan")) and short.end_epoch(1, 0.5)
    with pytest.raises(UserError):
        LossSchedule(gate_iou=40)


def test_with_the_data_package_collate():
    """Contract with irsam2.data: its collated batch drives every loss; boxes agree with scipy labels."""
    data = pytest.importorskip("irsam2.data", reason="irsam2.data not importable")
    ds = data.SyntheticIRDataset(4, size=64, seed=0, train=True)
    batch = data.collate([ds[i] for i in range(4)])
    ours = make_batch(batch["mask"][:, 0].numpy().astype(np.uint8), batch["image"])
    key = lambda b: sorted(zip(b["box_batch"].tolist(), b["boxes"].tolist()))  # noqa: E731
    assert key(batch) == key(ours)
    outs = tuple(torch.randn(4, 1, 64, 64, requires_grad=True) for _ in range(3))
    stats = {"area_mean": float(batch["areas"].mean()), "contrast_mean": float(batch["contrasts"].mean())}
    for name in sorted(LOSSES):
        loss = build_loss(name, **stats)(outs, batch)
        assert torch.isfinite(loss)
        loss.backward()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    batch = make_batch(random_scene(seed=13), torch.randn(3, 3, 64, 64))
    logits = [torch.randn(3, 1, 64, 64) for _ in range(3)]
    fn = build_loss("csa", area_mean=10.0, contrast_mean=0.5)
    results = []
    for dev, on_device in (("cpu", False), ("cuda", False), ("cuda", True)):
        outs = [x.detach().clone().to(dev).requires_grad_(True) for x in logits]
        b = {k: v.to(dev) for k, v in batch.items()} if on_device else batch
        torch.manual_seed(0)  # the margins are drawn on the CPU: the same draw on every device
        loss = fn(outs, b)
        loss.backward()
        results.append((loss.item(), torch.cat([o.grad.cpu() for o in outs])))
    for value, grad in results[1:]:
        assert value == pytest.approx(results[0][0], rel=1e-5)
        torch.testing.assert_close(grad, results[0][1], atol=1e-6, rtol=1e-4)
    half = [x.cuda().to(torch.bfloat16).requires_grad_(True) for x in logits]  # autocast-style outputs
    loss = fn(half, batch)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(torch.isfinite(o.grad).all() for o in half)


def test_bce_iou_with_the_target_centric_term():
    batch = make_batch(random_scene(seed=3), torch.randn(3, 3, 64, 64))
    logits = torch.randn(3, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    plain = build_loss("bce_iou", pos_weight=10.0)
    # without the term the training-split statistics are accepted and change nothing
    same = build_loss("bce_iou", pos_weight=10.0, area_mean=10.0, contrast_mean=0.5)
    assert same(logits, batch).item() == pytest.approx(plain(logits, batch).item(), rel=1e-7)
    with_term = build_loss("bce_iou", pos_weight=10.0, w_target=0.5, area_mean=10.0, contrast_mean=0.5)
    torch.manual_seed(0)  # the same random patch margins for both
    got = with_term(logits, batch)
    torch.manual_seed(0)
    aux = TargetCentricLoss(area_mean=10.0, contrast_mean=0.5)(logits, batch)
    assert got.item() == pytest.approx(plain(logits, batch).item() + 0.5 * aux.item(), rel=1e-6)
    # the term pushes every target pixel up: a missed target costs more than with BCE + soft IoU alone
    x0 = torch.full((3, 1, 64, 64), -6.0, requires_grad=True)
    x1 = x0.detach().clone().requires_grad_(True)
    plain(x0, batch).backward()
    with_term(x1, batch).backward()
    on_targets = batch["mask"] > 0
    assert (x1.grad[on_targets] < x0.grad[on_targets]).all()
    with pytest.raises(ValueError, match="w_target"):
        build_loss("bce_iou", w_target=-1.0)


def _hard_case() -> tuple[dict, torch.Tensor]:
    """One 32x32 frame, a 2x2 target at (8, 8), every logit -8 but the target (+4), its rim (+2) and three
    isolated false alarms far from it at +3, +1 and -1."""
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:10, 8:10] = 1.0
    logits = torch.full((1, 1, 32, 32), -8.0)
    logits[..., 7:11, 7:11] = 2.0  # the rim: inside the guard band
    logits[..., 8:10, 8:10] = 4.0
    for (y, x), v in (((25, 25), 3.0), ((5, 28), 1.0), ((28, 3), -1.0)):
        logits[..., y, x] = v
    return {"mask": mask}, logits


def test_hard_negative_term_charges_the_worst_isolated_false_alarms_only():
    batch, logits = _hard_case()
    loss = build_loss("bce_iou", pos_weight=10.0, w_hard=1.0, hard_fraction=2 / 1024)  # k = 2 per frame
    x = logits.clone().requires_grad_(True)
    term = loss.hard_negatives(x[None], batch["mask"])
    term.backward()
    hit = x.grad[0, 0] != 0
    assert hit.sum() == 2 and hit[25, 25] and hit[5, 28]  # the two worst, not the target's rim (+2)
    expect = (F.softplus(torch.tensor(3.0)) + F.softplus(torch.tensor(1.0))) / 2
    assert term.item() == pytest.approx(expect.item(), rel=1e-6)
    # beside BCE + soft IoU: the total is their sum, and the worst false alarm's gradient is k-scale, not
    # the 1/HW of the mean BCE (over 100x here)
    plain = build_loss("bce_iou", pos_weight=10.0)
    y0, y1 = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    total = loss(y1, batch)
    assert total.item() == pytest.approx(plain(logits, batch).item() + term.item(), rel=1e-6)
    plain(y0, batch).backward()
    total.backward()
    assert y1.grad[0, 0, 25, 25] > 100 * y0.grad[0, 0, 25, 25] > 0
    assert torch.equal(y1.grad[0, 0, 7:11, 7:11], y0.grad[0, 0, 7:11, 7:11])  # target and rim untouched


def test_hard_negative_term_off_by_default_and_sync_free():
    from irsam2.engine.sync_check import NoHostSync

    batch, logits = _hard_case()
    assert build_loss("bce_iou").w_hard == 0.0
    loss = build_loss("bce_iou", w_hard=0.5)
    x = logits.clone().requires_grad_(True)
    with NoHostSync():
        loss(x, batch).backward()
    for bad in ({"w_hard": -1.0}, {"hard_fraction": 0.0}, {"hard_fraction": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            build_loss("bce_iou", **bad)
