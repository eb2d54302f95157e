"""PyTorch TV-L1 (preprocess.tvl1_torch) against OpenCV's DualTVL1, ground truth and itself pair by pair.

Each image operation is checked against the OpenCV call it replaces; the whole solver against OpenCV on one
pyramid level (where it agrees to ~1e-5 px, far below OpenCV's own response to 0.01 grey levels of noise),
and with default parameters on real pairs at reduced size (the full-size comparison is in
bench/bench_tvl1_torch.py, figures in docs/TVL1_TORCH.md). Everything runs on CPU with one thread.
"""
from __future__ import annotations

import itertools
from dataclasses import fields
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from preprocess import decode
from preprocess.flow import configure_tvl1
from preprocess.flow_codec import quantize
from preprocess.tvl1_ops import (centered_gradient, divergence, forward_gradient, median_blur, remap_cubic,
                                 resize_linear)
from preprocess.tvl1_parameters import TVL1Parameters
from preprocess.tvl1_torch import tvl1_flow, tvl1_video_flows


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    yield
    torch.set_num_threads(threads)
    cv2.setNumThreads(cv_threads)


def read_flo(path: Path) -> np.ndarray:
    """Middlebury .flo -> float32 [H, W, 2] (u, v)."""
    raw = path.read_bytes()
    w, h = np.frombuffer(raw, np.int32, 2, offset=4)
    return np.frombuffer(raw, np.float32, 2 * w * h, offset=12).reshape(h, w, 2)


def shrink(image: np.ndarray, factor: int) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


def gray(path: Path, factor: int = 1) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert image is not None, path
    return shrink(image, factor) if factor > 1 else image


