"""Typed training configuration: dataclasses loaded from YAML presets with ``--set a.b=value`` overrides.

The presets in ``irsam2/configs/*.yaml`` carry the training recipe of spec section 8 (Adan, lr 0.01, weight
decay 1e-4, betas (0.98, 0.92, 0.99), eps 1e-8, cosine annealing to 1e-6 over 300 epochs stepped per epoch,
batch 12, 256x256 crops, fixed seed) and the loss schedule of spec section 7. Every key is checked: an unknown
key or a value of the wrong type raises :class:`irsam2.utils.UserError` naming the key."""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from irsam2.utils import UserError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

#: Training recipes: overrides applied on top of a dataset preset, before the user's ``--set`` overrides.
#: ``release`` is the authors' recipe (spec sections 7-8: Adan 0.01, per-epoch cosine, soft IoU warm-up then
#: SLS, gate); it assumes the SAM2 trunk weights. ``scratch`` is for a trunk from random weights (no SAM2
#: checkpoint): the release's region losses give no gradient on target-free crops and almost none on a
#: flooded frame, and Adan at 0.01 with no warm-up is unstable for a random transformer; measured in
#: docs/results.md ("Learning from scratch").
RECIPES: dict[str, dict[str, Any]] = {
    "release": {},
    "common": {},  # the dataset preset's recipe, whatever the network (deep baselines included)
    "paper": {},  # the network's own paper recipe: ``irsam2.models.model_recipe`` (IR-SAM2: the release's)
    "scratch": {
        "loss.name": "bce_iou",
        "loss.pos_weight": 10.0,
        "loss.schedule": False,  # no warm-up/gate: every term and the RHPM head from the first step
        "optim.name": "adamw",
        "optim.lr": 2.0e-3,
        "optim.betas": [0.9, 0.999],
        "optim.weight_decay": 1.0e-4,
        "sched.name": "warmup_cosine",
        "sched.warmup_fraction": 0.05,
        "data.target_crop_p": 0.5,  # half the crops hold a target: a positive signal in every step
        # no crop cuts a target: cut targets at crop edges taught the network that a blob at an image edge
        # is a target; the frame edge then held ~40 % of the false-alarm pixels (docs/results.md, issue 11,
        # session 9)
        "data.whole_targets": True,
        # the paper's per-target term finds the dim 1-9 px targets a short training misses, and the
        # hard-negative term charges the isolated false alarms it adds: on NUDT-SIRST at 596 steps Pd 86.8 ->
        # 91.9 (docs/results.md, issue 11, session 7)
        "loss.w_target": 0.25,
        "loss.w_hard": 0.15,
        # no zoom and no blur: the test runs at native scale, and the release's zoom U[0.5, 2] and blur
        # spread or shrink the dim 1-3 px targets; on NUDT-SIRST at 596 steps IoU 24.5 -> 53.7, Fa 928 -> 82
        # (docs/results.md, issue 11, session 6); flips stay
        "data.scale": [1.0, 1.0],
        "data.blur_p": 0.0,
    },
}


@dataclass
class ModelConfig:
    """Which network to build: ``irsam2.create_model(name, variant, **overrides)``."""

    name: str = "irsam2_t"
    variant: str = "official"  # "official" (the release) or "paper" (spec section 9)
    overrides: dict[str, Any] = field(default_factory=dict)  # ablation switches, passed to create_model
    # SAM2 / SAM2.1 Hiera-Tiny weights: a path, or a name (sam2.1_hiera_tiny, sam2_hiera_tiny) downloaded once
    # into the torch hub cache; the trunk is then frozen (overrides.freeze_trunk: false trains it anyway).
    # null: from scratch, with a warning at start (and in <out>/warnings.txt); "none": from scratch, silently
    pretrained: str | None = None


@dataclass
class SyntheticConfig:
    """In-memory synthetic infrared scenes (irsam2.data.synthetic) used when ``data.root`` is not set."""

    num_images: int = 64
    size: int = 64
    seed: int = 0


