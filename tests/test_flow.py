"""Optical flow backends against known shifts and FlyingChairs ground truth; image differences.

Thresholds come from measured values (docs/FLOW.md) with margin; each test also shows that a broken
backend (zero flow, swapped u/v, wrong sign) would miss them. TV-L1 is slow on CPU, so it runs on
half-size shift images and quarter-size FlyingChairs pairs; DIS and Farneback run at half size.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from preprocess import difference, flow
from preprocess.flow_codec import dequantize, quantize
from preprocess.settings import FlowSettings
from flow_data import gray, read_flo, shrink  # tests/flow_data.py

BACKENDS = ["tvl1", "dis", "farneback"]


def epe(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Mean endpoint error in px."""
    return float(np.sqrt(((estimate - truth) ** 2).sum(axis=2)).mean())


@pytest.fixture(scope="module")
def flow_fns() -> dict:
    flow.pin_opencv_threads(1)
    return {algo: flow.make_flow(FlowSettings(algo=algo)) for algo in BACKENDS}


# Shifted copies of a textured 320x240 image (right = +u, up = -v); the textured centre is rows 80-170,
# columns 80-240 at full size (the border is a periodic pattern, ambiguous for large shifts).
SHIFTS = {"R2": (2.0, 0.0), "R10": (10.0, 0.0), "R20": (20.0, 0.0), "R5U5": (5.0, -5.0)}
CASES = [  # (backend, shift image, size factor): large shifts only for the backends that handle them
    ("tvl1", "R2", 2), ("tvl1", "R10", 2), ("tvl1", "R5U5", 2),
    ("dis", "R2", 1), ("dis", "R10", 1), ("dis", "R20", 1), ("dis", "R5U5", 1),
    ("farneback", "R2", 1), ("farneback", "R10", 1), ("farneback", "R5U5", 1),
]


