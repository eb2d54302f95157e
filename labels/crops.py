"""Clip windows and crop variants: where a labelled clip sits in a video and how it is cut.

The same functions cut the clips when labels are made and when the trainer loads them, so a
stored label always describes exactly the pixels the network sees.
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


def crop_frames(frames: np.ndarray, y: int, x: int, size: int, flip: bool) -> np.ndarray:
    """Cut a crop variant from a clip.

    Args:
        frames: [T, H, W, C] (any dtype), e.g. uint8 RGB.
        y, x: top-left corner of the crop; size: its side.
        flip: mirror horizontally.
    Returns:
        [T, size, size, C] view of ``frames`` (mirrored view when ``flip``).
    """
    check_crop(frames.shape[1], frames.shape[2], y, x, size)
    crop = frames[:, y:y + size, x:x + size]
    return crop[:, :, ::-1] if flip else crop


def crop_flow(flow: np.ndarray, y: int, x: int, size: int, flip: bool) -> np.ndarray:
    """Cut a crop variant from the flow of a clip; a flip mirrors the field and negates u.

    Args:
        flow: float [T, H, W, 2] (u, v) in px, or uint8 [T, H, W, 2] codes of the symmetric quantizer of
            ``preprocess.flow_codec`` (negating a code is ``255 - q``).
        y, x, size, flip: as in :func:`crop_frames`.
    Returns:
        [T, size, size, 2], same dtype; a view unless ``flip``.
    """
    crop = crop_frames(flow, y, x, size, flip)
    if not flip:
        return crop
    crop = crop.copy()
    if crop.dtype == np.uint8:
        crop[..., 0] = 255 - crop[..., 0]
    elif np.issubdtype(crop.dtype, np.floating):
        crop[..., 0] = -crop[..., 0]
    else:
        raise ValueError(f"flow must be float (px) or uint8 (codes), got {crop.dtype}")
    return crop
