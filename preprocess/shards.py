"""HDF5 layout of extracted streams: one group per video, inside a per-video part file or a shard.

A file (part or shard) holds ``/videos/<video_id>/`` groups (ids may contain ``/``, giving nested
groups) and root attributes ``format``, ``version``, ``streams`` (JSON list), ``settings`` (JSON),
``videos`` (JSON list of ids) and ``written_by`` (JSON: h5py, HDF5 and zstandard versions; storage only,
values do not depend on them, so they are recorded, not compared). Per video group:

- ``frames_jpeg`` uint8 [nbytes] (all JPEG images back to back) + ``frames_offsets`` int64 [T+1]
  when ``image_format`` is ``jpeg``; or ``frames`` uint8 [T,H,W,3] RGB, zstd-1, one chunk per frame (``raw``);
- ``flow`` uint8 [T-1,H,W,2] quantized (u, v) codes (``preprocess.flow_codec``), zstd-1, chunk per flow
  (compressed here and written directly; read through the declared filter);
- ``diff`` int16 [T-1,H,W] gray frame t+1 minus frame t, zstd-1, chunk per difference;
- ``mb`` uint8 [T-1,H,W,2] motion boundary codes (|grad u|, |grad v| of flow t; ``preprocess.motion_boundaries``),
  zstd-1, chunk per flow;
- attributes ``n_frames``, ``fps``, ``height``, ``width``, ``source``, ``label``, ``split``.

See docs/FORMAT.md for the measurements behind these choices.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Iterable, Iterator

import cv2
import h5py
import hdf5plugin  # registers the Zstandard HDF5 filter (for writing and reading)
import numpy as np
import zstandard

FORMAT = "vssl-shard"
VERSION = 1
VIDEOS = "videos"
STREAMS = ("frames", "flow", "diff", "mb")
_FLUSH_BYTES = 1 << 20  # buffered JPEG bytes written per slab
_SLAB = 16  # flows / differences / raw frames buffered per write
# Zstandard level 1: against gzip level 1 on real quantized flow, 30% fewer bytes, half the CPU time to
# write and to read back (docs/FORMAT.md); readers need the hdf5plugin package (imported here).
ZSTD_LEVEL = 1
COMPRESSION = hdf5plugin.Zstd(clevel=ZSTD_LEVEL)


def encode_jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """RGB uint8 [H,W,3] -> JPEG bytes as uint8 [n]."""
    return encode_jpeg_bgr(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), quality)


def encode_jpeg_bgr(bgr: np.ndarray, quality: int) -> np.ndarray:
    """BGR uint8 [H,W,3] (OpenCV's order, as the decoder gives it) -> JPEG bytes as uint8 [n]."""
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a frame of shape {bgr.shape}")
    return data.reshape(-1)


def decode_jpeg(data: np.ndarray) -> np.ndarray:
    """JPEG bytes uint8 [n] -> RGB uint8 [H,W,3]."""
    return _imdecode(data, cv2.IMREAD_COLOR_RGB)


def jpeg_to_gray(data: np.ndarray) -> np.ndarray:
    """JPEG bytes uint8 [n] -> gray uint8 [H,W], exactly ``cvtColor(decode_jpeg(data), COLOR_RGB2GRAY)``: the
    gray frame flow and differences are computed from (decoded in BGR order, which skips a channel swap)."""
    return cv2.cvtColor(_imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)


def _imdecode(data: np.ndarray, flags: int) -> np.ndarray:
    image = cv2.imdecode(np.asarray(data, dtype=np.uint8), flags)
    if image is None:
        raise ValueError("stored JPEG frame cannot be decoded")
    return image


def open_read_only(path: str | Path) -> h5py.File:
    """Open a finished part or shard for reading without HDF5 file locking: these files never change once
    renamed to their final name, and locks fail on many cluster file systems (NFS, Lustre)."""
    return h5py.File(path, "r", locking=False)


def write_file_attrs(f: h5py.File, streams: Iterable[str], settings: dict[str, Any], videos: Iterable[str]) -> None:
    """Root attributes that make a part or shard self-describing."""
    f.attrs["format"] = FORMAT
    f.attrs["version"] = VERSION
    f.attrs["streams"] = json.dumps(sorted(streams))
    f.attrs["settings"] = json.dumps(settings, sort_keys=True)
    f.attrs["videos"] = json.dumps(list(videos))
    f.attrs["written_by"] = json.dumps({"h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version,
                                        "zstandard": zstandard.__version__})


def read_file_attrs(f: h5py.File) -> dict[str, Any]:
    """Inverse of :func:`write_file_attrs`: ``{"streams", "settings", "videos"}``; raises ValueError if foreign."""
    if f.attrs.get("format") != FORMAT:
        raise ValueError(f"{f.filename}: not a {FORMAT} file (format attribute {f.attrs.get('format')!r})")
    if int(f.attrs["version"]) != VERSION:
        raise ValueError(f"{f.filename}: {FORMAT} version {f.attrs['version']} (this code reads {VERSION})")
    return {key: json.loads(f.attrs[key]) for key in ("streams", "settings", "videos")}


def video_attrs(group: h5py.Group) -> dict[str, Any]:
    """Per-video attributes as plain Python values (``label``/``split`` None when empty)."""
    a = group.attrs
    return {
        "n_frames": int(a["n_frames"]),
        "fps": float(a["fps"]),
        "height": int(a["height"]),
        "width": int(a["width"]),
        "path": str(a["source"]),
        "label": str(a["label"]) or None,
        "split": str(a["split"]) or None,
    }


class _Appender:
    """Appends [h, w, ...] arrays to a resizable, chunk-per-item dataset in slabs of ``_SLAB``.

    Each item is compressed here (one Zstandard context, reused) and written as its chunk directly: the
    bytes HDF5's filter would write, without its chunk cache and filter pipeline (1.3x less CPU time per
    flow item; docs/FORMAT.md). Readers decompress through the dataset's declared filter as usual.
    """

    def __init__(self, group: h5py.Group, name: str, item_shape: tuple[int, ...], dtype: type) -> None:
        self.dataset = group.create_dataset(
            name, shape=(0, *item_shape), maxshape=(None, *item_shape), dtype=dtype,
            chunks=(1, *item_shape), **COMPRESSION,
        )
        self.item_shape = item_shape
        self.dtype = np.dtype(dtype)
        self.buffer: list[np.ndarray] = []
        self._compress = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress

    def add(self, item: np.ndarray) -> None:
        if item.shape != self.item_shape or item.dtype != self.dtype:
            raise ValueError(f"{self.dataset.name}: item {item.dtype}{list(item.shape)}, "
                             f"expected {self.dtype}{list(self.item_shape)}")
        self.buffer.append(item)
        if len(self.buffer) >= _SLAB:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        n = self.dataset.shape[0]
        self.dataset.resize(n + len(self.buffer), axis=0)
        origin = (0,) * len(self.item_shape)
        for i, item in enumerate(self.buffer):
            self.dataset.id.write_direct_chunk((n + i, *origin), self._compress(np.ascontiguousarray(item).data))
        self.buffer = []

    def __len__(self) -> int:
        return self.dataset.shape[0] + len(self.buffer)


class VideoWriter:
    """Writes one video's streams into ``/videos/<video_id>`` of an open file, item by item (bounded memory).

    Frames go in as RGB uint8 [H,W,3] (or ready JPEG bytes), flow and motion boundaries as uint8 codes [H,W,2],
    differences as int16 [H,W]; :meth:`finish` checks the counts (T frames, T-1 of each per-pair stream) and sets
    attributes.
    """

    def __init__(self, f: h5py.File, video_id: str, *, height: int, width: int, streams: Iterable[str],
                 image_format: str = "jpeg") -> None:
        self.group = f.require_group(VIDEOS).create_group(video_id)
        self.streams = set(streams)
        unknown = self.streams - set(STREAMS)
        if unknown:
            raise ValueError(f"unknown stream(s) {sorted(unknown)} (known: {', '.join(STREAMS)})")
        self.shape = (height, width)
        self.image_format = image_format
        self.n_frames = 0
        self._jpeg_parts: list[np.ndarray] = []
        self._jpeg_pending = 0
        self._offsets = [0]
        if "frames" in self.streams:
            if image_format == "jpeg":
                self._jpeg = self.group.create_dataset("frames_jpeg", shape=(0,), maxshape=(None,), dtype=np.uint8,
                                                       chunks=(1 << 16,))
            elif image_format == "raw":
                self._raw = _Appender(self.group, "frames", (height, width, 3), np.uint8)
            else:
                raise ValueError(f"unknown image_format {image_format!r} (known: jpeg, raw)")
        self._flow = _Appender(self.group, "flow", (height, width, 2), np.uint8) if "flow" in self.streams else None
        self._diff = _Appender(self.group, "diff", (height, width), np.int16) if "diff" in self.streams else None
        self._mb = _Appender(self.group, "mb", (height, width, 2), np.uint8) if "mb" in self.streams else None

    def add_frame(self, rgb: np.ndarray, jpeg: np.ndarray | None = None) -> None:
        """Store frame ``rgb`` uint8 [H,W,3]; ``jpeg`` (its encoded bytes) is stored as is when given."""
        if rgb.shape != (*self.shape, 3):
            raise ValueError(f"frame of shape {rgb.shape}, expected {(*self.shape, 3)}")
        self._check_frames_stream()
        if self.image_format == "raw":
            self._raw.add(rgb)
            self.n_frames += 1
        elif jpeg is None:
            raise ValueError("image_format jpeg: pass the frame's JPEG bytes")
        else:
            self._add_jpeg(jpeg)

    def add_jpeg(self, jpeg: np.ndarray) -> None:
        """Store a frame given only as its JPEG bytes uint8 [n] (image_format jpeg; pixels are not checked)."""
        self._check_frames_stream()
        if self.image_format != "jpeg":
            raise ValueError(f"image_format {self.image_format}: pass the frame's pixels to add_frame")
        self._add_jpeg(jpeg)

    def count_frame(self) -> None:
        """Count a frame this file does not store (it holds the frame's flow and differences only)."""
        if "frames" in self.streams:
            raise ValueError("frames are a stream of this file: pass the frame to add_jpeg or add_frame")
        self.n_frames += 1

    def _check_frames_stream(self) -> None:
        if "frames" not in self.streams:
            raise ValueError("frames are not a stream of this file: count the frame with count_frame")

    def _add_jpeg(self, jpeg: np.ndarray) -> None:
        self.n_frames += 1
        self._jpeg_parts.append(jpeg)
        self._jpeg_pending += jpeg.size
        self._offsets.append(self._offsets[-1] + jpeg.size)
        if self._jpeg_pending >= _FLUSH_BYTES:
            self._flush_jpeg()

    def add_flow(self, codes: np.ndarray) -> None:
        """Store the quantized flow uint8 [H,W,2] from the previous frame to the latest one."""
        self._flow.add(codes)

    def add_diff(self, diff: np.ndarray) -> None:
        """Store the difference int16 [H,W] latest gray frame minus the previous one."""
        self._diff.add(diff.astype(np.int16, copy=False))

    def add_motion_boundaries(self, codes: np.ndarray) -> None:
        """Store the motion boundary codes uint8 [H,W,2] of the flow from the previous frame to the latest one."""
        self._mb.add(codes)

    def _flush_jpeg(self) -> None:
        if not self._jpeg_parts:
            return
        n = self._jpeg.shape[0]
        self._jpeg.resize(n + self._jpeg_pending, axis=0)
        self._jpeg[n:] = np.concatenate(self._jpeg_parts)
        self._jpeg_parts, self._jpeg_pending = [], 0

    def finish(self, *, fps: float, source: str, label: str | None, split: str | None) -> int:
        """Flush buffers, check stream lengths, write attributes; returns the number of frames."""
        if "frames" in self.streams:
            if self.image_format == "jpeg":
                self._flush_jpeg()
                self.group.create_dataset("frames_offsets", data=np.asarray(self._offsets, dtype=np.int64))
            else:
                self._raw.flush()
        for appender in (self._flow, self._diff, self._mb):
            if appender is not None:
                appender.flush()
                if len(appender) != max(self.n_frames - 1, 0):
                    raise ValueError(f"{appender.dataset.name}: {len(appender)} items for {self.n_frames} frames")
        a = self.group.attrs
        a["n_frames"], a["fps"], a["height"], a["width"] = self.n_frames, float(fps), *self.shape
        a["source"], a["label"], a["split"] = source, label or "", split or ""
        return self.n_frames


def _range(n: int, start: int, stop: int | None, step: int, what: str) -> range:
    stop = n if stop is None else stop
    if not (0 <= start <= stop <= n) or step < 1:
        raise IndexError(f"{what}: range [{start}:{stop}:{step}] outside 0..{n}")
    return range(start, stop, step)


class StoredVideo:
    """Reads one video group; its attributes, frame offsets and dataset handles are looked up once, so
    repeated clip reads of the video cost one HDF5 read each (keep one per video and stream while reading)."""

    def __init__(self, group: h5py.Group) -> None:
        self.group = group
        self._items: dict[str, h5py.Dataset] = {}

    @functools.cached_property
    def frame_shape(self) -> tuple[int, int]:
        """Frame (height, width)."""
        return int(self.group.attrs["height"]), int(self.group.attrs["width"])

    @functools.cached_property
    def _frames(self) -> tuple[h5py.Dataset, np.ndarray | None]:
        """(``frames`` dataset, None) for raw frames; (``frames_jpeg`` dataset, offsets int64 [T+1]) for JPEG."""
        g = self.group
        if "frames" in g:
            return g["frames"], None
        if "frames_offsets" not in g:
            raise KeyError(f"{g.file.filename}: video {g.name} has no frames stream")
        return g["frames_jpeg"], g["frames_offsets"][()]

    def read_frames(self, start: int = 0, stop: int | None = None, step: int = 1) -> np.ndarray:
        """Frames ``start:stop:step`` as RGB uint8 [T,H,W,3]."""
        data, offsets = self._frames
        if offsets is None:
            idx = _range(data.shape[0], start, stop, step, self.group.name)
            return data[idx.start:idx.stop:step] if len(idx) else np.zeros((0, *self.frame_shape, 3), np.uint8)
        idx = _range(len(offsets) - 1, start, stop, step, self.group.name)
        out = np.empty((len(idx), *self.frame_shape, 3), np.uint8)
        if len(idx):
            base = int(offsets[idx.start])
            blob = data[base:int(offsets[idx[-1] + 1])]
            for i, t in enumerate(idx):
                out[i] = decode_jpeg(blob[offsets[t] - base:offsets[t + 1] - base])
        return out

    def iter_frames(self) -> Iterator[np.ndarray]:
        """Stored frames one at a time, RGB uint8 [H,W,3] (bounded memory)."""
        n = int(self.group.attrs["n_frames"])
        for start in range(0, n, _SLAB):
            yield from self.read_frames(start, min(start + _SLAB, n))

    def iter_jpeg(self) -> Iterator[np.ndarray]:
        """Stored JPEG frames one at a time as their bytes, uint8 [n] (bounded memory)."""
        data, offsets = self._frames
        if offsets is None:
            raise ValueError(f"{self.group.file.filename}: video {self.group.name} has raw frames, not JPEG")
        n = len(offsets) - 1
        for start in range(0, n, _SLAB):
            stop = min(start + _SLAB, n)
            base = int(offsets[start])
            blob = data[base:int(offsets[stop])]
            for t in range(start, stop):
                yield blob[offsets[t] - base:offsets[t + 1] - base]

    def read_items(self, name: str, start: int = 0, stop: int | None = None, step: int = 1) -> np.ndarray:
        """Items ``start:stop:step`` of per-pair dataset ``name`` ('flow' or 'mb' uint8 [T,H,W,2], 'diff' int16 [T,H,W])."""
        ds = self._items.get(name)
        if ds is None:
            if name not in self.group:
                raise KeyError(f"{self.group.file.filename}: video {self.group.name} has no {name} stream")
            ds = self._items[name] = self.group[name]
        idx = _range(ds.shape[0], start, stop, step, f"{self.group.name}/{name}")
        return ds[idx.start:idx.stop:step] if len(idx) else np.zeros((0, *ds.shape[1:]), ds.dtype)


def read_frames(group: h5py.Group, start: int = 0, stop: int | None = None, step: int = 1) -> np.ndarray:
    """Frames ``start:stop:step`` of a video group as RGB uint8 [T,H,W,3]."""
    return StoredVideo(group).read_frames(start, stop, step)


def iter_frames(group: h5py.Group) -> Iterator[np.ndarray]:
    """Stored frames of a video group one at a time, RGB uint8 [H,W,3] (bounded memory)."""
    return StoredVideo(group).iter_frames()


def copy_videos(sources: Iterable[Path], target: Path, settings: dict[str, Any]) -> list[str]:
    """Copy every video group of the part files ``sources`` into a new file ``target`` (chunks copied as
    stored, not recompressed); returns the video ids in order. ``settings`` maps each stream of the
    shard to its settings; every part must have been written with exactly these."""
    ids: list[str] = []
    expected = json.loads(json.dumps(settings))
    with h5py.File(target, "w") as out:
        videos = out.create_group(VIDEOS)
        for source in sources:
            with open_read_only(source) as part:
                meta = read_file_attrs(part)
                if meta["settings"] != expected:
                    raise ValueError(f"{source}: streams/settings {meta['settings']} differ from the shard's {expected}")
                for video_id in meta["videos"]:
                    parent, _, name = video_id.rpartition("/")
                    dest = videos.require_group(parent) if parent else videos
                    part.copy(part[f"{VIDEOS}/{video_id}"], dest, name=name)
                    ids.append(video_id)
        write_file_attrs(out, settings, settings, ids)
    return ids
