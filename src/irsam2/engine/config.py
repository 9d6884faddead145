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


@dataclass
class ModelConfig:
    """Which network to build: ``irsam2.create_model(name, variant, **overrides)``."""

    name: str = "irsam2_t"
    variant: str = "official"  # "official" (the release) or "paper" (spec section 9)
    overrides: dict[str, Any] = field(default_factory=dict)  # ablation switches, passed to create_model
    pretrained: str | None = None  # SAM2 / SAM2.1 Hiera-Tiny checkpoint; the trunk is then frozen
    # (overrides.freeze_trunk: false trains it anyway)


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
    val_fraction: float = 0.1  # validation split carved from the training split (model selection, gate)
    copy_paste: bool = False  # copy-paste of target crops (the release uses it on IRSTD-1k)
    augment: bool = True
    workers: int = 2
    strict: bool = False  # refuse data repairs (mask size mismatch, grey mask values) instead of warning
    # masks: pixel > mask_threshold is a target; None = the default rule (> 127 for 0-255 masks, > 0 for 0/1)
    mask_threshold: float | None = None
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class OptimConfig:
    name: str = "adan"  # adan (spec 8) | adamw | sgd
    lr: float = 0.01
    weight_decay: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.98, 0.92, 0.99])
    eps: float = 1e-8
    grad_clip: float | None = None


@dataclass
class SchedConfig:
    name: str = "cosine"  # cosine (stepped per epoch, spec 8) | constant
    min_lr: float = 1e-6


@dataclass
class LossConfig:
    name: str = "csa"  # csa | sls | bce | soft_iou | dice | target_centric
    w_aux: float = 0.2
    schedule: bool = True  # the release's warm-up schedule and gate (spec 7); off = full loss from epoch 0
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
    val_batch_size: int = 4
    progress: bool = True  # tqdm bar
    tensorboard: bool = True
    best_half: bool = False  # store best.pt's weights in float16 (half the size; last.pt stays float32)


@dataclass
class Config:
    """The whole training configuration (one YAML file)."""

    name: str = "run"
    out: str = "runs/run"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML / checkpoint friendly)."""
        return dataclasses.asdict(self)

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
            (self.data.workers >= 0, "data.workers", "must be >= 0"),
            (self.data.synthetic.num_images >= 2, "data.synthetic.num_images", "must be >= 2"),
            (self.data.synthetic.size % 32 == 0, "data.synthetic.size", "must be a multiple of 32"),
            (self.optim.name in ("adan", "adamw", "sgd"), "optim.name", "must be adan, adamw or sgd"),
            (self.optim.lr > 0, "optim.lr", "must be > 0"),
            (self.optim.weight_decay >= 0, "optim.weight_decay", "must be >= 0"),
            (
                len(self.optim.betas) == (3 if self.optim.name == "adan" else 2),
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
            (self.sched.name in ("cosine", "constant"), "sched.name", "must be cosine or constant"),
            (self.sched.min_lr >= 0, "sched.min_lr", "must be >= 0"),
            (
                self.loss.name in ("csa", "sls", "bce", "soft_iou", "dice", "target_centric"),
                "loss.name",
                "must be one of csa, sls, bce, soft_iou, dice, target_centric",
            ),
            (self.loss.w_aux >= 0, "loss.w_aux", "must be >= 0"),
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


def load_config(
    preset_or_path: str | None = None, overrides: list[str] | dict[str, Any] | None = None
) -> Config:
    """Load a preset or YAML file, apply ``key=value`` overrides, check every key and value."""
    data: dict[str, Any] = {}
    if preset_or_path is not None:
        path = resolve_config_path(preset_or_path)
        data = _read_yaml(path)
        try:
            return config_from_dict(apply_overrides(data, overrides or []))
        except UserError as e:
            raise UserError(f"{path}: {e}") from None
    return config_from_dict(apply_overrides(data, overrides or []))


def save_config(cfg: Config, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return path
