"""Training checkpoints: atomic writes, the latest one on disk, and the RNG states needed for exact resume.

A checkpoint is one ``torch.save`` file ``RUN_DIR/checkpoints/step_NNNNNNNN.pt`` holding a plain dict
(model, optimizer, scheduler, grad-scaler state, step, RNG states). It is written to a temporary file in the
same folder and renamed into place (``common.atomic``), so a file under its final name is always complete.
"""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.atomic import atomic_path

_NAME = re.compile(r"^step_(\d{8})\.pt$")


def checkpoint_path(folder: str | Path, step: int) -> Path:
    """``folder/step_NNNNNNNN.pt`` for ``step``."""
    return Path(folder) / f"step_{step:08d}.pt"


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through ``common.atomic.atomic_path``: the file appears only once completely written."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def list_checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``folder`` as ``(step, path)``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``folder``, or None."""
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def prune_checkpoints(folder: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` most recent checkpoints in ``folder``."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1 (the latest checkpoint is always kept), got {keep}")
    for _, path in list_checkpoints(folder)[:-keep]:
        path.unlink(missing_ok=True)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint dict onto the CPU; a broken file raises ValueError naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{path}: cannot read checkpoint: {exc}") from exc
    if not isinstance(state, dict) or "step" not in state or "model" not in state:
        raise ValueError(f"{path}: not a vssl training checkpoint (missing 'step'/'model')")
    return state


def capture_rng_state() -> dict[str, Any]:
    """The global RNG states of Python, NumPy, torch CPU and (when present) every CUDA device."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
