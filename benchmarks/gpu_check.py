"""One prepared GPU check for issue 12: install, sync-free step test, training and inference speed, a short
fixed-step training run on NUDT-SIRST with test metrics, and one summary table.

On the GPU machine (H100/H200, 16 cores, no network), in one call of under 8 minutes::

    python3 benchmarks/gpu_check.py --install --out $OUT

and on a CPU (much smaller sizes and step counts; run it under ``nice``)::

    nice -n 15 .venv/bin/python benchmarks/gpu_check.py --cpu-smoke --out /tmp/gpu_check

Before the GPU call, on the development machine (network there, none on the GPU machine)::

    python3 benchmarks/gpu_check.py --prepare   # missing wheels -> .whl/, NUDT-SIRST -> .gpu_data/

then carry ``.whl`` and ``.gpu_data`` (both git-ignored) with the call. ``--install`` installs what
``make test`` installs (this package with its ``dev``, ``onnx`` and ``video`` extras) from those wheels and
the machine's own packages only, never from the network: torch, timm, opencv, onnx, ... come with the GPU
image, and only the missing ones (pytorch-optimizer; ruff is for linting and skipped) travel as wheels.
The torch version is the image's, printed in the table.

Sections (each prints its own lines and lands in ``<out>/gpu_check.json``):

1. environment and install;
2. the sync-free training step test (``tests/test_engine_step.py``; on CUDA also under
   ``torch.cuda.set_sync_debug_mode("error")``);
3. training throughput: the engine's own epoch loop (data, forward, CSA loss, backward, Adan), bf16, batch 12,
   256 x 256, real augmentations, official variant with the head on, the full CSA loss, in three rows
   (``--train-rows``): the DataLoader, the split held on the device (``data.on_device``), and that with
   ``torch.compile`` (``--train-compile-mode``); images/s, the first step's time (compilation included), then
   the share of data / forward / loss / backward / optimizer from ``torch.profiler`` (device time of each
   annotated range on CUDA, CPU time on a CPU);
4. a short fixed-step training run (seed 42, the faster eager row of section 3) and its test-split metrics
   (IoU, nIoU, Pd, Fa);
5. inference at 256 x 256, batch 1 and 16: fp32 eager, bf16 eager, bf16 + CUDA graphs, bf16 +
   ``torch.compile`` (``--compile-mode``), bf16 + compile + CUDA graphs (mode reduce-overhead); FPS and the
   first call's time (compile/capture included); parity of every fast variant with fp32 eager on real test
   frames with the trained weights of section 4: mask IoU and max |logit diff|.

A second call, once the first has measured the speed, trains the whole from-scratch recipe (issue 11's
``--recipe scratch``; no SAM2 weights reach the GPU machine) for 300 epochs under a training-time budget that
fits the call, and prints the test metrics, or says how many epochs the budget allowed::

    python3 benchmarks/gpu_check.py --install --full-recipe --out $OUT   # --budget-s 420, --recipe-row

Data: ``--data`` or the first of ``.gpu_data/NUDT-SIRST``, ``shared/data/NUDT-SIRST``,
``../shared/data/NUDT-SIRST``; without it (or with ``--synthetic``) every section runs on synthetic scenes
and the table names them. A folder that already holds a ``gpu_check.json`` is refused (``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WHEELS = REPO / ".whl"
GPU_DATA = REPO / ".gpu_data"
# import name -> distribution name of everything `make test` installs (pyproject: deps + dev, onnx, video)
NEEDED = {
    "torch": "torch",
    "torchvision": "torchvision",
    "timm": "timm",
    "pytorch_optimizer": "pytorch-optimizer",
    "numpy": "numpy",
    "scipy": "scipy",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "tqdm": "tqdm",
    "matplotlib": "matplotlib",
    "tensorboard": "tensorboard",
    "onnx": "onnx",
    "onnxscript": "onnxscript",
    "onnxruntime": "onnxruntime",
    "cv2": "opencv-python-headless",
    "pytest": "pytest",
    "xdist": "pytest-xdist",
}
LINT_ONLY = {"ruff"}  # make test lints first; the check runs no linter


def log(msg: str) -> None:
    print(msg, flush=True)


def find_data(arg: str | None) -> Path | None:
    if arg:
        p = Path(arg)
        if not p.is_dir():
            raise SystemExit(f"--data {p}: not a folder")
        return p
    for p in (
        GPU_DATA / "NUDT-SIRST",
        REPO / "shared/data/NUDT-SIRST",
        REPO.parent / "shared/data/NUDT-SIRST",
    ):
        if p.is_dir():
            return p
    return None


# ------------------------------------------------------------------------------------------------------------
# 0. prepare (development machine) and 1. install (GPU machine)


def prepare() -> int:
    """Wheels the GPU image lacks -> .whl/, NUDT-SIRST -> .gpu_data/ (both git-ignored)."""
    WHEELS.mkdir(exist_ok=True)
    # the GPU image (device README, KINDS.md) has every other package of NEEDED
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(WHEELS)]
    subprocess.run([*cmd, "pytorch-optimizer==4.1.0"], check=True)
    src = REPO.parent / "shared" / "data" / "NUDT-SIRST"
    if src.is_dir() and not (GPU_DATA / "NUDT-SIRST").is_dir():
        shutil.copytree(src, GPU_DATA / "NUDT-SIRST")
    log(f"prepared: {sorted(p.name for p in WHEELS.iterdir())}, data {GPU_DATA / 'NUDT-SIRST'}")
    log('carry: [".whl", ".gpu_data"]   command: python3 benchmarks/gpu_check.py --install --out $OUT')
    return 0


SITE = Path(tempfile.gettempdir()) / "irsam2-site"  # where the carried wheels go on the GPU machine


def _on_path(folder: Path) -> None:
    """``folder`` importable here and in the subprocesses this script starts (the sync-free step test)."""
    sys.path.insert(0, str(folder))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)
    importlib.invalidate_caches()


def install() -> dict[str, Any]:
    """Install the missing requirements from .whl/ (no index) and this package (no deps, no isolation).

    The wheels go to a folder of their own put on the path (the device README's recipe: the image's
    environment is left as it is). The package is installed editable as ``make test`` does; where the image's
    setuptools cannot build it (pyproject asks for >= 77, for its SPDX license field), its pure-Python source
    folder goes on the path instead, and the table says so."""
    missing = [dist for mod, dist in NEEDED.items() if importlib.util.find_spec(mod) is None]
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-cache-dir"]
    t0 = time.perf_counter()
    if missing:
        wheels = sorted(WHEELS.glob("*.whl")) if WHEELS.is_dir() else []
        if not wheels:
            raise SystemExit(f"missing packages {missing} and no wheels in {WHEELS} (run --prepare first)")
        subprocess.run(
            [*pip, "--no-compile", "--upgrade", "--target", str(SITE), *map(str, wheels)], check=True
        )
        _on_path(SITE)
    # the package itself, as `make test` does (editable), without touching the image's torch
    r = subprocess.run([*pip, "--no-build-isolation", "-e", str(REPO)], capture_output=True, text=True)
    package = "pip install -e (no deps)"
    if r.returncode != 0:
        why = ((r.stderr or r.stdout).strip().splitlines() or ["?"])[-1][:300]
        log(f"  pip install -e failed ({why}); using {REPO / 'src'} on the path")
        _on_path(REPO / "src")
        package = f"src on the path (pip install -e failed: {why})"
    importlib.invalidate_caches()
    still = [dist for mod, dist in NEEDED.items() if importlib.util.find_spec(mod) is None]
    if importlib.util.find_spec("irsam2") is None:
        still.append("irsam2")
    if still:
        raise SystemExit(f"still missing after the install: {still}")
    return {"installed_from_wheels": missing, "package": package, "install_s": time.perf_counter() - t0}


def environment() -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda_version"] = torch.version.cuda
        env["bf16"] = torch.cuda.is_bf16_supported()
    return env


# ------------------------------------------------------------------------------------------------------------
# 2. the sync-free step test


def sync_test() -> dict[str, Any]:
    t0 = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "tests/test_engine_step.py"]
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    tail = (p.stdout + p.stderr).strip().splitlines()[-6:]
    for line in tail:
        log(f"  {line}")
    return {"returncode": p.returncode, "summary": tail[-1] if tail else "", "s": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------------------------------
# 3. training throughput and profile


# The training-throughput rows (section 3): the data source and torch.compile, so that one GPU call says which
# is faster there (issue 12: "whichever measures faster"). "compile": the model's forward and its backward
# (AOTAutograd), loss and optimizer eager; "compile-loss": forward and loss as one graph (train.compile_loss);
# "+cudagraphs": that graph replayed as a CUDA graph (mode reduce-overhead). The optimizer (Adan, 15 foreach
# ops a step) stays eager in every row.
TRAIN_ROWS: dict[str, dict[str, Any]] = {
    "loader": {"data.on_device": False, "train.compile": False},
    "on-device": {"data.on_device": True, "train.compile": False},
    "on-device+compile": {"data.on_device": True, "train.compile": True},
    "on-device+compile-loss": {"data.on_device": True, "train.compile": True, "train.compile_loss": True},
    "on-device+compile-loss+cudagraphs": {
        "data.on_device": True,
        "train.compile": True,
        "train.compile_loss": True,
        "train.compile_mode": "reduce-overhead",
    },
}
DEFAULT_ROWS = ("loader", "on-device", "on-device+compile-loss", "on-device+compile-loss+cudagraphs")


def _train_overrides(
    a: argparse.Namespace, data: Path | None, out: Path, steps: int, row: str = "loader"
) -> dict[str, Any]:
    o: dict[str, Any] = {
        "out": str(out),
        "train.device": a.device,
        "train.amp": a.amp,
        "train.batch_size": a.batch,
        "train.micro_batch": a.batch,
        "train.seed": 42,
        "train.progress": False,
        "train.tensorboard": False,
        "train.max_steps_per_epoch": steps,
        "train.log_every": 25,
        "data.crop_size": a.size,
        "data.workers": a.workers,
        "data.augment": True,
        "loss.schedule": False,  # the full CSA loss from the first step and the head on (gate open)
        "model.variant": "official",
    }
    if data is not None:
        o |= {"data.root": str(data), "data.dataset": "nudt", "data.val_fraction": a.val_fraction}
    else:
        o |= {"data.synthetic.size": a.size, "data.synthetic.num_images": max(4 * a.batch, 16)}
    if TRAIN_ROWS[row]["train.compile"]:
        o |= {"train.compile_mode": a.train_compile_mode, "train.compile_backend": a.compile_backend}
    return o | TRAIN_ROWS[row]


def train_speed(a: argparse.Namespace, data: Path | None, row: str) -> dict[str, Any]:
    """Images/s of the engine's own epoch loop for one row of :data:`TRAIN_ROWS`, and its profile."""
    import torch

    from irsam2.engine.config import load_config
    from irsam2.engine.trainer import Trainer

    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(
            "nudt" if data else "synthetic", _train_overrides(a, data, Path(out), a.speed_steps, row)
        )
        t = Trainer(cfg)
        t.setup()
        t.model_core.set_head_enabled(True)
        # epoch 1: warm-up (cuDNN autotuning, allocator, compile); epoch 2: timed, the engine's own loop
        t0 = time.perf_counter()
        t._train_epoch(1, t0)
        warm = time.perf_counter() - t0
        t.step_in_epoch = 0
        epoch_row = t._train_epoch(2, time.perf_counter())
        res = {
            "row": row,
            "images_per_s": epoch_row["images_per_s"],
            "steps": a.speed_steps,
            "warmup_epoch_s": warm,
            "first_step_s": t.first_step_s,
            "device": str(t.device),
            "amp": str(t.amp_dtype).replace("torch.", "") if t.amp_dtype else "none",
            "workers": 0 if cfg.data.on_device else cfg.data.workers,
            "on_device": cfg.data.on_device,
            "compile": cfg.train.compile,
            "compile_backend": cfg.train.compile_backend if cfg.train.compile else None,
            "compile_mode": cfg.train.compile_mode if cfg.train.compile else None,
        }
        if t.device.type == "cuda":
            res["peak_mem_gib"] = torch.cuda.max_memory_allocated(t.device) / 2**30
        res["profile"] = profile_shares(t, a.profile_steps)
        return res