def endpoint_errors(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean endpoint error of each flow of [B, H, W, 2], px: float [B]."""
    return np.sqrt(((estimate - truth) ** 2).sum(axis=-1)).mean(axis=(-2, -1))


def opencv_flows(prev: np.ndarray, next_: np.ndarray, **params) -> np.ndarray:
    tvl1 = configure_tvl1(params)
    return np.stack([tvl1.calc(a, b, None) for a, b in zip(prev, next_)])


def textured_pair(shape: tuple[int, int], shift: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random texture and the same moved right by shift[0] and down by shift[1] px (uint8)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (h + 20, w + 20)).astype(np.float32), (0, 0), 2.0)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    dx, dy = shift
    return texture[10:10 + h, 10:10 + w].copy(), texture[10 - dy:10 - dy + h, 10 - dx:10 - dx + w].copy()


# ---- parameters ------------------------------------------------------------------------------------------

def test_defaults_are_opencvs():
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    defaults = TVL1Parameters()
    expected = {"tau": tvl1.getTau(), "lambda_": tvl1.getLambda(), "theta": tvl1.getTheta(),
                "scales_number": tvl1.getScalesNumber(), "warpings_number": tvl1.getWarpingsNumber(),
                "epsilon": tvl1.getEpsilon(), "inner_iterations": tvl1.getInnerIterations(),
                "outer_iterations": tvl1.getOuterIterations(), "scale_step": tvl1.getScaleStep(),
                "gamma": tvl1.getGamma(), "median_filtering": tvl1.getMedianFiltering()}
    assert {spec.name for spec in fields(TVL1Parameters)} == set(expected)
    for name, value in expected.items():
        assert getattr(defaults, name) == pytest.approx(value), name


def test_parameters_are_spelled_as_the_opencv_backend_takes_them():
    spelled = {"tau": 0.2, "lambda": 0.1, "nscales": 3, "warps": 2, "scaleStep": 0.6, "InnerIterations": 7,
               "outer_iterations": 4, "median_filtering": 3}
    params = TVL1Parameters.from_mapping(spelled)
    assert (params.tau, params.lambda_, params.scales_number, params.warpings_number, params.scale_step,
            params.inner_iterations, params.outer_iterations, params.median_filtering) == (
        0.2, 0.1, 3, 2, 0.6, 7, 4, 3)
    configure_tvl1(spelled)  # the same mapping configures the OpenCV backend
    with pytest.raises(ValueError, match="unknown parameter 'taus'"):
        TVL1Parameters.from_mapping({"taus": 0.2})
    with pytest.raises(ValueError, match="warpings_number: expected int"):
        TVL1Parameters.from_mapping({"warps": 2.5})
    with pytest.raises(ValueError, match="scale_step"):
        TVL1Parameters(scale_step=1.0)
    with pytest.raises(ValueError, match="median_filtering"):
        TVL1Parameters(median_filtering=7)


# ---- image operations against OpenCV ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def texture(shared_data) -> np.ndarray:
    return gray(shared_data / "flow_gt" / "shifts" / "Shift0.png").astype(np.float32)[:97, :131]


@pytest.mark.parametrize("step", [0.8, 0.5])
def test_resize_linear_is_opencvs(texture, step):
    down = cv2.resize(texture, None, fx=step, fy=step, interpolation=cv2.INTER_LINEAR)
    ours = resize_linear(torch.from_numpy(texture)[None], down.shape, (1 / step, 1 / step))[0].numpy()
    np.testing.assert_allclose(ours, down, atol=1e-3)
    up = cv2.resize(down, texture.shape[::-1], interpolation=cv2.INTER_LINEAR)
    ratio = (down.shape[0] / texture.shape[0], down.shape[1] / texture.shape[1])
    ours_up = resize_linear(torch.from_numpy(down)[None, None], texture.shape, ratio)[0, 0].numpy()
    np.testing.assert_allclose(ours_up, up, atol=1e-3)
    assert np.abs(ours_up - texture).max() > 10  # the comparison can fail: a resize loses detail


def test_remap_cubic_is_opencvs_inside_and_across_the_border(texture):
    h, w = texture.shape
    rng = np.random.default_rng(0)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = (xs + rng.normal(0, 3, xs.shape)).astype(np.float32)  # many points land within 3 px of the border
    map_y = (ys + rng.normal(0, 3, ys.shape)).astype(np.float32)
    expected = cv2.remap(texture, map_x, map_y, cv2.INTER_CUBIC)  # BORDER_CONSTANT 0, as DualTVL1 calls it
    ours = remap_cubic(torch.from_numpy(texture)[None, None], torch.from_numpy(map_x)[None],
                       torch.from_numpy(map_y)[None])[0, 0].numpy()
    np.testing.assert_allclose(ours, expected, atol=0.01)
    outside = (map_x < -2) | (map_y < -2) | (map_x > w + 1) | (map_y > h + 1)
    assert outside.sum() > 10 and np.all(ours[outside] == 0)
    bilinear = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR)
    assert np.abs(bilinear - expected).max() > 1  # another interpolation would fail the test


@pytest.mark.parametrize("ksize", [3, 5])
def test_median_blur_is_opencvs(texture, ksize):
    rng = np.random.default_rng(1)
    flow = np.stack([texture, rng.normal(0, 2, texture.shape).astype(np.float32)])  # like u1, u2 of one pair
    ours = median_blur(torch.from_numpy(flow)[None], ksize)[0].numpy()
    for channel in range(2):
        np.testing.assert_array_equal(ours[channel], cv2.medianBlur(flow[channel], ksize))


def test_gradients_and_divergence_follow_opencvs_border_rules():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(5, 6)).astype(np.float32)
    h, w = src.shape
    dx, dy = (t.numpy() for t in centered_gradient(torch.from_numpy(src)))
    fx, fy = forward_gradient(torch.from_numpy(src)).numpy()
    px, py = rng.normal(size=(2, h, w)).astype(np.float32)
    div = divergence(torch.from_numpy(px), torch.from_numpy(py)).numpy()
    for y, x in itertools.product(range(h), range(w)):  # tvl1flow.cpp, pixel by pixel
        left, right, up, down = max(x - 1, 0), min(x + 1, w - 1), max(y - 1, 0), min(y + 1, h - 1)
        assert dx[y, x] == pytest.approx(0.5 * (src[y, right] - src[y, left]), abs=1e-6)
        assert dy[y, x] == pytest.approx(0.5 * (src[down, x] - src[up, x]), abs=1e-6)
        assert fx[y, x] == pytest.approx(src[y, x + 1] - src[y, x] if x < w - 1 else 0.0, abs=1e-6)
        assert fy[y, x] == pytest.approx(src[y + 1, x] - src[y, x] if y < h - 1 else 0.0, abs=1e-6)
        expected = px[y, x] - (px[y, x - 1] if x > 0 else 0) + py[y, x] - (py[y - 1, x] if y > 0 else 0)
        assert div[y, x] == pytest.approx(expected, abs=1e-5)


# ---- the solver ---------------------------------------------------------------------------------------------

def ucf101_pairs(shared_data: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` consecutive grey frame pairs of a UCF101 clip at 128x171 (as extraction makes them)."""
    clip = shared_data / "ucf101" / "Archery" / "example.avi"
    frames = [cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) for rgb in itertools.islice(
        decode.iter_frames(clip, size=(128, 171)), 20, 21 + n)]
    return np.stack(frames[:-1]), np.stack(frames[1:])


