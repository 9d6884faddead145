"""UIU-Net: U-Net in U-Net (Wu, Hong, Chanussot, IEEE TIP 2022).

Paper: X. Wu, D. Hong, J. Chanussot, "UIU-Net: U-Net in U-Net for Infrared Small Object Detection",
IEEE TIP 32 (2023) 364-376, arXiv 2212.00968.
The section and equation numbers below follow the arXiv version as recalled; the paper's full text was
not at hand to check them, unlike the architecture facts (see the end of this docstring).

- Resolution-maintenance deep supervision (RM-DS, paper Sec. III-A, Fig. 2): a large U-Net whose every stage
  is itself a tiny U-Net, the residual U-block (RSU) of U^2-Net (Qin et al., Pattern Recognition 2020):
  ``RSU-L(x) = U_L(F_in(x)) + F_in(x)`` with ``F_in`` a 3x3 conv to the block's output width and ``U_L`` an
  L-level U-Net of 3x3 conv + BN + ReLU layers at a middle width (2x2 max-pooling down, bilinear up,
  concatenation skips, a dilation-2 conv at its bottom). ``RSU-4F`` replaces pooling by dilation (1, 2, 4, 8)
  for the deepest, smallest maps. Encoder ``En_1..En_6`` = RSU-7, RSU-6, RSU-5, RSU-4, RSU-4F, RSU-4F with
  2x2 max-pooling between them, so every RSU bottoms out at 1/32 of the input; decoder ``De_5..De_1`` =
  RSU-4F, RSU-4, RSU-5, RSU-6, RSU-7 at the resolution of the matching encoder stage.
- Deep supervision (Sec. III-A, Eq. 9-10): a 3x3 conv gives one side logit map from each of ``De_1..De_5``
  and ``En_6``, each upsampled bilinearly to the input size; a 1x1 conv over the six side maps gives the fused
  prediction. Outputs ``(fused, side_1, ..., side_6)``, the fused map first; the paper's loss is the sum of
  the BCE of every output (equal weights, the U^2-Net loss), which the engine's ``bce`` loss applies.
- Interactive-cross attention (IC-A, Sec. III-B, Fig. 3) fuses the upsampled deeper map ``X`` (high level)
  with the skip ``Y`` (low level) at decoder levels 5..2 (level 1 concatenates plainly): ``X`` is first
  mapped to ``Y``'s width by a 1x1 conv + BN + ReLU; a top-down global channel attention
  ``G = sigma(B(PW2(delta(B(PW1(GAP(X)))))))`` (PW: 1x1 convs C -> C/r -> C, r = 4) modulates ``Y``; the
  bottom-up attention is spatial and interacts with it: ``S = sigma(SA(delta(B(PW1(Y (x) G)))))`` with SA the
  3x3 spatial attention over the channel mean and max (CBAM); the two cross-modulated maps ``2 Y (x) G`` and
  ``2 X (x) S`` each pass one 3x3 conv + BN + ReLU (one conv shared by both) and are concatenated for the
  decoder RSU.

Where the paper leaves a detail out it was read as a fact from the authors' public implementation
(github.com/danfenghong/IEEE_TIP_UIU-Net): the stage widths (in, mid, out) of Table ``STAGES`` below, the
r = 4 bottleneck, the 3x3 spatial-attention kernel, the bottom-up branch reading ``Y (x) G``, the factor 2,
the post-fusion conv being shared by both branches, plain concatenation at level 1, convs with bias before BN,
3x3 side convs, and ceil-mode pooling.

Parameters: 50.54 M (the IR-SAM2 paper's Table 7); ``tests/test_model_zoo.py`` checks ours within 1 %.
Loss and recipe: the sum of the BCE losses of the fused and the six side outputs (Sec. III-A); Adam, learning
rate 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay, constant learning rate (the optimizer the authors'
public training script uses, as U^2-Net's; batch size and epochs are not taken from the paper, see
``recipe_source``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from irsam2.models.base import SegmentationNet
from irsam2.models.layers.cnn import SpatialAttention, pointwise_gate
from irsam2.models.registry import register_network

#: (kind, depth, in, mid, out) of the encoder stages En_1..En_6 and the decoder stages De_5..De_1
#: (the decoder's input is the IC-A output: twice the skip's width; De_1 concatenates plainly).
ENCODER = (
    ("pool", 7, None, 32, 64),
    ("pool", 6, 64, 32, 128),
    ("pool", 5, 128, 64, 256),
    ("pool", 4, 256, 128, 512),
    ("dilate", 4, 512, 256, 512),
    ("dilate", 4, 512, 256, 512),
)
DECODER = (
    ("dilate", 4, 1024, 256, 512),
    ("pool", 4, 1024, 128, 256),
    ("pool", 5, 512, 64, 128),
    ("pool", 6, 256, 32, 64),
    ("pool", 7, 128, 16, 64),
)


def _cbr(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    """3x3 conv (with bias, as the release) dilated by ``dilation``, BN, ReLU: the RSU layer."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _up_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def _pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2, 2, ceil_mode=True)


