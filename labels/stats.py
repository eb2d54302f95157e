"""Spatio-temporal statistics labels of one clip (Wang et al., CVPR 2019): pure numpy functions.

Motion statistics (14 labels) come from the optical flow of a clip, appearance statistics (13
labels) from its RGB frames; both are computed on the crop the network sees, over the regions of
:mod:`labels.regions`. All labels are 1-based integers; ties go to the lowest index.

The results equal the authors' implementation on ``stats_reference.npz`` exactly, with the flow
dequantized as float32 (``preprocess.flow_codec.dequantize``) or float64 alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from threadpoolctl import ThreadpoolController

from labels.regions import PATTERNS, RegionLayout, region_layout

N_MOTION = 14
N_APPEARANCE = 13
N_DIRECTIONS = 8
BIN_DEGREES = 360.0 / N_DIRECTIONS


@dataclass(frozen=True)
class MotionBoundaries:
    """Motion boundaries of the u and v flow components of one clip.

    Attributes:
        magnitude: float [2, S, S], magnitude of the summed boundary ``(Dx, Dy)`` of u (row 0) and v (row 1).
        angle: float [2, S, S], its direction in degrees, ``[0, 360)`` (``cv2.cartToPolar``).
        frame_energy: float64 [2, T], ``sum_pixels |(dx[t], dy[t])|`` per flow frame.
    """

    magnitude: np.ndarray
    angle: np.ndarray
    frame_energy: np.ndarray


def _padded_components(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Check u, v [T, S, S] and stack them into float [2, T, S+2, S+2] with each frame's edge repeated once
    (scipy's one-pixel 'reflect'); float32 unless float64 is given."""
    u, v = np.asarray(u), np.asarray(v)
    if u.ndim != 3 or u.shape != v.shape or u.shape[1] != u.shape[2] or u.shape[0] < 1:
        raise ValueError(f"u and v must both be [T, S, S] with T >= 1 square frames, got {u.shape} and {v.shape}")
    dtype = np.float64 if np.float64 in (u.dtype, v.dtype) else np.float32
    padded = np.empty((2, u.shape[0], u.shape[1] + 2, u.shape[2] + 2), dtype)
    padded[0, :, 1:-1, 1:-1] = u
    padded[1, :, 1:-1, 1:-1] = v
    padded[..., 0, 1:-1], padded[..., -1, 1:-1] = padded[..., 1, 1:-1], padded[..., -2, 1:-1]
    padded[..., :, 0], padded[..., :, -1] = padded[..., :, 1], padded[..., :, -2]
    return padded


_DIFFERENCE = np.array([1.0, 0.0, -1.0], dtype=np.float32)  # correlation kernel: c[x-1] - c[x+1]
_THREE_SUM = np.ones(3, dtype=np.float32)


