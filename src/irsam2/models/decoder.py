"""The IR-SAM2 decoder (paper section 2.2.2, spec section 5).

A SAM-style two-way transformer between the single query token and the image tokens of ``F_in`` (with the
dense positional encoding of section 3), then the mask path: upscale, hypernetwork channel scaling, projection
to ``F_deep``, three up-blocks fed by skip-convs of the CNN detail maps, and one 1x1 mask head per scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention with an internal width ``dim / downsample`` (SAM's cross-attention shape)."""

    def __init__(self, dim: int, num_heads: int, downsample: int = 1) -> None:
        super().__init__()
        inner = dim // downsample
        if inner % num_heads:
            raise ValueError(f"internal width {inner} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = F.scaled_dot_product_attention(
            self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        )
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, -1))


class TwoWayBlock(nn.Module):
    """Query self-attention, query->image cross-attention, MLP, image->query cross-attention, each + LN."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, downsample: int, first: bool) -> None:
        super().__init__()
        self.first = first  # the first layer's self-attention takes no positional encoding and no residual
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, num_heads, downsample)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.ReLU(), nn.Linear(mlp_dim, dim))
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, num_heads, downsample)

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.first:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """Depth 2, width 256, 8 heads, MLP 2048, cross-attention width 128; a final query->image attention."""

    def __init__(
        self, depth: int = 2, dim: int = 256, num_heads: int = 8, mlp_dim: int = 2048, downsample: int = 2
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayBlock(dim, num_heads, mlp_dim, downsample, first=(i == 0)) for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(dim, num_heads, downsample)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(
        self, image: torch.Tensor, image_pe: torch.Tensor, query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """image, image_pe: (B, C, h, w); query: (B, 1, C), also its own positional encoding.

        Returns the refined queries (B, 1, C) and the image tokens (B, h*w, C).
        """
        keys = image.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = query
        for layer in self.layers:
            queries, keys = layer(queries, keys, query, key_pe)
        q, k = queries + query, keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys


class Upscale(nn.Module):
    """ConvTranspose(256->64, 2, 2), BN, GELU, ConvTranspose(64->96, 2, 2), GELU: x4 resolution."""

    def __init__(self, dim: int = 256, mid: int = 64, out: int = 96) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ConvTranspose2d(dim, mid, 2, stride=2),
            nn.BatchNorm2d(mid),
            nn.GELU(),
            nn.ConvTranspose2d(mid, out, 2, stride=2),
            nn.GELU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class HyperNetwork(nn.Module):
    """MLP 256 -> 256 -> 256 -> 96 with ReLU between: per-channel scales of the upscaled map."""

    def __init__(self, dim: int = 256, out: int = 96) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.layers(h)


class Projection(nn.Module):
    """Conv1x1(96->96)+BN+GELU, Conv2x2 stride 2 + GELU: ``F_deep`` at 1/8 of the input."""

    def __init__(self, channels: int = 96) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 1),
            nn.BatchNorm2d(channels),
            nn.GELU(),
            nn.Conv2d(channels, channels, 2, stride=2),
            nn.GELU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation gate, reduction 16, no bias."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(),
            nn.Linear(hidden, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class SkipConv(nn.Module):
    """``SK(c)``: SE, BN, GELU, Conv1x1(c->c), GELU on a CNN detail map."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.se = SqueezeExcitation(channels)
        self.body = nn.Sequential(
            nn.BatchNorm2d(channels), nn.GELU(), nn.Conv2d(channels, channels, 1), nn.GELU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.se(x))


class UpBlock(nn.Module):
    """``UP(c -> c/2)``: bilinear x2 (align corners), cross-injected context, concat, 2x Conv3x3+BN+ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        out = channels // 2
        self.from_skip = nn.Linear(channels, channels)  # GAP(skip) added to the upsampled map
        self.from_up = nn.Linear(channels, channels)  # GAP(input) added to the skip map
        self.body = nn.Sequential(
            nn.Conv2d(2 * channels, out, 3, padding=1),
            nn.BatchNorm2d(out),
            nn.ReLU(inplace=True),
            nn.Conv2d(out, out, 3, padding=1),
            nn.BatchNorm2d(out),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        u = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        u = u + self.from_skip(skip.mean(dim=(2, 3)))[:, :, None, None]
        skip = skip + self.from_up(x.mean(dim=(2, 3)))[:, :, None, None]
        return self.body(torch.cat([u, skip], dim=1))
