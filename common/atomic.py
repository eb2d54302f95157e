"""Atomic file writes: a file appears under its final name only once completely written.

The content goes to ``FINAL.tmp-<hex>`` in the same folder (the name ``common.locks.remove_stale_temporaries``
cleans up after a kill), is flushed to disk, then renamed over ``FINAL`` with ``os.replace``.
"""
from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterator

TMP_MARK = ".tmp-"  # temporary outputs are named FINAL + TMP_MARK + random hex


def temporary_name(path: str | Path) -> Path:
    """A fresh temporary name beside ``path``: ``path`` + ``.tmp-`` + 32 hex digits."""
    path = Path(path)
    return path.with_name(f"{path.name}{TMP_MARK}{uuid.uuid4().hex}")


def publish(tmp: str | Path, path: str | Path) -> None:
    """Flush the finished file ``tmp`` to disk and rename it to ``path`` (replacing any file there)."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to (with any writer: h5py, torch.save, numpy);
    on success it is published as ``path``, on any exception (or interrupt) it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | Path, data: Any, **dumps_kwargs: Any) -> None:
    """Write ``data`` as JSON (``json.dumps(data, **dumps_kwargs)``) to ``path`` atomically."""
    write_bytes_atomic(path, json.dumps(data, **dumps_kwargs).encode())
