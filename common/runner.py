"""Run per-item jobs on dask.distributed: local cluster, running scheduler or SLURM (dask-jobqueue).

Each item runs in a sandbox process on a Dask worker (``common.sandbox``) under a time limit, writes
its output under a temporary name that is renamed to the final name only on success, and only small
metadata travels back through the scheduler. Items whose output already exists are skipped (resume).

>>> with open_client(load_cluster(), workers=4) as client:
...     for outcome in run_tasks(client, my_function, tasks, time_limit_s=600):
...         print(outcome.key, outcome.status, outcome.reason)

``my_function(args, tmp_path) -> dict`` must be importable (module level) and write its output to
``tmp_path`` (when the task has an output).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import sys
import threading
import time
import uuid
from typing import Any, Callable, Iterator, Literal, Sequence

from distributed import Client, LocalCluster, as_completed
from tqdm import tqdm

from common.atomic import publish, temporary_name
from common.errors import ConfigError
from common.sandbox import CallError, Sandbox, SandboxCrash, SandboxTimeout, THREAD_ENV

MAX_IN_FLIGHT = 1000  # tasks submitted to the scheduler at once (a few hundred bytes each)
MAX_TRANSIENT_ATTEMPTS = 3  # runs that try an item again by themselves after the run was disturbed
CONNECT_TIMEOUT_S = 10.0  # seconds to reach a running scheduler before giving up
# what a disturbed run (not a bad input) looks like in a failure reason: out of memory, a full disk or quota
_TRANSIENT_MARKS = ("MemoryError", "No space left on device", "Errno 28", "Disk quota exceeded", "Errno 122",
                    "Cannot allocate memory", "Errno 12")
_SLURM_PROLOGUE = [f"export {k}={v}" for k, v in THREAD_ENV.items()]


@dataclasses.dataclass
class ClusterSettings:
    """Where the Dask work runs: a local cluster, a running scheduler, or SLURM via dask-jobqueue
    (the ``cluster:`` section of pipelines.yaml)."""

    kind: Literal["local", "address", "slurm"] = "local"
    workers: int = 2
    address: str | None = None  # for kind: address
    slurm: dict[str, Any] = dataclasses.field(default_factory=dict)  # keyword arguments of dask_jobqueue.SLURMCluster
    connect_timeout_s: float = CONNECT_TIMEOUT_S  # for kind: address / --scheduler


@dataclasses.dataclass(frozen=True)
class Task:
    """One item: ``key`` (unique name), ``source`` (named in failure reports), ``output`` (final file, or
    None for jobs that only return metadata) and ``args`` (small, picklable) for the function."""

    key: str
    source: str
    output: str | None
    args: Any


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What became of a task: ``status`` is 'done', 'skipped' (output already there) or 'failed';
    ``peak_rss_mb`` and ``cpu_seconds`` are those of the sandbox process that ran it."""

    key: str
    source: str
    output: str | None
    status: str
    reason: str | None = None
    result: Any = None
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    cpu_seconds: float = 0.0
    transient: bool = False  # a failure of the run (killed, timed out, out of memory, disk full), not of the input


def is_transient(reason: str) -> bool:
    """Whether a failure ``reason`` of a call that raised says the run was disturbed (out of memory, disk full)
    rather than that the input is bad."""
    return any(mark in reason for mark in _TRANSIENT_MARKS)


def failure_record(outcome: Outcome, earlier: dict[str, Any] | None) -> dict[str, Any]:
    """What a failed outcome records: ``{path, reason, kind: transient|permanent, attempts}`` (attempts counts
    the transient failures in a row, so a disturbed item is retried a bounded number of runs)."""
    kind = "transient" if outcome.transient else "permanent"
    attempts = 1 + (earlier.get("attempts", 1) if earlier and earlier.get("kind") == kind == "transient" else 0)
    return {"path": outcome.source, "reason": outcome.reason or "unknown", "kind": kind, "attempts": attempts}


def retry_now(record: dict[str, Any] | None, retry_failed: bool) -> bool:
    """Whether an item with failure ``record`` (None: it never failed) is tried in this run: always with
    ``retry_failed``; a transient failure by itself until it failed ``MAX_TRANSIENT_ATTEMPTS`` runs in a row."""
    if record is None or retry_failed:
        return True
    return record.get("kind") == "transient" and record.get("attempts", 1) < MAX_TRANSIENT_ATTEMPTS


def needs_retry_flag(failures: dict[str, dict[str, Any]]) -> bool:
    """Whether some failure will be tried again only with ``--retry-failed`` (bad input, or disturbed too often)."""
    return any(not retry_now(record, False) for record in failures.values())


def make_slurm_cluster(settings: ClusterSettings) -> Any:
    """A ``dask_jobqueue.SLURMCluster`` from ``settings.slurm`` (its keyword arguments), with one thread
    per worker process and native thread pools pinned to one thread in the job script."""
    from dask_jobqueue import SLURMCluster

    kwargs = dict(settings.slurm)
    kwargs.setdefault("cores", 1)
    kwargs.setdefault("processes", kwargs["cores"])  # one single-threaded worker process per core
    kwargs.setdefault("memory", "4GB")
    kwargs["job_script_prologue"] = _SLURM_PROLOGUE + list(kwargs.get("job_script_prologue", []))
    return SLURMCluster(**kwargs)


