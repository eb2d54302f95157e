"""R2D3D: the 2D-3D ResNets of Dense Predictive Coding (Han et al., ICCV-W 2019; layout of the authors'
``backbone/resnet_2d3d.py``, ``ResNet2d3d_full``).

Stem conv 1x7x7 stride (1, 2, 2), 64 channels, BN, ReLU; conv2_x = max pool 1x3x3 stride (1, 2, 2) + 2D
basic blocks (1x3x3 convs) of 64; conv3_x: 2D blocks of 128 (stride (1, 2, 2)); conv4_x and conv5_x: 3D
basic blocks (3x3x3 convs) of 256 and 256 (not 512), stride 2 in time and space in their first block.
Shortcuts where the shape changes: 1x1x1 conv (same stride) + BN. No ReLU after the last block (features are
in (-inf, inf); DPC applies its own ReLU before aggregation). No biases.
A 5x128x128 block gives a [256, 2, 4, 4] map. Parameters for RGB: R2D3D-18 14,057,536, R2D3D-34 32,422,208.

``batch_statistics=True`` makes every BN normalise with the batch statistics also in eval mode, as in DPC's
pretraining (the authors build it with ``track_running_stats=False``); running statistics are still kept
(updated in train mode), so the state dict is that of the plain network and loads into it for evaluation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from train.backbones.base import Backbone, init_weights
from train.backbones.registry import register_backbone

Triple = tuple[int, int, int]

R2D3D_WIDTHS: tuple[int, ...] = (64, 128, 256, 256)
R2D3D_IS_3D: tuple[bool, ...] = (False, False, True, True)
STEM_WIDTH = 64


class BatchStatisticsNorm3d(nn.BatchNorm3d):
    """BatchNorm3d normalising with the statistics of the batch in train and eval mode; running statistics
    are updated in train mode only (and unused here). [B, C, T, H, W] -> same shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if self.training:
            self.num_batches_tracked.add_(1)
        running_mean, running_var = (self.running_mean, self.running_var) if self.training else (None, None)
        return F.batch_norm(x, running_mean, running_var, self.weight, self.bias, True, self.momentum, self.eps)


def batch_norm(channels: int, batch_statistics: bool) -> nn.BatchNorm3d:
    """Plain BatchNorm3d, or ``BatchStatisticsNorm3d`` when ``batch_statistics``."""
    return BatchStatisticsNorm3d(channels) if batch_statistics else nn.BatchNorm3d(channels)


class R2D3DBlock(nn.Module):
    """Residual block of two convs of ``kernel`` (1x3x3 for 2D, 3x3x3 for 3D) with BN; ReLU after the sum
    unless ``final_relu`` is False. [B, in, T, H, W] -> [B, out, T/s_t, H/s, W/s] with ``stride`` (s_t, s, s)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Triple, stride: Triple,
                 batch_statistics: bool, final_relu: bool = True) -> None:
        super().__init__()
        padding = tuple(k // 2 for k in kernel)
        self.conv1 = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)
        self.bn1 = batch_norm(out_channels, batch_statistics)
        self.conv2 = nn.Conv3d(out_channels, out_channels, kernel, padding=padding, bias=False)
        self.bn2 = batch_norm(out_channels, batch_statistics)
        self.relu = nn.ReLU(inplace=True)
        self.final_relu = final_relu
        self.shortcut: nn.Module = nn.Identity()
        if stride != (1, 1, 1) or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                batch_norm(out_channels, batch_statistics),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(residual)) + self.shortcut(x)
        return self.relu(out) if self.final_relu else out


class R2D3D(Backbone):
    """2D-3D ResNet; ``blocks``: residual blocks in conv2_x..conv5_x ((2, 2, 2, 2) for 18, (3, 4, 6, 3) for 34).

    ``forward_features``: [B, C, 5, 128, 128] -> [B, 256, 2, 4, 4].
    """

    def __init__(self, in_channels: int, blocks: tuple[int, int, int, int], batch_statistics: bool = False) -> None:
        super().__init__(in_channels)
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"blocks must be four positive counts, got {blocks}")
        self.stages["conv1"] = nn.Sequential(
            nn.Conv3d(in_channels, STEM_WIDTH, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            batch_norm(STEM_WIDTH, batch_statistics),
            nn.ReLU(inplace=True),
        )
        width_in = STEM_WIDTH
        for i, (n_blocks, width, is_3d) in enumerate(zip(blocks, R2D3D_WIDTHS, R2D3D_IS_3D)):
            kernel = (3, 3, 3) if is_3d else (1, 3, 3)
            step = 1 if i == 0 else 2
            stride = (step if is_3d else 1, step, step)
            last_stage = i == len(blocks) - 1
            layer: list[nn.Module] = [nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))] if i == 0 else []
            for b in range(n_blocks):
                final_relu = not (last_stage and b == n_blocks - 1)
                layer.append(R2D3DBlock(width_in if b == 0 else width, width, kernel, stride if b == 0 else (1, 1, 1),
                                        batch_statistics, final_relu))
            self.stages[f"conv{i + 2}"] = nn.Sequential(*layer)
            width_in = width
        self.num_features = R2D3D_WIDTHS[-1]
        self.stage_channels = {"pool3": R2D3D_WIDTHS[1], "pool4": R2D3D_WIDTHS[2], "pool5": R2D3D_WIDTHS[3]}
        init_weights(self)


@register_backbone("r2d3d_18")
def r2d3d_18(in_channels: int = 3, **kwargs) -> R2D3D:
    """R2D3D-18, DPC's backbone (14,057,536 parameters for RGB)."""
    return R2D3D(in_channels, (2, 2, 2, 2), **kwargs)


@register_backbone("r2d3d_34")
def r2d3d_34(in_channels: int = 3, **kwargs) -> R2D3D:
    """R2D3D-34 (32,422,208 parameters for RGB)."""
    return R2D3D(in_channels, (3, 4, 6, 3), **kwargs)
