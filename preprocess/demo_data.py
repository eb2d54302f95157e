"""Synthetic demo videos whose class is decided by motion alone.

Every clip shows a textured shape over a textured background (:func:`draw_scene`: colours, textures, shape,
size, position and speed drawn independently of the class). The class only picks how the shape moves:
``move_right``, ``move_down``, ``rotate`` or ``zoom`` (:func:`shape_warp`). Each motion is centred on the
middle of the clip, so the shape's average position and size over the clip are those of the scene whatever
the class: a network that reads only appearance cannot tell the classes apart. Written as MJPG ``.avi``
files in class folders with UCF101-style ``trainlist01.txt`` / ``testlist01.txt`` / ``classInd.txt``, so
``extract-flow OUT_DIR ...`` reads them like UCF101.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("move_right", "move_down", "rotate", "zoom")
TRAVEL = 0.4  # move_*: distance covered over the clip, as a fraction of the frame's short side
TURN_DEGREES = 180.0  # rotate: angle turned over the clip
ZOOM_RATIO = 3.0  # zoom: last / first scale over the clip
VIDEOS_PER_CLASS = 32
TEST_PER_CLASS = 8
N_FRAMES = 16


@dataclass(frozen=True)
class Scene:
    """What one clip shows, drawn independently of its class.

    Attributes:
        background: uint8 [h, w, 3] static texture.
        sprite: uint8 [h, w, 3] texture carried by the shape.
        mask: float32 [h, w], 1 inside the shape at rest (where moves and rotation have it mid-clip), else 0.
        center: (x, y) of the shape in the middle of the clip, px.
        speed: factor on the amount of motion (about 1).
    """

    background: np.ndarray
    sprite: np.ndarray
    mask: np.ndarray
    center: tuple[float, float]
    speed: float


def texture(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Smooth random colour texture, uint8 [height, width, 3] (noise blurred at ``scale`` px)."""
    noise = rng.random((height, width, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), scale)
    smooth -= smooth.min(axis=(0, 1))
    smooth /= smooth.max(axis=(0, 1)) + 1e-6
    return (smooth * 255).astype(np.uint8)


def draw_scene(rng: np.random.Generator, size: tuple[int, int]) -> Scene:
    """A random scene of frame ``size`` (h, w): textures blurred at 3-8 % (background) and 2.5-4.5 % (shape)
    of the short side, a circle or square of radius 12-18 % of the short side centred in the middle 20 % of
    the frame (so that every motion keeps it almost whole in view), speed 0.8-1.2."""
    h, w = size
    background = texture(rng, h, w, rng.uniform(0.03, 0.08) * min(h, w))
    sprite = texture(rng, h, w, rng.uniform(0.025, 0.045) * min(h, w))
    cx, cy = round(rng.uniform(0.4, 0.6) * w), round(rng.uniform(0.4, 0.6) * h)  # whole pixels: the shape's centre
    radius = round(rng.uniform(0.12, 0.18) * min(h, w))
    mask = np.zeros((h, w), np.float32)
    if rng.random() < 0.5:
        cv2.circle(mask, (cx, cy), radius, 1.0, -1)
    else:
        cv2.rectangle(mask, (cx - radius, cy - radius), (cx + radius, cy + radius), 1.0, -1)
    return Scene(background, sprite, mask, (float(cx), float(cy)), rng.uniform(0.8, 1.2))


def shape_warp(kind: str, phase: float, scene: Scene, zoom_norm: float = 1.0) -> np.ndarray:
    """2x3 affine map that takes the shape at rest (``scene.mask``) to where class ``kind`` has it at ``phase``
    (-0.5 at the first frame, 0 mid-clip, 0.5 at the last). Over the clip a move covers ``TRAVEL`` of the
    short side, a rotation turns ``TURN_DEGREES`` and a zoom grows ``ZOOM_RATIO`` times, all times
    ``scene.speed``; the zoom scale is divided by ``zoom_norm`` (its root mean square over the clip, so that
    the shape keeps its mean area)."""
    h, w = scene.mask.shape
    step = scene.speed * phase
    if kind == "move_right":
        return np.float32([[1, 0, TRAVEL * min(h, w) * step], [0, 1, 0]])
    if kind == "move_down":
        return np.float32([[1, 0, 0], [0, 1, TRAVEL * min(h, w) * step]])
    if kind == "rotate":
        return cv2.getRotationMatrix2D(scene.center, TURN_DEGREES * step, 1.0).astype(np.float32)
    if kind == "zoom":
        return cv2.getRotationMatrix2D(scene.center, 0.0, ZOOM_RATIO ** step / zoom_norm).astype(np.float32)
    raise ValueError(f"unknown demo class {kind!r} (known: {', '.join(CLASSES)})")


def clip_phases(n_frames: int) -> np.ndarray:
    """Phase of every frame, float64 [n_frames] evenly from -0.5 to 0.5 (0 for a single frame)."""
    return np.linspace(-0.5, 0.5, n_frames) if n_frames > 1 else np.zeros(1)


def render_scene(kind: str, scene: Scene, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``scene`` with its shape moving as class ``kind``: RGB uint8 [n_frames, h, w, 3] and the shape's
    coverage float32 [n_frames, h, w] (0..1)."""
    h, w = scene.mask.shape
    phases = clip_phases(n_frames)
    zoom_norm = float(np.sqrt(np.mean(ZOOM_RATIO ** (2 * scene.speed * phases)))) if kind == "zoom" else 1.0
    frames = np.empty((n_frames, h, w, 3), np.uint8)
    coverage = np.empty((n_frames, h, w), np.float32)
    for t, phase in enumerate(phases):
        m = shape_warp(kind, phase, scene, zoom_norm)
        moved = cv2.warpAffine(scene.sprite, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        alpha = cv2.warpAffine(scene.mask, m, (w, h), flags=cv2.INTER_LINEAR)
        coverage[t] = alpha
        frames[t] = (alpha[..., None] * moved + (1 - alpha[..., None]) * scene.background).astype(np.uint8)
    return frames, coverage


def render_clip(kind: str, rng: np.random.Generator, n_frames: int = N_FRAMES,
                size: tuple[int, int] = (128, 170)) -> np.ndarray:
    """One clip of class ``kind`` over a scene drawn from ``rng``: RGB uint8 [n_frames, h, w, 3]."""
    return render_scene(kind, draw_scene(rng, size), n_frames)[0]


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


def make_demo_videos(out: str | Path, *, videos_per_class: int = VIDEOS_PER_CLASS, n_frames: int = N_FRAMES,
                     size: tuple[int, int] = (128, 170), test_per_class: int = TEST_PER_CLASS,
                     seed: int = 0) -> list[Path]:
    """Write ``len(CLASSES) * videos_per_class`` clips under ``out/<class>/`` plus UCF101-style split
    files (the last ``test_per_class`` videos of each class are test); returns the video paths.

    The defaults make the demo's data set: 96 training and 32 test videos of one 16-frame clip each (short
    clips, so that the whole motion of a class happens within the one clip the network sees). ValueError
    before writing anything for counts that leave no training video or no flow."""
    if videos_per_class < 1 or n_frames < 2 or not 0 <= test_per_class < videos_per_class:
        raise ValueError(f"demo videos need videos_per_class >= 1, n_frames >= 2 and 0 <= test_per_class < "
                         f"videos_per_class (some training videos), got {videos_per_class}, {n_frames} and "
                         f"{test_per_class}")
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
