"""Labelling one video: every clip and crop variant, for one or more tasks in one pass (flow read and
motion boundaries computed once). Runs in a sandbox process on a Dask worker (``common.runner``); only
the small :class:`LabelJob` and a summary travel through Dask."""
from __future__ import annotations

import dataclasses
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from common.atomic import atomic_path
from common.memory import keep_freed_memory
from labels.crops import check_crop, clip_starts
from labels.families import ClipView, VideoContext, family
from labels.settings import LabelSettings
from labels.store import VideoLabels, family_dir, part_path, read_arrays, write_arrays, write_part
from preprocess.dataset import Dataset
from preprocess.streams import read_items, stream_length


@dataclasses.dataclass(frozen=True)
class LabelJob:
    """What to label: one video of a dataset, for ``tasks`` (from 'stats', 'curriculum'), whose parts go to
    the labels folder ``labels_dir``."""

    dataset_dir: str
    labels_dir: str
    video_id: str
    tasks: tuple[str, ...]
    settings: LabelSettings
    recorded: dict[str, dict[str, Any]]  # each task's recorded settings, stored in its parts


@lru_cache(maxsize=2)
def _open_dataset(path: str, index_mtime_ns: int) -> Dataset:
    return Dataset(path)


def open_dataset(path: str) -> Dataset:
    """A Dataset reader for ``path``, reused across the jobs a process runs while its index is unchanged."""
    return _open_dataset(path, os.stat(os.path.join(path, "index.json")).st_mtime_ns)


def label_video_clips(dataset: Dataset, video_id: str, tasks: Sequence[str],
                      settings: LabelSettings) -> dict[str, VideoLabels]:
    """Labels of every clip (``settings.clip_len`` frames every ``settings.stride``) and crop variant of a video,
    for each of the label families ``tasks``, in one pass over the video (what families share, e.g. the motion
    boundaries of a crop, is computed once per clip and crop).

    Raises ValueError naming the video's source file when a crop variant does not fit its frames.
    """
    if not tasks:
        raise ValueError("no label task given")
    families = [family(task) for task in tasks]
    video = dataset.video(video_id)
    size = settings.crop_size
    for y, x, _ in settings.crop_variants:
        try:
            check_crop(video.height, video.width, y, x, size)
        except ValueError as exc:
            raise ValueError(f"{video.path}: {exc}") from None
    starts = clip_starts(video.n_frames, settings.clip_len, settings.stride)
    streams = sorted({stream for f in families for stream in f.streams})
    rows: dict[str, dict[str, list]] = {f.name: {name: [] for name in f.fields} for f in families}
    for start in map(int, starts):
        # every stream a family declares, read once per clip before any crop is cut (see docs/LABELS.md, Speed)
        clip = {stream: read_items(dataset, stream, video_id,
                                   np.arange(start, start + stream_length(settings.clip_len, stream, video.path)))
                for stream in streams}
        for y, x, flip in settings.crop_variants:
            view = ClipView(clip, y, x, size, flip)
            for fam in families:
                for name, value in fam.label(view).items():
                    rows[fam.name][name].append(value)
    n_variants = len(settings.crop_variants)
    start_rows = np.repeat(starts, n_variants)
    variant_rows = np.tile(np.arange(n_variants, dtype=np.int64), len(starts))
    return {f.name: VideoLabels(start_rows, variant_rows, {name: np.asarray(rows[f.name][name]).reshape(-1, *shape)
                                                           for name, (shape, _) in f.fields.items()})
            for f in families}


def label_video(job: LabelJob, out_path: str) -> dict[str, int]:
    """Sandbox entry point: label one video for every task of the job and write their parts; returns
    ``{"rows", "clips"}`` (the same for every task).

    The first task's part goes to ``out_path`` (the runner renames it to its final name once this returns);
    the others' parts are written under a temporary name and renamed here first, so a part is always whole.
    """
    cv2.setNumThreads(1)
    keep_freed_memory()  # a fifth less CPU time per clip: no page faults for each clip's temporaries
    labels = label_video_clips(open_dataset(job.dataset_dir), job.video_id, job.tasks, job.settings)
    for task in job.tasks[1:]:
        with atomic_path(part_path(Path(job.labels_dir), task, job.video_id)) as tmp:
            write_part(tmp, task, job.video_id, labels[task], job.recorded[task])
    write_part(out_path, job.tasks[0], job.video_id, labels[job.tasks[0]], job.recorded[job.tasks[0]])
    return {"rows": len(labels[job.tasks[0]].start), "clips": len(np.unique(labels[job.tasks[0]].start))}


@dataclasses.dataclass(frozen=True)
class VideoFamilyJob:
    """What to encode: one video of a dataset for the video family ``tasks[0]``, whose part goes to the labels
    folder ``labels_dir``."""

    dataset_dir: str
    labels_dir: str
    video_id: str
    tasks: tuple[str, ...]
    settings: LabelSettings
    recorded: dict[str, dict[str, Any]]


def encode_video(job: VideoFamilyJob, out_path: str) -> dict[str, int]:
    """Sandbox entry point: the family's arrays of one video, written to ``out_path``; returns ``{"rows"}``
    (length of the first array). The family's failure (a ValueError with the reason) fails this video only."""
    cv2.setNumThreads(1)
    task = job.tasks[0]
    fam, root = family(task), Path(job.labels_dir)
    dataset = open_dataset(job.dataset_dir)
    required = job.recorded[task]["requires"]
    context = VideoContext(
        video=dataset.video(job.video_id), dataset=dataset, folder=family_dir(root, task),
        settings=job.settings.of(task),
        read=lambda name: read_arrays(part_path(root, name, job.video_id), name, required[name]))
    arrays = fam.encode(context)
    write_arrays(out_path, task, job.video_id, arrays, job.recorded[task])
    return {"rows": len(next(iter(arrays.values())))}
