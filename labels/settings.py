"""Settings of the label stage (one section of a pipeline in pipelines.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class PacingSettings:
    """Curriculum pacing function (Hacohen & Weinshall 2019) used by the trainer's sampler."""

    kind: Literal["single_step", "fixed_exp", "varied_exp"] = "single_step"
    start_fraction: float = 0.5  # easiest fraction of clips used first
    step_length: int = 1000  # steps before the (next) increase
    increase: float = 2.0  # exponential factor for the exponential pacings
    step_decay: float = 0.9  # varied_exp: each step lasts this factor times the previous one


@dataclass
class LabelSettings:
    """Which labels to compute and for which clips and crops."""

    tasks: list[Literal["stats", "curriculum"]] = field(default_factory=lambda: ["stats", "curriculum"])
    clip_len: int = 16
    stride: int = 16  # distance between clip starts (16: non-overlapping)
    crop_size: int = 112
    # crop variants as [y, x, flip]: offsets of the crop within the stored frame, flip = mirrored
    crop_variants: list[tuple[int, int, bool]] = field(
        default_factory=lambda: [(8, 29, False), (8, 29, True), (0, 0, False), (16, 59, False)]
    )
    pacing: PacingSettings = field(default_factory=PacingSettings)
