"""Statistics regression (Wang et al. 2019): predict a clip's 14 motion and 13 appearance statistics.

Two linear heads on the pooled backbone features; loss ``motion_weight * MSE(motion) + appearance_weight *
MSE(appearance)``. The clips arrive already cut with the crop variant their labels were computed for, so no
spatial or colour augmentation is applied (it would change the targets).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labels.stats import N_APPEARANCE, N_MOTION
from labels.store import load_clip_labels
from train.backbones.base import Backbone
from train.curriculum import pacing
from train.data import StatsClipDataset, TrainingData
from train.methods.base import PretextMethod, StepOutput, to_float_clip
from train.methods.registry import register_method
from train.settings import PacingSettings, TrainSettings


@dataclass
class StatsSettings:
    """Motion/appearance statistics regression (section ``train.stats``)."""

    motion_weight: float = 1.0  # lambda_m
    appearance_weight: float = 0.1  # lambda_a
    label_scale: float = 1.0  # labels are divided by this before regression (1: the integers as stored)
    curriculum: bool = True  # easiest clips first (needs the 'curriculum' labels), paced by ``pacing``
    pacing: PacingSettings = field(default_factory=PacingSettings)


@register_method("stats")
class StatsRegression(PretextMethod):
    """Backbone + ``motion_head`` (D -> 14) + ``appearance_head`` (D -> 13), trained on the stored labels."""

    Settings = StatsSettings

    @classmethod
    def training_data(cls, data_dir: str | Path, settings: TrainSettings) -> TrainingData:
        """The labelled clips (``StatsClipDataset``), easiest first under the curriculum."""
        options: StatsSettings = settings.method_settings
        labels = load_clip_labels(data_dir, settings.labels_dir)
        if (int(labels.clip_len), int(labels.crop_size)) != (settings.clip_len, settings.crop_size):
            raise ValueError(
                f"{data_dir}: labels were computed for {labels.clip_len}-frame clips cropped to {labels.crop_size}, "
                f"but the pipeline's clip_len={settings.clip_len} and crop_size={settings.crop_size}"
            )
        dataset = StatsClipDataset(data_dir, labels, options.label_scale)
        if not options.curriculum:
            return TrainingData(dataset)
        scores = dataset.scores()
        if np.isnan(scores).any():
            raise ValueError(f"{data_dir}: curriculum scores are missing (compute labels with task 'curriculum' "
                             "or set train.stats.curriculum=false)")
        return TrainingData(dataset, np.argsort(-scores, kind="stable"), partial(pacing, options.pacing))

    def __init__(self, backbone: Backbone, settings: StatsSettings) -> None:
        super().__init__(backbone, settings)
        self.motion_head = nn.Linear(backbone.num_features, N_MOTION)
        self.appearance_head = nn.Linear(backbone.num_features, N_APPEARANCE)

    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """``frames`` uint8 [B, T, S, S, 3], ``motion`` [B, 14], ``appearance`` [B, 13] -> normalized ``clip``."""
        return {
            "clip": self.normalize(to_float_clip(batch["frames"])),
            "motion": batch["motion"].float(),
            "appearance": batch["appearance"].float(),
        }

    def forward(self, inputs: dict[str, torch.Tensor]) -> StepOutput:
        features = self.backbone(inputs["clip"])
        motion_loss = F.mse_loss(self.motion_head(features).float(), inputs["motion"])
        appearance_loss = F.mse_loss(self.appearance_head(features).float(), inputs["appearance"])
        loss = self.settings.motion_weight * motion_loss + self.settings.appearance_weight * appearance_loss
        return StepOutput(
            loss, {"loss": loss.detach(), "loss_motion": motion_loss.detach(), "loss_appearance": appearance_loss.detach()}
        )