def profile_shares(t: Any, steps: int) -> dict[str, float]:
    """Share of data / forward / loss / backward / optimizer in ``steps`` training steps, from the profiler.

    Each part is a ``record_function`` range; on CUDA its share is the device time of the kernels it launched
    (the GPU is the bottleneck there), data is the host time spent waiting for the loader (the GPU idles then
    only if the queue ran dry). On a CPU every share is CPU time."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from irsam2.engine.step import to_device

    dev = t.device
    step = t._make_step()
    flags = t.schedule.flags(t.cfg.train.epochs)
    loader = iter(t._epoch_loader(3, 0))
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    joint = step.forward_loss is not None  # train.compile_loss: one compiled call, one range
    names = (
        "data",
        "forward+loss" if joint else "forward",
        *(() if joint else ("loss",)),
        "backward",
        "optimizer",
    )
    t.model.train()
    with profile(activities=acts) as prof:
        for _ in range(steps):
            with record_function("data"):
                try:
                    b = next(loader)
                except StopIteration:
                    loader = iter(t._epoch_loader(4, 0))
                    b = next(loader)
                b = to_device(b, dev, t.cfg.train.channels_last)
            if joint:
                with record_function("forward+loss"):
                    loss = step.forward_loss(b, flags)
            else:
                with record_function("forward"), step.autocast():
                    out = step.forward(b["image"])
                with record_function("loss"):
                    loss = t.loss_fn(out, b, flags)
            with record_function("backward"):
                step.scaler.scale(loss).backward()
            with record_function("optimizer"):
                step.update()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    times: dict[str, float] = {}
    for ev in prof.key_averages():
        if ev.key in names:
            dev_t = float(getattr(ev, "device_time_total", 0.0) or getattr(ev, "cuda_time_total", 0.0) or 0.0)
            times[ev.key] = (
                dev_t if (dev.type == "cuda" and ev.key != "data" and dev_t > 0) else ev.cpu_time_total
            )
    total = sum(times.values()) or 1.0
    return {k: 100.0 * times.get(k, 0.0) / total for k in names}


# ------------------------------------------------------------------------------------------------------------
# 4. short training run with test metrics


def _test_metrics(a: argparse.Namespace, data: Path | None, ckpt: Path) -> dict[str, Any]:
    """IoU, nIoU, Pd, Fa of a checkpoint on NUDT-SIRST's test split (synthetic test scenes without data)."""
    import torch

    from irsam2.checkpoint import model_from_checkpoint
    from irsam2.data import IRSTDDataset, SyntheticIRDataset
    from irsam2.engine.evaluate import evaluate_model

    model, payload = model_from_checkpoint(ckpt)
    if data is None:
        test: Any = SyntheticIRDataset(
            a.eval_limit or 64, size=a.size, seed=11, train=False, norm=payload["norm"]
        )
    else:
        test = IRSTDDataset(data, split="test", preset="nudt", norm=payload["norm"])
    if a.eval_limit:
        test = torch.utils.data.Subset(test, range(min(a.eval_limit, len(test))))
    t1 = time.perf_counter()
    res = evaluate_model(model.to(a.device), test, device=a.device, batch_size=16, roc=False)
    m = res.metrics[0]
    return {
        "test": "NUDT-SIRST test split" if data is not None else "synthetic test scenes",
        "eval_s": time.perf_counter() - t1,
        "test_frames": len(test),
        "iou": m["iou"],
        "niou": m["niou"],
        "pd": m["pd"],
        "fa": m["fa"],
        "head_enabled": bool(payload.get("head_enabled")),
        "checkpoint": str(ckpt),
    }


