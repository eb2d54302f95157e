"""Reading evaluation clips of one video from an extracted dataset (``preprocess.dataset.Dataset``)."""
from __future__ import annotations

import numpy as np
import torch

from eval.clips import center_crop, clip_indices, clip_starts
from train.clips import random_crop


def stream_length(video_id: str, n_frames: int, stream: str) -> int:
    """Number of items of ``stream`` for a video of ``n_frames`` frames (flow and diff have one fewer)."""
    length = n_frames if stream == "frames" else n_frames - 1
    if length < 1:
        raise ValueError(f"video {video_id!r} has {n_frames} frame(s), too few for stream {stream!r}")
    return length


def read_stream(dataset, stream: str, video_id: str, start: int, stop: int) -> np.ndarray:
    """Items ``start .. stop-1`` of a stream: frames uint8 [T,H,W,3], flow float32 [T,H,W,2], diff float32 [T,H,W].

    Raises ValueError naming the dataset and video when the stream holds fewer items than asked for.
    """
    readers = {"frames": "read_frames", "flow": "read_flow", "diff": "read_diff"}
    if stream not in readers:
        raise ValueError(f"unknown stream {stream!r} (known: {', '.join(readers)})")
    items = getattr(dataset, readers[stream])(video_id, start, stop)
    if len(items) != stop - start:
        raise ValueError(f"{dataset.path}: {video_id}: asked for {stream} {start}..{stop - 1}, got {len(items)} items")
    return items


def read_clip(dataset, stream: str, video_id: str, indices: np.ndarray, crop_size: int) -> np.ndarray:
    """The centre-cropped clip at frame ``indices`` int [T] (may wrap around): [T, S, S, ...], stream dtype."""
    lo, hi = int(indices.min()), int(indices.max()) + 1
    span = read_stream(dataset, stream, video_id, lo, hi)
    where = f"{dataset.path}: {video_id} ({stream})"
    return np.ascontiguousarray(center_crop(span[indices - lo], crop_size, where=where))


def random_clip(dataset, stream: str, video_id: str, n_frames: int, clip_len: int, crop_size: int,
                rng: np.random.Generator) -> np.ndarray:
    """A training clip: random start, random ``crop_size`` window, mirrored with probability 1/2 (flow u
    negated when mirrored). Returns [clip_len, S, S, ...] with the stream's dtype."""
    length = stream_length(video_id, n_frames, stream)
    start = int(rng.integers(0, max(length - clip_len, 0) + 1))
    indices = clip_indices(start, clip_len, length)
    lo, hi = int(indices.min()), int(indices.max()) + 1
    frames = read_stream(dataset, stream, video_id, lo, hi)[indices - lo]
    clip = random_crop(frames, crop_size, rng, where=f"{dataset.path}: {video_id} ({stream})")
    if rng.random() < 0.5:
        clip = clip[:, :, ::-1].copy()
        if stream == "flow":
            clip[..., 0] *= -1
    return np.ascontiguousarray(clip)


def uniform_clips(dataset, stream: str, video_id: str, n_frames: int, n_clips: int, clip_len: int,
                  crop_size: int) -> np.ndarray:
    """``n_clips`` centre-cropped clips spread uniformly over a video: [n_clips, clip_len, S, S, ...].

    When the clips cover the video densely, its frames are read once and shared by overlapping clips.
    """
    length = stream_length(video_id, n_frames, stream)
    indices = np.stack([clip_indices(s, clip_len, length) for s in clip_starts(length, clip_len, n_clips)])
    lo, hi = int(indices.min()), int(indices.max()) + 1
    if hi - lo > indices.size:  # sparse clips over a long video: read each one alone
        return np.stack([read_clip(dataset, stream, video_id, row, crop_size) for row in indices])
    span = read_stream(dataset, stream, video_id, lo, hi)
    cropped = center_crop(span, crop_size, where=f"{dataset.path}: {video_id} ({stream})")
    return np.ascontiguousarray(cropped[indices - lo])


class EvaluationClips(torch.utils.data.Dataset):
    """Item ``i``: the ``n_clips`` uniformly spaced centre-cropped clips of ``video_ids[i]``
    ([n_clips, clip_len, S, S, ...], see ``uniform_clips``), for a DataLoader with worker processes."""

    def __init__(self, dataset, stream: str, video_ids: list[str], n_clips: int, clip_len: int,
                 crop_size: int) -> None:
        self.dataset, self.stream, self.video_ids = dataset, stream, list(video_ids)
        self.n_clips, self.clip_len, self.crop_size = n_clips, clip_len, crop_size

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, i: int) -> np.ndarray:
        video_id = self.video_ids[i]
        return uniform_clips(self.dataset, self.stream, video_id, self.dataset.video(video_id).n_frames,
                             self.n_clips, self.clip_len, self.crop_size)


def evaluation_loader(dataset, stream: str, video_ids: list[str], clips, device: torch.device | str = "cpu"):
    """DataLoader yielding each video's evaluation clips as a tensor, in ``video_ids`` order, read by
    ``clips.num_workers`` processes (``clips`` is an ``eval.settings.ClipSettings``)."""
    items = EvaluationClips(dataset, stream, video_ids, clips.clips_per_video, clips.clip_len, clips.crop_size)
    return torch.utils.data.DataLoader(items, batch_size=None, num_workers=clips.num_workers,
                                       pin_memory=torch.device(device).type == "cuda")
