"""Streaming video decoding with FFmpeg (through OpenCV): probe, resample in time, resize.

Frames are decoded one at a time, so memory stays bounded for any video length. FFmpeg runs with one
decode thread. Unreadable videos raise :class:`DecodeError` naming the file and the reason.

Truncation is detected by comparing the frames actually decoded with the frame count the container
declares in its header (AVI ``avih``/index, MP4 ``stts``, MKV duration x fps). Containers whose
index sits at the end (MP4 without "faststart") cannot be opened at all once cut; such a file is
recognised by its ``ftyp`` signature and reported as an MP4 without a readable index. MKV's count
is estimated from the duration and may exceed the real one by a frame, so a shortfall of up to
``max(2, 2%)`` frames is tolerated.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

TRUNCATION_TOLERANCE_FRAMES = 2  # absolute shortfall allowed against the header's frame count ...
TRUNCATION_TOLERANCE_FRACTION = 0.02  # ... or this fraction of it, whichever is larger


class DecodeError(Exception):
    """A video that cannot be decoded; ``str()`` gives ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across Dask / process boundaries
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class VideoInfo:
    """What the container declares: frame rate, frame count (header; may be off by one for MKV), size, codec."""

    fps: float
    n_frames: int
    width: int
    height: int
    codec: str


def _open(path: str | os.PathLike) -> cv2.VideoCapture:
    """Open ``path`` with FFmpeg (one decode thread), raising DecodeError for anything that is not a video."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DecodeError(path, "no such file")
    if not os.path.isfile(path):
        raise DecodeError(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise DecodeError(path, "zero bytes")
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if not cap.isOpened():
        if _is_mp4_family(path):
            raise DecodeError(path, "MP4/MOV container without a readable index ('moov' atom): truncated or corrupt")
        raise DecodeError(path, "not a video or unsupported codec")
    if cap.get(cv2.CAP_PROP_FRAME_WIDTH) <= 0 or cap.get(cv2.CAP_PROP_FRAME_HEIGHT) <= 0:
        cap.release()
        raise DecodeError(path, "no video stream")
    return cap


def _is_mp4_family(path: str) -> bool:
    """True when the file starts like an ISO media file (MP4/MOV/3GP): bytes 4..8 are ``ftyp``."""
    with open(path, "rb") as f:
        return f.read(8)[4:8] == b"ftyp"


def _info(cap: cv2.VideoCapture) -> VideoInfo:
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
    codec = fourcc.to_bytes(4, "little").decode("latin-1").strip("\x00 ") if fourcc > 0 else ""
    fps = cap.get(cv2.CAP_PROP_FPS)
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    return VideoInfo(
        fps=float(fps) if math.isfinite(fps) and fps > 0 else 0.0,
        n_frames=int(count) if math.isfinite(count) and count > 0 else 0,
        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        codec=codec,
    )


def probe(path: str | os.PathLike) -> VideoInfo:
    """Container facts of ``path`` without decoding frames (``fps``/``n_frames`` are 0 when unknown).

    Raises DecodeError for a missing, empty or unreadable file, or one declaring a single frame.
    """
    cap = _open(path)
    try:
        info = _info(cap)
    finally:
        cap.release()
    if info.n_frames == 1:
        raise DecodeError(path, "only one frame (flow needs two)")
    return info


def output_size(height: int, width: int, *, size: tuple[int, int] | None = None,
                short_side: int | None = None) -> tuple[int, int]:
    """Frame size (h, w) after resizing a ``height`` x ``width`` frame to ``size`` or to ``short_side``."""
    if size is not None and short_side is not None:
        raise ValueError("give size or short_side, not both")
    if size is not None:
        h, w = size
        if h <= 0 or w <= 0:
            raise ValueError(f"size must be positive, got {size}")
        return int(h), int(w)
    if short_side is not None:
        if short_side <= 0:
            raise ValueError(f"short_side must be positive, got {short_side}")
        scale = short_side / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    return height, width


def resize_frame(image: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Resize uint8 [H, W, C] (or [H, W]) to ``out_hw`` (h, w); a new array unless already that size.

    Shrinking by 2x or more first halves the image with a Gaussian pyramid (``cv2.pyrDown``, an
    anti-aliasing low-pass) while both sides stay at least twice the target; the rest (a factor below
    2, or enlarging) is bilinear. Fine detail that would alias is smoothed like ``INTER_AREA`` does,
    at a quarter of its cost or less (docs/FLOW.md); resizing runs once per decoded frame.
    """
    height, width = out_hw
    while image.shape[0] >= 2 * height and image.shape[1] >= 2 * width:
        image = cv2.pyrDown(image)
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def source_indices(source_fps: float | None, fps: float | None, every: int) -> Iterator[int]:
    """Source frame indices to output, non-decreasing and endless (the caller stops at the video's end).

    Output frame ``j`` of the ``fps`` resampling shows the source frame nearest its time,
    ``floor(j * source_fps / fps + 1/2)`` (frames repeat when ``fps > source_fps``); then every
    ``every``-th of those is kept. Without ``fps`` this is ``0, every, 2 every, ...``.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if fps is None:
        ratio = 1.0
    else:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if not source_fps or source_fps <= 0:
            raise ValueError("source frame rate unknown, cannot resample to a target fps")
        ratio = source_fps / fps
    j = 0
    while True:
        yield math.floor(j * ratio + 0.5)
        j += every


def iter_frames(path: str | os.PathLike, *, size: tuple[int, int] | None = None, short_side: int | None = None,
                fps: float | None = None, every: int = 1, bgr: bool = False) -> Iterator[np.ndarray]:
    """Decode ``path`` frame by frame: uint8 RGB [H, W, 3] arrays, each a new array (BGR, OpenCV's order,
    when ``bgr``: saves a channel swap when the frames go to OpenCV, e.g. a JPEG encoder).

    ``size`` (h, w) or ``short_side`` resizes (:func:`resize_frame`);
    ``fps`` resamples in time by nearest frame, then ``every`` keeps every k-th frame. Frames that are
    not output are skipped without colour conversion. Raises DecodeError (path and reason) for an
    unreadable file, zero or one output frames, or fewer frames than the container declares
    (truncation, checked once the stream ends, i.e. after earlier frames were yielded).
    """
    _, frames = open_frames(path, size=size, short_side=short_side, fps=fps, every=every, bgr=bgr)
    yield from frames


def open_frames(
    path: str | os.PathLike, *, size: tuple[int, int] | None = None, short_side: int | None = None,
    fps: float | None = None, every: int = 1, bgr: bool = False,
) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    """What the container declares (as :func:`probe`) and the frames (as :func:`iter_frames`), opening the
    file once. Raises ValueError for bad options and DecodeError for a file that cannot be opened at once,
    the other DecodeErrors of :func:`iter_frames` while iterating."""
    path = os.fspath(path)
    output_size(1, 1, size=size, short_side=short_side)  # argument errors are ValueErrors, before any decoding
    next(source_indices(1.0, fps, every))
    cap = _open(path)
    info = _info(cap)
    return info, _frames(path, cap, info, size=size, short_side=short_side, fps=fps, every=every, bgr=bgr)


def _frames(path: str, cap: cv2.VideoCapture, info: VideoInfo, *, size: tuple[int, int] | None = None,
            short_side: int | None = None, fps: float | None = None, every: int = 1,
            bgr: bool = False) -> Iterator[np.ndarray]:
    """The frames of an opened capture (see :func:`iter_frames`); releases it when done."""
    try:
        if fps is not None and info.fps <= 0:
            raise DecodeError(path, "frame rate unknown, cannot resample to a target fps")
        wanted = source_indices(info.fps, fps, every)
        out_hw: tuple[int, int] | None = None
        target = next(wanted)
        index = 0  # index of the next source frame
        produced = 0
        last: np.ndarray | None = None
        decoded: np.ndarray | None = None
        while True:
            if target < index:  # the same source frame again (upsampling)
                yield last.copy()
                produced += 1
                target = next(wanted)
                continue
            if not cap.grab():
                break
            index += 1
            if target != index - 1:
                continue
            ok, decoded = cap.retrieve(decoded)  # decoder output buffer reused frame after frame
            if not ok or decoded is None:
                raise DecodeError(path, f"frame {index - 1} could not be decoded")
            if out_hw is None:
                out_hw = output_size(decoded.shape[0], decoded.shape[1], size=size, short_side=short_side)
            if decoded.shape[:2] != out_hw:
                last = resize_frame(decoded, out_hw)
                if not bgr:
                    cv2.cvtColor(last, cv2.COLOR_BGR2RGB, dst=last)
            else:
                last = decoded.copy() if bgr else cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
            yield last
            produced += 1
            target = next(wanted)
    finally:
        cap.release()
    _check_count(path, decoded=index, declared=info.n_frames, produced=produced)


def _check_count(path: str, *, decoded: int, declared: int, produced: int) -> None:
    """Raise DecodeError for no frames, truncation (against the header count), or a single output frame."""
    if decoded == 0:
        raise DecodeError(path, "no frames")
    tolerance = max(TRUNCATION_TOLERANCE_FRAMES, TRUNCATION_TOLERANCE_FRACTION * declared)
    if declared > 0 and declared - decoded > tolerance:
        raise DecodeError(path, f"truncated: decoded {decoded} of {declared} frames")
    if decoded == 1:
        raise DecodeError(path, "only one frame (flow needs two)")
    if produced < 2:
        raise DecodeError(path, f"only {produced} frame after resampling (flow needs two)")