@dataclass
class DataConfig:
    root: str | None = None  # dataset folder; None trains on synthetic scenes
    dataset: str | None = None  # benchmark preset name for the release's split (irstd1k, nudt, nuaa)
    split: str | None = None  # explicit training split file (wins over the preset)
    crop_size: int = 256
    # training zoom: long side = U[scale] x scale_base; null = the frame's own long side (the test runs at
    # native resolution), whatever the crop size
    scale_base: int | None = None
    scale: list[float] = field(default_factory=lambda: [0.5, 2.0])  # the zoom's range U[lo, hi] (release)
    blur_p: float = 0.5  # probability of the Gaussian blur (sigma U[0, 1] px) of a training crop (release)
    target_crop_p: float = 0.0  # share of training crops placed to hold a target pixel (0: uniform crops)
    whole_targets: bool = False  # training crops never cut a target (data.transforms.TrainAugment)
    val_fraction: float = 0.1  # validation split carved from the training split (model selection, gate)
    copy_paste: bool = False  # copy-paste of target crops (the release uses it on IRSTD-1k)
    augment: bool = True
    # hold the training split on train.device and build each batch there with batched tensor ops (crop,
    # target_crop_p, zoom, flip, blur: irsam2.data.on_device); no DataLoader workers. Frames of mixed sizes
    # are fine (each keeps its own size). Not with copy_paste (not implemented in batch: refused). Per-target
    # annotations come from the frame's components, so a target cut in two by a crop edge stays one target.
    on_device: bool = False
    workers: int = 2
    prefetch: int = 4  # batches each loader worker prepares ahead (pinned memory on CUDA)
    strict: bool = False  # refuse data repairs (mask size mismatch, grey mask values) instead of warning
    # masks: pixel > mask_threshold is a target; None = the default rule (> 127 for 0-255 masks, > 0 for 0/1)
    mask_threshold: float | None = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class OptimConfig:
    name: str = "adan"  # adan (spec 8) | adamw | sgd | adagrad (the ACM/DNANet papers' optimiser)
    lr: float = 0.01
    weight_decay: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.98, 0.92, 0.99])
    eps: float = 1e-8
    grad_clip: float | None = None
    # auto: torch's fused kernel for adamw / sgd / adagrad where this torch has one for the device (one pass
    # over all weights; on a 2-core CPU AdamW's step takes 46 ms instead of 130 at the demo's size,
    # docs/results.md); true: required (an error where torch has none); false: torch's per-tensor loop.
    # Adan has no fused form. Fused and unfused agree to rounding, not bit for bit.
    fused: bool | str = "auto"


@dataclass
class SchedConfig:
    name: str = "cosine"  # cosine (stepped per epoch, spec 8) | warmup_cosine (per step) | constant
    min_lr: float = 1e-6
    warmup_steps: int = 0  # warmup_cosine: linear warm-up from 0 over this many optimizer steps ...
    warmup_fraction: float = 0.0  # ... or this fraction of all steps, whichever is larger


@dataclass
class LossConfig:
    name: str = "csa"  # csa | sls | bce | soft_iou | dice | target_centric | bce_iou
    w_aux: float = 0.2
    pos_weight: float = 1.0  # bce_iou: weight of the positive (target) pixels in the BCE term
    w_target: float = 0.0  # bce_iou: weight of the target-centric term L_aux added to it (0: none)
    w_hard: float = 0.0  # bce_iou: weight of the hard-negative term (0: none; irsam2.losses.basic)
    hard_fraction: float = 0.005  # bce_iou: share of each frame's pixels the hard-negative term charges
    # true: the variant's own schedule (official: the release's warm-up and gate, spec 7; paper: none, the
    # full CSA with the head open from the first step, spec 9); false or "none": no schedule for either
    # variant; "release": the release's schedule for either variant. See Config.release_schedule().
    schedule: bool | str = True
    warmup_epochs: int = 20
    gate_iou: float = 0.40  # validation IoU (fraction) that opens the gate


