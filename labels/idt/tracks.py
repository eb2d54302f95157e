"""Trajectories of one pyramid level as arrays (``std::list<Track>`` of the release, vectorised): positions,
warped displacements and per-frame descriptors of at most L frames per live track."""
from __future__ import annotations

import numpy as np

from labels.idt.parameters import (
    MAX_STD,
    MAX_STEP,
    MAX_STEP_FRACTION,
    MIN_CAMERA_DISPLACEMENT,
    MIN_STD,
)


class LevelTracks:
    """Live tracks of one level, in the release's list order, stored in a pool of reusable slots.

    Pool arrays (C slots): ``points`` float32 [C, L+1, 2] positions (x, y) on the level, ``displacements``
    float32 [C, L, 2] warped flow at each step, ``descriptors`` float32 [C, L, D] per-frame descriptors.
    Live tracks: ``slots`` int [P] and ``age`` int [P], the number of steps tracked (index of the current
    position). The pool grows to the largest number of live tracks and is reused, so memory stays bounded.
    """

    def __init__(self, track_length: int, descriptor_size: int) -> None:
        self.points = np.zeros((0, track_length + 1, 2), np.float32)
        self.displacements = np.zeros((0, track_length, 2), np.float32)
        self.descriptors = np.zeros((0, track_length, descriptor_size), np.float32)
        self.slots = np.zeros(0, np.intp)
        self.age = np.zeros(0, np.intp)
        self._free = np.zeros(0, np.intp)

    def __len__(self) -> int:
        return len(self.slots)

    def current(self) -> np.ndarray:
        """float32 [P, 2] latest position of every live track."""
        return self.points[self.slots, self.age]

    def keep(self, keep: np.ndarray) -> None:
        """Keep the live tracks where bool [P] ``keep`` is set; the others' slots are freed."""
        self._free = np.concatenate([self._free, self.slots[~keep]])
        self.slots, self.age = self.slots[keep], self.age[keep]

    def start(self, new_points: np.ndarray) -> None:
        """Start a track at each of float32 [N, 2] new positions, after the existing ones."""
        count = len(new_points)
        missing = count - len(self._free)
        if missing > 0:
            capacity = len(self.points)
            grow = max(missing, capacity)
            self.points, self.displacements, self.descriptors = (
                np.concatenate([pool, np.zeros((grow,) + pool.shape[1:], np.float32)])
                for pool in (self.points, self.displacements, self.descriptors))
            self._free = np.concatenate([self._free, np.arange(capacity, capacity + grow)])
        slots, self._free = self._free[:count], self._free[count:]
        self.points[slots, 0] = new_points
        self.slots = np.concatenate([self.slots, slots])
        self.age = np.concatenate([self.age, np.zeros(count, np.intp)])


def step_tracks(tracks: LevelTracks, flow: np.ndarray, warped_flow: np.ndarray, descriptors: np.ndarray) -> None:
    """Advance every live track by the flow at its rounded position; tracks leaving the level end (freed).

    Args:
        flow, warped_flow: float32 [H, W, 2] flow of the level before / after camera-motion compensation.
        descriptors: float32 [P, D] descriptors of this frame at the current positions (before the step).
    Records the new position, the warped displacement and the descriptors in the surviving tracks.
    """
    height, width = flow.shape[:2]
    position = tracks.current()
    x = np.clip(np.rint(position[:, 0]), 0, width - 1).astype(np.intp)
    y = np.clip(np.rint(position[:, 1]), 0, height - 1).astype(np.intp)
    moved = position + flow[y, x]
    keep = (moved[:, 0] > 0) & (moved[:, 0] < width) & (moved[:, 1] > 0) & (moved[:, 1] < height)
    slots, age = tracks.slots[keep], tracks.age[keep]
    tracks.displacements[slots, age] = warped_flow[y[keep], x[keep]]
    tracks.descriptors[slots, age] = descriptors[keep]
    tracks.points[slots, age + 1] = moved[keep]
    tracks.age[keep] += 1
    tracks.keep(keep)


def trajectory_statistics(points: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, standard deviation, length and validity of complete trajectories float32 [P, L+1, 2] (frame
    pixels), with the release's rules: not static (std < sqrt(3) in both x and y), not random (std > 50 in
    x or y), no single step above 20 px and 0.7 x the length. Values float32 [P] (mean/std [P, 2])."""
    mean = points.mean(axis=1, dtype=np.float32)
    std = np.sqrt(((points - mean[:, None]) ** 2).mean(axis=1, dtype=np.float32))
    steps = np.sqrt((np.diff(points, axis=1) ** 2).sum(axis=2))
    length = steps.sum(axis=1, dtype=np.float32)
    largest = steps.max(axis=1)
    valid = (~((std[:, 0] < MIN_STD) & (std[:, 1] < MIN_STD)) & ~((std[:, 0] > MAX_STD) | (std[:, 1] > MAX_STD))
             & ~((largest > MAX_STEP) & (largest > length * MAX_STEP_FRACTION)))
    return {"mean": mean, "std": std, "length": length, "valid": valid}


def displacement_shape(displacements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera-motion test and trajectory shape of warped displacements float32 [P, L, 2] (frame pixels).

    Returns:
        moving: bool [P], the largest displacement exceeds 1 px; shape: float32 [P, 2L] (x0, y0, x1, ...)
        normalised by the sum of the displacement magnitudes.
    """
    magnitude = np.sqrt((displacements ** 2).sum(axis=2))
    moving = magnitude.max(axis=1) > MIN_CAMERA_DISPLACEMENT
    total = magnitude.sum(axis=1, dtype=np.float32)
    total = np.where(total > 0, total, np.float32(1.0))
    return moving, (displacements / total[:, None, None]).reshape(len(displacements), -1)