def test_one_level_is_opencvs_step_for_step(shared_data):
    """One pyramid level, 5 warps, median filter 5: every step of the solver, against OpenCV on a real pair.
    Measured: 0.0004 px mean EPE between the two, where one warp fewer moves the flow by 0.09 px."""
    prev, next_ = ucf101_pairs(shared_data, 1)
    prev, next_ = prev[:, :64, :96], next_[:, :64, :96]
    params = {"scales_number": 1, "warpings_number": 5, "inner_iterations": 30, "outer_iterations": 10}
    expected = opencv_flows(prev, next_, **params)
    ours = tvl1_flow(prev, next_, **params)
    assert endpoint_errors(ours, expected)[0] < 0.002
    assert endpoint_errors(np.zeros_like(expected), expected)[0] > 0.3  # real motion to get right
    fewer_warps = tvl1_flow(prev, next_, **{**params, "warpings_number": 4})
    assert endpoint_errors(fewer_warps, expected)[0] > 0.02  # one warp fewer is told apart


# Shifted copies of a textured 320x240 image (right = +u, up = -v), at half size; the textured centre is
# rows 80-170, columns 80-240 at full size. The 20 px shift is left out: its periodic border pattern misleads
# OpenCV's TV-L1 as much as ours (median u 0.34 px at full size, 0.22 at half size).
SHIFTS = {"R2": (1.0, 0.0), "R10": (5.0, 0.0), "R5U5": (2.5, -2.5)}


def test_constant_shifts_are_recovered(shared_data):
    root = shared_data / "flow_gt" / "shifts"
    base = gray(root / "Shift0.png", 2)
    moved = np.stack([gray(root / f"Shift{name}.png", 2) for name in SHIFTS])
    flows = tvl1_flow(np.stack([base] * len(SHIFTS)), moved)
    assert flows.dtype == np.float32 and flows.shape == (len(SHIFTS), 120, 160, 2)
    for flow, (name, expected) in zip(flows, SHIFTS.items()):
        median = np.median(flow[40:85, 40:120].reshape(-1, 2), axis=0)
        assert np.all(np.abs(median - expected) < 0.25), (name, median, expected)


def test_flyingchairs_endpoint_error_is_opencvs(shared_data):
    """All 9 FlyingChairs pairs at quarter size (128x96), default parameters: mean EPE against the ground
    truth within 0.1 px (or 3 %) of OpenCV's. Measured: 0.909 vs 0.914 px (zero flow 2.61)."""
    root = shared_data / "flow_gt" / "flyingchairs"
    stems = [root / f"{i:07d}" for i in range(9)]
    prev = np.stack([gray(Path(f"{stem}-img0.ppm"), 4) for stem in stems])
    next_ = np.stack([gray(Path(f"{stem}-img1.ppm"), 4) for stem in stems])
    truth = np.stack([shrink(read_flo(Path(f"{stem}-gt.flo")), 4) / 4 for stem in stems])
    ours = endpoint_errors(tvl1_flow(prev, next_), truth).mean()
    theirs = endpoint_errors(opencv_flows(prev, next_), truth).mean()
    zero = endpoint_errors(np.zeros_like(truth), truth).mean()
    assert abs(ours - theirs) <= max(0.1, 0.03 * theirs), (ours, theirs)
    assert ours < 0.5 * zero, (ours, zero)


