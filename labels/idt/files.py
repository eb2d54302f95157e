"""File side of IDT: grey frames of a video, the release's human-box files and its gzip text output."""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from preprocess.decode import iter_frames


def grey_frames(video_path: str | Path, size: tuple[int, int] | None = None,
                short_side: int | None = None) -> Iterator[np.ndarray]:
    """uint8 [H, W] grey frames (``cv2.COLOR_BGR2GRAY`` as the release) decoded one at a time by
    :func:`preprocess.decode.iter_frames`, optionally resized to ``size`` (h, w) or ``short_side``.
    Raises ``DecodeError`` for an unreadable, truncated or one-frame video."""
    for frame in iter_frames(video_path, size=size, short_side=short_side, bgr=True):
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def read_human_boxes(path: str | Path) -> dict[int, np.ndarray]:
    """The release's box file (``-H``): one line per frame, ``frame x1 y1 x2 y2 score [x1 y1 ...]``.

    Returns:
        frame index -> float64 [B, 5] (x1, y1, x2, y2, score).
    """
    boxes = {}
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if not fields:
            continue
        values = np.array(fields[1:], np.float64)
        if len(values) % 5:
            raise ValueError(f"{path}: a box needs 5 numbers, got {len(values)} on the line of frame {fields[0]}")
        boxes[int(fields[0])] = values.reshape(-1, 5)
    return boxes


def write_release_text(rows: np.ndarray, path: str | Path, track_length: int = 15) -> None:
    """Write rows float [N, 436] as the release prints them, gzip-compressed: tab-separated, a tab after
    every value; frame_end as an integer, the other info and trajectory numbers (9 + 2L) with 6 decimals
    (``%f``), the descriptors with 7 (``%.7f``)."""
    rows = np.asarray(rows)
    first_descriptor = 10 + 2 * track_length
    with gzip.open(path, "wt", encoding="ascii") as out:
        for row in rows:
            fields = ([str(int(row[0]))] + [f"{v:f}" for v in row[1:first_descriptor]]
                      + [f"{v:.7f}" for v in row[first_descriptor:]])
            out.write("\t".join(fields) + "\t\n")


def read_release_text(path: str | Path) -> np.ndarray:
    """Rows float32 [N, C] of a release text file, gzip-compressed or not."""
    opener = gzip.open if Path(path).suffix == ".gz" else open
    with opener(path, "rt") as text:
        rows = [np.array(line.split(), np.float32) for line in text if line.strip()]
    return np.stack(rows) if rows else np.zeros((0, 436), np.float32)
