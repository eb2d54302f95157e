"""The exit-code contract every command follows (README "Exit status"), in one place.

0 all done; 1 some input failed (listed); 2 refused or stopped before harm (bad settings, a locked, damaged or
read-only folder, a full disk: one line names the path and the reason); 130 interrupted (SIGINT or SIGTERM).
"""
from __future__ import annotations

import errno
import signal
import threading
from typing import Any

import click

INPUT_FAILED, REFUSED, INTERRUPTED = 1, 2, 130  # and 0: all done
_DISK_ERRNOS = {errno.ENOSPC: "no space left on the disk", errno.EDQUOT: "disk quota exceeded"}
_ACCESS_ERRNOS = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EPERM: "not permitted"}
_PATH_ERRNOS = {errno.ENOTDIR: "a part of this path is a file, not a folder"}
_DISK_TEXT = ("No space left on device", "errno = 28", "Disk quota exceeded", "errno = 122")


def os_problem(exc: BaseException) -> str | None:
    """A one-line message for an OSError that is the disk's, the permissions' or the path's fault (full,
    read-only, not ours, a file where a folder should be), naming the path; None for any other error. Finds it
    also in a chained cause (h5py, torch.save)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):
            path = seen.filename or ""
            where = f"{path}: " if path else ""
            if seen.errno in _DISK_ERRNOS:
                return f"{where}{_DISK_ERRNOS[seen.errno]}; free space and run the same command again (nothing half-written is kept)"
            if seen.errno in _ACCESS_ERRNOS:
                return f"{where}{_ACCESS_ERRNOS[seen.errno]}; check the permissions or choose a writable folder"
            if seen.errno in _PATH_ERRNOS:
                return f"{where}{_PATH_ERRNOS[seen.errno]}; choose another folder"
            if any(mark in str(seen) for mark in _DISK_TEXT):
                return (f"no space left on the disk ({' '.join(str(seen).split())[:300]}); free space and run the "
                        "same command again (nothing half-written is kept)")
        seen = seen.__cause__ or seen.__context__
    return None


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


class ContractGroup(click.Group):
    """A click group whose commands exit 130 on SIGINT or SIGTERM (not click's "Aborted!" with 1) and 2 with one
    line for a full disk or an unwritable or impossible path (not a traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, click.Abort):
            click.echo("interrupted: finished work is kept; run the same command again to resume", err=True)
            ctx.exit(INTERRUPTED)
        except OSError as exc:
            message = os_problem(exc)
            if message is None:
                raise
            click.echo(f"Error: {message}", err=True)
            ctx.exit(REFUSED)
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
