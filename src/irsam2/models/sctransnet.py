"""SCTransNet: spatial-channel cross transformer network (Yuan et al., IEEE TGRS 2024).

Paper: S. Yuan, H. Qin, X. Yan, N. Akhtar, A. Mian, "SCTransNet: Spatial-Channel Cross Transformer Network for
Infrared Small Target Detection", IEEE TGRS 62 (2024) 5002615, arXiv 2401.15583.
The section and equation numbers below follow the arXiv version as recalled; the paper's full text was
not at hand to check them, unlike the architecture facts (see the end of this docstring).

- Encoder (Sec. III-A, Fig. 2): five levels of widths (C, 2C, 4C, 8C, 8C), C = 32, each one residual
  block (3x3 conv + BN + LeakyReLU, 3x3 conv + BN, identity or 1x1 conv + BN shortcut, LeakyReLU) after a 2x2
  max-pooling (none at level 1). The four skip features ``E_1..E_4`` feed the spatial-channel cross
  transformer.
- Spatial-channel cross transformer (Sec. III-B/C, Eq. 1-8): ``E_i`` is embedded by a conv with kernel =
  stride = patch size (16, 8, 4, 2), so that every level becomes the same (H/16, W/16) token grid ``T_i``
  of width ``C_i``; ``T_S`` is their concatenation (C_S = 480 channels). Four SCTBs follow, each
  - SSCA (spatial-embedded single-head channel-cross attention, Eq. 3-5): after a channel LayerNorm,
    ``Q_i = W_dw W_pw T_i``, ``K = W_dw W_pw T_S``, ``V = W_dw W_pw T_S`` (1x1 convs then 3x3 convs: the
    spatial embedding); Q_i and K are L2-normalised over the tokens;
    ``A_i = softmax(IN(Q_i K^T / sqrt(C_S)))`` (C_i x C_S, instance normalisation over the map), the output
    ``W_pw (A_i V)`` is added to ``T_i``;
  - CFN (complementary feed-forward network, Eq. 6-8): channel LayerNorm, a 1x1 conv to two branches of width
    ``2.66 C_i``, a 3x3 and a 5x5 depth-wise conv each followed by ReLU, concatenation, a 1x1 conv back to
    ``C_i`` and an ECA channel attention (global average pooling, a 1-D conv of size 3 over the channels,
    sigmoid); added to its input.
  After the last SCTB a LayerNorm per level; each ``T_i`` is reconstructed to ``E_i``'s size (bilinear
  upsampling, 1x1 conv + BN + ReLU) and added to ``E_i``.
- Decoder (Sec. III-D): at each level the deeper map is upsampled x2 (nearest) and the skip is reweighted by
  channel-wise cross attention (CCA: ``sigmoid((Linear(GAP(skip)) + Linear(GAP(up))) / 2)``, then ReLU);
  concatenation and two 3x3 conv + BN + ReLU; a 1x1 conv gives the prediction.
- Deep supervision (Sec. III-E): 1x1 convs give logit maps from the bottleneck and from the decoder levels
  4..2, upsampled bilinearly to the input size; a 1x1 conv over them and the prediction gives a fused map.
  Outputs ``(prediction, fused, side_2, side_3, side_4, side_5)``: the decoder's prediction first, as the
  authors evaluate it; the loss is the sum of the BCE of all six (equal weights).

Where the paper leaves a detail out it was read as a fact from the authors' public implementation
(github.com/xdFai/SCTransNet): C = 32, the patch sizes, four SCTBs, the 2.66 expansion of the CFN, the
ECA kernel 3, the query's 3x3 conv being grouped in pairs of channels (K and V depth-wise), no bias in the
SSCA and CFN convs, LayerNorm with bias and eps 1e-5, LeakyReLU (slope 0.01) in the residual blocks, the
encoder features added a second time after the transformer's own residual (``E_i + (E_i + R_i)``), nearest
upsampling in the decoder, bilinear with aligned corners for the side outputs, and the prediction (not the
fused map) as the network's output at test time. The release also declares position embeddings and
16 scalars per SCTB that its forward pass never uses; they are left out here (they receive no gradient).

Parameters: 11.19 M (the IR-SAM2 paper's Table 7); ``tests/test_model_zoo.py`` checks ours within 1 %.
Loss and recipe (Sec. IV-A and the authors' training script): BCE summed over the six outputs, Adam with
learning rate 1e-3 decayed by cosine annealing to 1e-5 over 1000 epochs (stepped per epoch), batch 16,
256 x 256 crops.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from irsam2.models.base import SegmentationNet
from irsam2.models.layers.norm import LayerNorm2d
from irsam2.models.registry import register_network


def _ln(channels: int) -> LayerNorm2d:
    return LayerNorm2d(channels, eps=1e-5)


class ResBlock(nn.Module):
    """The encoder's residual block (convs with bias, LeakyReLU)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = None if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout))
        self.act = nn.LeakyReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.act(self.body(x) + identity)


