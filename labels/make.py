"""``make-labels`` run: label every video of a dataset on Dask, resumably, then consolidate per task.

Each (task, video) is one runner task writing one part file; parts already on disk are skipped, so an
interrupted run only does the missing work. Failures are recorded by source path and reason in
``failures.json`` and skipped by later runs unless retried. See docs/LABELS.md.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import h5py
from distributed import Client

from common.atomic import atomic_path, write_json_atomic
from labels.families import FAMILIES, ClipFamily, FamilyContext, GlobalFamily, family
from labels.job import LabelJob, VideoFamilyJob, encode_video, label_video
from labels.settings import LabelSettings
from labels.store import (
    FORMAT,
    LOCK_FILE,
    PART_DIR,
    VERSION,
    LabelError,
    claim_settings,
    consolidate,
    consolidate_arrays,
    consolidated_path,
    consolidated_videos,
    content_digest,
    family_dir,
    labels_root,
    part_path,
    read_arrays,
    read_failures,
    read_settings,
    stored_inputs,
    write_arrays,
    write_failures,
)
from preprocess.dataset import Dataset
from common.locks import exclusive, remove_stale_temporaries
from common.runner import Task, failure_record, needs_retry_flag, open_client, retry_now, run_tasks
from common.runner import ClusterSettings


FIT_MARK = "fitted.json"  # written once a family's fit is complete (its model files are then in the folder)


def recorded_settings(settings: LabelSettings, dataset: Dataset) -> dict[str, Any]:
    """What a clip family's folder records: the clip/crop geometry and the source streams' settings."""
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


def _check_dataset(dataset: Dataset, tasks: Sequence[str], settings: LabelSettings) -> None:
    """LabelError before any work: unknown tasks, no videos, a missing stream, or clip labels whose crop
    variants fit no video's frames (settings meant for other frame sizes; one video too small only fails)."""
    unknown = sorted(set(tasks) - set(FAMILIES))
    if unknown:
        raise LabelError(f"unknown label task(s) {', '.join(unknown)} (known: {', '.join(sorted(FAMILIES))})")
    if not dataset.videos:
        raise LabelError(f"{dataset.path}: the dataset holds no videos")
    needed = sorted({stream for task in tasks for stream in family(task).streams})
    for stream in needed:
        if not dataset.has_stream(stream):
            raise LabelError(f"{dataset.path}: not every video has a {stream} stream (run extract-flow first)")
    size = settings.crop_size
    height = max(y for y, _, _ in settings.crop_variants) + size
    width = max(x for _, x, _ in settings.crop_variants) + size
    clip_tasks = any(isinstance(family(t), ClipFamily) for t in tasks)
    if clip_tasks and not any(v.height >= height and v.width >= width for v in dataset.videos):
        frames = sorted({f"{v.height}x{v.width}" for v in dataset.videos})
        raise LabelError(f"{dataset.path}: the {size}x{size} crops at labels.crop_variants {settings.crop_variants} "
                         f"need frames of at least {height}x{width}, the videos have {', '.join(frames[:5])}: "
                         f"set a smaller crop_size or crop_variants in the pipeline, or extract larger frames")


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
    _check_dataset(dataset, tasks, settings)
    root = labels_root(dataset_dir, labels_dir)
    root.mkdir(parents=True, exist_ok=True)
    with exclusive(root / LOCK_FILE, LabelError(f"{root}: another make-labels run is using this labels folder")):
        summaries, peak = _label(dataset, root, settings, tasks, cluster, workers, scheduler, retry_failed, progress)
    return LabelSummary(str(dataset.path), str(root), len(dataset.videos), summaries, time.monotonic() - started, peak)


