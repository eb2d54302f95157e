"""Settings of the training stage (one section of a pipeline in pipelines.yaml).

Defaults follow the papers: statistics regression (Wang et al. 2019: C3D, SGD momentum 0.9, lr 5e-4 divided by
10 every 6 epochs, 18 epochs, batch 30, 16x112x112 clips) and pace prediction (Wang et al. 2020: paces
{1, 2, 3, 4}, lr 1e-3, batch 30, per-frame colour jitter).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class StatsTaskSettings:
    """Motion/appearance statistics regression (two linear heads on pooled features)."""

    motion_weight: float = 1.0  # lambda_m
    appearance_weight: float = 0.1  # lambda_a
    label_scale: float = 1.0  # labels are divided by this before regression (1: the integers as stored)
    curriculum: bool = True  # sample clips through labels.curriculum.pacing (needs stored scores)


@dataclass
class ColorJitterSettings:
    """Colour jitter of the pace task, drawn independently per frame."""

    brightness: float = 0.8
    contrast: float = 0.8
    saturation: float = 0.8
    hue: float = 0.2
    p: float = 0.8


@dataclass
class PaceTaskSettings:
    """Pace prediction (classification of the playback pace) with optional contrastive term."""

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


@dataclass
class ScheduleSettings:
    """Learning-rate schedule; 'step' divides the lr by 1/gamma every step_epochs epochs."""

    kind: Literal["constant", "step", "cosine"] = "step"
    step_epochs: float = 6.0
    gamma: float = 0.1
    warmup_steps: int = 0


@dataclass
class TrainSettings:
    """Pretext task, backbone, data loading and optimisation."""

    task: Literal["stats", "pace"] = "stats"
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
    stats: StatsTaskSettings = field(default_factory=StatsTaskSettings)
    pace: PaceTaskSettings = field(default_factory=PaceTaskSettings)

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
