"""Building blocks of Improved Dense Trajectories (labels.idt) against brute-force per-pixel computations
of the release's formulas (``OpticalFlow.h``, ``Descriptors.h``) and hand-worked cases."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from labels.idt.camera import box_mask, camera_homography, warp_back
from labels.idt.descriptors import frame_histograms, integral_histograms, point_descriptors, temporal_cells
from labels.idt.farneback import expansion_pyramid, polynomial_expansion, pyramid_flow, update_matrices
from labels.idt.files import read_human_boxes
from labels.idt.parameters import IdtParameters, column_layout
from labels.idt.pyramid import pyramid_scales
from labels.idt.sampling import dense_sample
from labels.idt.tracks import displacement_shape, trajectory_statistics


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.uniform(0, 255, (height, width)).astype(np.float32), (0, 0), 2.0)


def test_pyramid_of_the_kth_frame_has_the_release_scales_and_sizes():
    scales, sizes = pyramid_scales(120, 160)
    np.testing.assert_allclose(scales, [1, 2 ** 0.5, 2, 2 * 2 ** 0.5], rtol=1e-6)
    assert sizes == [(120, 160), (85, 113), (60, 80), (42, 57)]
    assert len(pyramid_scales(240, 320)[0]) == 6   # 240 / 2^(5/2) = 42.4 >= 32, / 2^3 = 30 < 32
    assert pyramid_scales(20, 20)[0] == [1.0]       # at least one level


def test_column_layout_is_the_release_436():
    layout = column_layout()
    assert [(name, part.stop - part.start) for name, part in layout.items()] == [
        ("info", 10), ("trajectory", 30), ("hog", 96), ("hof", 108), ("mbhx", 96), ("mbhy", 96)]
    assert layout["mbhy"].stop == 436


def test_polynomial_expansion_is_the_weighted_least_squares_quadratic():
    image = smooth_image(30, 34)
    expansion = polynomial_expansion(image)
    n, sigma = 7, 1.5
    offsets = np.arange(-n, n + 1)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    weights = np.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2)).ravel()
    basis = np.stack([np.ones_like(dx), dx, dy, dx ** 2, dy ** 2, dx * dy], -1).reshape(-1, 6).astype(float)
    padded = np.pad(image.astype(np.float64), n, mode="edge")  # the release replicates edges
    for y, x in [(15, 17), (0, 0), (3, 30), (29, 12)]:
        patch = padded[y:y + 2 * n + 1, x:x + 2 * n + 1].ravel()
        root = np.sqrt(weights)
        c = np.linalg.lstsq(basis * root[:, None], patch * root, rcond=None)[0]  # 1, x, y, xx, yy, xy
        np.testing.assert_allclose(expansion[:, y, x], [c[2], c[1], c[4], c[3], c[5]], rtol=2e-3, atol=2e-3)


def release_update_matrices(r0: np.ndarray, r1: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Per-pixel loop of the release's FarnebackUpdateMatrices (planar [5, H, W], flow [2, H, W])."""
    border = [0.14, 0.14, 0.4472, 0.4472, 0.4472]
    _, height, width = r0.shape
    out = np.zeros_like(r0, dtype=np.float64)
    for y in range(height):
        for x in range(width):
            dx, dy = float(flow[0, y, x]), float(flow[1, y, x])
            fx, fy = x + dx, y + dy
            x1, y1 = math.floor(fx), math.floor(fy)
            fx, fy = fx - x1, fy - y1
            a = r0[:, y, x].astype(np.float64)
            if 0 <= x1 < width - 1 and 0 <= y1 < height - 1:
                s = ((1 - fx) * (1 - fy) * r1[:, y1, x1] + fx * (1 - fy) * r1[:, y1, x1 + 1]
                     + (1 - fx) * fy * r1[:, y1 + 1, x1] + fx * fy * r1[:, y1 + 1, x1 + 1])
                r4, r5, r6 = (a[2] + s[2]) * 0.5, (a[3] + s[3]) * 0.5, (a[4] + s[4]) * 0.25
            else:
                s = np.zeros(5)
                r4, r5, r6 = a[2], a[3], a[4] * 0.5
            r2 = (a[0] - s[0]) * 0.5 + r4 * dy + r6 * dx
            r3 = (a[1] - s[1]) * 0.5 + r6 * dy + r5 * dx
            scale = ((border[x] if x < 5 else 1) * (border[width - x - 1] if x >= width - 5 else 1)
                     * (border[y] if y < 5 else 1) * (border[height - y - 1] if y >= height - 5 else 1))
            r2, r3, r4, r5, r6 = (v * scale for v in (r2, r3, r4, r5, r6))
            out[:, y, x] = [r4 * r4 + r6 * r6, (r4 + r5) * r6, r5 * r5 + r6 * r6, r4 * r2 + r6 * r3, r6 * r2 + r5 * r3]
    return out


