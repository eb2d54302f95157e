"""Projection head: the MLP between a backbone embedding and a contrastive loss (SimCLR / CVRL style)."""
from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Sequential):
    """MLP [B, in_dim] -> [B, out_dim]: (Linear -> BN -> ReLU) x (num_layers - 1), then Linear.

    Hidden linears have no bias when followed by batch norm; the last layer keeps its bias.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2,
                 batch_norm: bool = True) -> None:
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(width, hidden_dim, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.ReLU(inplace=True))
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim))
        super().__init__(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"ProjectionHead expects [B, {self.in_dim}], got {tuple(x.shape)}")
        return super().forward(x)