@dataclass
class TrainConfig:
    epochs: int = 300
    batch_size: int = 12  # the recipe's (global) batch
    micro_batch: int | None = None  # per-step batch per process; gradient accumulation makes up the rest
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (bf16 on CUDA when supported, else fp16; none on CPU) | bf16 | fp16 | none
    channels_last: bool = False
    sync_bn: bool = False  # SyncBatchNorm when running on several GPUs
    freeze_bn: bool = False  # BatchNorm layers use their running statistics and do not update them
    time_budget_s: float | None = None  # stop cleanly (with checkpoints) once this wall-clock budget is spent
    max_steps_per_epoch: int | None = None  # cap optimizer steps per epoch (smoke runs)
    val_every: int = 1
    ema: float = 0.0  # decay of a moving average of the weights (0: off); it is validated and kept as best.pt
    last_every: int = 1  # write last.pt every N epochs, and always at the end or on a stop
    val_batch_size: int = 4
    progress: bool = True  # tqdm bar on a terminal (a log file gets the one line per epoch only)
    log_every: int = 25  # read the step losses back (and check them for NaN) every N steps: one host sync
    compile: bool = False  # torch.compile the model's forward (first step reports the compile time)
    compile_mode: str | None = None  # torch.compile mode: null (default), reduce-overhead, max-autotune
    compile_backend: str = "inductor"  # torch.compile backend (aot_eager / eager: quick checks on a CPU)
    # with train.compile: forward and loss compiled as one function (engine/step.py compile_forward_loss), so
    # the loss and its backward run as fused kernels too. Device batches (data.on_device) have fixed shapes;
    # the loader's number of targets changes per batch (one recompilation, then that length is dynamic)
    compile_loss: bool = False
    tensorboard: bool = True
    best_half: bool = False  # store best.pt's weights in float16 (half the size; last.pt stays float32)


