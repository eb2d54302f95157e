"""The fast paths of the per-video extraction give exactly what the plain definitions give, on real frames:
BGR decoding, JPEG straight from BGR, gray straight from the JPEG, the OpenCV quantizer; flow and
differences from the decoded or the stored frames, in batches or frame by frame; and the recorded library
versions."""
from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from preprocess import decode, shards, video_task
from preprocess.extract import SettingsMismatch, check_settings
from preprocess.flow_codec import LEVELS, dequantize, quantize
from preprocess.index import Index
from preprocess.settings import ExtractSettings, FlowSettings
from preprocess.video_task import VideoJob, extract_video, ffmpeg_versions, stream_settings

SIZE = (48, 64)
CLIPS = ("ucf101/Archery/example.avi", "arid/train/Run/Run_11_1.mp4", "kth/person01_boxing_d1_uncomp.avi")


def _reference_quantize(flow: np.ndarray, bound: float) -> np.ndarray:
    """The codec's defining expression in numpy, in float32 (the form before the OpenCV version)."""
    flow = np.asarray(flow, np.float32)
    return np.rint((np.clip(flow, -bound, bound) + bound) * (LEVELS / (2.0 * bound))).astype(np.uint8)


@pytest.fixture(scope="module")
def real_rgb(shared_data: Path) -> list[np.ndarray]:
    """12 frames each of three real clips at 48x64, RGB, from the project's decoder."""
    frames = []
    for clip in CLIPS:
        for t, rgb in enumerate(decode.iter_frames(shared_data / clip, size=SIZE)):
            if t == 12:
                break
            frames.append(rgb)
    return frames


def test_bgr_decoding_is_the_rgb_decoding_reversed(shared_data: Path) -> None:
    for clip, size in ((CLIPS[0], SIZE), (CLIPS[2], None)):  # resized, and native size (120x160)
        rgb = list(decode.iter_frames(shared_data / clip, size=size, every=7))
        bgr = list(decode.iter_frames(shared_data / clip, size=size, every=7, bgr=True))
        assert len(rgb) == len(bgr) > 2
        for a, b in zip(rgb, bgr):
            np.testing.assert_array_equal(a, b[..., ::-1])


def test_jpeg_from_bgr_and_gray_from_jpeg_equal_the_rgb_definitions(real_rgb: list[np.ndarray]) -> None:
    for rgb in real_rgb:
        jpeg = shards.encode_jpeg_bgr(np.ascontiguousarray(rgb[..., ::-1]), 90)
        assert jpeg.tobytes() == shards.encode_jpeg(rgb, 90).tobytes()
        reference_rgb = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(shards.decode_jpeg(jpeg), reference_rgb)
        np.testing.assert_array_equal(shards.jpeg_to_gray(jpeg), cv2.cvtColor(reference_rgb, cv2.COLOR_RGB2GRAY))
    with pytest.raises(ValueError, match="cannot be decoded"):
        shards.jpeg_to_gray(np.zeros(10, np.uint8))


def test_quantize_is_bit_identical_to_its_definition(real_rgb: list[np.ndarray]) -> None:
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in real_rgb]
    flows = [dis.calc(a, b, None) for a, b in zip(gray[:-1], gray[1:])]
    for bound in (20.0, 1.0, 0.3):  # small bounds put real flow on both sides of the clipping
        for flow in flows:
            np.testing.assert_array_equal(quantize(flow, bound), _reference_quantize(flow, bound))
    for bound in (20.0, 7.3, 0.5):
        # every code's rounding boundary (exactly, and one float step either side), plus a dense sweep
        edges = ((np.arange(LEVELS + 2) - 0.5) * (2 * bound / LEVELS) - bound).astype(np.float32)
        up, down = np.nextafter(edges, np.float32(np.inf)), np.nextafter(edges, np.float32(-np.inf))
        values = np.concatenate([edges, up, down, np.linspace(-1.5 * bound, 1.5 * bound, 200_001, dtype=np.float32)])
        for dtype in (np.float32, np.float64):
            codes = quantize(values.astype(dtype), bound)
            assert codes.dtype == np.uint8 and codes.shape == values.shape
            np.testing.assert_array_equal(codes, _reference_quantize(values.astype(dtype), bound))
        np.testing.assert_array_equal(quantize(np.array([np.inf, -np.inf, np.nan]), bound)[:2], [LEVELS, 0])
        assert quantize(np.zeros((0, 5, 2), np.float32), bound).shape == (0, 5, 2)
    flow = flows[0].copy()
    quantize(flow, 20.0)
    np.testing.assert_array_equal(flow, flows[0])  # the input is left alone


