"""Synthetic demo videos: a textured shape over a textured background, moving in a class-dependent way.

Classes: ``move_right``, ``move_down``, ``rotate``, ``zoom`` (speed, shape position and textures vary per
video). Written as MJPG ``.avi`` files in class folders with UCF101-style ``trainlist01.txt`` /
``testlist01.txt`` / ``classInd.txt``, so ``extract-flow OUT_DIR ...`` reads them like UCF101.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CLASSES = ("move_right", "move_down", "rotate", "zoom")


def texture(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Smooth random colour texture, uint8 [height, width, 3] (noise blurred at ``scale`` px)."""
    noise = rng.random((height, width, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), scale)
    smooth -= smooth.min(axis=(0, 1))
    smooth /= smooth.max(axis=(0, 1)) + 1e-6
    return (smooth * 255).astype(np.uint8)


def _warp(kind: str, progress: float, amount: float, size: tuple[int, int], center: tuple[float, float]) -> np.ndarray:
    """2x3 affine map of the shape at ``progress`` 0..1 through the clip; ``amount`` ~1 scales the motion:
    translation by 0.55 of the frame, rotation by 180 degrees, zoom to 2.5x over the whole clip."""
    h, w = size
    if kind == "move_right":
        return np.float32([[1, 0, 0.55 * w * amount * progress], [0, 1, 0]])
    if kind == "move_down":
        return np.float32([[1, 0, 0], [0, 1, 0.55 * h * amount * progress]])
    if kind == "rotate":
        return cv2.getRotationMatrix2D(center, 180.0 * amount * progress, 1.0).astype(np.float32)
    if kind == "zoom":
        return cv2.getRotationMatrix2D(center, 0.0, 1.0 + 1.5 * amount * progress).astype(np.float32)
    raise ValueError(f"unknown demo class {kind!r} (known: {', '.join(CLASSES)})")


def render_clip(kind: str, rng: np.random.Generator, n_frames: int = 48, size: tuple[int, int] = (128, 170)) -> np.ndarray:
    """One clip of class ``kind``: RGB uint8 [n_frames, h, w, 3]."""
    h, w = size
    background = texture(rng, h, w, 4.0)
    sprite = texture(rng, h, w, 2.5)
    start_x = (0.15, 0.2) if kind == "move_right" else (0.4, 0.6)  # leave room for the motion
    start_y = (0.15, 0.2) if kind == "move_down" else (0.4, 0.6)
    cy, cx = rng.uniform(*start_y) * h, rng.uniform(*start_x) * w
    radius = rng.uniform(0.16, 0.22) * min(h, w)
    mask = np.zeros((h, w), np.float32)
    if rng.random() < 0.5:
        cv2.circle(mask, (int(cx), int(cy)), int(radius), 1.0, -1)
    else:
        cv2.rectangle(mask, (int(cx - radius), int(cy - radius)), (int(cx + radius), int(cy + radius)), 1.0, -1)
    amount = rng.uniform(0.85, 1.15)
    frames = np.empty((n_frames, h, w, 3), np.uint8)
    for t in range(n_frames):
        m = _warp(kind, t / max(n_frames - 1, 1), amount, size, (cx, cy))
        moved = cv2.warpAffine(sprite, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        alpha = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR)[..., None]
        frames[t] = (alpha * moved + (1 - alpha) * background).astype(np.uint8)
    return frames


def write_video(path: Path, frames: np.ndarray, fps: float = 25.0) -> None:
    """Write RGB uint8 [T,H,W,3] as an MJPG .avi file (MJPG needs even height and width)."""
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise ValueError(f"{path}: MJPG needs an even frame size, got {h}x{w}")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot open an MJPG video writer")
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()


def make_demo_videos(out: str | Path, *, videos_per_class: int = 8, n_frames: int = 48,
                     size: tuple[int, int] = (128, 170), test_per_class: int = 2, seed: int = 0) -> list[Path]:
    """Write ``len(CLASSES) * videos_per_class`` clips under ``out/<class>/`` plus UCF101-style split
    files (the last ``test_per_class`` videos of each class are test); returns the video paths."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    paths, train, test = [], [], []
    for index, kind in enumerate(CLASSES, 1):
        (out / kind).mkdir(parents=True, exist_ok=True)
        for i in range(videos_per_class):
            rel = f"{kind}/v_{kind}_g{i + 1:02d}_c01.avi"
            write_video(out / rel, render_clip(kind, rng, n_frames, size))
            paths.append(out / rel)
            if i >= videos_per_class - test_per_class:
                test.append(rel)
            else:
                train.append(f"{rel} {index}")
    (out / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(CLASSES, 1)))
    (out / "trainlist01.txt").write_text("".join(f"{line}\n" for line in train))
    (out / "testlist01.txt").write_text("".join(f"{line}\n" for line in test))
    return paths
