"""Improved Dense Trajectories of a sequence of grey frames (the loop of ``DenseTrackStab.cpp``), holding only
the state of the last L frames: live tracks, the previous frame's pyramid, expansions and features."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Mapping

import numpy as np

from labels.idt.camera import (
    Features,
    box_mask,
    camera_homography,
    detect_features,
    match_features,
    matches_from_flow,
    warp_back,
)
from labels.idt.descriptors import (
    frame_histograms,
    integral_histograms,
    patch_corners,
    point_descriptors,
    temporal_cells,
)
from labels.idt.farneback import expansion_pyramid, pyramid_flow
from labels.idt.parameters import IdtParameters, column_layout, descriptor_bins
from labels.idt.pyramid import grey_pyramid, pyramid_scales
from labels.idt.sampling import dense_sample
from labels.idt.tracks import LevelTracks, displacement_shape, step_tracks, trajectory_statistics

T_POS = 9


@dataclass
class _Previous:
    """What the next frame needs from the previous one."""

    grey: np.ndarray
    levels: list[np.ndarray]
    expansions: list[np.ndarray]
    features: Features


def _descriptor_sizes(parameters: IdtParameters) -> list[int]:
    return [bins * parameters.spatial_cells ** 2 for bins in descriptor_bins().values()]


def _level_descriptors(grey: np.ndarray, warped_flow: np.ndarray, positions: np.ndarray,
                       parameters: IdtParameters) -> np.ndarray:
    """float32 [P, D]: HOG, HOF, MBHx, MBHy of this frame around each position float32 [P, 2]."""
    integral = integral_histograms(frame_histograms(grey, warped_flow))
    x, y = patch_corners(positions, *grey.shape, parameters.patch_size)
    return point_descriptors(integral, x, y, parameters.patch_size, parameters.spatial_cells)


def _finished_rows(tracks: LevelTracks, slots: np.ndarray, frame: int, scale: float, frame_size: tuple[int, int],
                   parameters: IdtParameters) -> tuple[np.ndarray, np.ndarray]:
    """Rows float32 [N, 436] (t_pos left 0) and positions float32 [N, L+1, 2] (frame pixels) of the valid
    tracks among the complete ones in ``slots`` int [F]."""
    points = tracks.points[slots] * np.float32(scale)
    statistics = trajectory_statistics(points)
    moving, shape = displacement_shape(tracks.displacements[slots] * np.float32(scale))
    keep = statistics["valid"] & moving
    layout = column_layout(parameters)
    rows = np.zeros((int(keep.sum()), layout["mbhy"].stop), np.float32)
    height, width = frame_size
    mean = statistics["mean"][keep]
    rows[:, 0] = frame
    rows[:, 1:3] = mean
    rows[:, 3:5] = statistics["std"][keep]
    rows[:, 5] = statistics["length"][keep]
    rows[:, 6] = scale
    rows[:, 7] = np.clip(mean[:, 0] / np.float32(width), 0, 0.999)
    rows[:, 8] = np.clip(mean[:, 1] / np.float32(height), 0, 0.999)
    rows[:, layout["trajectory"]] = shape[keep]
    start = 0
    for name, size in zip(descriptor_bins(), _descriptor_sizes(parameters)):
        per_frame = tracks.descriptors[slots[keep], :, start:start + size]
        rows[:, layout[name]] = temporal_cells(per_frame, parameters.temporal_cells)
        start += size
    return rows, points[keep]


def _flows(previous: _Previous, grey: np.ndarray, expansions: list[np.ndarray], features: Features,
           mask: np.ndarray | None, parameters: IdtParameters, scales: list[float], sizes: list[tuple[int, int]]
           ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Flow pyramid from the previous frame to ``grey`` and the same after camera-motion compensation
    (flow to the current frame warped back by the homography), float32 [h_k, w_k, 2] each."""
    flows = pyramid_flow(previous.expansions, expansions)
    flow_pairs = matches_from_flow(previous.grey, flows[0], mask)
    feature_pairs = match_features(previous.features, features, parameters.detector, parameters.match_window)
    homography = camera_homography(np.concatenate([flow_pairs[0], feature_pairs[0]]),
                                   np.concatenate([flow_pairs[1], feature_pairs[1]]))
    warped = expansion_pyramid(warp_back(previous.grey, grey, homography), scales, sizes)
    return flows, pyramid_flow(previous.expansions, warped)


