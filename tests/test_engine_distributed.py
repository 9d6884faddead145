"""Two processes through torchrun (gloo on CPU): identical weights on both ranks, equal to one process with
the same global batch.

Honest about BatchNorm: with per-rank batch statistics two ranks of 2 images are not one batch of 4, and
SyncBatchNorm needs GPUs, so this runs with ``train.freeze_bn`` (BN uses its running statistics). The loss is
BCE (a mean over equal-sized images, so the mean of the two ranks' losses is the one-process loss),
augmentation is off so both runs see the same pixels, and the optimizer is SGD (see SETTINGS).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

from irsam2.checkpoint import safe_load
from irsam2.engine.trainer import seed_process, train
from irsam2.models import create_model

SETTINGS: dict[str, Any] = {
    "train.epochs": 1,
    "train.batch_size": 4,
    "train.freeze_bn": True,
    "train.progress": False,
    "train.tensorboard": False,
    "loss.name": "bce",
    # SGD: its update is linear in the gradient, so float summation order stays at 1e-7. (Adan divides by the
    # root of its second moment: a parameter with a ~0 gradient flips its update on reordered sums.)
    "optim.name": "sgd",
    "optim.betas": [0.9, 0.999],
    "data.augment": False,
    "data.synthetic.num_images": 9,  # 8 training frames: 2 optimizer steps of 4
    "data.synthetic.size": 32,
    "data.crop_size": 32,
    "data.val_fraction": 0.1,
    "data.workers": 0,
}

WORKER = """
import os, sys, torch
from irsam2.engine.trainer import seed_process, train
from irsam2.models import create_model

def dump(trainer, row):
    sd = {k: v.detach().clone() for k, v in trainer.model_core.state_dict().items()}
    torch.save(sd, os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.pt"))

r = train("synthetic", overrides=dict(eval(sys.argv[2]), out=sys.argv[1]), on_epoch=dump)
assert r.status == "completed", r.status
"""


def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    ddp_out = tmp_path / "ddp"
    settings = dict(SETTINGS, **{"train.micro_batch": 2})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += [str(script), str(ddp_out), repr(settings)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0 = torch.load(ddp_out / "rank0.pt", weights_only=True)
    w1 = torch.load(ddp_out / "rank1.pt", weights_only=True)
    for k in w0:
        assert torch.equal(w0[k], w1[k]), f"ranks differ in {k}"
    assert not (ddp_out / "rank1").exists() and (ddp_out / "last.pt").is_file()  # rank 0 writes

    single = train("synthetic", overrides=dict(SETTINGS, out=str(tmp_path / "single")))
    ws = safe_load(single.last)["model"]
    seed_process(0)  # the trainer's initialisation (synthetic preset: seed 0)
    init = create_model("irsam2_t").state_dict()
    # the same updates up to float summation order
    num = den = 0.0
    for k, v in ws.items():
        if not v.is_floating_point():
            assert torch.equal(w0[k], v), k
            continue
        torch.testing.assert_close(w0[k], v, rtol=1e-4, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")
        num += float((w0[k] - v).double().pow(2).sum())
        den += float((v - init[k]).double().pow(2).sum())
    assert den > 0 and (num / den) ** 0.5 < 1e-4, (num / den) ** 0.5
    ddp_ck = safe_load(ddp_out / "last.pt")
    assert ddp_ck["world_size"] == 2 and ddp_ck["global_step"] == single.epochs_done * 2 == 2
    # the epoch's loss and the validation metrics are reduced over the ranks: the same numbers as one process
    ddp_row, row = ddp_ck["history"][0], single.history[0]
    assert ddp_row["train_loss"] == pytest.approx(row["train_loss"], rel=1e-5)
    assert ddp_row["val_iou"] == pytest.approx(row["val_iou"], rel=1e-6, nan_ok=True)
    assert ddp_row["val_fa"] == pytest.approx(row["val_fa"], rel=1e-6)


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"  # two processes on a 2-core machine
    return env
