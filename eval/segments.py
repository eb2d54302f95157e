"""Segments of a video for a segment backbone (CPC's 2D encoder on stacked frames, DPC's blocks), as its
``backbone.pt`` records them (``input.segments``, see ``train.methods.base.PretextMethod.segment_contract``),
and the frozen video features of such a backbone: the mean of the pooled features of segments spread uniformly
over the video (CPC: the mean of z_t; the paper's test representation uses 15 segments), and for the scenes
and similarity protocols the mean over half-overlapping segment windows; cached like clip features
(``eval.features.cached_arrays``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from eval.clips import center_crop
from eval.features import WINDOW_STAGES, cached_arrays, dataset_signature, recipe_key
from eval.scenes import video_descriptor
from preprocess.dataset import Dataset
from preprocess.streams import CHANNELS, crop, read_items, stream_length
from train.backbones.base import Backbone
from train.clips import crop_offsets
from train.methods.cpc import segment_input, stack_frames

LAYOUTS = ("stacked", "blocks")


@dataclass(frozen=True)
class SegmentLayout:
    """``count`` segments of ``frames`` frames ``frame_stride`` apart, starts ``segment_stride`` apart;
    'stacked': a segment's frames are the channels of a 2D encoder, 'blocks': a segment is a clip."""

    layout: str
    count: int
    frames: int
    frame_stride: int
    segment_stride: int
    modality: str

    @classmethod
    def from_contract(cls, contract: dict[str, Any], where: str) -> "SegmentLayout | None":
        """The layout recorded in a backbone's input contract; None for a plain clip backbone."""
        segments = contract.get("segments")
        if segments is None:
            return None
        try:
            layout = cls(**segments)
        except TypeError as error:
            raise ValueError(f"{where}: bad segment contract {segments} ({error})") from error
        if layout.layout not in LAYOUTS:
            raise ValueError(f"{where}: unknown segment layout {layout.layout!r} (known: {', '.join(LAYOUTS)})")
        return layout

    @property
    def span(self) -> int:
        """Frames one segment covers, first to last."""
        return (self.frames - 1) * self.frame_stride + 1

    def in_channels(self, stream: str) -> int:
        """Input channels of the backbone: C·F when stacked, C otherwise."""
        return CHANNELS[stream] * (self.frames if self.layout == "stacked" else 1)

    def indices(self, start: int, n_items: int) -> np.ndarray:
        """Stream indices int64 [F] of the segment starting at ``start`` (looping past the end)."""
        return (start + self.frame_stride * np.arange(self.frames, dtype=np.int64)) % n_items


def spread_starts(n_items: int, span: int, count: int) -> np.ndarray:
    """``count`` starts int64 spread uniformly so that each span of ``span`` items fits (all 0 when none fits)."""
    return np.rint(np.linspace(0, max(n_items - span, 0), count)).astype(np.int64)


