"""Pace prediction (Wang et al. 2020): classify the playback pace of a clip, optionally with a contrastive term.

Classification: a linear head (D -> number of paces) and cross-entropy on the pace index. Contrastive variants
add a projection head (D -> D -> projection_dim, L2-normalized) and InfoNCE where positives are clips of the
same video ('context': the dataset gives two clips per video at distinct paces) or clips of equal pace
('pace'); all other clips in the global batch (gathered over DDP processes) are negatives. Total loss
``cls_weight * L_cls + ctr_weight * L_ctr``.

On-device augmentation: horizontal flip consistent over the clip, colour jitter drawn independently per frame
(or once per clip: ``color_jitter.per_frame``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from train import augment
from train.backbones import ProjectionHead
from train.backbones.base import Backbone
from train.clips import pace_frame_indices, pace_span, snap_slow_pace
from train.data import ClipSpec
from train.distributed import gather, gather_with_grad
from train.losses import info_nce, positives_from_labels
from train.methods.base import PretextMethod, StepOutput, to_float_clip
from train.methods.registry import register_method
from train.settings import TrainSettings


@dataclass
class ColorJitterSettings:
    """Colour jitter of the pace task (``p = 0`` switches it off): drawn independently per frame, as the
    authors' code, or once per clip (``per_frame: false``). docs/TRAINING.md measures its cost."""

    brightness: float = 0.8
    contrast: float = 0.8
    saturation: float = 0.8
    hue: float = 0.2
    p: float = 0.8
    per_frame: bool = True


@dataclass
class PaceSettings:
    """Pace prediction (classification of the playback pace) with an optional contrastive term
    (section ``train.pace``)."""

    paces: list[float] = field(default_factory=lambda: [1.0, 2.0, 3.0, 4.0])  # p < 1: slow motion, 0.33 = 1/3
    contrastive: Literal["none", "context", "pace"] = "none"
    cls_weight: float = 1.0  # lambda_cls
    ctr_weight: float = 1.0  # lambda_ctr (used when contrastive != none)
    temperature: float = 0.5
    projection_dim: int = 128
    color_jitter: ColorJitterSettings = field(default_factory=ColorJitterSettings)
    flip_p: float = 0.5

    def __post_init__(self) -> None:
        if not self.paces or any(p <= 0 for p in self.paces):
            raise ValueError(f"paces must be positive numbers, got {self.paces}")
        if len(set(self.paces)) != len(self.paces):
            raise ValueError(f"paces must be distinct, got {self.paces}")
        if self.contrastive == "context" and len(self.paces) < 2:
            raise ValueError("contrastive 'context' needs at least two paces")


