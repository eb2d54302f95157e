"""Base class of every pretext method: a backbone plus task heads, one loss per training step.

solo-learn style: the base owns the backbone, the uint8 -> float conversion and the normalization; each task
subclass adds only its heads, its on-device augmentation (``prepare``) and its loss (``forward``). ``forward``
takes the prepared batch and returns a :class:`StepOutput`, so DistributedDataParallel can wrap the whole method.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from train import augment
from train.backbones.base import Backbone


@dataclass
class StepOutput:
    """Loss of one step (scalar tensor, with graph) and detached scalar metrics to log."""

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor]


def to_float_clip(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames [B, T, H, W, 3] -> float clip [B, 3, T, H, W] in [0, 1] (on the frames' device)."""
    if frames.dtype != torch.uint8 or frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames [B, T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    return frames.permute(0, 4, 1, 2, 3).float().div_(255.0)


class PretextMethod(nn.Module):
    """A backbone trained by one pretext task. Subclasses implement ``prepare`` and ``forward``."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone

    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Turn a collated batch already on the device into model inputs (augmented, normalized, float)."""
        raise NotImplementedError

    def forward(self, inputs: dict[str, torch.Tensor]) -> StepOutput:
        """Loss and metrics of prepared ``inputs``."""
        raise NotImplementedError

    @staticmethod
    def normalize(clip: torch.Tensor) -> torch.Tensor:
        """Float clip [B, 3, T, H, W] in [0, 1] -> normalized input of the backbone."""
        return augment.normalize(clip)

    def clips_per_item(self) -> int:
        """How many clips one dataset item holds (for clips/s)."""
        return 1
