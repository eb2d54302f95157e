"""One video -> one part file: decode (or reuse stored frames), JPEG frames, quantized flow, differences,
motion boundaries (computed from the float flow before its quantization, in the same pass).

Runs inside a sandbox process (``common.sandbox``) so a hung decode or OpenCV call can be killed.
Flow and differences are each computed from the gray of the ``decoded`` frames (before JPEG), or of the
``stored`` ones (JPEG decoded back) when the dataset's frames were extracted before that stream
(``VideoJob.flow_from``/``diff_from``, recorded in the stream settings; docs/EXTRACTION.md). Motion boundaries
come from the flow of ``flow_from``; a job asking for them alone computes that flow again without storing it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import cv2
import h5py
import numpy as np

from preprocess import decode, difference, flow, motion_boundaries, shards
from preprocess.flow_codec import quantize
from preprocess.inputs import fingerprint
from preprocess.settings import ExtractSettings, FlowSettings

GRAY_SOURCES = ("decoded", "stored")  # the frames flow and differences are computed from


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
    flow_from: str = "decoded"  # flow (and its motion boundaries) from the gray of the "decoded" or "stored" frames
    diff_from: str = "decoded"  # differences likewise

    def __post_init__(self) -> None:
        for name in ("flow_from", "diff_from"):
            if getattr(self, name) not in GRAY_SOURCES:
                raise ValueError(f"{name} must be one of {GRAY_SOURCES}, got {getattr(self, name)!r}")
        if self.frames_shard is not None and self.gray_sources() - {"stored"}:
            raise ValueError("stored frames (frames_shard) are reused only when flow and differences come from them")

    def gray_sources(self) -> set[str]:
        """The gray frames the job's flow, differences and motion boundaries are computed from (empty without any)."""
        pairs = (("flow", self.flow_from), ("mb", self.flow_from), ("diff", self.diff_from))
        return {src for stream, src in pairs if stream in self.streams}


def _plain(value: Any) -> Any:
    """JSON-normalised copy (tuples become lists) so recorded and requested settings compare equal."""
    return json.loads(json.dumps(value))


def ffmpeg_versions(build_information: str) -> dict[str, str]:
    """Versions of the FFmpeg libraries OpenCV decodes with (``{"avcodec": "62.28.101", ...}``: decoding,
    demuxing, pixel conversion), read from ``cv2.getBuildInformation()`` text; empty without FFmpeg."""
    found = re.findall(r"^\s*(avcodec|avformat|swscale):\s*YES \(([^)]+)\)", build_information, re.MULTILINE)
    return dict(found)


def stream_settings(settings: ExtractSettings, flow_from: str = "decoded",
                    diff_from: str = "decoded") -> dict[str, dict[str, Any]]:
    """The settings that shape each stream, as recorded in shards and the index, with the versions of the
    libraries that shape its values: OpenCV and FFmpeg for frames (hence for everything computed from them),
    numpy for the quantized flow, the differences and the motion boundaries; ``from`` says which frames flow and
    differences were computed from (:data:`GRAY_SOURCES`). Motion boundaries record the flow they come from,
    their clipping bound and code step (``scale``, px/px)."""
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
    params = {"tvl1": lambda: flow.tvl1, "dis": lambda: {"preset": flow.dis_preset},
              "farneback": lambda: flow.farneback, "tvl1_torch": lambda: tvl1_torch_params(flow)}[flow.algo]()
    flow_record = {"frames": frames, "from": flow_from, "algo": flow.algo, "bound": flow.bound, "params": params,
                   "numpy": np.__version__}
    bound = settings.motion_boundaries_bound
    return _plain({
        "frames": frames,
        "flow": flow_record,
        "diff": {"frames": frames, "from": diff_from, "numpy": np.__version__},
        "mb": {"flow": flow_record, "bound": bound, "scale": motion_boundaries.scale(bound),
               "gradient": "central differences", "numpy": np.__version__},
    })