class RSU(nn.Module):
    """Residual U-block of depth ``depth`` (U^2-Net, Sec. 3.1): ``U(F_in(x)) + F_in(x)``.

    ``kind="pool"``: ``depth - 1`` encoder layers with 2x2 max-pooling between them, a dilation-2 bottom
    layer, ``depth - 1`` decoder layers after bilinear upsampling and concatenation (RSU-L).
    ``kind="dilate"``: the same without resampling, encoder dilations 1, 2, 4, ..., bottom dilation
    ``2^(depth-1)`` (RSU-4F).
    """

    def __init__(self, kind: str, depth: int, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        if kind not in ("pool", "dilate") or depth < 2:
            raise ValueError(f"RSU kind must be 'pool' or 'dilate' and depth >= 2, got {kind!r}, {depth}")
        self.resample = kind == "pool"
        n = depth - 1
        dil = [1] * n if self.resample else [2**i for i in range(n)]
        self.conv_in = _cbr(cin, cout)
        self.enc = nn.ModuleList(_cbr(cout if i == 0 else mid, mid, dil[i]) for i in range(n))
        self.bottom = _cbr(mid, mid, 2 if self.resample else 2**n)
        # dec[i] produces level i (0 = the top) from [deeper decoded; enc level i]
        self.dec = nn.ModuleList(_cbr(2 * mid, cout if i == 0 else mid, dil[i]) for i in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xin = self.conv_in(x)
        skips = []
        h = xin
        for i, layer in enumerate(self.enc):
            if i > 0 and self.resample:
                h = _pool(h)
            h = layer(h)
            skips.append(h)
        d = self.bottom(h)
        for i in range(len(self.dec) - 1, -1, -1):
            if self.resample and i < len(self.dec) - 1:  # the bottom layer keeps its input's size
                d = _up_to(d, skips[i])
            d = self.dec[i](torch.cat([d, skips[i]], 1))
        return d + xin


class InteractiveCrossAttention(nn.Module):
    """IC-A (paper Sec. III-B): top-down channel attention from the high-level map, bottom-up spatial
    attention from the low-level map modulated by it; returns the two cross-modulated maps concatenated."""

    def __init__(self, high: int, low: int, r: int = 4) -> None:
        super().__init__()
        mid = low // r
        self.align = nn.Sequential(nn.Conv2d(high, low, 1), nn.BatchNorm2d(low), nn.ReLU(inplace=True))
        self.topdown = pointwise_gate(low, mid)
        self.bottomup = nn.Sequential(
            nn.Conv2d(low, mid, 1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True), SpatialAttention(3)
        )
        self.post = _cbr(low, low)  # shared by both branches

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        high = self.align(high)
        g = self.topdown(high.mean((2, 3), keepdim=True))  # (B, C, 1, 1)
        s = self.bottomup(low * g)  # (B, 1, H, W)
        return torch.cat([self.post(2 * low * g), self.post(2 * high * s)], 1)


class UIUNet(SegmentationNet):
    """UIU-Net (see the module docstring): outputs ``(fused, side_1, ..., side_6)`` logits."""

    display_name = "UIU-Net"

    def __init__(self, in_chans: int = 3, r: int = 4) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(
            RSU(kind, depth, in_chans if cin is None else cin, mid, cout)
            for kind, depth, cin, mid, cout in ENCODER
        )
        self.decoder = nn.ModuleList(RSU(*spec) for spec in DECODER)
        # IC-A at decoder levels 5, 4, 3, 2: (width of the deeper map, width of the skip)
        enc_out = [s[4] for s in ENCODER]
        dec_out = [s[4] for s in DECODER]
        highs = [enc_out[5], *dec_out[:3]]
        lows = [enc_out[4], enc_out[3], enc_out[2], enc_out[1]]
        self.fusions = nn.ModuleList(
            InteractiveCrossAttention(h, lo, r) for h, lo in zip(highs, lows, strict=True)
        )
        # side heads on De_1, De_2, ..., De_5, En_6
        side_widths = [*reversed(dec_out), enc_out[5]]
        self.sides = nn.ModuleList(nn.Conv2d(c, 1, 3, padding=1) for c in side_widths)
        self.fuse = nn.Conv2d(len(side_widths), 1, 1)

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = []
        h = x
        for i, stage in enumerate(self.encoder):
            h = stage(h if i == 0 else _pool(h))
            feats.append(h)
        decoded = []  # De_5, De_4, ..., De_1
        d = feats[5]
        for j, stage in enumerate(self.decoder):
            skip = feats[4 - j]
            d = _up_to(d, skip)
            d = stage(self.fusions[j](d, skip) if j < len(self.fusions) else torch.cat([d, skip], 1))
            decoded.append(d)
        maps = [*reversed(decoded), feats[5]]  # De_1, ..., De_5, En_6
        sides = [head(m) for head, m in zip(self.sides, maps, strict=True)]
        sides = [sides[0], *(_up_to(s, x) for s in sides[1:])]  # side_1 is at the input size already
        return (self.fuse(torch.cat(sides, 1)), *sides)


@register_network(
    title="UIU-Net",
    citation="Wu, Hong, Chanussot. UIU-Net: U-Net in U-Net for Infrared Small Object Detection. "
    "IEEE TIP 2022",
    paper_params=50.54,
    params_source="IR-SAM2 paper Table 7",
    recipe={
        "optim.name": "adamw",
        "optim.lr": 1e-3,
        "optim.betas": [0.9, 0.999],
        "optim.eps": 1e-8,
        "optim.weight_decay": 0.0,
        "sched.name": "constant",
        "loss.name": "bce",
        "loss.schedule": False,
    },
    recipe_source="UIU-Net paper Sec. III-A (Eq. 9-10): the sum of the BCE losses of the fused and the six "
    "side outputs (loss 'bce' sums over every output); Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight "
    "decay, constant rate, as the authors' public training script (adamw with weight decay 0 is Adam); batch "
    "size and epochs are left at the dataset preset's (not verified against the paper's text)",
)
def uiunet(r: int = 4) -> UIUNet:
    """UIU-Net as published (about 50.5 M parameters)."""
    return UIUNet(r=int(r))
