"""Read-only access to an extracted dataset (index + HDF5 shards), safe to pickle into worker processes.

>>> ds = Dataset("data/ucf101_x")
>>> clip = ds.read_frames(ds.videos[0].id, 0, 16)        # uint8 [16,H,W,3] RGB
>>> flow = ds.read_flow(ds.videos[0].id, 0, 15)          # float32 [15,H,W,2] (u, v) px, frame t -> t+1
>>> mb = ds.read_motion_boundaries(ds.videos[0].id, 0, 15)  # float32 [15,H,W,2] |grad u|, |grad v| px/px

HDF5 files are opened lazily, per process, read-only; pickling drops open handles (torch DataLoader
workers and Dask tasks reopen them on first use). Each video's attributes, frame offsets and dataset
handles are looked up once per process (``OPEN_VIDEOS`` at most), not on every read.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from preprocess import motion_boundaries, shards
from preprocess.difference import decode_difference
from preprocess.flow_codec import dequantize
from preprocess.index import DatasetError, load_index
from preprocess.integrity import REPAIR_HINT

OPEN_VIDEOS = 2048  # video readers kept open per process (each holds its frame offsets: T+1 int64)


@dataclasses.dataclass(frozen=True)
class VideoRecord:
    """One extracted video: ``id`` (path relative to the input, no extension), source ``path``, ``label``,
    ``split`` ('train'/'test'/None), stored ``n_frames`` and their ``fps``, frame ``height`` x ``width``."""

    id: str
    path: str
    label: str | None
    split: str | None
    n_frames: int
    fps: float
    height: int
    width: int


def _check_shard_files(root: Path, recorded: dict[str, dict[str, Any]]) -> None:
    """Raise DatasetError naming every shard that is missing or has another size than the index recorded."""
    bad = []
    for rel, info in sorted(recorded.items()):
        path = root / rel
        if not path.is_file():
            bad.append(f"{path} (missing)")
        elif "bytes" in info and path.stat().st_size != info["bytes"]:
            bad.append(f"{path} ({path.stat().st_size} bytes, the index says {info['bytes']})")
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise DatasetError(f"{root}: damaged shard(s) {'; '.join(bad[:5])}{more}: {REPAIR_HINT}")


class Dataset:
    """An extracted dataset directory (see docs/FORMAT.md); never writes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        index = load_index(self.path)
        _check_shard_files(self.path, index.shards)
        self._settings = index.settings
        self._classes = list(index.classes)
        self._shards = {vid: rec["shards"] for vid, rec in index.videos.items()}
        self.failures: dict[str, dict[str, str]] = dict(index.failures)
        complete = {vid for vid, rec in index.videos.items() if set(index.settings) <= set(rec["shards"])}
        # videos lacking a stream of the dataset (its extraction failed or is still running) are left out
        self.incomplete: list[str] = sorted(set(index.videos) - complete)
        fields = [f.name for f in dataclasses.fields(VideoRecord) if f.name != "id"]
        self._videos = [VideoRecord(id=vid, **{k: index.videos[vid][k] for k in fields}) for vid in sorted(complete)]
        self._by_id = {v.id: v for v in self._videos}
        self._files: dict[str, h5py.File] = {}
        self._open: dict[tuple[str, str], shards.StoredVideo] = {}  # (video id, stream) -> reader, oldest first
        self._pid = os.getpid()

    @property
    def videos(self) -> list[VideoRecord]:
        """Every video holding all streams of the dataset, sorted by id."""
        return list(self._videos)

    @property
    def classes(self) -> list[str]:
        """Class names (sorted); a video's class index is ``classes.index(video.label)``."""
        return list(self._classes)

    @property
    def settings(self) -> dict[str, dict[str, Any]]:
        """Settings each stream was extracted with: ``{'frames': {...}, 'flow': {...}, 'diff': {...}}`` (and 'mb')."""
        return {k: dict(v) for k, v in self._settings.items()}

    @property
    def flow_bound(self) -> float:
        """The flow quantization bound in px (flow clipped to [-bound, bound])."""
        if "flow" not in self._settings:
            raise DatasetError(f"{self.path}: dataset has no flow stream")
        return float(self._settings["flow"]["bound"])

    @property
    def motion_boundaries_bound(self) -> float:
        """The clipping bound of the stored motion boundaries in px/px (code step: bound / 255)."""
        if "mb" not in self._settings:
            raise DatasetError(f"{self.path}: dataset has no motion boundaries (mb) stream; add it with "
                               "extract-flow --motion-boundaries")
        return float(self._settings["mb"]["bound"])

    def has_stream(self, name: str) -> bool:
        """Whether the dataset (hence every video in ``videos``) holds stream ``name`` ('frames', 'flow', 'diff',
        'mb')."""
        if name not in shards.STREAMS:
            raise ValueError(f"unknown stream {name!r} (known: {', '.join(shards.STREAMS)})")
        return bool(self._videos) and name in self._settings

    def video(self, video_id: str) -> VideoRecord:
        """The record of ``video_id``."""
        try:
            return self._by_id[video_id]
        except KeyError:
            why = " (it lacks a stream: extraction failed or is unfinished)" if video_id in self.incomplete else ""
            raise KeyError(f"{self.path}: no video {video_id!r} in this dataset{why}") from None

    def _stored(self, video_id: str, stream: str) -> shards.StoredVideo:
        """The reader of one video's stream, kept per process (at most ``OPEN_VIDEOS``, oldest dropped first)."""
        if os.getpid() != self._pid:  # forked: handles of the parent must not be used here
            self._files, self._open, self._pid = {}, {}, os.getpid()
        stored = self._open.get((video_id, stream))
        if stored is not None:
            return stored
        self.video(video_id)
        rel = self._shards[video_id].get(stream)
        if rel is None:
            raise KeyError(f"{self.path}: video {video_id!r} has no {stream} stream")
        f = self._files.get(rel)
        if f is None:
            try:
                f = self._files[rel] = shards.open_read_only(self.path / rel)
            except OSError as exc:
                raise DatasetError(f"{self.path / rel}: cannot open shard: {exc}; {REPAIR_HINT}") from exc
        if len(self._open) >= OPEN_VIDEOS:
            del self._open[next(iter(self._open))]
        try:
            group = f[f"{shards.VIDEOS}/{video_id}"]
        except KeyError:
            raise DatasetError(f"{self.path / rel}: holds no video {video_id!r} though the index says so; "
                               f"{REPAIR_HINT}") from None
        stored = self._open[(video_id, stream)] = shards.StoredVideo(group)
        return stored

    def _read(self, video_id: str, stream: str, name: str, start: int, stop: int | None, step: int) -> np.ndarray:
        """Stored items of one stream (frames decoded to RGB); a damaged shard raises DatasetError naming it."""
        stored = self._stored(video_id, stream)
        try:
            if name == "frames":
                return stored.read_frames(start, stop, step)
            return stored.read_items(name, start, stop, step)
        except (OSError, RuntimeError) as exc:  # h5py on a corrupted chunk
            shard = self.path / self._shards[video_id][stream]
            raise DatasetError(f"{shard}: cannot read the {stream} of video {video_id!r} ({exc}); {REPAIR_HINT}") from exc

    def read_frames(self, video_id: str, start: int = 0, stop: int | None = None, step: int = 1) -> np.ndarray:
        """Frames ``start:stop:step`` as RGB uint8 [T,H,W,3]."""
        return self._read(video_id, "frames", "frames", start, stop, step)

    def read_flow_codes(self, video_id: str, start: int = 0, stop: int | None = None, step: int = 1) -> np.ndarray:
        """Stored flow codes ``start:stop:step`` as uint8 [T,H,W,2]; flow t goes from frame t to t+1."""
        return self._read(video_id, "flow", "flow", start, stop, step)

    def read_flow(self, video_id: str, start: int = 0, stop: int | None = None, step: int = 1) -> np.ndarray:
        """Flow ``start:stop:step`` in px as float32 [T,H,W,2] (u, v); a video has n_frames-1 flows."""
        return dequantize(self.read_flow_codes(video_id, start, stop, step), self.flow_bound)

    def read_diff(self, video_id: str, start: int = 0, stop: int | None = None, step: int = 1) -> np.ndarray:
        """Image differences ``start:stop:step`` as float32 [T,H,W]: gray frame t+1 minus frame t, in [-255, 255]."""
        return decode_difference(self._read(video_id, "diff", "diff", start, stop, step))

    def read_motion_boundaries(self, video_id: str, start: int = 0, stop: int | None = None,
                               step: int = 1) -> np.ndarray:
        """Motion boundaries ``start:stop:step`` as float32 [T,H,W,2]: ``|grad u|``, ``|grad v|`` (px/px) of flow t,
        clipped to ``motion_boundaries_bound``; a video has n_frames-1 of them."""
        codes = self._stored(video_id, "mb").read_items("mb", start, stop, step)
        return motion_boundaries.dequantize(codes, self.motion_boundaries_bound)

    def close(self) -> None:
        """Close the HDF5 files this process opened."""
        self._open = {}
        for f in self._files.values():
            f.close()
        self._files = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_files"], state["_open"] = {}, {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    def __enter__(self) -> "Dataset":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._videos)

    def __repr__(self) -> str:
        streams = [s for s in shards.STREAMS if self.has_stream(s)]
        return f"Dataset({str(self.path)!r}, videos={len(self._videos)}, streams={streams})"
