"""Statistics labels: the authors' reference vectors, hand-made clips with known answers, flips, edge cases."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from labels import stats
from preprocess.streams import crop
from labels.regions import region_layout
from preprocess.flow_codec import dequantize

S, T = 112, 15


@pytest.fixture(scope="module")
def reference(shared_data: Path) -> dict[str, np.ndarray]:
    with np.load(shared_data / "stats_reference.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_reference_vectors_exact(reference: dict[str, np.ndarray], dtype: type) -> None:
    bound = float(reference["flow_bound"])
    for case, source in enumerate(reference["source"]):
        flow = dequantize(reference["flow_q"][case], bound, dtype)
        motion = stats.motion_statistics(flow[..., 0], flow[..., 1])
        assert motion.tolist() == reference["motion"][case].tolist(), f"motion of case {case} ({source})"
        appearance = stats.appearance_statistics(reference["rgb"][case])
        assert appearance.tolist() == reference["appearance"][case].tolist(), f"appearance of case {case} ({source})"


def test_frame_derivatives_equal_scipy_convolution() -> None:
    frames = np.random.default_rng(0).normal(size=(3, 20, 24)).astype(np.float64)
    dx, dy = stats.frame_derivatives(frames)
    for t in range(3):
        np.testing.assert_allclose(dx[t], ndimage.convolve(frames[t], [[-1, 0, 1]] * 3), atol=1e-12)
        np.testing.assert_allclose(dy[t], ndimage.convolve(frames[t], [[-1] * 3, [0] * 3, [1] * 3]), atol=1e-12)


def test_region_areas() -> None:
    layout = region_layout(S)
    assert layout.region_area[:16].tolist() == [28 * 28] * 16
    assert layout.region_area[16:20].tolist() == [28 * 28, 56 * 56 - 28 * 28, 84 * 84 - 56 * 56, 112 * 112 - 84 * 84]
    assert layout.region_area[20:].tolist() == [56 * 57 / 2] * 8
    covered = layout.masks[20:].sum(axis=0)
    diagonal = np.eye(S, dtype=bool) | np.eye(S, dtype=bool)[::-1]
    assert (covered[diagonal] == 2).all() and (covered[~diagonal] == 1).all()


def _zeros() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((T, S, S), np.float32), np.zeros((T, S, S), np.float32)


@pytest.mark.parametrize("y, x, block, ring, triangle", [
    (1, 16, 1, 4, 2),  # top-left block, outer ring, above the main diagonal (NNW)
    (29, 43, 6, 2, 2),  # second ring, still above the main diagonal
    (99, 30, 14, 4, 6),  # bottom row, below the anti-diagonal (SSW)
])
def test_moving_blob_is_found_in_its_block_and_frame(y: int, x: int, block: int, ring: int, triangle: int) -> None:
    """A moving 12x12 square (u=v=3 px inside) only in flow frame 9; its boundary (one pixel around it)
    lies inside one block, one ring and one triangle."""
    u, v = _zeros()
    u[9, y:y + 12, x:x + 12] = 3.0
    v[9, y:y + 12, x:x + 12] = 3.0
    labels = stats.motion_statistics(u, v)
    assert labels[[0, 2]].tolist() == [block] * 2
    assert labels[[4, 6]].tolist() == [ring] * 2
    assert labels[[8, 10]].tolist() == [triangle] * 2
    assert labels[[12, 13]].tolist() == [10, 10]


@pytest.mark.parametrize("profile, direction", [
    ("right", 5),  # u increasing to the right (the example)
    ("left", 1),
    ("down", 7),
    ("up", 3),
    ("down_right", 6),
])
def test_direction_of_a_step_edge(profile: str, direction: int) -> None:
    """One straight step across the whole crop; the summed boundary points along -gradient (kernel flip)."""
    yy, xx = np.mgrid[0:S, 0:S]
    step = {"right": xx >= 40, "left": xx < 40, "down": yy >= 40, "up": yy < 40, "down_right": xx + yy >= 100}[profile]
    u = np.repeat(step[None].astype(np.float32) * 4.0, T, axis=0)
    labels = stats.motion_statistics(u, u.copy())
    assert labels[[1, 5, 9]].tolist() == [direction] * 3  # u directions of patterns 1-3
    assert labels[[3, 7, 11]].tolist() == [direction] * 3  # v is the same field


def test_static_uniform_and_dark_clips_give_first_labels() -> None:
    u, v = _zeros()
    assert stats.motion_statistics(u, v).tolist() == [1] * 14
    assert stats.motion_statistics(u + 3.5, v - 2.0).tolist() == [1] * 14  # pure translation: no boundary
    dark = np.zeros((16, S, S, 3), np.uint8)
    assert stats.appearance_statistics(dark).tolist() == [1, 5, 1, 5] * 3 + [5]


def test_flickering_block_is_the_most_diverse() -> None:
    rgb = np.full((16, S, S, 3), (20, 200, 20), np.uint8)  # green, perfectly consistent
    rgb[1::2, 56:84, 84:112] = (230, 40, 10)  # block 12 (row 2, col 3) flickers green/red
    labels = stats.appearance_statistics(rgb)
    # block 12: 8 green and 8 red frames -> tie; red's key B*65536+G*256+R = 665830 < green's 1361940
    assert labels[:4].tolist() == [12, 7, 1, 6]
    # half the block (392 px) lies in ring 3 (3920 px), half in ring 4 (5488 px): ring 3 is the least consistent
    assert labels[4:8].tolist() == [3, 6, 1, 6]
    assert labels[8:12].tolist() == [8, 6, 1, 6]  # the whole block lies in ESE (right of the main diagonal)
    assert labels[12] == 6


def test_colour_consistency_values() -> None:
    rgb = np.full((16, S, S, 3), 100, np.uint8)
    rgb[8:, :28, :28] = 101  # block 1: frames 8.. differ in all channels -> IoU 0 per channel
    rgb[8:, :28, 28:42] = 101  # half of block 2 -> per channel min-sum 0, max-sum 784 -> IoU 0
    rgb[8:, 28:56, :14, 0] = 101  # half of block 5, red only: red IoU 392/1176, others 1
    scores = stats.colour_consistency(rgb)
    assert scores[0] == 0.0
    assert scores[1] == pytest.approx((392 / 1176) * 1.0)  # min 392 (same in all), max 784+392 per channel
    assert scores[4] == pytest.approx((392 / 1176 + 2) / 3)
    assert scores[2] == 1.0


@pytest.mark.parametrize("rgb, octant", [
    ((0, 0, 255), 1), ((0, 255, 255), 2), ((255, 0, 255), 3), ((255, 255, 255), 4),
    ((0, 0, 0), 5), ((0, 255, 0), 6), ((255, 0, 0), 7), ((255, 255, 0), 8), ((127, 128, 128), 2),
])
def test_dominant_colour_octants(rgb: tuple[int, int, int], octant: int) -> None:
    clip = np.full((16, S, S, 3), rgb, np.uint8)
    clip[:, :40, :40] = (9, 9, 9)  # a smaller second colour never dominates
    assert stats.appearance_statistics(clip)[12] == octant


def test_dominant_colour_tie_goes_to_smallest_key() -> None:
    clip = np.zeros((16, S, S, 3), np.uint8)
    clip[:, :, :56] = (0, 0, 255)  # blue: key 255*65536
    clip[:, :, 56:] = (255, 0, 0)  # red: key 255 -> wins the tie
    assert stats.appearance_statistics(clip)[12] == 7


MIRROR_BLOCK = [4 * (b // 4) + 3 - b % 4 for b in range(16)]
MIRROR_TRIANGLE = [3, 2, 1, 0, 7, 6, 5, 4]


def _mirror_region(pattern: int, label: int) -> int:
    return label if pattern == 1 else 1 + (MIRROR_BLOCK if pattern == 0 else MIRROR_TRIANGLE)[label - 1]


@pytest.mark.parametrize("case", [1, 4, 9])
def test_flip_mirrors_the_labels(reference: dict[str, np.ndarray], case: int) -> None:
    """Labelling the flipped crop = mirroring the labels: regions left<->right; u directions theta -> -theta
    (mirror and negate), v directions theta -> 180-theta (mirror only); colours unchanged."""
    flow = dequantize(reference["flow_q"][case], 20.0)
    rgb = reference["rgb"][case]
    plain = stats.motion_statistics(flow[..., 0], flow[..., 1])
    flipped_flow = crop(flow, 0, 0, S, True, "flow")
    flipped = stats.motion_statistics(flipped_flow[..., 0], flipped_flow[..., 1])
    expected = plain.copy()
    for pattern in range(3):
        for component in range(2):
            region, direction = 4 * pattern + 2 * component, 4 * pattern + 2 * component + 1
            expected[region] = _mirror_region(pattern, plain[region])
            k = plain[direction] - 1
            expected[direction] = 1 + ((8 - k) % 8 if component == 0 else (4 - k) % 8)
    assert flipped.tolist() == expected.tolist()

    plain_app = stats.appearance_statistics(rgb)
    flipped_app = stats.appearance_statistics(np.ascontiguousarray(crop(rgb, 0, 0, S, True)))
    expected_app = plain_app.copy()
    for pattern in range(3):
        for which in range(2):
            index = 4 * pattern + 2 * which
            expected_app[index] = _mirror_region(pattern, plain_app[index])
    assert flipped_app.tolist() == expected_app.tolist()


def test_crop_flow_negates_u_of_floats_and_codes() -> None:
    codes = np.random.default_rng(1).integers(0, 256, (2, 10, 12, 2), dtype=np.uint8)
    flow = dequantize(codes, 20.0, np.float64)
    flipped = crop(flow, 1, 2, 8, True, "flow")
    np.testing.assert_array_equal(flipped[..., 0], -flow[:, 1:9, 2:10, 0][:, :, ::-1])
    np.testing.assert_array_equal(flipped[..., 1], flow[:, 1:9, 2:10, 1][:, :, ::-1])
    np.testing.assert_allclose(dequantize(crop(codes, 1, 2, 8, True, "flow"), 20.0, np.float64), flipped, atol=1e-12)
    with pytest.raises(ValueError, match="does not fit"):
        crop(flow, 4, 0, 8, False, "flow")


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[T, S, S\]"):
        stats.motion_statistics(np.zeros((15, 112, 100)), np.zeros((15, 112, 100)))
    with pytest.raises(ValueError, match="uint8"):
        stats.appearance_statistics(np.zeros((16, 112, 112, 3), np.float32))
    with pytest.raises(ValueError, match="multiple of 8"):
        stats.motion_statistics(np.zeros((15, 100, 100)), np.zeros((15, 100, 100)))
