"""Image positional encoding of the decoder (spec section 3).

Each CNN detail map (d0, d1, d2) is brought to the resolution of ``F_in`` (1/16 of the input) by stride-2
Conv3x3+BN+ReLU steps (4, 3, 2 of them, channels kept), lifted to 256 channels by Conv1x1+BN+ReLU, and the
three 256-channel maps are fused by a grouped Conv1x1 (768 -> 256, groups 256, with bias): group g sees
channel g of each of the three maps (they are stacked along a new axis, interleaving their channels).
"""

from __future__ import annotations

import torch
from torch import nn


def _branch(channels: int, steps: int, out_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(steps):
        layers += [nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.BatchNorm2d(channels), nn.ReLU()]
    layers += [nn.Conv2d(channels, out_channels, 1), nn.BatchNorm2d(out_channels), nn.ReLU()]
    return nn.Sequential(*layers)


class DensePositionalEncoding(nn.Module):
    """Dense positional encoding ``(B, 256, H/16, W/16)`` from the detail maps d0, d1, d2."""

    def __init__(self, channels: tuple[int, int, int] = (24, 48, 96), dim: int = 256) -> None:
        super().__init__()
        self.branch0 = _branch(channels[0], 4, dim)
        self.branch1 = _branch(channels[1], 3, dim)
        self.branch2 = _branch(channels[2], 2, dim)
        self.fuse = nn.Conv2d(3 * dim, dim, 1, groups=dim)

    def forward(self, d0: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        maps = torch.stack([self.branch0(d0), self.branch1(d1), self.branch2(d2)], dim=2)  # (B, 256, 3, h, w)
        # The grouped 1x1 conv written out (same parameters): torch's CPU path runs one small conv per group.
        w = self.fuse.weight.view(1, -1, 3, 1, 1)
        return (maps * w).sum(dim=2) + self.fuse.bias.view(1, -1, 1, 1)
