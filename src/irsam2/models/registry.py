"""A timm-style registry of IR-SAM2 presets and ``create_model``.

A preset is a thin named constructor: a function registered under its name that returns the preset's own
overrides (e.g. the ablation ``irsam2_t_base`` turns CQG and the RHPM head off). ``create_model`` resolves
variant defaults, then the preset's overrides, then the caller's overrides, in that order.

Variants (spec section 9):

- ``official`` (the authors' release, which produced the paper's numbers): RHPM inverse FFT scaled by
  1/sqrt(hw), normalised radius grid zeroing radius <= r_cut, 3x3 fusion conv, CQG refine GELU(LN(Linear)),
  head input conv-stem X0 with sigmoid masks, head gate closed until the training engine opens it (and the
  engine's release loss schedule).
- ``paper`` (the text): consistent FFT normalisation, pixel radii from (h//2, w//2) with integer r_cut >= 1
  and zeroing d < r_cut, 1x1 fusion conv, CQG refine MLP(LN), head input raw image with sigmoid masks, head
  always on (and the full CSA loss from the first step in the engine).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from irsam2.models.irsam2 import IRSAM2, IRSAM2Config, config_fields
from irsam2.utils import UserError


class ModelConfigError(UserError, ValueError):
    """An unknown preset, variant or override key, or a bad override value."""


VARIANTS: dict[str, dict[str, Any]] = {
    "official": dict(
        rhpm_norm="official",
        rhpm_zeroing="<=",
        fusion_kernel=3,
        cqg_refine="linear",
        head_input="stem",
        head_enabled=False,
    ),
    "paper": dict(
        rhpm_norm="paper",
        rhpm_zeroing="<",
        fusion_kernel=1,
        cqg_refine="mlp",
        head_input="image",
        head_enabled=True,
    ),
}

_REGISTRY: dict[str, Callable[[], dict[str, Any]]] = {}


def register_model(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """Register a preset under its function's name; the function returns the preset's overrides."""
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models(pattern: str | None = None) -> list[str]:
    """Registered preset names, sorted; ``pattern`` filters with fnmatch syntax (``"irsam2_t*"``)."""
    import fnmatch

    names = sorted(_REGISTRY)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


@register_model
def irsam2_t() -> dict[str, Any]:
    """IR-SAM2 with Hiera-Tiny: CQG and RHPM head (the paper's model)."""
    return {}


@register_model
def irsam2_t_base() -> dict[str, Any]:
    """Ablation baseline (paper Table 2, row 1): no CQG (query = q_task), no RHPM head."""
    return dict(cqg=False, rhpm_head=False)


@register_model
def irsam2_t_cqg() -> dict[str, Any]:
    """Ablation: baseline + CQG."""
    return dict(cqg=True, rhpm_head=False)


@register_model
def irsam2_t_rhpm() -> dict[str, Any]:
    """Ablation: baseline + RHPM head."""
    return dict(cqg=False, rhpm_head=True)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def resolve_config(name: str, variant: str, overrides: dict[str, Any]) -> IRSAM2Config:
    """Variant defaults <- preset overrides <- caller overrides, validated into an ``IRSAM2Config``."""
    if name not in _REGISTRY:
        raise ModelConfigError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    if variant not in VARIANTS:
        raise ModelConfigError(
            f"unknown variant {variant!r} for model {name!r}; use one of {sorted(VARIANTS)}"
        )
    fields = config_fields()
    unknown = [k for k in overrides if k not in fields]
    if unknown:
        raise ModelConfigError(
            f"unknown override {unknown[0]!r} for model {name!r}"
            + (f" (and {unknown[1:]})" if unknown[1:] else "")
            + f"; valid overrides: {', '.join(sorted(fields))}"
        )
    values = {**VARIANTS[variant], **_REGISTRY[name](), **overrides}
    try:
        return IRSAM2Config(**values)
    except (TypeError, ValueError) as e:
        raise ModelConfigError(f"model {name!r} ({variant}): bad override: {e}") from e


def create_model(
    name: str = "irsam2_t",
    variant: str = "official",
    pretrained: str | os.PathLike | None = None,
    **overrides: Any,
) -> IRSAM2:
    """Build a registered IR-SAM2 preset.

    ``pretrained``: an official SAM2 / SAM2.1 Hiera-Tiny checkpoint, as a local path or by name
    (``"sam2.1_hiera_tiny"``, ``"sam2_hiera_tiny"``: downloaded once into the torch hub cache, see
    ``irsam2.models.hub``); its trunk weights are loaded strictly (``load_sam2_checkpoint``). None or
    ``"none"``: no weights. The trunk is frozen when ``freeze_trunk`` is True, or when it is None (default)
    and pretrained weights were loaded; otherwise it trains.
    """
    from irsam2.models.hub import is_no_weights

    cfg = resolve_config(name, variant, overrides)
    config = {"name": name, "variant": variant, "overrides": {k: _jsonable(v) for k, v in overrides.items()}}
    model = IRSAM2(cfg, config)
    if not is_no_weights(pretrained):
        from irsam2.models.hub import resolve_pretrained
        from irsam2.models.sam2_checkpoint import load_sam2_checkpoint

        load_sam2_checkpoint(model, resolve_pretrained(pretrained))  # freezes per cfg.freeze_trunk
    else:
        model.set_trunk_frozen(bool(cfg.freeze_trunk))
    return model