def short_run(a: argparse.Namespace, data: Path | None, out: Path, row: str) -> dict[str, Any]:
    """A fixed-step run (seed 42) with the release's loss and the head on, then its test metrics (on
    synthetic scenes where no NUDT-SIRST folder is found)."""
    from irsam2.engine.trainer import train

    o = _train_overrides(a, data, out / "short_run", a.run_steps_per_epoch, row)
    # the full CSA loss with the head on from the first step (loss.schedule off: the release's 20-epoch
    # warm-up and gate do not fit a short run); validation only at the end
    o |= {"train.epochs": a.run_epochs, "train.val_every": a.run_epochs}
    t0 = time.perf_counter()
    r = train("nudt" if data is not None else "synthetic", overrides=o)
    train_s = time.perf_counter() - t0
    return {
        "row": row,
        "steps": a.run_epochs * a.run_steps_per_epoch,
        "epochs": a.run_epochs,
        "train_s": train_s,
        **_test_metrics(a, data, r.best or r.last),
        "final_train_loss": r.history[-1]["train_loss"] if r.history else None,
    }


def full_recipe(a: argparse.Namespace, data: Path | None, out: Path) -> dict[str, Any]:
    """The whole from-scratch recipe (``--recipe scratch``: no SAM2 weights reach the GPU machine) for
    ``--epochs`` epochs of the NUDT-SIRST preset, under ``--budget-s`` of training time (the trainer's
    ``train.time_budget_s``: it stops between steps and keeps its checkpoints), then the test metrics of the
    checkpoint that validation picked. A run the budget stopped says so (status, epochs done)."""
    from irsam2.engine.trainer import train

    o = {
        "recipe": "scratch",
        "out": str(out / "full_recipe"),
        "train.device": a.device,
        "train.amp": a.amp,
        "train.seed": 42,
        "train.progress": False,
        "train.tensorboard": False,
        "train.epochs": a.epochs,
        "train.val_every": a.val_every,
        "train.log_every": 50,
        "train.time_budget_s": a.budget_s,
        "train.last_every": a.val_every,
        "data.workers": a.workers,
        # the preset's batch 12, 256 x 256 crops and 10 % validation on a GPU; the smoke's sizes on a CPU
        "train.batch_size": a.batch,
        "data.crop_size": a.size,
        "data.val_fraction": a.val_fraction,
    }
    if TRAIN_ROWS[a.recipe_row]["train.compile"]:
        o |= {"train.compile_mode": a.train_compile_mode, "train.compile_backend": a.compile_backend}
    o |= TRAIN_ROWS[a.recipe_row]
    if data is not None:
        o |= {"data.root": str(data), "data.dataset": "nudt"}
    else:
        o |= {"data.synthetic.size": a.size, "data.synthetic.num_images": max(4 * a.batch, 16)}
    if a.full_steps:
        o["train.max_steps_per_epoch"] = a.full_steps
    t0 = time.perf_counter()
    r = train("nudt" if data is not None else "synthetic", overrides=o)
    train_s = time.perf_counter() - t0
    return {
        "row": a.recipe_row,
        "epochs_planned": a.epochs,
        "epochs_done": r.epochs_done,
        "status": r.status,
        "best_val_iou": r.best_val_iou,
        "train_s": train_s,
        "first_step_s": r.first_step_s,
        **_test_metrics(a, data, r.best or r.last),
    }