def _conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SSCA(nn.Module):
    """Spatial-embedded single-head channel-cross attention (paper Eq. 3-5) for all levels at once."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        total = sum(widths)
        self.scale = 1.0 / math.sqrt(total)
        self.q = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c, c, 1, bias=False), nn.Conv2d(c, c, 3, padding=1, groups=c // 2, bias=False)
            )
            for c in widths
        )
        self.k = nn.Sequential(
            nn.Conv2d(total, total, 1, bias=False),
            nn.Conv2d(total, total, 3, padding=1, groups=total, bias=False),
        )
        self.v = nn.Sequential(
            nn.Conv2d(total, total, 1, bias=False),
            nn.Conv2d(total, total, 3, padding=1, groups=total, bias=False),
        )
        self.proj = nn.ModuleList(nn.Conv2d(c, c, 1, bias=False) for c in widths)

    def forward(self, tokens: list[torch.Tensor], joint: torch.Tensor) -> list[torch.Tensor]:
        b, _, h, w = joint.shape
        k = F.normalize(self.k(joint).flatten(2), dim=-1)  # (B, C_S, N)
        v = self.v(joint).flatten(2)
        out = []
        for t, q_layer, proj in zip(tokens, self.q, self.proj, strict=True):
            q = F.normalize(q_layer(t).flatten(2), dim=-1)  # (B, C_i, N)
            a = (q @ k.transpose(1, 2)) * self.scale  # (B, C_i, C_S)
            # instance normalisation of the (single-head) attention map, no affine
            mean = a.mean((1, 2), keepdim=True)
            var = a.var((1, 2), keepdim=True, unbiased=False)
            a = torch.softmax((a - mean) * torch.rsqrt(var + 1e-5), dim=-1)
            out.append(proj((a @ v).reshape(b, -1, h, w)))
        return out


class ECA(nn.Module):
    """Efficient channel attention: sigmoid(conv1d_k(GAP(x))) over the channel axis, times x."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.conv(x.mean((2, 3))[:, None, :])  # (B, 1, C)
        return x * torch.sigmoid(g)[:, 0, :, None, None]


