"""Training clips read from an extracted dataset (HDF5 shards via ``preprocess.dataset.Dataset``).

Items are requested with a :class:`train.sampling.SampleKey` ``(index, step, slot)`` and every random draw of an
item (pace, start, crop) comes from a generator seeded with ``(seed, step, slot)``: the same clip whatever the
number of DataLoader workers, the DDP world size, or whether the run was resumed. The ``Dataset`` opens its HDF5
files lazily in each process, so one dataset object is safely pickled into every worker.

Frames stay uint8 ``[T, H, W, 3]`` (4x less to move than float); the method converts, augments and normalizes
them on the training device.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from labels.crops import crop_frames
from labels.store import ClipLabels
from preprocess.dataset import Dataset
from train.clips import arithmetic_runs, crop_offsets, pace_frame_indices, pace_span, random_crop, snap_slow_pace
from train.sampling import SampleKey

STREAM_READERS = {"frames": Dataset.read_frames, "flow": Dataset.read_flow, "diff": Dataset.read_diff}


def read_stream_at(dataset: Dataset, stream: str, video_id: str, indices: np.ndarray) -> np.ndarray:
    """Items of ``stream`` at arbitrary ``indices`` (repeats allowed), each read (and decoded) once.

    ``frames``: uint8 [T, H, W, 3]; ``flow``: float32 [T, H, W, 2] (flow t: frame t -> t+1); ``diff``: float32
    [T, H, W]. The distinct indices are read as few ``(start, stop, step)`` slices as possible.
    """
    read = STREAM_READERS[stream]
    unique, inverse = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
    parts = [read(dataset, video_id, start, stop, step) for start, stop, step in arithmetic_runs(unique)]
    if len(parts) == 1 and np.array_equal(unique, indices):  # one increasing run: no copy needed
        return parts[0]
    return np.concatenate(parts, axis=0)[inverse]


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
    ``start .. start+clip_len-1`` of its video, cut with ``labels.crops.crop_frames`` at the row's
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
        clip = crop_frames(frames, y, x, self.crop_size, bool(self.labels.flip[row]))
        return {
            "frames": np.ascontiguousarray(clip),
            "motion": self.labels.motion[row].astype(np.float32) / self.label_scale,
            "appearance": self.labels.appearance[row].astype(np.float32) / self.label_scale,
        }

    def scores(self) -> np.ndarray:
        """Curriculum scores float32 [len(self)] of the items (NaN where not computed)."""
        return self.labels.score[self.rows].astype(np.float32)


class PaceClipDataset(_TrainingVideoClips):
    """Clips of training videos played at a random pace from ``paces``; the label is the pace's index.

    Each item holds ``views`` clips of one video with distinct paces when possible (views=2 gives the pair of
    the same-context contrastive task). The start is uniform over the positions where the clip fits (0 when the
    video is too short; the clip then loops to the start) and the crop is one random window for the whole clip.
    Returns ``frames`` uint8 [V, T, S, S, 3], ``pace`` int64 [V], ``video`` int64 (index into the videos).
    """

    def __init__(
        self,
        dataset_dir: str | Path,
        paces: list[float],
        clip_len: int,
        crop_size: int,
        views: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(dataset_dir)
        self.paces = [snap_slow_pace(float(p)) for p in paces]
        self.clip_len = clip_len
        self.crop_size = crop_size
        self.views = views
        self.seed = seed

    def draw(self, key: SampleKey) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
        """The random choices of an item: pace indices int64 [V], starts int64 [V], generator for the crop."""
        rng = np.random.default_rng([self.seed, key.step, key.slot])
        n_frames = self.videos[self.video_indices[key.index]].n_frames
        distinct = self.views <= len(self.paces)
        pace_ids = rng.choice(len(self.paces), size=self.views, replace=not distinct)
        starts = np.array(
            [rng.integers(0, max(0, n_frames - pace_span(self.clip_len, self.paces[p])) + 1) for p in pace_ids]
        )
        return pace_ids.astype(np.int64), starts.astype(np.int64), rng

    def __getitem__(self, key: SampleKey | int) -> dict[str, np.ndarray]:
        key = key if isinstance(key, SampleKey) else SampleKey(key, 0, key)
        video = self.videos[self.video_indices[key.index]]
        pace_ids, starts, rng = self.draw(key)
        clips = []
        for pace_id, start in zip(pace_ids, starts):
            indices = pace_frame_indices(int(start), self.clip_len, self.paces[pace_id], video.n_frames)
            frames = read_stream_at(self.dataset, "frames", video.id, indices)
            clips.append(random_crop(frames, self.crop_size, rng, where=video.id))
        return {"frames": np.stack(clips), "pace": pace_ids, "video": np.int64(self.video_indices[key.index])}


class ClipDataset(_TrainingVideoClips):
    """One clip per training video: ``clip_len`` items ``stride`` frames apart, of each stream in ``streams``.

    With ``random_start`` the start is uniform over the positions where the clip fits and the crop window is
    random; otherwise the clip is the centred one and so is the crop. Flow and differences exist for frame
    pairs, so when either is asked for, clips use frames ``0 .. n_frames-2`` and item t of every stream belongs
    to frame t (flow t: frame t -> t+1). A clip longer than the video loops to its start. Returns ``frames``
    uint8 [T, S, S, 3], ``flow`` float32 [T, S, S, 2], ``diff`` float32 [T, S, S] (those asked for) and
    ``video`` int64 (index into the videos); without ``crop_size`` the frames keep their stored size.
    """

    def __init__(
        self,
        dataset_dir: str | Path,
        clip_len: int,
        stride: int = 1,
        crop_size: int | None = None,
        streams: tuple[str, ...] = ("frames",),
        random_start: bool = True,
        seed: int = 0,
    ) -> None:
        unknown = sorted(set(streams) - set(STREAM_READERS))
        if unknown or not streams:
            raise ValueError(f"streams must be some of {', '.join(STREAM_READERS)}, got {streams}")
        super().__init__(dataset_dir)
        for stream in streams:
            if not self.dataset.has_stream(stream):
                raise ValueError(f"{dataset_dir}: not every video has a {stream} stream")
        self.clip_len, self.stride, self.crop_size = clip_len, stride, crop_size
        self.streams, self.random_start, self.seed = tuple(streams), random_start, seed

    def __getitem__(self, key: SampleKey | int) -> dict[str, np.ndarray]:
        key = key if isinstance(key, SampleKey) else SampleKey(key, 0, key)
        video = self.videos[self.video_indices[key.index]]
        rng = np.random.default_rng([self.seed, key.step, key.slot]) if self.random_start else None
        usable = video.n_frames - (1 if {"flow", "diff"} & set(self.streams) else 0)
        room = max(0, usable - pace_span(self.clip_len, self.stride))
        start = int(rng.integers(0, room + 1)) if rng is not None else room // 2
        indices = pace_frame_indices(start, self.clip_len, self.stride, usable)
        item: dict[str, np.ndarray] = {"video": np.int64(self.video_indices[key.index])}
        if self.crop_size is not None:
            y, x = crop_offsets(video.height, video.width, self.crop_size, rng, where=video.id)
        for stream in self.streams:
            values = read_stream_at(self.dataset, stream, video.id, indices)
            if self.crop_size is not None:
                values = values[:, y : y + self.crop_size, x : x + self.crop_size]
            item[stream] = np.ascontiguousarray(values)
        return item

