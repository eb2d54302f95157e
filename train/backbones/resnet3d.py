"""3D ResNets (R3D-10, R3D-18; Tran et al., CVPR 2018 / Hara et al.) and the residual skeleton they share
with R(2+1)D.

Skeleton: stem conv 3x7x7, stride 1x2x2, 64 channels, BN, ReLU (no max pool); then conv2_x..conv5_x
with 64, 128, 256, 512 channels of basic residual blocks (two 3x3x3 convs, BN after each); conv3_x..conv5_x
halve time and space in their first block, whose shortcut is a 1x1x1 stride-2 conv + BN (type-B shortcut).
A 16x112x112 clip gives a [512, 2, 7, 7] map. Convolutions have no bias (BN follows each).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from train.backbones.base import Backbone, init_weights
from train.backbones.registry import register_backbone

Triple = tuple[int, int, int]
ConvFactory = Callable[[int, int, Triple, Triple, Triple, int], nn.Module]
"""(in_channels, out_channels, kernel, stride, padding, block_in_channels) -> module with ``out_channels``
outputs; ``block_in_channels`` is the input width of the enclosing residual block (used by R(2+1)D)."""

RESNET_WIDTHS: tuple[int, ...] = (64, 128, 256, 512)
STEM_WIDTH = 64


def full_conv3d(in_channels: int, out_channels: int, kernel: Triple, stride: Triple, padding: Triple,
                block_in_channels: int) -> nn.Conv3d:
    """A plain (full) 3D convolution without bias: the R3D convolution (``block_in_channels`` unused)."""
    return nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)


class BasicBlock3d(nn.Module):
    """Residual block: conv-BN-ReLU-conv-BN + shortcut, ReLU. [B, in, T, H, W] -> [B, out, T/s, H/s, W/s]."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, make_conv: ConvFactory) -> None:
        super().__init__()
        self.conv1 = make_conv(in_channels, out_channels, (3, 3, 3), (stride,) * 3, (1, 1, 1), in_channels)
        self.bn1 = nn.BatchNorm3d(out_channels)
        self.conv2 = make_conv(out_channels, out_channels, (3, 3, 3), (1, 1, 1), (1, 1, 1), in_channels)
        self.bn2 = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm3d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.relu(self.bn1(self.conv1(x)))
        residual = self.bn2(self.conv2(residual))
        return self.relu(residual + self.shortcut(x))


class ResNet3d(Backbone):
    """Residual video network; ``make_conv`` decides full 3D (R3D) or factorised (R(2+1)D) convolutions.

    ``blocks``: number of residual blocks in conv2_x..conv5_x, e.g. (1, 1, 1, 1) for depth 10,
    (2, 2, 2, 2) for depth 18. ``forward_features``: [B, C, 16, 112, 112] -> [B, 512, 2, 7, 7].
    """

    def __init__(self, in_channels: int, blocks: tuple[int, int, int, int], make_conv: ConvFactory,
                 zero_init_residual: bool = False) -> None:
        super().__init__(in_channels)
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"blocks must be four positive counts, got {blocks}")
        self.stages["conv1"] = nn.Sequential(
            make_conv(in_channels, STEM_WIDTH, (3, 7, 7), (1, 2, 2), (1, 3, 3), in_channels),
            nn.BatchNorm3d(STEM_WIDTH),
            nn.ReLU(inplace=True),
        )
        width_in = STEM_WIDTH
        for i, (n_blocks, width) in enumerate(zip(blocks, RESNET_WIDTHS)):
            stride = 1 if i == 0 else 2
            layer = [BasicBlock3d(width_in, width, stride, make_conv)]
            layer += [BasicBlock3d(width, width, 1, make_conv) for _ in range(n_blocks - 1)]
            self.stages[f"conv{i + 2}"] = nn.Sequential(*layer)
            width_in = width
        self.num_features = RESNET_WIDTHS[-1]
        self.stage_channels = {"pool3": RESNET_WIDTHS[1], "pool4": RESNET_WIDTHS[2], "pool5": RESNET_WIDTHS[3]}
        init_weights(self)
        if zero_init_residual:
            for block in self.modules():
                if isinstance(block, BasicBlock3d):
                    nn.init.zeros_(block.bn2.weight)


@register_backbone("r3d_10")
def r3d_10(in_channels: int = 3, **kwargs) -> ResNet3d:
    """R3D-10: one block per stage (14.4M parameters)."""
    return ResNet3d(in_channels, (1, 1, 1, 1), full_conv3d, **kwargs)


@register_backbone("r3d_18")
def r3d_18(in_channels: int = 3, **kwargs) -> ResNet3d:
    """R3D-18: two blocks per stage (33.2M parameters)."""
    return ResNet3d(in_channels, (2, 2, 2, 2), full_conv3d, **kwargs)
