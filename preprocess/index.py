"""The dataset index: ``index.json`` mapping every video to the shard of each stream, plus settings and failures.

Shards are self-describing (see ``preprocess.shards``), so the index can always be brought up to date
from the shard files on disk (:func:`add_new_shards`); it is rewritten atomically (temp name, then
``os.replace``) after every change.
"""
from __future__ import annotations

import dataclasses
import json
import os
import uuid
from pathlib import Path
from typing import Any


from preprocess import shards

INDEX_NAME = "index.json"
SHARD_DIR = "shards"
FORMAT = "vssl-dataset"
VERSION = 1


class DatasetError(Exception):
    """A dataset directory that cannot be read or extended; the message names the file and the reason."""


@dataclasses.dataclass
class Index:
    """Contents of ``index.json``.

    ``settings`` maps each stream ('frames', 'flow', 'diff') to the settings that produced it;
    ``videos`` maps a video id to ``{path, label, split, n_frames, fps, height, width, shards: {stream: file}}``;
    ``shards`` maps a shard file (relative to the dataset) to ``{streams, videos, bytes}``;
    ``failures`` maps a video id to ``{path, reason}``.
    """

    settings: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    classes: list[str] = dataclasses.field(default_factory=list)
    videos: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    shards: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    failures: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    source: str | None = None


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
    """Write ``ROOT/index.json`` atomically."""
    path = index_path(root)
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex}")
    tmp.write_text(json.dumps({"format": FORMAT, "version": VERSION, **dataclasses.asdict(index)}, indent=1))
    os.replace(tmp, path)


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


def add_new_shards(index: Index, root: str | Path) -> list[str]:
    """Register shards present on disk but missing from the index (e.g. after a killed run); returns them."""
    new = [rel for rel in shard_files(root) if rel not in index.shards]
    for rel in new:
        add_shard(index, root, rel)
    return new
