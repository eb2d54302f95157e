"""CPC on video segments (Lorre et al., WACV 2020): predict the representation of future segments.

A training item is T segments of F consecutive frames (F = the pipeline's ``clip_len``), segment starts
``segment_stride`` frames apart (F/2 by default: consecutive segments overlap by half), each segment cut with
its own random crop. The F frames of a segment are stacked into channels (flow 2F, differences F, RGB 3F) and
encoded by a 2D network (``resnet18_2d``); a masked (causal) autoregressive model and the maps W_k predict
z_{t+k} from c_t; the loss scores every prediction against all B·T segment representations of the global batch
(``train.predictive.cpc``). On-device augmentation: RGB colour dropping per segment; flow scaled by the
dataset's bound with each flow frame's spatial mean removed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from preprocess.streams import CHANNELS, to_input
from train.backbones.base import Backbone
from train.clips import pace_frame_indices
from train.data import ClipSpec, TrainingData, VideoClipDataset
from train.distributed import gather_with_grad
from train.methods.base import PretextMethod, StepOutput, to_float_clip
from train.methods.registry import register_method
from train.predictive.cpc import build_context_model, cpc_loss, encode_segments, steps_ahead
from train.sampling import SampleKey
from train.settings import TrainSettings

MODALITY_STREAMS: dict[str, str] = {"flow": "flow", "diff": "diff", "rgb": "frames"}


@dataclass
class CPCSettings:
    """CPC on segments (section ``train.cpc``); the frames per segment are the pipeline's ``clip_len``."""

    segments: int = 10  # T
    segment_stride: int | None = None  # frames between segment starts (None: clip_len // 2, half overlap)
    modality: Literal["flow", "diff", "rgb"] = "flow"
    context_model: Literal["masked_conv3d", "masked_conv2plus1d", "conv_lstm", "lstm"] = "masked_conv3d"
    context_channels: int = 512
    max_steps_ahead: int | None = None  # None: k = 1 .. T-1 (the 1/2/3-step ablations set 1, 2, 3)
    exclude_same_video: bool = False  # the paper's ablation: no hard negatives from the same video
    colour_drop_p: float = 0.5  # RGB: probability that a segment keeps one colour channel or turns grey

    def __post_init__(self) -> None:
        steps_ahead(self.segments, self.max_steps_ahead)  # checks segments >= 2 and max_steps_ahead >= 1
        if self.segment_stride is not None and self.segment_stride < 1:
            raise ValueError(f"segment_stride must be >= 1, got {self.segment_stride}")
        if self.context_channels < 1:
            raise ValueError(f"context_channels must be >= 1, got {self.context_channels}")
        if not 0.0 <= self.colour_drop_p <= 1.0:
            raise ValueError(f"colour_drop_p must lie in [0, 1], got {self.colour_drop_p}")


