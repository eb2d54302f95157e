"""``make-labels`` run: label every video of a dataset on Dask, resumably, then consolidate per task.

Each (task, video) is one runner task writing one part file; parts already on disk are skipped, so an
interrupted run only does the missing work. Failures are recorded by source path and reason in
``failures.json`` and skipped by later runs unless retried. See docs/LABELS.md.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

import h5py

from labels.families import FAMILIES, family
from labels.job import LabelJob, label_video
from labels.settings import LabelSettings
from labels.store import (
    FORMAT,
    LOCK_FILE,
    PART_DIR,
    VERSION,
    LabelError,
    claim_settings,
    consolidate,
    consolidated_path,
    consolidated_videos,
    family_dir,
    labels_root,
    part_path,
    read_failures,
    write_failures,
)
from preprocess.dataset import Dataset
from common.runner import (Task, exclusive, failure_record, needs_retry_flag, open_client, remove_stale_temporaries,
                           retry_now, run_tasks)
from common.runner import ClusterSettings


def recorded_settings(settings: LabelSettings, dataset: Dataset) -> dict[str, Any]:
    """What a labels folder records: the clip/crop geometry and the source streams' settings."""
    source = dataset.settings
    return {
        "format": FORMAT,
        "version": VERSION,
        "clip_len": settings.clip_len,
        "stride": settings.stride,
        "crop_size": settings.crop_size,
        "crop_variants": [[int(y), int(x), bool(flip)] for y, x, flip in settings.crop_variants],
        "source": {"frames": source.get("frames"), "flow": source.get("flow")},
    }


@dataclasses.dataclass
class TaskSummary:
    """Outcome of one task over the dataset: videos labelled now / already labelled / failed (id -> {path,
    reason}), rows in the consolidated file."""

    task: str
    labelled: int
    already_done: int
    failed: dict[str, dict[str, str]]
    rows: int
    output: str


@dataclasses.dataclass
class LabelSummary:
    """Result of :func:`make_labels`: the dataset and labels folders, its video count, one
    :class:`TaskSummary` per task, wall seconds and the peak memory of a worker process (MB)."""

    dataset: str
    labels_dir: str
    videos: int
    tasks: list[TaskSummary]
    seconds: float
    peak_rss_mb: float

    @property
    def ok(self) -> bool:
        return all(not t.failed for t in self.tasks)


def _check_dataset(dataset: Dataset, tasks: Sequence[str]) -> None:
    unknown = sorted(set(tasks) - set(FAMILIES))
    if unknown:
        raise LabelError(f"unknown label task(s) {', '.join(unknown)} (known: {', '.join(sorted(FAMILIES))})")
    if not dataset.videos:
        raise LabelError(f"{dataset.path}: the dataset holds no videos")
    needed = sorted({stream for task in tasks for stream in family(task).streams})
    for stream in needed:
        if not dataset.has_stream(stream):
            raise LabelError(f"{dataset.path}: not every video has a {stream} stream (run extract-flow first)")


