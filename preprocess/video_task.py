"""One video -> one part file: decode (or reuse stored frames), JPEG frames, quantized flow, differences.

Runs inside a sandbox process (``preprocess.sandbox``) so a hung decode or OpenCV call can be killed.
Flow and differences are always computed from the frames as stored (JPEG decoded back), so they are the
same whether the frames were extracted in this run or an earlier one.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import cv2
import h5py
import numpy as np

from preprocess import decode, difference, flow, shards
from preprocess.flow_codec import quantize
from preprocess.settings import ExtractSettings


@dataclasses.dataclass(frozen=True)
class VideoJob:
    """What to compute for one video (small and picklable: travels through the Dask scheduler)."""

    video_id: str
    source: str  # the input video file
    label: str | None
    split: str | None
    streams: tuple[str, ...]  # streams to compute, subset of shards.STREAMS
    settings: ExtractSettings
    frames_shard: str | None = None  # a finished shard holding this video's frames, reused instead of decoding


def _plain(value: Any) -> Any:
    """JSON-normalised copy (tuples become lists) so recorded and requested settings compare equal."""
    return json.loads(json.dumps(value))


def ffmpeg_versions(build_information: str) -> dict[str, str]:
    """Versions of the FFmpeg libraries OpenCV decodes with (``{"avcodec": "62.28.101", ...}``: decoding,
    demuxing, pixel conversion), read from ``cv2.getBuildInformation()`` text; empty without FFmpeg."""
    found = re.findall(r"^\s*(avcodec|avformat|swscale):\s*YES \(([^)]+)\)", build_information, re.MULTILINE)
    return dict(found)


def stream_settings(settings: ExtractSettings) -> dict[str, dict[str, Any]]:
    """The settings that shape each stream, as recorded in shards and the index, with the versions of the
    libraries that shape its values: OpenCV and FFmpeg for frames (hence for everything computed from them),
    numpy for the quantized flow and the differences."""
    frames = {
        "size": settings.size,
        "short_side": settings.short_side if settings.size is None else None,
        "fps": settings.fps,
        "every": settings.every,
        "image_format": settings.image_format,
        "jpeg_quality": settings.jpeg_quality if settings.image_format == "jpeg" else None,
        "opencv": cv2.__version__,
        "ffmpeg": ffmpeg_versions(cv2.getBuildInformation()),
    }
    flow = settings.flow
    params = {"tvl1": flow.tvl1, "dis": {"preset": flow.dis_preset}, "farneback": flow.farneback}[flow.algo]
    return _plain({
        "frames": frames,
        "flow": {"frames": frames, "algo": flow.algo, "bound": flow.bound, "params": params, "numpy": np.__version__},
        "diff": {"frames": frames, "numpy": np.__version__},
    })


class StoredFrame(NamedTuple):
    """One frame as the task stores it: ``data`` is its JPEG bytes uint8 [n] (image_format jpeg) or its RGB
    pixels uint8 [H,W,3] (raw); ``gray`` uint8 [H,W] is the frame as stored, in gray (None when not asked for)."""

    data: np.ndarray
    shape: tuple[int, int]
    gray: np.ndarray | None


def _decoded_frames(job: VideoJob, gray: bool) -> tuple[Iterator[StoredFrame], float]:
    """Frames of the source video resized/resampled per the settings, encoded for storage, and their rate."""
    s = job.settings
    info = decode.probe(job.source)
    decoded = decode.iter_frames(job.source, size=s.size, short_side=s.short_side if s.size is None else None,
                                 fps=s.fps, every=s.every, bgr=True)

    def frames() -> Iterator[StoredFrame]:
        for bgr in decoded:
            if s.image_format == "jpeg":
                jpeg = shards.encode_jpeg_bgr(bgr, s.jpeg_quality)
                yield StoredFrame(jpeg, bgr.shape[:2], shards.jpeg_to_gray(jpeg) if gray else None)
            else:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                yield StoredFrame(rgb, bgr.shape[:2], cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if gray else None)

    return frames(), (s.fps or info.fps) / s.every


def _stored_frames(job: VideoJob, gray: bool) -> tuple[Iterator[StoredFrame], float]:
    """Frames of the video as stored in ``job.frames_shard`` (read lazily), and their frame rate."""
    with shards.open_read_only(job.frames_shard) as f:
        fps = float(f[f"{shards.VIDEOS}/{job.video_id}"].attrs["fps"])

    def frames() -> Iterator[StoredFrame]:
        with shards.open_read_only(job.frames_shard) as f:
            video = shards.StoredVideo(f[f"{shards.VIDEOS}/{job.video_id}"])
            if job.settings.image_format == "jpeg":
                for jpeg in video.iter_jpeg():
                    yield StoredFrame(jpeg, video.frame_shape, shards.jpeg_to_gray(jpeg) if gray else None)
            else:
                for rgb in video.iter_frames():
                    yield StoredFrame(rgb, video.frame_shape, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if gray else None)

    return frames(), fps


def extract_video(job: VideoJob, out_path: str) -> dict[str, Any]:
    """Write the streams ``job.streams`` of one video into a new part file ``out_path``.

    Returns small metadata ``{"n_frames", "fps", "height", "width", "bytes"}``; raises ValueError for a
    video without frames (or with a single frame when flow/differences are asked for) and
    ``decode.DecodeError`` for an unreadable file.
    """
    flow.pin_opencv_threads(1)
    s = job.settings
    pairwise = bool({"flow", "diff"} & set(job.streams))
    source = _stored_frames if job.frames_shard is not None else _decoded_frames
    frames, fps = source(job, gray=pairwise)
    flow_fn = flow.make_flow(s.flow) if "flow" in job.streams else None
    writer: shards.VideoWriter | None = None
    previous: np.ndarray | None = None
    with h5py.File(out_path, "w") as f:
        for frame in frames:
            if writer is None:
                writer = shards.VideoWriter(f, job.video_id, height=frame.shape[0], width=frame.shape[1],
                                            streams=job.streams, image_format=s.image_format)
            if s.image_format == "jpeg":
                writer.add_jpeg(frame.data)
            else:
                writer.add_frame(frame.data)
            if not pairwise:
                continue
            if previous is not None:
                if flow_fn is not None:
                    writer.add_flow(quantize(flow_fn(previous, frame.gray), s.flow.bound))
                if "diff" in job.streams:
                    writer.add_diff(difference.image_difference(previous, frame.gray))
            previous = frame.gray
        if writer is None:
            raise ValueError(f"{job.source}: no frames decoded")
        if pairwise and writer.n_frames < 2:
            raise ValueError(f"{job.source}: only {writer.n_frames} frame, flow/differences need 2")
        n = writer.finish(fps=fps, source=job.source, label=job.label, split=job.split)
        recorded = stream_settings(s)
        shards.write_file_attrs(f, job.streams, {k: recorded[k] for k in job.streams}, [job.video_id])
    return {"n_frames": n, "fps": fps, "height": writer.shape[0], "width": writer.shape[1],
            "bytes": Path(out_path).stat().st_size}
