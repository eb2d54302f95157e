"""Base class of every pretext method: a backbone plus the method's heads, one loss per training step.

solo-learn style: the base owns the backbone and the hooks; each method (one module under ``train/methods/``,
registered by name with ``register_method``) declares in one place:

- ``Settings``: the dataclass of its own section ``train.<name>`` of a pipeline (validated like every setting);
- ``clip_spec(settings)``: what its batches hold (streams, views, clip geometry, targets), or
  ``training_data(data_dir, settings)`` when it trains on stored labels;
- its heads (in ``__init__``), ``prepare`` (on-device augmentation and normalisation) and ``forward`` (the loss);
- optional hooks: ``attach`` (sees the run's settings and training dataset once, e.g. to size a memory bank),
  ``parameter_groups`` (own lr / weight decay per group), ``after_step`` (e.g. memory-bank writes),
  ``on_epoch_end`` (e.g. re-clustering); state a checkpoint must carry besides parameters and buffers goes
  through ``torch.nn.Module.get_extra_state`` / ``set_extra_state`` (part of ``state_dict``), so resume stays
  exact.

``forward`` takes the prepared batch and returns a :class:`StepOutput`, so DistributedDataParallel can wrap the
whole method.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from preprocess.streams import normalize
from train.backbones.base import Backbone
from train.data import ClipSpec, TrainingData, VideoClipDataset
from train.settings import TrainSettings


@dataclass
class StepOutput:
    """Loss of one step (scalar tensor, with graph) and detached scalar metrics to log."""

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor]


@dataclass
class NoSettings:
    """A method without settings of its own."""


def to_float_clip(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames [B, T, H, W, 3] -> float clip [B, 3, T, H, W] in [0, 1] (on the frames' device)."""
    if frames.dtype != torch.uint8 or frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames [B, T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    return frames.permute(0, 4, 1, 2, 3).float().div_(255.0)


class PretextMethod(nn.Module):
    """A backbone trained by one pretext task. Subclasses set ``Settings`` and implement ``prepare``,
    ``forward`` and ``clip_spec`` (or ``training_data``)."""

    name: ClassVar[str] = ""  # set by register_method
    Settings: ClassVar[type] = NoSettings

    def __init__(self, backbone: Backbone, settings: Any) -> None:
        super().__init__()
        self.backbone = backbone
        self.settings = settings

    @classmethod
    def input_channels(cls, settings: TrainSettings) -> int:
        """Channels of the backbone's input (3: RGB frames)."""
        return 3

    @classmethod
    def input_stream(cls, settings: TrainSettings) -> str:
        """The stored stream the backbone reads (recorded in ``backbone.pt`` for evaluation)."""
        return "frames"

    @classmethod
    def segment_contract(cls, settings: TrainSettings) -> dict[str, Any] | None:
        """For a backbone trained on a video's segments (CPC, DPC), what evaluation needs to cut them, recorded
        in ``backbone.pt``: ``layout`` ('stacked': the frames of a segment stacked into channels of a 2D
        encoder; 'blocks': each segment a clip), ``count`` segments of ``frames`` frames ``frame_stride``
        apart, starts ``segment_stride`` frames apart, ``modality``. None (the default): plain clips."""
        return None

    @classmethod
    def clip_spec(cls, settings: TrainSettings) -> ClipSpec:
        """What one dataset item holds (see :class:`train.data.ClipSpec`)."""
        raise NotImplementedError(f"method {cls.name!r} declares neither clip_spec nor training_data")

    @classmethod
    def training_data(cls, data_dir: str | Path, settings: TrainSettings) -> TrainingData:
        """The training dataset over ``data_dir``: by default a ``VideoClipDataset`` of ``clip_spec``."""
        return TrainingData(VideoClipDataset(data_dir, cls.clip_spec(settings), seed=settings.seed))

    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Turn a collated batch already on the device into model inputs (augmented, normalized, float)."""
        raise NotImplementedError

    def forward(self, inputs: dict[str, torch.Tensor]) -> StepOutput:
        """Loss and metrics of prepared ``inputs``."""
        raise NotImplementedError

    def attach(self, settings: TrainSettings, dataset: Any) -> None:
        """Called once by the loop after construction, with the run's settings and its training dataset, before
        the optimizer is built and any checkpoint is loaded: state sized by the data (a memory bank with one
        row per training video) or set by shared settings (the crop size of on-device augmentation)."""

    def parameter_groups(self, settings: TrainSettings) -> list[dict[str, Any]]:
        """The optimizer's parameter groups (each may set its own ``lr`` / ``weight_decay``): one group here."""
        return [{"params": list(self.parameters())}]

    def after_step(self, inputs: dict[str, torch.Tensor], output: StepOutput, step: int) -> None:
        """Called after every optimizer step (``step`` counts steps done, from 1), on every process."""

    def on_epoch_end(self, epoch: int) -> None:
        """Called when epoch ``epoch`` (from 1) has ended, on every process."""

    @staticmethod
    def normalize(clip: torch.Tensor) -> torch.Tensor:
        """Float clip [B, 3, T, H, W] in [0, 1] -> normalized input of the backbone."""
        return normalize(clip)

    def clips_per_item(self) -> int:
        """How many clips one dataset item holds (for clips/s)."""
        return 1


def no_decay_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two parameter groups: weights of convolutions and linear layers with ``weight_decay``; biases and the
    parameters of normalisation layers (1-D tensors) without it, as most contrastive methods train."""
    decay, plain = [], []
    for parameter in module.parameters():
        if parameter.requires_grad:
            (plain if parameter.ndim <= 1 else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
