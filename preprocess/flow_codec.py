"""Linear uint8 quantization of optical flow: the one place flow is stored and read back.

A flow value ``f`` in pixels is clipped to ``[-bound, bound]`` and mapped to ``q = round((f + bound) * 255 / (2 bound))``;
reading back gives ``q * 2 bound / 255 - bound`` (for bound 20: ``q * 40 / 255 - 20``).
The quantization step is ``2 bound / 255`` px, so the round-trip error of an unclipped value is at most half of it.
"""
from __future__ import annotations

import numpy as np

LEVELS = 255  # uint8 codes 0..255


def quantize(flow: np.ndarray, bound: float) -> np.ndarray:
    """Flow in px (any shape, float) -> uint8 codes of the same shape."""
    scaled = np.asarray(np.clip(flow, -bound, bound))  # a new array, so the steps below can work in place
    scaled += bound
    scaled *= LEVELS / (2.0 * bound)
    return np.rint(scaled, out=scaled).astype(np.uint8)


def dequantize(codes: np.ndarray, bound: float, dtype: type = np.float32) -> np.ndarray:
    """uint8 codes (any shape) -> flow in px as ``dtype``."""
    flow = codes.astype(dtype)  # the one array made: scaled and shifted in place
    flow *= dtype(2.0 * bound / LEVELS)
    flow -= dtype(bound)
    return flow
