"""HOG, HOF and MBH as in the release (``Descriptors.h``): per-pixel orientation histograms (8 bins over 360
degrees, magnitude split linearly between the two nearest bins; HOF adds a zero-motion bin), integral
histograms per frame and level, and per-point descriptors read from them for all points at once."""
from __future__ import annotations

import cv2
import numpy as np

from labels.idt.parameters import CELL_EPSILON, MIN_FLOW


def orientation_histograms(x: np.ndarray, y: np.ndarray, bins: int = 8, zero_bin: bool = False) -> np.ndarray:
    """Per-pixel histogram of the vector field (x, y), float32 [H, W] each -> float32 [H, W, bins (+1)].

    The angle (``cv2.cartToPolar``, degrees) falls between bins ``floor(a bins / 360)`` and the next one
    (cyclic); the magnitude is split between them linearly. With ``zero_bin`` vectors of magnitude <= 0.4
    put weight 1 into the extra last bin instead.
    """
    magnitude, angle = cv2.cartToPolar(x, y, angleInDegrees=True)
    angle = np.where(angle >= 360.0, angle - 360.0, angle)
    position = angle * np.float32(bins / 360.0)
    lower = np.floor(position)
    upper_weight = (position - lower) * magnitude
    lower_weight = magnitude - upper_weight
    lower = lower.astype(np.intp)
    upper = (lower + 1) % bins
    depth = bins + 1 if zero_bin else bins
    if zero_bin:
        still = magnitude <= MIN_FLOW
        lower = np.where(still, bins, lower)
        lower_weight = np.where(still, np.float32(1.0), lower_weight)
        upper_weight = np.where(still, np.float32(0.0), upper_weight)
    histogram = np.zeros(x.shape + (depth,), np.float32)
    flat = histogram.reshape(-1)
    base = np.arange(x.size, dtype=np.intp) * depth
    flat[base + lower.ravel()] = lower_weight.ravel()
    flat[base + upper.ravel()] += upper_weight.ravel()
    return histogram


def integral_histogram(histogram: np.ndarray) -> np.ndarray:
    """float32 [H, W, B] -> float32 [H+1, W+1, B] running sums (zero first row and column), as the release
    accumulates them in float."""
    return cv2.integral(histogram, sdepth=cv2.CV_32F).reshape(histogram.shape[0] + 1, histogram.shape[1] + 1, -1)


def gradients(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[-1, 0, 1] derivatives in x and y (``Sobel`` aperture 1, border reflect-101), float32 [H, W] each."""
    return cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=1), cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=1)


def frame_integrals(grey: np.ndarray, warped_flow: np.ndarray) -> dict[str, np.ndarray]:
    """Integral histograms of one level and frame: HOG of the grey level uint8 [H, W], HOF of the warped flow
    float32 [H, W, 2], MBHx / MBHy of the gradients of its u / v. Values float32 [H+1, W+1, B]."""
    u, v = np.ascontiguousarray(warped_flow[..., 0]), np.ascontiguousarray(warped_flow[..., 1])
    return {"hog": integral_histogram(orientation_histograms(*gradients(grey))),
            "hof": integral_histogram(orientation_histograms(u, v, zero_bin=True)),
            "mbhx": integral_histogram(orientation_histograms(*gradients(u))),
            "mbhy": integral_histogram(orientation_histograms(*gradients(v)))}


def patch_corners(points: np.ndarray, height: int, width: int, patch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (x, y) int [P] of the patch around each rounded point, clamped inside the level."""
    x = np.clip(np.rint(points[:, 0]).astype(np.intp) - patch_size // 2, 0, max(width - patch_size, 0))
    y = np.clip(np.rint(points[:, 1]).astype(np.intp) - patch_size // 2, 0, max(height - patch_size, 0))
    return x, y


def point_descriptors(integral: np.ndarray, x: np.ndarray, y: np.ndarray, patch_size: int = 32,
                      cells: int = 2) -> np.ndarray:
    """One frame's descriptor of each patch: cell histograms (cells x cells, x-major as the release),
    ``max(sum, 0) + 0.05``, L1-normalised, square-rooted.

    Args:
        integral: float32 [H+1, W+1, B]; x, y: int [P] patch corners.
    Returns:
        float32 [P, cells * cells * B].
    """
    offsets = np.arange(cells + 1) * (patch_size // cells)
    corners = integral[(y[:, None] + offsets)[:, :, None], (x[:, None] + offsets)[:, None, :]]  # [P, c+1, c+1, B]
    sums = (corners[:, 1:, 1:] + corners[:, :-1, :-1]) - corners[:, 1:, :-1] - corners[:, :-1, 1:]
    cell_values = np.maximum(sums, 0).transpose(0, 2, 1, 3).reshape(len(x), -1) + np.float32(CELL_EPSILON)
    return np.sqrt(cell_values / cell_values.sum(axis=1, keepdims=True))


def temporal_cells(per_frame: np.ndarray, cells: int = 3) -> np.ndarray:
    """float32 [P, L, D] per-frame descriptors -> float32 [P, cells * D]: means over consecutive groups of
    ``L // cells`` frames (a remainder at the end is dropped, as in the release)."""
    stride = per_frame.shape[1] // cells
    grouped = per_frame[:, :stride * cells].reshape(len(per_frame), cells, stride, per_frame.shape[2])
    return grouped.mean(axis=2, dtype=np.float32).reshape(len(per_frame), cells * per_frame.shape[2])