@dataclass
class Config:
    """The whole training configuration (one YAML file)."""

    name: str = "run"
    out: str = "runs/run"
    recipe: str = "release"  # release (spec 8) | scratch (trunk from random weights): see RECIPES
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML / checkpoint friendly)."""
        return dataclasses.asdict(self)

    def release_schedule(self) -> bool:
        """Whether training follows the release's loss schedule and head gate (spec 7) rather than the full
        CSA with the head open from the first step: ``loss.schedule`` true picks the variant's own (release
        for ``official``, none for ``paper``, spec section 9); false / ``"none"`` and ``"release"`` force
        either for any variant."""
        mode = self.loss.schedule
        if mode is True:
            return self.model.variant == "official"
        return mode == "release"

    def validate(self) -> Config:
        """Cross-field checks that the type checks cannot express."""
        checks = [
            (self.model.variant in ("official", "paper"), "model.variant", "must be 'official' or 'paper'"),
            (
                self.data.crop_size > 0 and self.data.crop_size % 32 == 0,
                "data.crop_size",
                "must be a multiple of 32",
            ),
            (0.0 <= self.data.val_fraction < 1.0, "data.val_fraction", "must be in [0, 1)"),
            (0.0 <= self.data.target_crop_p <= 1.0, "data.target_crop_p", "must be in [0, 1]"),
            (self.data.workers >= 0, "data.workers", "must be >= 0"),
            (
                not (self.data.on_device and self.data.copy_paste),
                "data.on_device",
                "cannot be combined with data.copy_paste=true (copy-paste is not implemented for batches "
                "built on the device); set data.copy_paste=false or data.on_device=false",
            ),
            (self.data.synthetic.num_images >= 2, "data.synthetic.num_images", "must be >= 2"),
            (self.data.synthetic.size % 32 == 0, "data.synthetic.size", "must be a multiple of 32"),
            (
                self.optim.name in ("adan", "adamw", "sgd", "adagrad"),
                "optim.name",
                "must be adan, adamw, sgd or adagrad",
            ),
            (self.optim.fused in (True, False, "auto"), "optim.fused", "must be auto, true or false"),
            (self.optim.lr > 0, "optim.lr", "must be > 0"),
            (self.optim.weight_decay >= 0, "optim.weight_decay", "must be >= 0"),
            (
                self.optim.name == "adagrad"
                or len(self.optim.betas) == (3 if self.optim.name == "adan" else 2),
                "optim.betas",
                f"needs {3 if self.optim.name == 'adan' else 2} values for {self.optim.name}",
            ),
            (
                all(0.0 <= b < 1.0 for b in self.optim.betas),
                "optim.betas",
                "must each be in [0, 1)",
            ),
            (
                self.data.mask_threshold is None or self.data.mask_threshold >= 0,
                "data.mask_threshold",
                "must be >= 0",
            ),
            (
                self.sched.name in ("cosine", "warmup_cosine", "constant"),
                "sched.name",
                "must be cosine, warmup_cosine or constant",
            ),
            (self.sched.warmup_steps >= 0, "sched.warmup_steps", "must be >= 0"),
            (0.0 <= self.sched.warmup_fraction < 1.0, "sched.warmup_fraction", "must be in [0, 1)"),
            (self.recipe in RECIPES, "recipe", f"must be one of {', '.join(RECIPES)}"),
            (
                self.data.scale_base is None or self.data.scale_base > 0,
                "data.scale_base",
                "must be > 0 or null",
            ),
            (
                len(self.data.scale) == 2 and 0 < self.data.scale[0] <= self.data.scale[1],
                "data.scale",
                "must be [lo, hi] with 0 < lo <= hi",
            ),
            (0.0 <= self.data.blur_p <= 1.0, "data.blur_p", "must be in [0, 1]"),
            (self.sched.min_lr >= 0, "sched.min_lr", "must be >= 0"),
            (
                self.loss.name in ("csa", "sls", "bce", "soft_iou", "dice", "target_centric", "bce_iou"),
                "loss.name",
                "must be one of csa, sls, bce, soft_iou, dice, target_centric, bce_iou",
            ),
            (self.loss.w_aux >= 0, "loss.w_aux", "must be >= 0"),
            (self.loss.pos_weight > 0, "loss.pos_weight", "must be > 0"),
            (self.loss.w_target >= 0, "loss.w_target", "must be >= 0"),
            (self.loss.w_hard >= 0, "loss.w_hard", "must be >= 0"),
            (0 < self.loss.hard_fraction <= 1, "loss.hard_fraction", "must be in (0, 1]"),
            (
                self.loss.schedule in (True, False, "none", "release"),
                "loss.schedule",
                "must be true (the variant's own), false / none, or release",
            ),
            (self.train.epochs >= 1, "train.epochs", "must be >= 1"),
            (self.train.batch_size >= 1, "train.batch_size", "must be >= 1"),
            (
                self.train.micro_batch is None or self.train.micro_batch >= 1,
                "train.micro_batch",
                "must be >= 1",
            ),
            (
                self.train.amp in ("auto", "bf16", "fp16", "none"),
                "train.amp",
                "must be auto, bf16, fp16 or none",
            ),
            (self.train.val_every >= 1, "train.val_every", "must be >= 1"),
            (self.train.last_every >= 1, "train.last_every", "must be >= 1"),
            (0.0 <= self.train.ema < 1.0, "train.ema", "must be in [0, 1) (0 turns the average off)"),
            (self.train.log_every >= 1, "train.log_every", "must be >= 1"),
            (self.data.prefetch >= 1, "data.prefetch", "must be >= 1"),
            (
                self.train.compile_mode
                in (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
                "train.compile_mode",
                "must be null, default, reduce-overhead, max-autotune or max-autotune-no-cudagraphs",
            ),
            (
                self.train.compile_backend in ("inductor", "aot_eager", "eager"),
                "train.compile_backend",
                "must be inductor, aot_eager or eager",
            ),
            (
                not self.train.compile_loss or self.train.compile,
                "train.compile_loss",
                "needs train.compile (it compiles the loss together with the model's forward)",
            ),
            (self.train.val_batch_size >= 1, "train.val_batch_size", "must be >= 1"),
            (
                self.train.max_steps_per_epoch is None or self.train.max_steps_per_epoch >= 1,
                "train.max_steps_per_epoch",
                "must be >= 1",
            ),
        ]
        for ok, key, msg in checks:
            if not ok:
                raise UserError(f"config key {key!r} {msg} (got {_get(self, key)!r})")
        return self


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


# ----------------------------------------------------------------------------------------------------
# dict -> dataclass with type checks


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check (and gently convert) ``value`` against the annotation ``tp``; raise UserError naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0] if len(errors) == 1 else f"config key {key!r}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"config key {key!r}: expected a mapping of options, got {value!r}")
        return _from_dict(tp, value, key)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
        raise UserError(f"config key {key!r}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise UserError(f"config key {key!r}: expected an integer, got {value!r}")
        try:
            f = float(value)
        except ValueError:
            raise UserError(f"config key {key!r}: expected an integer, got {value!r}") from None
        if not f.is_integer():
            raise UserError(f"config key {key!r}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise UserError(f"config key {key!r}: expected a number, got {value!r}")
        try:
            f = float(value)  # YAML reads "1e-4" (no dot) as a string
        except (TypeError, ValueError):
            raise UserError(f"config key {key!r}: expected a number, got {value!r}") from None
        if f != f or f in (float("inf"), float("-inf")):
            raise UserError(f"config key {key!r}: expected a finite number, got {value!r}")
        return f
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise UserError(f"config key {key!r}: expected a string, got {value!r}")
        return str(value)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key {key!r}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"config key {key!r}: expected a mapping, got {value!r}")
        return {str(k): v for k, v in value.items()}
    raise UserError(f"config key {key!r}: unsupported type {_type_name(tp)}")  # pragma: no cover


def _from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            raise UserError(f"unknown config key {key!r} (known keys here: {', '.join(sorted(names))})")
        kwargs[k] = _coerce(v, hints[k], key)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build and validate a :class:`Config` from a nested dict (missing keys take the defaults)."""
    if not isinstance(data, dict):
        raise UserError(f"a config must be a mapping of options, got {type(data).__name__}")
    return _from_dict(Config, data).validate()


