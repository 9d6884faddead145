"""Convolutional building blocks shared by the deep baselines (ACM, ALCNet, DNANet, MSHNet).

Each block is the textbook form its papers cite: the ResNet basic block (He et al., CVPR 2016), the CBAM
channel and spatial attention (Woo et al., ECCV 2018) inside a residual block (DNANet's Res-CBAM block), and
the FCN segmentation head (Long et al., CVPR 2015) that ACM and ALCNet put on their last feature map.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    """k x k convolution (no bias: BN follows), BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def pointwise_gate(channels: int, mid: int) -> nn.Sequential:
    """Conv1x1 -> BN -> ReLU -> Conv1x1 -> BN -> sigmoid: the channel-attention MLP of ACM (Sec. 3.2),
    reused by ALCNet's and UIU-Net's fusion modules."""
    return nn.Sequential(
        nn.Conv2d(channels, mid, 1),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, channels, 1),
        nn.BatchNorm2d(channels),
        nn.Sigmoid(),
    )


def projection(cin: int, cout: int, stride: int) -> nn.Module | None:
    """The residual shortcut: identity, or 1x1 conv + BN when the shape changes (ResNet option B)."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """ResNet basic block: ``relu(x' + BN(conv3(relu(BN(conv3(x))))))``, ``x'`` the (projected) input."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = projection(cin, cout, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.act(self.body(x) + identity)


def res_stage(block: type[nn.Module], cin: int, cout: int, n: int, stride: int = 1) -> nn.Sequential:
    """``n`` blocks; the first changes the width (and the stride), the others keep it."""
    return nn.Sequential(block(cin, cout, stride), *(block(cout, cout) for _ in range(n - 1)))


class ChannelAttention(nn.Module):
    """CBAM channel attention: ``sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))``, MLP = 1x1 convs C -> C/r -> C
    without bias (Woo et al., ECCV 2018, Eq. 2)."""

    def __init__(self, channels: int, ratio: int = 16) -> None:
        super().__init__()
        hidden = max(channels // ratio, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean((2, 3), keepdim=True))
        mx = self.mlp(x.amax((2, 3), keepdim=True))
        return torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: ``sigmoid(conv7x7([mean_c(x); max_c(x)]))`` (Woo et al., Eq. 3)."""

    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))


class ResCBAMBlock(nn.Module):
    """DNANet's Res-CBAM block: the basic block's residual branch refined by channel then spatial attention
    before the skip is added (DNANet paper, Fig. 4 and Sec. III-B)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = projection(cin, cout, stride)
        if self.shortcut is not None:  # the DNANet shortcut conv carries a bias
            self.shortcut[0] = nn.Conv2d(cin, cout, 1, stride)
        self.ca = ChannelAttention(cout)
        self.sa = SpatialAttention()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.body(x)
        out = out * self.ca(out)
        out = out * self.sa(out)
        return self.act(out + identity)


class FCNHead(nn.Module):
    """FCN head: 3x3 conv to C/4 + BN + ReLU + dropout 0.1, then a 1x1 conv to one logit map."""

    def __init__(self, channels: int, out: int = 1) -> None:
        super().__init__()
        inter = channels // 4
        self.block = nn.Sequential(
            nn.Conv2d(channels, inter, 3, 1, 1, bias=False),
            nn.BatchNorm2d(inter),
            nn.ReLU(inplace=True),
            nn.Dropout(0.1),
            nn.Conv2d(inter, out, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)
