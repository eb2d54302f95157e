"""Settings of the evaluation stage (one section of a pipeline in pipelines.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class EvalSettings:
    """Which protocols run, and how features are taken."""

    tasks: list[Literal["linear", "finetune", "fewshot", "retrieval"]] = field(
        default_factory=lambda: ["linear", "fewshot", "retrieval"]
    )
    clips_per_video: int = 10
    stage: Literal["pool3", "pool4", "pool5"] = "pool5"
