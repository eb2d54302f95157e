"""common.memory: with the workers' malloc settings, freed blocks are reused without page faults, in a process
that sets them itself and in the DataLoader worker processes of ``keep_freed_memory_in_worker``."""
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
def rounds(n):
    for _ in range(n):
        a, b, c = (np.ones(6 << 20, np.uint8) for _ in range(3))
        del a, b, c
def faults_per_round():
    rounds(3)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    rounds(20)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20
"""
_PROCESS = _ROUNDS + """
if sys.argv[1] == "keep":
    from common.memory import keep_freed_memory
    assert keep_freed_memory()
print(faults_per_round())
"""
# the same rounds as the items of a DataLoader, counted inside its worker process
_LOADER = _ROUNDS + """
import torch
from common.memory import keep_freed_memory_in_worker
class Rounds(torch.utils.data.Dataset):
    def __len__(self):
        return 2
    def __getitem__(self, i):
        return faults_per_round()
init = keep_freed_memory_in_worker if sys.argv[1] == "keep" else None
loader = torch.utils.data.DataLoader(Rounds(), batch_size=None, num_workers=1, worker_init_fn=init)
print(max(float(value) for value in loader))
"""
_PAGES = 3 * (6 << 20) // os.sysconf("SC_PAGE_SIZE")
glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings are glibc's")


def _faults_per_round(script: str, mode: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", script, mode], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


@glibc_only
def test_freed_blocks_are_reused_without_page_faults() -> None:
    assert _faults_per_round(_PROCESS, "default") > 0.1 * _PAGES  # glibc's adaptive default hands them back
    assert _faults_per_round(_PROCESS, "keep") < 0.01 * _PAGES


@glibc_only
def test_dataloader_workers_keep_freed_memory() -> None:
    assert _faults_per_round(_LOADER, "default") > 0.1 * _PAGES
    assert _faults_per_round(_LOADER, "keep") < 0.01 * _PAGES