class CFN(nn.Module):
    """Complementary feed-forward network (paper Eq. 6-8)."""

    def __init__(self, channels: int, expansion: float = 2.66) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.hidden = hidden
        self.proj_in = nn.Conv2d(channels, 2 * hidden, 1, bias=False)
        self.dw3 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.dw5 = nn.Conv2d(hidden, hidden, 5, padding=2, groups=hidden, bias=False)
        self.proj_out = nn.Conv2d(2 * hidden, channels, 1, bias=False)
        self.eca = ECA(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.proj_in(x).split(self.hidden, dim=1)
        y = torch.cat([F.relu(self.dw3(a)), F.relu(self.dw5(b))], 1)
        return self.eca(self.proj_out(y))


class SCTB(nn.Module):
    """Spatial-channel cross transformer block: SSCA and CFN with pre-norm residuals, per level."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.attn_norms = nn.ModuleList(_ln(c) for c in widths)
        self.joint_norm = _ln(sum(widths))
        self.attn = SSCA(widths)
        self.ffn_norms = nn.ModuleList(_ln(c) for c in widths)
        self.ffns = nn.ModuleList(CFN(c) for c in widths)

    def forward(self, tokens: list[torch.Tensor]) -> list[torch.Tensor]:
        joint = self.joint_norm(torch.cat(tokens, 1))
        normed = [n(t) for n, t in zip(self.attn_norms, tokens, strict=True)]
        tokens = [t + o for t, o in zip(tokens, self.attn(normed, joint), strict=True)]
        return [t + f(n(t)) for t, f, n in zip(tokens, self.ffns, self.ffn_norms, strict=True)]


class CrossTransformer(nn.Module):
    """Patch embeddings, ``depth`` SCTBs, final LayerNorms and the reconstruction to the skips' sizes."""

    def __init__(self, widths: tuple[int, ...], patches: tuple[int, ...], depth: int) -> None:
        super().__init__()
        self.embed = nn.ModuleList(nn.Conv2d(c, c, p, stride=p) for c, p in zip(widths, patches, strict=True))
        self.blocks = nn.ModuleList(SCTB(widths) for _ in range(depth))
        self.norms = nn.ModuleList(_ln(c) for c in widths)
        self.reconstruct = nn.ModuleList(_conv_bn_relu(c, c, 1) for c in widths)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        tokens = [e(f) for e, f in zip(self.embed, feats, strict=True)]
        for block in self.blocks:
            tokens = block(tokens)
        out = []
        for t, f, norm, rec in zip(tokens, feats, self.norms, self.reconstruct, strict=True):
            r = F.interpolate(norm(t), size=f.shape[-2:], mode="bilinear", align_corners=False)
            out.append(rec(r) + f)
        return out


class CCA(nn.Module):
    """Channel-wise cross attention of the decoder (UCTransNet's CCA)."""

    def __init__(self, up_channels: int, skip_channels: int) -> None:
        super().__init__()
        self.mlp_skip = nn.Linear(skip_channels, skip_channels)
        self.mlp_up = nn.Linear(up_channels, skip_channels)

    def forward(self, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        att = (self.mlp_skip(skip.mean((2, 3))) + self.mlp_up(up.mean((2, 3)))) / 2.0
        return F.relu(skip * torch.sigmoid(att)[:, :, None, None])


class UpBlock(nn.Module):
    def __init__(self, deep: int, skip: int, cout: int) -> None:
        super().__init__()
        self.cca = CCA(deep, skip)
        self.convs = nn.Sequential(_conv_bn_relu(deep + skip, cout), _conv_bn_relu(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.convs(torch.cat([self.cca(up, skip), up], 1))


class SCTransNet(SegmentationNet):
    """SCTransNet (see the module docstring)."""

    display_name = "SCTransNet"

    def __init__(
        self,
        base: int = 32,
        patches: tuple[int, ...] = (16, 8, 4, 2),
        depth: int = 4,
        deep_supervision: bool = True,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        if base < 2 or base % 2 or len(patches) != 4 or depth < 1:
            raise ValueError(
                f"base must be even >= 2, patches 4 sizes, depth >= 1; got {base}, {patches}, {depth}"
            )
        c = [base, 2 * base, 4 * base, 8 * base, 8 * base]
        self.deep_supervision = bool(deep_supervision)
        self.encoder = nn.ModuleList(ResBlock(in_chans if i == 0 else c[i - 1], c[i]) for i in range(5))
        self.transformer = CrossTransformer(tuple(c[:4]), tuple(int(p) for p in patches), int(depth))
        # decoder levels 4..1: (deeper width, skip width, output width)
        self.decoder = nn.ModuleList(
            [
                UpBlock(c[4], c[3], c[2]),
                UpBlock(c[2], c[2], c[1]),
                UpBlock(c[1], c[1], c[0]),
                UpBlock(c[0], c[0], c[0]),
            ]
        )
        self.head = nn.Conv2d(c[0], 1, 1)
        if self.deep_supervision:
            # on the bottleneck and the decoder outputs of levels 4, 3, 2
            self.sides = nn.ModuleList(nn.Conv2d(w, 1, 1) for w in (c[4], c[2], c[1], c[0]))
            self.fuse = nn.Conv2d(5, 1, 1)

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = []
        h = x
        for i, block in enumerate(self.encoder):
            h = block(h if i == 0 else F.max_pool2d(h, 2))
            feats.append(h)
        skips = self.transformer(feats[:4])
        skips = [s + f for s, f in zip(skips, feats[:4], strict=True)]  # the release adds E_i once more
        d = feats[4]
        decoded = [d]  # bottleneck, levels 4, 3, 2, 1
        for block, skip in zip(self.decoder, reversed(skips), strict=True):
            d = block(d, skip)
            decoded.append(d)
        pred = self.head(decoded[-1])
        if not self.deep_supervision:
            return (pred,)
        size = x.shape[-2:]
        sides = [
            F.interpolate(head(m), size=size, mode="bilinear", align_corners=True)
            for head, m in zip(self.sides, decoded[:4], strict=True)
        ]  # side_5 (bottleneck), side_4, side_3, side_2
        fused = self.fuse(torch.cat([*reversed(sides), pred], 1))  # release order: 2, 3, 4, 5, prediction
        return (pred, fused, *reversed(sides))


@register_network(
    title="SCTransNet",
    citation="Yuan, Qin, Yan, Akhtar, Mian. SCTransNet: Spatial-Channel Cross Transformer Network for "
    "Infrared Small Target Detection. IEEE TGRS 2024",
    paper_params=11.19,
    params_source="IR-SAM2 paper Table 7",
    recipe={
        "optim.name": "adamw",
        "optim.lr": 1e-3,
        "optim.betas": [0.9, 0.999],
        "optim.eps": 1e-8,
        "optim.weight_decay": 0.0,
        "sched.name": "cosine",
        "sched.min_lr": 1e-5,
        "loss.name": "bce",
        "loss.schedule": False,
        "train.batch_size": 16,
        "train.epochs": 1000,
        "data.crop_size": 256,
    },
    recipe_source="SCTransNet paper Sec. IV-A and the authors' training script: BCE summed over the six "
    "outputs, Adam lr 1e-3 (adamw with weight decay 0 is Adam) with cosine annealing to 1e-5 per epoch, "
    "batch 16, 1000 epochs, 256x256 crops",
)
def sctransnet(
    base: int = 32, patches: tuple[int, ...] = (16, 8, 4, 2), depth: int = 4, deep_supervision: bool = True
) -> SCTransNet:
    """SCTransNet with deep supervision (the paper's configuration)."""
    return SCTransNet(int(base), tuple(patches), int(depth), deep_supervision)
