"""The IR-SAM2 network (paper section 2.2, Fig. 2; spec sections 2 to 6).

Encoder: a CNN detail branch (d0, d1, d2) beside the SAM2 Hiera-Tiny trunk cut after block 9, with
self-prompts injected between the trunk's stages and detail features fused into its outputs; a 1x1-conv neck
gives ``F_in``. Decoder: the Contrast Query Generator builds the query, a two-way transformer refines it
against ``F_in``, and a U-shaped mask path gives three masks. The residual cascaded RHPM head turns them into
``P_final``.

Outputs (docs/DESIGN.md): ``(final, mask1, mask2)`` logits at the input size, ``final = P_final`` while the
head is enabled, else ``mask0``.

The head gate: in the ``official`` variant the head exists from the start but is closed (``head_enabled``
False) until the training engine opens it (spec section 7: epoch > 20 and validation IoU >= 0.4); in the
``paper`` variant it is open from the start. ``set_head_enabled`` switches it; the override
``rhpm_head=False`` removes the head (the ablation without RHPM), after which the gate stays closed whatever
is asked.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from irsam2.models.base import SIZE_MULTIPLE, InputSizeError, check_image_batch
from irsam2.models.cqg import ContrastQueryGenerator
from irsam2.models.decoder import HyperNetwork, Projection, SkipConv, TwoWayTransformer, UpBlock, Upscale
from irsam2.models.hiera import HieraTrunk
from irsam2.models.layers import DensePositionalEncoding, LayerNorm2d, PromptGenerator, RCBlock
from irsam2.models.rhpm import RHPMHead

__all__ = ["IRSAM2", "SIZE_MULTIPLE", "IRSAM2Config", "InputSizeError"]


@dataclass
class IRSAM2Config:
    """Every architectural switch (spec section 9 and the ablations); defaults: the ``official`` variant."""

    cqg: bool = True  # Contrast Query Generator (False: the query is q_task alone)
    rhpm_head: bool = True  # the cascaded RHPM head exists (False: outputs mask0, the ablation without RHPM)
    head_enabled: bool = (
        False  # initial state of the head's runtime gate (official: closed until the engine opens it)
    )
    topk: int = 10  # K of the CQG
    cqg_lambda: float = 0.2  # energy fraction removed by the CQG's RHPM
    lambdas: tuple[float, float, float] = (0.1, 0.2, 0.4)  # head lambdas, shallow (mask0) to deep (mask2)
    fusion_kernel: int = 3  # kernel of the conv fusing the three masks into P (paper: 1)
    rhpm_norm: str = "official"  # "official": inverse FFT scaled by 1/sqrt(hw); "paper": consistent
    # "<=": normalised grid, zero radius <= r_cut (official); "<": the paper's rule, pixel radii from
    # (h//2, w//2), integer r_cut >= 1, zero d < r_cut (so DC always goes); see irsam2.models.rhpm
    rhpm_zeroing: str = "<="
    cqg_refine: str = "linear"  # "linear": GELU(LN(Linear)) (official); "mlp": MLP(LN) (paper)
    # "stem": conv-stem X0 (official); "image": the raw image (paper); both gated by sigmoid(masks)
    head_input: str = "stem"
    freeze_trunk: bool | None = None  # None: frozen iff SAM2 weights are loaded
    trunk: bool = True  # False: ablation without the Hiera trunk and self-prompts (CNN branch + decoder only)

    def __post_init__(self) -> None:
        lam = tuple(float(v) for v in self.lambdas)
        if len(lam) != 3 or not all(0.0 < v < 1.0 for v in lam):
            raise ValueError(
                f"lambdas must be three numbers in (0, 1), shallow to deep; got {self.lambdas!r}"
            )
        self.lambdas = lam  # type: ignore[assignment]
        if not 0.0 < float(self.cqg_lambda) < 1.0:
            raise ValueError(f"cqg_lambda must be in (0, 1), got {self.cqg_lambda!r}")
        if int(self.topk) < 1:
            raise ValueError(f"topk must be >= 1, got {self.topk!r}")
        if self.fusion_kernel not in (1, 3):
            raise ValueError(f"fusion_kernel must be 1 or 3, got {self.fusion_kernel!r}")


def _nchw(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 3, 1, 2)


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 2, 3, 1)


class IRSAM2(nn.Module):
    """IR-SAM2 with the Hiera-Tiny trunk; build it through ``irsam2.create_model``."""

    def __init__(self, cfg: IRSAM2Config | None = None, config: dict | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or IRSAM2Config()
        self.config: dict = (
            dict(config) if config is not None else {"name": None, "variant": None, "overrides": {}}
        )
        dim = 256
        # CNN detail branch (spec 2).
        self.detail0 = nn.Sequential(RCBlock(3, 24), RCBlock(24, 24))
        self.detail1 = nn.Sequential(RCBlock(24, 48), RCBlock(48, 48))
        self.detail2 = nn.Sequential(RCBlock(48, 96), RCBlock(96, 96))
        # Trunk, self-prompts and stage fusions (spec 2).
        self.trunk: HieraTrunk | None = HieraTrunk() if cfg.trunk else None
        self.prompt1 = PromptGenerator(96) if cfg.trunk else None
        self.prompt2 = PromptGenerator(192) if cfg.trunk else None
        self.fuse3 = RCBlock(96, 192)
        self.fuse4 = RCBlock(192, 384)
        self.neck = nn.Sequential(
            nn.Conv2d(384, dim, 1), LayerNorm2d(dim), nn.GELU(), nn.Conv2d(dim, dim, 1), nn.GELU()
        )
        # Decoder (spec 3, 4, 5).
        self.dense_pe = DensePositionalEncoding((24, 48, 96), dim)
        self.cqg = ContrastQueryGenerator(
            dim, cfg.topk, cfg.cqg_lambda, cfg.cqg_refine, cfg.cqg, cfg.rhpm_norm, cfg.rhpm_zeroing
        )
        self.transformer = TwoWayTransformer(depth=2, dim=dim, num_heads=8, mlp_dim=2048, downsample=2)
        self.upscale = Upscale(dim, 64, 96)
        self.hyper = HyperNetwork(dim, 96)
        self.project = Projection(96)
        self.skip2, self.skip1, self.skip0 = SkipConv(96), SkipConv(48), SkipConv(24)
        self.up2, self.up1, self.up0 = UpBlock(96), UpBlock(48), UpBlock(24)
        self.mask_head2, self.mask_head1, self.mask_head0 = (
            nn.Conv2d(48, 1, 1),
            nn.Conv2d(24, 1, 1),
            nn.Conv2d(12, 1, 1),
        )
        # RHPM cascade head (spec 6).
        self.head: RHPMHead | None = None
        if cfg.rhpm_head:
            self.head = RHPMHead(
                cfg.lambdas, cfg.head_input, cfg.fusion_kernel, cfg.rhpm_norm, cfg.rhpm_zeroing
            )
        self._head_enabled = bool(cfg.head_enabled) and self.head is not None
        # Channels-last convolutions: ~13 % faster on CPU (oneDNN, and max-pooling far more), and what cuDNN's
        # tensor-core kernels prefer; the trunk's NHWC tokens then convert to NCHW maps as free views.
        self.to(memory_format=torch.channels_last)

    # -- the head's runtime gate --
    @property
    def head_enabled(self) -> bool:
        return self._head_enabled

    def set_head_enabled(self, enabled: bool) -> None:
        """Open or close the RHPM head's gate; a model built with ``rhpm_head=False`` stays closed."""
        self._head_enabled = bool(enabled) and self.head is not None

    def set_trunk_frozen(self, frozen: bool) -> None:
        """Freeze (no gradients, no optimiser updates) or unfreeze the Hiera trunk's parameters."""
        if self.trunk is not None:
            self.trunk.requires_grad_(not frozen)

    @property
    def trunk_frozen(self) -> bool:
        return self.trunk is not None and not any(p.requires_grad for p in self.trunk.parameters())

    # -- forward --
    @staticmethod
    def check_input(x: torch.Tensor) -> None:
        check_image_batch(x, "IR-SAM2")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Image -> (F_in (B, 256, H/16, W/16), (d0, d1, d2))."""
        d0 = self.detail0(x)
        d1 = self.detail1(F.max_pool2d(d0, 2))
        d2 = self.detail2(F.max_pool2d(d1, 2))
        if self.trunk is None or self.prompt1 is None or self.prompt2 is None:
            # ablation without the trunk: the stage fusions alone carry the detail branch down to 1/16
            f3 = self.fuse3(F.max_pool2d(d2, 2))
            f4 = self.fuse4(F.max_pool2d(f3, 2))
            return self.neck(f4), (d0, d1, d2)
        blocks = self.trunk.blocks

        s0 = blocks[0](self.trunk.embed(x))  # (B, H/4, W/4, 96) tokens
        p1 = self.prompt1(_nchw(s0) + d2)  # 192 @ H/8
        s = blocks[2](blocks[1](s0) + _nhwc(p1))
        f3 = self.fuse3(F.max_pool2d(d2, 2)) + _nchw(s)
        p2 = self.prompt2(_nchw(s) + f3)  # 384 @ H/16
        for blk in blocks[3:9]:
            s = blk(s)
        s = blocks[9](s + _nhwc(p2))
        f4 = self.fuse4(F.max_pool2d(f3, 2)) + _nchw(s)
        return self.neck(f4), (d0, d1, d2)

    def decode(
        self,
        f_in: torch.Tensor,
        details: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        size: tuple[int, int],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """F_in and the detail maps -> (mask0, mask1, mask2) logits at ``size``."""
        d0, d1, d2 = details
        query = self.cqg(f_in)
        h, tokens = self.transformer(f_in, self.dense_pe(d0, d1, d2), query)
        b, c, fh, fw = f_in.shape
        tokens = tokens.transpose(1, 2).reshape(b, c, fh, fw)
        f_deep = self.project(self.upscale(tokens) * self.hyper(h[:, 0])[:, :, None, None])

        u2 = self.up2(f_deep, self.skip2(d2))
        u1 = self.up1(u2, self.skip1(d1))
        u0 = self.up0(u1, self.skip0(d0))
        # A 1x1 conv commutes with bilinear resizing (weights sum to one), so resize the 1-channel logits.
        mask2 = F.interpolate(self.mask_head2(u2), size=size, mode="bilinear", align_corners=False)
        mask1 = F.interpolate(self.mask_head1(u1), size=size, mode="bilinear", align_corners=False)
        mask0 = self.mask_head0(u0)
        return mask0, mask1, mask2

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.check_input(x)
        x = x.contiguous(memory_format=torch.channels_last)
        f_in, details = self.encode(x)
        mask0, mask1, mask2 = self.decode(f_in, details, (x.shape[-2], x.shape[-1]))
        if self.head is not None and self._head_enabled:
            return self.head(x, mask0, mask1, mask2), mask1, mask2
        return mask0, mask1, mask2

    def extra_repr(self) -> str:
        return f"config={self.config}, head_enabled={self._head_enabled}"


def config_fields() -> dict[str, dataclasses.Field]:
    """The override keys a preset accepts: every field of IRSAM2Config."""
    return {f.name: f for f in dataclasses.fields(IRSAM2Config)}