@dataclass(frozen=True)
class PaceSampler:
    """``views`` clips of one video at paces drawn from ``paces`` (distinct when there are enough): each starts
    uniformly where it fits (0 when the video is too short; the clip then loops). Target ``pace``: the index
    into ``paces`` of each view."""

    paces: tuple[float, ...]
    clip_len: int
    views: int = 1

    def draw(self, n_items: int, rng: np.random.Generator | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if rng is None:
            raise ValueError("pace clips are random by definition")
        distinct = self.views <= len(self.paces)
        pace_ids = rng.choice(len(self.paces), size=self.views, replace=not distinct)
        starts = [rng.integers(0, max(0, n_items - pace_span(self.clip_len, self.paces[p])) + 1) for p in pace_ids]
        indices = [pace_frame_indices(int(s), self.clip_len, self.paces[p], n_items) for p, s in zip(pace_ids, starts)]
        return np.stack(indices), {"pace": pace_ids.astype(np.int64)}


def contrastive_masks(
    query_video: torch.Tensor,
    query_pace: torch.Tensor,
    key_video: torch.Tensor,
    key_pace: torch.Tensor,
    query_offset: int,
    mode: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks bool [Bq, Bk] of the contrastive loss: ``(positives, itself)``.

    Positives share the video ('context') or the pace ('pace'); ``itself`` marks each query's own key
    (query i is key ``query_offset + i``), which is neither a positive nor in the denominator.
    """
    if mode == "context":
        positives = positives_from_labels(query_video, key_video)
    elif mode == "pace":
        positives = positives_from_labels(query_pace, key_pace)
    else:
        raise ValueError(f"unknown contrastive mode {mode!r} (known: context, pace)")
    itself = torch.zeros_like(positives)
    rows = torch.arange(len(query_video), device=positives.device)
    itself[rows, rows + query_offset] = True
    return positives & ~itself, itself


@register_method("pace")
class PacePrediction(PretextMethod):
    """Backbone + ``classifier`` (D -> n_paces) [+ ``projection`` MLP for the contrastive variants]."""

    Settings = PaceSettings

    @classmethod
    def clip_spec(cls, settings: TrainSettings) -> ClipSpec:
        """Frames only, one random crop per view; two views (distinct paces) for the 'context' contrast."""
        options: PaceSettings = settings.method_settings
        views = 2 if options.contrastive == "context" else 1
        sampler = PaceSampler(tuple(snap_slow_pace(float(p)) for p in options.paces), settings.clip_len, views)
        return ClipSpec(sampler, streams=("frames",), crop_size=settings.crop_size)

    def __init__(self, backbone: Backbone, settings: PaceSettings) -> None:
        super().__init__(backbone, settings)
        dim = backbone.num_features
        self.classifier = nn.Linear(dim, len(settings.paces))
        self.projection = (
            ProjectionHead(dim, dim, settings.projection_dim, batch_norm=False)
            if settings.contrastive != "none"
            else None
        )

    def clips_per_item(self) -> int:
        return 2 if self.settings.contrastive == "context" else 1

    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """``frames`` uint8 [B, V, T, S, S, 3], ``pace`` [B, V], ``video`` [B] -> ``clip`` [B*V, 3, T, S, S],
        ``pace`` [B*V], ``video`` [B*V]."""
        frames = batch["frames"]
        views = frames.shape[1]
        clip = to_float_clip(frames.flatten(0, 1))
        clip = augment.horizontal_flip(clip, p=self.settings.flip_p, per_frame=False, generator=generator)
        jitter = self.settings.color_jitter
        clip = augment.color_jitter(
            clip,
            brightness=jitter.brightness,
            contrast=jitter.contrast,
            saturation=jitter.saturation,
            hue=jitter.hue,
            p=jitter.p,
            per_frame=jitter.per_frame,
            generator=generator,
        )
        return {
            "clip": self.normalize(clip),
            "pace": batch["pace"].flatten(),
            "video": batch["video"].repeat_interleave(views),
        }

    def forward(self, inputs: dict[str, torch.Tensor]) -> StepOutput:
        features = self.backbone(inputs["clip"])
        logits = self.classifier(features).float()
        cls_loss = F.cross_entropy(logits, inputs["pace"])
        accuracy = (logits.argmax(1) == inputs["pace"]).float().mean()
        metrics = {"loss_cls": cls_loss.detach(), "accuracy": accuracy.detach()}
        loss = self.settings.cls_weight * cls_loss
        if self.projection is not None:
            ctr_loss = self.contrastive_loss(features, inputs["video"], inputs["pace"])
            loss = loss + self.settings.ctr_weight * ctr_loss
            metrics["loss_ctr"] = ctr_loss.detach()
        metrics["loss"] = loss.detach()
        return StepOutput(loss, metrics)

    def contrastive_loss(self, features: torch.Tensor, video: torch.Tensor, pace: torch.Tensor) -> torch.Tensor:
        """InfoNCE of this process's clips against the clips of the whole (all-process) batch.

        Clips without any positive in the batch (a pace drawn once, in 'pace' mode) are left out. The
        projections are L2-normalized (in float32) by ``info_nce`` itself.
        """
        query = self.projection(features)
        keys = gather_with_grad(query)
        key_video, key_pace = gather(video), gather(pace)
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        positives, itself = contrastive_masks(
            video, pace, key_video, key_pace, rank * len(query), self.settings.contrastive
        )
        rows = positives.any(dim=1)
        if not bool(rows.any()):
            return query.sum() * 0.0
        return info_nce(query[rows], keys, positives[rows], self.settings.temperature, exclude_mask=itself[rows])
