"""Which settings may change when a run is resumed, and the record of the changes that were made.

A resumed run must continue the run its checkpoints come from. Only settings that do not alter what the
finished steps were, nor what the next steps compute, may change: how long it runs (``epochs``, ``max_steps``,
unless a cosine schedule spans the total), and bookkeeping (checkpoint and log intervals, loader workers: the
items are the same whatever their count). Every other difference is refused by name.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any, Mapping

import yaml

from common.settings import setting_differences
from train.checkpoint import list_checkpoints, load_checkpoint

RESUMABLE = ("train.epochs", "train.max_steps", "train.checkpoint_every", "train.keep_checkpoints",
             "train.log_every", "train.num_workers")
LENGTH = ("train.epochs", "train.max_steps")
HISTORY = "resumes.jsonl"  # one line per resume that changed a resumable setting


class ResumeRefused(ValueError):
    """Resuming with these settings would alter the run; the message names each differing key."""


def _leaves(record: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(record, Mapping):
        return {k: v for key, value in record.items() for k, v in _leaves(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): record}


def resume_changes(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{key: [recorded, wanted]}`` for the resumable changes of the ``train`` section (and ``phases``) between the run's
    ``config.yaml`` (``recorded``) and this command (``wanted``), both plain data; raises ResumeRefused naming
    every other differing key."""
    old = _leaves({"train": recorded.get("train"), "phases": recorded.get("phases")})
    new = _leaves({"train": wanted.get("train"), "phases": wanted.get("phases")})
    differing = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    cosine = new.get("train.schedule.kind") == "cosine"
    refused = [k for k in differing if k not in RESUMABLE or (cosine and k in LENGTH)]
    if refused:
        lines = setting_differences({k: old.get(k) for k in refused}, {k: new.get(k) for k in refused}, "in the run")
        why = " (a cosine schedule spans the whole run: its length cannot change)" if cosine and set(refused) & set(LENGTH) else ""
        raise ResumeRefused(f"--resume would change the run: {'; '.join(lines)}{why}. Resumable changes: "
                            f"{', '.join(RESUMABLE)}; start a new --out folder for other settings")
    return {k: [old.get(k), new.get(k)] for k in differing}


def run_config(out_dir: str | Path) -> Path | None:
    """The settings a run folder records: ``RUN/config.yaml``, or for a run in phases the newest
    ``RUN/phaseK_NAME/config.yaml`` (every phase records the whole pipeline); None before any was written."""
    out_dir = Path(out_dir)
    if (out_dir / "config.yaml").is_file():
        return out_dir / "config.yaml"
    phases = sorted(out_dir.glob("phase*/config.yaml"), key=lambda p: p.stat().st_mtime_ns)
    return phases[-1] if phases else None


def check_resume(out_dir: str | Path, wanted: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Compare ``wanted`` (the pipeline record as plain data) with the run's recorded settings; append the
    resumable changes, with the step of the latest checkpoint, to ``out_dir/resumes.jsonl`` and return them.
    Raises ResumeRefused, or ValueError naming the latest checkpoint when it cannot be read (nothing recorded)."""
    config = run_config(out_dir)
    if config is None:
        return {}
    try:
        recorded = yaml.safe_load(config.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ResumeRefused(f"{config}: unreadable run settings ({exc})") from None
    changes = resume_changes(recorded, wanted)
    if changes:
        saved = list_checkpoints(config.parent / "checkpoints")
        if saved:
            load_checkpoint(saved[-1][1])  # a broken checkpoint refuses the resume before it is recorded
        line = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "at_step": saved[-1][0] if saved else 0, "changes": changes}
        with open(Path(out_dir) / HISTORY, "a") as f:
            f.write(json.dumps(line) + "\n")
    return changes
