"""Clip windows and crop variants: where a labelled clip sits in a video and how it is cut.

Crops are cut with ``preprocess.streams.crop`` both when labels are made and when the trainer loads the
clips, so a stored label always describes exactly the pixels the network sees.
"""
from __future__ import annotations

import numpy as np


def clip_starts(n_frames: int, clip_len: int, stride: int) -> np.ndarray:
    """First frames of the clips of a video: int64 [n], ``0, stride, ...`` while a whole clip fits."""
    if clip_len < 2 or stride < 1:
        raise ValueError(f"need clip_len >= 2 and stride >= 1, got clip_len={clip_len}, stride={stride}")
    return np.arange(0, max(n_frames - clip_len + 1, 0), stride, dtype=np.int64)


def check_crop(height: int, width: int, y: int, x: int, size: int) -> None:
    """Raise ValueError unless the ``size`` x ``size`` crop at (y, x) lies inside a ``height`` x ``width`` frame."""
    if y < 0 or x < 0 or y + size > height or x + size > width:
        raise ValueError(f"crop {size}x{size} at (y={y}, x={x}) does not fit in {height}x{width} frames")