def _stacked_derivatives(padded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dx, dy of every frame of edge-padded float [..., H+2, W+2], same shape; only the interior is meaningful."""
    frames_stacked = padded.reshape(-1, padded.shape[-1])  # frames one above the other; padding rows isolate them
    border = cv2.BORDER_REPLICATE | cv2.BORDER_ISOLATED
    kernels = {"x": (_DIFFERENCE, _THREE_SUM), "y": (_THREE_SUM, _DIFFERENCE)}
    dx, dy = (cv2.sepFilter2D(frames_stacked, -1, *kernels[axis], borderType=border).reshape(padded.shape)
              for axis in ("x", "y"))
    return dx, dy


def frame_derivatives(component: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame motion boundaries of flow components.

    Equal to ``scipy.ndimage.convolve(c, [[-1,0,1]]*3)`` (dx) and ``convolve(c, [[-1]*3,[0]*3,[1]*3])``
    (dy) of every frame with the default ``mode='reflect'``, i.e. ``dx = sum of 3 rows of (c[x-1] - c[x+1])``.

    Args:
        component: float32 or float64 [..., H, W].
    Returns:
        dx, dy: [..., H, W], same dtype.
    """
    pad = [(0, 0)] * (component.ndim - 2) + [(1, 1), (1, 1)]
    dx, dy = _stacked_derivatives(np.pad(component, pad, mode="edge"))  # one-pixel 'reflect' repeats the edge
    return dx[..., 1:-1, 1:-1], dy[..., 1:-1, 1:-1]


def clip_motion_boundaries(u: np.ndarray, v: np.ndarray) -> MotionBoundaries:
    """Summed motion boundaries and per-frame boundary energy of a clip's flow u, v (float [T, S, S])."""
    padded = _padded_components(u, v)
    size = padded.shape[-1] - 2
    dx_padded, dy_padded = _stacked_derivatives(padded)
    summed_x = dx_padded[..., 1:-1, 1:-1].sum(axis=1).reshape(2 * size, size)
    summed_y = dy_padded[..., 1:-1, 1:-1].sum(axis=1).reshape(2 * size, size)
    magnitude, angle = cv2.cartToPolar(summed_x, summed_y, angleInDegrees=True)
    stacked_shape = (-1, size + 2)
    frame_magnitude = cv2.magnitude(dx_padded.reshape(stacked_shape), dy_padded.reshape(stacked_shape))
    frame_energy = frame_magnitude.reshape(dx_padded.shape)[..., 1:-1, 1:-1].sum(axis=(2, 3), dtype=np.float64)
    return MotionBoundaries(magnitude.reshape(2, size, size), angle.reshape(2, size, size), frame_energy)


def region_sums(values: np.ndarray, layout: RegionLayout) -> np.ndarray:
    """Sum of ``values`` (float [S, S]) over each of the 28 regions -> float64 [28]."""
    part_sums = np.bincount(layout.part_of_pixel.ravel(), weights=values.ravel(),
                            minlength=layout.membership.shape[1])
    return layout.membership @ part_sums


def orientation_histogram(magnitude: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """8-bin histogram of boundary directions, bin k centred at 45k degrees, linearly interpolated.

    Args:
        magnitude, angle: float [n] (angle in degrees).
    Returns:
        float64 [8]; each value adds ``mag*(1-f)`` to bin ``floor(angle/45) % 8`` and ``mag*f`` to the next.
    """
    lower = np.floor(angle / BIN_DEGREES).astype(np.int64) % N_DIRECTIONS
    frac = np.mod(angle, BIN_DEGREES) / BIN_DEGREES
    return (np.bincount(lower, magnitude * (1 - frac), minlength=N_DIRECTIONS)
            + np.bincount((lower + 1) % N_DIRECTIONS, magnitude * frac, minlength=N_DIRECTIONS))


def _component_labels(magnitude: np.ndarray, angle: np.ndarray, layout: RegionLayout) -> dict[str, tuple[int, int]]:
    """(region, direction) label per pattern for one component's summed boundary [S, S]."""
    totals = region_sums(magnitude, layout)
    totals[layout.pattern_slice("rings")] /= layout.region_area[layout.pattern_slice("rings")]  # rings: mean
    flat_magnitude, flat_angle = magnitude.ravel(), angle.ravel()
    labels = {}
    for pattern in PATTERNS:
        region = int(np.argmax(totals[layout.pattern_slice(pattern)]))
        pixels = layout.region_pixels[layout.offsets[pattern] + region]
        histogram = orientation_histogram(flat_magnitude[pixels], flat_angle[pixels])
        labels[pattern] = (region + 1, int(np.argmax(histogram)) + 1)
    return labels


def motion_labels(boundaries: MotionBoundaries) -> np.ndarray:
    """The 14 motion statistics labels from precomputed :class:`MotionBoundaries` -> int64 [14]."""
    layout = region_layout(boundaries.magnitude.shape[-1])
    u_labels, v_labels = (_component_labels(boundaries.magnitude[k], boundaries.angle[k], layout) for k in (0, 1))
    vector = []
    for pattern in PATTERNS:
        vector += [*u_labels[pattern], *v_labels[pattern]]
    vector += [int(np.argmax(energy)) + 1 for energy in boundaries.frame_energy]
    return np.array(vector, dtype=np.int64)


def motion_statistics(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Motion statistics labels of one clip.

    Args:
        u, v: float [T, S, S] horizontal and vertical flow in px (the papers: T = 15, S = 112).
    Returns:
        int64 [14]: ``[u_p1_block, u_p1_dir, v_p1_block, v_p1_dir, u_p2_ring, u_p2_dir, v_p2_ring,
        v_p2_dir, u_p3_tri, u_p3_dir, v_p3_tri, v_p3_dir, u_global, v_global]``, all 1-based.
    """
    return motion_labels(clip_motion_boundaries(u, v))


@lru_cache(maxsize=1)
def _blas_threads() -> ThreadpoolController:
    """Controls numpy's BLAS thread pool: the small per-frame products below run 5x slower on a busy
    machine when BLAS spreads each over threads, so they run single-threaded."""
    return ThreadpoolController()


@lru_cache(maxsize=4)
def _part_image(size: int) -> np.ndarray:
    """uint8 [S, S]: the part each pixel lies in, as an 8-bit image for ``cv2.calcHist``."""
    part = region_layout(size).part_of_pixel
    if part.max() > 255:
        raise ValueError(f"{part.max() + 1} parts do not fit an 8-bit part image")
    image = part.astype(np.uint8)
    image.setflags(write=False)
    return image


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[3] != 3 or rgb.shape[1] != rgb.shape[2] or not len(rgb):
        raise ValueError(f"rgb must be uint8 [T, S, S, 3] with T >= 1 square frames, got {rgb.dtype} {rgb.shape}")
    return rgb


def colour_consistency(rgb: np.ndarray) -> np.ndarray:
    """Colour consistency of each region over the frames of a clip.

    Per channel, ``IoU_c = sum_bins min_t h_t / sum_bins max_t h_t`` of the region's 256-bin
    histograms ``h_t`` in each frame; the score is the mean over the three channels.

    Args:
        rgb: uint8 [T, S, S, 3].
    Returns:
        float64 [28] in (0, 1], regions in :class:`labels.regions.RegionLayout` order.
    """
    rgb = np.ascontiguousarray(_check_rgb(rgb))
    layout = region_layout(rgb.shape[1])
    parts = _part_image(rgb.shape[1])
    membership = layout.membership.astype(np.float32)
    n_parts = membership.shape[1]
    lowest = highest = None
    with _blas_threads().limit(limits=1, user_api="blas"):
        for frame in rgb:  # one frame at a time keeps the histograms in cache
            # [parts, 3*256] histograms of each (part, channel): OpenCV's 2-D histogram of (part, channel value)
            part_counts = np.concatenate([
                cv2.calcHist([parts, frame], [0, 1 + c], None, [n_parts, 256], [0, n_parts, 0, 256]) for c in range(3)
            ], axis=1)
            counts = membership @ part_counts  # [28, 3*256]; exact: counts stay below 2**24
            if lowest is None:
                lowest, highest = counts, counts.copy()
            else:
                np.minimum(lowest, counts, out=lowest)
                np.maximum(highest, counts, out=highest)
    intersection = lowest.reshape(-1, 3, 256).sum(axis=2, dtype=np.float64)
    union = highest.reshape(-1, 3, 256).sum(axis=2, dtype=np.float64)
    ratio = intersection / union
    return (ratio[:, 0] + ratio[:, 1] + ratio[:, 2]) / 3


def colour_keys(rgb: np.ndarray) -> np.ndarray:
    """uint8 [T, S, S, 3] RGB -> uint32 [T, S, S] keys ``B*65536 + G*256 + R`` (plus a constant ``255 << 24``).

    The constant alpha byte keeps the order of keys; :func:`colour_octant` ignores it.
    """
    n_frames, size = rgb.shape[:2]
    rgba = cv2.cvtColor(np.ascontiguousarray(rgb).reshape(n_frames * size, size, 3), cv2.COLOR_RGB2RGBA)
    return rgba.view("<u4").reshape(n_frames, size, size)


def most_frequent_key(keys: np.ndarray) -> int:
    """Most frequent value of a non-empty integer array; ties go to the smallest value."""
    ordered = np.sort(keys, axis=None)
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    counts = np.diff(np.append(starts, ordered.size))
    return int(ordered[starts[np.argmax(counts)]])


def colour_octant(key: int) -> int:
    """Colour key ``B*65536 + G*256 + R`` -> octant label 1..8
    (1 blue, 2 cyan, 3 magenta, 4 white, 5 black, 6 green, 7 red, 8 yellow)."""
    red, green, blue = key & 255, (key >> 8) & 255, (key >> 16) & 255
    return 1 + 4 * int(blue < 128) + 2 * int(red >= 128) + int(green >= 128)


def appearance_statistics(rgb: np.ndarray) -> np.ndarray:
    """Appearance statistics labels of one clip.

    Args:
        rgb: uint8 [T, S, S, 3] RGB frames (the papers: T = 16, S = 112).
    Returns:
        int64 [13]: ``[p1_div_block, p1_div_col, p1_con_block, p1_con_col, p2_div_ring, p2_div_col,
        p2_con_ring, p2_con_col, p3_div_tri, p3_div_col, p3_con_tri, p3_con_col, global_col]``, 1-based;
        "div" is the region of lowest colour consistency, "con" the highest, "col" its dominant colour octant.
    """
    scores = colour_consistency(rgb)
    layout = region_layout(rgb.shape[1])
    keys = colour_keys(rgb).reshape(rgb.shape[0], -1)
    octants: dict[int, int] = {}

    def dominant_octant(region: int) -> int:
        if region not in octants:
            octants[region] = colour_octant(most_frequent_key(keys[:, layout.region_pixels[region]]))
        return octants[region]

    vector = []
    for pattern in PATTERNS:
        offset = layout.offsets[pattern]
        pattern_scores = scores[layout.pattern_slice(pattern)]
        for region in (int(np.argmin(pattern_scores)), int(np.argmax(pattern_scores))):
            vector += [region + 1, dominant_octant(offset + region)]
    vector.append(colour_octant(most_frequent_key(keys)))
    return np.array(vector, dtype=np.int64)
