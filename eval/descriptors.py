"""Stored video descriptors evaluated like network features (no backbone): the IDT Fisher vectors of the
``fisher`` label family, or any HDF5 file in its format.

Format: datasets ``videos`` (str [V], the dataset's video ids) and ``vectors`` (float [V, D]); ``vector``
is read when there is no ``vectors`` (the field name of the ``fisher`` family's consolidated file).
``--weights idt`` reads ``DATASET/labels/fisher/fisher.h5``; ``--weights descriptors:FILE.h5`` reads FILE.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from labels.store import labels_root

IDT = "idt"
PREFIX = "descriptors:"
IDT_FILE = ("fisher", "fisher.h5")  # under the dataset's labels folder
VECTOR_NAMES = ("vectors", "vector")  # the first present is read
BASELINE_FAMILIES = {IDT: ("idt", "fisher")}  # label families each hand-crafted baseline is made from
NETWORK_ONLY_TASKS = ("finetune", "similarity")  # fine-tuning needs a network; similarity non-negative features


def descriptor_source(weights: str | Path, data_dir: str | Path, labels_dir: str | Path | None = None) -> Path | None:
    """The descriptor file that ``weights`` names (``idt``: in ``labels_dir``, default DATA/labels, or
    ``descriptors:FILE``), or None for a network."""
    text = str(weights)
    if text == IDT:
        return labels_root(data_dir, labels_dir).joinpath(*IDT_FILE)
    if text.startswith(PREFIX):
        if not text[len(PREFIX):]:
            raise ValueError("--weights descriptors:FILE needs a file name after 'descriptors:'")
        return Path(text[len(PREFIX):])
    return None


def model_name(weights: str | Path) -> str:
    """Name of the descriptor 'model' in a report: ``idt`` for the IDT baseline, else ``descriptors``."""
    return IDT if str(weights) == IDT else "descriptors"


class Descriptors(NamedTuple):
    """Rows of the asked videos (float32 [N, D], zeros for a missing video) and the ids without a row."""

    vectors: np.ndarray
    missing: list[str]


def read_descriptors(path: str | Path, video_ids: list[str], max_missing_fraction: float = 0.0) -> Descriptors:
    """Rows of ``video_ids`` (in that order) from a descriptor file.

    A video without a row (e.g. one where IDT found no trajectory, so the fisher family failed it) gets a
    zero row, as long as at most ``max_missing_fraction`` of the videos lack one. Raises FileNotFoundError
    naming the file when it is missing, ValueError naming it when a dataset is missing or malformed, more
    videos lack a row, or a vector is not finite.
    """
    path = Path(path)
    if not path.is_file():
        hint = " (make it with: python cli.py make-labels --task fisher)" if path.parts[-2:] == IDT_FILE else ""
        raise FileNotFoundError(f"{path}: no descriptor file{hint}")
    try:
        with h5py.File(path, "r") as handle:
            name = next((n for n in VECTOR_NAMES if n in handle), None)
            if "videos" not in handle or name is None:
                raise ValueError(f"{path}: not a descriptor file, no dataset {'videos' if name else 'vectors'!r} "
                                 f"(expected 'videos' str [V] and 'vectors' float [V, D])")
            stored = [v.decode() if isinstance(v, bytes) else str(v) for v in handle["videos"][()]]
            vectors = handle[name]
            if vectors.ndim != 2 or vectors.shape[0] != len(stored):
                raise ValueError(f"{path}: {name!r} has shape {vectors.shape}, expected [{len(stored)}, D] "
                                 f"(one row per entry of 'videos')")
            row = {vid: i for i, vid in enumerate(stored)}
            absent = [vid for vid in video_ids if vid not in row]
            if len(absent) > max_missing_fraction * len(video_ids):
                raise ValueError(f"{path}: no descriptor for {len(absent)} of {len(video_ids)} videos, e.g. "
                                 f"{', '.join(absent[:3])} (at most {max_missing_fraction:.0%} may lack one: "
                                 f"eval.descriptors.max_missing_fraction)")
            stored_rows = np.asarray(vectors[()], dtype=np.float32)
            x = np.zeros((len(video_ids), stored_rows.shape[1]), dtype=np.float32)
            present = [i for i, vid in enumerate(video_ids) if vid in row]
            x[present] = stored_rows[[row[video_ids[i]] for i in present]]
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from exc
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(f"{path}: descriptor of {video_ids[int(np.argmax(bad))]} is not finite")
    return Descriptors(x, absent)