def test_stored_codes_are_opencvs_on_a_ucf101_clip(shared_data):
    """4 consecutive pairs at 128x171, codes of flow_codec.quantize (bound 20, 0.157 px per level).
    Measured: 99.4 % within one level (zero flow: 68.9 %)."""
    prev, next_ = ucf101_pairs(shared_data, 4)
    ours = quantize(tvl1_flow(prev, next_), 20.0).astype(int)
    theirs = quantize(opencv_flows(prev, next_), 20.0).astype(int)
    assert np.mean(np.abs(ours - theirs) <= 1) >= 0.95
    assert np.mean(np.abs(theirs - quantize(np.zeros(theirs.shape), 20.0)) <= 1) < 0.9  # not a static scene


def test_a_batch_gives_each_pair_its_own_flow():
    """Pairs of different motion (one converging at once: identical frames) batched, in two orders, equal
    the pairs computed one by one, bit for bit: each pair stops at its own convergence."""
    pairs = [textured_pair((48, 64), shift, seed) for seed, shift in enumerate([(3, -2), (0, 0), (-6, 1)])]
    prev, next_ = (np.stack(frames) for frames in zip(*pairs))
    alone = np.stack([tvl1_flow(a[None], b[None])[0] for a, b in zip(prev, next_)])
    batched = tvl1_flow(prev, next_)
    np.testing.assert_array_equal(batched, alone)
    order = [2, 0, 1]
    np.testing.assert_array_equal(tvl1_flow(prev[order], next_[order]), alone[order])
    no_stopping = tvl1_flow(prev[:1], next_[:1], epsilon=0.0)  # had pair 0 iterated on with the others
    assert np.abs(no_stopping - alone[:1]).max() > 0.05
    assert np.all(alone[1] == 0)  # the still pair converged at its first iteration and stayed there
    np.testing.assert_allclose(np.median(alone[0, 8:-8, 8:-8].reshape(-1, 2), axis=0), [3, -2], atol=0.25)
    np.testing.assert_allclose(np.median(alone[2, 8:-8, 8:-8].reshape(-1, 2), axis=0), [-6, 1], atol=0.25)


PARAMETER_CASES = [  # (frame size, parameters, EPE limit); measured: 5e-6, 7e-6, 2e-6, 0.028 px
    ((20, 23), {}, 1e-4),  # two pyramid levels only: the third would be under 16 px
    ((37, 61), {"scale_step": 0.5}, 1e-4),
    ((40, 40), {"scales_number": 3, "warpings_number": 2, "median_filtering": 3, "inner_iterations": 10,
                "outer_iterations": 3}, 1e-4),
    ((33, 50), {"tau": 0.2, "lambda": 0.3, "theta": 0.5}, 0.1),
]


@pytest.mark.parametrize("shape,params,limit", PARAMETER_CASES)
def test_parameters_and_odd_sizes_follow_opencv(shape, params, limit):
    prev, next_ = textured_pair(shape, (2, -1), 3)
    expected = opencv_flows(prev[None], next_[None], **params)
    assert endpoint_errors(tvl1_flow(prev[None], next_[None], **params), expected)[0] < limit
    assert endpoint_errors(np.zeros_like(expected), expected)[0] > 2.0


def test_video_flows_come_in_batches_of_consecutive_pairs():
    rng = np.random.default_rng(8)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (60, 80)).astype(np.float32), (0, 0), 2.0).astype(np.uint8)
    frames = np.stack([texture[t:t + 32, 2 * t:2 * t + 40] for t in range(5)])  # moving up-left by (2, 1) px
    flows = tvl1_video_flows(frames, batch_size=3, scales_number=2)
    assert flows.shape == (4, 32, 40, 2)
    np.testing.assert_array_equal(flows, tvl1_flow(frames[:-1], frames[1:], scales_number=2))
    np.testing.assert_allclose(np.median(flows[:, 8:-8, 8:-8].reshape(-1, 2), axis=0), [-2, -1], atol=0.25)
    with pytest.raises(ValueError, match="batch_size"):
        tvl1_video_flows(frames, batch_size=0)
    with pytest.raises(ValueError, match="two frames"):
        tvl1_video_flows(frames[:1])


