"""The index checked against the shards: missing, truncated or unreadable shards, and their repair.

:func:`damaged_shards` is cheap (each shard's size against the index, its header and every indexed video's
datasets present) unless ``deep``, which also reads every dataset through (``inspect --verify``).
:func:`forget_shards` drops damaged shards from the index so the next extraction re-extracts their videos.
"""
from __future__ import annotations

from pathlib import Path

import h5py

from preprocess import shards
from preprocess.index import Index

REPAIR_HINT = "run the same extract command again to re-extract its videos (it repairs damaged shards)"
_DATASETS = {"flow": ("flow",), "diff": ("diff",), "mb": ("mb",)}  # frames: "frames" (raw) or "frames_jpeg" + "frames_offsets"


def _videos_of(index: Index, rel: str) -> list[str]:
    return sorted(vid for vid, rec in index.videos.items() if rel in rec.get("shards", {}).values())


def _check_video(group: h5py.Group, streams: list[str], deep: bool) -> None:
    for stream in streams:
        names = _DATASETS.get(stream) or (("frames",) if "frames" in group else ("frames_jpeg", "frames_offsets"))
        for name in names:
            if name not in group:
                raise KeyError(f"{group.name}: no {name} dataset")
            if deep:
                group[name][()]  # reads every chunk: a truncated or corrupted one raises


def shard_problem(root: str | Path, index: Index, rel: str, deep: bool = False) -> str | None:
    """Why shard ``ROOT/rel`` does not hold what the index says (None when it does)."""
    path = Path(root) / rel
    if not path.is_file():
        return "missing"
    recorded = index.shards.get(rel, {}).get("bytes")
    if recorded is not None and path.stat().st_size != recorded:
        return f"{path.stat().st_size} bytes, the index recorded {recorded} (truncated or replaced)"
    try:
        with shards.open_read_only(path) as f:
            streams = shards.read_file_attrs(f)["streams"]
            for vid in _videos_of(index, rel):
                _check_video(f[f"{shards.VIDEOS}/{vid}"], streams, deep)
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        return f"unreadable: {' '.join(str(exc).split())[:200]}"
    return None


def damaged_shards(root: str | Path, index: Index, deep: bool = False) -> dict[str, str]:
    """``{shard (relative path): problem}`` for every indexed shard that is missing, truncated or unreadable."""
    found = {rel: shard_problem(root, index, rel, deep) for rel in sorted(index.shards)}
    return {rel: problem for rel, problem in found.items() if problem is not None}


def forget_shards(root: str | Path, index: Index, damaged: list[str]) -> list[str]:
    """Drop ``damaged`` shards from the index and delete their files; a video keeps its streams in other shards
    (a video left with none is dropped). Returns the ids of the videos that lost a stream."""
    affected = set()
    for rel in damaged:
        for vid in _videos_of(index, rel):
            record = index.videos[vid]
            record["shards"] = {s: r for s, r in record["shards"].items() if r != rel}
            if not record["shards"]:
                del index.videos[vid]
            affected.add(vid)
        index.shards.pop(rel, None)
        (Path(root) / rel).unlink(missing_ok=True)
    return sorted(affected)
