"""Settings of the label stage (one section of a pipeline in pipelines.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class PacingSettings:
    """Curriculum pacing function (Hacohen & Weinshall 2019) used by the trainer's sampler.

    ``single_step``: the easiest ``start_fraction`` for ``step_length`` steps, then all clips.
    ``fixed_exp``: the fraction is multiplied by ``increase`` every ``step_length`` steps (capped at 1).
    ``varied_exp``: as ``fixed_exp`` but stage k lasts ``step_length * step_decay**k`` steps.
    """

    kind: Literal["single_step", "fixed_exp", "varied_exp"] = "single_step"
    start_fraction: float = 0.5  # easiest fraction of clips used first (the thesis: first half)
    step_length: int = 1000  # steps before the (first) increase
    increase: float = 2.0  # exponential factor for the exponential pacings
    step_decay: float = 0.9  # varied_exp: each stage lasts this factor times the previous one

    def __post_init__(self) -> None:
        if not 0.0 < self.start_fraction <= 1.0:
            raise ValueError(f"start_fraction must be in (0, 1], got {self.start_fraction}")
        if self.step_length < 1:
            raise ValueError(f"step_length must be >= 1, got {self.step_length}")
        if self.increase <= 1.0:
            raise ValueError(f"increase must be > 1, got {self.increase}")
        if self.step_decay <= 0.0:
            raise ValueError(f"step_decay must be > 0, got {self.step_decay}")


@dataclass
class LabelSettings:
    """Which labels to compute and for which clips and crops."""

    tasks: list[Literal["stats", "curriculum"]] = field(default_factory=lambda: ["stats", "curriculum"])
    clip_len: int = 16  # frames per clip (and clip_len - 1 flows)
    stride: int = 16  # distance between clip starts (16: non-overlapping)
    crop_size: int = 112  # side of the square crop the labels describe (a multiple of 8)
    # crop variants as [y, x, flip]: offsets of the crop within the stored frame, flip = mirrored
    crop_variants: list[tuple[int, int, bool]] = field(
        default_factory=lambda: [(8, 29, False), (8, 29, True), (0, 0, False), (16, 59, False)]
    )
    pacing: PacingSettings = field(default_factory=PacingSettings)
    video_timeout_s: float = 600.0  # labelling one video taking longer is recorded as a failure

    def __post_init__(self) -> None:
        if self.clip_len < 2:
            raise ValueError(f"clip_len must be >= 2 (clips need flow), got {self.clip_len}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if self.crop_size < 8 or self.crop_size % 8:
            raise ValueError(f"crop_size must be a positive multiple of 8, got {self.crop_size}")
        if not self.crop_variants:
            raise ValueError("crop_variants must list at least one [y, x, flip]")
        if len(set(map(tuple, self.crop_variants))) != len(self.crop_variants):
            raise ValueError(f"crop_variants has duplicates: {self.crop_variants}")
        if any(y < 0 or x < 0 for y, x, _ in self.crop_variants):
            raise ValueError(f"crop offsets must be >= 0, got {self.crop_variants}")
