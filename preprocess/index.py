"""The dataset index: ``index.json`` mapping every video to the shard of each stream, plus settings and failures.

Shards are self-describing (see ``preprocess.shards``), so the index can always be brought up to date
from the shard files on disk (:func:`add_new_shards`). It is rewritten atomically (temp name, then
``os.replace``); during a run at most every ``SAVE_INTERVAL_S`` seconds (:class:`IndexSaver`), since
rewriting a large index after every shard would make the client the bottleneck.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from common.atomic import write_json_atomic
from preprocess import shards

INDEX_NAME = "index.json"
SHARD_DIR = "shards"
FORMAT = "vssl-dataset"
VERSION = 1
SAVE_INTERVAL_S = 30.0  # during a run; 100k videos: 28 MB of JSON, ~0.5 s to write


class DatasetError(Exception):
    """A dataset directory that cannot be read or extended; the message names the file and the reason."""


@dataclasses.dataclass
class Index:
    """Contents of ``index.json``.

    ``settings`` maps each stream ('frames', 'flow', 'diff') to the settings that produced it;
    ``videos`` maps a video id to ``{path, label, split, n_frames, fps, height, width, shards: {stream: file}}``;
    ``shards`` maps a shard file (relative to the dataset) to ``{streams, videos, bytes}``;
    ``failures`` maps a video id to ``{path, reason, kind: transient|permanent, attempts}``;
    ``fingerprints`` maps a video id to its source's ``inputs.fingerprint`` when it was extracted.
    """

    settings: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    classes: list[str] = dataclasses.field(default_factory=list)
    videos: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    shards: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    failures: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    source: str | None = None
    fingerprints: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def index_path(root: str | Path) -> Path:
    """``ROOT/index.json``."""
    return Path(root) / INDEX_NAME


def load_index(root: str | Path) -> Index:
    """Read ``ROOT/index.json``; raises DatasetError naming the file if it is missing or malformed."""
    path = index_path(root)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: no dataset index here (run extract-frames or extract-flow first)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable dataset index: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DatasetError(f"{path}: not a {FORMAT} index")
    if data.get("version") != VERSION:
        raise DatasetError(f"{path}: index version {data.get('version')} (this code reads {VERSION})")
    names = [f.name for f in dataclasses.fields(Index)]
    return Index(**{k: data[k] for k in names if k in data})


def save_index(root: str | Path, index: Index) -> None:
    """Write ``ROOT/index.json`` atomically (compact JSON)."""
    # the fields as they are: no deep copy (dataclasses.asdict), ~8x faster for a large index (bench_index.py)
    fields = {f.name: getattr(index, f.name) for f in dataclasses.fields(Index)}
    write_json_atomic(index_path(root), {"format": FORMAT, "version": VERSION, **fields}, separators=(",", ":"))


class IndexSaver:
    """Saves ``index`` to ``ROOT/index.json`` on :meth:`changed` when ``interval_s`` has passed since the last
    save, and on :meth:`save`. A run killed between saves loses nothing: its finished shards are on disk
    (:func:`add_new_shards` registers them again) and its unrecorded failures are simply retried."""

    def __init__(self, root: str | Path, index: Index, interval_s: float = SAVE_INTERVAL_S) -> None:
        self.root, self.index, self.interval_s = root, index, interval_s
        self.last = time.monotonic()

    def changed(self) -> None:
        if time.monotonic() - self.last >= self.interval_s:
            self.save()

    def save(self) -> None:
        save_index(self.root, self.index)
        self.last = time.monotonic()


def add_shard(index: Index, root: str | Path, relpath: str) -> None:
    """Register the finished shard ``ROOT/relpath``: its videos, streams and size (the shard is the truth)."""
    path = Path(root) / relpath
    with shards.open_read_only(path) as f:
        meta = shards.read_file_attrs(f)
        for stream in meta["streams"]:
            recorded = index.settings.get(stream)
            wanted = meta["settings"][stream]
            if recorded is not None and recorded != wanted:
                raise DatasetError(f"{path}: {stream} settings differ from the rest of the dataset")
            index.settings[stream] = wanted
        for video_id in meta["videos"]:
            record = index.videos.get(video_id) or shards.video_attrs(f[f"{shards.VIDEOS}/{video_id}"])
            record.setdefault("shards", {}).update({s: relpath for s in meta["streams"]})
            index.videos[video_id] = record
            index.failures.pop(video_id, None)
    index.shards[relpath] = {"streams": meta["streams"], "videos": len(meta["videos"]), "bytes": path.stat().st_size}


def shard_files(root: str | Path) -> list[str]:
    """Finished shard files under ``ROOT/shards`` (relative paths, sorted)."""
    folder = Path(root) / SHARD_DIR
    return sorted(f"{SHARD_DIR}/{p.name}" for p in folder.glob("*.h5")) if folder.is_dir() else []


def add_new_shards(index: Index, root: str | Path) -> tuple[list[str], dict[str, str]]:
    """Register shards present on disk but missing from the index (e.g. after a killed run); returns them and
    ``{shard: problem}`` for those that cannot be read (deleted: their videos are extracted again)."""
    added, unreadable = [], {}
    for rel in [rel for rel in shard_files(root) if rel not in index.shards]:
        try:
            add_shard(index, root, rel)
            added.append(rel)
        except (OSError, KeyError, ValueError) as exc:
            unreadable[rel] = f"unreadable: {' '.join(str(exc).split())[:200]}"
            (Path(root) / rel).unlink()
    return added, unreadable
