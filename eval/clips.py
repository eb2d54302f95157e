"""Evaluation clips: uniform temporal sampling, centre crops, conversion to backbone input.

Pure functions on numpy / torch arrays; reading from a dataset lives in ``eval.video_clips``.
"""
from __future__ import annotations

import numpy as np
import torch

from train.clips import crop_offsets

STREAM_CHANNELS: dict[str, int] = {"frames": 3, "flow": 2, "diff": 1}


def clip_starts(n_frames: int, clip_len: int, n_clips: int) -> np.ndarray:
    """First frames of ``n_clips`` clips spread uniformly over a video: int64 [n_clips].

    The first clip starts at frame 0 and the last ends at the last frame; a video shorter than
    ``clip_len`` gives clips all starting at 0 (they loop, see ``clip_indices``).
    """
    if n_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {n_frames}")
    last_start = max(n_frames - clip_len, 0)
    return np.rint(np.linspace(0, last_start, n_clips)).astype(np.int64)


def clip_indices(start: int, clip_len: int, n_frames: int) -> np.ndarray:
    """Frame indices int64 [clip_len] of the clip starting at ``start``, looping past the video's end."""
    return (start + np.arange(clip_len, dtype=np.int64)) % n_frames


def center_crop(frames: np.ndarray, size: int, where: str = "clip") -> np.ndarray:
    """The central ``size`` x ``size`` window of every frame: [T, H, W, ...] -> [T, size, size, ...]."""
    y, x = crop_offsets(frames.shape[1], frames.shape[2], size, None, where)
    return frames[:, y : y + size, x : x + size]


def to_backbone_input(clips: np.ndarray | torch.Tensor, stream: str, flow_bound: float = 20.0,
                      device: str | torch.device = "cpu") -> torch.Tensor:
    """Stack of clips -> normalized float [B, C, T, H, W] on ``device``.

    frames: uint8 [B, T, H, W, 3] scaled to [0, 1] then normalized like the pretext training
    (``train.augment.normalize``); flow: float [B, T, H, W, 2] in px divided by ``flow_bound`` (to [-1, 1]);
    diff: float [B, T, H, W] in [-255, 255] divided by 255.
    """
    x = torch.as_tensor(clips).to(device, non_blocking=True)
    if stream == "frames":
        from train.augment import normalize

        return normalize(x.permute(0, 4, 1, 2, 3).float() / 255.0)
    if stream == "flow":
        return x.permute(0, 4, 1, 2, 3).float() / float(flow_bound)
    if stream == "diff":
        return x.unsqueeze(1).float() / 255.0
    raise ValueError(f"unknown stream {stream!r} (known: {', '.join(STREAM_CHANNELS)})")
