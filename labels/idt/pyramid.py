"""The release's spatial pyramid: scales sqrt(2) apart while the short side stays >= the patch size, and the
grey pyramid each scale is tracked on (each level resized from the one above)."""
from __future__ import annotations

import cv2
import numpy as np

from labels.idt.parameters import SCALE_STRIDE


def pyramid_scales(height: int, width: int, patch_size: int = 32, max_scales: int = 8
                   ) -> tuple[list[float], list[tuple[int, int]]]:
    """Scale factors (float32 arithmetic as in the release) and level sizes (height, width).

    A level is kept while ``min(height, width) / scale >= patch_size``; at least one level.
    """
    stride = np.float32(SCALE_STRIDE)
    min_size, levels = np.float32(min(height, width)), 0
    while min_size >= patch_size:
        min_size = np.float32(min_size / stride)
        levels += 1
    levels = min(max_scales, max(levels, 1))
    scales = [np.float32(1.0)]
    for _ in range(1, levels):
        scales.append(np.float32(scales[-1] * stride))
    sizes = [(int(np.rint(height / s)), int(np.rint(width / s))) for s in scales]
    return [float(s) for s in scales], sizes


def grey_pyramid(grey: np.ndarray, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """uint8 [H, W] -> one uint8 [h_k, w_k] image per level; level k is the bilinear resize of level k-1."""
    levels = [grey]
    for height, width in sizes[1:]:
        levels.append(cv2.resize(levels[-1], (width, height), interpolation=cv2.INTER_LINEAR))
    return levels
