"""CVRL's temporal sampling of two clips from one video (Qian et al., CVPR 2021): the gap between the two
clips' starts follows a linearly decreasing density on [0, M] (CDF F(k) = 2k/M - k^2/M^2), which favours
nearby clips; the order of the two clips is swapped at random. Pure numpy with a ``numpy.random.Generator``.

Integer gaps are the floor of the continuous draw, so P(gap < k) = F(k) for k = 0..M and
P(gap = k) = F(k + 1) - F(k) = (2 (M - k) - 1) / M^2 for k = 0..M-1.
"""
from __future__ import annotations

import numpy as np

from train.clips import clip_span

CLIP_FRAMES = 16
CLIP_STRIDE = 2


def gap_probabilities(max_offset: int) -> np.ndarray:
    """P(gap = k) for k = 0..max_offset - 1: float64 [max_offset] (just [1.0] for max_offset 0)."""
    if max_offset <= 0:
        return np.ones(1)
    k = np.arange(max_offset + 1, dtype=np.float64)
    cdf = 2 * k / max_offset - k**2 / max_offset**2
    return np.diff(cdf)


def sample_gaps(max_offsets: np.ndarray, generator: np.random.Generator) -> np.ndarray:
    """Gaps floor(M (1 - sqrt(1 - u))), u ~ U[0, 1), by inverting the CDF: int [B] of M -> int64 [B] in
    [0, max(M - 1, 0)]."""
    max_offsets = np.asarray(max_offsets, dtype=np.int64)
    if (max_offsets < 0).any():
        raise ValueError(f"max_offsets must be >= 0, got {max_offsets.min()}")
    u = generator.random(max_offsets.shape)
    return np.floor(max_offsets * (1 - np.sqrt(1 - u))).astype(np.int64)


def clip_pair_indices(num_frames: np.ndarray, generator: np.random.Generator, clip_frames: int = CLIP_FRAMES,
                      stride: int = CLIP_STRIDE, max_offset: int | None = None) -> np.ndarray:
    """Frame indices of two clips per video: int [B] frame counts -> int64 [B, 2, clip_frames].

    M = ``max_offset`` or, by default, the room a video leaves (num_frames - span, at least 0). The earlier
    clip starts uniformly in [0, max(num_frames - span - gap, 0)], the later one ``gap`` frames after it,
    and each video's pair is swapped with probability 1/2. Indices wrap modulo num_frames, so a video
    shorter than a clip (or a gap beyond its room) loops.
    """
    num_frames = np.asarray(num_frames, dtype=np.int64)
    if num_frames.ndim != 1 or (num_frames < 1).any() or clip_frames < 1 or stride < 1:
        raise ValueError(f"clip_pair_indices: need frame counts >= 1 [B], clip_frames and stride >= 1, got "
                         f"{num_frames}, {clip_frames}, {stride}")
    room = np.maximum(num_frames - clip_span(clip_frames, stride), 0)
    offsets = room if max_offset is None else np.full_like(room, max_offset)
    gaps = sample_gaps(offsets, generator)
    first = np.floor(generator.random(num_frames.shape) * (np.maximum(room - gaps, 0) + 1)).astype(np.int64)
    starts = np.stack([first, first + gaps], axis=1)  # [B, 2]
    swap = generator.random(num_frames.shape) < 0.5
    starts[swap] = starts[swap, ::-1]
    steps = stride * np.arange(clip_frames, dtype=np.int64)
    return (starts[:, :, None] + steps) % num_frames[:, None, None]