def test_update_matrices_equal_the_release_loop():
    first, second = smooth_image(22, 26, 1), smooth_image(22, 26, 2)
    r0, r1 = polynomial_expansion(first), polynomial_expansion(second)
    rng = np.random.default_rng(3)
    flow = rng.uniform(-3, 3, (2, 22, 26)).astype(np.float32)  # some pixels sample outside the level
    ours, reference = update_matrices(r0, r1, flow), release_update_matrices(r0, r1, flow)
    scale = np.abs(reference).max()
    # cv2.remap places the sample on a 1/32 px grid: a small relative difference, not a different formula
    assert np.abs(ours - reference).max() < 0.01 * scale
    assert np.abs(ours - reference).mean() < 1e-3 * scale


def test_pyramid_flow_recovers_a_real_two_pixel_shift(shared_data: Path):
    folder = shared_data / "flow_gt" / "shifts"
    first, second = (cv2.imread(str(folder / name), cv2.IMREAD_GRAYSCALE) for name in ("Shift0.png", "ShiftR2.png"))
    scales, sizes = pyramid_scales(*first.shape)
    flows = pyramid_flow(expansion_pyramid(first, scales, sizes), expansion_pyramid(second, scales, sizes))
    assert [f.shape for f in flows] == [(h, w, 2) for h, w in sizes]
    interior = flows[0][80:170, 80:240].reshape(-1, 2)  # the textured centre (the border is periodic)
    np.testing.assert_allclose(np.median(interior, axis=0), [2.0, 0.0], atol=0.05)
    assert np.mean(np.abs(interior[:, 0] - 2.0) < 0.2) > 0.9


def release_bins(x: float, y: float, bins: int, zero_bin: bool) -> np.ndarray:
    histogram = np.zeros(bins + zero_bin)
    magnitude = math.hypot(x, y)
    if zero_bin and magnitude <= 0.4:
        histogram[bins] = 1.0
        return histogram
    angle = math.degrees(math.atan2(y, x)) % 360.0
    position = angle * bins / 360.0
    lower = math.floor(position)
    histogram[(lower + 1) % bins] += (position - lower) * magnitude
    histogram[lower % bins] += magnitude - (position - lower) * magnitude
    return histogram


