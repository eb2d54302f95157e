"""Optimizer and learning-rate schedule of a training run, from ``TrainSettings``."""
from __future__ import annotations

import math
from typing import Any

import torch

from train.settings import TrainSettings


def build_optimizer(settings: TrainSettings, params: Any) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW at ``settings.lr`` with ``settings.weight_decay``."""
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    if settings.optimizer == "adam":
        return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)


def lr_factor(settings: TrainSettings, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` (linear warmup, then constant / step / multistep / cosine)."""
    schedule = settings.schedule
    if step < schedule.warmup_steps:
        return (step + 1) / schedule.warmup_steps
    if schedule.kind == "step":
        every = max(1, round(schedule.step_epochs * steps_per_epoch))
        return schedule.gamma ** (step // every)
    if schedule.kind == "multistep":
        per_unit = steps_per_epoch if schedule.milestone_unit == "epochs" else 1
        return schedule.gamma ** sum(step >= round(milestone * per_unit) for milestone in schedule.milestones)
    if schedule.kind == "cosine":
        span = max(1, total_steps - schedule.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - schedule.warmup_steps) / span)))
    return 1.0