def segment_stride(settings: TrainSettings) -> int:
    """Frames between the starts of consecutive segments (default: half a segment, at least 1)."""
    options: CPCSettings = settings.method_settings
    return options.segment_stride if options.segment_stride is not None else max(1, settings.clip_len // 2)


@dataclass(frozen=True)
class SegmentSampler:
    """T segments of F consecutive frames, starts ``stride`` apart, as T views (each view gets its own crop):
    indices int64 [T, F]. The first start is uniform where the whole span fits (0 when the video is too short:
    indices then loop); the central position when ``rng`` is None."""

    segments: int
    frames: int
    stride: int

    @property
    def views(self) -> int:
        return self.segments

    def draw(self, n_items: int, rng: np.random.Generator | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        span = (self.segments - 1) * self.stride + self.frames
        room = max(0, n_items - span)
        start = int(rng.integers(0, room + 1)) if rng is not None else room // 2
        starts = start + self.stride * np.arange(self.segments)
        return np.stack([pace_frame_indices(int(s), self.frames, 1, n_items) for s in starts]), {}


class FlowBoundClips(VideoClipDataset):
    """A ``VideoClipDataset`` whose items also carry the dataset's flow bound (``flow_bound`` float32), which the
    on-device scaling of flow needs."""

    def __getitem__(self, key: SampleKey | int) -> dict[str, np.ndarray]:
        item = super().__getitem__(key)
        item["flow_bound"] = np.float32(self.dataset.flow_bound)
        return item


def stack_frames(clips: torch.Tensor) -> torch.Tensor:
    """Segments [N, C, F, H, W] -> the 2D encoder's stacked input [N, F·C, H, W] (frame-major: channel
    f·C + c is channel c of frame f)."""
    return clips.transpose(1, 2).flatten(1, 2)


def drop_colour(clips: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Colour dropping per clip: with probability ``p`` a clip [3, F, H, W] keeps one colour channel (the other
    two set to 0) or becomes grey (luma on all three), the four choices equally likely.
    [N, 3, F, H, W] in [0, 1] -> same."""
    count = clips.shape[0]
    device = generator.device if generator is not None else clips.device
    apply = (torch.rand(count, generator=generator, device=device) < p).to(clips.device)
    choice = torch.randint(0, 4, (count,), generator=generator, device=device).to(clips.device)
    luma = torch.tensor((0.299, 0.587, 0.114), device=clips.device, dtype=clips.dtype)
    grey = torch.einsum("ncfhw,c->nfhw", clips, luma).unsqueeze(1).expand_as(clips)
    keep = torch.nn.functional.one_hot(choice.clamp(max=2), 3).to(clips.dtype)[:, :, None, None, None]
    dropped = torch.where((choice == 3)[:, None, None, None, None], grey, clips * keep)
    return torch.where(apply[:, None, None, None, None], dropped, clips)


def segment_input(values: torch.Tensor, stream: str, flow_bound: float = 1.0) -> torch.Tensor:
    """Stored segments of one stream, [N, F, H, W, C] (``diff``: [N, F, H, W]) -> the backbone input
    [N, C, F, H, W] (frames ImageNet-normalised, flow / bound with each frame's spatial mean removed,
    differences / 255). Evaluation reads segments through this function too."""
    return to_input(values, stream, flow_bound=flow_bound, subtract_mean=stream == "flow", device=values.device)


@register_method("cpc")
class CPCMethod(PretextMethod):
    """Encoder (the backbone on stacked frames) + autoregressive ``context_model`` + ``predictions`` (the W_k)."""

    Settings = CPCSettings

    @classmethod
    def input_channels(cls, settings: TrainSettings) -> int:
        """C·F: 2F for flow, F for differences, 3F for RGB."""
        options: CPCSettings = settings.method_settings
        return CHANNELS[MODALITY_STREAMS[options.modality]] * settings.clip_len

    @classmethod
    def input_stream(cls, settings: TrainSettings) -> str:
        return MODALITY_STREAMS[settings.method_settings.modality]

    @classmethod
    def segment_contract(cls, settings: TrainSettings) -> dict[str, object]:
        """What a segment backbone's input is (recorded in ``backbone.pt``): stacked frames, T segments of F
        consecutive frames ``segment_stride`` apart, the modality."""
        return {"layout": "stacked", "count": settings.method_settings.segments, "frames": settings.clip_len,
                "frame_stride": 1, "segment_stride": segment_stride(settings),
                "modality": settings.method_settings.modality}

    @classmethod
    def clip_spec(cls, settings: TrainSettings) -> ClipSpec:
        """One stream, T views (the segments), each with its own random crop; no flip (the paper names none)."""
        options: CPCSettings = settings.method_settings
        sampler = SegmentSampler(options.segments, settings.clip_len, segment_stride(settings))
        return ClipSpec(sampler, streams=(cls.input_stream(settings),), crop_size=settings.crop_size)

    @classmethod
    def training_data(cls, data_dir: str | Path, settings: TrainSettings) -> TrainingData:
        return TrainingData(FlowBoundClips(data_dir, cls.clip_spec(settings), seed=settings.seed))

    def __init__(self, backbone: Backbone, settings: CPCSettings) -> None:
        super().__init__(backbone, settings)
        width = backbone.num_features
        self.steps_ahead = steps_ahead(settings.segments, settings.max_steps_ahead)
        self.context_model = build_context_model(settings.context_model, width, settings.context_channels)
        self.predictions = nn.Linear(settings.context_channels, self.steps_ahead * width, bias=False)

    def clips_per_item(self) -> int:
        return self.settings.segments

    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """The stream [B, T, F, S, S, C] (``diff`` [B, T, F, S, S]) -> ``segments`` [B, T, C·F, S, S]."""
        stream = MODALITY_STREAMS[self.settings.modality]
        values = batch[stream]
        batch_size, segments = values.shape[:2]
        flat = values.flatten(0, 1)
        if stream == "frames":
            clips = drop_colour(to_float_clip(flat), self.settings.colour_drop_p, generator)
            clips = self.normalize(clips)
        else:
            clips = segment_input(flat, stream, float(batch["flow_bound"][0]) if stream == "flow" else 1.0)
        return {"segments": stack_frames(clips).unflatten(0, (batch_size, segments))}

    def forward(self, inputs: dict[str, torch.Tensor]) -> StepOutput:
        features = encode_segments(self.backbone, inputs["segments"])  # h [B, T, D, h, w]
        context = self.context_model(features).mean(dim=(3, 4))
        predictions = self.predictions(context).unflatten(-1, (self.steps_ahead, -1))  # [B, T, K, D]
        z = features.mean(dim=(3, 4))
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        keys = gather_with_grad(z.flatten(0, 1))
        result = cpc_loss(predictions, z, self.settings.exclude_same_video, keys=keys, first_video=rank * len(z))
        metrics = {"loss": result.loss.detach(), "accuracy": result.accuracy}
        metrics.update({f"acc_step{k + 1}": value for k, value in enumerate(result.accuracy_per_step)})
        return StepOutput(result.loss, metrics)
