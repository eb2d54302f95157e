"""labels.memory: with the label worker's malloc settings, freed blocks are reused without page faults."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# three 6 MB arrays made and freed in turn, as a clip's temporaries are: minor page faults per round
_ROUNDS = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from labels.memory import keep_freed_memory
    assert keep_freed_memory()
def rounds(n):
    for _ in range(n):
        a, b, c = (np.ones(6 << 20, np.uint8) for _ in range(3))
        del a, b, c
rounds(3)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(20)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _faults_per_round(mode: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", _ROUNDS, mode], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings are glibc's")
def test_freed_blocks_are_reused_without_page_faults() -> None:
    pages = 3 * (6 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert _faults_per_round("default") > 0.1 * pages  # glibc's adaptive default hands them back and faults again
    assert _faults_per_round("keep") < 0.01 * pages
