"""A small plain U-Net: the yardstick of the convergence benchmark (issue 11), not a paper's model.

Ronneberger et al., "U-Net: Convolutional Networks for Biomedical Image Segmentation" (MICCAI 2015): an
encoder of [Conv3x3 + BN + ReLU] x 2 stages with 2x2 max-pooling, a decoder of bilinear x2 upsampling,
concatenation with the encoder's map at that scale and [Conv3x3 + BN + ReLU] x 2, and a 1x1 convolution to
one logit map. Widths 16-32-64-128 and a 128-wide bottleneck give about 0.84 M parameters: a network a user
could write in an afternoon, so that "IR-SAM2 learns real targets" is measured against something simple
trained with the same steps, crops and recipe, not only against classical filters.

Input ``(B, 3, H, W)`` with H and W multiples of 16 (the engine pads to 32); output a 1-tuple of logits
``(B, 1, H, W)`` (the engine and the losses take any number of outputs, the first being the prediction).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from irsam2.models.base import SegmentationNet
from irsam2.models.registry import register_network


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SmallUNet(SegmentationNet):
    """Four-level U-Net, widths ``widths`` (encoder) and a bottleneck as wide as the last level."""

    display_name = "U-Net (small)"

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), in_chans: int = 3) -> None:
        super().__init__()
        self.widths = tuple(int(w) for w in widths)
        self.down = nn.ModuleList()
        c = in_chans
        for w in self.widths:
            self.down.append(_double_conv(c, w))
            c = w
        self.bottleneck = _double_conv(c, c)
        self.up = nn.ModuleList()
        for w_skip, w_out in zip(reversed(self.widths), list(reversed(self.widths))[1:] + [self.widths[0]]):
            self.up.append(_double_conv(c + w_skip, w_out))
            c = w_out
        self.head = nn.Conv2d(c, 1, 1)

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = self.bottleneck(F.max_pool2d(x, 2))
        for block, skip in zip(self.up, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return (self.head(x),)


@register_network(
    title="U-Net (small, yardstick)",
    citation="Ronneberger, Fischer, Brox. U-Net: Convolutional Networks for Biomedical Image Segmentation. "
    "MICCAI 2015 (widths 16-32-64-128: this project's yardstick, not a published IRSTD model)",
    paper_params=0.84,
    params_source="not a paper's model: the size this project documents for its yardstick (docs/results.md)",
    recipe={},
    recipe_source="none of its own: the benchmark trains it with --recipe scratch, like IR-SAM2",
)
def unet_s(widths: tuple[int, ...] = (16, 32, 64, 128)) -> SmallUNet:
    """The convergence benchmark's yardstick U-Net (about 0.84 M parameters)."""
    return SmallUNet(tuple(widths))
