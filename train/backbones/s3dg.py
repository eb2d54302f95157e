"""S3D-G (Xie et al., "Rethinking Spatiotemporal Feature Learning", ECCV 2018): Inception-v1 with separable
3D convolutions and feature gating, in the layout the pace-prediction authors trained (``laura-wang/video-pace``,
``models/s3d_g.py``, adapted from the S3D HowTo100M code; see docs/S3DG.md).

Every k x k x k convolution is separable: a 1 x k x k spatial convolution to the output width, BN, ReLU, then a
k x 1 x 1 temporal one, BN, ReLU. The stem (Conv3d_1a, 3 x 7 x 7, stride 2) stays a full 3D convolution.
Gating multiplies a feature map channel-wise by sigmoid(W mean(x) + b) (W: C x C, mean over T, H, W); it
follows Conv3d_2c and the last convolution of every Inception branch. Max pools use TensorFlow 'SAME'
padding (output = ceil(input / stride)).

Stages (the ``Backbone`` contract; each stage starts with its downsampling, as the ResNets do):
``conv1`` Conv3d_1a_7x7 (64) | ``conv2`` MaxPool_2a, Conv3d_2b_1x1 (64), Conv3d_2c_3x3 (192) + gate |
``conv3`` MaxPool_3a, Mixed_3b, Mixed_3c (480) | ``conv4`` MaxPool_4a, Mixed_4b .. Mixed_4f (832) |
``conv5`` MaxPool_5a, Mixed_5b, Mixed_5c (1024). A 64x224x224 clip gives [1024, 8, 7, 7]; 16x112x112 gives
[1024, 2, 4, 4]. 9,125,072 parameters for RGB (no classifier).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from train.backbones.base import POOLED_STAGES, Backbone, init_weights
from train.backbones.registry import register_backbone

Triple = tuple[int, int, int]

INCEPTION_WIDTHS: dict[str, tuple[int, int, int, int, int, int]] = {
    # block: (branch 0 1x1, branch 1 1x1 -> 3x3x3, branch 2 1x1 -> 3x3x3, branch 3 pool -> 1x1)
    "mixed_3b": (64, 96, 128, 16, 32, 32),
    "mixed_3c": (128, 128, 192, 32, 96, 64),
    "mixed_4b": (192, 96, 208, 16, 48, 64),
    "mixed_4c": (160, 112, 224, 24, 64, 64),
    "mixed_4d": (128, 128, 256, 24, 64, 64),
    "mixed_4e": (112, 144, 288, 32, 64, 64),
    "mixed_4f": (256, 160, 320, 32, 128, 128),
    "mixed_5b": (256, 160, 320, 32, 128, 128),
    "mixed_5c": (384, 192, 384, 48, 128, 128),
}
"""Inception-v1 widths (Szegedy et al. 2015, as in I3D/S3D-G): (b0, b1 reduce, b1, b2 reduce, b2, b3)."""

STAGE_LAYOUT: dict[str, tuple[Triple, Triple, tuple[str, ...]]] = {
    # stage: (max-pool kernel, max-pool stride, Inception blocks after the pool)
    "conv3": ((1, 3, 3), (1, 2, 2), ("mixed_3b", "mixed_3c")),
    "conv4": ((3, 3, 3), (2, 2, 2), ("mixed_4b", "mixed_4c", "mixed_4d", "mixed_4e", "mixed_4f")),
    "conv5": ((2, 2, 2), (2, 2, 2), ("mixed_5b", "mixed_5c")),
}


def conv_bn_relu(in_channels: int, out_channels: int, kernel: Triple, stride: Triple = (1, 1, 1),
                 padding: Triple = (0, 0, 0)) -> nn.Sequential:
    """Conv3d (no bias) -> BN -> ReLU: [B, in, T, H, W] -> [B, out, T', H', W']."""
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


def separable_conv3d(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    """1 x k x k spatial conv-BN-ReLU to ``out_channels``, then k x 1 x 1 temporal conv-BN-ReLU (stride 1,
    'same' padding): [B, in, T, H, W] -> [B, out, T, H, W]."""
    pad = kernel_size // 2
    return nn.Sequential(
        conv_bn_relu(in_channels, out_channels, (1, kernel_size, kernel_size), padding=(0, pad, pad)),
        conv_bn_relu(out_channels, out_channels, (kernel_size, 1, 1), padding=(pad, 0, 0)),
    )


class FeatureGate(nn.Module):
    """S3D-G feature gating: ``x * sigmoid(fc(mean_{T,H,W} x))`` per sample and channel.

    [B, C, T, H, W] -> [B, C, T, H, W]; ``fc`` is a C x C linear map with bias.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc(x.mean(dim=(2, 3, 4))))
        return x * gate[:, :, None, None, None]


class MaxPool3dSame(nn.Module):
    """Max pool with TensorFlow 'SAME' padding: output size ceil(input / stride); padded cells never win."""

    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for size, k, s in zip(reversed(x.shape[2:]), reversed(self.kernel), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]  # F.pad order: W, H, T, each (before, after)
        return F.max_pool3d(F.pad(x, pads, value=-math.inf), self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated along channels, each gated when ``gating``:
    1x1x1 | 1x1x1 -> separable 3x3x3 | 1x1x1 -> separable 3x3x3 | 3x3x3 max pool (stride 1) -> 1x1x1.

    [B, in, T, H, W] -> [B, b0 + b1 + b2 + b3, T, H, W] for ``widths`` = (b0, b1 reduce, b1, b2 reduce, b2, b3).
    """

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int], gating: bool) -> None:
        super().__init__()
        b0, b1_reduce, b1, b2_reduce, b2, b3 = widths
        self.branches = nn.ModuleList([
            nn.Sequential(conv_bn_relu(in_channels, b0, (1, 1, 1))),
            nn.Sequential(conv_bn_relu(in_channels, b1_reduce, (1, 1, 1)), separable_conv3d(b1_reduce, b1)),
            nn.Sequential(conv_bn_relu(in_channels, b2_reduce, (1, 1, 1)), separable_conv3d(b2_reduce, b2)),
            nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), conv_bn_relu(in_channels, b3, (1, 1, 1))),
        ])
        if gating:
            for branch, width in zip(self.branches, (b0, b1, b2, b3)):
                branch.append(FeatureGate(width))
        self.out_channels = b0 + b1 + b2 + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class S3DG(Backbone):
    """S3D-G (``gating=True``) or S3D (``gating=False``) mapped to the five-stage contract (module docstring).

    ``forward_features``: [B, C, 64, 224, 224] -> [B, 1024, 8, 7, 7].
    """

    def __init__(self, in_channels: int = 3, gating: bool = True) -> None:
        super().__init__(in_channels)
        self.stages["conv1"] = conv_bn_relu(in_channels, 64, (3, 7, 7), stride=(2, 2, 2), padding=(1, 3, 3))
        conv2: list[nn.Module] = [
            MaxPool3dSame((1, 3, 3), (1, 2, 2)),
            conv_bn_relu(64, 64, (1, 1, 1)),
            separable_conv3d(64, 192),
        ]
        if gating:
            conv2.append(FeatureGate(192))
        self.stages["conv2"] = nn.Sequential(*conv2)
        width = 192
        self.stage_channels = {}
        for pooled, stage in POOLED_STAGES.items():
            kernel, stride, blocks = STAGE_LAYOUT[stage]
            layers = nn.Sequential(MaxPool3dSame(kernel, stride))
            for block_name in blocks:
                block = InceptionBlock(width, INCEPTION_WIDTHS[block_name], gating)
                layers.add_module(block_name, block)
                width = block.out_channels
            self.stages[stage] = layers
            self.stage_channels[pooled] = width
        self.num_features = width
        init_weights(self)


@register_backbone("s3dg")
def s3dg(in_channels: int = 3, **kwargs) -> S3DG:
    """S3D-G with gating after Conv3d_2c and every Inception branch: 9,125,072 parameters (RGB)."""
    return S3DG(in_channels, **kwargs)
