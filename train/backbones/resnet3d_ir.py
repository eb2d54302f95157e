"""3D ResNet-18 of the video instance-recognition / local-aggregation papers (Tokmakov et al. 2020, built on
Hara et al.'s 3D ResNets): a 7x7x7 stem and a 3x3x3 max pool that also halves time.

conv1: 7x7x7 conv, stride (1, 2, 2), 64 channels, BN, ReLU. conv2: 3x3x3 max pool, stride 2 in time and
space (the ResNet paper counts the pool in conv2_x), then basic blocks; conv3..conv5 halve time and space in
their first block, whose shortcut is a 1x1x1 stride-2 conv + BN (type B). A 16x112x112 clip gives
[512, 1, 4, 4]. The 128-d fc and L2 norm of the papers belong to the method's head, not the backbone.
"""
from __future__ import annotations

from torch import nn

from train.backbones.base import Backbone, init_weights
from train.backbones.registry import register_backbone
from train.backbones.resnet3d import RESNET_WIDTHS, STEM_WIDTH, BasicBlock3d, full_conv3d


class ResNet3dIR(Backbone):
    """Hara-style 3D ResNet with basic blocks; ``blocks`` per stage conv2..conv5, e.g. (2, 2, 2, 2).

    ``forward_features``: [B, C, 16, 112, 112] -> [B, 512, 1, 4, 4].
    """

    def __init__(self, in_channels: int, blocks: tuple[int, int, int, int]) -> None:
        super().__init__(in_channels)
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"blocks must be four positive counts, got {blocks}")
        self.stages["conv1"] = nn.Sequential(
            nn.Conv3d(in_channels, STEM_WIDTH, 7, stride=(1, 2, 2), padding=3, bias=False),
            nn.BatchNorm3d(STEM_WIDTH),
            nn.ReLU(inplace=True),
        )
        width_in = STEM_WIDTH
        for i, (n_blocks, width) in enumerate(zip(blocks, RESNET_WIDTHS)):
            layer: list[nn.Module] = [nn.MaxPool3d(3, stride=2, padding=1)] if i == 0 else []
            layer.append(BasicBlock3d(width_in, width, 1 if i == 0 else 2, full_conv3d))
            layer += [BasicBlock3d(width, width, 1, full_conv3d) for _ in range(n_blocks - 1)]
            self.stages[f"conv{i + 2}"] = nn.Sequential(*layer)
            width_in = width
        self.num_features = RESNET_WIDTHS[-1]
        self.stage_channels = {"pool3": RESNET_WIDTHS[1], "pool4": RESNET_WIDTHS[2], "pool5": RESNET_WIDTHS[3]}
        init_weights(self)


@register_backbone("r3d_18_ir")
def r3d_18_ir(in_channels: int = 3) -> ResNet3dIR:
    """3D ResNet-18 of video IR/LA (33,203,904 parameters for RGB)."""
    return ResNet3dIR(in_channels, (2, 2, 2, 2))
