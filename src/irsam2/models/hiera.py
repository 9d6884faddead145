"""The SAM2 Hiera-Tiny trunk, first three stages (ten blocks), stepped block by block (spec section 2).

The blocks are timm's ``sam2_hiera_tiny`` blocks (timm builds the trunk; this module only cuts it after block
9 and exposes the blocks so that IR-SAM2 can inject its self-prompts between them). Parameter names follow the
official SAM2 checkpoints with the ``image_encoder.trunk.`` prefix removed (``patch_embed.proj.*``,
``pos_embed``, ``pos_embed_window``, ``blocks.0-9.*``); timm names the MLP layers ``fc1``/``fc2`` where SAM2
says ``layers.0``/``layers.1``, so each block's MLP is re-wrapped under SAM2's names around timm's own Linear
layers.
"""

from __future__ import annotations

import math

import timm
import torch
import torch.nn.functional as F
from timm.models.hieradet_sam2 import MultiScaleBlock
from torch import nn

# Hiera-Tiny: stages (1, 2, 7, 2), global attention at 5, 7, 9, windows (8, 4, 14, 7). We keep three stages.
NUM_BLOCKS = 10
STAGE_DIMS = (96, 192, 384)
TIMM_KWARGS = dict(stages=(1, 2, 7), window_spec=(8, 4, 14), global_att_blocks=(5, 7, 9), q_pool=2)


class SamMlp(nn.Module):
    """SAM2's trunk MLP naming (``layers.0``, ``layers.1``) around timm's two Linear layers and GELU."""

    def __init__(self, fc1: nn.Linear, fc2: nn.Linear) -> None:
        super().__init__()
        self.layers = nn.ModuleList([fc1, fc2])
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[1](self.act(self.layers[0](x)))


class PaddedWindowBlock(MultiScaleBlock):
    """A windowed Hiera block whose zero padding is not pushed through the attention's linear layers.

    SAM2 pads a token map that does not fill its windows with zeros after ``norm1``; a zero token's query, key
    and value are the ``qkv`` layer's bias, and its output is cropped away. So the same attention is computed
    here from the real tokens only: ``qkv`` and ``proj`` run on the H x W map, the padded positions get the
    bias directly, and where the whole map fits in one window its n identical padded keys become one key whose
    logit is raised by log(n) (softmax weight n exp(s), as before). Exact in real arithmetic; rounding differs
    from timm's padded form at the 1e-6 level. Stage 3 (14 x 14 windows) on a 4 x 4 map runs its attention on
    16 tokens instead of 196. Blocks without padding, global blocks and q-pooling blocks take timm's path.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wh, ww = self.window_size
        h, w = x.shape[1:3]
        padded = self.is_windowed and (h % wh or w % ww)
        if not padded or self.pool is not None or self.dim != self.dim_out:
            return super().forward(x)
        y = self.attn.proj(self._padded_window_attention(self.norm1(x), wh, ww))
        x = x + self.drop_path1(self.ls1(y))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))

    def _padded_window_attention(self, x: torch.Tensor, wh: int, ww: int) -> torch.Tensor:
        """SAM2's multi-head attention over zero-padded windows of (B, h, w, C) normed tokens, before proj."""
        b, h, w, _ = x.shape
        attn = self.attn
        heads = attn.num_heads
        qkv = attn.qkv(x)  # (B, h, w, 3 D)
        bias = attn.qkv.bias if attn.qkv.bias is not None else qkv.new_zeros(qkv.shape[-1])
        if h <= wh and w <= ww:  # one window: the real tokens and one key standing for the padding
            n_pad = wh * ww - h * w
            pad = bias.to(qkv.dtype).expand(b, 1, -1)
            tok = torch.cat([qkv.reshape(b, h * w, -1), pad], 1).reshape(b, h * w + 1, 3, heads, -1)
            q, k, v = tok.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N + 1, d)
            mask = F.pad(q.new_zeros(1, h * w), (0, 1), value=math.log(n_pad))  # (1, N + 1)
            out = F.scaled_dot_product_attention(q[:, :, :-1], k, v, attn_mask=mask)
            return out.transpose(1, 2).reshape(b, h, w, -1)
        hp, wp = -(-h // wh) * wh, -(-w // ww) * ww
        full = bias.to(qkv.dtype).expand(b, hp, wp, -1)
        qkv = torch.cat([qkv, full[:, :h, w:]], 2) if wp > w else qkv
        qkv = torch.cat([qkv, full[:, h:]], 1) if hp > h else qkv
        win = qkv.reshape(b, hp // wh, wh, wp // ww, ww, 3, heads, -1)
        q, k, v = win.permute(5, 0, 1, 3, 6, 2, 4, 7).flatten(1, 3).flatten(3, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)  # (B nW, heads, wh ww, d)
        out = out.reshape(b, hp // wh, wp // ww, heads, wh, ww, -1).permute(0, 1, 4, 2, 5, 3, 6)
        return out.reshape(b, hp, wp, -1)[:, :h, :w]


class HieraTrunk(nn.Module):
    """Patch embedding, position embeddings and blocks 0-9 of SAM2 Hiera-Tiny, on channels-last tokens."""

    def __init__(self) -> None:
        super().__init__()
        full = timm.create_model("sam2_hiera_tiny", pretrained=False, num_classes=0, **TIMM_KWARGS)
        self.patch_embed = full.patch_embed
        self.pos_embed = full.pos_embed
        self.pos_embed_window = full.pos_embed_window
        blocks = list(full.blocks)[:NUM_BLOCKS]
        for blk in blocks:
            blk.mlp = SamMlp(blk.mlp.fc1, blk.mlp.fc2)
            blk.__class__ = PaddedWindowBlock  # same parameters, a cheaper form of the padded windows
        self.blocks = nn.ModuleList(blocks)
        self._pos_cache: tuple | None = None

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """Background embedding bicubic-resized to the token grid plus the tiled window one: (1, h, w, C).

        Cached while no gradient can flow to the embeddings (inference, or a frozen trunk); the cache key
        holds the parameters' version counters, so any in-place update or weight load invalidates it.
        """
        params = (self.pos_embed, self.pos_embed_window)
        if torch.compiler.is_compiling() or (
            torch.is_grad_enabled() and any(p.requires_grad for p in params)
        ):
            return self._position_embedding(h, w)
        key = (h, w) + tuple((p.device, p.dtype, p.data_ptr(), p._version) for p in params)
        if self._pos_cache is None or self._pos_cache[0] != key:
            with (
                torch.inference_mode(False),
                torch.no_grad(),
            ):  # a normal tensor, usable outside inference mode
                self._pos_cache = (key, self._position_embedding(h, w))
        return self._pos_cache[1]

    def _position_embedding(self, h: int, w: int) -> torch.Tensor:
        """Background embedding bicubic-resized to the token grid plus the tiled window one: (1, h, w, C)."""
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")
        win = self.pos_embed_window
        pos = pos + win.tile((h // win.shape[-2], w // win.shape[-1]))
        return pos.permute(0, 2, 3, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, 3, H, W) -> tokens (B, H/4, W/4, 96) with position embeddings."""
        t = self.patch_embed(x)  # (B, h, w, C)
        return t + self.position_embedding(t.shape[1], t.shape[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Plain trunk without prompts (used to compare against timm): tokens after block 9."""
        t = self.embed(x)
        for blk in self.blocks:
            t = blk(t)
        return t
