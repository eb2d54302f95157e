"""Run folders held by one run at a time: an flock with a token of the run, and the cleanup of temporary
outputs a killed run left behind."""
from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Iterator

from common.atomic import TMP_MARK
from common.errors import Unwritable


@contextlib.contextmanager
def exclusive(lock_file: str | Path, busy: Exception) -> Iterator[str]:
    """Hold an flock on ``lock_file`` for the duration (released even if this process is killed), so two runs
    never write one output folder; raise ``busy`` when another process holds it. Yields a token of this run,
    written into the lock file: a task of an ended run can see with :func:`still_running` that it must not
    publish its output."""
    import fcntl

    try:
        lock = open(lock_file, "a+")
    except OSError as exc:
        raise Unwritable(f"{lock_file}: cannot take the lock ({exc.strerror or exc}); the folder must be writable") from None
    with lock:  # not "w": truncating before the lock is held would wipe a live token
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        token = uuid.uuid4().hex
        lock.seek(0)
        lock.truncate()
        lock.write(token)
        lock.flush()
        yield token


def still_running(lock_file: str | Path, token: str) -> bool:
    """Whether the run holding ``token`` (from :func:`exclusive`) is still the owner of ``lock_file``."""
    try:
        return Path(lock_file).read_text() == token
    except OSError:
        return False


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete temporary outputs left in ``folder`` by a killed run (call only when no run is active)."""
    stale = [p for p in Path(folder).glob(f"*{TMP_MARK}*") if p.is_file()]
    for path in stale:
        path.unlink()
    return stale