# ----------------------------------------------------------------------------------------------------
# presets, files, overrides


def list_presets() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML: {e}") from e
    except OSError as e:
        raise UserError(f"{path}: cannot read the config file: {e.strerror}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config file must hold a mapping of options at the top level")
    return data


def resolve_config_path(preset_or_path: str) -> Path:
    """A preset name (``irstd1k``) or a YAML file path."""
    p = Path(preset_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise UserError(f"{p}: no such config file (presets: {', '.join(list_presets())})")
        return p
    preset = CONFIG_DIR / f"{preset_or_path}.yaml"
    if not preset.is_file():
        raise UserError(f"unknown config preset {preset_or_path!r} (presets: {', '.join(list_presets())})")
    return preset


def parse_override(item: str) -> tuple[str, Any]:
    """``a.b=value`` -> (``a.b``, YAML-parsed value)."""
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.epochs=10")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise UserError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys in a nested dict (unknown keys are caught later, when the dataclasses are built).

    Keys below a free-form mapping (``model.overrides.k``) create entries; elsewhere a missing intermediate
    level is created too so that the error names the full key.
    """
    data = copy.deepcopy(data)
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(s) for s in overrides)
    for key, value in items:
        parts = key.split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise UserError(
                    f"--set {key}: {'.'.join(parts[: i + 1])!r} is a value, not a group of options"
                )
            node = nxt
        node[parts[-1]] = value
    return data


def with_recipe(data: dict[str, Any], overrides: list[str] | dict[str, Any] | None) -> dict[str, Any]:
    """``data`` with the overrides of the recipe named in ``overrides`` (``--recipe`` / ``recipe=``).

    A config file's own ``recipe`` key only records which recipe its values came from (a run's saved
    ``config.yaml`` already holds the resolved values, which must win on ``--resume``), so it is not
    re-applied."""
    if isinstance(overrides, dict):
        items = dict(overrides)
    else:
        items = dict(parse_override(o) for o in overrides or [])
    name = items.get("recipe")
    if name is None:
        return data
    if name not in RECIPES:
        raise UserError(f"config key 'recipe': unknown recipe {name!r} (recipes: {', '.join(RECIPES)})")
    recipe = RECIPES[name]
    if name == "paper":
        from irsam2.models import model_recipe

        model = items.get("model.name") or (data.get("model") or {}).get("name") or "irsam2_t"
        try:
            recipe = model_recipe(str(model))
        except ValueError as e:
            raise UserError(f"config key 'model.name': {e}") from None
    return apply_overrides({**data, "recipe": name}, recipe)


def load_config(
    preset_or_path: str | None = None, overrides: list[str] | dict[str, Any] | None = None
) -> Config:
    """Load a preset or YAML file, apply ``key=value`` overrides, check every key and value."""
    data: dict[str, Any] = {}
    if preset_or_path is not None:
        path = resolve_config_path(preset_or_path)
        data = _read_yaml(path)
        try:
            return config_from_dict(apply_overrides(with_recipe(data, overrides), overrides or []))
        except UserError as e:
            raise UserError(f"{path}: {e}") from None
    return config_from_dict(apply_overrides(with_recipe(data, overrides), overrides or []))


def save_config(cfg: Config, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return path
