"""Curriculum for the statistics task (thesis ch. 3): clip difficulty and pacing functions.

A clip is easy when its motion is concentrated: ``f = max over (u, v) of the share of the summed
motion boundary magnitude that falls in the largest-motion pattern-1 block``. Training sorts clips by
descending ``f``; the pacing of the curriculum belongs to training (``train.curriculum``).
"""
from __future__ import annotations

import numpy as np

from labels.regions import region_layout
from labels.stats import MotionBoundaries, clip_motion_boundaries, region_sums


def score_from_boundaries(boundaries: MotionBoundaries) -> float:
    """Curriculum score ``f`` in [1/16, 1] of a clip from its :class:`labels.stats.MotionBoundaries`;
    0.0 for a clip without any motion boundary (static or uniform flow), which sorts it last (hardest)."""
    layout = region_layout(boundaries.magnitude.shape[-1])
    shares = []
    for magnitude in boundaries.magnitude:
        blocks = region_sums(magnitude, layout)[layout.pattern_slice("blocks")]
        total = blocks.sum()
        shares.append(blocks.max() / total if total > 0 else 0.0)
    return float(max(shares))


def motion_score(u: np.ndarray, v: np.ndarray) -> float:
    """Curriculum score of one clip from its flow u, v (float [T, S, S] px); high = easy."""
    return score_from_boundaries(clip_motion_boundaries(u, v))
