"""A timm-style registry of every network (IR-SAM2 presets and the deep baselines) and ``create_model``.

Two kinds of entries share one namespace: IR-SAM2 presets (``register_model``, below) and deep baselines
(``register_network``: a builder returning a :class:`irsam2.models.base.SegmentationNet`, with the paper's
parameter count and training recipe). Every command goes through ``create_model`` and the model interface of
``irsam2.models.base``, so no command special-cases a network.

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

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

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


@dataclass(frozen=True)
class NetworkSpec:
    """A deep baseline: its builder and what its paper reports.

    ``paper_params``: the parameter count (millions) in the cited table; ``recipe``: the paper's own training
    recipe as dotted config overrides (``{"optim.name": "adagrad", ...}``), applied by
    ``irsam2 train --model`` unless ``--recipe common`` asks for this project's common recipe (the dataset
    preset) instead.
    """

    name: str
    builder: Callable[..., nn.Module]
    title: str
    citation: str
    paper_params: float | None
    params_source: str
    recipe: dict[str, Any] = field(default_factory=dict)
    recipe_source: str = ""


_NETWORKS: dict[str, NetworkSpec] = {}


def register_network(
    *,
    title: str,
    citation: str,
    paper_params: float | None,
    params_source: str,
    recipe: dict[str, Any] | None = None,
    recipe_source: str = "",
    name: str | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a deep-baseline builder (``fn(**overrides) -> SegmentationNet``) under its name."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _REGISTRY or key in _NETWORKS:
            raise ValueError(f"model {key!r} is registered twice")
        _NETWORKS[key] = NetworkSpec(
            key, fn, title, citation, paper_params, params_source, dict(recipe or {}), recipe_source
        )
        return fn

    return wrap


def network_spec(name: str) -> NetworkSpec | None:
    """The spec of a deep baseline, or None for an IR-SAM2 preset (or an unknown name)."""
    _load_networks()
    return _NETWORKS.get(name)


def model_recipe(name: str) -> dict[str, Any]:
    """The paper's own training recipe of ``name`` as dotted config overrides (empty for IR-SAM2 presets:
    their recipe is the dataset preset's, spec section 8)."""
    spec = network_spec(name)
    if spec is None and name not in _REGISTRY:
        raise ModelConfigError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    return dict(spec.recipe) if spec is not None else {}


def _load_networks() -> None:
    # The baselines register themselves on import; importing here keeps `import irsam2.models` light and
    # avoids an import cycle (each baseline module imports this registry).
    from irsam2.models import zoo  # noqa: F401


def list_models(pattern: str | None = None) -> list[str]:
    """Registered names (IR-SAM2 presets and deep baselines), sorted; ``pattern`` filters (fnmatch)."""
    import fnmatch

    _load_networks()
    names = sorted([*_REGISTRY, *_NETWORKS])
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


@register_model
def irsam2_t_notrunk() -> dict[str, Any]:
    """Ablation (issue 11): no Hiera trunk and no self-prompts; the CNN detail branch, the stage fusions, CQG,
    the decoder and the RHPM head only. Does the rest of the network learn when the trunk is from scratch?"""
    return dict(trunk=False)


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


def _create_network(
    spec: NetworkSpec, variant: str, pretrained: str | os.PathLike | None, overrides: dict[str, Any]
) -> nn.Module:
    if variant != "official":
        raise ModelConfigError(
            f"model {spec.name!r} has one variant, 'official' (the network as published); got {variant!r}"
        )
    if pretrained is not None:
        raise ModelConfigError(
            f"model {spec.name!r}: pretrained SAM2 weights only apply to the IR-SAM2 presets "
            "(the baselines train from scratch, as in their papers)"
        )
    params = inspect.signature(spec.builder).parameters
    unknown = [k for k in overrides if k not in params]
    if unknown:
        raise ModelConfigError(
            f"unknown override {unknown[0]!r} for model {spec.name!r}; valid overrides: "
            f"{', '.join(params) or 'none'}"
        )
    try:
        model = spec.builder(**overrides)
    except (TypeError, ValueError) as e:
        raise ModelConfigError(f"model {spec.name!r}: bad override: {e}") from e
    model.config = {
        "name": spec.name,
        "variant": variant,
        "overrides": {k: _jsonable(v) for k, v in overrides.items()},
    }
    return model


def create_model(
    name: str = "irsam2_t",
    variant: str = "official",
    pretrained: str | os.PathLike | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a registered network: an IR-SAM2 preset or a deep baseline (``list_models()``).

    Deep baselines have the single variant ``official`` and no pretrained weights; their overrides are
    their builder's keyword arguments.

    ``pretrained``: an official SAM2 / SAM2.1 Hiera-Tiny checkpoint, as a local path or by name
    (``"sam2.1_hiera_tiny"``, ``"sam2_hiera_tiny"``: downloaded once into the torch hub cache, see
    ``irsam2.models.hub``); its trunk weights are loaded strictly (``load_sam2_checkpoint``). None or
    ``"none"``: no weights. The trunk is frozen when ``freeze_trunk`` is True, or when it is None (default)
    and pretrained weights were loaded; otherwise it trains.
    """
    from irsam2.models.hub import is_no_weights

    spec = network_spec(name)
    if spec is not None:
        return _create_network(spec, variant, None if is_no_weights(pretrained) else pretrained, overrides)
    cfg = resolve_config(name, variant, overrides)
    config = {"name": name, "variant": variant, "overrides": {k: _jsonable(v) for k, v in overrides.items()}}
    model = IRSAM2(cfg, config)
    if not is_no_weights(pretrained) and not cfg.trunk:
        raise ModelConfigError(f"model {name!r} has no Hiera trunk: SAM2 weights ({pretrained}) do not apply")
    if not is_no_weights(pretrained):
        from irsam2.models.hub import resolve_pretrained
        from irsam2.models.sam2_checkpoint import load_sam2_checkpoint

        load_sam2_checkpoint(model, resolve_pretrained(pretrained))  # freezes per cfg.freeze_trunk
    else:
        model.set_trunk_frozen(bool(cfg.freeze_trunk))
    return model