def _label(dataset: Dataset, root: Path, settings: LabelSettings, tasks: list[str], cluster: ClusterSettings,
           workers: int | None, scheduler: str | None, retry_failed: bool,
           progress: bool) -> tuple[list[TaskSummary], float]:
    """The body of :func:`make_labels`, run while holding the labels folder: the clip families in one pass over
    each video, then each video family (fit, then encode) and each global family, in the order given; a
    family's requirements must be made first (earlier in ``tasks`` or by an earlier run)."""
    summaries: list[TaskSummary] = []
    peak = 0.0
    with contextlib.ExitStack() as stack:
        clients: list[Client] = []

        def client() -> Client:
            if not clients:
                clients.append(stack.enter_context(open_client(cluster, workers=workers, scheduler=scheduler)))
            return clients[0]

        clip_tasks = [t for t in tasks if isinstance(family(t), ClipFamily)]
        if clip_tasks:
            recorded = {task: recorded_settings(settings, dataset) for task in clip_tasks}
            job = partial(LabelJob, str(dataset.path), str(root), settings=settings, recorded=recorded)
            done, peak = _per_video_pass(dataset, root, clip_tasks, recorded, job, label_video, settings,
                                         client, retry_failed, progress)
            summaries += done
        for task in (t for t in tasks if t not in clip_tasks):
            fam = family(task)
            recorded = {task: family_recorded_settings(settings, task, root, dataset)}
            if isinstance(fam, GlobalFamily):
                summaries.append(_compute_global(dataset, root, settings, task, recorded[task]))
                continue
            claim_settings(root, task, recorded[task])
            if fam.fit is not None and not (family_dir(root, task) / FIT_MARK).exists():
                _fit(dataset, root, settings, task, recorded[task])
            job = partial(VideoFamilyJob, str(dataset.path), str(root), settings=settings, recorded=recorded)
            done, task_peak = _per_video_pass(dataset, root, [task], recorded, job, encode_video, settings,
                                              client, retry_failed, progress)
            summaries += done
            peak = max(peak, task_peak)
    return summaries, peak


def family_recorded_settings(settings: LabelSettings, task: str, root: Path, dataset: Dataset) -> dict[str, Any]:
    """What a video or global family's folder records: its own settings, the recorded settings of the families
    it requires (so a change upstream is noticed) and the source dataset's settings; LabelError when a
    required family has not been made."""
    recorded = {"format": FORMAT, "version": VERSION, "family": dataclasses.asdict(settings.of(task)),
                "requires": {name: read_settings(root, name) for name in family(task).requires},
                "source": {"frames": dataset.settings.get("frames"), "flow": dataset.settings.get("flow")}}
    return json.loads(json.dumps(recorded))  # as it reads back from settings.json (tuples as lists)


def _context(dataset: Dataset, root: Path, settings: LabelSettings, task: str, recorded: dict[str, Any],
             video_ids: list[str]) -> FamilyContext:
    required = recorded["requires"]
    return FamilyContext(
        dataset=dataset, folder=family_dir(root, task), settings=settings.of(task), video_ids=video_ids,
        read=lambda name, video_id: read_arrays(part_path(root, name, video_id), name, required[name]),
        consolidated=lambda name: read_arrays(consolidated_path(root, name), name, required[name]))


def _with_parts(dataset: Dataset, root: Path, names: tuple[str, ...]) -> list[str]:
    """Ids of the videos that have a part of every family in ``names``."""
    return [v.id for v in dataset.videos if all(part_path(root, n, v.id).exists() for n in names)]


def _fit(dataset: Dataset, root: Path, settings: LabelSettings, task: str, recorded: dict[str, Any]) -> None:
    """Run ``task``'s fit on the client over the videos whose required outputs exist, then mark it done."""
    ready = _with_parts(dataset, root, family(task).requires)
    if not ready:
        raise LabelError(f"{family_dir(root, task)}: nothing to fit {task} on: no video has "
                         f"{' and '.join(family(task).requires)} labels")
    family(task).fit(_context(dataset, root, settings, task, recorded, ready))
    write_json_atomic(family_dir(root, task) / FIT_MARK, {"videos": len(ready)})


def global_inputs(dataset: Dataset, root: Path, task: str, recorded: dict[str, Any]) -> str:
    """Hex SHA-256 of what global family ``task`` is computed from: its recorded settings, the dataset's videos
    with their class labels, and the content of every required family's consolidated file (its video ids and
    arrays, ``labels.store.content_digest``); LabelError naming a required file that is not there."""
    digest = hashlib.sha256(json.dumps(recorded, sort_keys=True).encode())
    digest.update(json.dumps([[v.id, v.label] for v in dataset.videos]).encode())
    for name in family(task).requires:
        path = consolidated_path(root, name)
        if not path.is_file():  # settings claimed by a run killed before it consolidated
            raise LabelError(f"{path}: no {name} labels here (run make-labels --task {name} first)")
        digest.update(f"{name}:{content_digest(path)}".encode())
    return digest.hexdigest()