def central_differences(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """c[x+1] - c[x-1] and c[y+1] - c[y-1] with reflect-101 borders, float32."""
    image = np.ascontiguousarray(image, np.float32)
    return tuple(cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
                 for kernel in (np.float32([[-1, 0, 1]]), np.float32([[-1], [0], [1]])))


def test_frame_histograms_equal_per_pixel_binning():
    rng = np.random.default_rng(4)
    grey = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    flow = rng.normal(0, 1.0, (9, 11, 2)).astype(np.float32)
    histograms = frame_histograms(grey, flow)
    assert histograms.shape == (33, 9, 11)
    fields = [(central_differences(grey), False), ((flow[..., 0], flow[..., 1]), True),
              (central_differences(flow[..., 0]), False), (central_differences(flow[..., 1]), False)]
    for y in range(9):
        for x in range(11):
            expected = np.concatenate([release_bins(fx[y, x], fy[y, x], 8, zero) for (fx, fy), zero in fields])
            # cv2.cartToPolar's angle is accurate to ~0.01 degree: weights move by that much of the magnitude
            np.testing.assert_allclose(histograms[:, y, x], expected, atol=1e-3 * (1 + np.abs(expected).max()))


def test_point_descriptors_equal_direct_cell_sums():
    rng = np.random.default_rng(5)
    histograms = rng.uniform(0, 2, (33, 40, 50)).astype(np.float32)
    integral = integral_histograms(histograms)
    x, y = np.array([0, 18, 7]), np.array([0, 8, 3])
    ours = point_descriptors(integral, x, y)
    assert ours.shape == (3, 132)
    for point in range(3):
        expected = []
        for start, bins in [(0, 8), (8, 9), (17, 8), (25, 8)]:
            cells = [histograms[start:start + bins, y[point] + 16 * cy:y[point] + 16 * cy + 16,
                                x[point] + 16 * cx:x[point] + 16 * cx + 16].sum(axis=(1, 2)) + 0.05
                     for cx in range(2) for cy in range(2)]  # x-major, as the release's loops
            vector = np.concatenate(cells)
            expected.append(np.sqrt(vector / vector.sum()))
        np.testing.assert_allclose(ours[point], np.concatenate(expected), rtol=1e-4)


def test_temporal_cells_average_five_frames_each():
    per_frame = np.arange(2 * 15 * 4, dtype=np.float32).reshape(2, 15, 4)
    cells = temporal_cells(per_frame, 3)
    np.testing.assert_allclose(cells[1, 4:8], per_frame[1, 5:10].mean(axis=0))


def test_dense_sample_takes_free_strong_cell_centres():
    grey = np.random.default_rng(7).integers(0, 256, (23, 31), dtype=np.uint8)
    grey[:, 20:] = 0   # texture everywhere except the right band
    tracked = np.array([[7.9, 2.2], [30.5, 22.0]], np.float32)  # occupies cell (row 0, col 1); the other is off-grid
    points = dense_sample(grey, tracked)
    eigen = cv2.cornerMinEigenVal(grey, 3, 3)
    expected = [(x, y) for y in range(2, 20, 5) for x in range(2, 30, 5)
                if eigen[y, x] > 0.001 * eigen.max() and (x, y) != (7, 2)]
    assert [tuple(p) for p in points.astype(int)] == expected
    assert (7, 2) not in expected and len(expected) > 8


def test_trajectory_rules_of_the_release():
    t = np.arange(16, dtype=np.float32)
    line = np.stack([10 + 2 * t, 20 + 0 * t], axis=1)             # std_x = 9.2: valid
    static = np.stack([10 + 0.1 * t, 20 + 0 * t], axis=1)         # std < sqrt(3) in x and y
    wide = np.stack([10 + 12 * t, 20 + 0 * t], axis=1)            # std_x = 55 > 50
    statistics = trajectory_statistics(np.stack([line, static, wide]))
    assert statistics["valid"].tolist() == [True, False, False]
    np.testing.assert_allclose(statistics["mean"][0], [25, 20])
    np.testing.assert_allclose(statistics["std"][0, 0], np.std(line[:, 0]), rtol=1e-6)
    np.testing.assert_allclose(statistics["length"][0], 30.0, rtol=1e-6)
    big_jump = np.stack([10 + 0.2 * t, 20 + 0 * t], axis=1)
    big_jump[8:, 1] += 25                                         # length 28, step 25 > 0.7 x 28 = 19.6
    assert not trajectory_statistics(big_jump[None])["valid"][0]
    moving, shape = displacement_shape(np.stack([np.full((15, 2), [3.0, 4.0]), np.full((15, 2), [0.6, 0.8])])
                                       .astype(np.float32))
    assert moving.tolist() == [True, False]                       # largest displacement 5 px vs 1 px (<= 1)
    np.testing.assert_allclose(shape[0, :2], [3 / 75, 4 / 75], rtol=1e-6)


def test_camera_homography_and_warp_undo_a_translation():
    rng = np.random.default_rng(6)
    previous_points = rng.uniform(0, 100, (80, 2)).astype(np.float32)
    current_points = previous_points + np.float32([3, -2])
    homography = camera_homography(previous_points, current_points)
    np.testing.assert_allclose(homography, [[1, 0, 3], [0, 1, -2], [0, 0, 1]], atol=1e-6)
    np.testing.assert_array_equal(camera_homography(previous_points[:50], current_points[:50]), np.eye(3))
    previous = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    current = np.roll(previous, (-2, 3), axis=(0, 1))
    warped = warp_back(previous, current, homography)
    np.testing.assert_array_equal(warped[6:-8, 6:-8], previous[6:-8, 6:-8])


def test_human_boxes_mask_inclusive_pixels(tmp_path: Path):
    path = tmp_path / "boxes.txt"
    path.write_text("0 1.5 2.0 3.2 4.9 0.9\n1\n2 0 0 1 1 0.5 5 5 6 6 0.7\n")
    boxes = read_human_boxes(path)
    assert sorted(boxes) == [0, 1, 2] and boxes[2].shape == (2, 5) and boxes[1].shape == (0, 5)
    mask = box_mask((8, 8), boxes[0])
    expected = np.ones((8, 8), np.uint8)
    expected[2:5, 2:4] = 0   # rows ceil(2.0)..floor(4.9), columns ceil(1.5)..floor(3.2)
    np.testing.assert_array_equal(mask, expected)
    assert box_mask((8, 8), boxes[1]) is None


def test_parameters_reject_impossible_settings():
    with pytest.raises(ValueError):
        IdtParameters(detector="surf")
    with pytest.raises(ValueError):
        IdtParameters(patch_size=33)


def panning_frames(count: int, speed: float):
    """A random texture seen by a camera panning ``speed`` px per frame to the right: uint8 [96, 128]."""
    rng = np.random.default_rng(8)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (200, 260)).astype(np.float32), (0, 0), 1.5)
    for t in range(count):
        shift = np.float32([[1, 0, -speed * t - 10], [0, 1, -10]])
        yield cv2.warpAffine(texture, shift, (128, 96), flags=cv2.INTER_LINEAR).astype(np.uint8)


def test_camera_motion_is_compensated(monkeypatch: pytest.MonkeyPatch):
    from labels.idt import dense_trajectories_from_frames
    from labels.idt import extract
    assert len(dense_trajectories_from_frames(panning_frames(30, 1.5))) == 0   # all warped flow ~0: rejected
    monkeypatch.setattr(extract, "camera_homography", lambda previous, current: np.eye(3))
    assert len(dense_trajectories_from_frames(panning_frames(30, 1.5))) > 500  # the same pan, uncompensated
