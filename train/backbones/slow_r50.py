"""CVRL's 3D ResNet-50 (Qian et al., CVPR 2021): the slow pathway of SlowFast with a 5-frame, stride-2 stem.

conv1: 5x7x7 conv, stride (2, 2, 2), 64 channels, BN, ReLU. conv2 (res2): 1x3x3 max pool, stride (1, 2, 2),
then bottleneck blocks. res2..res5 have 3, 4, 6, 3 bottlenecks of widths 64, 128, 256, 512 (outputs 4x);
a bottleneck is kx1x1 conv -> 1x3x3 conv (the spatial stride 2 of res3..res5's first block sits here) ->
1x1x1 conv, BN after each, with k = 1 in res2-res3 and k = 3 in res4-res5 (no temporal stride after the
stem). Projection shortcuts (1x1x1 conv + BN) where the shape changes. A 16x224x224 clip gives
[2048, 8, 7, 7]; a 16x112x112 clip [2048, 8, 4, 4].
"""
from __future__ import annotations

import torch
from torch import nn

from train.backbones.base import Backbone, init_weights
from train.backbones.registry import register_backbone

SLOW_R50_BLOCKS: tuple[int, ...] = (3, 4, 6, 3)
SLOW_R50_WIDTHS: tuple[int, ...] = (64, 128, 256, 512)
SLOW_R50_TEMPORAL_KERNELS: tuple[int, ...] = (1, 1, 3, 3)
BOTTLENECK_EXPANSION = 4
STEM_WIDTH = 64


class Bottleneck3d(nn.Module):
    """kx1x1 -> 1x3x3 (spatial stride) -> 1x1x1 residual bottleneck: [B, in, T, H, W] -> [B, 4 w, T, H/s, W/s]."""

    def __init__(self, in_channels: int, width: int, temporal_kernel: int, spatial_stride: int) -> None:
        super().__init__()
        out_channels = BOTTLENECK_EXPANSION * width
        self.conv1 = nn.Conv3d(in_channels, width, (temporal_kernel, 1, 1), padding=(temporal_kernel // 2, 0, 0),
                               bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.conv2 = nn.Conv3d(width, width, (1, 3, 3), stride=(1, spatial_stride, spatial_stride),
                               padding=(0, 1, 1), bias=False)
        self.bn2 = nn.BatchNorm3d(width)
        self.conv3 = nn.Conv3d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if spatial_stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=(1, spatial_stride, spatial_stride), bias=False),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.relu(self.bn1(self.conv1(x)))
        residual = self.relu(self.bn2(self.conv2(residual)))
        residual = self.bn3(self.conv3(residual))
        return self.relu(residual + self.shortcut(x))


class SlowResNet50(Backbone):
    """CVRL's R3D-50. ``forward_features``: [B, C, 16, 224, 224] -> [B, 2048, 8, 7, 7]."""

    def __init__(self, in_channels: int) -> None:
        super().__init__(in_channels)
        self.stages["conv1"] = nn.Sequential(
            nn.Conv3d(in_channels, STEM_WIDTH, (5, 7, 7), stride=2, padding=(2, 3, 3), bias=False),
            nn.BatchNorm3d(STEM_WIDTH),
            nn.ReLU(inplace=True),
        )
        width_in = STEM_WIDTH
        for i, (n_blocks, width, kernel) in enumerate(zip(SLOW_R50_BLOCKS, SLOW_R50_WIDTHS,
                                                          SLOW_R50_TEMPORAL_KERNELS)):
            layer: list[nn.Module] = [nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))] if i == 0 else []
            for b in range(n_blocks):
                layer.append(Bottleneck3d(width_in, width, kernel, 2 if (b == 0 and i > 0) else 1))
                width_in = BOTTLENECK_EXPANSION * width
            self.stages[f"conv{i + 2}"] = nn.Sequential(*layer)
        outputs = [BOTTLENECK_EXPANSION * w for w in SLOW_R50_WIDTHS]
        self.num_features = outputs[-1]
        self.stage_channels = {"pool3": outputs[1], "pool4": outputs[2], "pool5": outputs[3]}
        init_weights(self)


@register_backbone("r3d_50_slow")
def r3d_50_slow(in_channels: int = 3) -> SlowResNet50:
    """CVRL's 3D ResNet-50 slow pathway (31,672,128 parameters for RGB)."""
    return SlowResNet50(in_channels)
