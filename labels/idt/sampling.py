"""Dense sampling of new feature points (``DenseSample``): the centre of every W x W grid cell whose
minimal eigenvalue is high enough and which holds no tracked point yet."""
from __future__ import annotations

import cv2
import numpy as np


def dense_sample(grey: np.ndarray, tracked: np.ndarray, stride: int = 5, quality: float = 0.001) -> np.ndarray:
    """New points on one pyramid level.

    Args:
        grey: uint8 [H, W] level; tracked: float [P, 2] (x, y) current positions of the live tracks.
        stride: grid step W; quality: threshold as a fraction of the level's largest ``cornerMinEigenVal``
            (block 3, aperture 3).
    Returns:
        float32 [N, 2] (x, y) = (j W + W // 2, i W + W // 2), row-major over the cells (i, j).
    """
    rows, columns = grey.shape[0] // stride, grey.shape[1] // stride
    eigen = cv2.cornerMinEigenVal(grey, 3, 3)
    threshold = float(eigen.max()) * quality
    offset = stride // 2
    centres = eigen[offset:rows * stride:stride, offset:columns * stride:stride]
    free = centres > threshold
    if len(tracked):
        cell = np.floor(np.asarray(tracked, np.float32)).astype(np.intp)
        inside = (cell[:, 0] < columns * stride) & (cell[:, 1] < rows * stride)
        cell = cell[inside] // stride
        free[cell[:, 1], cell[:, 0]] = False
    i, j = np.nonzero(free)
    return np.stack([j * stride + offset, i * stride + offset], axis=1).astype(np.float32)
