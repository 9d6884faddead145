"""Training throughput of the engine (issue 6, "Speed"): images per second at 256x256, batch 12, with the time
of one optimizer step split into data, forward, loss, backward and optimizer.

Also prints the aten ops one step dispatches, per part (each one kernel launch or more on a GPU in eager
mode): at tiny sizes (``--size 32 --batch 1``) the step's time is then mostly the host's dispatch overhead.

Runs the engine's own set-up (``irsam2.engine.trainer.Trainer``: model, CSA loss, Adan, autocast on CUDA) on
in-memory synthetic scenes, on the CPU and on CUDA when present. Usage:

    .venv/bin/python benchmarks/bench_train.py                    # cpu (and cuda if present)
    .venv/bin/python benchmarks/bench_train.py --device cuda --steps 20 --channels-last
    .venv/bin/python benchmarks/bench_train.py --device cpu --steps 2 --size 128   # quicker on a small CPU

Numbers on a shared machine are disturbed by other processes: compare runs made at the same time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from irsam2.engine.config import load_config
from irsam2.engine.trainer import Trainer, _to_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _OpCount(TorchDispatchMode):
    """Counts the aten ops dispatched in a region, views and other metadata-only ops left out: on a GPU each
    counted op is (at least) one kernel launch, so the count bounds what launch overhead can cost an eager
    step. The count barely depends on the input size (a few padding ops come and go)."""

    _NO_KERNEL = frozenset(
        "view _unsafe_view expand permute transpose t unsqueeze squeeze slice select as_strided alias detach "
        "_reshape_alias reshape split split_with_sizes unbind chunk narrow view_as_real view_as_complex "
        "unfold diagonal lift_fresh _record_function_enter_new _record_function_exit".split()
    )

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func._overloadpacket.__name__ not in self._NO_KERNEL:
            self.n += 1
        return func(*args, **(kwargs or {}))


def bench(device: str, steps: int, warmup: int, batch: int, size: int, amp: str, channels_last: bool) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(
            "synthetic",
            {
                "out": out,
                "train.device": device,
                "train.batch_size": batch,
                "train.micro_batch": batch,
                "train.amp": amp,
                "train.channels_last": channels_last,
                "train.progress": False,
                "train.tensorboard": False,
                "data.crop_size": size,
                "data.synthetic.size": size,
                "data.synthetic.num_images": batch * 2 + 2,
                "data.val_fraction": 0.05,
                "data.workers": 0,
                "loss.schedule": False,  # the full CSA loss (location term and auxiliary loss on)
                "model.variant": "official",
            },
        )
        t = Trainer(cfg)
        t.setup()
        t.model_core.set_head_enabled(True)
        dev = t.device
        flags = t.schedule.flags(1)
        parts = {"data": 0.0, "forward": 0.0, "loss": 0.0, "backward": 0.0, "optimizer": 0.0}
        epoch, it = 0, None
        for step in range(warmup + steps):
            _sync(dev)
            t0 = time.perf_counter()
            batch_ = next(it, None) if it is not None else None
            if batch_ is None:
                epoch += 1
                it = iter(t._epoch_loader(epoch, 0))
                batch_ = next(it)
            b = _to_device(batch_, dev, channels_last)
            _sync(dev)
            t1 = time.perf_counter()
            with t._autocast():
                outputs = t.model(b["image"])
            _sync(dev)
            t2 = time.perf_counter()
            loss = t.loss_fn(outputs, b, flags)
            _sync(dev)
            t3 = time.perf_counter()
            t.scaler.scale(loss).backward()
            _sync(dev)
            t4 = time.perf_counter()
            t.scaler.step(t.optimizer)
            t.scaler.update()
            t.optimizer.zero_grad(set_to_none=True)
            _sync(dev)
            t5 = time.perf_counter()
            if step >= warmup:
                for k, a, z in (("data", t0, t1), ("forward", t1, t2), ("loss", t2, t3)):
                    parts[k] += z - a
                parts["backward"] += t4 - t3
                parts["optimizer"] += t5 - t4
        # one more step, untimed, with the ops of each part counted
        ops = {}
        b = _to_device(next(iter(t._epoch_loader(epoch + 1, 0))), dev, channels_last)
        with _OpCount() as c, t._autocast():
            outputs = t.model(b["image"])
        ops["forward"] = c.n
        with _OpCount() as c:
            loss = t.loss_fn(outputs, b, flags)
        ops["loss"] = c.n
        with _OpCount() as c:
            t.scaler.scale(loss).backward()
        ops["backward"] = c.n
        with _OpCount() as c:
            t.scaler.step(t.optimizer)
            t.scaler.update()
            t.optimizer.zero_grad(set_to_none=True)
        ops["optimizer"] = c.n
        total = sum(parts.values())
        res: dict[str, Any] = {
            "device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""),
            "amp": str(t.amp_dtype).replace("torch.", "") if t.amp_dtype else "none",
            "channels_last": channels_last,
            "batch": batch,
            "size": size,
            "steps": steps,
            "threads": torch.get_num_threads(),
            "images_per_s": steps * batch / total,
            "step_s": total / steps,
            "split_s": {k: v / steps for k, v in parts.items()},
            "split_pct": {k: 100.0 * v / total for k, v in parts.items()},
            "ops_per_step": ops,
        }
        if dev.type == "cuda":
            res["peak_mem_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
        return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 3 on CPU, 20 on CUDA)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 1 CPU, 5 CUDA)")
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "none"])
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    a = ap.parse_args()
    devices = ["cpu", "cuda"] if a.device == "all" else [a.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if a.device == "cuda":
            raise SystemExit("no CUDA device on this machine")
        devices.remove("cuda")
    results = []
    for d in devices:
        gpu = d == "cuda"
        r = bench(
            d,
            a.steps or (20 if gpu else 3),
            a.warmup if a.warmup is not None else (5 if gpu else 1),
            a.batch,
            a.size,
            a.amp,
            a.channels_last,
        )
        results.append(r)
        if not a.json:
            split = ", ".join(
                f"{k} {v * 1000:.0f} ms ({r['split_pct'][k]:.0f}%)" for k, v in r["split_s"].items()
            )
            print(
                f"{r['device']} amp={r['amp']} channels_last={r['channels_last']} batch {r['batch']} "
                f"{r['size']}x{r['size']}: {r['images_per_s']:.2f} images/s, {r['step_s']:.3f} s/step "
                f"[{split}]" + (f", peak {r['peak_mem_gib']:.1f} GiB" if "peak_mem_gib" in r else "")
            )
            ops = r["ops_per_step"]
            print(
                f"  aten ops dispatched per step (kernel launches on a GPU, eager): {sum(ops.values())} "
                f"[{', '.join(f'{k} {v}' for k, v in ops.items())}]"
            )
    print(json.dumps(results, indent=1) if a.json else "")


if __name__ == "__main__":
    main()
