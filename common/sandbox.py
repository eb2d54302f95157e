"""A child Python process that runs one function call at a time and is killed when a call runs too long.

Dask runs tasks in worker threads, where ``signal.alarm`` cannot interrupt a call stuck inside OpenCV or
FFmpeg; killing a separate process always works. The child is started with ``subprocess`` (Dask worker
processes are daemonic and may not use ``multiprocessing`` children), pins native thread pools (OpenMP,
BLAS, OpenCV) to one thread, dies with its parent (Linux ``PR_SET_PDEATHSIG``) and talks over its stdin/stdout with
length-prefixed pickles; anything the called code prints goes to stderr.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

_HEADER = struct.Struct("<Q")
_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


@dataclasses.dataclass(frozen=True)
class CallResult:
    """What a call returned, the child's peak resident memory so far (MB) and the call's CPU seconds."""

    value: Any
    peak_rss_mb: float
    cpu_seconds: float


class SandboxTimeout(Exception):
    """The call ran past its time limit; the child process was killed."""


class SandboxCrash(Exception):
    """The child process died during the call (a crash in native code, or killed from outside)."""


class CallError(Exception):
    """The called function raised; the message is ``ExceptionType: message`` from the child."""


def _send(stream: Any, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, left = [], n
    while left:
        if deadline is not None:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise SandboxTimeout
        chunk = os.read(fd, left)
        if not chunk:
            raise SandboxCrash
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class Sandbox:
    """Runs ``function(*args)`` in a persistent child process with a per-call time limit.

    ``call`` returns a CallResult; it raises SandboxTimeout (child killed; a new one starts on the next call), SandboxCrash or CallError.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        env = {**os.environ, **THREAD_ENV}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PROJECT_ROOT, env.get("PYTHONPATH", "")) if p)
        return subprocess.Popen([sys.executable, "-c", "from common.sandbox import serve; serve()"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def call(self, function: Callable[..., Any], args: tuple, time_limit_s: float | None) -> CallResult:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        proc = self._proc
        deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
        try:
            _send(proc.stdin, (function, args))
            size = _HEADER.unpack(_read_exact(proc.stdout.fileno(), _HEADER.size, deadline))[0]
            status, value, peak_mb, cpu_s = pickle.loads(_read_exact(proc.stdout.fileno(), size, deadline))
        except SandboxTimeout:
            self.close(kill=True)
            raise
        except (SandboxCrash, BrokenPipeError, EOFError) as exc:
            code = proc.wait()
            self._proc = None
            reason = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            raise SandboxCrash(f"sandbox process died ({reason})") from exc
        if status == "error":
            raise CallError(value)
        return CallResult(value, peak_mb, cpu_s)

    def close(self, kill: bool = False) -> None:
        """Stop the child: closing its stdin ends it after the current call, ``kill`` ends it now."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if kill:
            proc.kill()
        proc.stdin.close()
        proc.wait()
        proc.stdout.close()


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the child still ends when its stdin closes
        pass


def serve() -> None:
    """Child main loop: read ``(function, args)``, reply ``(status, value, peak_rss_mb, cpu_seconds)`` until
    stdin closes."""
    import resource

    _die_with_parent()
    import cv2

    cv2.setNumThreads(1)  # OpenCV's own pool ignores OMP_NUM_THREADS
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the replies
    requests = sys.stdin.buffer
    while True:
        header = requests.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        function, args = pickle.loads(requests.read(_HEADER.unpack(header)[0]))
        cpu_start = time.process_time()
        try:
            reply = ("ok", function(*args))
        except Exception as exc:  # reported to the parent, which records it as the item's failure
            reply = ("error", f"{type(exc).__name__}: {exc}")
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        _send(replies, (*reply, peak_mb, time.process_time() - cpu_start))
