"""The training step without host-device synchronisation (issue 12): the checker catches every kind of sync
(in forward and in backward), and one full step of the recipe (official variant, head on, CSA loss with its
target-centric term, Adan update) runs under it, on the CPU, and on CUDA also under the sync debug mode."""

from __future__ import annotations

import pytest
import torch

from irsam2.data import SyntheticIRDataset, TrainAugment, collate
from irsam2.engine.config import load_config
from irsam2.engine.ema import ModelEma
from irsam2.engine.step import LossMeter, TrainStep, to_device
from irsam2.engine.sync_check import HostSyncError, NoHostSync, no_host_sync
from irsam2.engine.trainer import loss_from_config
from irsam2.losses import ALL_ON, build_loss
from irsam2.models import create_model


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.sum().item(),
        lambda x: float(x.max()),
        lambda x: bool(x.sum() > 0),
        lambda x: x.nonzero(),
        lambda x: x[x > 0],
        lambda x: x.masked_select(x > 0),
        lambda x: torch.unique(x),
        lambda x: torch.equal(x, x),
        lambda x: torch.repeat_interleave(torch.tensor([1, 2]), torch.tensor([2, 1])),
        lambda x: x.tolist(),
    ],
    ids=[
        "item",
        "float",
        "bool",
        "nonzero",
        "bool-index",
        "masked_select",
        "unique",
        "equal",
        "repeat",
        "list",
    ],
)
def test_checker_catches_host_syncs(fn) -> None:
    x = torch.randn(4, 4)
    with pytest.raises(HostSyncError), NoHostSync():
        fn(x)


def test_checker_sees_the_backward_pass_and_lets_sync_free_ops_through() -> None:
    class ReadsInBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):  # type: ignore[override]
            return x * 2

        @staticmethod
        def backward(ctx, g):  # type: ignore[override]
            g.sum().item()  # a sync hidden in a backward
            return g * 2

    x = torch.randn(3, requires_grad=True)
    with NoHostSync() as mode:
        y = torch.topk(x, 2).values.cumsum(0)  # sync-free ops pass
        torch.searchsorted(y.detach(), y.detach())
        torch.where(x > 0, x, 0.0).sum().backward()
    assert mode.seen > 5 and x.grad is not None
    x.grad = None
    out = ReadsInBackward.apply(x).sum()
    with pytest.raises(HostSyncError), NoHostSync():
        out.backward()


def _batch(size: int = 64, n: int = 2) -> dict:
    ds = SyntheticIRDataset(n + 2, size=size, seed=3, train=True, crop_size=size, augment=TrainAugment(size))
    items = [ds[i] for i in range(n)]
    batch = collate(items)
    assert batch["boxes"].shape[0] > 0, "the step must exercise the target-centric term"
    return batch


