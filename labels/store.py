"""Labels on disk: per-video part files, consolidated per-task files, recorded settings.

Layout of a labels folder (default ``DATASET/labels``; see docs/FORMAT.md): one sub-folder per label family
(task), so families made with different settings live side by side, and

- ``<task>/settings.json``: clip length, stride, crop size, crop variants and the frames/flow settings of the
  source dataset; a run with other settings is refused (:class:`LabelError`), never mixed in;
- ``<task>/parts/<video>.h5``: one file per video, written by ``make-labels`` (resumable);
- ``<task>/<task>.h5`` (``stats.h5``, ``curriculum.h5``): every row of every video, consolidated after a run;
- ``<task>/failures.json``: ``{video_id: {path, reason}}``;
- ``.lock``: held (flock) by a running ``make-labels``, so two runs never write one labels folder.

A row is one (video, clip start, crop variant). ``stats`` rows hold ``motion`` [14] and ``appearance``
[13] (uint8 on disk), ``curriculum`` rows hold ``score`` (float32).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import h5py
import numpy as np

from common.atomic import atomic_path, write_json_atomic
from common.settings import setting_differences
from labels.families import family

LABELS_DIR = "labels"
SETTINGS_FILE = "settings.json"
FAILURES_FILE = "failures.json"
LOCK_FILE = ".lock"  # held by a running make-labels
PART_DIR = "parts"
FORMAT = "vssl-labels"
INPUTS_ATTR = "inputs"  # a global family's file: the fingerprint of what it was computed from
VERSION = 1


class LabelError(Exception):
    """Labels that cannot be written or read as asked; the message names the file and the reason."""


def labels_root(dataset_dir: str | Path, labels_dir: str | Path | None = None) -> Path:
    """The labels folder: ``labels_dir`` if given, else ``DATASET/labels``."""
    return Path(labels_dir) if labels_dir is not None else Path(dataset_dir) / LABELS_DIR


def family_dir(root: Path, task: str) -> Path:
    """The folder of one label family (task) inside labels folder ``root``."""
    return root / task


def claim_settings(root: Path, task: str, recorded: Mapping[str, Any]) -> None:
    """Record ``recorded`` as the settings of ``task``'s labels in ``root``, or raise LabelError if they
    already exist with other settings."""
    path = family_dir(root, task) / SETTINGS_FILE
    if path.exists():
        have = read_settings(root, task)
        if have != recorded:
            differences = "; ".join(setting_differences(have, recorded, "there"))
            raise LabelError(
                f"{path}: these labels were made with other settings ({differences}); "
                "write to another --labels-dir, or delete this folder"
            )
        return
    write_json_atomic(path, dict(recorded), indent=1, sort_keys=True)


def read_settings(root: Path, task: str) -> dict[str, Any]:
    """The recorded settings of ``task``'s labels in labels folder ``root``."""
    path = family_dir(root, task) / SETTINGS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabelError(f"{path}: no {task} labels here (run make-labels --task {task} first)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise LabelError(f"{path}: unreadable label settings: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise LabelError(f"{path}: not {FORMAT} version {VERSION} settings")
    return data


def read_failures(root: Path, task: str) -> dict[str, dict[str, str]]:
    """``{video_id: {path, reason}}`` of ``task`` recorded by earlier runs (empty if none)."""
    path = family_dir(root, task) / FAILURES_FILE
    if not path.exists():
        return {}
    try:
        failures = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LabelError(f"{path}: unreadable failure record ({exc}); delete it to try every video again") from exc
    if not isinstance(failures, dict):
        raise LabelError(f"{path}: not a failure record (expected a mapping of video ids)")
    return failures


def write_failures(root: Path, task: str, failures: Mapping[str, Mapping[str, str]]) -> None:
    """Record ``{video_id: {path, reason}}`` of ``task`` in ``ROOT/<task>/failures.json``."""
    write_json_atomic(family_dir(root, task) / FAILURES_FILE, dict(failures), indent=1, sort_keys=True)


def part_path(root: Path, task: str, video_id: str) -> Path:
    """Part file of one video and task: a readable name plus a hash, unique per id."""
    readable = re.sub(r"[^\w.-]+", "_", video_id)[-80:]
    digest = hashlib.sha1(video_id.encode()).hexdigest()[:10]
    return family_dir(root, task) / PART_DIR / f"{readable}-{digest}.h5"


@dataclasses.dataclass
class VideoLabels:
    """The rows of one video for one task: ``start`` int64 [N], ``variant`` int64 [N] (index into the
    crop variants) and the task's ``values`` (``motion`` [N,14] / ``appearance`` [N,13], or ``score`` [N])."""

    start: np.ndarray
    variant: np.ndarray
    values: dict[str, np.ndarray]


def write_part(path: str | Path, task: str, video_id: str, labels: VideoLabels, recorded: Mapping[str, Any]) -> None:
    """Write one video's labels for ``task`` to a new file ``path``."""
    with h5py.File(path, "w") as f:
        f.attrs.update(format=f"{FORMAT}-part", version=VERSION, task=task, video_id=video_id,
                       settings=json.dumps(recorded, sort_keys=True))
        f.create_dataset("start", data=labels.start.astype(np.int32))
        f.create_dataset("variant", data=labels.variant.astype(np.int16))
        for name, (_, dtype) in family(task).fields.items():
            f.create_dataset(name, data=labels.values[name].astype(dtype))


def read_part(path: str | Path, task: str, recorded: Mapping[str, Any]) -> tuple[str, VideoLabels]:
    """Read a part file written by :func:`write_part`; LabelError if it is foreign or has other settings."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != f"{FORMAT}-part" or f.attrs.get("task") != task:
                raise LabelError(f"{path}: not a {task} label part")
            if json.loads(f.attrs["settings"]) != recorded:
                raise LabelError(f"{path}: made with other label settings than the rest of its labels folder")
            values = {name: f[name][()] for name in family(task).fields}
            return str(f.attrs["video_id"]), VideoLabels(f["start"][()].astype(np.int64),
                                                         f["variant"][()].astype(np.int64), values)
    except OSError as exc:
        raise LabelError(f"{path}: unreadable label part: {exc}") from exc


def consolidated_path(root: Path, task: str) -> Path:
    """The consolidated file of ``task``: ``ROOT/<task>/<task>.h5``."""
    return family_dir(root, task) / f"{task}.h5"


def consolidated_videos(root: Path, task: str) -> list[str] | None:
    """Video ids in the consolidated file of ``task`` (None when there is none)."""
    path = consolidated_path(root, task)
    if not path.exists():
        return None
    with h5py.File(path, "r") as f:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in f["videos"][()]] if "videos" in f else []


def consolidate(root: Path, task: str, video_ids: Iterable[str], recorded: Mapping[str, Any]) -> Path:
    """Gather the parts of ``video_ids`` (those that exist) into ``ROOT/<task>.h5`` (temp name, then rename).

    The file holds ``videos`` (str [V]), ``video_index`` int32 [N], ``start`` int32 [N], ``variant`` int16 [N]
    and the task's fields, rows ordered by video, start, variant; attribute ``settings`` (JSON).
    """
    videos, chunks = [], []
    for video_id in video_ids:
        path = part_path(root, task, video_id)
        if not path.exists():
            continue
        stored_id, labels = read_part(path, task, recorded)
        if stored_id != video_id:
            raise LabelError(f"{path}: holds video {stored_id!r}, expected {video_id!r}")
        chunks.append((len(videos), labels))
        videos.append(video_id)
    target = consolidated_path(root, task)
    with atomic_path(target) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(format=FORMAT, version=VERSION, task=task, settings=json.dumps(recorded, sort_keys=True))
            f.create_dataset("videos", data=np.array(videos, dtype=object), dtype=h5py.string_dtype())
            index = [np.full(len(labels.start), i, np.int32) for i, labels in chunks]
            f.create_dataset("video_index", data=np.concatenate(index) if index else np.zeros(0, np.int32))
            columns = {"start": np.int32, "variant": np.int16}
            for name, dtype in columns.items():
                parts = [getattr(labels, name) for _, labels in chunks]
                f.create_dataset(name, data=np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype))
            for name, (shape, dtype) in family(task).fields.items():
                parts = [labels.values[name] for _, labels in chunks]
                empty = np.zeros((0, *shape), dtype)
                f.create_dataset(name, data=np.concatenate(parts).astype(dtype) if parts else empty)
    return target


@dataclasses.dataclass
class ClipLabels:
    """Every labelled (video, clip start, crop variant) of a dataset as flat arrays (row i across fields).

    Attributes:
        video_id: str [N]; start: int64 [N], first frame of the clip; crop: int64 [N, 2], (y, x) of the crop;
        flip: bool [N]; variant: int64 [N], index into ``crop_variants``; motion: int64 [N, 14];
        appearance: int64 [N, 13]; score: float32 [N], curriculum score (NaN where not computed);
        clip_len, stride, crop_size: ints; crop_variants: list of (y, x, flip); settings: the recorded settings.
    """

    video_id: np.ndarray
    start: np.ndarray
    crop: np.ndarray
    flip: np.ndarray
    variant: np.ndarray
    motion: np.ndarray
    appearance: np.ndarray
    score: np.ndarray
    clip_len: int
    stride: int
    crop_size: int
    crop_variants: list[tuple[int, int, bool]]
    settings: dict[str, Any]

    def __len__(self) -> int:
        return len(self.start)


def _read_consolidated(root: Path, task: str, recorded: Mapping[str, Any]) -> dict[str, np.ndarray]:
    path = consolidated_path(root, task)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT or f.attrs.get("task") != task:
                raise LabelError(f"{path}: not a {FORMAT} {task} file")
            if json.loads(f.attrs["settings"]) != recorded:
                raise LabelError(f"{path}: made with other settings than {family_dir(root, task) / SETTINGS_FILE}")
            videos = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in f["videos"][()]], dtype=str)
            data = {name: f[name][()] for name in ("video_index", "start", "variant", *family(task).fields)}
    except OSError as exc:
        raise LabelError(f"{path}: unreadable labels: {exc}") from exc
    data["video_id"] = videos[data.pop("video_index")] if len(videos) else np.zeros(0, dtype=str)
    return data


def _row_keys(video_id: np.ndarray, start: np.ndarray, variant: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """int64 key per row, equal for equal (video, start, variant); ``ids`` is the sorted union of video ids."""
    return (np.searchsorted(ids, video_id).astype(np.int64) << 40) | (start.astype(np.int64) << 12) | variant


def load_clip_labels(dataset_dir: str | Path, labels_dir: str | Path | None = None) -> ClipLabels:
    """All stored labels of a dataset (``stats`` required, ``curriculum`` scores where computed) as a
    :class:`ClipLabels`; raises LabelError naming the file when they are missing or inconsistent."""
    root = labels_root(dataset_dir, labels_dir)
    recorded = read_settings(root, "stats")
    if not consolidated_path(root, "stats").exists():
        raise LabelError(f"{consolidated_path(root, 'stats')}: no statistics labels (run make-labels --task stats)")
    rows = _read_consolidated(root, "stats", recorded)
    score = np.full(len(rows["start"]), np.nan, np.float32)
    if consolidated_path(root, "curriculum").exists():
        differences = setting_differences(read_settings(root, "curriculum"), recorded, "in the curriculum labels")
        if differences:
            raise LabelError(f"{family_dir(root, 'curriculum')}: curriculum scores made for other clips than the "
                             f"statistics labels ({'; '.join(differences)}); make both with one setting")
        scored = _read_consolidated(root, "curriculum", recorded)
        ids = np.unique(np.concatenate([rows["video_id"], scored["video_id"]]))
        keys = _row_keys(rows["video_id"], rows["start"], rows["variant"], ids)
        scored_keys = _row_keys(scored["video_id"], scored["start"], scored["variant"], ids)
        order = np.argsort(scored_keys)
        sorted_keys, sorted_scores = scored_keys[order], scored["score"][order]
        position = np.clip(np.searchsorted(sorted_keys, keys), 0, max(len(order) - 1, 0))
        found = (sorted_keys[position] == keys) if len(order) else np.zeros(len(keys), bool)
        score[found] = sorted_scores[position[found]]
    variants = [(int(y), int(x), bool(flip)) for y, x, flip in recorded["crop_variants"]]
    variant = rows["variant"].astype(np.int64)
    table = np.array([(y, x) for y, x, _ in variants], dtype=np.int64).reshape(-1, 2)
    return ClipLabels(
        video_id=rows["video_id"],
        start=rows["start"].astype(np.int64),
        crop=table[variant],
        flip=np.array([flip for _, _, flip in variants], dtype=bool)[variant],
        variant=variant,
        motion=rows["motion"].astype(np.int64),
        appearance=rows["appearance"].astype(np.int64),
        score=score,
        clip_len=int(recorded["clip_len"]),
        stride=int(recorded["stride"]),
        crop_size=int(recorded["crop_size"]),
        crop_variants=variants,
        settings=recorded,
    )


def write_arrays(path: str | Path, task: str, video_id: str, arrays: Mapping[str, np.ndarray],
                 recorded: Mapping[str, Any], inputs: str | None = None) -> None:
    """Write named arrays of a video family (one video's part, ``video_id``) or of a global family (its whole
    result, ``video_id`` ``""``, with the fingerprint of its ``inputs``) to a new file ``path``; string arrays
    are stored as UTF-8."""
    with h5py.File(path, "w") as f:
        f.attrs.update(format=f"{FORMAT}-arrays", version=VERSION, task=task, video_id=video_id,
                       settings=json.dumps(recorded, sort_keys=True))
        if inputs is not None:
            f.attrs[INPUTS_ATTR] = inputs
        for name, value in arrays.items():
            value = np.asarray(value)
            if value.dtype.kind in "UO":
                f.create_dataset(name, data=value.astype(object), dtype=h5py.string_dtype())
            else:
                f.create_dataset(name, data=value, chunks=True if value.ndim == 2 and len(value) else None)


def read_arrays(path: str | Path, task: str, recorded: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Read a file written by :func:`write_arrays` (strings back as ``str``); LabelError naming the file when
    it is foreign, unreadable, or was made with other settings than ``recorded``."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != f"{FORMAT}-arrays" or f.attrs.get("task") != task:
                raise LabelError(f"{path}: not a {task} labels file")
            if recorded is not None and json.loads(f.attrs["settings"]) != recorded:
                raise LabelError(f"{path}: made with other label settings than the rest of its labels folder")
            out = {}
            for name, data in f.items():
                value = data[()]
                out[name] = (np.array([v.decode() if isinstance(v, bytes) else str(v) for v in value], dtype=str)
                             if data.dtype.kind == "O" else value)
            return out
    except OSError as exc:
        raise LabelError(f"{path}: unreadable labels: {exc}") from exc


def stored_inputs(path: str | Path, task: str, recorded: Mapping[str, Any]) -> str | None:
    """The input fingerprint recorded in a global family's file (:func:`write_arrays` ``inputs``); None when there
    is no such file, it is unreadable or foreign, was made with other settings than ``recorded``, or has none."""
    try:
        with h5py.File(path, "r") as f:
            if (f.attrs.get("format") != f"{FORMAT}-arrays" or f.attrs.get("task") != task
                    or json.loads(f.attrs.get("settings", "null")) != recorded):
                return None
            value = f.attrs.get(INPUTS_ATTR)
    except OSError:
        return None
    return str(value) if value is not None else None


def content_digest(path: str | Path, block_rows: int = 4096) -> str:
    """Hex SHA-256 of a labels file's content: its ``settings`` attribute and every dataset (name, dtype, shape,
    values; read ``block_rows`` rows at a time), so two files with equal arrays hash equal however they were
    written; LabelError naming the file when it is unreadable."""
    digest = hashlib.sha256()
    try:
        with h5py.File(path, "r") as f:
            digest.update(str(f.attrs.get("settings", "")).encode())
            names: list[str] = []
            f.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
            for name in sorted(names):
                data = f[name]
                digest.update(f"{name}:{data.dtype.str}:{data.shape}".encode())
                blocks = [()] if data.ndim == 0 else (slice(s, s + block_rows) for s in range(0, len(data), block_rows))
                for block in blocks:
                    value = data[block]
                    if data.dtype.kind == "O":  # strings: UTF-8, each ended by a NUL
                        digest.update(b"".join((v if isinstance(v, bytes) else str(v).encode()) + b"\0"
                                               for v in np.atleast_1d(value)))
                    else:
                        digest.update(np.ascontiguousarray(value).tobytes())
    except OSError as exc:
        raise LabelError(f"{path}: unreadable labels: {exc}") from exc
    return digest.hexdigest()


def consolidate_arrays(root: Path, task: str, fields: Iterable[str], video_ids: Iterable[str],
                       recorded: Mapping[str, Any]) -> Path:
    """Stack the fixed-shape ``fields`` of every existing part of ``video_ids`` into ``ROOT/<task>/<task>.h5``
    with ``videos`` (str [V]) in that order."""
    videos, stacked = [], {name: [] for name in fields}
    for video_id in video_ids:
        path = part_path(root, task, video_id)
        if path.exists():
            arrays = read_arrays(path, task, recorded)
            videos.append(video_id)
            for name in stacked:
                stacked[name].append(arrays[name])
    result = {"videos": np.array(videos, dtype=str)}
    result.update({name: np.stack(values) if values else np.zeros((0, 0)) for name, values in stacked.items()})
    target = consolidated_path(root, task)
    with atomic_path(target) as tmp:
        write_arrays(tmp, task, "", result, recorded)
    return target
