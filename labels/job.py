"""Labelling one video: every clip and crop variant, for one or more tasks in one pass (flow read and
motion boundaries computed once). Runs in a sandbox process on a Dask worker (``preprocess.runner``); only
the small :class:`LabelJob` and a summary travel through Dask."""
from __future__ import annotations

import dataclasses
import os
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from labels.crops import check_crop, clip_starts, crop_flow, crop_frames
from labels.curriculum import score_from_boundaries
from labels.settings import LabelSettings
from labels.stats import N_APPEARANCE, N_MOTION, appearance_statistics, motion_boundaries, motion_labels
from labels.store import VideoLabels, part_path, write_part
from preprocess.dataset import Dataset
from preprocess.runner import TMP_MARK

TASKS = ("stats", "curriculum")


@dataclasses.dataclass(frozen=True)
class LabelJob:
    """What to label: one video of a dataset, for ``tasks`` (from 'stats', 'curriculum'), whose parts go to
    the labels folder ``labels_dir``."""

    dataset_dir: str
    labels_dir: str
    video_id: str
    tasks: tuple[str, ...]
    settings: LabelSettings
    recorded: dict[str, Any]  # the labels folder's settings, stored in the part


@lru_cache(maxsize=2)
def _open_dataset(path: str, index_mtime_ns: int) -> Dataset:
    return Dataset(path)


def open_dataset(path: str) -> Dataset:
    """A Dataset reader for ``path``, reused across the jobs a process runs while its index is unchanged."""
    return _open_dataset(path, os.stat(os.path.join(path, "index.json")).st_mtime_ns)


def label_video_clips(dataset: Dataset, video_id: str, tasks: Sequence[str],
                      settings: LabelSettings) -> dict[str, VideoLabels]:
    """Labels of every clip (``settings.clip_len`` frames every ``settings.stride``) and crop variant of a video,
    for each of ``tasks``, in one pass over the video.

    Raises ValueError naming the video's source file when a crop variant does not fit its frames.
    """
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        raise ValueError(f"unknown label task(s) {unknown or list(tasks)} (known: {', '.join(TASKS)})")
    video = dataset.video(video_id)
    size = settings.crop_size
    for y, x, _ in settings.crop_variants:
        try:
            check_crop(video.height, video.width, y, x, size)
        except ValueError as exc:
            raise ValueError(f"{video.path}: {exc}") from None
    starts = clip_starts(video.n_frames, settings.clip_len, settings.stride)
    n_variants = len(settings.crop_variants)
    stats, curriculum = "stats" in tasks, "curriculum" in tasks
    motion = np.zeros((len(starts), n_variants, N_MOTION), np.int64)
    appearance = np.zeros((len(starts), n_variants, N_APPEARANCE), np.int64)
    score = np.zeros((len(starts), n_variants), np.float32)
    for i, start in enumerate(starts):
        flow = dataset.read_flow(video_id, int(start), int(start) + settings.clip_len - 1)
        frames = dataset.read_frames(video_id, int(start), int(start) + settings.clip_len) if stats else None
        for k, (y, x, flip) in enumerate(settings.crop_variants):
            cropped = crop_flow(flow, y, x, size, flip)
            boundaries = motion_boundaries(cropped[..., 0], cropped[..., 1])
            if curriculum:
                score[i, k] = score_from_boundaries(boundaries)
            if stats:
                motion[i, k] = motion_labels(boundaries)
                appearance[i, k] = appearance_statistics(np.ascontiguousarray(crop_frames(frames, y, x, size, flip)))
    values = {"stats": {"motion": motion.reshape(-1, N_MOTION), "appearance": appearance.reshape(-1, N_APPEARANCE)},
              "curriculum": {"score": score.reshape(-1)}}
    start_rows = np.repeat(starts, n_variants)
    variant_rows = np.tile(np.arange(n_variants, dtype=np.int64), len(starts))
    return {task: VideoLabels(start_rows, variant_rows, values[task]) for task in tasks}


def label_video(job: LabelJob, out_path: str) -> dict[str, int]:
    """Sandbox entry point: label one video for every task of the job and write their parts; returns
    ``{"rows", "clips"}`` (the same for every task).

    The first task's part goes to ``out_path`` (the runner renames it to its final name once this returns);
    the others' parts are written under a temporary name and renamed here first, so a part is always whole.
    """
    cv2.setNumThreads(1)
    labels = label_video_clips(open_dataset(job.dataset_dir), job.video_id, job.tasks, job.settings)
    for task in job.tasks[1:]:
        final = part_path(Path(job.labels_dir), task, job.video_id)
        tmp = f"{final}{TMP_MARK}{uuid.uuid4().hex}"
        try:
            write_part(tmp, task, job.video_id, labels[task], job.recorded)
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    write_part(out_path, job.tasks[0], job.video_id, labels[job.tasks[0]], job.recorded)
    return {"rows": len(labels[job.tasks[0]].start), "clips": len(np.unique(labels[job.tasks[0]].start))}
