"""Motion boundaries: the pure function against numpy.gradient and closed forms, the uint8 codec, and the ``mb``
stream end to end on real clips (stored from the float flow in the extraction pass, added later to a dataset that
has flow, refused with other settings, read through ``preprocess.streams``, drawn by ``show-labels``)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from cli import cli
from commands.pipeline import load_pipeline
from preprocess import decode
from preprocess.dataset import Dataset
from preprocess.extract import SettingsMismatch, extract
from preprocess.flow import make_flow
from preprocess.flow_codec import dequantize as dequantize_flow
from preprocess.motion_boundaries import dequantize, motion_boundaries, quantize, scale
from preprocess.settings import FlowSettings
from preprocess.streams import CHANNELS, crop, read_items, stream_length, to_input

SIZE = (48, 64)
EVERY = 4
CLIPS = {"Run/Run_11_1.mp4": "arid/train/Run/Run_11_1.mp4", "Archery/example.avi": "ucf101/Archery/example.avi"}
PREPROCESS = {"size": list(SIZE), "every": EVERY, "flow": {"algo": "dis", "dis_preset": "fast", "bound": 20}}
SETS = ["--set", f"preprocess.size=[{SIZE[0]}, {SIZE[1]}]", "--set", f"preprocess.every={EVERY}",
        "--set", "preprocess.flow={algo: dis, dis_preset: fast, bound: 20}"]


def _settings(**extra: object):
    return load_pipeline("demo", overrides={"preprocess": {**PREPROCESS, **extra}}).preprocess


def _real_flow(shared_data: Path, size: tuple[int, int] = (128, 171)) -> np.ndarray:
    frames = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
              for f in decode.iter_frames(shared_data / "ucf101/Archery/example.avi", size=size)][10:12]
    return make_flow(FlowSettings(algo="dis"))(*frames)


def test_boundaries_are_the_gradient_magnitudes_of_numpy_gradient(shared_data: Path) -> None:
    flow = _real_flow(shared_data)
    ours = motion_boundaries(flow)
    assert ours.shape == flow.shape and ours.dtype == np.float32 and ours.max() > 0.5
    for k in (0, 1):
        dy, dx = np.gradient(flow[..., k].astype(np.float64))  # central inside, one-sided on the border
        np.testing.assert_allclose(ours[..., k], np.sqrt(dx ** 2 + dy ** 2), rtol=1e-5, atol=1e-6)


def test_closed_forms_mirror_and_bad_input() -> None:
    y, x = np.mgrid[0:7, 0:9].astype(np.float32)
    linear = np.stack([0.3 * x - 0.4 * y, 0.1 * x + 0 * y], axis=-1)  # |grad u| = 0.5, |grad v| = 0.1 everywhere
    np.testing.assert_allclose(motion_boundaries(linear)[..., 0], 0.5, rtol=1e-6)
    np.testing.assert_allclose(motion_boundaries(linear)[..., 1], 0.1, rtol=1e-6)
    step = np.zeros((5, 6, 2), np.float32)
    step[:, 3:, 0] = 2.0  # u jumps by 2 px between columns 2 and 3: half of it on each side, none elsewhere
    np.testing.assert_array_equal(motion_boundaries(step)[0, :, 0], [0, 0, 1, 1, 0, 0])
    rng = np.random.default_rng(0)
    flow = rng.normal(size=(10, 12, 2)).astype(np.float32)
    mirrored = flow[:, ::-1].copy()
    mirrored[..., 0] *= -1  # the mirror of a flow field negates u
    np.testing.assert_allclose(motion_boundaries(mirrored), motion_boundaries(flow)[:, ::-1], rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match=r"flow field \[H, W, 2\] with H, W >= 2, got \(1, 5, 2\)"):
        motion_boundaries(np.zeros((1, 5, 2)))


def test_codec_steps_clipping_and_round_trip() -> None:
    assert scale(2.0) == pytest.approx(2.0 / 255)
    exact = np.array([0, 1, 2, 254, 255], np.float32) * np.float32(scale(2.0))
    np.testing.assert_array_equal(quantize(exact, 2.0), [0, 1, 2, 254, 255])
    np.testing.assert_array_equal(quantize(np.array([2.0, 7.5, -0.1], np.float32), 2.0), [255, 255, 0])
    values = np.random.default_rng(1).uniform(0, 2.0, 10_000).astype(np.float32)
    codes = quantize(values, 2.0)
    assert codes.dtype == np.uint8
    assert np.abs(dequantize(codes, 2.0) - values).max() <= scale(2.0) / 2 + 1e-6
    with pytest.raises(ValueError, match="bound must be > 0"):
        dequantize(codes, 0.0)
    with pytest.raises(ValueError, match="motion_boundaries_bound must be > 0"):
        _settings(motion_boundaries=True, motion_boundaries_bound=-1)


@pytest.fixture(scope="module")
def inputs(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mb_in")
    for rel, src in CLIPS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(shared_data / src)
    return root


@pytest.fixture(scope="module")
def with_mb(inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset extracted with flow and motion boundaries in one pass."""
    out = tmp_path_factory.mktemp("mb_ds") / "ds"
    summary = extract(inputs, out, _settings(motion_boundaries=True), workers=1, progress=False)
    assert summary.ok and summary.extracted == 2
    return out


