"""CVRL (Qian et al., CVPR 2021): contrastive learning of two clips of one video.

Each item holds two 16-frame clips with temporal stride 2 whose starts are ``gap`` frames apart, the gap drawn
from a linearly decreasing density (``train.cvrl_sampling``; indices wrap for a short video). Each clip is
augmented on the device with its own temporally consistent parameters (``train.cvrl_augment``: random
resized crop to the pipeline's ``crop_size``, flip, colour jitter, grey, blur p 1.0 / 0.1, solarisation on the
second only), embedded by the backbone and a 3 x (linear 2048, BN, ReLU) + linear 128 head, and the symmetric
NT-Xent (tau 0.1) contrasts them against every other clip of the global batch (gathered over processes).
Weight decay applies to weights only (norm layers and biases excluded); under DDP on CUDA the loop converts
the batch norms to SyncBatchNorm (``train.sync_batchnorm``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from train.backbones.base import Backbone
from train.cvrl import CVRL_EMBEDDING_DIM, CVRL_HIDDEN_DIM, CVRL_TEMPERATURE, cvrl_projection_head, symmetric_nt_xent
from train.cvrl_augment import CVRLAugment, CVRLAugmentSettings, augment_pair
from train.cvrl_sampling import CLIP_STRIDE, clip_pair_indices
from train.data import ClipSpec
from train.methods.base import PretextMethod, StepOutput, no_decay_groups, to_float_clip
from train.methods.registry import register_method
from train.settings import TrainSettings


@dataclass
class CVRLSettings:
    """CVRL (section ``train.cvrl``)."""

    temperature: float = CVRL_TEMPERATURE
    hidden_dim: int = CVRL_HIDDEN_DIM
    embedding_dim: int = CVRL_EMBEDDING_DIM
    stride: int = CLIP_STRIDE  # frames between a clip's frames (clip length: the pipeline's clip_len)
    max_offset: int | None = None  # M of the gap density (None: the room the video leaves)
    augment: CVRLAugment = field(default_factory=CVRLAugment)

    def __post_init__(self) -> None:
        if self.temperature <= 0 or self.hidden_dim < 1 or self.embedding_dim < 1 or self.stride < 1:
            raise ValueError(f"need temperature > 0 and hidden_dim, embedding_dim, stride >= 1, got "
                             f"{self.temperature}, {self.hidden_dim}, {self.embedding_dim}, {self.stride}")
        if self.max_offset is not None and self.max_offset < 0:
            raise ValueError(f"max_offset must be >= 0 (or null), got {self.max_offset}")


@dataclass(frozen=True)
class GapPairSampler:
    """Two clips of ``clip_len`` frames ``stride`` apart from one video, their starts separated by a gap from
    the decreasing linear density on [0, max_offset] (``train.cvrl_sampling.clip_pair_indices``), the order
    swapped at random; indices wrap for a short video."""

    clip_len: int
    stride: int = CLIP_STRIDE
    max_offset: int | None = None
    views: int = 2

    def draw(self, n_items: int, rng: np.random.Generator | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if rng is None:
            raise ValueError("CVRL clip pairs are random by definition")
        pair = clip_pair_indices(np.array([n_items]), rng, self.clip_len, self.stride, self.max_offset)
        return pair[0], {}


@register_method("cvrl")
class CVRL(PretextMethod):
    """Backbone + ``head`` (3 x (linear, BN, ReLU) + linear), symmetric NT-Xent of the two clips."""

    Settings = CVRLSettings

    @classmethod
    def clip_spec(cls, settings: TrainSettings) -> ClipSpec:
        """Two clips per item (``GapPairSampler``), full frames (the random resized crop runs on the device)."""
        options: CVRLSettings = settings.method_settings
        return ClipSpec(GapPairSampler(settings.clip_len, options.stride, options.max_offset), crop_size=None)

    def __init__(self, backbone: Backbone, settings: CVRLSettings) -> None:
        super().__init__(backbone, settings)
        self.head = cvrl_projection_head(backbone.num_features, settings.hidden_dim, settings.embedding_dim)
        self.augment = CVRLAugmentSettings(**dataclasses.asdict(settings.augment))

    def attach(self, settings: TrainSettings, dataset: Any) -> None:
        """Crop to the pipeline's ``crop_size``."""
        self.augment = dataclasses.replace(self.augment, crop_size=settings.crop_size)

    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """``frames`` uint8 [B, 2, T, H, W, 3] -> the augmented clips ``first``, ``second`` [B, 3, T, S, S]."""
        frames = batch["frames"]
        first, second = augment_pair(to_float_clip(frames[:, 0]), to_float_clip(frames[:, 1]), self.augment, generator)
        return {"first": first, "second": second}

    def forward(self, inputs: dict[str, torch.Tensor]) -> StepOutput:
        batch = inputs["first"].shape[0]
        features = self.backbone(torch.cat([inputs["first"], inputs["second"]]))
        z = F.normalize(self.head(features).float(), dim=1)
        z1, z2 = z[:batch], z[batch:]
        loss = symmetric_nt_xent(z1, z2, self.settings.temperature)
        with torch.no_grad():
            similarity = z1 @ z2.T
            accuracy = (similarity.argmax(dim=1) == torch.arange(batch, device=z.device)).float().mean()
        return StepOutput(loss, {"loss": loss.detach(), "pair_acc": accuracy,
                                 "positive_cos": similarity.diagonal().mean()})

    def parameter_groups(self, settings: TrainSettings) -> list[dict[str, Any]]:
        """Weight decay on weights only (CVRL: 1e-6), not on norm layers and biases."""
        return no_decay_groups(self, settings.weight_decay)

    def clips_per_item(self) -> int:
        return 2
