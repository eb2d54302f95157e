"""Malloc settings of a worker process: freed memory is kept for the next item.

A worker that handles one item after another (a clip's labels, a training batch) allocates a few MB of
short-lived arrays per item. With glibc's default, adaptive thresholds part of this memory goes back to the
kernel when it is freed (``munmap`` of large blocks, trimming of the heap top) and is faulted in again, page
by page, for the next item: in a label worker ~1200-1800 page faults and a fifth of the CPU time per clip
variant (docs/LABELS.md, Speed). How much depends on the order of allocations, so any change of the loop
could move it. Fixed thresholds keep blocks up to ``mmap_threshold`` on the heap and the heap top up to
``trim_threshold``: the faults go away whatever the order, at the cost of keeping that much freed memory.
Where it pays and where not (extraction, training and evaluation loaders): docs/LABELS.md.
"""
from __future__ import annotations

import ctypes

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # bytes: glibc's own ceiling for its adaptive threshold
TRIM_THRESHOLD = 64 << 20  # bytes of free heap top kept by the process


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Set this process's glibc malloc to serve blocks below ``mmap_threshold`` bytes from the heap and to
    return the heap top to the kernel only beyond ``trim_threshold`` bytes. Returns False (nothing changed)
    where the C library has no ``mallopt`` (not glibc) or refuses the values."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def keep_freed_memory_in_worker(worker_id: int) -> None:
    """``worker_init_fn`` of a torch DataLoader: :func:`keep_freed_memory` in each worker process
    (``worker_id`` unused)."""
    keep_freed_memory()
