"""Extraction run: input videos -> dataset directory (``index.json`` + ``shards/*.h5``), resumable.

Every video becomes a part file (``parts/``) in a Dask task; finished parts are packed into shards of
about ``shard_mb`` by Dask tasks (one writer per shard, temp name then rename), registered in the
index, and deleted. A re-run skips streams already in shards and parts already finished, so an
interrupted run (even SIGKILL) only finishes the missing work. See docs/EXTRACTION.md.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from distributed import Client, Future

from common.atomic import atomic_path
from common.locks import exclusive, remove_stale_temporaries, still_running
from common.runner import (
    ClusterSettings,
    Task,
    check_cluster,
    failure_record,
    needs_retry_flag,
    open_client,
    retry_now,
    run_tasks,
)
from common.settings import setting_differences
from preprocess import shards
from preprocess.flow import make_flow
from preprocess.index import (
    SHARD_DIR,
    DatasetError,
    Index,
    IndexSaver,
    add_new_shards,
    add_shard,
    index_path,
    load_index,
    save_index,
)
from preprocess.inputs import MISSING, VideoSource, find_videos, fingerprint, same_source
from preprocess.integrity import damaged_shards, forget_shards
from preprocess.settings import ExtractSettings
from preprocess.video_task import VideoJob, extract_video, stream_settings

PART_DIR = "parts"
LOCK_NAME = ".lock"
MB = 1 << 20


class SettingsMismatch(DatasetError):
    """The dataset already holds a stream extracted with other settings."""


class SourceChanged(DatasetError):
    """An input video has the id of a dataset video extracted from another file (fingerprints differ)."""


@dataclasses.dataclass
class ExtractSummary:
    """Result of :func:`extract`. ``failed`` maps video id -> ``{path, reason}`` for every input video
    that has no complete set of streams because it failed (in this run or, unless retried, an earlier one)."""

    dataset: str
    videos: int
    already_done: int
    extracted: int
    failed: dict[str, dict[str, str]]
    new_shards: list[str]
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float = 0.0  # CPU time of the videos extracted now, summed over worker processes
    computed_from: dict[str, str] = dataclasses.field(default_factory=dict)  # flow/diff -> "decoded" | "stored"
    repaired: dict[str, str] = dataclasses.field(default_factory=dict)  # damaged shard -> problem (its videos redone)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def retry_flag_needed(self) -> bool:
        """Whether some failure is tried again only with ``--retry-failed`` (bad input, or disturbed too often)."""
        return needs_retry_flag(self.failed)


def wanted_streams(settings: ExtractSettings, flow: bool) -> list[str]:
    """Streams an extraction produces: frames, flow when asked, differences when ``settings.diff``, motion
    boundaries with flow when ``settings.motion_boundaries``."""
    mb = ["mb"] if flow and settings.motion_boundaries else []
    return ["frames"] + (["flow"] if flow else []) + (["diff"] if settings.diff else []) + mb


def check_settings(index: Index, wanted: Mapping[str, dict[str, Any]], root: Path) -> None:
    """Refuse (SettingsMismatch) when a stream of the dataset was made with settings other than ``wanted``."""
    for stream, settings in wanted.items():
        have = index.settings.get(stream)
        if have is not None and have != settings:
            differences = "; ".join(setting_differences(have, settings, "in the dataset"))
            raise SettingsMismatch(
                f"{index_path(root)}: the {stream} stream was extracted with other settings "
                f"({differences}); extract into another OUTPUT folder, or delete this one"
            )


def gray_sources(index: Index) -> dict[str, str]:
    """Which frames the dataset's flow and differences are (to be) computed from, ``{"flow": src, "diff": src,
    "mb": src}`` with src in ``video_task.GRAY_SOURCES``: as recorded by an earlier run; for a new stream,
    ``stored`` when the dataset already holds frames (extracted before it, so they are reused rather than decoded
    again), else ``decoded``; motion boundaries follow the flow (a later run computes that flow again)."""
    new = "stored" if "frames" in index.settings else "decoded"
    sources = {stream: index.settings[stream].get("from", "stored") if stream in index.settings else new
               for stream in ("flow", "diff")}  # recorded before "from" existed: stored
    return {**sources, "mb": sources["flow"]}  # motion boundaries come from the flow


def part_path(root: Path, video_id: str, streams: Iterable[str]) -> Path:
    """The part file of one video and stream set (readable name + hash, unique per id)."""
    readable = re.sub(r"[^\w.-]+", "_", video_id)[-80:]
    digest = hashlib.sha1(video_id.encode()).hexdigest()[:10]
    return root / PART_DIR / f"{readable}-{digest}.{'+'.join(streams)}.h5"


def pack_shard(parts: list[str], shard: str, settings: dict[str, dict[str, Any]], run_token: str) -> list[str]:
    """Dask task: copy finished part files into shard ``shard`` (``common.atomic``: temp name, then rename). The
    shard is published only while the run that asked for it (``run_token``) still holds the dataset: a task left
    running on a remote cluster by a killed client must not add a second copy of videos the next run packs."""
    lock_file = Path(shard).parent.parent / LOCK_NAME
    with atomic_path(shard) as tmp:
        ids = shards.copy_videos([Path(p) for p in parts], tmp, settings)
        if not still_running(lock_file, run_token):
            raise RuntimeError(f"{shard}: the extraction that asked for this shard has ended; not written")
    return ids


class _Packer:
    """Groups finished parts by stream set and packs each group into a shard once it reaches the target size."""

    def __init__(self, client: Client, root: Path, index: Index, saver: IndexSaver, target_bytes: int,
                 run_token: str) -> None:
        self.client, self.root, self.index, self.saver, self.target = client, root, index, saver, target_bytes
        self.run_token = run_token
        numbers = [int(Path(rel).stem) for rel in index.shards if Path(rel).stem.isdigit()]
        self.next_number = max(numbers, default=-1) + 1
        self.pending: dict[tuple[str, ...], list[tuple[Path, int]]] = {}
        self.running: dict[Future, tuple[str, list[Path]]] = {}
        self.new_shards: list[str] = []

    def add(self, part: Path, streams: tuple[str, ...]) -> None:
        group = self.pending.setdefault(streams, [])
        group.append((part, part.stat().st_size))
        if sum(size for _, size in group) >= self.target:
            self._submit(streams)
        self.collect(wait=False)

    def _submit(self, streams: tuple[str, ...]) -> None:
        parts = [p for p, _ in self.pending.pop(streams)]
        rel = f"{SHARD_DIR}/{self.next_number:05d}.h5"
        self.next_number += 1
        settings = {s: self.index.settings[s] for s in streams}
        future = self.client.submit(pack_shard, [str(p) for p in parts], str(self.root / rel), settings,
                                    self.run_token, pure=False)
        self.running[future] = (rel, parts)

    def collect(self, wait: bool) -> None:
        """Register finished shards in the index and delete their parts (``wait``: all submitted ones)."""
        for future in [f for f in self.running if wait or f.done()]:
            rel, parts = self.running.pop(future)
            future.result()  # a packing error is a bug or a full disk: let it surface
            add_shard(self.index, self.root, rel)
            self.saver.changed()  # the shard is on disk: a run killed before the next save registers it again
            for part in parts:
                part.unlink()
            self.new_shards.append(rel)

    def finish(self) -> None:
        for streams in list(self.pending):
            self._submit(streams)
        self.collect(wait=True)


def _open_index(root: Path, input_path: Path) -> Index:
    return load_index(root) if index_path(root).exists() else Index(source=str(input_path))


def _plan(sources: list[VideoSource], index: Index, root: Path, settings: ExtractSettings, streams: list[str],
          gray_from: dict[str, str], retry_failed: bool) -> tuple[list[Task], int]:
    """Tasks for the streams each video still lacks, and how many videos are already complete. A video's
    stored frames are reused when its missing streams are computed from them; otherwise it is decoded again.
    Earlier failures are retried as :func:`common.runner.retry_now` says; a missing source is a failed input."""
    tasks, done = [], 0
    for src in sources:
        have = index.videos.get(src.id, {}).get("shards", {})
        missing = tuple(s for s in streams if s not in have)
        if not missing:
            done += 1
            continue
        if not retry_now(index.failures.get(src.id), retry_failed):
            continue
        reuse = "frames" in have and all(gray_from[s] == "stored" for s in missing)
        if not reuse and not os.path.isfile(src.path):
            index.failures[src.id] = {"path": src.path, "reason": MISSING, "kind": "permanent", "attempts": 1}
            continue
        job = VideoJob(src.id, src.path, src.label, src.split, missing, settings,
                       str(root / have["frames"]) if reuse else None, gray_from["flow"], gray_from["diff"])
        tasks.append(Task(src.id, src.path, str(part_path(root, src.id, missing)), job))
    return tasks, done


def extract(
    input_path: str | Path,
    output: str | Path,
    settings: ExtractSettings,
    *,
    flow: bool = True,
    workers: int | None = None,
    scheduler: str | None = None,
    cluster: ClusterSettings | None = None,
    splits: str | Path | None = None,
    split_number: int = 1,
    retry_failed: bool = False,
    progress: bool = True,
    client: Client | None = None,
) -> ExtractSummary:
    """Extract frames (and flow when ``flow``; differences when ``preprocess.diff``) of the videos in
    ``input_path`` (directory or list file) into dataset ``output`` with ``settings``. Runs on a Dask
    cluster from ``cluster`` (default: a local cluster), ``workers`` or ``scheduler``, or on an open
    ``client``. Flow settings that OpenCV refuses raise ValueError before any work. Resumes earlier runs; raises SettingsMismatch if the dataset holds a stream made with
    other settings, DatasetError if another extraction holds the dataset."""
    started = time.monotonic()
    make_flow(settings.flow)  # builds (and drops) the OpenCV object: bad backend parameters fail here
    cluster = cluster or ClusterSettings()
    if client is None:
        check_cluster(cluster, scheduler)
    sources = find_videos(input_path, splits, split_number)
    root = Path(output)
    with _exclusive(root) as run_token:
        index = _open_index(root, Path(input_path))
        repaired = _repair(root, index)
        check_sources(index, sources, root)
        tasks, already_done = _prepare(root, index, sources, settings, wanted_streams(settings, flow), retry_failed)
        extracted, peak, cpu, new_shards = 0, 0.0, 0.0, []
        if tasks:
            with contextlib.ExitStack() as stack:
                if client is None:
                    client = stack.enter_context(open_client(cluster, workers=workers, scheduler=scheduler))
                extracted, peak, cpu, new_shards = _run(client, root, index, tasks, settings, progress, run_token)
            remove_stale_temporaries(root / PART_DIR)  # left by a worker killed mid-video (its task was redone)
        save_index(root, index)
    failed = {s.id: index.failures[s.id] for s in sources if s.id in index.failures}
    computed_from = {s: index.settings[s].get("from", "stored") for s in ("flow", "diff") if s in index.settings}
    return ExtractSummary(str(root), len(sources), already_done, extracted, failed, new_shards,
                          time.monotonic() - started, peak, cpu, computed_from, repaired)


def _repair(root: Path, index: Index) -> dict[str, str]:
    """Drop missing, truncated or unreadable shards (indexed or left by a killed run) from the dataset, so their
    videos are planned again; returns ``{shard: problem}``."""
    (root / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(root / SHARD_DIR)
    damaged = damaged_shards(root, index)
    forget_shards(root, index, sorted(damaged))
    _, unreadable = add_new_shards(index, root)  # shards finished by a run killed before it updated the index
    if damaged or unreadable:
        save_index(root, index)
    return {**damaged, **unreadable}


def check_sources(index: Index, sources: list[VideoSource], root: Path) -> None:
    """Refuse (SourceChanged) when an input video has the id of a dataset video that was extracted from a file
    with another fingerprint (another clip of the same relative name); record the fingerprints the dataset
    lacks (videos indexed before fingerprints existed, or by a run killed before saving them)."""
    changed = []
    for src in sources:
        if src.id not in index.videos or not os.path.isfile(src.path):
            continue
        recorded = index.fingerprints.get(src.id)
        if recorded is None:
            index.fingerprints[src.id] = fingerprint(src.path)
        elif not same_source(recorded, src.path):
            was = index.videos[src.id].get("path")
            changed.append(f"{src.id!r} ({src.path}: {os.path.getsize(src.path)} bytes; the dataset's was extracted "
                           f"from {was}: {recorded['size']} bytes{', another first MB' if os.path.getsize(src.path) == recorded['size'] else ''})")
    if changed:
        listed = "; ".join(changed[:5]) + (f"; and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise SourceChanged(f"{index_path(root)}: {len(changed)} input video(s) differ from the file the dataset "
                            f"holds under the same id: {listed}. Extract these inputs into another OUTPUT folder")


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[str]:
    """Hold ``ROOT/.lock`` so two runs never share a dataset (yields the run's token); refuse a non-empty folder
    that is not a dataset."""
    ours = {SHARD_DIR, PART_DIR, LOCK_NAME}
    if root.exists() and not index_path(root).exists() and any(p.name not in ours for p in root.iterdir()):
        raise DatasetError(f"{root}: exists, is not empty and holds no {index_path(root).name}; refusing to write there")
    root.mkdir(parents=True, exist_ok=True)
    busy = DatasetError(f"{root}: another extraction is running on this dataset")
    with exclusive(root / LOCK_NAME, busy) as token:
        yield token


def _prepare(root: Path, index: Index, sources: list[VideoSource], settings: ExtractSettings, streams: list[str],
             retry_failed: bool) -> tuple[list[Task], int]:
    """Bring the dataset up to date after any interruption, check and claim the settings, plan the tasks."""
    (root / PART_DIR).mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(root / PART_DIR)
    gray_from = gray_sources(index)
    recorded = stream_settings(settings, gray_from["flow"], gray_from["diff"])
    check_settings(index, {s: recorded[s] for s in streams}, root)
    for stream in streams:
        index.settings[stream] = recorded[stream]  # claimed before any part is written
    index.classes = sorted(set(index.classes) | {s.label for s in sources if s.label is not None})
    save_index(root, index)
    tasks, already_done = _plan(sources, index, root, settings, streams, gray_from, retry_failed)
    _remove_unplanned_parts(root, tasks)
    return tasks, already_done


def _run(client: Client, root: Path, index: Index, tasks: list[Task], settings: ExtractSettings,
         progress: bool, run_token: str) -> tuple[int, float, float, list[str]]:
    """Run the tasks, record failures, pack finished parts; returns (videos extracted, peak MB, CPU seconds,
    new shards)."""
    streams_of = {t.key: t.args.streams for t in tasks}
    extracted, peak, cpu = 0, 0.0, 0.0
    saver = IndexSaver(root, index)
    packer = _Packer(client, root, index, saver, int(settings.shard_mb * MB), run_token)
    for outcome in run_tasks(client, extract_video, tasks, time_limit_s=settings.video_timeout_s, progress=progress):
        peak = max(peak, outcome.peak_rss_mb)
        cpu += outcome.cpu_seconds
        if outcome.status == "failed":
            index.failures[outcome.key] = failure_record(outcome, index.failures.get(outcome.key))
            saver.changed()
            continue
        index.failures.pop(outcome.key, None)
        if (outcome.result or {}).get("fingerprint") is not None:  # as the worker read it (None: part of a killed run)
            index.fingerprints[outcome.key] = outcome.result["fingerprint"]
        extracted += 1
        packer.add(Path(outcome.output), streams_of[outcome.key])
    packer.finish()
    return extracted, peak, cpu, packer.new_shards


def _remove_unplanned_parts(root: Path, tasks: list[Task]) -> None:
    """Delete part files no task will use (their streams are in shards already, or the stream set changed)."""
    planned = {t.output for t in tasks}
    for part in (root / PART_DIR).glob("*.h5"):
        if str(part) not in planned:
            part.unlink()


def format_summary(summary: ExtractSummary) -> str:
    """Human-readable end-of-run report (failures by path and reason)."""
    lines = [
        f"dataset {summary.dataset}: {summary.videos} input videos, {summary.extracted} extracted now, "
        f"{summary.already_done} already complete, {len(summary.failed)} failed; "
        f"{len(summary.new_shards)} new shard(s); {summary.seconds:.1f} s ({summary.cpu_seconds:.1f} CPU s in "
        f"workers); peak memory per worker process {summary.peak_rss_mb:.0f} MB",
    ]
    names = {"flow": "flow", "diff": "differences"}
    if summary.computed_from:
        lines.append("; ".join(f"{names[s]} computed from the {source} frames"
                               for s, source in summary.computed_from.items()))
    if summary.repaired:
        lines.append(f"repaired {len(summary.repaired)} damaged shard(s) by extracting their videos again:")
        lines += [f"  {rel}: {problem}" for rel, problem in sorted(summary.repaired.items())]
    if summary.failed:
        lines.append("failed videos:")
        lines += [f"  {f['path']}: {f['reason']}{_retry_note(f)}" for _, f in sorted(summary.failed.items())]
    if summary.retry_flag_needed:
        lines.append("fix or replace the failed inputs, then run the same command with --retry-failed to try them again")
    return "\n".join(lines)


def _retry_note(failure: dict[str, Any]) -> str:
    if retry_now(failure, False):
        return f" (the run was disturbed: tried again by the next run, attempt {failure.get('attempts', 1)})"
    return ""
