"""2D ResNet-18 (He et al., CVPR 2016) on stacked frames: the segment encoder of CPC on video (Lorre et al.,
WACV 2020), whose first convolution takes the C·F channels of F stacked frames of C channels each.

Layout (torchvision's ``resnet18`` without its classifier): stem conv 7x7 stride 2, 64 channels, BN, ReLU;
conv2_x = max pool 3x3 stride 2 + two basic blocks of 64; conv3_x..conv5_x = two basic blocks of 128, 256,
512, the first halving the resolution with a 1x1 stride-2 conv + BN shortcut. A 224x224 input gives a
7x7x512 map. 11,176,512 parameters for 3 input channels (torchvision's 11,689,512 minus its 1000-way fc).

To fit the 5-D ``Backbone`` contract the input is [B, C, T, H, W] with T = 1 (one stacked segment); every
stage folds time into the batch and runs 2D convolutions, so T > 1 encodes each frame independently.
"""
from __future__ import annotations

import torch
from torch import nn

from train.backbones.base import Backbone
from train.backbones.registry import register_backbone

RESNET18_BLOCKS: tuple[int, ...] = (2, 2, 2, 2)
RESNET_WIDTHS: tuple[int, ...] = (64, 128, 256, 512)
STEM_WIDTH = 64


class PerFrame2d(nn.Module):
    """Runs a 2D module on every frame: [B, C, T, H, W] -> [B, C', T, H', W']."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, frames, _, _ = x.shape
        if frames == 1:
            return self.module(x.squeeze(2)).unsqueeze(2)
        folded = self.module(x.transpose(1, 2).flatten(0, 1))
        return folded.unflatten(0, (batch, frames)).transpose(1, 2)


class BasicBlock2d(nn.Module):
    """Residual block: conv3x3-BN-ReLU-conv3x3-BN + shortcut, ReLU. [N, in, H, W] -> [N, out, H/s, W/s]."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.relu(self.bn1(self.conv1(x)))
        residual = self.bn2(self.conv2(residual))
        return self.relu(residual + self.shortcut(x))


class ResNet2d(Backbone):
    """2D residual network on [B, C, 1, H, W]; ``forward_features``: [B, C, 1, 224, 224] -> [B, 512, 1, 7, 7].

    ``blocks``: basic blocks in conv2_x..conv5_x, (2, 2, 2, 2) for ResNet-18.
    """

    def __init__(self, in_channels: int, blocks: tuple[int, int, int, int] = RESNET18_BLOCKS) -> None:
        super().__init__(in_channels)
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"blocks must be four positive counts, got {blocks}")
        self.stages["conv1"] = PerFrame2d(nn.Sequential(
            nn.Conv2d(in_channels, STEM_WIDTH, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(STEM_WIDTH),
            nn.ReLU(inplace=True),
        ))
        width_in = STEM_WIDTH
        for i, (n_blocks, width) in enumerate(zip(blocks, RESNET_WIDTHS)):
            layer: list[nn.Module] = [nn.MaxPool2d(3, stride=2, padding=1)] if i == 0 else []
            layer.append(BasicBlock2d(width_in, width, 1 if i == 0 else 2))
            layer += [BasicBlock2d(width, width, 1) for _ in range(n_blocks - 1)]
            self.stages[f"conv{i + 2}"] = PerFrame2d(nn.Sequential(*layer))
            width_in = width
        self.num_features = RESNET_WIDTHS[-1]
        self.stage_channels = {"pool3": RESNET_WIDTHS[1], "pool4": RESNET_WIDTHS[2], "pool5": RESNET_WIDTHS[3]}
        init_weights_2d(self)


def init_weights_2d(module: nn.Module) -> None:
    """He-normal convolutions (fan-out, ReLU), unit/zero batch-norm (torchvision's ResNet initialisation)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@register_backbone("resnet18_2d")
def resnet18_2d(in_channels: int = 3) -> ResNet2d:
    """2D ResNet-18 on C·F stacked frames (``in_channels`` = C·F, e.g. 20 for 10 flow frames)."""
    return ResNet2d(in_channels, RESNET18_BLOCKS)
