"""Readers of the flow ground truth in ../shared/data/flow_gt, shared by the flow tests."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

FLO_MAGIC = 202021.25


def read_flo(path: Path) -> np.ndarray:
    """Middlebury .flo -> float32 [H, W, 2] (u, v)."""
    raw = path.read_bytes()
    magic = np.frombuffer(raw, np.float32, 1)[0]
    assert magic == np.float32(FLO_MAGIC), f"{path}: not a .flo file"
    w, h = np.frombuffer(raw, np.int32, 2, offset=4)
    return np.frombuffer(raw, np.float32, 2 * w * h, offset=12).reshape(h, w, 2)


def shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` downscaled by an integer ``factor`` (area interpolation)."""
    h, w = image.shape[:2]
    return cv2.resize(image, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


def gray(path: Path, factor: int = 1) -> np.ndarray:
    """The image at ``path`` as uint8 gray, downscaled by ``factor``."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert image is not None, path
    return shrink(image, factor) if factor > 1 else image
