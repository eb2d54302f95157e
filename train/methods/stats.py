"""Statistics regression (Wang et al. 2019): predict a clip's 14 motion and 13 appearance statistics.

Two linear heads on the pooled backbone features; loss ``motion_weight * MSE(motion) + appearance_weight *
MSE(appearance)``. The clips arrive already cut with the crop variant their labels were computed for, so no
spatial or colour augmentation is applied (it would change the targets).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from train.backbones.base import Backbone
from train.methods.base import PretextMethod, StepOutput, to_float_clip
from train.settings import StatsTaskSettings

N_MOTION = 14
N_APPEARANCE = 13


class StatsRegression(PretextMethod):
    """Backbone + ``motion_head`` (D -> 14) + ``appearance_head`` (D -> 13)."""

    def __init__(self, backbone: Backbone, settings: StatsTaskSettings) -> None:
        super().__init__(backbone)
        self.settings = settings
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