def _compute_global(dataset: Dataset, root: Path, settings: LabelSettings, task: str,
                    recorded: dict[str, Any]) -> TaskSummary:
    """Compute a global family into ``ROOT/<task>/<task>.h5`` (written atomically, with the fingerprint of its
    inputs, ``global_inputs``), unless the file there was computed from the same inputs: then its videos are
    reported as already labelled. New or re-encoded input videos make it compute again."""
    claim_settings(root, task, recorded)
    target = consolidated_path(root, task)
    inputs = global_inputs(dataset, root, task, recorded)
    if stored_inputs(target, task, recorded) == inputs:
        rows = len(consolidated_videos(root, task) or ())
        return TaskSummary(task, 0, rows, {}, rows, str(target))
    try:
        arrays = family(task).compute(_context(dataset, root, settings, task, recorded,
                                               [v.id for v in dataset.videos]))
    except ValueError as exc:  # inputs it cannot use, e.g. fewer than two Fisher vectors
        raise LabelError(f"{family_dir(root, task)}: {exc}") from exc
    with atomic_path(target) as tmp:
        write_arrays(tmp, task, "", arrays, recorded, inputs=inputs)
    rows = len(arrays.get("videos", ()))
    return TaskSummary(task, rows, 0, {}, rows, str(target))


def _upstream_reason(root: Path, task: str, video_id: str) -> str:
    """Why ``task`` has no labels for a video: its recorded failure, or that it was not made for it."""
    failure = read_failures(root, task).get(video_id)
    return f"{task} failed: {failure['reason']}" if failure else f"run make-labels --task {task} for it"


def _per_video_pass(dataset: Dataset, root: Path, tasks: list[str], recorded: dict[str, dict[str, Any]],
                    make_job: Callable[..., Any], function: Callable[[Any, str | None], Any],
                    settings: LabelSettings, client: Callable[[], Client], retry_failed: bool,
                    progress: bool) -> tuple[list[TaskSummary], float]:
    """One Dask task per video for every task of ``tasks`` it still lacks (those already on disk, or failed in an
    earlier run unless ``retry_failed``, are skipped); records failures; consolidates. Returns the summaries
    and the peak worker memory (MB)."""
    failures = {}
    already = dict.fromkeys(tasks, 0)
    for task in tasks:
        claim_settings(root, task, recorded[task])
        folder = family_dir(root, task) / PART_DIR
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)
        failures[task] = {} if retry_failed else read_failures(root, task)
    planned: list[Task] = []
    for video in dataset.videos:
        missing = []
        for task in tasks:
            if part_path(root, task, video.id).exists():
                already[task] += 1
            elif retry_now(failures[task].get(video.id), retry_failed):  # transient failures: a bounded number of runs
                lacking = [name for name in getattr(family(task), "requires", ())
                           if not part_path(root, name, video.id).exists()]
                if lacking:  # an upstream family failed on this video (or was not made for it)
                    failures[task][video.id] = {"path": video.path, "reason": f"no {lacking[0]} labels for this "
                                                f"video ({_upstream_reason(root, lacking[0], video.id)})"}
                else:
                    missing.append(task)
        if missing:
            planned.append(Task(f"{'+'.join(missing)}:{video.id}", video.path,
                                str(part_path(root, missing[0], video.id)), make_job(video.id, tuple(missing))))
    labelled = dict.fromkeys(tasks, 0)
    peak = 0.0
    if planned:
        outcomes = run_tasks(client(), function, planned, time_limit_s=settings.video_timeout_s,
                             progress=progress, desc=f"labels {'+'.join(tasks)}")
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
    ids = [v.id for v in dataset.videos]
    summaries = []
    for task in tasks:
        write_failures(root, task, failures[task])
        fam = family(task)
        present = [i for i in ids if part_path(root, task, i).exists()]
        consolidated = consolidated_path(root, task)
        if isinstance(fam, ClipFamily):
            if labelled[task] or consolidated_videos(root, task) != present:
                consolidate(root, task, ids, recorded[task])
            rows = _count_rows(consolidated)
        elif fam.fields is not None:
            if labelled[task] or consolidated_videos(root, task) != present:
                consolidate_arrays(root, task, fam.fields, ids, recorded[task])
            rows = len(present)
        else:
            rows, consolidated = len(present), family_dir(root, task) / PART_DIR
        failed = {i: failures[task][i] for i in ids if i in failures[task]}
        summaries.append(TaskSummary(task, labelled[task], already[task], failed, rows, str(consolidated)))
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
