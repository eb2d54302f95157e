"""Curriculum: clip difficulty score and the pacing functions, against values worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from labels.curriculum import motion_score
from train.curriculum import available_fraction, pacing
from train.settings import PacingSettings

S, T = 112, 15


def test_motion_confined_to_one_block_scores_one() -> None:
    u = np.zeros((T, S, S), np.float32)
    u[3, 33:45, 33:45] = 2.0  # boundary rows/cols 32..45, inside block 6 ([28:56, 28:56])
    assert motion_score(u, np.zeros_like(u)) == pytest.approx(1.0)


def test_motion_split_over_blocks_scores_the_largest_share() -> None:
    """Two equal squares in blocks 1 and 16 of u (share 1/2 each); v has one square in one block and a
    second square half as strong in another: share 2/3 -> the score is the larger, 2/3."""
    u = np.zeros((T, S, S), np.float32)
    v = np.zeros((T, S, S), np.float32)
    u[:, 5:15, 5:15] = 1.0
    u[:, 90:100, 90:100] = 1.0
    v[:, 5:15, 5:15] = 2.0
    v[:, 90:100, 90:100] = 1.0
    assert motion_score(u, v) == pytest.approx(2 / 3, rel=1e-5)


def test_static_clip_scores_zero() -> None:
    flow = np.full((T, S, S), 1.5, np.float32)  # uniform translation: no motion boundary anywhere
    assert motion_score(flow, flow) == 0.0


def test_single_step_pacing() -> None:
    settings = PacingSettings(kind="single_step", start_fraction=0.5, step_length=100)
    assert [pacing(settings, s, 1000) for s in (0, 99, 100, 5000)] == [500, 500, 1000, 1000]
    assert pacing(settings, 0, 7) == 4  # ceil(3.5)


def test_fixed_exponential_pacing() -> None:
    settings = PacingSettings(kind="fixed_exp", start_fraction=0.1, step_length=50, increase=2.0)
    steps = [0, 49, 50, 99, 100, 150, 199, 200, 10_000]
    assert [pacing(settings, s, 1000) for s in steps] == [100, 100, 200, 200, 400, 800, 800, 1000, 1000]


def test_varied_exponential_pacing() -> None:
    """Stages last 100, 50, 25, ... steps; fractions 0.2, 0.6, 1.0 (increase 3, capped at 1)."""
    settings = PacingSettings(kind="varied_exp", start_fraction=0.2, step_length=100, increase=3.0, step_decay=0.5)
    assert [available_fraction(settings, s) for s in (0, 99, 100, 149, 150)] == pytest.approx([0.2, 0.2, 0.6, 0.6, 1.0])
    assert pacing(settings, 120, 10) == 6


def test_pacing_edge_cases() -> None:
    settings = PacingSettings(kind="fixed_exp", start_fraction=0.1 * 3, step_length=10, increase=2.0)
    assert pacing(settings, 0, 10) == 3  # 0.1 * 3 * 10 is 3.0000000000000004 in floats
    assert pacing(settings, 0, 1) == 1 and pacing(settings, 0, 0) == 0
    with pytest.raises(ValueError, match="step"):
        pacing(settings, -1, 10)
    with pytest.raises(ValueError, match="start_fraction"):
        PacingSettings(start_fraction=0.0)
    with pytest.raises(ValueError, match="increase"):
        PacingSettings(increase=1.0)