def dense_trajectories_from_frames(frames: Iterable[np.ndarray], parameters: IdtParameters | None = None,
                                   boxes: Mapping[int, np.ndarray] | None = None, with_points: bool = False,
                                   **overrides: object) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Improved Dense Trajectories of grey frames.

    Args:
        frames: iterable of uint8 [H, W] grey frames (consumed once; only the last L frames' state is kept).
        parameters: release defaults unless given; keyword ``overrides`` replace single fields.
        boxes: optional human boxes per frame index, float [B, 4+] (x1, y1, x2, y2, ...): features inside
            them are not used for the camera homography.
        with_points: also return the tracked positions.
    Returns:
        float32 [N, 436] rows in the release's column order (t_pos from the number of frames read); with
        ``with_points`` also float32 [N, L+1, 2], each row's positions (x, y) in frame pixels.
    """
    parameters = replace(parameters or IdtParameters(), **overrides)
    length = parameters.track_length
    descriptor_size = sum(_descriptor_sizes(parameters))
    rows: list[np.ndarray] = []
    positions: list[np.ndarray] = []
    previous: _Previous | None = None
    frame_count = 0
    for frame_number, grey in enumerate(frames):
        frame_count += 1
        grey = np.ascontiguousarray(grey, dtype=np.uint8)
        mask = box_mask(grey.shape, None if boxes is None else boxes.get(frame_number))
        features = detect_features(grey, parameters.detector, mask)
        if previous is None:
            if min(grey.shape) < parameters.patch_size:
                raise ValueError(f"frames of {grey.shape[1]}x{grey.shape[0]} are smaller than the "
                                 f"{parameters.patch_size} px descriptor patch")
            scales, sizes = pyramid_scales(*grey.shape, parameters.patch_size, parameters.max_scales)
            levels = grey_pyramid(grey, sizes)
            tracks = [LevelTracks(length, descriptor_size) for _ in levels]
            for level_tracks, level in zip(tracks, levels):
                level_tracks.start(dense_sample(level, np.zeros((0, 2)), parameters.stride, parameters.quality))
            previous = _Previous(grey, levels, expansion_pyramid(grey, scales, sizes), features)
            continue
        if grey.shape != previous.grey.shape:
            raise ValueError(f"frame {frame_number} is {grey.shape}, the first frame {previous.grey.shape}")
        expansions = expansion_pyramid(grey, scales, sizes)
        flows, warped_flows = _flows(previous, grey, expansions, features, mask, parameters, scales, sizes)
        levels = grey_pyramid(grey, sizes)
        resample = frame_number % parameters.init_gap == 0
        for level, (scale, level_tracks) in enumerate(zip(scales, tracks)):
            if len(level_tracks):
                descriptors = _level_descriptors(previous.levels[level], warped_flows[level],
                                                 level_tracks.current(), parameters)
                step_tracks(level_tracks, flows[level], warped_flows[level], descriptors)
                finished = level_tracks.age >= length
                if finished.any():
                    new_rows, new_points = _finished_rows(level_tracks, level_tracks.slots[finished], frame_number,
                                                          scale, grey.shape, parameters)
                    rows.append(new_rows)
                    positions.append(new_points)
                    level_tracks.keep(~finished)
            if resample:
                level_tracks.start(dense_sample(levels[level], level_tracks.current(), parameters.stride,
                                                parameters.quality))
        previous = _Previous(grey, levels, expansions, features)
    width = column_layout(parameters)["mbhy"].stop
    table = np.concatenate(rows) if rows else np.zeros((0, width), np.float32)
    table[:, T_POS] = np.clip((table[:, 0] - length / 2.0) / max(frame_count, 1), 0, 0.999)
    if with_points:
        return table, (np.concatenate(positions) if positions else np.zeros((0, length + 1, 2), np.float32))
    return table
