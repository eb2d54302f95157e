"""HOG, HOF and MBH as in the release (``Descriptors.h``): per-pixel orientation histograms (8 bins over 360
degrees, magnitude split linearly between the two nearest bins; HOF adds a zero-motion bin), integral
histograms per frame and level, and per-point descriptors read from them for all points at once.

The four histograms of a frame live in one planar array of 33 channels: HOG 8, HOF 9, MBHx 8, MBHy 8."""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from labels.idt.parameters import CELL_EPSILON, MIN_FLOW, descriptor_bins

ORIENTATIONS = 8
HOF_CHANNEL = 1  # position of HOF among the four fields


def _channel_offsets() -> np.ndarray:
    """First channel of each descriptor type in the 33-channel layout: int [4]."""
    return np.concatenate([[0], np.cumsum(list(descriptor_bins().values()))[:-1]])


@lru_cache(maxsize=16)
def _first_bin_index(pixels: int) -> np.ndarray:
    """float64 [4, pixels]: flat index of bin 0 of each field at each pixel in the planar 33-channel layout."""
    return (_channel_offsets()[:, None] * pixels + np.arange(pixels)).astype(np.float64)


def gradients(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[-1, 0, 1] derivatives in x and y (``Sobel`` aperture 1, border reflect-101), float32 [H, W] each."""
    return cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=1), cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=1)


def frame_histograms(grey: np.ndarray, warped_flow: np.ndarray) -> np.ndarray:
    """Per-pixel orientation histograms of one level and frame: float32 [33, H, W].

    Fields: HOG of the [-1, 0, 1] gradients of ``grey`` uint8 [H, W]; HOF of the warped flow float32
    [H, W, 2]; MBHx, MBHy of the gradients of its u and v. Each vector's angle (``cv2.cartToPolar``,
    degrees) lies between bins ``floor(8 a / 360)`` and the next (cyclic) and its magnitude is split between
    them linearly; HOF vectors of magnitude <= 0.4 put weight 1 into its ninth bin instead.
    """
    u, v = np.ascontiguousarray(warped_flow[..., 0]), np.ascontiguousarray(warped_flow[..., 1])
    fields = [gradients(grey), (u, v), gradients(u), gradients(v)]
    height, width = grey.shape
    x = np.stack([field[0] for field in fields]).reshape(4 * height, width)
    y = np.stack([field[1] for field in fields]).reshape(4 * height, width)
    magnitude, angle = cv2.cartToPolar(x, y, angleInDegrees=True)
    magnitude, angle = magnitude.reshape(4, -1), angle.reshape(4, -1)
    angle[angle >= 360.0] -= 360.0
    position = angle * np.float32(ORIENTATIONS / 360.0)
    lower = np.floor(position)
    upper_weight = (position - lower) * magnitude
    lower_weight = magnitude - upper_weight
    still = magnitude[HOF_CHANNEL] <= MIN_FLOW
    lower[HOF_CHANNEL][still] = ORIENTATIONS
    lower_weight[HOF_CHANNEL][still] = 1.0
    upper_weight[HOF_CHANNEL][still] = 0.0
    pixels = height * width
    lower_index = (np.multiply(lower, pixels, dtype=np.float64) + _first_bin_index(pixels)).astype(np.intp)
    upper_index = lower_index + pixels
    upper_index[lower >= ORIENTATIONS - 1] -= ORIENTATIONS * pixels  # cyclic; HOF's still pixels: bin 1, weight 0
    depth = sum(descriptor_bins().values())
    histogram = np.zeros(depth * pixels, np.float32)
    histogram[lower_index] = lower_weight
    histogram[upper_index] = upper_weight
    return histogram.reshape(depth, height, width)


def integral_histograms(histograms: np.ndarray) -> np.ndarray:
    """float32 [C, H, W] -> float32 [C, H+1, W+1] running sums (zero first row and column), accumulated in
    float as the release does."""
    channels, height, width = histograms.shape
    integral = np.empty((channels, height + 1, width + 1), np.float32)
    for channel, plane in zip(integral, histograms):
        cv2.integral(plane, channel, sdepth=cv2.CV_32F)
    return integral


def patch_corners(points: np.ndarray, height: int, width: int, patch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (x, y) int [P] of the patch around each rounded point, clamped inside the level."""
    x = np.clip(np.rint(points[:, 0]).astype(np.intp) - patch_size // 2, 0, max(width - patch_size, 0))
    y = np.clip(np.rint(points[:, 1]).astype(np.intp) - patch_size // 2, 0, max(height - patch_size, 0))
    return x, y


def point_descriptors(integral: np.ndarray, x: np.ndarray, y: np.ndarray, patch_size: int = 32,
                      cells: int = 2) -> np.ndarray:
    """One frame's HOG, HOF, MBHx, MBHy of each patch, concatenated: per type the cell histograms
    (cells x cells, x-major as the release) plus 0.05 after clipping at 0, L1-normalised, square-rooted.

    Args:
        integral: float32 [33, H+1, W+1]; x, y: int [P] patch corners.
    Returns:
        float32 [P, cells^2 x 33] (132 with 2 x 2 cells).
    """
    offsets = np.arange(cells + 1) * (patch_size // cells)
    corners = integral[:, (y[:, None] + offsets)[:, :, None], (x[:, None] + offsets)[:, None, :]]  # [C, P, c+1, c+1]
    sums = (corners[..., 1:, 1:] + corners[..., :-1, :-1]) - corners[..., 1:, :-1] - corners[..., :-1, 1:]
    cell_values = np.maximum(sums, 0).transpose(1, 3, 2, 0) + np.float32(CELL_EPSILON)  # [P, x, y, C]
    parts = []
    for start, bins in zip(_channel_offsets(), descriptor_bins().values()):
        part = cell_values[..., start:start + bins].reshape(len(x), -1)
        parts.append(np.sqrt(part / part.sum(axis=1, keepdims=True)))
    return np.concatenate(parts, axis=1)


def temporal_cells(per_frame: np.ndarray, cells: int = 3) -> np.ndarray:
    """float32 [P, L, D] per-frame descriptors -> float32 [P, cells * D]: means over consecutive groups of
    ``L // cells`` frames (a remainder at the end is dropped, as in the release)."""
    stride = per_frame.shape[1] // cells
    grouped = per_frame[:, :stride * cells].reshape(len(per_frame), cells, stride, per_frame.shape[2])
    return grouped.mean(axis=2, dtype=np.float32).reshape(len(per_frame), cells * per_frame.shape[2])