def _step(device: str, area_mean: float | None, recipe: str = "release") -> tuple[TrainStep, torch.nn.Module]:
    from pytorch_optimizer import Adan

    torch.manual_seed(0)
    model = create_model("irsam2_t", variant="official").to(device)
    model.set_head_enabled(True)
    model.train()
    stats = {"area_mean": area_mean, "contrast_mean": None if area_mean is None else 1.5}
    if recipe == "scratch":  # the loss as `irsam2 train --recipe scratch` builds it
        lc = load_config("synthetic", {"recipe": "scratch"}).loss
        assert lc.w_target > 0 and lc.w_hard > 0  # both extra terms inside the step
        loss = loss_from_config(lc, stats)
    else:
        loss = build_loss("csa", **stats)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = Adan(params, lr=0.01, betas=(0.98, 0.92, 0.99), weight_decay=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    return TrainStep(model, loss, opt, scaler, params, device_type=torch.device(device).type), model


def _run_sync_free_step(device: str, area_mean: float | None, recipe: str = "release") -> None:
    step, model = _step(device, area_mean, recipe)
    batch = to_device(_batch(), torch.device(device))  # the loader side: outside the step
    before = model.neck[0].weight.detach().clone()
    meter = LossMeter()
    ema = ModelEma(model, 0.99)  # train.ema: the average's update is part of the step when it is on
    with no_host_sync(device) as mode:
        loss = step([batch], ALL_ON)
        ema.update()
        meter.add(loss, batch["path"])
    assert mode.seen > 500  # forward, loss, backward and the optimizer all ran inside
    values, bad, _ = meter.read()  # the one read, outside the step
    assert bad is None and len(values) == 1
    assert not torch.equal(before, model.neck[0].weight.detach())  # the optimizer step was taken
    assert all(p.grad is None for p in model.parameters())  # and the gradients cleared


@pytest.mark.parametrize("area_mean", [20.0, None], ids=["split-stats", "batch-stats"])
def test_one_training_step_has_no_host_sync_on_cpu(area_mean: float | None) -> None:
    _run_sync_free_step("cpu", area_mean)


def test_a_scratch_recipe_step_has_no_host_sync_on_cpu() -> None:
    _run_sync_free_step("cpu", 20.0, recipe="scratch")


def test_a_compiled_forward_and_loss_step_has_no_host_sync_on_cpu() -> None:
    """train.compile_loss's step: dynamo's graph of forward and loss (backend "eager": its ops dispatched one
    by one; tests/test_compile.py checks the aot_eager graph against eager) runs under the checker after its
    first call compiled it."""
    from irsam2.engine.step import compile_forward_loss

    step, model = _step("cpu", 20.0)
    step.forward_loss = compile_forward_loss(model, step.loss_fn, step.autocast, backend="eager")
    batch = to_device(_batch(), torch.device("cpu"))
    step([batch], ALL_ON)  # compiles
    with no_host_sync("cpu") as mode:
        loss = step([batch], ALL_ON)
    assert mode.seen > 500 and loss.shape == ()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (set_sync_debug_mode is CUDA's)")
def test_one_training_step_has_no_host_sync_on_cuda() -> None:
    _run_sync_free_step("cuda", 20.0)


def test_loss_meter_finds_the_first_non_finite_step() -> None:
    meter = LossMeter()
    for v, f in [(1.0, "a"), (float("inf"), "b"), (float("nan"), "c")]:
        meter.add(torch.tensor(v), [f])
    values, bad, files = meter.read()
    assert values[0] == 1.0 and bad == 1 and files == ["b"] and len(meter) == 0
    assert meter.read() == ([], None, [])


def test_box_batch_out_of_range_is_a_clear_error() -> None:
    loss = build_loss("target_centric", area_mean=10.0, contrast_mean=1.0)
    batch = _batch(32)
    batch["box_batch"] = batch["box_batch"] + 5
    out = torch.zeros(2, 1, 32, 32)
    with pytest.raises(ValueError, match="box_batch values out of range for batch 2"):
        loss((out,), batch)


def test_nan_after_a_good_epoch_stops_the_run_and_keeps_its_checkpoints(tmp_path) -> None:
    from engine_helpers import tiny
    from irsam2.checkpoint import safe_load
    from irsam2.engine.trainer import TrainingDiverged, train

    def poison(t, row) -> None:  # from epoch 2 on the loss is NaN and so are the gradients
        t.loss_fn = lambda outputs, batch, flags=None: outputs[0].sum() * float("nan")

    # read every 10 steps: the NaN of step 1 is only seen at the epoch's end (step 2), after the optimizer
    # has already applied NaN gradients in memory; nothing of that may reach the checkpoints
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 1; batch files: synthetic:"):
        train("synthetic", overrides=tiny(tmp_path, **{"train.log_every": 10}), on_epoch=poison)
    for name in ("last.pt", "best.pt"):
        ck = safe_load(tmp_path / name)
        assert ck["epoch"] == 1
        if name == "last.pt":  # best.pt is lean: weights and metadata only
            assert len(ck["step_losses"]) == 2
        assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