def tvl1_torch_params(settings: FlowSettings) -> dict[str, Any]:
    """What shapes ``tvl1_torch`` flow: every parameter (defaults included), the device and torch's version
    (the pair batch size does not change the flow on the CPU)."""
    import torch

    from preprocess.tvl1_parameters import TVL1Parameters

    parameters = dataclasses.asdict(TVL1Parameters.from_mapping(settings.tvl1))
    return {"parameters": parameters, "device": settings.device, "torch": torch.__version__}


class TaskFrame(NamedTuple):
    """One frame of the task: ``data`` is what is stored, its JPEG bytes uint8 [n] (image_format jpeg) or
    its RGB pixels uint8 [H,W,3] (raw), None when the task does not store frames; ``gray`` maps each source
    in ``VideoJob.gray_sources()`` to the frame's gray uint8 [H,W] from it."""

    data: np.ndarray | None
    shape: tuple[int, int]
    gray: dict[str, np.ndarray]


# Frames are handled in batches, each step over a whole batch before the next step (decode, encode,
# gray, then flow): the decoder's, the JPEG encoder's and DIS's code and tables stay in the CPU caches
# instead of evicting each other at every frame. Measured with DIS at 128x171 (bench/bench_flow.py),
# pipeline / bare flow: 0.75x frame by frame, 0.78-0.79x in batches of 4-8, 0.79-0.81x of 16-32 (docs/FLOW.md).
BATCH_FRAMES = 16
BATCH_BYTES = 8 << 20  # fewer frames per batch when they are large (memory stays bounded)


def batch_limits(job: VideoJob) -> tuple[int, int]:
    """Frames and bytes per batch: ``BATCH_FRAMES`` / ``BATCH_BYTES``, or, when the ``tvl1_torch`` flow takes
    more pairs per call (``flow.batch``), that many frames (bytes scaled alike) so each call gets ``flow.batch``
    pairs, unless frames larger than ``BATCH_BYTES / BATCH_FRAMES`` (8 MB / 16) end a batch first."""
    flow_batch = job.settings.flow.batch if job.settings.flow.algo == "tvl1_torch" else 1
    if not {"flow", "mb"} & set(job.streams) or flow_batch <= BATCH_FRAMES:
        return BATCH_FRAMES, BATCH_BYTES
    return flow_batch, BATCH_BYTES * flow_batch // BATCH_FRAMES


def _batches(frames: Iterator[np.ndarray], limits: tuple[int, int]) -> Iterator[list[np.ndarray]]:
    """Consecutive lists of ``limits[0]`` frames, or fewer once they hold ``limits[1]`` bytes."""
    max_frames, max_bytes = limits
    batch: list[np.ndarray] = []
    size = 0
    for frame in frames:
        batch.append(frame)
        size += frame.nbytes
        if len(batch) == max_frames or size >= max_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _decoded_frames(job: VideoJob) -> tuple[Iterator[list[TaskFrame]], float]:
    """Batches of frames of the source video resized/resampled per the settings, encoded for storage, and
    their rate."""
    s = job.settings
    store = "frames" in job.streams
    sources = job.gray_sources()
    jpeg = s.image_format == "jpeg"
    info, decoded = decode.open_frames(job.source, size=s.size, short_side=s.short_side if s.size is None else None,
                                       fps=s.fps, every=s.every, bgr=True)

    def encoded(bgr: np.ndarray) -> np.ndarray | None:
        if jpeg and (store or "stored" in sources):
            return shards.encode_jpeg_bgr(bgr, s.jpeg_quality)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if store else None

    def gray(bgr: np.ndarray, data: np.ndarray | None, src: str) -> np.ndarray:
        if src == "stored" and jpeg:  # raw frames are stored as decoded
            return shards.jpeg_to_gray(data)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)

    def batches() -> Iterator[list[TaskFrame]]:
        for bgrs in _batches(decoded, batch_limits(job)):
            data = [encoded(bgr) for bgr in bgrs]
            grays = {src: [gray(bgr, d, src) for bgr, d in zip(bgrs, data)] for src in sources}
            yield [TaskFrame(d if store else None, bgr.shape[:2], {src: grays[src][i] for src in sources})
                   for i, (bgr, d) in enumerate(zip(bgrs, data))]

    return batches(), (s.fps or info.fps) / s.every


