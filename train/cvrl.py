"""CVRL's projection head and loss (Qian et al., CVPR 2021).

Head: 3 x (linear 2048, batch norm, ReLU) + linear 128 on the pooled backbone features (under DDP the
method converts its batch norms with ``nn.SyncBatchNorm.convert_sync_batchnorm``). Loss: NT-Xent with
temperature 0.1 over cosine similarities, both directions summed (each the mean over the clips, as in the
SimCLR/CVRL code), with the embeddings of every DDP process as negatives (2 x global batch - 2 per clip).
"""
from __future__ import annotations

import torch

from train.backbones.projection import ProjectionHead
from train.distributed import gather_with_grad
from train.losses import nt_xent

CVRL_TEMPERATURE = 0.1
CVRL_HIDDEN_DIM = 2048
CVRL_EMBEDDING_DIM = 128
CVRL_HIDDEN_LAYERS = 3


def cvrl_projection_head(in_dim: int = 2048, hidden_dim: int = CVRL_HIDDEN_DIM,
                         out_dim: int = CVRL_EMBEDDING_DIM) -> ProjectionHead:
    """[B, in_dim] -> [B, out_dim]: 3 x (Linear(hidden_dim), BN, ReLU) + Linear(out_dim)."""
    return ProjectionHead(in_dim, hidden_dim, out_dim, num_layers=CVRL_HIDDEN_LAYERS + 1)


def symmetric_nt_xent(view1: torch.Tensor, view2: torch.Tensor, temperature: float = CVRL_TEMPERATURE) -> torch.Tensor:
    """loss(1 -> 2) + loss(2 -> 1) over the global batch: view1, view2 [b, D] (this process's clips) ->
    float32 scalar, the same on every process (= 2 x ``nt_xent`` of the gathered views).

    Gradients flow back through the gather to each process's own rows (scaled by the world size, which
    DDP's gradient averaging undoes).
    """
    return 2 * nt_xent(gather_with_grad(view1), gather_with_grad(view2), temperature)
