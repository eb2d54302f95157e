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
        float32 [5, H, W]: (r_y, r_x, r_yy, r_xx, r_xy) of ``f ~ r1 + r_x x + r_y y + r_xx x^2 + r_yy y^2 + r_xy xy``.
    """
    g, xg, xxg, (ig11, ig03, ig33, ig55) = _expansion_kernels(n, float(sigma))
    border = cv2.BORDER_REPLICATE
    rows = cv2.merge([cv2.sepFilter2D(image, cv2.CV_32F, _ONE, kernel, borderType=border)
                      for kernel in (g, xg, xxg)])  # vertical sums: (1, y, y^2)
    b1, b3, b5 = cv2.split(cv2.sepFilter2D(rows, cv2.CV_32F, g, _ONE, borderType=border))
    b2, b6 = cv2.split(cv2.sepFilter2D(rows[..., :2], cv2.CV_32F, xg, _ONE, borderType=border))
    b4 = cv2.sepFilter2D(rows[..., 0], cv2.CV_32F, xxg, _ONE, borderType=border)
    out = np.empty((5,) + image.shape, np.float32)
    np.multiply(b3, np.float32(ig11), out=out[0])
    np.multiply(b2, np.float32(ig11), out=out[1])
    constant = b1 * np.float32(ig03)
    np.add(constant, b5 * np.float32(ig33), out=out[2])
    np.add(constant, b4 * np.float32(ig33), out=out[3])
    np.multiply(b6, np.float32(ig55), out=out[4])
    return out


def expansion_pyramid(grey: np.ndarray, scales: list[float], sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Polynomial expansion of every level: the full frame blurred (sigma = (scale - 1) / 2) and resized.

    Args:
        grey: uint8 or float32 [H, W]; scales, sizes: from :func:`labels.idt.pyramid.pyramid_scales`.
    Returns:
        one float32 [5, h_k, w_k] per level.
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
    """float32 [H, W]: the release's damping of the 5 outer rows and columns."""
    def ramp(size: int) -> np.ndarray:
        weights = np.ones(size, np.float32)
        edge = min(5, size)
        weights[:edge] *= _BORDER_WEIGHTS[:edge]
        weights[size - edge:] *= _BORDER_WEIGHTS[:edge][::-1]
        return weights
    return ramp(height)[:, None] * ramp(width)[None, :]


@lru_cache(maxsize=32)
def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[:height, :width]
    return xs.astype(np.float32), ys.astype(np.float32)


