"""C3D family: the light 5-convolution C3D of the motion/appearance-statistics paper (with or without BN),
and the full 8-convolution C3D with BN used by the authors' later work.

Light C3D (Wang et al., CVPR 2019, public TensorFlow code ``laura-wang/video_repres_mas``): five 3x3x3
convolutions (stride 1, padding 1) with 64, 128, 256, 256, 256 channels, each followed by ReLU and a max
pool; pool1 is 1x2x2 (keeps time), pool2..pool5 are 2x2x2. pool5 keeps partial windows (TF 'SAME'
padding, here ``ceil_mode=True``), so a 16x112x112 clip gives a [256, 1, 4, 4] map (4096 values, the
input of the paper's fc6). ``c3d_bn`` adds BatchNorm after every convolution (the convolution then has
no bias).

Large C3D with BN (Tran et al. 2015 layout as used by the pace-prediction and T-PAMI statistics code):
conv1 64, conv2 128, conv3a/b 256, conv4a/b 512, conv5a/b 512, BN + ReLU after each, pools as above but
no pool5 (the features are averaged globally): 16x112x112 -> [512, 2, 7, 7].
"""
from __future__ import annotations

from torch import nn

from train.backbones.base import STAGE_NAMES, Backbone, init_weights
from train.backbones.registry import register_backbone

LIGHT_C3D_CHANNELS: tuple[int, ...] = (64, 128, 256, 256, 256)
LARGE_C3D_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)
LARGE_C3D_CONVS: tuple[int, ...] = (1, 1, 2, 2, 2)


def _conv_stage(in_channels: int, out_channels: int, n_convs: int, pool: nn.Module,
                batch_norm: bool) -> nn.Sequential:
    """``n_convs`` x (3x3x3 conv [+ BN] + ReLU), then ``pool``."""
    layers: list[nn.Module] = []
    for i in range(n_convs):
        layers.append(nn.Conv3d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1,
                                bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm3d(out_channels))
        layers.append(nn.ReLU(inplace=True))
    layers.append(pool)
    return nn.Sequential(*layers)


class C3D(Backbone):
    """Plain 3x3x3 convolution stages ``conv1``..``conv5`` with max pools (pool1 1x2x2, others 2x2x2).

    ``channels``: width of each stage; ``convs_per_stage``: convolutions in each stage; ``pool5``: end with
    the 2x2x2 'SAME' max pool (light C3D) or not (large C3D).
    """

    def __init__(self, in_channels: int = 3, batch_norm: bool = False,
                 channels: tuple[int, ...] = LIGHT_C3D_CHANNELS, convs_per_stage: tuple[int, ...] = (1, 1, 1, 1, 1),
                 pool5: bool = True) -> None:
        super().__init__(in_channels)
        if len(channels) != len(STAGE_NAMES) or len(convs_per_stage) != len(STAGE_NAMES):
            raise ValueError(f"C3D needs {len(STAGE_NAMES)} widths and conv counts, got {channels}, {convs_per_stage}")
        pools: list[nn.Module] = [nn.MaxPool3d((1, 2, 2), (1, 2, 2))] + [nn.MaxPool3d(2, 2) for _ in range(3)]
        pools.append(nn.MaxPool3d(2, 2, ceil_mode=True) if pool5 else nn.Identity())
        widths = (in_channels, *channels)
        for i, name in enumerate(STAGE_NAMES):
            self.stages[name] = _conv_stage(widths[i], widths[i + 1], convs_per_stage[i], pools[i], batch_norm)
        self.num_features = channels[-1]
        self.stage_channels = {"pool3": channels[2], "pool4": channels[3], "pool5": channels[4]}
        init_weights(self)


@register_backbone("c3d")
def c3d(in_channels: int = 3, **kwargs) -> C3D:
    """Light C3D without batch norm (the statistics paper's network): 4,651,008 parameters."""
    return C3D(in_channels, batch_norm=False, **kwargs)


@register_backbone("c3d_bn")
def c3d_bn(in_channels: int = 3, **kwargs) -> C3D:
    """Light C3D with BatchNorm after every convolution."""
    return C3D(in_channels, batch_norm=True, **kwargs)


@register_backbone("c3d_large_bn")
def c3d_large_bn(in_channels: int = 3, **kwargs) -> C3D:
    """8-convolution C3D with BatchNorm and no pool5: 27,658,688 parameters."""
    return C3D(in_channels, batch_norm=True, channels=LARGE_C3D_CHANNELS, convs_per_stage=LARGE_C3D_CONVS,
               pool5=False, **kwargs)
