"""Training in phases (e.g. DPC's 5pred3 -> 4pred4 curriculum, Video LA's IR warm-up -> LA -> joint tuning):
each phase is a whole training run into ``RUN/phaseK_NAME/`` that starts from the previous phase's method state
(``TrainSettings.init_from``: weights, memory bank, ...), without a manual step; ``RUN/backbone.pt`` is the last
phase's backbone."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any, Mapping

from common.atomic import atomic_path
from train.loop import BACKBONE_FILE, train
from train.settings import TrainSettings


def phase_dir(out_dir: str | Path, index: int, name: str) -> Path:
    """The run folder of phase ``index`` (from 0) named ``name``: ``OUT/phase1_NAME``, ..."""
    return Path(out_dir) / f"phase{index + 1}_{name}"


def train_in_phases(phases: list[tuple[str, TrainSettings]], data_dir: str | Path, out_dir: str | Path, *,
                    device: str = "cpu", resume: bool = False, progress: bool = True,
                    record: Mapping[str, Any] | None = None) -> Path:
    """Train ``phases`` ``[(name, settings)]`` one after the other into ``out_dir``; returns
    ``out_dir/backbone.pt``. With ``resume`` a phase that already exported its backbone is kept as it is and
    an interrupted one continues from its last checkpoint."""
    previous: Path | None = None
    for index, (name, settings) in enumerate(phases):
        folder = phase_dir(out_dir, index, name)
        if previous is not None and settings.init_from is None:
            settings = dataclasses.replace(settings, init_from=str(previous))
        if not (resume and (folder / BACKBONE_FILE).is_file()):
            train(settings, data_dir, folder, device=device, resume=resume, progress=progress, record=record)
        previous = folder
    final = Path(out_dir) / BACKBONE_FILE
    with atomic_path(final) as tmp:
        shutil.copyfile(previous / BACKBONE_FILE, tmp)
    return final