@pytest.mark.parametrize("algo,name,factor", CASES)
def test_constant_shift_is_recovered(shared_data, flow_fns, algo, name, factor):
    shifts = shared_data / "flow_gt" / "shifts"
    estimate = flow_fns[algo](gray(shifts / "Shift0.png", factor), gray(shifts / f"Shift{name}.png", factor))
    assert estimate.dtype == np.float32 and estimate.shape == (240 // factor, 320 // factor, 2)
    centre = estimate[80 // factor:170 // factor, 80 // factor:240 // factor]
    median = np.median(centre.reshape(-1, 2), axis=0)
    expected = np.array(SHIFTS[name]) / factor
    assert np.all(np.abs(median - expected) < 0.25), (algo, name, median, expected)


def flyingchairs(root: Path, pairs: list[int], factor: int):
    """(gray0, gray1, ground truth) per pair, shrunk by ``factor`` (flow divided by it)."""
    for i in pairs:
        stem = root / "flow_gt" / "flyingchairs" / f"{i:07d}"
        truth = read_flo(Path(f"{stem}-gt.flo"))
        if factor > 1:
            truth = shrink(truth, factor) / factor
        yield gray(Path(f"{stem}-img0.ppm"), factor), gray(Path(f"{stem}-img1.ppm"), factor), truth


# backend -> (pairs, size factor, mean EPE limit); measured: tvl1 1.02 (quarter size, pairs 1,4,5,7),
# dis 2.03 and farneback 3.00 (half size, all 9 pairs); zero flow: 4.38 and 5.24.
CHAIRS = {"tvl1": ([1, 4, 5, 7], 4, 1.4), "dis": (list(range(9)), 2, 2.6), "farneback": (list(range(9)), 2, 3.8)}
BOUND = 20.0


@pytest.mark.parametrize("algo", BACKENDS)
def test_flyingchairs_endpoint_error_raw_and_quantized(shared_data, flow_fns, algo):
    pairs, factor, limit = CHAIRS[algo]
    raw, stored, zero, swapped, negated = [], [], [], [], []
    for gray0, gray1, truth in flyingchairs(shared_data, pairs, factor):
        estimate = flow_fns[algo](gray0, gray1)
        raw.append(epe(estimate, truth))
        stored.append(epe(dequantize(quantize(estimate, BOUND), BOUND), truth))
        zero.append(epe(np.zeros_like(truth), truth))
        swapped.append(epe(estimate[..., ::-1], truth))
        negated.append(epe(-estimate, truth))
    raw_mean, zero_mean = np.mean(raw), np.mean(zero)
    assert raw_mean < limit, (algo, raw)
    assert raw_mean < 0.65 * zero_mean, (algo, raw_mean, zero_mean)
    # a broken backend (u/v swapped, sign flipped, or no flow at all) misses the limit
    assert min(np.mean(swapped), np.mean(negated), zero_mean) > limit
    # storage: step 2*20/255 px, so the round trip may move each vector by at most ~0.11 px
    assert abs(np.mean(stored) - raw_mean) < 0.06, (algo, raw, stored)


def test_flow_direction_and_dtype_on_a_synthetic_translation(flow_fns):
    """A smooth random texture moved by (+3, -2) px: u is x (columns), v is y (rows), frame0 -> frame1."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (140, 180)).astype(np.float32), (0, 0), 2.0)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    gray0 = texture[10:130, 10:170]
    gray1 = texture[12:132, 7:167]  # content moves right by 3, up by 2
    for algo, fn in flow_fns.items():
        estimate = fn(np.ascontiguousarray(gray0), np.ascontiguousarray(gray1))
        median = np.median(estimate[20:-20, 20:-20].reshape(-1, 2), axis=0)
        assert np.allclose(median, [3.0, -2.0], atol=0.25), (algo, median)


def test_tvl1_parameters_reach_the_opencv_object():
    tvl1 = flow.configure_tvl1({"tau": 0.2, "lambda": 0.3, "nscales": 3, "warpings_number": 2, "scaleStep": 0.6})
    assert tvl1.getTau() == pytest.approx(0.2) and tvl1.getLambda() == pytest.approx(0.3)
    assert tvl1.getScalesNumber() == 3 and tvl1.getWarpingsNumber() == 2
    assert tvl1.getScaleStep() == pytest.approx(0.6)
    with pytest.raises(ValueError, match="unknown parameter 'taus'"):
        flow.configure_tvl1({"taus": 0.2})
    with pytest.raises(ValueError, match="expected an integer"):
        flow.configure_tvl1({"warps": 2.5})
    with pytest.raises(ValueError, match="unknown parameter"):
        flow.configure_tvl1({"use_initial_flow": True})


def test_farneback_and_dis_settings_are_checked():
    assert flow.farneback_parameters({"winsize": 9})["winsize"] == 9
    with pytest.raises(ValueError, match="window"):
        flow.make_flow(FlowSettings(algo="farneback", farneback={"window": 9}))
    with pytest.raises(ValueError, match="dis_preset"):
        flow.make_flow(FlowSettings(algo="dis", dis_preset="slow"))
    with pytest.raises(ValueError, match="levels: expected int"):
        flow.farneback_parameters({"levels": 2.5})
    with pytest.raises(ValueError, match="unknown backend"):
        flow.make_flow(FlowSettings(algo="raft"))


def test_pipeline_overrides_with_bad_flow_parameters_fail_at_load():
    from commands.pipeline import load_pipeline
    from common.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown parameter 'tau2'"):
        load_pipeline("stats", overrides={"preprocess": {"flow": {"tvl1": {"tau2": 0.1}}}})
    assert load_pipeline("stats", overrides={"preprocess": {"flow": {"tvl1": {"tau": 0.1}}}}).preprocess.flow.tvl1 == {
        "tau": 0.1}


def test_flow_rejects_mismatched_frames(flow_fns):
    with pytest.raises(ValueError, match="uint8 gray frames"):
        flow_fns["dis"](np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8))
    with pytest.raises(ValueError, match="uint8 gray frames"):
        flow_fns["dis"](np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8))


def test_pin_opencv_threads():
    before = cv2.getNumThreads()
    try:
        flow.pin_opencv_threads(1)
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(before)
    with pytest.raises(ValueError):
        flow.pin_opencv_threads(0)


def test_image_difference_is_exact_and_round_trips(shared_data):
    shifts = shared_data / "flow_gt" / "shifts"
    gray0, gray1 = gray(shifts / "Shift0.png"), gray(shifts / "ShiftR2.png")
    stored = difference.image_difference(gray0, gray1)
    assert stored.dtype == difference.STORAGE_DTYPE == np.int16
    expected = gray1.astype(np.int64) - gray0.astype(np.int64)
    np.testing.assert_array_equal(stored, expected)
    back = difference.decode_difference(stored)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, expected.astype(np.float32))
    extremes = difference.image_difference(np.array([[0, 255]], np.uint8), np.array([[255, 0]], np.uint8))
    np.testing.assert_array_equal(extremes, [[255, -255]])
    with pytest.raises(ValueError, match="uint8"):
        difference.image_difference(gray0.astype(np.int16), gray1.astype(np.int16))
