"""``inspect``: a plain-text description of what a dataset directory holds."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from preprocess.index import load_index
from preprocess.shards import STREAMS

MAX_LISTED = 20  # shards listed one per line


def _mb(n: float) -> str:
    return f"{n / (1 << 20):.1f} MB"


def describe_dataset(root: str | Path) -> str:
    """Videos (per split and class), frames, streams, shards and sizes, settings, and failures by path/reason."""
    root = Path(root)
    index = load_index(root)
    videos = index.videos
    frames = sum(v["n_frames"] for v in videos.values())
    lines = [f"dataset {root}" + (f" (from {index.source})" if index.source else "")]
    lines.append(f"videos: {len(videos)} extracted, {len(index.failures)} failed; {frames} frames")
    if videos:
        splits = Counter(v.get("split") or "none" for v in videos.values())
        lines.append("splits: " + ", ".join(f"{k} {n}" for k, n in sorted(splits.items())))
        labels = Counter(v.get("label") or "-" for v in videos.values())
        per_class = ": " + ", ".join(f"{k} {n}" for k, n in sorted(labels.items())) if len(labels) <= 20 else ""
        lines.append(f"classes: {len(index.classes)}{per_class}")
    for stream in STREAMS:
        n = sum(stream in v["shards"] for v in videos.values())
        if n or stream in index.settings:
            lines.append(f"stream {stream}: {n}/{len(videos)} videos")
    total = sum(s["bytes"] for s in index.shards.values())
    lines.append(f"shards: {len(index.shards)}, {_mb(total)} in all")
    listed = sorted(index.shards.items())
    for rel, info in listed[:MAX_LISTED]:
        lines.append(f"  {rel}: {info['videos']} videos, {'+'.join(info['streams'])}, {_mb(info['bytes'])}")
    if len(listed) > MAX_LISTED:
        lines.append(f"  ... and {len(listed) - MAX_LISTED} more")
    lines.append("settings:")
    lines += [f"  {stream}: {json.dumps(s, sort_keys=True)}" for stream, s in sorted(index.settings.items())]
    if index.failures:
        lines.append("failures:")
        lines += [f"  {f['path']}: {f['reason']}" for _, f in sorted(index.failures.items())]
    return "\n".join(lines)
