"""Common interface of every video backbone (the contract the heads and evaluation rely on).

A backbone is five stages ``conv1`` .. ``conv5`` run in order. ``pool3``/``pool4``/``pool5`` are the
global-average-pooled outputs of ``conv3``/``conv4``/``conv5`` (the feature taps used for evaluation).
"""
from __future__ import annotations

import torch
from torch import nn

STAGE_NAMES: tuple[str, ...] = ("conv1", "conv2", "conv3", "conv4", "conv5")
POOLED_STAGES: dict[str, str] = {"pool3": "conv3", "pool4": "conv4", "pool5": "conv5"}


def global_average_pool(x: torch.Tensor) -> torch.Tensor:
    """Mean over time and space: float [B, C, T, H, W] -> [B, C]."""
    return x.mean(dim=(2, 3, 4))


class Backbone(nn.Module):
    """Base class: subclasses fill ``self.stages`` (an ``nn.ModuleDict`` keyed by ``STAGE_NAMES``, in order)
    and set ``num_features`` and ``stage_channels``.

    Input of every method is a normalized float clip [B, C, T, H, W] with ``C == in_channels``.
    """

    in_channels: int
    num_features: int
    stage_channels: dict[str, int]

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        self.in_channels = in_channels
        self.stages = nn.ModuleDict()

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects a clip [B, {self.in_channels}, T, H, W], got shape {tuple(x.shape)}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last feature map: [B, C, T, H, W] -> [B, num_features, t, h, w]."""
        self._check_input(x)
        for stage in self.stages.values():
            x = stage(x)
        return x

    def forward_stages(self, x: torch.Tensor, last: str = "pool5") -> dict[str, torch.Tensor]:
        """Pooled features per stage up to ``last``: {'pool3': [B, C3], 'pool4': [B, C4], 'pool5': [B, C5]}
        (the stages after ``last`` are not run)."""
        if last not in POOLED_STAGES:
            raise ValueError(f"unknown stage {last!r} (known: {', '.join(POOLED_STAGES)})")
        self._check_input(x)
        pooled_name = {stage: pooled for pooled, stage in POOLED_STAGES.items()}
        pooled: dict[str, torch.Tensor] = {}
        for name, stage in self.stages.items():
            x = stage(x)
            if name in pooled_name:
                pooled[pooled_name[name]] = global_average_pool(x)
            if name == POOLED_STAGES[last]:
                break
        return pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Clip embedding: [B, C, T, H, W] -> [B, num_features] (global average of ``forward_features``)."""
        return global_average_pool(self.forward_features(x))


def init_weights(module: nn.Module) -> None:
    """He-normal convolutions (fan-out, ReLU), unit/zero batch-norm, zero conv biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
