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
    """``{key: [recorded, wanted]}`` for the resumable changes of the ``train`` section between the run's
    ``config.yaml`` (``recorded``) and this command (``wanted``), both plain data; raises ResumeRefused naming
    every other differing key."""
    old = _leaves({"train": recorded.get("train")})
    new = _leaves({"train": wanted.get("train")})
    differing = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    cosine = new.get("train.schedule.kind") == "cosine"
    refused = [k for k in differing if k not in RESUMABLE or (cosine and k in LENGTH)]
    if refused:
        lines = setting_differences({k: old.get(k) for k in refused}, {k: new.get(k) for k in refused}, "in the run")
        why = " (a cosine schedule spans the whole run: its length cannot change)" if cosine and set(refused) & set(LENGTH) else ""
        raise ResumeRefused(f"--resume would change the run: {'; '.join(lines)}{why}. Resumable changes: "
                            f"{', '.join(RESUMABLE)}; start a new --out folder for other settings")
    return {k: [old.get(k), new.get(k)] for k in differing}


def check_resume(out_dir: str | Path, wanted: Mapping[str, Any], step: int) -> dict[str, list[Any]]:
    """Compare ``wanted`` (plain data) with ``out_dir/config.yaml``; append the resumable changes made at
    checkpoint ``step`` to ``out_dir/resumes.jsonl`` and return them. Raises ResumeRefused."""
    config = Path(out_dir) / "config.yaml"
    if not config.is_file():
        return {}
    try:
        recorded = yaml.safe_load(config.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ResumeRefused(f"{config}: unreadable run settings ({exc})") from None
    changes = resume_changes(recorded, wanted)
    if changes:
        line = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "at_step": step, "changes": changes}
        with open(Path(out_dir) / HISTORY, "a") as f:
            f.write(json.dumps(line) + "\n")
    return changes
