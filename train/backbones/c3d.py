"""C3D family: the light 5-convolution C3D of the motion/appearance-statistics paper, with or without BN.

Layers (Wang et al., CVPR 2019, public TensorFlow code ``laura-wang/video_repres_mas``): five 3x3x3
convolutions (stride 1, padding 1) with 64, 128, 256, 256, 256 channels, each followed by ReLU and a max
pool; pool1 is 1x2x2 (keeps time), pool2..pool5 are 2x2x2. pool5 keeps partial windows (TF 'SAME'
padding, here ``ceil_mode=True``), so a 16x112x112 clip gives a [256, 1, 4, 4] map (4096 values, the
input of the paper's fc6). ``c3d_bn`` adds BatchNorm after every convolution (the convolution then has
no bias).
"""
from __future__ import annotations

from torch import nn

from train.backbones.base import STAGE_NAMES, Backbone, init_weights

LIGHT_C3D_CHANNELS: tuple[int, ...] = (64, 128, 256, 256, 256)


def _conv_block(in_channels: int, out_channels: int, pool: nn.MaxPool3d, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm3d(out_channels))
    layers += [nn.ReLU(inplace=True), pool]
    return nn.Sequential(*layers)


class C3D(Backbone):
    """Light C3D: ``forward_features`` [B, C, 16, 112, 112] -> [B, 256, 1, 4, 4]."""

    def __init__(self, in_channels: int = 3, batch_norm: bool = False,
                 channels: tuple[int, ...] = LIGHT_C3D_CHANNELS) -> None:
        super().__init__(in_channels)
        if len(channels) != len(STAGE_NAMES):
            raise ValueError(f"C3D needs {len(STAGE_NAMES)} channel widths, got {channels}")
        pools = [nn.MaxPool3d((1, 2, 2), (1, 2, 2))] + [nn.MaxPool3d(2, 2) for _ in range(3)]
        pools.append(nn.MaxPool3d(2, 2, ceil_mode=True))
        widths = (in_channels, *channels)
        for i, name in enumerate(STAGE_NAMES):
            self.stages[name] = _conv_block(widths[i], widths[i + 1], pools[i], batch_norm)
        self.num_features = channels[-1]
        self.stage_channels = {"pool3": channels[2], "pool4": channels[3], "pool5": channels[4]}
        init_weights(self)


def c3d(in_channels: int = 3, **kwargs) -> C3D:
    """Light C3D without batch norm (the statistics paper's network)."""
    return C3D(in_channels, batch_norm=False, **kwargs)


def c3d_bn(in_channels: int = 3, **kwargs) -> C3D:
    """Light C3D with BatchNorm after every convolution."""
    return C3D(in_channels, batch_norm=True, **kwargs)
