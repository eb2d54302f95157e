"""Trajectories of one pyramid level as arrays (``std::list<Track>`` of the release, vectorised): positions,
warped displacements and per-frame descriptors of at most L frames per live track."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labels.idt.parameters import (
    MAX_STD,
    MAX_STEP,
    MAX_STEP_FRACTION,
    MIN_CAMERA_DISPLACEMENT,
    MIN_STD,
)


@dataclass
class LevelTracks:
    """Live tracks of one level.

    Attributes:
        points: float32 [P, L+1, 2] positions (x, y) on the level, valid up to ``age``.
        displacements: float32 [P, L, 2] warped flow at each step.
        descriptors: float32 [P, L, D] per-frame descriptors (HOG, HOF, MBHx, MBHy concatenated).
        age: int [P] number of steps tracked so far (index of the current position).
    """

    points: np.ndarray
    displacements: np.ndarray
    descriptors: np.ndarray
    age: np.ndarray

    @classmethod
    def empty(cls, track_length: int, descriptor_size: int) -> "LevelTracks":
        return cls(np.zeros((0, track_length + 1, 2), np.float32), np.zeros((0, track_length, 2), np.float32),
                   np.zeros((0, track_length, descriptor_size), np.float32), np.zeros(0, np.intp))

    def __len__(self) -> int:
        return len(self.age)

    def current(self) -> np.ndarray:
        """float32 [P, 2] latest position of every track."""
        return self.points[np.arange(len(self)), self.age]

    def select(self, keep: np.ndarray) -> "LevelTracks":
        return LevelTracks(self.points[keep], self.displacements[keep], self.descriptors[keep], self.age[keep])

    def append(self, new_points: np.ndarray) -> "LevelTracks":
        """Start a track at each of float32 [N, 2] new positions, after the existing ones."""
        count = len(new_points)
        started = LevelTracks.empty(self.points.shape[1] - 1, self.descriptors.shape[2])
        started.points = np.zeros((count,) + self.points.shape[1:], np.float32)
        started.points[:, 0] = new_points
        started.displacements = np.zeros((count,) + self.displacements.shape[1:], np.float32)
        started.descriptors = np.zeros((count,) + self.descriptors.shape[1:], np.float32)
        started.age = np.zeros(count, np.intp)
        return LevelTracks(*(np.concatenate([a, b]) for a, b in
                             zip((self.points, self.displacements, self.descriptors, self.age),
                                 (started.points, started.displacements, started.descriptors, started.age))))


def step_tracks(tracks: LevelTracks, flow: np.ndarray, warped_flow: np.ndarray, descriptors: np.ndarray
                ) -> LevelTracks:
    """Advance every track by the flow at its rounded position; tracks leaving the level end (dropped).

    Args:
        flow, warped_flow: float32 [H, W, 2] flow of the level before / after camera-motion compensation.
        descriptors: float32 [P, D] descriptors of this frame at the current positions (before the step).
    Returns:
        the surviving tracks with the new position, the warped displacement and the descriptors recorded.
    """
    height, width = flow.shape[:2]
    position = tracks.current()
    x = np.clip(np.rint(position[:, 0]), 0, width - 1).astype(np.intp)
    y = np.clip(np.rint(position[:, 1]), 0, height - 1).astype(np.intp)
    moved = position + flow[y, x]
    keep = (moved[:, 0] > 0) & (moved[:, 0] < width) & (moved[:, 1] > 0) & (moved[:, 1] < height)
    rows, age = np.nonzero(keep)[0], tracks.age[keep]
    tracks.displacements[rows, age] = warped_flow[y[keep], x[keep]]
    tracks.descriptors[rows, age] = descriptors[keep]
    tracks.points[rows, age + 1] = moved[keep]
    tracks.age[rows] += 1
    return tracks.select(keep)


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