def test_dequantize_is_bit_identical_to_its_definition_for_every_code() -> None:
    codes = np.arange(LEVELS + 1, dtype=np.uint8).reshape(16, 8, 2)
    for bound in (20.0, 7.3, 0.5):
        for dtype in (np.float32, np.float64):
            reference = codes.astype(dtype) * dtype(2.0 * bound / LEVELS) - dtype(bound)
            flow = dequantize(codes, bound, dtype)
            assert flow.dtype == dtype and flow.shape == codes.shape
            np.testing.assert_array_equal(flow, reference)


def _streams(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path) as f:
        video = f["videos/a/v"]
        return {name: video[name][()] for name in ("frames_jpeg", "flow", "diff") if name in video}


def _recorded_from(path: Path) -> tuple[str, str]:
    """The recorded sources of the flow and the differences of a part file."""
    with h5py.File(path) as f:
        settings = json.loads(f.attrs["settings"])
        return settings["flow"]["from"], settings["diff"]["from"]


def test_flow_and_differences_from_the_decoded_or_the_stored_frames(shared_data: Path, tmp_path: Path) -> None:
    clip = shared_data / CLIPS[0]
    settings = ExtractSettings(size=SIZE, every=9, flow=FlowSettings(algo="dis"))
    pairwise = ("frames", "flow", "diff")
    jobs = {
        "decoded": VideoJob("a/v", str(clip), "a", None, pairwise, settings),
        "stored": VideoJob("a/v", str(clip), "a", None, pairwise, settings, flow_from="stored", diff_from="stored"),
        "mixed": VideoJob("a/v", str(clip), "a", None, pairwise, settings, flow_from="stored"),
        "frames": VideoJob("a/v", str(clip), "a", None, ("frames",), settings),
    }
    for name, job in jobs.items():
        extract_video(job, str(tmp_path / f"{name}.h5"))
    # frames stored earlier: reused for flow from the stored frames, decoded again for flow from the decoded ones
    extract_video(VideoJob("a/v", str(clip), "a", None, ("flow", "diff"), settings, str(tmp_path / "frames.h5"),
                           "stored", "stored"), str(tmp_path / "reused.h5"))
    extract_video(VideoJob("a/v", str(clip), "a", None, ("flow", "diff"), settings), str(tmp_path / "again.h5"))
    out = {name: _streams(tmp_path / f"{name}.h5") for name in (*jobs, "reused", "again")}
    for name in ("stored", "mixed", "frames"):
        np.testing.assert_array_equal(out[name]["frames_jpeg"], out["decoded"]["frames_jpeg"])
    np.testing.assert_array_equal(out["mixed"]["flow"], out["stored"]["flow"])
    np.testing.assert_array_equal(out["mixed"]["diff"], out["decoded"]["diff"])
    assert "frames_jpeg" not in out["reused"] and "frames_jpeg" not in out["again"]
    for stream in ("flow", "diff"):
        np.testing.assert_array_equal(out["reused"][stream], out["stored"][stream])
        np.testing.assert_array_equal(out["again"][stream], out["decoded"][stream])
    assert _recorded_from(tmp_path / "decoded.h5") == _recorded_from(tmp_path / "again.h5") == ("decoded", "decoded")
    assert _recorded_from(tmp_path / "stored.h5") == _recorded_from(tmp_path / "reused.h5") == ("stored", "stored")
    assert _recorded_from(tmp_path / "mixed.h5") == ("stored", "decoded")
    # independent checks: the gray of the decoder's frames, and of the stored frames read back as RGB
    decoded_gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in decode.iter_frames(clip, size=SIZE, every=9)]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    direct = [quantize(dis.calc(a, b, None), settings.flow.bound) for a, b in zip(decoded_gray[:-1], decoded_gray[1:])]
    np.testing.assert_array_equal(out["decoded"]["flow"], np.stack(direct))
    np.testing.assert_array_equal(out["decoded"]["diff"], np.diff(np.stack(decoded_gray).astype(np.int16), axis=0))
    with h5py.File(tmp_path / "stored.h5") as f:
        stored_gray = [cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) for rgb in shards.read_frames(f["videos/a/v"])]
    np.testing.assert_array_equal(out["stored"]["diff"], np.diff(np.stack(stored_gray).astype(np.int16), axis=0))
    assert len(stored_gray) > 5 and not np.array_equal(out["stored"]["flow"], out["decoded"]["flow"])
    with pytest.raises(ValueError, match=r"stored frames \(frames_shard\) are reused only when"):
        VideoJob("a/v", str(clip), "a", None, ("flow",), settings, str(tmp_path / "frames.h5"))
    with pytest.raises(ValueError, match="flow_from must be one of"):
        VideoJob("a/v", str(clip), "a", None, ("flow",), settings, flow_from="jpeg")


