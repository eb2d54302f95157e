"""Dense Predictive Coding (Han, Xie & Zisserman, ICCV-W 2019): predict the feature maps of future blocks.

A training item is N blocks of L frames (L = the pipeline's ``clip_len``), frames ``frame_stride`` apart, with
one crop and one flip for the whole clip. On the device each frame is turned grey with probability 0.5 and
colour-jittered independently (brightness, contrast, saturation 0.5, hue 0.25), then ImageNet-normalised. The
backbone (``r2d3d_18``/``r2d3d_34``) normalises with batch statistics during pretraining (the authors'
``track_running_stats=False``); ``backbone.pt`` holds the plain network, whose state dict is the same. The
ConvGRU and predictor of ``train.predictive.dpc`` predict the last ``pred_steps`` blocks; the dense loss scores
every predicted vector against every target vector of the batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from train import augment
from train.backbones.base import Backbone
from train.backbones.r2d3d import BatchStatisticsNorm3d
from train.data import ClipSpec, UniformSampler
from train.distributed import gather_with_grad
from train.methods.base import PretextMethod, StepOutput, to_float_clip
from train.methods.registry import register_method
from train.predictive.dpc import (
    ConvGRU,
    block_maps,
    dense_predictive_loss,
    dense_vectors,
    init_orthogonal,
    predict_sequentially,
    target_kind_counts,
)
from train.settings import TrainSettings


@dataclass
class DPCSettings:
    """DPC (section ``train.dpc``); the frames per block are the pipeline's ``clip_len``."""

    blocks: int = 8  # N
    pred_steps: int = 3  # P: the last P blocks are predicted (the curriculum's second phase: 4)
    frame_stride: int = 3  # frames between the frames of a block (30 fps source)
    dropout: float = 0.1  # on the ConvGRU state
    batch_statistics: bool = True  # BN of the backbone normalises with batch statistics (pretraining)
    grey_p: float = 0.5  # per frame
    brightness: float = 0.5  # colour jitter, drawn per frame
    contrast: float = 0.5
    saturation: float = 0.5
    hue: float = 0.25
    jitter_p: float = 1.0
    flip: bool = True  # one flip per clip
    negatives: Literal["local", "global"] = "local"  # keys of this process only (the authors, per GPU) or all

    def __post_init__(self) -> None:
        if self.pred_steps < 1 or self.blocks <= self.pred_steps:
            raise ValueError(f"need blocks > pred_steps >= 1, got blocks {self.blocks}, pred_steps {self.pred_steps}")
        if self.frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1, got {self.frame_stride}")
        for name in ("dropout", "grey_p", "jitter_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")


def use_batch_statistics(module: nn.Module) -> int:
    """Make every ``BatchNorm3d`` of ``module`` a ``BatchStatisticsNorm3d`` in place (same parameters and
    buffers, so the state dict is unchanged); returns how many were switched."""
    switched = 0
    for child in module.modules():
        if type(child) is nn.BatchNorm3d:
            child.__class__ = BatchStatisticsNorm3d
            switched += 1
    return switched


@lru_cache(maxsize=8)
def kind_counts(batch: int, steps: int, positions: int) -> tuple[tuple[str, int], ...]:
    """``target_kind_counts`` of a batch geometry, computed once per geometry."""
    return tuple(target_kind_counts(batch, steps, positions).items())


@register_method("dpc")
class DPCMethod(PretextMethod):
    """Backbone + ``aggregator`` (ConvGRU, 1x1, hidden D) + ``predictor`` (conv1x1 -> ReLU -> conv1x1)."""

    Settings = DPCSettings

    @classmethod
    def segment_contract(cls, settings: TrainSettings) -> dict[str, object]:
        """N blocks of L frames ``frame_stride`` apart, back to back (recorded in ``backbone.pt``)."""
        options: DPCSettings = settings.method_settings
        return {"layout": "blocks", "count": options.blocks, "frames": settings.clip_len,
                "frame_stride": options.frame_stride, "segment_stride": settings.clip_len * options.frame_stride,
                "modality": "rgb"}

    @classmethod
    def clip_spec(cls, settings: TrainSettings) -> ClipSpec:
        """RGB frames, one view of N·L frames ``frame_stride`` apart, one random crop and flip per clip."""
        options: DPCSettings = settings.method_settings
        sampler = UniformSampler(options.blocks * settings.clip_len, stride=options.frame_stride, views=1)
        return ClipSpec(sampler, streams=("frames",), crop_size=settings.crop_size, flip=options.flip)

    def __init__(self, backbone: Backbone, settings: DPCSettings) -> None:
        super().__init__(backbone, settings)
        if settings.batch_statistics:
            use_batch_statistics(backbone)
        width = backbone.num_features
        self.aggregator = ConvGRU(width, width, kernel_size=1, dropout=settings.dropout)
        self.predictor = nn.Sequential(nn.Conv2d(width, width, 1), nn.ReLU(inplace=True), nn.Conv2d(width, width, 1))
        init_orthogonal(self.predictor)

    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """``frames`` uint8 [B, 1, N·L, S, S, 3] -> ``blocks`` [B, N, 3, L, S, S] (grey and jitter per frame)."""
        options = self.settings
        clip = to_float_clip(batch["frames"][:, 0])  # [B, 3, N*L, S, S]
        clip = augment.random_grayscale(clip, p=options.grey_p, per_frame=True, generator=generator)
        clip = augment.color_jitter(clip, brightness=options.brightness, contrast=options.contrast,
                                    saturation=options.saturation, hue=options.hue, p=options.jitter_p,
                                    per_frame=True, generator=generator)
        clip = self.normalize(clip)
        blocks = clip.unflatten(2, (options.blocks, -1))  # [B, 3, N, L, S, S]
        return {"blocks": blocks.transpose(1, 2).contiguous()}

    def forward(self, inputs: dict[str, torch.Tensor]) -> StepOutput:
        blocks = inputs["blocks"]
        steps = self.settings.pred_steps
        features = block_maps(self.backbone, blocks).mean(dim=3)  # [B, N, D, h, w]
        context = blocks.shape[1] - steps
        predictions = predict_sequentially(self.aggregator, self.predictor, F.relu(features[:, :context]), steps)
        targets = features[:, context:]
        keys, first = None, 0
        if self.settings.negatives == "global":
            keys = gather_with_grad(dense_vectors(targets))
            first = (dist.get_rank() if dist.is_available() and dist.is_initialized() else 0) * len(targets)
        loss, accuracy = dense_predictive_loss(predictions, targets, keys=keys, first_video=first)
        batch = len(targets) if keys is None else keys.shape[0] // (steps * targets.shape[3] * targets.shape[4])
        counts = kind_counts(batch, steps, targets.shape[3] * targets.shape[4])
        metrics = {"loss": loss.detach(), "accuracy": accuracy}
        metrics.update({f"targets_{kind}": torch.tensor(float(n), device=loss.device) for kind, n in counts})
        return StepOutput(loss, metrics)
