"""Pacing of the statistics curriculum (thesis ch. 3; Hacohen & Weinshall 2019): how many of the easiest
clips (sorted by the ``curriculum`` labels' score, ``labels.curriculum``) training may draw from at a step."""
from __future__ import annotations

import math

from train.settings import PacingSettings


def available_fraction(settings: PacingSettings, step: int) -> float:
    """Fraction of the clips (easiest first) available at training ``step`` (0-based), in (0, 1].

    - ``single_step``: ``start_fraction`` for the first ``step_length`` steps, then 1;
    - ``fixed_exp``: starts at ``start_fraction`` and is multiplied by ``increase`` every ``step_length`` steps;
    - ``varied_exp``: as ``fixed_exp``, but stage k lasts ``step_length * step_decay**k`` steps.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    increase = math.inf if settings.kind == "single_step" else settings.increase
    decay = settings.step_decay if settings.kind == "varied_exp" else 1.0
    fraction, stage_end, stage_length = settings.start_fraction, 0.0, float(settings.step_length)
    while fraction < 1.0:
        stage_end += stage_length
        if step < stage_end:
            break
        fraction = min(fraction * increase, 1.0)
        stage_length *= decay
    return min(fraction, 1.0)


def pacing(settings: PacingSettings, step: int, n_total: int) -> int:
    """How many of the ``n_total`` easiest clips the sampler may draw from at training ``step``
    (at least 1 when ``n_total`` > 0): ``ceil(available_fraction * n_total)``."""
    if n_total < 0:
        raise ValueError(f"n_total must be >= 0, got {n_total}")
    if n_total == 0:
        return 0
    # the tolerance keeps float noise (0.1 * 3 * 10 = 3.0000000000000004) from adding a clip
    return max(1, min(n_total, math.ceil(available_fraction(settings, step) * n_total - 1e-9)))
