"""Training clips read from an extracted dataset (HDF5 shards via ``preprocess.dataset.Dataset``).

Items are requested with a :class:`train.sampling.SampleKey` ``(index, step, slot)`` and every random draw of an
item (pace, start, crop) comes from a generator seeded with ``(seed, step, slot)``: the same clip whatever the
number of DataLoader workers, the DDP world size, or whether the run was resumed. The ``Dataset`` opens its HDF5
files lazily in each process, so one dataset object is safely pickled into every worker.

Frames stay uint8 ``[T, H, W, 3]`` (4x less to move than float); the method converts, augments and normalizes
them on the training device. A method declares what it needs as a :class:`ClipSpec` (streams, crop, flip, and a
frame sampler that says which frames each of its views shows) and gets a :class:`VideoClipDataset`; a method
trained on stored labels builds its own dataset over the label rows (e.g. :class:`StatsClipDataset`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dataclasses import dataclass, field
from typing import Callable, Protocol

from labels.store import ClipLabels
from preprocess.dataset import Dataset
from preprocess.streams import CHANNELS, crop, read_items
from train.clips import crop_offsets, pace_frame_indices, pace_span
from train.sampling import SampleKey


class FrameSampler(Protocol):
    """Which frames each view of an item shows: ``draw(n_items, rng)`` -> (indices int64 [V, T] into the
    video's stream items, per-view targets ``{name: array [V]}``); ``rng`` None asks for the central clip."""

    views: int

    def draw(self, n_items: int, rng: np.random.Generator | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        ...


@dataclass(frozen=True)
class UniformSampler:
    """``views`` clips of ``clip_len`` items ``stride`` apart, each starting uniformly where it fits (0 when the
    video is too short: the clip then loops); the central clip when ``rng`` is None."""

    clip_len: int
    stride: int = 1
    views: int = 1

    def draw(self, n_items: int, rng: np.random.Generator | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        room = max(0, n_items - pace_span(self.clip_len, self.stride))
        starts = [int(rng.integers(0, room + 1)) if rng is not None else room // 2 for _ in range(self.views)]
        return np.stack([pace_frame_indices(s, self.clip_len, self.stride, n_items) for s in starts]), {}


@dataclass(frozen=True)
class ClipSpec:
    """What a method's batches hold: the ``streams`` read for every view (items aligned: item t of flow and
    differences belongs to frame t), the square ``crop_size`` (None: full frames; one window per view, random
    or central with the sampler), ``flip`` (each view mirrored with probability 1/2, flow through
    ``preprocess.streams.crop``) and the ``sampler`` of frame indices and per-view targets."""

    sampler: FrameSampler
    streams: tuple[str, ...] = ("frames",)
    crop_size: int | None = 112
    flip: bool = False
    random: bool = True  # False: central clip and crop, no flip (deterministic items)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.streams) - set(CHANNELS))
        if unknown or not self.streams:
            raise ValueError(f"streams must be some of {', '.join(CHANNELS)}, got {self.streams}")
        if self.flip and self.crop_size is None:
            raise ValueError("flip needs a crop_size (clips are mirrored when cropped)")


@dataclass
class TrainingData:
    """A method's training dataset; for a curriculum, the item indices easiest first (``order``) and
    ``pool_size(step, n)``: how many of the easiest ``n`` items step ``step`` may draw from."""

    dataset: object
    order: np.ndarray | None = None
    pool_size: Callable[[int, int], int] | None = field(default=None)


def training_videos(dataset: Dataset) -> list[int]:
    """Indices of ``dataset.videos`` usable for self-supervised training (every split except 'test')."""
    return [i for i, video in enumerate(dataset.videos) if video.split != "test"]


class _TrainingVideoClips:
    """Items indexed over the training videos of a dataset (every split except 'test')."""

    def __init__(self, dataset_dir: str | Path) -> None:
        self.dataset = Dataset(dataset_dir)
        self.videos = self.dataset.videos
        self.video_indices = training_videos(self.dataset)
        if not self.video_indices:
            raise ValueError(f"{dataset_dir}: no training videos")

    def __len__(self) -> int:
        return len(self.video_indices)


class StatsClipDataset:
    """Clips with their stored motion/appearance statistics, cropped exactly as the labels were computed.

    Item ``i`` is row ``rows[i]`` of the :class:`labels.store.ClipLabels`: frames
    ``start .. start+clip_len-1`` of its video, cut with ``preprocess.streams.crop`` at the row's
    ``(y, x, flip)``. Returns ``frames`` uint8 [T, S, S, 3], ``motion`` float32 [14], ``appearance`` float32 [13]
    (labels divided by ``label_scale``).
    """

    def __init__(self, dataset_dir: str | Path, labels: ClipLabels, label_scale: float = 1.0) -> None:
        self.dataset = Dataset(dataset_dir)
        self.labels = labels
        self.clip_len = int(labels.clip_len)
        self.crop_size = int(labels.crop_size)
        self.label_scale = float(label_scale)
        videos = self.dataset.videos
        usable = {videos[i].id for i in training_videos(self.dataset)}
        self.rows = np.flatnonzero([vid in usable for vid in labels.video_id])
        if len(self.rows) == 0:
            raise ValueError(f"{dataset_dir}: no labelled clips of training videos")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: SampleKey | int) -> dict[str, np.ndarray]:
        row = self.rows[key.index if isinstance(key, SampleKey) else key]
        video_id = str(self.labels.video_id[row])
        start = int(self.labels.start[row])
        frames = self.dataset.read_frames(video_id, start, start + self.clip_len)
        if len(frames) != self.clip_len:
            raise ValueError(
                f"{video_id}: labelled clip at frame {start} needs {self.clip_len} frames, got {len(frames)}"
            )
        y, x = (int(v) for v in self.labels.crop[row])
        clip = crop(frames, y, x, self.crop_size, bool(self.labels.flip[row]))
        return {
            "frames": np.ascontiguousarray(clip),
            "motion": self.labels.motion[row].astype(np.float32) / self.label_scale,
            "appearance": self.labels.appearance[row].astype(np.float32) / self.label_scale,
        }

    def scores(self) -> np.ndarray:
        """Curriculum scores float32 [len(self)] of the items (NaN where not computed)."""
        return self.labels.score[self.rows].astype(np.float32)


class VideoClipDataset(_TrainingVideoClips):
    """Items of training videos as a :class:`ClipSpec` declares them.

    Every random choice of item ``SampleKey(index, step, slot)`` comes from a generator seeded with
    ``(seed, step, slot)``: first the sampler's draws, then per view the crop window and the flip. When flow or
    differences are read, clips use frames ``0 .. n_frames-2`` (those streams hold one item per frame pair).
    Returns each stream as [V, T, S, S, C] (``diff``: [V, T, S, S]), the sampler's targets [V] and ``video``
    int64 (index into the dataset's videos).
    """

    def __init__(self, dataset_dir: str | Path, spec: ClipSpec, seed: int = 0) -> None:
        super().__init__(dataset_dir)
        for stream in spec.streams:
            if not self.dataset.has_stream(stream):
                raise ValueError(f"{dataset_dir}: not every video has a {stream} stream")
        self.spec, self.seed = spec, seed

    def __getitem__(self, key: SampleKey | int) -> dict[str, np.ndarray]:
        key = key if isinstance(key, SampleKey) else SampleKey(key, 0, key)
        spec = self.spec
        video = self.videos[self.video_indices[key.index]]
        rng = np.random.default_rng([self.seed, key.step, key.slot]) if spec.random else None
        n_items = video.n_frames - (1 if {"flow", "diff"} & set(spec.streams) else 0)
        indices, targets = spec.sampler.draw(n_items, rng)
        views: dict[str, list[np.ndarray]] = {stream: [] for stream in spec.streams}
        for row in indices:
            size = spec.crop_size
            if size is not None:
                y, x = crop_offsets(video.height, video.width, size, rng, where=video.id)
            flip = spec.flip and rng is not None and bool(rng.random() < 0.5)
            for stream in spec.streams:
                values = read_items(self.dataset, stream, video.id, row)
                if size is not None:
                    values = crop(values, y, x, size, flip, stream)
                views[stream].append(np.ascontiguousarray(values))
        item: dict[str, np.ndarray] = {stream: np.stack(clips) for stream, clips in views.items()}
        item.update(targets)
        item["video"] = np.int64(self.video_indices[key.index])
        return item