@pytest.mark.parametrize("frames, nbytes", [(3, 8 << 20), (16, 48 * 64 * 3 * 5)])  # by count; by bytes (5 frames)
def test_batches_give_what_frame_by_frame_gives(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                frames: int, nbytes: int) -> None:
    clip = shared_data / CLIPS[1]  # 66 frames: batches end mid-video and the last one is short
    settings = ExtractSettings(size=SIZE, flow=FlowSettings(algo="dis"))
    pairwise = ("frames", "flow", "diff")

    def run(name: str, batch_frames: int, batch_bytes: int) -> dict[str, dict[str, np.ndarray]]:
        monkeypatch.setattr(video_task, "BATCH_FRAMES", batch_frames)
        monkeypatch.setattr(video_task, "BATCH_BYTES", batch_bytes)
        extract_video(VideoJob("a/v", str(clip), "a", None, pairwise, settings), str(tmp_path / f"{name}.h5"))
        extract_video(VideoJob("a/v", str(clip), "a", None, ("flow", "diff"), settings, str(tmp_path / f"{name}.h5"),
                               "stored", "stored"), str(tmp_path / f"{name}-reused.h5"))
        return {source: _streams(tmp_path / f"{name}{source}.h5") for source in ("", "-reused")}

    one_by_one, batched = run("single", 1, 8 << 20), run("batched", frames, nbytes)
    assert one_by_one[""]["flow"].shape[0] == 65
    for source, streams in one_by_one.items():
        assert streams.keys() == batched[source].keys()
        for name, values in streams.items():
            np.testing.assert_array_equal(batched[source][name], values)


def test_tvl1_torch_gets_flow_batch_pairs_per_call(shared_data: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    clip = shared_data / CLIPS[1]  # 66 frames: 65 pairs
    calls: list[int] = []

    def counted(pairs):
        calls.append(len(pairs))
        return [np.zeros((*pairs[0][0].shape, 2), np.float32) for _ in pairs]

    monkeypatch.setattr(video_task.flow, "make_pair_flows", lambda settings: counted)
    for batch, expected in ((40, [39, 26]), (4, [15, 16, 16, 16, 2])):  # 16-frame batches below BATCH_FRAMES
        calls.clear()
        settings = ExtractSettings(size=SIZE, flow=FlowSettings(algo="tvl1_torch", batch=batch))
        extract_video(VideoJob("a/v", str(clip), "a", None, ("flow",), settings), str(tmp_path / f"b{batch}.h5"))
        assert calls == expected
    dis = VideoJob("a/v", str(clip), "a", None, ("flow",), ExtractSettings(size=SIZE, flow=FlowSettings(algo="dis",
                                                                                                          batch=40)))
    assert video_task.batch_limits(dis) == (video_task.BATCH_FRAMES, video_task.BATCH_BYTES)


def test_ffmpeg_versions_from_build_information() -> None:
    text = ("  Video I/O:\n    FFMPEG:                      YES\n      avcodec:                   YES (62.28.101)\n"
            "      avformat:                  YES (62.12.101)\n      avutil:                    YES (60.8.100)\n"
            "      swscale:                   YES (9.5.101)\n")
    assert ffmpeg_versions(text) == {"avcodec": "62.28.101", "avformat": "62.12.101", "swscale": "9.5.101"}
    assert ffmpeg_versions("  Video I/O:\n    FFMPEG:   NO\n") == {}


def test_recorded_settings_hold_library_versions_and_a_different_one_is_refused(tmp_path: Path) -> None:
    recorded = stream_settings(ExtractSettings())
    avcodec = re.search(r"avcodec:\s*YES \(([^)]+)\)", cv2.getBuildInformation()).group(1)
    frames = recorded["frames"]
    assert frames["opencv"] == cv2.__version__ and frames["ffmpeg"]["avcodec"] == avcodec
    assert recorded["flow"]["frames"] == frames and recorded["diff"]["frames"] == frames
    assert recorded["flow"]["numpy"] == recorded["diff"]["numpy"] == np.__version__
    index = Index(settings=json.loads(json.dumps(recorded)))
    check_settings(index, recorded, tmp_path)  # same versions: accepted
    index.settings["diff"]["frames"]["ffmpeg"]["avcodec"] = "1.0.0"
    with pytest.raises(SettingsMismatch, match=r"diff stream.*frames\.ffmpeg\.avcodec: '1\.0\.0' in the dataset"):
        check_settings(index, recorded, tmp_path)
