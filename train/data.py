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
from train.clips import arithmetic_runs, pace_frame_indices, pace_span, random_crop
from train.sampling import SampleKey


def read_frames_at(dataset: Dataset, video_id: str, indices: np.ndarray) -> np.ndarray:
    """Frames uint8 [len(indices), H, W, 3] at arbitrary ``indices`` (repeats allowed), each decoded once.

    The distinct indices are read as few ``(start, stop, step)`` slices as possible.
    """
    unique, inverse = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
    parts = [dataset.read_frames(video_id, start, stop, step) for start, stop, step in arithmetic_runs(unique)]
    if len(parts) == 1 and np.array_equal(unique, indices):  # one increasing run: no copy needed
        return parts[0]
    return np.concatenate(parts, axis=0)[inverse]


def training_videos(dataset: Dataset) -> list[int]:
    """Indices of ``dataset.videos`` usable for self-supervised training (every split except 'test')."""
    return [i for i, video in enumerate(dataset.videos) if video.split != "test"]


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
        usable = {self.dataset.videos[i].id for i in training_videos(self.dataset)}
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


class PaceClipDataset:
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
        self.dataset = Dataset(dataset_dir)
        self.paces = [float(p) for p in paces]
        self.clip_len = clip_len
        self.crop_size = crop_size
        self.views = views
        self.seed = seed
        self.video_indices = training_videos(self.dataset)
        if not self.video_indices:
            raise ValueError(f"{dataset_dir}: no training videos")

    def __len__(self) -> int:
        return len(self.video_indices)

    def draw(self, key: SampleKey) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The random choices of an item: pace indices int64 [V], starts int64 [V], generator for the crop."""
        rng = np.random.default_rng([self.seed, key.step, key.slot])
        n_frames = self.dataset.videos[self.video_indices[key.index]].n_frames
        distinct = self.views <= len(self.paces)
        pace_ids = rng.choice(len(self.paces), size=self.views, replace=not distinct)
        starts = np.array(
            [rng.integers(0, max(0, n_frames - pace_span(self.clip_len, self.paces[p])) + 1) for p in pace_ids]
        )
        return pace_ids.astype(np.int64), starts.astype(np.int64), rng

    def __getitem__(self, key: SampleKey | int) -> dict[str, np.ndarray]:
        key = key if isinstance(key, SampleKey) else SampleKey(key, 0, key)
        video = self.dataset.videos[self.video_indices[key.index]]
        pace_ids, starts, rng = self.draw(key)
        clips = []
        for pace_id, start in zip(pace_ids, starts):
            indices = pace_frame_indices(int(start), self.clip_len, self.paces[pace_id], video.n_frames)
            frames = read_frames_at(self.dataset, video.id, indices)
            clips.append(random_crop(frames, self.crop_size, rng, where=video.id))
        return {"frames": np.stack(clips), "pace": pace_ids, "video": np.int64(self.video_indices[key.index])}
