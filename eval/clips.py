"""Evaluation clips: uniform temporal sampling, centre crops, conversion to backbone input.

Pure functions on numpy / torch arrays; reading from a dataset lives in ``eval.video_clips``.
"""
from __future__ import annotations

import numpy as np

from preprocess.streams import crop
from train.clips import crop_offsets

def clip_starts(n_frames: int, span: int, n_clips: int) -> np.ndarray:
    """First frames of ``n_clips`` clips covering ``span`` frames each, spread uniformly over a video: int64
    [n_clips].

    The first clip starts at frame 0 and the last ends at the last frame; a video shorter than ``span`` gives
    clips all starting at 0 (they loop, see ``clip_indices``).
    """
    if n_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {n_frames}")
    last_start = max(n_frames - span, 0)
    return np.rint(np.linspace(0, last_start, n_clips)).astype(np.int64)


def clip_indices(start: int, clip_len: int, n_frames: int, stride: int = 1) -> np.ndarray:
    """Frame indices int64 [clip_len] of the clip starting at ``start``, ``stride`` frames apart, looping past
    the video's end."""
    return (start + stride * np.arange(clip_len, dtype=np.int64)) % n_frames


def center_crop(frames: np.ndarray, size: int, where: str = "clip") -> np.ndarray:
    """The central ``size`` x ``size`` window of every frame: [T, H, W, ...] -> [T, size, size, ...]."""
    y, x = crop_offsets(frames.shape[1], frames.shape[2], size, None, where)
    return crop(frames, y, x, size)