def _stored_frames(job: VideoJob) -> tuple[Iterator[list[TaskFrame]], float]:
    """Batches of frames of the video as stored in ``job.frames_shard`` (read lazily, not stored again; their
    gray as the ``stored`` source), and their rate."""
    with shards.open_read_only(job.frames_shard) as f:
        fps = float(f[f"{shards.VIDEOS}/{job.video_id}"].attrs["fps"])

    def batches() -> Iterator[list[TaskFrame]]:
        with shards.open_read_only(job.frames_shard) as f:
            video = shards.StoredVideo(f[f"{shards.VIDEOS}/{job.video_id}"])
            if job.settings.image_format == "jpeg":
                grays = (shards.jpeg_to_gray(data) for data in video.iter_jpeg())
            else:
                grays = (cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) for rgb in video.iter_frames())
            for batch in _batches(grays, batch_limits(job)):
                yield [TaskFrame(None, video.frame_shape, {"stored": g}) for g in batch]

    return batches(), fps


def extract_video(job: VideoJob, out_path: str) -> dict[str, Any]:
    """Write the streams ``job.streams`` of one video into a new part file ``out_path``.

    Returns small metadata ``{"n_frames", "fps", "height", "width", "bytes", "fingerprint"}`` (the source's
    ``inputs.fingerprint`` as read now; None when stored frames are reused and the source is gone); raises ValueError for a
    video without frames (or with a single frame when flow/differences are asked for) and
    ``decode.DecodeError`` for an unreadable file.
    """
    flow.pin_opencv_threads(1)
    s = job.settings
    source_print = fingerprint(job.source) if os.path.isfile(job.source) else None
    pairwise = bool({"flow", "diff", "mb"} & set(job.streams))
    batches, fps = (_stored_frames if job.frames_shard is not None else _decoded_frames)(job)
    pair_flows = flow.make_pair_flows(s.flow) if {"flow", "mb"} & set(job.streams) else None
    writer: shards.VideoWriter | None = None
    previous: dict[str, np.ndarray] | None = None
    with h5py.File(out_path, "w") as f:
        for batch in batches:
            if writer is None:
                writer = shards.VideoWriter(f, job.video_id, height=batch[0].shape[0], width=batch[0].shape[1],
                                            streams=job.streams, image_format=s.image_format)
            for frame in batch:
                if frame.data is None:
                    writer.count_frame()
                elif s.image_format == "jpeg":
                    writer.add_jpeg(frame.data)
                else:
                    writer.add_frame(frame.data)
            if not pairwise:
                continue
            grays = ([] if previous is None else [previous]) + [frame.gray for frame in batch]
            pairs = list(zip(grays[:-1], grays[1:]))
            if pair_flows is not None:
                for flow_item in pair_flows([(before[job.flow_from], after[job.flow_from]) for before, after in pairs]):
                    if "flow" in job.streams:
                        writer.add_flow(quantize(flow_item, s.flow.bound))
                    if "mb" in job.streams:
                        boundaries = motion_boundaries.motion_boundaries(flow_item)
                        writer.add_motion_boundaries(motion_boundaries.quantize(boundaries, s.motion_boundaries_bound))
            if "diff" in job.streams:
                for before, after in pairs:
                    writer.add_diff(difference.image_difference(before[job.diff_from], after[job.diff_from]))
            previous = grays[-1]
        if writer is None:
            raise ValueError(f"{job.source}: no frames decoded")
        if pairwise and writer.n_frames < 2:
            raise ValueError(f"{job.source}: only {writer.n_frames} frame, flow/differences/motion boundaries need 2")
        n = writer.finish(fps=fps, source=job.source, label=job.label, split=job.split)
        recorded = stream_settings(s, job.flow_from, job.diff_from)
        shards.write_file_attrs(f, job.streams, {k: recorded[k] for k in job.streams}, [job.video_id])
    return {"n_frames": n, "fps": fps, "height": writer.shape[0], "width": writer.shape[1],
            "bytes": Path(out_path).stat().st_size, "fingerprint": source_print}