def _interleaved(expansion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 [5, H, W] -> ([H, W, 4], [H, W]) contiguous, the channel layouts ``cv2.remap`` takes."""
    return cv2.merge(list(expansion[:4])), expansion[4]


def update_matrices(r0: np.ndarray, r1: np.ndarray, flow: np.ndarray,
                    r1_interleaved: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Per-pixel normal equations of the displacement given the current flow (``FarnebackUpdateMatrices``).

    The second expansion is sampled bilinearly at ``p + flow`` by ``cv2.remap`` (weights in 1/32 px steps;
    the release interpolates in float) and counts only where the 2x2 neighbourhood lies inside the level.

    Args:
        r0, r1: float32 [5, H, W] expansions of the first and second frame; flow: float32 [2, H, W] (dx, dy).
        r1_interleaved: ``_interleaved(r1)`` when the caller already has it.
    Returns:
        float32 [5, H, W]: (G11, G12, G22, h1, h2).
    """
    height, width = flow.shape[1:]
    xs, ys = _pixel_grid(height, width)
    dx, dy = flow
    fx, fy = xs + dx, ys + dy
    inside = (fx >= 0) & (fx < width - 1) & (fy >= 0) & (fy < height - 1)  # i.e. 0 <= floor(f) < size - 1
    four, last = r1_interleaved if r1_interleaved is not None else _interleaved(r1)
    border = cv2.BORDER_REPLICATE
    sampled = cv2.remap(four, fx, fy, cv2.INTER_LINEAR, borderMode=border)
    sampled_xy = cv2.remap(last, fx, fy, cv2.INTER_LINEAR, borderMode=border)
    inside = inside.astype(np.float32)
    sampled *= inside[..., None]
    sampled_xy *= inside
    half = np.float32(1.0) - np.float32(0.5) * inside
    scale = _border_scale(height, width)
    r4 = (r0[2] + sampled[..., 2]) * half
    r5 = (r0[3] + sampled[..., 3]) * half
    r6 = (r0[4] + sampled_xy) * (half * np.float32(0.5))
    r2 = ((r0[0] - sampled[..., 0]) * np.float32(0.5) + r4 * dy + r6 * dx) * scale
    r3 = ((r0[1] - sampled[..., 1]) * np.float32(0.5) + r6 * dy + r5 * dx) * scale
    r4 *= scale
    r5 *= scale
    r6 *= scale
    out = np.empty_like(r0)
    np.multiply(r4, r4, out=out[0])
    out[0] += r6 * r6
    np.multiply(r4 + r5, r6, out=out[1])
    np.multiply(r5, r5, out=out[2])
    out[2] += r6 * r6
    np.multiply(r4, r2, out=out[3])
    out[3] += r6 * r3
    np.multiply(r6, r2, out=out[4])
    out[4] += r5 * r3
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
    """Flow from Gaussian-window sums of the normal equations: float32 [5, H, W] -> float32 [2, H, W] (dx, dy)."""
    kernel = _window_kernel(window)
    g11, g12, g22, h1, h2 = (cv2.sepFilter2D(channel, cv2.CV_32F, kernel, kernel, borderType=cv2.BORDER_REPLICATE)
                             for channel in matrices)
    inverse_det = np.float32(1.0) / (g11 * g22 - g12 * g12 + np.float32(1e-3))
    flow = np.empty((2,) + matrices.shape[1:], np.float32)
    np.multiply(g11 * h2 - g12 * h1, inverse_det, out=flow[0])
    np.multiply(g22 * h1 - g12 * h2, inverse_det, out=flow[1])
    return flow


def level_flow(r0: np.ndarray, r1: np.ndarray, flow: np.ndarray, window: int = WINDOW,
               iterations: int = ITERATIONS) -> np.ndarray:
    """Refine an initial flow float32 [2, H, W] on one level, then median-filter it (5x5 per component)."""
    r1_interleaved = _interleaved(r1)
    matrices = update_matrices(r0, r1, flow, r1_interleaved)
    for iteration in range(iterations):
        flow = solve_flow(matrices, window)
        if iteration < iterations - 1:
            matrices = update_matrices(r0, r1, flow, r1_interleaved)
    return np.stack([cv2.medianBlur(component, MEDIAN_SIZE) for component in flow])


def pyramid_flow(first: list[np.ndarray], second: list[np.ndarray], window: int = WINDOW,
                 iterations: int = ITERATIONS) -> list[np.ndarray]:
    """Coarse-to-fine flow from the expansion pyramids of two frames (level 0 = full size).

    Each level starts from the bilinear resize of the coarser level's (median-filtered) flow times sqrt(2).
    Returns one float32 [h_k, w_k, 2] (dx, dy) per level, finest first.
    """
    flows: list[np.ndarray] = [None] * len(first)  # type: ignore[list-item]
    previous = None
    for level in range(len(first) - 1, -1, -1):
        height, width = first[level].shape[1:]
        if previous is None:
            initial = np.zeros((2, height, width), np.float32)
        else:
            initial = np.stack([cv2.resize(component, (width, height), interpolation=cv2.INTER_LINEAR)
                                for component in previous])
            initial *= np.float32(SCALE_STRIDE)
        previous = level_flow(first[level], second[level], initial, window, iterations)
        flows[level] = cv2.merge(list(previous))
    return flows
