"""Improved Dense Trajectories of the KTH clip against the original release's output on it
(``idt_reference``), the figures of issue #11; the release text export; the drawing; bounded memory."""
from __future__ import annotations

import gzip
import re
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from labels.idt import (
    column_layout,
    dense_trajectories,
    dense_trajectories_from_frames,
    draw_trajectories,
    read_release_text,
    write_release_text,
)

KTH = "kth/person01_boxing_d1_uncomp.avi"
REFERENCE = "idt_reference/person01_boxing_d1.original_release.txt.gz"
REFERENCE_PER_SCALE = {1.0: 1105, 1.414214: 562, 2.0: 247, 2.828427: 87}


@pytest.fixture(scope="module")
def kth(shared_data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(our rows, our positions, the release's rows) on the KTH clip, computed once (~10 s)."""
    ours, points = dense_trajectories(shared_data / KTH, with_points=True)
    return ours, points, read_release_text(shared_data / REFERENCE)


def match_rows(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For every reference row the index of our row with the same frame_end and scale and the nearest mean
    position if it is within 0.5 px in x and in y, else -1: int [N_reference]."""
    matches = np.full(len(reference), -1)
    for index, row in enumerate(reference):
        candidates = np.nonzero((ours[:, 0] == row[0]) & np.isclose(ours[:, 6], row[6], atol=1e-5))[0]
        if not len(candidates):
            continue
        offsets = np.abs(ours[candidates, 1:3] - row[1:3])
        best = candidates[np.argmin(offsets.sum(axis=1))]
        if np.all(np.abs(ours[best, 1:3] - row[1:3]) < 0.5):
            matches[index] = best
    return matches


def test_counts_match_the_release(kth):
    ours, _, reference = kth
    assert ours.dtype == np.float32 and ours.shape[1] == 436
    assert len(reference) == 2001
    assert abs(len(ours) - 2001) <= 0.05 * 2001
    for scale, count in REFERENCE_PER_SCALE.items():
        assert abs(np.isclose(ours[:, 6], scale, atol=1e-5).sum() - count) <= 0.1 * count, scale


def test_rows_and_descriptors_match_the_release(kth):
    ours, _, reference = kth
    matches = match_rows(ours, reference)
    found = matches >= 0
    assert found.mean() >= 0.9   # issue #11
    assert found.mean() >= 0.98  # regression guard: measured 0.9975 (docs/IDT.md)
    layout = column_layout()
    mine, theirs = ours[matches[found]], reference[found]
    limits = {"hog": 0.01, "hof": 0.02, "mbhx": 0.02, "mbhy": 0.02, "trajectory": 0.02}  # issue #11
    # regression guards, about 5x the measured differences (HOG: about the print precision)
    guards = {"hog": 1e-5, "hof": 0.003, "mbhx": 0.005, "mbhy": 0.005, "trajectory": 0.003}
    for name, limit in limits.items():
        difference = np.abs(mine[:, layout[name]] - theirs[:, layout[name]]).mean()
        assert difference < limit and difference < guards[name], (name, difference)
    # info columns: var, length, x_pos, y_pos, t_pos to print precision where the tracks agree
    assert np.median(np.abs(mine[:, 3:10] - theirs[:, 3:10])) < 1e-3


def test_positions_agree_with_the_rows(kth):
    ours, points, _ = kth
    assert points.shape == (len(ours), 16, 2)
    np.testing.assert_allclose(points.mean(axis=1), ours[:, 1:3], atol=1e-3)
    steps = np.sqrt((np.diff(points, axis=1) ** 2).sum(axis=2)).sum(axis=1)
    np.testing.assert_allclose(steps, ours[:, 5], rtol=1e-4)
    np.testing.assert_allclose(ours[:, 9], np.clip((ours[:, 0] - 7.5) / 360, 0, 0.999), atol=1e-6)


def test_release_text_round_trip_and_format(kth, tmp_path: Path, shared_data: Path):
    ours = kth[0][:50]
    path = tmp_path / "kth.txt.gz"
    write_release_text(ours, path)
    back = read_release_text(path)
    np.testing.assert_allclose(back, ours, atol=5e-7 + 1e-6)
    with gzip.open(path, "rt") as text:
        line = text.readline()
    with gzip.open(shared_data / REFERENCE, "rt") as text:
        reference_line = text.readline()
    pattern = r"^\d+\t(-?\d+\.\d{6}\t){39}(-?\d+\.\d{7}\t){396}\n$"
    assert re.match(pattern, reference_line) and re.match(pattern, line)


def test_drawing_shows_the_tracks_that_end_on_each_frame(kth):
    ours, points, _ = kth
    frames = np.zeros((3, 120, 160, 3), np.uint8)
    numbers = [15, 100, 200]
    picture = draw_trajectories(frames, numbers, ours[:, 0], points, columns=2)
    assert picture.shape == (240, 320, 3) and picture.dtype == np.uint8
    assert not picture[120:, 160:].any()  # the fourth tile has no frame
    for tile, number in enumerate(numbers):
        row, column = divmod(tile, 2)
        part = picture[row * 120:(row + 1) * 120, column * 160:(column + 1) * 160]
        ends = points[ours[:, 0] == number][:, -1]
        assert len(ends)
        x, y = np.clip(np.rint(ends).astype(int), 0, [159, 119]).T
        assert (part[y, x, 2] > 100).mean() > 0.9  # a red dot at every last position
        assert (part[..., 1] > 0).any()           # green polylines


def textured_frames(count: int, size: tuple[int, int] = (48, 64), seed: int = 0):
    """A fixed random texture with small noise: every track is static, so none is ever output."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, size).astype(np.float32), (0, 0), 1.0)
    for _ in range(count):
        yield np.clip(texture + rng.normal(0, 0.5, size), 0, 255).astype(np.uint8)


def test_memory_does_not_grow_with_the_video_length():
    peaks = []
    for count in (20, 80):
        tracemalloc.start()
        rows = dense_trajectories_from_frames(textured_frames(count))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert rows.shape == (0, 436)
    assert peaks[1] < 1.2 * peaks[0]


def test_degenerate_inputs_give_no_rows():
    assert dense_trajectories_from_frames([]).shape == (0, 436)
    assert dense_trajectories_from_frames([np.zeros((60, 80), np.uint8)]).shape == (0, 436)
    rows, points = dense_trajectories_from_frames(np.zeros((20, 60, 80), np.uint8), with_points=True)
    assert rows.shape == (0, 436) and points.shape == (0, 16, 2)
    with pytest.raises(ValueError, match="smaller than the 32 px"):
        dense_trajectories_from_frames(np.zeros((3, 24, 40), np.uint8))
    with pytest.raises(ValueError, match="frame 1"):
        dense_trajectories_from_frames([np.zeros((60, 80), np.uint8), np.zeros((60, 81), np.uint8)])


def test_video_frames_are_grey_and_resizable(shared_data: Path):
    from labels.idt import grey_frames
    first = next(grey_frames(shared_data / KTH))
    capture = cv2.VideoCapture(str(shared_data / KTH))
    bgr = capture.read()[1]
    capture.release()
    np.testing.assert_array_equal(first, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    assert next(grey_frames(shared_data / KTH, size=(60, 80))).shape == (60, 80)
