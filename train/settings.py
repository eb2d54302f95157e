"""Settings of the training stage (one section of a pipeline in pipelines.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class TrainSettings:
    """Pretext task, backbone and optimisation."""

    task: Literal["stats", "pace"] = "stats"
    backbone: str = "c3d"
    clip_len: int = 16
    crop_size: int = 112
    epochs: int = 18
    batch_size: int = 30
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 5e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    task_args: dict[str, Any] = field(default_factory=dict)
