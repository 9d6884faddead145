"""ACM: asymmetric contextual modulation (Dai, Wu, Zhou, Barnard, WACV 2021), the U-Net variant (ACM-U-Net).

Paper: "Asymmetric Contextual Modulation for Infrared Small Target Detection", WACV 2021, arXiv 2009.14530.

- Backbone (paper Sec. 4.1, "ResNet-20" family): a stem (3x3 conv stride 2, two 3x3 convs, 3x3 max-pool
  stride 2: 1/4 resolution) and three stages of ``b`` ResNet basic blocks with widths (16, 32, 64) at strides
  (1, 2, 2); ``b = 3`` gives ResNet-20 depth (the paper's Table 3 varies b).
- Decoder (ACM-U-Net, paper Fig. 4): two levels; at each, the deeper map is upsampled by a 4x4 transposed conv
  stride 2 to the skip's width and fused with the skip by the ACM module (below), then refined by ``b`` basic
  blocks; an FCN head gives one logit map at 1/4 resolution, upsampled bilinearly to the input size.
- ACM module (paper Sec. 3, Eq. 1-4, Fig. 3, ``AsymBi``): with ``X`` the high-level (deeper, upsampled) map
  and ``Y`` the low-level skip, top-down global channel attention
  ``G(X) = sigma(B(PW2(delta(B(PW1(GAP(X)))))))``, bottom-up point-wise channel attention
  ``L(Y) = sigma(B(PW2(delta(B(PW1(Y))))))`` (PW: 1x1 convs C -> C/r -> C, r = 4),
  ``Z = G(X) (x) Y + L(Y) (x) X``, then a 3x3 conv + BN + ReLU. Multiplications are by 2 so that the
  sigmoid's 1/2 at initialisation keeps the fused map's scale (a detail the paper leaves out, read from
  the authors' public implementation as a fact, like the stem widths 8/16 and the FCN head).

Parameters: 0.398 M (as tabulated for ACM in the MSHNet paper's Table 1, Liu et al., CVPR 2024; the ACM paper
plots mIoU against depth instead); ``tests/test_model_zoo.py`` checks our count within 1 %.
Loss and recipe (paper Sec. 4.2): soft-IoU loss, AdaGrad, learning rate 0.05, weight decay 1e-4, batch 8,
300 epochs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from irsam2.models.base import SegmentationNet
from irsam2.models.layers.cnn import BasicBlock, FCNHead, conv_bn_relu, pointwise_gate, res_stage
from irsam2.models.registry import register_network

ADAGRAD_RECIPE_SOFTIOU = {
    "optim.name": "adagrad",
    "optim.lr": 0.05,
    "optim.weight_decay": 1e-4,
    "sched.name": "constant",
    "loss.name": "soft_iou",
    "loss.schedule": False,
}


class AsymBiChaFuse(nn.Module):
    """The ACM module (paper Eq. 1-4): top-down global + bottom-up point-wise channel modulation."""

    def __init__(self, channels: int, r: int = 4) -> None:
        super().__init__()
        mid = channels // r
        # global (pooled) and pointwise (per pixel) attention share one shape: the pooled one sees a 1x1 map
        self.topdown = nn.Sequential(nn.AdaptiveAvgPool2d(1), *pointwise_gate(channels, mid))
        self.bottomup = pointwise_gate(channels, mid)
        self.post = conv_bn_relu(channels, channels, 3)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        return self.post(2 * low * self.topdown(high) + 2 * high * self.bottomup(low))


def acm_stem(cin: int, width: int) -> nn.Sequential:
    """3x3 conv stride 2 (after an input BN), two 3x3 convs to ``2 width``, 3x3 max-pool stride 2 (1/4)."""
    return nn.Sequential(
        nn.BatchNorm2d(cin),
        conv_bn_relu(cin, width, 3, 2),
        conv_bn_relu(width, width, 3),
        conv_bn_relu(width, 2 * width, 3),
        nn.MaxPool2d(3, 2, 1),
    )


class ACMUNet(SegmentationNet):
    """ACM-U-Net (see the module docstring); outputs a 1-tuple (no deep supervision in the paper)."""

    display_name = "ACM"

    def __init__(
        self, blocks: int = 3, channels: tuple[int, ...] = (8, 16, 32, 64), in_chans: int = 3, r: int = 4
    ) -> None:
        super().__init__()
        if blocks < 1 or len(channels) != 4:
            raise ValueError(f"blocks must be >= 1 and channels 4 widths, got {blocks}, {channels}")
        c = [int(v) for v in channels]
        self.stem = acm_stem(in_chans, c[0])
        self.layer1 = res_stage(BasicBlock, 2 * c[0], c[1], blocks, 1)
        self.layer2 = res_stage(BasicBlock, c[1], c[2], blocks, 2)
        self.layer3 = res_stage(BasicBlock, c[2], c[3], blocks, 2)
        self.deconv2 = nn.ConvTranspose2d(c[3], c[2], 4, 2, 1)
        self.fuse2 = AsymBiChaFuse(c[2], r)
        self.uplayer2 = res_stage(BasicBlock, c[2], c[2], blocks)
        self.deconv1 = nn.ConvTranspose2d(c[2], c[1], 4, 2, 1)
        self.fuse1 = AsymBiChaFuse(c[1], r)
        self.uplayer1 = res_stage(BasicBlock, c[1], c[1], blocks)
        self.head = FCNHead(c[1])

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        c1 = self.layer1(self.stem(x))  # 1/4
        c2 = self.layer2(c1)  # 1/8
        c3 = self.layer3(c2)  # 1/16
        up2 = self.uplayer2(self.fuse2(self.deconv2(c3), c2))
        up1 = self.uplayer1(self.fuse1(self.deconv1(up2), c1))
        logits = F.interpolate(self.head(up1), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return (logits,)


@register_network(
    title="ACM (U-Net)",
    citation="Dai, Wu, Zhou, Barnard. Asymmetric Contextual Modulation for Infrared Small Target Detection. "
    "WACV 2021",
    paper_params=0.398,
    params_source="MSHNet paper (CVPR 2024) Table 1",
    recipe={**ADAGRAD_RECIPE_SOFTIOU, "train.batch_size": 8, "train.epochs": 300},
    recipe_source="ACM paper Sec. 4.2: soft-IoU loss, AdaGrad lr 0.05, weight decay 1e-4, batch 8, "
    "300 epochs",
)
def acm(blocks: int = 3, channels: tuple[int, ...] = (8, 16, 32, 64)) -> ACMUNet:
    """ACM-U-Net with ResNet-20 depth (b = 3)."""
    return ACMUNet(blocks, tuple(channels))
