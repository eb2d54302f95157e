"""Grayscale image differences between consecutive frames (an input modality of CPC-style methods).

Storage codec: the exact difference ``gray1 - gray0`` as int16 in [-255, 255] (lossless; HDF5 Zstandard
shrinks it well since most values are near 0). Read back with :func:`decode_difference`, which gives
float32 in the same units (grey levels).
"""
from __future__ import annotations

import numpy as np

STORAGE_DTYPE = np.int16


def image_difference(gray0: np.ndarray, gray1: np.ndarray) -> np.ndarray:
    """uint8 [H, W] frames t and t+1 -> int16 [H, W] ``gray1 - gray0`` in [-255, 255] (the stored form)."""
    if gray0.shape != gray1.shape or gray0.ndim != 2:
        raise ValueError(f"expected two gray frames [H, W] of one shape, got {gray0.shape} and {gray1.shape}")
    if gray0.dtype != np.uint8 or gray1.dtype != np.uint8:
        raise ValueError(f"expected uint8 gray frames, got {gray0.dtype} and {gray1.dtype}")
    return np.subtract(gray1, gray0, dtype=STORAGE_DTYPE)


def decode_difference(stored: np.ndarray) -> np.ndarray:
    """Stored int16 differences (any shape) -> float32 grey-level differences in [-255, 255]."""
    return stored.astype(np.float32)
