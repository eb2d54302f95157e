"""Backbones of the discrimination methods: r3d_18_ir (video IR/LA) and r3d_50_slow (CVRL): sizes from the
layer formulas, the papers' strides and kernels, shapes."""
from __future__ import annotations

import pytest
import torch

from train.backbones import build_backbone


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_backbone(name: str, **kwargs) -> torch.nn.Module:
    """Built on the meta device: shapes and sizes without the cost of initialising weights."""
    with torch.device("meta"):
        return build_backbone(name, **kwargs).eval()


def ir_resnet18_count(in_channels: int) -> int:
    """7x7x7 stem + BN, then basic blocks (two 3x3x3 convs + BN) with 1x1x1 projection shortcuts."""
    total = 7**3 * in_channels * 64 + 2 * 64
    width_in = 64
    for width in (64, 128, 256, 512):
        for block_in in (width_in, width):
            total += 27 * block_in * width + 2 * width + 27 * width * width + 2 * width
            if block_in != width:
                total += block_in * width + 2 * width
        width_in = width
    return total


def slow_r50_count(in_channels: int) -> int:
    """5x7x7 stem + BN, then bottlenecks kx1x1 -> 1x3x3 -> 1x1x1 (x4), BN each, projection shortcuts."""
    total = 5 * 7 * 7 * in_channels * 64 + 2 * 64
    width_in = 64
    for blocks, width, k in ((3, 64, 1), (4, 128, 1), (6, 256, 3), (3, 512, 3)):
        for b in range(blocks):
            block_in = width_in if b == 0 else 4 * width
            total += k * block_in * width + 2 * width + 9 * width * width + 2 * width + width * 4 * width + 8 * width
            if block_in != 4 * width:
                total += block_in * 4 * width + 8 * width
        width_in = 4 * width
    return total


def test_parameter_counts() -> None:
    ir18 = n_params(meta_backbone("r3d_18_ir"))
    assert ir18 == ir_resnet18_count(3) == 33_203_904
    assert abs(ir18 - 33.2e6) < 0.05e6  # Hara et al. list their 3D ResNet-18 at 33.2M
    assert n_params(meta_backbone("r3d_18_ir", in_channels=2)) == ir_resnet18_count(2)
    slow = n_params(meta_backbone("r3d_50_slow"))
    assert slow == slow_r50_count(3) == 31_672_128
    assert abs(slow - 31.7e6) < 0.05e6  # CVRL lists its R3D-50 at 31.7M parameters
    assert n_params(meta_backbone("r3d_50_slow", in_channels=1)) == slow_r50_count(1)


def test_ir_resnet_stem_pool_and_shapes() -> None:
    model = meta_backbone("r3d_18_ir")
    stem, pool = model.stages["conv1"][0], model.stages["conv2"][0]
    assert stem.kernel_size == (7, 7, 7) and stem.stride == (1, 2, 2) and stem.padding == (3, 3, 3)
    assert isinstance(pool, torch.nn.MaxPool3d) and pool.kernel_size == 3 and pool.stride == 2
    shortcut = model.stages["conv3"][0].shortcut  # type B: 1x1x1 stride-2 conv + BN
    assert shortcut[0].kernel_size == (1, 1, 1) and shortcut[0].stride == (2, 2, 2)
    x, shapes = torch.empty(2, 3, 16, 112, 112, device="meta"), []
    for stage in model.stages.values():
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(64, 16, 56, 56), (64, 8, 28, 28), (128, 4, 14, 14), (256, 2, 7, 7), (512, 1, 4, 4)]


def test_slow_r50_kernels_and_shapes() -> None:
    model = meta_backbone("r3d_50_slow")
    stem = model.stages["conv1"][0]
    assert stem.kernel_size == (5, 7, 7) and stem.stride == (2, 2, 2)
    temporal = {name: {block.conv1.kernel_size for block in stage if hasattr(block, "conv1")}
                for name, stage in model.stages.items() if name != "conv1"}
    assert temporal == {"conv2": {(1, 1, 1)}, "conv3": {(1, 1, 1)}, "conv4": {(3, 1, 1)}, "conv5": {(3, 1, 1)}}
    strides = {m.stride for m in model.modules() if isinstance(m, torch.nn.Conv3d) and m is not stem}
    assert all(s[0] == 1 for s in strides)  # no temporal stride after the stem
    assert model.stage_channels == {"pool3": 512, "pool4": 1024, "pool5": 2048} and model.num_features == 2048
    x, shapes = torch.empty(2, 3, 16, 224, 224, device="meta"), []
    for stage in model.stages.values():
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(64, 8, 112, 112), (256, 8, 56, 56), (512, 8, 28, 28), (1024, 8, 14, 14), (2048, 8, 7, 7)]


@pytest.mark.parametrize("name", ["r3d_18_ir", "r3d_50_slow"])
def test_real_forward_and_gradients(name: str) -> None:
    torch.manual_seed(0)
    model = build_backbone(name)
    clip = torch.randn(2, 3, 8, 32, 32)
    embedding = model(clip)
    embedding.square().mean().backward()
    assert embedding.shape == (2, model.num_features) and torch.isfinite(embedding).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
