"""Pure frame-index and crop arithmetic of training clips (numpy in, numpy out)."""
from __future__ import annotations

import numpy as np


def clip_span(clip_len: int, stride: int = 1) -> int:
    """Frames a clip of ``clip_len`` frames ``stride`` apart covers, first to last."""
    return (clip_len - 1) * stride + 1


def pace_frame_indices(start: int, clip_len: int, pace: float, n_frames: int) -> np.ndarray:
    """Frame indices int64 [clip_len] of a clip played at ``pace`` from ``start``.

    Frame k is ``start + floor(k * pace)``: pace 2 skips every other frame, pace 1/2 shows each frame twice
    (slow motion). Indices past the end of the video loop to its start (modulo ``n_frames``).
    """
    if n_frames < 1:
        raise ValueError("a video needs at least one frame")
    offsets = np.floor(np.arange(clip_len) * pace + 1e-9).astype(np.int64)
    return (start + offsets) % n_frames


def snap_slow_pace(pace: float) -> float:
    """A pace below 1 as the exact slow-motion factor ``1/n`` it stands for (0.33 -> 1/3, 0.5 -> 1/2).

    Slow motion repeats each frame n times; YAML cannot write 1/3 exactly, and 0.33 would otherwise repeat the
    first frame 4 times. Paces of 1 and more are returned unchanged.
    """
    if pace >= 1:
        return float(pace)
    return 1.0 / max(1, round(1.0 / pace))


def pace_span(clip_len: int, pace: float) -> int:
    """Number of source frames a clip of ``clip_len`` at ``pace`` covers (first to last, inclusive)."""
    return int(np.floor((clip_len - 1) * pace + 1e-9)) + 1


def crop_offsets(height: int, width: int, size: int, rng: np.random.Generator | None, where: str) -> tuple[int, int]:
    """Top-left (y, x) of a ``size`` x ``size`` window: uniform when ``rng`` is given, else the centre one."""
    if height < size or width < size:
        raise ValueError(f"{where}: frames are {height}x{width}, smaller than the {size}x{size} crop")
    if rng is None:
        return (height - size) // 2, (width - size) // 2
    return int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
