"""Memory bank of instance discrimination (Wu et al. 2018; Zhuang et al. 2019): one unit vector per training
video, the running average of the embeddings it produced.

Every DDP process holds the same bank: the initial vectors come from a fixed seed and every update uses the
features and indices of the whole global batch (``train.distributed.gather``). The bank is a buffer, so it is
part of ``state_dict`` and of the checkpoint (resume stays exact).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from train.distributed import gather


def initial_bank(size: int, dim: int, seed: int) -> torch.Tensor:
    """Uniform in [-s, s] with s = 1 / sqrt(dim / 3) (unit expected squared norm), then L2-normalised:
    float32 [size, dim]. The same on every process for the same seed."""
    if size < 1 or dim < 1:
        raise ValueError(f"memory bank needs size >= 1 and dim >= 1, got {size} and {dim}")
    bound = 1.0 / math.sqrt(dim / 3)
    generator = torch.Generator().manual_seed(seed)
    vectors = (torch.rand(size, dim, generator=generator) * 2 - 1) * bound
    return F.normalize(vectors, dim=1)


def mix_and_normalize(old: torch.Tensor, new: torch.Tensor, momentum: float) -> torch.Tensor:
    """normalise(momentum * old + (1 - momentum) * new), rows [K, D] -> float32 [K, D]."""
    return F.normalize(momentum * old.float() + (1 - momentum) * new.float(), dim=1)


def last_occurrences(indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct values of ``indices`` int [K] and the position of each one's last occurrence: int64 [U] x 2
    (makes a scatter with repeated indices deterministic)."""
    rows, inverse = torch.unique(indices, return_inverse=True)
    positions = torch.arange(indices.shape[0], device=indices.device)
    last = torch.zeros_like(rows).scatter_reduce(0, inverse, positions, reduce="amax", include_self=False)
    return rows, last


class MemoryBank(nn.Module):
    """``vectors`` float32 [size, dim], unit rows; ``update`` after each step, ``similarities`` for the losses.

    ``momentum`` 0.5 is the papers' m_i <- normalise(0.5 m_i + 0.5 f_i).
    """

    vectors: torch.Tensor

    def __init__(self, size: int, dim: int = 128, momentum: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.register_buffer("vectors", initial_bank(size, dim, seed))

    @property
    def size(self) -> int:
        return self.vectors.shape[0]

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def similarities(self, features: torch.Tensor) -> torch.Tensor:
        """Dot products with every entry: features [B, dim] -> float32 [B, size] (no gradient to the bank)."""
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"expected features [B, {self.dim}], got {tuple(features.shape)}")
        return features.float() @ self.vectors.T

    @torch.no_grad()
    def update(self, indices: torch.Tensor, features: torch.Tensor) -> None:
        """m_i <- normalise(momentum m_i + (1 - momentum) f_i) for this step's videos on every process.

        ``indices`` int [b] (dataset positions of the local batch), ``features`` [b, dim] (the embeddings of
        the step, detached here). Under DDP both are gathered first, so every process writes the same rows.
        A video that appears more than once in the global batch (e.g. a DistributedSampler's padding) gets
        the update of its last occurrence in rank order, the same on every process and device.
        """
        if indices.ndim != 1 or features.shape != (indices.shape[0], self.dim):
            raise ValueError(f"expected indices [b] and features [b, {self.dim}], got {tuple(indices.shape)} "
                             f"and {tuple(features.shape)}")
        indices = gather(indices.to(self.vectors.device, torch.long))
        features = gather(features.detach().to(self.vectors.device, torch.float32).contiguous())
        if bool(((indices < 0) | (indices >= self.size)).any()):
            raise IndexError(f"memory bank of {self.size} entries got indices outside [0, {self.size})")
        rows, last = last_occurrences(indices)
        self.vectors[rows] = mix_and_normalize(self.vectors[rows], features[last], self.momentum)
