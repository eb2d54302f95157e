"""R(2+1)D networks (Tran et al., "A Closer Look at Spatiotemporal Convolutions", CVPR 2018).

Every t x d x d convolution of the 3D ResNet skeleton (``resnet3d.ResNet3d``) becomes a 1 x d x d spatial
convolution to M channels, BN, ReLU, then a t x 1 x 1 temporal convolution, with the paper's parameter-
matching width M = floor(t * d^2 * N_{i-1} * N_i / (d^2 * N_{i-1} + t * N_i)).

Which widths N_{i-1}, N_i enter the formula is a documented choice:
- default (``per_conv_mid=False``): those of the residual block (its input and output width), shared by
  both convolutions of the block; the stem uses its own widths (M = 83 for RGB). R(2+1)D-18 then has
  31,313,083 parameters, the commonly quoted 31.3M (torchvision's r2plus1d_18 differs only by a
  hard-coded stem width of 45: 31,300,125).
- ``per_conv_mid=True``: each convolution's own input/output widths (the layout of the pace-prediction
  authors' code), matching R3D's size: R(2+1)D-18 has 33,178,597 parameters.
Shortcuts stay 1x1x1 convolutions.
"""
from __future__ import annotations

from functools import partial

from torch import nn

from train.backbones.resnet3d import ResNet3d, Triple
from train.backbones.registry import register_backbone


def mid_channels(in_channels: int, out_channels: int, kernel: Triple) -> int:
    """Tran et al.'s M for a factorised ``kernel`` = (t, d, d) convolution N_{i-1} -> N_i."""
    t, d_h, d_w = kernel
    spatial = d_h * d_w
    return (t * spatial * in_channels * out_channels) // (spatial * in_channels + t * out_channels)


class Conv2Plus1d(nn.Sequential):
    """Spatial 1xdxd conv (stride 1xsxs) -> BN -> ReLU -> temporal tx1x1 conv (stride sx1x1); no biases.

    M comes from (``block_in_channels``, ``out_channels``), or from (``in_channels``, ``out_channels``)
    when ``per_conv_mid``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: Triple, stride: Triple, padding: Triple,
                 block_in_channels: int, per_conv_mid: bool = False) -> None:
        mid = mid_channels(in_channels if per_conv_mid else block_in_channels, out_channels, kernel)
        super().__init__(
            nn.Conv3d(in_channels, mid, (1, kernel[1], kernel[2]), stride=(1, stride[1], stride[2]),
                      padding=(0, padding[1], padding[2]), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_channels, (kernel[0], 1, 1), stride=(stride[0], 1, 1),
                      padding=(padding[0], 0, 0), bias=False),
        )


def _r2plus1d(in_channels: int, blocks: tuple[int, int, int, int], per_conv_mid: bool = False,
              zero_init_residual: bool = False) -> ResNet3d:
    make_conv = partial(Conv2Plus1d, per_conv_mid=per_conv_mid)
    return ResNet3d(in_channels, blocks, make_conv, zero_init_residual=zero_init_residual)


@register_backbone("r21d_10")
def r21d_10(in_channels: int = 3, **kwargs) -> ResNet3d:
    """R(2+1)D-10: one block per stage (12.5M parameters by default)."""
    return _r2plus1d(in_channels, (1, 1, 1, 1), **kwargs)


@register_backbone("r21d_18")
def r21d_18(in_channels: int = 3, **kwargs) -> ResNet3d:
    """R(2+1)D-18: two blocks per stage (31.3M parameters by default)."""
    return _r2plus1d(in_channels, (2, 2, 2, 2), **kwargs)
