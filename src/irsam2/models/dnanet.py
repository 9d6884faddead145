"""DNANet: dense nested attention network (Li et al., IEEE TIP 2022).

Paper: B. Li, C. Xiao, L. Wang, Y. Wang, Z. Lin, M. Li, W. An, Y. Guo, "Dense Nested Attention Network for
Infrared Small Target Detection", IEEE TIP 32 (2023) 1745-1758, arXiv 2106.00487.

- Feature extraction (Sec. III-A/B, Fig. 3): five levels i = 0..4 of widths (16, 32, 64, 128, 256); level 0 is
  one Res-CBAM block on the image, level i > 0 max-pools level i-1 and applies ``num_blocks[i-1]`` Res-CBAM
  blocks (``irsam2.models.layers.cnn.ResCBAMBlock``: a residual block whose branch is refined by CBAM channel
  then spatial attention).
- Dense nested interactive module (DNIM, Sec. III-B, Eq. 1): node ``X^{i,j}`` (j >= 1) is a Res-CBAM stage
  over the concatenation of every earlier node of its level ``X^{i,0..j-1}``, the bilinearly upsampled
  ``X^{i+1,j-1}`` and, for i > 0, the down-sampled (max-pooled) ``X^{i-1,j}``.
- Channel and spatial attention feature pyramid fusion (CSAM + FPFM, Sec. III-C/D): the last node of each
  level ``X^{4,0}, X^{3,1}, X^{2,2}, X^{1,3}`` is mapped to 16 channels by a 1x1 conv, upsampled to full size
  and concatenated with ``X^{0,4}``; one Res-CBAM block fuses the 80 channels.
- Eight-connected neighbourhood clustering (Sec. III-E) is a post-processing step for the detection metrics;
  the evaluation here uses connected components of the thresholded map, the same thing.
- Deep supervision (Sec. III-D): 1x1 convs give a logit map from ``X^{0,1}, X^{0,2}, X^{0,3}`` and from the
  fused map; outputs ``(fused, X01, X02, X03)`` with the fused prediction first.

Parameters: 4.69 M (the IR-SAM2 paper's Table 7; the DNANet paper reports 4.70 M); the test checks within 1 %.
Loss and recipe (Sec. IV-A): soft-IoU loss, AdaGrad with learning rate 0.05 and cosine annealing, batch 16,
1500 epochs, 256 x 256 crops. Where the paper leaves a detail out (bias on the convs, the CBAM reduction 16,
the 1x1 maps before the pyramid fusion) it was read as a fact from the authors' public implementation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from irsam2.models.base import SegmentationNet
from irsam2.models.layers.cnn import ResCBAMBlock, res_stage
from irsam2.models.registry import register_network


def _up(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class DNANet(SegmentationNet):
    """DNANet (see the module docstring)."""

    display_name = "DNANet"

    def __init__(
        self,
        widths: tuple[int, ...] = (16, 32, 64, 128, 256),
        num_blocks: tuple[int, ...] = (2, 2, 2, 2),
        deep_supervision: bool = True,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        w = [int(v) for v in widths]
        n = [int(v) for v in num_blocks]
        if len(w) != 5 or len(n) != 4 or min(w) < 1 or min(n) < 1:
            raise ValueError(f"widths needs 5 and num_blocks 4 positive values, got {widths}, {num_blocks}")
        self.deep_supervision = bool(deep_supervision)
        blocks_at = [1, *n]  # blocks per stage at each level (level 0: one)
        # nodes[i][j] builds X^{i,j}
        self.nodes = nn.ModuleList()
        for i in range(5):
            level = nn.ModuleList()
            for j in range(5 - i):
                if j == 0:
                    cin = in_chans if i == 0 else w[i - 1]
                else:
                    cin = w[i] * j + w[i + 1] + (w[i - 1] if i > 0 else 0)
                level.append(res_stage(ResCBAMBlock, cin, w[i], blocks_at[i]))
            self.nodes.append(level)
        # pyramid fusion: X^{4,0}, X^{3,1}, X^{2,2}, X^{1,3} -> w0 channels each, + X^{0,4}
        self.pyramid = nn.ModuleList(nn.Conv2d(w[i], w[0], 1) for i in (4, 3, 2, 1))
        self.fuse = res_stage(ResCBAMBlock, 5 * w[0], w[0], 1)
        if self.deep_supervision:
            self.heads = nn.ModuleList(nn.Conv2d(w[0], 1, 1) for _ in range(4))
        else:
            self.heads = nn.ModuleList([nn.Conv2d(w[0], 1, 1)])

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        grid: list[list[torch.Tensor]] = [[] for _ in range(5)]
        grid[0].append(self.nodes[0][0](x))
        # column-wise (anti-diagonal) order: X^{k,0} then X^{k-1,1}, ..., X^{0,k}
        for k in range(1, 5):
            grid[k].append(self.nodes[k][0](F.max_pool2d(grid[k - 1][0], 2)))
            for j in range(1, k + 1):
                i = k - j
                parts = [*grid[i][:j], _up(grid[i + 1][j - 1], grid[i][0].shape[-2:])]
                if i > 0:
                    parts.append(F.max_pool2d(grid[i - 1][j], 2))
                grid[i].append(self.nodes[i][j](torch.cat(parts, 1)))
        size = grid[0][0].shape[-2:]
        pyramid = [
            _up(conv(grid[i][4 - i]), size) for conv, i in zip(self.pyramid, (4, 3, 2, 1), strict=True)
        ]
        fused = self.fuse(torch.cat([*pyramid, grid[0][4]], 1))
        if not self.deep_supervision:
            return (self.heads[0](fused),)
        side = [head(grid[0][j]) for head, j in zip(self.heads[:3], (1, 2, 3), strict=True)]
        return (self.heads[3](fused), *side)


@register_network(
    title="DNANet",
    citation="Li et al. Dense Nested Attention Network for Infrared Small Target Detection. IEEE TIP 2022",
    paper_params=4.69,
    params_source="IR-SAM2 paper Table 7",
    recipe={
        "optim.name": "adagrad",
        "optim.lr": 0.05,
        "optim.weight_decay": 0.0,
        "sched.name": "cosine",
        "sched.min_lr": 1e-5,
        "loss.name": "soft_iou",
        "loss.schedule": False,
        "train.batch_size": 16,
        "train.epochs": 1500,
        "data.crop_size": 256,
    },
    recipe_source="DNANet paper Sec. IV-A: soft-IoU, AdaGrad lr 0.05 with cosine annealing, batch 16, "
    "1500 epochs, 256x256",
)
def dnanet(
    widths: tuple[int, ...] = (16, 32, 64, 128, 256),
    num_blocks: tuple[int, ...] = (2, 2, 2, 2),
    deep_supervision: bool = True,
) -> DNANet:
    """DNANet with deep supervision (the paper's configuration)."""
    return DNANet(tuple(widths), tuple(num_blocks), deep_supervision)
