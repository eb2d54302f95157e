"""Reading evaluation clips of one video from an extracted dataset (``preprocess.dataset.Dataset``)."""
from __future__ import annotations

import numpy as np
import torch

from eval.clips import center_crop, clip_indices, clip_starts
from eval.scenes import clip_windows
from eval.settings import ClipSettings
from preprocess.dataset import Dataset
from preprocess.streams import crop, read_items, stream_length
from train.clips import clip_span, crop_offsets


def read_clip(dataset: Dataset, stream: str, video_id: str, indices: np.ndarray, crop_size: int) -> np.ndarray:
    """The centre-cropped clip at frame ``indices`` int [T] (may wrap around): [T, S, S, ...], stream dtype."""
    where = f"{dataset.path}: {video_id} ({stream})"
    return np.ascontiguousarray(center_crop(read_items(dataset, stream, video_id, indices), crop_size, where=where))


def random_clip(dataset: Dataset, stream: str, video_id: str, n_frames: int, clip_len: int, crop_size: int,
                rng: np.random.Generator, stride: int = 1) -> np.ndarray:
    """A training clip (frames ``stride`` apart): random start, random ``crop_size`` window, mirrored with
    probability 1/2 (by ``preprocess.streams.crop``). Returns [clip_len, S, S, ...] with the stream's dtype."""
    length = stream_length(n_frames, stream, where=f"video {video_id!r}")
    start = int(rng.integers(0, max(length - clip_span(clip_len, stride), 0) + 1))
    items = read_items(dataset, stream, video_id, clip_indices(start, clip_len, length, stride))
    where = f"{dataset.path}: {video_id} ({stream})"
    y, x = crop_offsets(items.shape[1], items.shape[2], crop_size, rng, where)
    return np.ascontiguousarray(crop(items, y, x, crop_size, bool(rng.random() < 0.5), stream))


def uniform_clips(dataset: Dataset, stream: str, video_id: str, n_frames: int, n_clips: int, clip_len: int,
                  crop_size: int, stride: int = 1) -> np.ndarray:
    """``n_clips`` centre-cropped clips (frames ``stride`` apart) spread uniformly over a video:
    [n_clips, clip_len, S, S, ...].

    When the clips cover the video densely, its frames are read once and shared by overlapping clips.
    """
    length = stream_length(n_frames, stream, where=f"video {video_id!r}")
    starts = clip_starts(length, clip_span(clip_len, stride), n_clips)
    indices = np.stack([clip_indices(s, clip_len, length, stride) for s in starts])
    lo, hi = int(indices.min()), int(indices.max()) + 1
    if hi - lo > indices.size:  # sparse clips over a long video: read each one alone
        return np.stack([read_clip(dataset, stream, video_id, row, crop_size) for row in indices])
    span = read_items(dataset, stream, video_id, np.arange(lo, hi))
    cropped = center_crop(span, crop_size, where=f"{dataset.path}: {video_id} ({stream})")
    return np.ascontiguousarray(cropped[indices - lo])


def window_clips(dataset: Dataset, stream: str, video_id: str, n_frames: int, clip_len: int, overlap: int,
                 crop_size: int) -> np.ndarray:
    """Every ``clip_len`` clip of a video, consecutive clips sharing ``overlap`` items
    (``eval.scenes.clip_windows`` over the stream's length), centre-cropped: [K, clip_len, S, S, ...]."""
    length = stream_length(n_frames, stream, where=f"video {video_id!r}")
    indices = clip_windows(length, clip_len, overlap)
    lo, hi = int(indices.min()), int(indices.max()) + 1
    span = read_items(dataset, stream, video_id, np.arange(lo, hi))
    cropped = center_crop(span, crop_size, where=f"{dataset.path}: {video_id} ({stream})")
    return np.ascontiguousarray(cropped[indices - lo])


class WindowClips(torch.utils.data.Dataset):
    """Item ``i``: the overlapping windows of ``video_ids[i]`` (see ``window_clips``)."""

    def __init__(self, dataset: Dataset, stream: str, video_ids: list[str], clip_len: int, overlap: int,
                 crop_size: int) -> None:
        self.dataset, self.stream, self.video_ids = dataset, stream, list(video_ids)
        self.clip_len, self.overlap, self.crop_size = clip_len, overlap, crop_size

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, i: int) -> np.ndarray:
        video_id = self.video_ids[i]
        return window_clips(self.dataset, self.stream, video_id, self.dataset.video(video_id).n_frames,
                            self.clip_len, self.overlap, self.crop_size)


class EvaluationClips(torch.utils.data.Dataset):
    """Item ``i``: the ``n_clips`` uniformly spaced centre-cropped clips of ``video_ids[i]``
    ([n_clips, clip_len, S, S, ...], see ``uniform_clips``), for a DataLoader with worker processes."""

    def __init__(self, dataset: Dataset, stream: str, video_ids: list[str], n_clips: int, clip_len: int,
                 crop_size: int, stride: int = 1) -> None:
        self.dataset, self.stream, self.video_ids = dataset, stream, list(video_ids)
        self.n_clips, self.clip_len, self.crop_size, self.stride = n_clips, clip_len, crop_size, stride

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, i: int) -> np.ndarray:
        video_id = self.video_ids[i]
        return uniform_clips(self.dataset, self.stream, video_id, self.dataset.video(video_id).n_frames,
                             self.n_clips, self.clip_len, self.crop_size, self.stride)


def evaluation_loader(dataset: Dataset, stream: str, video_ids: list[str], clips: ClipSettings,
                      device: torch.device | str = "cpu", overlap: int | None = None) -> torch.utils.data.DataLoader:
    """DataLoader yielding each video's evaluation clips as a tensor, in ``video_ids`` order, read by
    ``clips.num_workers`` processes (``clips`` is an ``eval.settings.ClipSettings``): the uniformly spaced
    clips, or with ``overlap`` every window of ``clips.clip_len`` sharing ``overlap`` frames."""
    if overlap is None:
        items = EvaluationClips(dataset, stream, video_ids, clips.clips_per_video, clips.length, clips.crop_size,
                                clips.stride)
    else:
        items = WindowClips(dataset, stream, video_ids, clips.clip_len, overlap, clips.crop_size)
    return torch.utils.data.DataLoader(items, batch_size=None, num_workers=clips.num_workers,
                                       pin_memory=torch.device(device).type == "cuda")
