"""Pretext methods: one base class (``base.PretextMethod``); each task adds its heads and loss."""
from __future__ import annotations

from train.backbones.base import Backbone
from train.methods.base import PretextMethod, StepOutput
from train.methods.pace import PacePrediction
from train.methods.stats import StatsRegression
from train.settings import TrainSettings


def build_method(settings: TrainSettings, backbone: Backbone) -> PretextMethod:
    """The pretext method ``settings.task`` around ``backbone``."""
    if settings.task == "stats":
        return StatsRegression(backbone, settings.stats)
    if settings.task == "pace":
        return PacePrediction(backbone, settings.pace)
    raise ValueError(f"unknown task {settings.task!r} (known: stats, pace)")


__all__ = ["PretextMethod", "StepOutput", "StatsRegression", "PacePrediction", "build_method"]
