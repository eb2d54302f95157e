"""Video Instance Recognition (Wu et al. 2018, as used for video by Tokmakov et al. 2020).

Each training video is its own class: a 128-d L2-normalised embedding (backbone, then a linear layer) of a
clip of 16 consecutive frames (a short video loops) is pulled towards the video's entry of a memory bank
(``train.memory_bank``) and pushed away from 4096 noise entries by NCE (``train.instance_losses``), tau 0.07.
The bank row of each video is updated after the optimizer step (``after_step``), with the features of the
whole global batch. Clips are augmented on the device (``train.ir_augment``: multi-scale crop to the
pipeline's ``crop_size``, flip, grey, colour jitter).

The bank and the loss's normaliser Z are buffers of this module (so in every checkpoint), but DDP ignores
them: it would otherwise broadcast the whole bank from rank 0 at every forward; every process already writes
the same rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from train.backbones.base import Backbone
from train.data import ClipSpec, UniformSampler, VideoClipDataset
from train.instance_losses import IR_TEMPERATURE, InstanceRecognitionNCE, draw_noise_indices, scaled_num_noise
from train.ir_augment import IR_CROP_SIZE, ir_augment
from train.memory_bank import MemoryBank
from train.methods.base import PretextMethod, StepOutput, no_decay_groups, to_float_clip
from train.methods.registry import register_method
from train.settings import TrainSettings

EMBEDDING_DIM = 128


@dataclass
class VideoIRSettings:
    """Video IR (section ``train.video_ir``)."""

    embedding_dim: int = EMBEDDING_DIM
    temperature: float = IR_TEMPERATURE
    num_noise: int | None = None  # NCE noise entries per sample (None: min(4096, N // 10) for N training videos)
    bank_momentum: float = 0.5  # m_i <- normalise(momentum m_i + (1 - momentum) f_i)

    def __post_init__(self) -> None:
        if self.embedding_dim < 1 or self.temperature <= 0 or not 0 <= self.bank_momentum < 1:
            raise ValueError(f"need embedding_dim >= 1, temperature > 0 and bank_momentum in [0, 1), got "
                             f"{self.embedding_dim}, {self.temperature}, {self.bank_momentum}")
        if self.num_noise is not None and self.num_noise < 1:
            raise ValueError(f"num_noise must be >= 1 (or null), got {self.num_noise}")


def bank_rows(dataset: VideoClipDataset) -> torch.Tensor:
    """Bank row of every video of the dataset (its position among the training videos, -1 for test videos):
    int64 [number of dataset videos]."""
    rows = torch.full((len(dataset.videos),), -1, dtype=torch.long)
    rows[torch.as_tensor(dataset.video_indices, dtype=torch.long)] = torch.arange(len(dataset.video_indices))
    return rows


class MemoryBankMethod(PretextMethod):
    """Shared part of Video IR and Video LA: backbone + linear head to a unit embedding, a memory bank of one
    row per training video (created in ``attach``), 16-frame clips augmented by ``ir_augment``."""

    bank: MemoryBank
    video_rows: torch.Tensor

    @classmethod
    def clip_spec(cls, settings: TrainSettings) -> ClipSpec:
        """One clip of ``clip_len`` consecutive frames per item (uniform start; a short video loops), full frames
        (the multi-scale crop runs on the device)."""
        return ClipSpec(UniformSampler(settings.clip_len), crop_size=None)

    def __init__(self, backbone: Backbone, settings: Any) -> None:
        super().__init__(backbone, settings)
        self.head = nn.Linear(backbone.num_features, settings.embedding_dim)
        self.crop_size = IR_CROP_SIZE  # the pipeline's crop_size from attach
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None  # (bank rows, embeddings) of the step

    def attach(self, settings: TrainSettings, dataset: Any) -> None:
        """Create the bank (one row per training video of ``dataset``, seeded by the run's seed) and take the
        crop size."""
        if not isinstance(dataset, VideoClipDataset):
            raise TypeError(f"method {self.name!r} trains on a VideoClipDataset, got {type(dataset).__name__}")
        self.crop_size = settings.crop_size
        self.register_buffer("video_rows", bank_rows(dataset), persistent=False)
        self.bank = MemoryBank(len(dataset), self.settings.embedding_dim, self.settings.bank_momentum,
                               seed=settings.seed)
        self._ddp_params_and_buffers_to_ignore = ["bank.vectors"]

    def embed(self, clip: torch.Tensor) -> torch.Tensor:
        """Normalized clip [B, 3, T, S, S] -> unit embedding float32 [B, embedding_dim]."""
        return F.normalize(self.head(self.backbone(clip)).float(), dim=1)

    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """``frames`` uint8 [B, 1, T, H, W, 3], ``video`` int [B] -> augmented ``clip`` [B, 3, T, S, S] and the
        videos' bank rows ``index`` int64 [B]."""
        index = self.video_rows[batch["video"].long()]
        if bool((index < 0).any()):
            raise ValueError("a batch holds a video outside the training videos of the memory bank")
        clip = ir_augment(to_float_clip(batch["frames"][:, 0]), self.crop_size, generator)
        return {"clip": clip, "index": index}

    def remember(self, index: torch.Tensor, embedding: torch.Tensor) -> None:
        """Keep the step's rows and embeddings for the bank update of ``after_step``."""
        self._pending = (index.detach(), embedding.detach())

    def after_step(self, inputs: dict[str, torch.Tensor], output: StepOutput, step: int) -> None:
        """m_i <- normalise(0.5 m_i + 0.5 f_i) for the step's videos (gathered over processes), after backward."""
        if self._pending is None:
            raise RuntimeError("after_step without a forward pass")
        self.bank.update(*self._pending)
        self._pending = None

    def bank_metrics(self, embedding: torch.Tensor, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """``instance_acc``: share of samples whose closest bank entry is their own video's; ``positive_cos``:
        mean cosine between a sample and its own entry (float32 scalars)."""
        similarities = self.bank.similarities(embedding.detach())
        return {"instance_acc": (similarities.argmax(dim=1) == index).float().mean(),
                "positive_cos": similarities.gather(1, index[:, None]).mean()}

    def parameter_groups(self, settings: TrainSettings) -> list[dict[str, Any]]:
        """Weight decay on convolution and linear weights only (not on norm layers and biases)."""
        return no_decay_groups(self, settings.weight_decay)


@register_method("video_ir")
class VideoInstanceRecognition(MemoryBankMethod):
    """Video IR: NCE against the memory bank (noise entries drawn in ``prepare`` from the step's generator)."""

    Settings = VideoIRSettings
    nce: InstanceRecognitionNCE

    def attach(self, settings: TrainSettings, dataset: Any) -> None:
        super().attach(settings, dataset)
        num_noise = self.settings.num_noise or scaled_num_noise(len(dataset))
        self.nce = InstanceRecognitionNCE(self.settings.temperature, num_noise)

    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """As ``MemoryBankMethod.prepare``, plus the NCE noise entries ``noise`` int64 [B, K]."""
        inputs = super().prepare(batch, generator)
        inputs["noise"] = draw_noise_indices(len(inputs["index"]), self.nce.num_noise, self.bank.size, generator,
                                             inputs["clip"].device)
        return inputs

    def forward(self, inputs: dict[str, torch.Tensor]) -> StepOutput:
        embedding = self.embed(inputs["clip"])
        loss = self.nce(embedding, inputs["index"], self.bank, noise=inputs["noise"])
        self.remember(inputs["index"], embedding)
        return StepOutput(loss, {"loss": loss.detach(), **self.bank_metrics(embedding, inputs["index"])})
