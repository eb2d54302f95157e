"""The release's own Farneback optical flow (``OpticalFlow.h``): polynomial expansion of every pyramid level
from the blurred full-resolution frame, coarse-to-fine flow with a Gaussian-window solve and a 5x5 median
filter of the flow on every level. Pure functions, float32 arrays, OpenCV filters.

The polynomial expansion is stored as the release stores it: channels (r_y, r_x, r_yy, r_xx, r_xy).
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from labels.idt.parameters import SCALE_STRIDE

POLY_N = 7
POLY_SIGMA = 1.5
WINDOW = 10
ITERATIONS = 2
MEDIAN_SIZE = 5
_BORDER_WEIGHTS = np.array([0.14, 0.14, 0.4472, 0.4472, 0.4472], dtype=np.float32)
_ONE = np.ones(1, dtype=np.float32)


@lru_cache(maxsize=8)
def _expansion_kernels(n: int, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, ...]]:
    """Gaussian g, x*g, x*x*g (float32 [2n+1]) and the entries (ig11, ig03, ig33, ig55) of the inverse
    of the 6x6 normal-equation matrix of the weighted quadratic fit."""
    x = np.arange(-n, n + 1, dtype=np.float64)
    g = np.exp(-x * x / (2 * sigma * sigma)).astype(np.float32).astype(np.float64)
    g = (g / g.sum()).astype(np.float32)
    xg, xxg = (x * g).astype(np.float32), (x * x * g).astype(np.float32)
    gg = np.outer(g, g).astype(np.float64)
    xx, yy = np.meshgrid(x, x)
    gram = np.zeros((6, 6))
    gram[0, 0] = gg.sum()
    gram[1, 1] = (gg * xx ** 2).sum()
    gram[3, 3] = (gg * xx ** 4).sum()
    gram[5, 5] = (gg * xx ** 2 * yy ** 2).sum()
    gram[2, 2] = gram[0, 3] = gram[0, 4] = gram[3, 0] = gram[4, 0] = gram[1, 1]
    gram[4, 4] = gram[3, 3]
    gram[3, 4] = gram[4, 3] = gram[5, 5]
    inverse = np.linalg.inv(gram)
    return g, xg, xxg, (inverse[1, 1], inverse[0, 3], inverse[3, 3], inverse[5, 5])


def polynomial_expansion(image: np.ndarray, n: int = POLY_N, sigma: float = POLY_SIGMA) -> np.ndarray:
    """Quadratic fit of a Gaussian-weighted (2n+1)^2 neighbourhood at every pixel, edges replicated.

    Args:
        image: float32 [H, W].
    Returns:
        float32 [H, W, 5]: (r_y, r_x, r_yy, r_xx, r_xy) of ``f ~ r1 + r_x x + r_y y + r_xx x^2 + r_yy y^2 + r_xy xy``.
    """
    g, xg, xxg, (ig11, ig03, ig33, ig55) = _expansion_kernels(n, float(sigma))
    border = cv2.BORDER_REPLICATE
    rows = np.dstack([cv2.sepFilter2D(image, cv2.CV_32F, _ONE, kernel, borderType=border)
                      for kernel in (g, xg, xxg)])  # vertical sums: (1, y, y^2)
    b1, b3, b5 = cv2.sepFilter2D(rows, cv2.CV_32F, g, _ONE, borderType=border).transpose(2, 0, 1)
    b2, b6 = cv2.sepFilter2D(rows[..., :2], cv2.CV_32F, xg, _ONE, borderType=border).transpose(2, 0, 1)
    b4 = cv2.sepFilter2D(rows[..., 0], cv2.CV_32F, xxg, _ONE, borderType=border)
    out = np.empty(image.shape + (5,), np.float32)
    out[..., 0] = b3 * np.float32(ig11)
    out[..., 1] = b2 * np.float32(ig11)
    constant = b1 * np.float32(ig03)
    out[..., 2] = constant + b5 * np.float32(ig33)
    out[..., 3] = constant + b4 * np.float32(ig33)
    out[..., 4] = b6 * np.float32(ig55)
    return out


def expansion_pyramid(grey: np.ndarray, scales: list[float], sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Polynomial expansion of every level: the full frame blurred (sigma = (scale - 1) / 2) and resized.

    Args:
        grey: uint8 or float32 [H, W]; scales, sizes: from :func:`labels.idt.pyramid.pyramid_scales`.
    Returns:
        one float32 [h_k, w_k, 5] per level.
    """
    image = grey.astype(np.float32)
    levels = []
    for scale, (height, width) in zip(scales, sizes):
        sigma = (scale - 1) * 0.5
        ksize = max(int(np.rint(sigma * 5)) | 1, 3)
        blurred = cv2.GaussianBlur(image, (ksize, ksize), sigma, sigma)
        levels.append(polynomial_expansion(cv2.resize(blurred, (width, height), interpolation=cv2.INTER_LINEAR)))
    return levels


@lru_cache(maxsize=32)
def _border_scale(height: int, width: int) -> np.ndarray:
    """float32 [H, W, 1]: the release's damping of the 5 outer rows and columns."""
    def ramp(size: int) -> np.ndarray:
        weights = np.ones(size, np.float32)
        edge = min(5, size)
        weights[:edge] *= _BORDER_WEIGHTS[:edge]
        weights[size - edge:] *= _BORDER_WEIGHTS[:edge][::-1]
        return weights
    return (ramp(height)[:, None] * ramp(width)[None, :])[..., None]