def test_stored_boundaries_come_from_the_float_flow(with_mb: Path) -> None:
    ds = Dataset(with_mb)
    assert ds.has_stream("mb") and ds.motion_boundaries_bound == 2.0
    recorded = ds.settings["mb"]
    assert recorded["scale"] == pytest.approx(2.0 / 255) and recorded["flow"] == ds.settings["flow"]
    flow_fn = make_flow(_settings().flow)
    before_quantization_differs = False
    for video in ds.videos:
        stored = ds.read_motion_boundaries(video.id)
        assert stored.shape == (video.n_frames - 1, *SIZE, 2) and stored.dtype == np.float32
        gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in decode.iter_frames(video.path, size=SIZE, every=EVERY)]
        codes = ds._stored(video.id, "mb").read_items("mb")
        for t in (0, video.n_frames // 2, video.n_frames - 2):
            float_flow = flow_fn(gray[t], gray[t + 1])
            np.testing.assert_array_equal(codes[t], quantize(motion_boundaries(float_flow), 2.0))
            np.testing.assert_array_equal(stored[t], dequantize(codes[t], 2.0))
            from_codes = quantize(motion_boundaries(dequantize_flow(ds.read_flow_codes(video.id, t, t + 1)[0], 20)), 2)
            before_quantization_differs |= not np.array_equal(from_codes, codes[t])
    assert before_quantization_differs  # what the stored flow codes would give is not what is stored


def test_streams_module_reads_crops_and_scales_the_mb_stream(with_mb: Path) -> None:
    ds = Dataset(with_mb)
    video = ds.videos[0]
    assert CHANNELS["mb"] == 2 and stream_length(video.n_frames, "mb") == video.n_frames - 1
    clip = read_items(ds, "mb", video.id, [3, 1, 2, 1])
    np.testing.assert_array_equal(clip, ds.read_motion_boundaries(video.id)[[3, 1, 2, 1]])
    np.testing.assert_array_equal(crop(clip, 2, 5, 32, flip=True, stream="mb"), clip[:, 2:34, 5:37][:, :, ::-1])
    x = to_input(clip[None], "mb", mb_scale=0.5)
    assert tuple(x.shape) == (1, 2, 4, *SIZE)
    np.testing.assert_allclose(x[0].permute(1, 2, 3, 0).numpy(), clip / 0.5, rtol=1e-6)


def test_boundaries_added_later_equal_those_of_one_pass_and_other_settings_are_refused(
        inputs: Path, with_mb: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    first = extract(inputs, out, _settings(), workers=1, progress=False)
    assert first.ok and not Dataset(out).has_stream("mb")
    flow_shards = {p: p.stat().st_mtime_ns for p in (out / "shards").glob("*.h5")}
    result = CliRunner().invoke(cli, ["extract-flow", str(inputs), str(out), "--pipeline", "demo", *SETS,
                                      "--motion-boundaries", "--workers", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "2 extracted now, 0 already complete" in result.output
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in flow_shards.items())  # flow shards untouched
    later, one_pass = Dataset(out), Dataset(with_mb)
    assert later.settings["mb"] == one_pass.settings["mb"]
    for video in one_pass.videos:
        np.testing.assert_array_equal(later.read_motion_boundaries(video.id), one_pass.read_motion_boundaries(video.id))
        np.testing.assert_array_equal(later.read_flow_codes(video.id), one_pass.read_flow_codes(video.id))
    again = extract(inputs, out, _settings(motion_boundaries=True), workers=1, progress=False)
    assert again.extracted == 0 and again.already_done == 2
    with pytest.raises(SettingsMismatch, match=r"mb stream was extracted with other settings \(bound: 2.0 in the "
                                               r"dataset, 4.0 now; scale"):
        extract(inputs, out, _settings(motion_boundaries=True, motion_boundaries_bound=4.0), workers=1, progress=False)
    refused = CliRunner().invoke(cli, ["extract-flow", str(inputs), str(out), "--pipeline", "demo", *SETS,
                                       "--set", "preprocess.motion_boundaries_bound=4", "--motion-boundaries",
                                       "--workers", "1", "--no-progress"])
    assert refused.exit_code == 2 and "mb stream was extracted with other settings" in refused.output


def test_show_labels_draws_the_stored_boundaries(with_mb: Path, tmp_path: Path) -> None:
    out = tmp_path / "clip.png"
    result = CliRunner().invoke(cli, ["show-labels", "--data", str(with_mb), "--video", "Run/Run_11_1", "--out",
                                      str(out), "--set", "clip_len=8", "--set", "crop_size=48",
                                      "--set", "labels.crop_variants=[[0, 8, true]]"])
    assert result.exit_code == 0, result.output
    boundaries = Dataset(with_mb).read_motion_boundaries("Run/Run_11_1", 0, 7)[:, :, 8:56][:, :, ::-1]
    mean_u, mean_v = boundaries.mean(axis=(0, 1, 2))
    assert f"stored motion boundaries drawn: mean |grad u| {mean_u:.4f}, |grad v| {mean_v:.4f} px/px" in result.output
    image = cv2.imread(str(out))
    assert image.shape[0] > 1.3 * image.shape[1] * 13 / 16  # the fourth row is there