def window_starts(n_items: int, span: int) -> np.ndarray:
    """Starts int64 [K] of every segment window of ``span`` items, consecutive windows sharing half of their
    span (stride ``max(span // 2, 1)``, the thesis' 16-frame clips overlapping by 8); [0] when none fits."""
    return np.arange(0, max(n_items - span, 0) + 1, max(span // 2, 1), dtype=np.int64)


def read_segments(dataset: Dataset, stream: str, video_id: str, layout: SegmentLayout, starts: np.ndarray, crop_size: int,
                  rng: np.random.Generator | None = None, per_segment: bool = True) -> np.ndarray:
    """Segments at ``starts`` of a video: [K, F, S, S, ...] in the stream's dtype. Central crops without ``rng``;
    with it a random window per segment (CPC) or, without ``per_segment``, one random window and one flip
    (probability 1/2) for all of them (DPC's clip)."""
    n_items = stream_length(dataset.video(video_id).n_frames, stream, where=f"{dataset.path}: {video_id}")
    indices = np.stack([layout.indices(int(s), n_items) for s in starts])
    flat = read_items(dataset, stream, video_id, indices.reshape(-1))
    values = flat.reshape(*indices.shape, *flat.shape[1:])
    where = f"{dataset.path}: {video_id} ({stream})"
    if rng is None:
        return np.ascontiguousarray(np.stack([center_crop(v, crop_size, where) for v in values]))
    if not per_segment:
        y, x = crop_offsets(flat.shape[1], flat.shape[2], crop_size, rng, where)
        clip = crop(flat, y, x, crop_size, bool(rng.random() < 0.5), stream)
        return np.ascontiguousarray(clip.reshape(*indices.shape, *clip.shape[1:]))
    out = []
    for segment in values:
        y, x = crop_offsets(segment.shape[1], segment.shape[2], crop_size, rng, where)
        out.append(crop(segment, y, x, crop_size, False, stream))
    return np.ascontiguousarray(np.stack(out))


def backbone_input(values: torch.Tensor, layout: SegmentLayout, stream: str, flow_bound: float) -> torch.Tensor:
    """Stored segments [K, F, S, S, ...] -> backbone input: stacked [K, C·F, 1, S, S] or blocks [K, C, F, S, S]
    (the same scaling as training, ``train.methods.cpc.segment_input``)."""
    x = segment_input(values, stream, flow_bound)
    return stack_frames(x).unsqueeze(2) if layout.layout == "stacked" else x


@torch.no_grad()
def segment_features(backbone: Backbone, dataset: Dataset, video_ids: list[str], layout: SegmentLayout, stream: str, stage: str,
                     count: int, crop_size: int, batch_size: int, device: str | torch.device = "cpu",
                     progress: bool = False, seed: int | None = None) -> np.ndarray:
    """Video features float32 [N, D]: the mean over ``count`` centre-cropped segments of the backbone's pooled
    ``stage`` features (``backbone`` in eval mode), the segments spread uniformly over the video, or drawn at
    random positions with ``seed`` (CPC's linear probe trains on 8 random segments per video)."""
    backbone.eval()
    flow_bound = dataset.flow_bound if stream == "flow" else 1.0
    features = []
    for video_id in tqdm(video_ids, desc=f"segment features ({stage})", disable=not progress, leave=False):
        n_items = stream_length(dataset.video(video_id).n_frames, stream, where=video_id)
        if seed is None:
            starts = spread_starts(n_items, layout.span, count)
        else:
            rng = np.random.default_rng([seed, int.from_bytes(video_id.encode()[-8:], "little")])
            starts = np.sort(rng.integers(0, max(n_items - layout.span, 0) + 1, size=count))
        values = read_segments(dataset, stream, video_id, layout, starts, crop_size)
        x = backbone_input(torch.from_numpy(values).to(device), layout, stream, flow_bound)
        pooled = [backbone.forward_stages(part, last=stage)[stage].float() for part in x.split(batch_size)]
        features.append(torch.cat(pooled).mean(dim=0).cpu().numpy())
    return np.stack(features).astype(np.float32)


@torch.no_grad()
def segment_window_features(backbone: Backbone, dataset: Dataset, video_ids: list[str], layout: SegmentLayout, stream: str,
                            crop_size: int, batch_size: int, device: str | torch.device = "cpu",
                            progress: bool = False) -> dict[str, np.ndarray]:
    """Per stage of ``WINDOW_STAGES`` the video descriptors float32 [N, D_s] of a segment backbone for the scenes
    and similarity protocols: every segment window (``window_starts``, centre crop), the pooled features of all
    three stages from one ``forward_stages`` pass, averaged over the video's windows and L2-normalised."""
    backbone.eval()
    flow_bound = dataset.flow_bound if stream == "flow" else 1.0
    rows: dict[str, list[np.ndarray]] = {stage: [] for stage in WINDOW_STAGES}
    for video_id in tqdm(video_ids, desc="segment window features", disable=not progress, leave=False):
        n_items = stream_length(dataset.video(video_id).n_frames, stream, where=video_id)
        values = read_segments(dataset, stream, video_id, layout, window_starts(n_items, layout.span), crop_size)
        x = backbone_input(torch.from_numpy(values).to(device), layout, stream, flow_bound)
        outputs = [backbone.forward_stages(part, last="pool5") for part in x.split(batch_size)]
        for stage in WINDOW_STAGES:
            windows = torch.cat([out[stage].float() for out in outputs]).cpu().numpy()
            rows[stage].append(video_descriptor(windows).astype(np.float32))
    return {stage: np.stack(values) for stage, values in rows.items()}


def cached_segment_window_features(backbone: Backbone, weights_id: str, dataset: Dataset, data_dir: str | Path, video_ids: list[str],
                                   layout: SegmentLayout, stream: str, crop_size: int, batch_size: int,
                                   cache_dir: str | Path, device: str | torch.device = "cpu",
                                   progress: bool = False) -> dict[str, np.ndarray]:
    """``segment_window_features`` read from ``cache_dir/<key>.npz`` when present, else computed and stored."""
    key = recipe_key({"weights": weights_id, "stages": list(WINDOW_STAGES), "stream": stream,
                      "segments": {**asdict(layout), "windows": "half-overlapping", "crop_size": crop_size},
                      "dataset": dataset_signature(dataset, data_dir, video_ids)})
    return cached_arrays(cache_dir, key, video_ids, lambda: segment_window_features(
        backbone, dataset, video_ids, layout, stream, crop_size, batch_size, device, progress))


def segment_cache_key(weights_id: str, stage: str, stream: str, layout: SegmentLayout, count: int, crop_size: int,
                      seed: int | None, dataset: Dataset, data_dir: str | Path, video_ids: list[str]) -> str:
    """Hex digest naming one ``segment_features`` extraction: the weights, stage, stream, the segment layout,
    the number of segments and their placement (spread, or random with ``seed``), the crop and the dataset
    (``eval.features.dataset_signature``); independent of the batch size."""
    segments = {**asdict(layout), "per_video": count, "crop_size": crop_size,
                "placement": "spread" if seed is None else f"random:{seed}"}
    return recipe_key({"weights": weights_id, "stage": stage, "stream": stream, "segments": segments,
                       "dataset": dataset_signature(dataset, data_dir, video_ids)})


def cached_segment_features(backbone: Backbone, weights_id: str, dataset: Dataset, data_dir: str | Path, video_ids: list[str],
                            layout: SegmentLayout, stream: str, stage: str, count: int, crop_size: int,
                            batch_size: int, cache_dir: str | Path, device: str | torch.device = "cpu",
                            progress: bool = False, seed: int | None = None) -> np.ndarray:
    """``segment_features`` float32 [N, D] read from ``cache_dir/<key>.npz`` (``segment_cache_key``) when
    present, else extracted and stored there (written atomically), beside the clip features."""
    key = segment_cache_key(weights_id, stage, stream, layout, count, crop_size, seed, dataset, data_dir, video_ids)
    return cached_arrays(cache_dir, key, video_ids, lambda: {"features": segment_features(
        backbone, dataset, video_ids, layout, stream, stage, count, crop_size, batch_size, device, progress,
        seed)})["features"]
