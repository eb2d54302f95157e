"""A picture of tracked trajectories (``show-labels --task idt``), drawn like the release's ``DrawTrack``:
each track a polyline from dark to bright green, a red dot at its last position."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def draw_tracks(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Draw tracks float [N, L+1, 2] (x, y in frame pixels) on a copy of a BGR frame uint8 [H, W, 3]."""
    image = frame.copy()
    steps = points.shape[1] - 1
    for step in range(steps):
        green = int(np.floor(255.0 * (step + 2) / (steps + 1)))
        for (x0, y0), (x1, y1) in zip(points[:, step], points[:, step + 1]):
            cv2.line(image, (int(round(x0)), int(round(y0))), (int(round(x1)), int(round(y1))), (0, green, 0), 1,
                     cv2.LINE_AA)
    for x, y in points[:, -1]:
        cv2.circle(image, (int(round(x)), int(round(y))), 2, (0, 0, 255), -1, cv2.LINE_AA)
    return image


def draw_trajectories(frames: np.ndarray, frame_numbers: Sequence[int], frame_end: np.ndarray, points: np.ndarray,
                      columns: int = 4) -> np.ndarray:
    """Montage of clip frames, each with the trajectories that end on it.

    Args:
        frames: uint8 [K, H, W, 3] BGR frames; frame_numbers: their K indices in the video.
        frame_end: int or float [N], column 0 of the rows; points: float [N, L+1, 2] from ``with_points``.
        columns: frames per montage row.
    Returns:
        uint8 [rows * H, columns * W, 3] BGR image (unused tiles black).
    """
    count, height, width = frames.shape[:3]
    if len(frame_numbers) != count:
        raise ValueError(f"{count} frames but {len(frame_numbers)} frame numbers")
    grid_rows = -(-count // columns)
    montage = np.zeros((grid_rows * height, columns * width, 3), np.uint8)
    for index, (frame, number) in enumerate(zip(frames, frame_numbers)):
        row, column = divmod(index, columns)
        montage[row * height:(row + 1) * height, column * width:(column + 1) * width] = \
            draw_tracks(frame, points[np.asarray(frame_end) == number])
    return montage
