"""Self-prompt generator ``PG(c)`` (spec section 2): turns fused trunk + detail features into a prompt map
at the next trunk stage's resolution and width."""

from __future__ import annotations

import torch
from torch import nn


class PromptGenerator(nn.Module):
    """Conv3x3(c->c)+BN+GELU, then Conv7x7 stride 2 (c->2c)+BN+GELU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.GELU(),
            nn.Conv2d(channels, 2 * channels, 7, stride=2, padding=3),
            nn.BatchNorm2d(2 * channels),
            nn.GELU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
