"""Improved Dense Trajectories (Wang & Schmid, ICCV 2013) in numpy/OpenCV, faithful to the original release
(``DenseTrackStab``): ``dense_trajectories(video_path)`` -> float32 [N, 436] in the release's column order."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from labels.idt.drawing import draw_trajectories
from labels.idt.extract import dense_trajectories_from_frames
from labels.idt.files import grey_frames, read_human_boxes, read_release_text, write_release_text
from labels.idt.parameters import INFO_COLUMNS, IdtParameters, column_layout


def dense_trajectories(video_path: str | Path, size: tuple[int, int] | None = None, short_side: int | None = None,
                       boxes_path: str | Path | None = None, with_points: bool = False,
                       **parameters: object) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Trajectories of a video file at its native resolution (or resized to ``size`` (h, w) or ``short_side``).

    Args:
        video_path: any file FFmpeg decodes (``preprocess.decode``; ``DecodeError`` for a bad file).
        boxes_path: optional human-box file of the release (``frame x1 y1 x2 y2 score ...``).
        parameters: fields of :class:`IdtParameters` (release defaults otherwise).
    Returns:
        float32 [N, 436], see :func:`dense_trajectories_from_frames` (also positions with ``with_points``).
    """
    boxes = read_human_boxes(boxes_path) if boxes_path is not None else None
    frames = grey_frames(video_path, size, short_side)
    return dense_trajectories_from_frames(frames, boxes=boxes, with_points=with_points, **parameters)


__all__ = ["INFO_COLUMNS", "IdtParameters", "column_layout", "dense_trajectories", "dense_trajectories_from_frames",
           "draw_trajectories", "grey_frames", "read_human_boxes", "read_release_text", "write_release_text"]