# ------------------------------------------------------------------------------------------------------------
# 5. inference speed and parity


def _frames(data: Path | None, n: int, size: int, norm: dict | None) -> Any:
    import torch

    if data is None:
        from irsam2.data import SyntheticIRDataset

        ds = SyntheticIRDataset(n, size=size, seed=5, train=False, norm=norm)
    else:
        from irsam2.data import IRSTDDataset

        ds = IRSTDDataset(data, split="test", preset="nudt", norm=norm)
    items = [ds[i] for i in range(min(n, len(ds)))]
    x = torch.stack([it["image"][:, :size, :size] for it in items])
    if x.shape[-1] != size or x.shape[-2] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x


def inference(a: argparse.Namespace, data: Path | None, ckpt: str | None) -> dict[str, Any]:
    import torch

    from irsam2.models.speed import make_runner, measure_fps

    if ckpt:
        from irsam2.checkpoint import model_from_checkpoint

        model, payload = model_from_checkpoint(ckpt)
        norm = payload.get("norm")
        source = "trained weights (section 4)"
    else:
        from irsam2.models import create_model

        torch.manual_seed(0)
        model, norm, source = create_model("irsam2_t", "official"), None, "random weights"
    model.set_head_enabled(True)
    dev = torch.device(a.device)
    model = model.to(dev).eval()
    cuda = dev.type == "cuda"
    variants = [("fp32 eager", {}), ("bf16 eager", {"bf16": True})]
    if cuda:
        variants.append(("bf16 + CUDA graphs", {"bf16": True, "cuda_graphs": True}))
    if a.infer_compile:
        variants.append(("bf16 + compile", {"bf16": True, "compile": True, "compile_mode": a.compile_mode}))
        # inductor's kernels replayed as CUDA graphs: at batch 1 the launches, not the arithmetic, bound a
        # forward of several hundred kernels; the same inductor graph as the row above (its cache serves it)
        variants.append(
            (
                "bf16 + compile + CUDA graphs",
                {"bf16": True, "compile": True, "compile_mode": "reduce-overhead"},
            )
        )
    speeds = []
    for batch in a.infer_batches:
        for name, kw in variants:
            args = (model, dev, batch, (a.size, a.size), a.infer_iters, a.infer_warmup)
            r = _guarded(f"{name} batch {batch}", lambda: measure_fps(*args, **kw))  # noqa: B023 - called here
            speeds.append({"variant": name, "batch": batch} | r)
            if "error" not in r:
                log(
                    f"  {name:<20} batch {batch:>3}: {r['fps']:9.1f} FPS "
                    f"(first call {r['first_call_s']:.1f} s)"
                )
    # parity on real frames: each fast variant against fp32 eager, one fixed batch
    pb = max(a.infer_batches)
    frames = _frames(data, a.parity_frames, a.size, norm).to(dev)
    ref_chunks, outs = [], {name: [] for name, _ in variants[1:]}
    for i in range(0, frames.shape[0] - pb + 1, pb):
        x = frames[i : i + pb].contiguous()
        ref_chunks.append(make_runner(model, x)()[0].float().clone())
    failed = {}
    for name, kw in variants[1:]:
        for i in range(0, frames.shape[0] - pb + 1, pb):
            x = frames[i : i + pb].contiguous()
            r = _guarded(f"parity {name}", lambda: {"out": make_runner(model, x, **kw)()[0].float().clone()})  # noqa: B023
            if "error" in r:
                failed[name] = r["error"]
                break
            outs[name].append(r["out"])
    ref = torch.cat(ref_chunks)
    parity: list[dict[str, Any]] = []
    for name, chunks in outs.items():
        if name in failed:
            parity.append({"variant": name, "error": failed[name]})
            continue
        o = torch.cat(chunks)
        inter = ((o > 0) & (ref > 0)).sum().item()
        union = ((o > 0) | (ref > 0)).sum().item()
        parity.append(
            {
                "variant": name,
                "mask_iou": inter / union if union else 1.0,  # both empty: identical masks
                "mask_pixels": int(union),  # 0 says the IoU was vacuous (no target predicted by either)
                "max_abs_logit_diff": (o - ref).abs().max().item(),
                "ref_logit_range": [ref.min().item(), ref.max().item()],
                "frames": int(ref.shape[0]),
            }
        )
        p = parity[-1]
        log(f"  parity {name:<20}: mask IoU {p['mask_iou']:.4f}, max |dlogit| {p['max_abs_logit_diff']:.3g}")
    return {"weights": source, "speeds": speeds, "parity": parity}