def check_cluster(settings: ClusterSettings, scheduler: str | None = None) -> None:
    """Raise ConfigError for a cluster section that cannot work (checked before any work starts)."""
    if settings.kind == "address" and not (scheduler or settings.address):
        raise ConfigError("cluster.kind is 'address' but no cluster.address / --scheduler was given")
    if settings.workers < 1:
        raise ConfigError(f"cluster.workers must be >= 1, got {settings.workers}")


@contextlib.contextmanager
def open_client(settings: ClusterSettings, *, workers: int | None = None, scheduler: str | None = None) -> Iterator[Client]:
    """A Dask client for ``settings`` (``cluster:`` of pipelines.yaml): ``scheduler`` (an address) wins,
    then ``settings.kind``: 'local' (``workers`` single-threaded processes), 'address' or 'slurm'."""
    check_cluster(settings, scheduler)
    n = workers or settings.workers
    if scheduler or settings.kind == "address":
        address = scheduler or settings.address
        try:
            client = Client(address, timeout=settings.connect_timeout_s)
        except (OSError, TimeoutError, ValueError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise ConfigError(f"cannot reach the Dask scheduler at {address} within {settings.connect_timeout_s:g} s "
                              f"({type(exc).__name__}: {reason}); is it running?") from None
        with client:
            yield client
        return
    if settings.kind == "slurm":
        with make_slurm_cluster(settings) as cluster, Client(cluster) as client:
            cluster.scale(n)
            yield client
        return
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                      memory_limit=0, env=dict(THREAD_ENV)) as cluster, Client(cluster) as client:
        yield client


_local = threading.local()


def _sandbox() -> Sandbox:
    if getattr(_local, "sandbox", None) is None:
        _local.sandbox = Sandbox()
    return _local.sandbox


def run_task(function: Callable[[Any, str | None], Any], task: Task, time_limit_s: float | None) -> Outcome:
    """Run one task in this thread's sandbox process (on a Dask worker); never raises for a bad item."""
    start = time.monotonic()
    if task.output is not None and os.path.exists(task.output):
        return Outcome(task.key, task.source, task.output, "skipped")
    tmp = None if task.output is None else str(temporary_name(task.output))
    reason, call, transient = None, None, True
    try:
        call = _sandbox().call(function, (task.args, tmp), time_limit_s)
        if tmp is not None:
            publish(tmp, task.output)
    except SandboxTimeout:
        reason = f"timed out after {time_limit_s:g} s (process killed)"
    except SandboxCrash as exc:
        reason = str(exc)
    except CallError as exc:
        reason = str(exc)
        transient = is_transient(reason)
    except OSError as exc:  # publishing the output: a full disk
        call, reason = None, f"{type(exc).__name__}: {exc}"
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    if call is None or reason is not None:
        return Outcome(task.key, task.source, task.output, "failed", reason, seconds=time.monotonic() - start,
                       transient=transient)
    return Outcome(task.key, task.source, task.output, "done", None, call.value, time.monotonic() - start,
                   call.peak_rss_mb, call.cpu_seconds)


def _dask_key(task: Task) -> str:
    return f"vssl-{hashlib.sha1(task.key.encode()).hexdigest()[:16]}-{uuid.uuid4().hex[:8]}"


def run_tasks(client: Client, function: Callable[[Any, str | None], Any], tasks: Sequence[Task], *,
              time_limit_s: float | None, progress: bool = True, desc: str = "videos",
              max_in_flight: int = MAX_IN_FLIGHT) -> Iterator[Outcome]:
    """Submit the tasks (at most ``max_in_flight`` at a time, so the scheduler holds little) and yield
    outcomes as they complete, with a progress bar (done / total, rate, failures)."""
    waiting = iter(tasks)
    running: dict[Any, Task] = {}
    finished = as_completed()

    def submit_next() -> None:
        task = next(waiting, None)
        if task is not None:
            future = client.submit(run_task, function, task, time_limit_s, key=_dask_key(task), pure=False)
            running[future] = task
            finished.add(future)

    for _ in range(max_in_flight):
        submit_next()
    bar = tqdm(total=len(tasks), desc=desc, unit="video", disable=not progress or not tasks, file=sys.stderr,
               dynamic_ncols=True)
    failed = 0
    try:
        for future in finished:
            task = running.pop(future)
            try:
                outcome = future.result()
            except Exception as exc:  # the worker died repeatedly on this task (KilledWorker) or similar
                outcome = Outcome(task.key, task.source, task.output, "failed", f"{type(exc).__name__}: {exc}",
                                  transient=True)
            submit_next()
            failed += outcome.status == "failed"
            bar.set_postfix(failed=failed, refresh=False)
            bar.update()
            yield outcome
    finally:
        bar.close()
        for future in running:
            future.cancel()
