"""The ``idt`` family: Improved Dense Trajectories of each video (``labels.idt``), float32 [N, 436] rows in the
release's column order, computed from the source video file (native resolution unless resized)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np

from labels.families import VideoContext, VideoFamily, register_family
from labels.idt import IdtParameters, dense_trajectories, dense_trajectories_from_frames, draw_trajectories
from preprocess.decode import iter_frames


@dataclass(frozen=True)
class IdtSettings(IdtParameters):
    """Section ``labels.idt``: the release's options (``IdtParameters``, defaults of ``DenseTrackStab``) and
    the input size."""

    size: tuple[int, int] | None = None  # (h, w); None: the source's native resolution
    short_side: int | None = None
    boxes_dir: str | None = None  # optional human boxes: BOXES_DIR/<video id>.txt in the release's format

    def parameters(self) -> IdtParameters:
        """The :class:`labels.idt.IdtParameters` of these settings."""
        names = {f.name for f in fields(IdtParameters)}
        return IdtParameters(**{name: getattr(self, name) for name in names})


def encode(context: VideoContext) -> dict[str, np.ndarray]:
    """``trajectories`` float32 [N, 436] of the video; ValueError naming the file when none survives."""
    settings: IdtSettings = context.settings
    boxes = Path(settings.boxes_dir) / f"{context.video.id}.txt" if settings.boxes_dir else None
    rows = dense_trajectories(context.video.path, size=settings.size, short_side=settings.short_side,
                              boxes_path=boxes if boxes is not None and boxes.is_file() else None,
                              **{f.name: getattr(settings.parameters(), f.name) for f in fields(IdtParameters)})
    if len(rows) == 0:
        raise ValueError(f"{context.video.path}: no trajectory survived (static, too short or camera motion only)")
    return {"trajectories": rows}


register_family(VideoFamily(name="idt", encode=encode, Settings=IdtSettings))


def trajectory_montage(video_path: str | Path, settings: IdtSettings, start: int, length: int,
                       shown: int = 8) -> tuple[np.ndarray, int]:
    """The trajectories of frames ``start .. start+length-1`` of a video drawn over its frames (the last
    ``shown`` frames, each with the tracks ending on it): (uint8 BGR montage, number of trajectories)."""
    if length <= settings.track_length:
        raise ValueError(f"a clip of {length} frames is too short for {settings.track_length}-frame trajectories")
    frames = []
    for index, frame in enumerate(iter_frames(video_path, size=settings.size, short_side=settings.short_side,
                                              bgr=True)):
        if index >= start + length:
            break
        if index >= start:
            frames.append(frame)
    if len(frames) < length:
        raise ValueError(f"{video_path}: no {length}-frame clip at frame {start} ({start + len(frames)} frames)")
    grey = [cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) for frame in frames]
    rows, points = dense_trajectories_from_frames(grey, settings.parameters(), with_points=True)
    picked = list(range(max(settings.track_length, length - shown), length))
    image = draw_trajectories(np.stack([frames[i] for i in picked]), picked, rows[:, 0], points)
    return image, len(rows)