# ------------------------------------------------------------------------------------------------------------


def _err(msg: str) -> str:
    return msg if msg.startswith("not started") else f"FAILED: {msg}"


def _test_line(m: dict[str, Any]) -> str:
    return (
        f"{m['test']} ({m['test_frames']} frames): IoU {m['iou']:.2f} nIoU {m['niou']:.2f} Pd {m['pd']:.2f} "
        f"Fa {m['fa']:.2f}"
    )


def summary(res: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    env = res.get("env", {})
    machine = f"{env.get('gpu', 'CPU')} | torch {env.get('torch')} | mode {res['mode']}"
    rows.append(("machine", machine))
    if "install" in res:
        ins = res["install"]
        rows.append(
            ("install", f"from wheels: {ins['installed_from_wheels'] or 'none needed'}; {ins['package']}")
        )
    if "sync_test" in res:
        st = res["sync_test"]
        rows.append(
            ("sync-free step test", f"{'PASS' if st['returncode'] == 0 else 'FAIL'}: {st['summary']}")
        )
    for tr in res.get("train_speed", []):
        if "error" in tr:
            rows.append((f"train {tr['row']}", _err(tr["error"])))
            continue
        src = "on-device data" if tr["on_device"] else f"{tr['workers']} loader workers"
        comp = f"compile ({tr['compile_backend']}, mode {tr['compile_mode']})" if tr["compile"] else "eager"
        rows.append(
            (
                f"train {tr['row']}",
                f"{tr['images_per_s']:.1f} img/s ({tr['amp']}, batch {res['args']['batch']}, "
                f"{res['args']['size']}px, {src}, {comp}, first step {tr['first_step_s']:.1f} s)",
            )
        )
        rows.append(("  profile %", ", ".join(f"{k} {v:.0f}" for k, v in tr["profile"].items())))
    run = res.get("short_run")
    if run and "error" in run:
        rows.append(("short run", _err(run["error"])))
    elif run:
        rows.append(
            (
                "short run",
                f"{run['steps']} steps ({run['row']}) in {run['train_s']:.0f} s; {_test_line(run)}",
            )
        )
    fr = res.get("full_recipe")
    if fr and "error" in fr:
        rows.append(("full recipe", _err(fr["error"])))
    elif fr:
        rows.append(
            (
                "full recipe",
                f"{fr['status']}: {fr['epochs_done']} of {fr['epochs_planned']} epochs ({fr['row']}) in "
                f"{fr['train_s']:.0f} s, first step {fr['first_step_s'] or 0:.1f} s",
            )
        )
        rows.append(
            (
                "  test",
                f"{_test_line(fr)}; best validation IoU {fr['best_val_iou']}",
            )
        )
    inf = res.get("inference")
    if inf and "error" in inf:
        rows.append(("inference", _err(inf["error"])))
    elif inf:
        for s in inf["speeds"]:
            rows.append(
                (
                    f"infer {s['variant']} b{s['batch']}",
                    f"FAILED: {s['error']}"
                    if "error" in s
                    else f"{s['fps']:.1f} FPS (first call {s['first_call_s']:.1f} s)",
                )
            )
        for p in inf["parity"]:
            if "error" in p:
                rows.append((f"parity {p['variant']}", f"FAILED: {p['error']}"))
                continue
            rows.append(
                (
                    f"parity {p['variant']}",
                    f"mask IoU {p['mask_iou']:.4f} over {p['mask_pixels']} px, max |dlogit| "
                    f"{p['max_abs_logit_diff']:.3g} ({p['frames']} frames, {inf['weights']})",
                )
            )
    rows.append(("total time", f"{res['total_s']:.0f} s"))
    w = max(len(k) for k, _ in rows)
    line = "-" * (w + 3 + max(len(v) for _, v in rows))
    return "\n".join([line] + [f"{k:<{w}} | {v}" for k, v in rows] + [line])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepare", action="store_true", help="development machine: fetch wheels, copy the data")
    ap.add_argument("--install", action="store_true", help="install what `make test` installs, offline")
    ap.add_argument(
        "--cpu-smoke", action="store_true", help="small sizes on the CPU (automatic without CUDA)"
    )
    ap.add_argument("--data", help="NUDT-SIRST folder (default: .gpu_data/, shared/data/ or ../shared/data/)")
    ap.add_argument(
        "--synthetic", action="store_true", help="synthetic scenes even where NUDT-SIRST is found"
    )
    ap.add_argument("--out", default=None, help="folder for gpu_check.json and the run (default: a temp dir)")
    ap.add_argument("--skip", action="append", default=[], choices=["sync", "train", "run", "infer"])
    ap.add_argument(
        "--train-rows",
        default=",".join(DEFAULT_ROWS),
        help=f"training-throughput rows, comma-separated, of {', '.join(TRAIN_ROWS)} (default: "
        f"{', '.join(DEFAULT_ROWS)})",
    )
    ap.add_argument(
        "--deadline-s",
        type=float,
        default=None,
        help="start no part after this many seconds (default 450 on a GPU: a device call ends at 600 s)",
    )
    ap.add_argument("--train-compile-mode", default=None, help="torch.compile mode of the compiled rows")
    ap.add_argument("--no-compile", action="store_true", help="leave torch.compile out of the inference part")
    ap.add_argument(
        "--compile-mode", default=None, help="torch.compile mode for inference (e.g. max-autotune)"
    )
    g = ap.add_argument_group("the full recipe (a call of its own: --full-recipe runs only this section)")
    g.add_argument("--full-recipe", action="store_true", help="train the from-scratch recipe, test metrics")
    g.add_argument("--epochs", type=int, default=None, help="epochs (default 300 on a GPU, 2 on a CPU)")
    g.add_argument("--budget-s", type=float, default=None, help="training-time budget (default 420 s GPU)")
    g.add_argument("--val-every", type=int, default=None, help="validate every N epochs (default 10 GPU)")
    g.add_argument("--recipe-row", default="on-device", choices=list(TRAIN_ROWS), help="data source, compile")
    g.add_argument("--full-steps", type=int, default=None, help="cap on the steps of an epoch (CPU smoke)")
    a = ap.parse_args()
    if a.prepare:
        return prepare()
    rows = [r.strip() for r in a.train_rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in TRAIN_ROWS]
    if unknown or not rows:
        ap.error(f"--train-rows: unknown {unknown or 'empty'}; choose from {', '.join(TRAIN_ROWS)}")
    t_start = time.perf_counter()
    res: dict[str, Any] = {}
    if a.install:
        res["install"] = install()
    import torch

    smoke = a.cpu_smoke or not torch.cuda.is_available()
    res["mode"] = "cpu-smoke" if smoke else "gpu"
    # the sizes of the issue on a GPU; a few seconds each on a CPU
    a.device = "cpu" if smoke else "cuda"
    a.amp = "none" if smoke else "bf16"
    a.batch, a.size = (2, 64) if smoke else (12, 256)
    a.workers = 1 if smoke else min(12, max((os.cpu_count() or 2) - 2, 1))
    a.val_fraction = 0.02 if smoke else 0.1
    a.speed_steps, a.profile_steps = (2, 2) if smoke else (40, 10)
    # CPU: dynamo's graph run eagerly (no C++ to generate); tests/test_compile.py checks the aot_eager graphs
    a.compile_backend = "eager" if smoke else "inductor"
    a.run_epochs, a.run_steps_per_epoch = (2, 2) if smoke else (6, 50)  # GPU: 300 steps, 3,600 images
    a.eval_limit = 8 if smoke else 0
    a.infer_batches = (1, 2) if smoke else (1, 16)
    a.infer_iters, a.infer_warmup = (2, 1) if smoke else (50, 10)
    a.infer_compile = not smoke and not a.no_compile  # CPU: compile is covered by tests/test_compile.py
    a.parity_frames = 4 if smoke else 64
    a.epochs = a.epochs or (2 if smoke else 300)
    a.budget_s = a.budget_s if a.budget_s is not None else (120.0 if smoke else 420.0)
    a.val_every = a.val_every or (1 if smoke else 10)
    a.full_steps = a.full_steps if a.full_steps is not None else (2 if smoke else None)
    a.deadline_s = a.deadline_s if a.deadline_s is not None else (None if smoke else 450.0)
    data = None if a.synthetic else find_data(a.data)
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="gpu_check_"))
    out.mkdir(parents=True, exist_ok=True)
    if (out / "gpu_check.json").exists():
        raise SystemExit(f"{out / 'gpu_check.json'}: an earlier check's results; pass another --out")
    res["args"] = {"batch": a.batch, "size": a.size, "data": str(data) if data else None}
    res["env"] = environment()
    log(f"== environment: {res['env']}")
    if a.full_recipe:
        log(f"== full recipe: {a.epochs} epochs, budget {a.budget_s:.0f} s, {a.recipe_row}")
        res["full_recipe"] = _guarded("full recipe", full_recipe, a, data, out)
        log(f"  {res['full_recipe']}")
        return _finish(res, out, t_start)

    def late() -> str | None:
        """Why a part is not started: the call's time limit is near (the table still prints)."""
        spent = time.perf_counter() - t_start
        if a.deadline_s and spent > a.deadline_s:
            return f"not started: {spent:.0f} s spent, past --deadline-s {a.deadline_s:.0f}"
        return None

    if "sync" not in a.skip:
        log("== sync-free training step test")
        res["sync_test"] = sync_test()
        _save(res, out)
    run_row = "loader"
    if "train" not in a.skip:
        res["train_speed"] = []
        for row in rows:
            log(f"== training throughput: {row}")
            if late():
                res["train_speed"].append({"row": row, "error": late()})
                continue
            r = {"row": row} | _guarded(row, train_speed, a, data, row)
            res["train_speed"].append(r)
            _save(res, out)
            if "error" in r:
                continue
            log(
                f"  {r['images_per_s']:.1f} img/s (first step {r['first_step_s']:.1f} s); "
                f"profile % {r['profile']}"
            )
        # the short run takes the faster data source, eager: its seconds compare across calls without a
        # compile time in them
        eager = [r for r in res["train_speed"] if "error" not in r and not r["compile"]]
        if eager:
            run_row = max(eager, key=lambda r: r["images_per_s"])["row"]
    ckpt = None
    if "run" not in a.skip and late():
        res["short_run"] = {"row": run_row, "error": late()}
    elif "run" not in a.skip:
        log(f"== short training run ({run_row})")
        res["short_run"] = {"row": run_row} | _guarded("short run", short_run, a, data, out, run_row)
        ckpt = res["short_run"].get("checkpoint")
        _save(res, out)
        log(f"  {res['short_run']}")
    if "infer" not in a.skip and late():
        res["inference"] = {"error": late()}
    elif "infer" not in a.skip:
        log("== inference")
        res["inference"] = _guarded("inference", inference, a, data, ckpt)
    ok = res.get("sync_test", {}).get("returncode", 0) == 0
    return _finish(res, out, t_start, ok)


def _save(res: dict[str, Any], out: Path) -> None:
    """gpu_check.json as it stands: a call killed at its time limit still returns what ran before."""
    tmp = out / "gpu_check.json.tmp"
    tmp.write_text(json.dumps(res, indent=1, default=str))
    tmp.replace(out / "gpu_check.json")


def _guarded(what: str, fn: Any, *args: Any) -> dict[str, Any]:
    """``fn(*args)``, or ``{"error": ...}``: one part failing on this machine (a compiler error, out of
    memory) must not cost the one GPU call the others."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - reported in the table and the JSON, the call goes on
        first = (str(e).strip().splitlines() or [""])[0]
        log(f"  {what} FAILED: {type(e).__name__}: {first}")
        return {"error": f"{type(e).__name__}: {first}"[:800]}


def _finish(res: dict[str, Any], out: Path, t_start: float, ok: bool = True) -> int:
    res["total_s"] = time.perf_counter() - t_start
    _save(res, out)
    log(summary(res))
    return 0 if ok else 1


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