@lru_cache(maxsize=32)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[:height, :width]
    return xs.astype(np.float32), ys.astype(np.float32)


def update_matrices(r0: np.ndarray, r1: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Per-pixel normal equations of the displacement given the current flow (``FarnebackUpdateMatrices``).

    Args:
        r0, r1: float32 [H, W, 5] expansions of the first and second frame; flow: float32 [H, W, 2] (dx, dy).
    Returns:
        float32 [H, W, 5]: (G11, G12, G22, h1, h2).
    """
    height, width = flow.shape[:2]
    xs, ys = _pixel_grid(height, width)
    dx, dy = flow[..., 0], flow[..., 1]
    fx, fy = xs + dx, ys + dy
    x1, y1 = np.floor(fx), np.floor(fy)
    fx -= x1
    fy -= y1
    inside = (x1 >= 0) & (x1 < width - 1) & (y1 >= 0) & (y1 < height - 1)
    base = (np.where(inside, y1, 0) * width + np.where(inside, x1, 0)).astype(np.intp).ravel()
    flat = r1.reshape(-1, 5)
    fx, fy = fx.ravel()[:, None], fy.ravel()[:, None]
    sampled = (((1 - fx) * (1 - fy)) * flat[base] + (fx * (1 - fy)) * flat[base + 1]
               + ((1 - fx) * fy) * flat[base + width] + (fx * fy) * flat[base + width + 1])
    sampled = np.where(inside.ravel()[:, None], sampled, 0).reshape(height, width, 5)
    half = np.where(inside, np.float32(0.5), np.float32(1.0))
    r = np.empty_like(r0)
    r[..., 2] = (r0[..., 2] + sampled[..., 2]) * half
    r[..., 3] = (r0[..., 3] + sampled[..., 3]) * half
    r[..., 4] = (r0[..., 4] + sampled[..., 4]) * (half * np.float32(0.5))
    r2 = (r0[..., 0] - sampled[..., 0]) * np.float32(0.5) + r[..., 2] * dy + r[..., 4] * dx
    r3 = (r0[..., 1] - sampled[..., 1]) * np.float32(0.5) + r[..., 4] * dy + r[..., 3] * dx
    r[..., 0], r[..., 1] = r2, r3
    r *= _border_scale(height, width)
    r2, r3, r4, r5, r6 = r.transpose(2, 0, 1)
    out = np.empty_like(r0)
    out[..., 0] = r4 * r4 + r6 * r6
    out[..., 1] = (r4 + r5) * r6
    out[..., 2] = r5 * r5 + r6 * r6
    out[..., 3] = r4 * r2 + r6 * r3
    out[..., 4] = r6 * r2 + r5 * r3
    return out


@lru_cache(maxsize=8)
def _window_kernel(window: int) -> np.ndarray:
    half = window // 2
    sigma = half * 0.3
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    kernel = np.exp(-offsets ** 2 / (2 * sigma * sigma)).astype(np.float32).astype(np.float64)
    kernel[half] = 1.0
    return (kernel / kernel.sum()).astype(np.float32)


def solve_flow(matrices: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """Flow from Gaussian-window sums of the normal equations: float32 [H, W, 5] -> float32 [H, W, 2] (dx, dy)."""
    kernel = _window_kernel(window)
    summed = cv2.sepFilter2D(matrices, cv2.CV_32F, kernel, kernel, borderType=cv2.BORDER_REPLICATE)
    g11, g12, g22, h1, h2 = summed.astype(np.float64).transpose(2, 0, 1)
    inverse_det = 1.0 / (g11 * g22 - g12 * g12 + 1e-3)
    flow = np.empty(matrices.shape[:2] + (2,), np.float32)
    flow[..., 0] = (g11 * h2 - g12 * h1) * inverse_det
    flow[..., 1] = (g22 * h1 - g12 * h2) * inverse_det
    return flow


def level_flow(r0: np.ndarray, r1: np.ndarray, flow: np.ndarray, window: int = WINDOW,
               iterations: int = ITERATIONS) -> np.ndarray:
    """Refine an initial flow float32 [H, W, 2] on one level, then median-filter it (5x5 per component)."""
    matrices = update_matrices(r0, r1, flow)
    for iteration in range(iterations):
        flow = solve_flow(matrices, window)
        if iteration < iterations - 1:
            matrices = update_matrices(r0, r1, flow)
    return cv2.medianBlur(flow, MEDIAN_SIZE)


def pyramid_flow(first: list[np.ndarray], second: list[np.ndarray], window: int = WINDOW,
                 iterations: int = ITERATIONS) -> list[np.ndarray]:
    """Coarse-to-fine flow from the expansion pyramids of two frames (level 0 = full size).

    Each level starts from the bilinear resize of the coarser level's (median-filtered) flow times sqrt(2).
    Returns one float32 [h_k, w_k, 2] (dx, dy) per level, finest first.
    """
    flows: list[np.ndarray] = [None] * len(first)  # type: ignore[list-item]
    previous = None
    for level in range(len(first) - 1, -1, -1):
        height, width = first[level].shape[:2]
        if previous is None:
            initial = np.zeros((height, width, 2), np.float32)
        else:
            initial = cv2.resize(previous, (width, height), interpolation=cv2.INTER_LINEAR)
            initial *= np.float32(SCALE_STRIDE)
        previous = flows[level] = level_flow(first[level], second[level], initial, window, iterations)
    return flows