def make_labels(
    dataset_dir: str | Path,
    settings: LabelSettings,
    tasks: Sequence[str],
    *,
    cluster: ClusterSettings,
    workers: int | None = None,
    scheduler: str | None = None,
    labels_dir: str | Path | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> LabelSummary:
    """Compute the labels of ``tasks`` for every video of a dataset on a Dask cluster and consolidate them.

    Raises LabelError (nothing done) for unknown tasks, missing streams, a labels folder that holds labels
    made with other settings or that another run is using. Per-video failures never stop the run; they are
    in the summary.
    """
    started = time.monotonic()
    tasks = list(dict.fromkeys(tasks))  # each once, in the order given
    dataset = Dataset(dataset_dir)
    _check_dataset(dataset, tasks)
    root = labels_root(dataset_dir, labels_dir)
    root.mkdir(parents=True, exist_ok=True)
    with exclusive(root / LOCK_FILE, LabelError(f"{root}: another make-labels run is using this labels folder")):
        summaries, peak = _label(dataset, root, settings, tasks, cluster, workers, scheduler, retry_failed, progress)
    return LabelSummary(str(dataset.path), str(root), len(dataset.videos), summaries, time.monotonic() - started, peak)


def _label(dataset: Dataset, root: Path, settings: LabelSettings, tasks: list[str], cluster: ClusterSettings,
           workers: int | None, scheduler: str | None, retry_failed: bool,
           progress: bool) -> tuple[list[TaskSummary], float]:
    """The body of :func:`make_labels`, run while holding the labels folder: claim the settings, label the
    videos lacking parts, consolidate; returns the per-task summaries and the peak worker memory (MB)."""
    recorded = {task: recorded_settings(settings, dataset) for task in tasks}
    failures = {}
    already = dict.fromkeys(tasks, 0)
    for task in tasks:
        claim_settings(root, task, recorded[task])
        folder = family_dir(root, task) / PART_DIR
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)
        failures[task] = {} if retry_failed else read_failures(root, task)
    planned: list[Task] = []
    for video in dataset.videos:  # one job per video for every task it still lacks (one pass over the video)
        missing = []
        for task in tasks:
            if part_path(root, task, video.id).exists():
                already[task] += 1
            elif retry_now(failures[task].get(video.id), retry_failed):  # transient failures: a bounded number of runs
                missing.append(task)
        if missing:
            job = LabelJob(str(dataset.path), str(root), video.id, tuple(missing), settings, recorded)
            planned.append(Task(f"{'+'.join(missing)}:{video.id}", video.path,
                                str(part_path(root, missing[0], video.id)), job))
    labelled = dict.fromkeys(tasks, 0)
    peak = 0.0
    if planned:
        with open_client(cluster, workers=workers, scheduler=scheduler) as client:
            outcomes = run_tasks(client, label_video, planned, time_limit_s=settings.video_timeout_s,
                                 progress=progress, desc="labels")
            for outcome in outcomes:
                job_tasks, video_id = outcome.key.split(":", 1)
                peak = max(peak, outcome.peak_rss_mb)
                for task in job_tasks.split("+"):
                    if outcome.status == "failed":
                        failures[task][video_id] = failure_record(outcome, failures[task].get(video_id))
                        write_failures(root, task, failures[task])
                    else:
                        failures[task].pop(video_id, None)
                        labelled[task] += outcome.status == "done"
    for task in tasks:
        write_failures(root, task, failures[task])
    ids = [v.id for v in dataset.videos]
    summaries = []
    for task in tasks:
        present = [i for i in ids if part_path(root, task, i).exists()]
        if labelled[task] or consolidated_videos(root, task) != present:
            consolidate(root, task, ids, recorded[task])
        failed = {i: failures[task][i] for i in ids if i in failures[task]}
        summaries.append(TaskSummary(task, labelled[task], already[task], failed,
                                     _count_rows(consolidated_path(root, task)), str(consolidated_path(root, task))))
    return summaries, peak


def _count_rows(path: Path) -> int:
    with h5py.File(path, "r") as f:
        return int(f["start"].shape[0])


def format_summary(summary: LabelSummary) -> str:
    """Human-readable end-of-run report (failures by path and reason)."""
    lines = [f"labels {summary.labels_dir} for dataset {summary.dataset} ({summary.videos} videos); "
             f"{summary.seconds:.1f} s; peak memory per worker process {summary.peak_rss_mb:.0f} MB"]
    for t in summary.tasks:
        lines.append(f"  {t.task}: {t.labelled} videos labelled now, {t.already_done} already labelled, "
                     f"{len(t.failed)} failed; {t.rows} rows in {t.output}")
        lines += [f"    failed {f['path']}: {f['reason']}" for _, f in sorted(t.failed.items())]
    if any(needs_retry_flag(t.failed) for t in summary.tasks):
        lines.append("fix the failed inputs, then run the same command with --retry-failed to try them again")
    return "\n".join(lines)
