"""Labelling one video: every clip and crop variant, for one task. Runs in a sandbox process on a Dask
worker (``preprocess.runner``); only the small :class:`LabelJob` and a summary travel through Dask."""
from __future__ import annotations

import dataclasses
import os
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from labels.crops import check_crop, clip_starts, crop_flow, crop_frames
from labels.curriculum import score_from_boundaries
from labels.settings import LabelSettings
from labels.stats import N_APPEARANCE, N_MOTION, appearance_statistics, motion_boundaries, motion_labels
from labels.store import VideoLabels, write_part
from preprocess.dataset import Dataset

TASKS = ("stats", "curriculum")


@dataclasses.dataclass(frozen=True)
class LabelJob:
    """What to label: one video of a dataset, for ``task`` ('stats' or 'curriculum')."""

    dataset_dir: str
    video_id: str
    task: str
    settings: LabelSettings
    recorded: dict[str, Any]  # the labels folder's settings, stored in the part


@lru_cache(maxsize=2)
def _open_dataset(path: str, index_mtime_ns: int) -> Dataset:
    return Dataset(path)


def open_dataset(path: str) -> Dataset:
    """A Dataset reader for ``path``, reused across the jobs a process runs while its index is unchanged."""
    return _open_dataset(path, os.stat(os.path.join(path, "index.json")).st_mtime_ns)


def label_video_clips(dataset: Dataset, video_id: str, task: str, settings: LabelSettings) -> VideoLabels:
    """Labels of every clip (``settings.clip_len`` frames every ``settings.stride``) and crop variant of a video.

    Raises ValueError naming the video's source file when a crop variant does not fit its frames.
    """
    if task not in TASKS:
        raise ValueError(f"unknown label task {task!r} (known: {', '.join(TASKS)})")
    video = dataset.video(video_id)
    size = settings.crop_size
    for y, x, _ in settings.crop_variants:
        try:
            check_crop(video.height, video.width, y, x, size)
        except ValueError as exc:
            raise ValueError(f"{video.path}: {exc}") from None
    starts = clip_starts(video.n_frames, settings.clip_len, settings.stride)
    n_variants = len(settings.crop_variants)
    motion = np.zeros((len(starts), n_variants, N_MOTION), np.int64)
    appearance = np.zeros((len(starts), n_variants, N_APPEARANCE), np.int64)
    score = np.zeros((len(starts), n_variants), np.float32)
    for i, start in enumerate(starts):
        flow = dataset.read_flow(video_id, int(start), int(start) + settings.clip_len - 1)
        frames = dataset.read_frames(video_id, int(start), int(start) + settings.clip_len) if task == "stats" else None
        for k, (y, x, flip) in enumerate(settings.crop_variants):
            cropped = crop_flow(flow, y, x, size, flip)
            boundaries = motion_boundaries(cropped[..., 0], cropped[..., 1])
            if task == "curriculum":
                score[i, k] = score_from_boundaries(boundaries)
                continue
            motion[i, k] = motion_labels(boundaries)
            appearance[i, k] = appearance_statistics(np.ascontiguousarray(crop_frames(frames, y, x, size, flip)))
    values = ({"motion": motion.reshape(-1, N_MOTION), "appearance": appearance.reshape(-1, N_APPEARANCE)}
              if task == "stats"
              else {"score": score.reshape(-1)})
    return VideoLabels(np.repeat(starts, n_variants), np.tile(np.arange(n_variants, dtype=np.int64), len(starts)),
                       values)


def label_video(job: LabelJob, out_path: str) -> dict[str, int]:
    """Sandbox entry point: label one video and write its part file ``out_path``; returns ``{"rows", "clips"}``."""
    cv2.setNumThreads(1)
    labels = label_video_clips(open_dataset(job.dataset_dir), job.video_id, job.task, job.settings)
    write_part(out_path, job.task, job.video_id, labels, job.recorded)
    return {"rows": len(labels.start), "clips": len(np.unique(labels.start))}
