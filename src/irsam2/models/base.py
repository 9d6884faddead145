"""The model interface every network of the zoo follows (docs/DESIGN.md, "Model").

Commands and the engine use a model only through this contract, so IR-SAM2 and the deep baselines run
through the same code:

- ``model(x)`` with ``x`` a ``(B, 3, H, W)`` batch (the infrared channel replicated 3x, normalised), H and W
  multiples of ``size_multiple`` (32 for every network here: the eval padding), returns a non-empty tuple of
  logits maps ``(B, 1, H, W)``; the first is the final prediction, the others deep-supervision outputs (a
  1-tuple when the paper has none). The losses supervise every output with equal weight.
- ``model.config``: a JSON-serialisable dict ``{"name", "variant", "overrides"}`` such that
  ``irsam2.create_model(config["name"], config["variant"], **config["overrides"])`` rebuilds the architecture.
- Optional: ``head_enabled`` / ``set_head_enabled(bool)`` (a runtime head gate; only IR-SAM2 has one). Code
  that needs it checks ``hasattr``.
"""

from __future__ import annotations

import torch
from torch import nn

from irsam2.utils import UserError

SIZE_MULTIPLE = 32


class InputSizeError(UserError, ValueError):
    """The input is not a (B, 3, H, W) batch, or its height or width is not a multiple of 32."""


def check_image_batch(x: torch.Tensor, what: str, multiple: int = SIZE_MULTIPLE) -> None:
    """Raise :class:`InputSizeError` unless ``x`` is ``(B, 3, H, W)`` with H, W positive multiples."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputSizeError(f"{what} expects an image batch of shape (B, 3, H, W), got {shape}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % multiple or w % multiple or h == 0 or w == 0:
        raise InputSizeError(
            f"{what} needs height and width that are multiples of {multiple}; got {h}x{w} "
            f"(pad the frame, e.g. to {-(-h // multiple) * multiple}x{-(-w // multiple) * multiple}, "
            "and crop the output back)"
        )


class SegmentationNet(nn.Module):
    """Base class of the deep baselines: input check, ``config`` and the tuple-of-logits contract.

    Subclasses implement ``predict(x) -> tuple[Tensor, ...]`` (logits at the input size, final first);
    ``forward`` checks the input first so a wrong size gives a clear error instead of a shape mismatch deep
    inside a decoder.
    """

    size_multiple: int = SIZE_MULTIPLE
    #: the short name the paper gives the network (for tables and error messages)
    display_name: str = "network"

    def __init__(self) -> None:
        super().__init__()
        self.config: dict = {"name": None, "variant": "official", "overrides": {}}

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_image_batch(x, self.display_name, self.size_multiple)
        return self.predict(x)

    def extra_repr(self) -> str:
        return f"config={self.config}"