def test_epsilon_stops_each_pair_like_opencv():
    """A large epsilon stops the warps early; the result follows OpenCV's with that epsilon, not the default."""
    prev, next_ = textured_pair((48, 64), (2, 1), 5)
    params = {"epsilon": 0.3, "scales_number": 2}
    early = tvl1_flow(prev[None], next_[None], **params)
    expected = opencv_flows(prev[None], next_[None], **params)
    full = opencv_flows(prev[None], next_[None], scales_number=2)
    assert endpoint_errors(early, expected)[0] < 0.01
    assert endpoint_errors(full, expected)[0] > 0.05


def test_gamma_term_follows_opencv():
    prev, next_ = textured_pair((48, 64), (2, 1), 6)
    brighter = np.clip(next_.astype(np.int16) + 12, 0, 255).astype(np.uint8)  # an illumination change
    params = {"gamma": 0.4, "scales_number": 2}
    expected = opencv_flows(prev[None], brighter[None], **params)
    ours = tvl1_flow(prev[None], brighter[None], **params)
    without = opencv_flows(prev[None], brighter[None], scales_number=2)
    assert endpoint_errors(ours, expected)[0] < 0.01
    assert endpoint_errors(without, expected)[0] > 0.05


def test_inputs_outputs_and_errors():
    prev, next_ = textured_pair((32, 40), (1, 0), 7)
    from_uint8 = tvl1_flow(prev[None], next_[None], scales_number=1, warpings_number=1)
    from_float = tvl1_flow(torch.from_numpy(prev[None] / 255.0), torch.from_numpy(next_[None] / 255.0),
                           scales_number=1, warpings_number=1)  # float frames are [0, 1], as OpenCV takes them
    assert isinstance(from_float, torch.Tensor) and from_float.dtype == torch.float32
    assert isinstance(from_uint8, np.ndarray) and from_uint8.shape == (1, 32, 40, 2)
    np.testing.assert_allclose(from_float.numpy(), from_uint8, atol=1e-4)
    with pytest.raises(ValueError, match="one shape"):
        tvl1_flow(prev[None], next_[None, :, :-1])
    with pytest.raises(ValueError, match="one shape"):
        tvl1_flow(prev, next_)  # [H, W] is not a batch
    with pytest.raises(ValueError, match="uint8 or float"):
        tvl1_flow(prev[None].astype(np.int16), next_[None].astype(np.int16))


def test_tvl1_torch_backend_extracts_codes_like_opencv(shared_data: Path, tmp_path: Path) -> None:
    """``extract-flow --algo tvl1_torch`` on a real clip: stored codes within one level of the OpenCV backend's
    for >= 95% of pixels, the backend recorded with every parameter, bad parameters refused before any work."""
    from click.testing import CliRunner

    from cli import cli
    from preprocess.dataset import Dataset

    clip = shared_data / "ucf101" / "ApplyEyeMakeup"
    video = sorted(clip.glob("*.avi"))[0]
    listing = tmp_path / "list.txt"
    listing.write_text(f"{video}\n")
    codes = {}
    for algo in ("tvl1", "tvl1_torch"):
        out = tmp_path / algo
        args = ["extract-flow", str(listing), str(out), "--algo", algo, "--size", "48", "64", "--every", "8",
                "--workers", "1", "--no-progress", "--no-diff"]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        dataset = Dataset(out)
        codes[algo] = dataset.read_flow_codes(dataset.videos[0].id).astype(int)
        recorded = dataset.settings["flow"]
    assert recorded["algo"] == "tvl1_torch" and recorded["params"]["parameters"]["tau"] == 0.25
    assert recorded["params"]["device"] == "cpu"
    close = np.abs(codes["tvl1"] - codes["tvl1_torch"]) <= 1
    assert close.mean() >= 0.95, close.mean()
    bad = CliRunner().invoke(cli, ["extract-flow", str(listing), str(tmp_path / "bad"), "--algo", "tvl1_torch",
                                   "--set", "preprocess.flow.tvl1={taus: 1}", "--no-progress"])
    assert bad.exit_code == 2 and "unknown parameter 'taus'" in bad.output and not (tmp_path / "bad").exists()
