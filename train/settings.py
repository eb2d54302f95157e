"""Settings of the training stage (the ``train:`` section of a pipeline in pipelines.yaml) that every pretext
method shares; each method's own settings are its sub-section ``train.<method>`` (a dataclass in the method's
module, see ``train.methods``).

Defaults follow the statistics paper (Wang et al. 2019: C3D, SGD momentum 0.9, lr 5e-4 divided by 10 every 6
epochs, 18 epochs, batch 30, 16x112x112 clips).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class ScheduleSettings:
    """Learning-rate schedule; 'step' multiplies the lr by gamma every step_epochs epochs, 'multistep' at each of
    ``milestones``, counted in epochs (e.g. Video LA: [160, 190]) or in optimizer steps (``milestone_unit:
    steps``, e.g. CPC's 20k, 40k, 60k iterations)."""

    kind: Literal["constant", "step", "multistep", "cosine"] = "step"
    step_epochs: float = 6.0
    gamma: float = 0.1
    warmup_steps: int = 0
    milestones: list[float] = field(default_factory=list)  # kind 'multistep'
    milestone_unit: Literal["epochs", "steps"] = "epochs"

    def __post_init__(self) -> None:
        if self.kind == "multistep" and (not self.milestones or sorted(self.milestones) != list(self.milestones)
                                         or self.milestones[0] <= 0):
            raise ValueError(f"schedule 'multistep' needs increasing positive milestones, got {self.milestones}")


@dataclass
class PacingSettings:
    """Curriculum pacing function (Hacohen & Weinshall 2019): how many of the easiest clips the sampler may
    draw from at each step.

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
class TrainSettings:
    """Pretext task, backbone, data loading and optimisation."""

    method: str = "stats"  # a registered pretext method (train.methods.METHODS)
    backbone: str = "c3d"
    backbone_args: dict[str, Any] = field(default_factory=dict)  # keyword arguments of build_backbone
    clip_len: int = 16
    crop_size: int = 112
    epochs: int = 18
    max_steps: int | None = None  # stop after at most this many optimizer steps (None: epochs decide)
    batch_size: int = 30  # global batch (split over DDP processes)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 5e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    grad_clip: float | None = None  # max gradient norm (None: no clipping)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    num_workers: int = 2  # DataLoader worker processes per training process
    seed: int = 0
    amp: bool = True  # mixed precision (only on CUDA)
    compile: bool = False  # torch.compile the model
    sync_batchnorm: bool = True  # SyncBatchNorm under DDP on CUDA
    checkpoint_every: int = 500  # steps between checkpoints (one is always written at the end)
    keep_checkpoints: int = 2
    log_every: int = 10  # steps between metric records
    method_settings: Any = None  # the method's own settings (its Settings dataclass), from section train.<method>
    init_from: str | None = None  # a run folder or checkpoint whose method state (weights, bank, ...) starts this run
    labels_dir: str | None = None  # stored labels made with make-labels --labels-dir (default: DATA/labels)

    def __post_init__(self) -> None:
        for name in ("clip_len", "crop_size", "epochs", "batch_size", "checkpoint_every", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
