"""Decoding real clips of several containers/codecs, resizing, temporal resampling, corrupt inputs, memory."""
from __future__ import annotations

import csv
import math
import os
import shutil
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from preprocess import decode
from preprocess.decode import DecodeError

CLIPS = [  # one per container/codec family; the NTU clip is 1920x1080
    "ucf101/Archery/example.avi",  # AVI, xvid (FMP4)
    "arid/train/Jump/Jump_11_1.mp4",  # MP4, H.264, dark
    "asl_gestures/eat/eat.mkv",  # MKV, H.264
    "ntu_rgbd/hugging_visual/ntu_sample.avi",  # AVI, H.264, 1920x1080
]
KTH = "kth/person01_boxing_d1_uncomp.avi"  # uncompressed AVI, not in videos.csv
KTH_FRAMES = 360
LONG = "natural_videos/one-by-one-person-detection.mp4"  # 139 s, 1394 frames


@pytest.fixture(scope="module")
def catalogue(shared_data) -> dict[str, dict[str, str]]:
    with open(shared_data / "videos.csv", newline="") as f:
        return {row["path"]: row for row in csv.DictReader(f)}


def opencv_frames(path: Path, limit: int) -> list[np.ndarray]:
    """Reference decode: plain cv2.VideoCapture, BGR, first ``limit`` frames."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


@pytest.mark.parametrize("clip", CLIPS)
def test_real_clips_decode_with_catalogue_counts(shared_data, catalogue, clip):
    row = catalogue[clip]
    info = decode.probe(shared_data / clip)
    assert (info.width, info.height) == (int(row["width"]), int(row["height"]))
    assert info.fps == pytest.approx(float(row["fps"]), abs=0.01)
    frames = decode.iter_frames(shared_data / clip, size=(32, 40))
    count = 0
    for frame in frames:
        assert frame.shape == (32, 40, 3) and frame.dtype == np.uint8
        count += 1
    assert count == int(row["frames"])


def test_uncompressed_avi(shared_data):
    info = decode.probe(shared_data / KTH)
    assert (info.width, info.height, info.n_frames) == (160, 120, KTH_FRAMES)
    assert sum(1 for _ in decode.iter_frames(shared_data / KTH)) == KTH_FRAMES


def test_open_frames_is_probe_and_iter_frames_in_one_open(shared_data, tmp_path):
    info, frames = decode.open_frames(shared_data / KTH, size=(30, 40), every=3, bgr=True)
    assert info == decode.probe(shared_data / KTH)
    expected = list(decode.iter_frames(shared_data / KTH, size=(30, 40), every=3, bgr=True))
    got = list(frames)
    assert len(got) == len(expected) == KTH_FRAMES // 3
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(decode.DecodeError, match="zero bytes"):
        decode.open_frames(empty)  # at once, not at the first frame


def test_frames_are_rgb_and_resized(shared_data):
    path = shared_data / "ucf101/Archery/example.avi"
    reference = opencv_frames(path, 3)
    native = list(zip(range(3), decode.iter_frames(path)))
    for (_, rgb), bgr in zip(native, reference):
        np.testing.assert_array_equal(rgb, bgr[..., ::-1])
    quarter = next(decode.iter_frames(path, size=(60, 80)))  # 240x320 halved twice
    np.testing.assert_array_equal(quarter, cv2.pyrDown(cv2.pyrDown(reference[0]))[..., ::-1])
    standard = next(decode.iter_frames(path, size=(128, 171)))  # factor < 2: bilinear
    bilinear = cv2.resize(reference[0], (171, 128), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(standard, bilinear[..., ::-1])


def test_large_reductions_do_not_alias():
    """A 1-px checkerboard shrunk 3.75x must come out flat grey (a plain bilinear resize gives moire)."""
    board = (np.indices((480, 640)).sum(axis=0) % 2 * 255).astype(np.uint8)
    small = decode.resize_frame(board, (128, 171))
    assert small.shape == (128, 171)
    assert abs(small.mean() - 127.5) < 2 and small.std() < 5, (small.mean(), small.std())
    aliased = cv2.resize(board, (171, 128), interpolation=cv2.INTER_LINEAR)
    assert aliased.std() > 25  # the check above can fail


def test_resize_matches_area_average_on_real_frames(shared_data):
    frame = opencv_frames(shared_data / "ntu_rgbd/hugging_visual/ntu_sample.avi", 1)[0]
    small = decode.resize_frame(frame, (128, 171)).astype(np.float64)
    area = cv2.resize(frame, (171, 128), interpolation=cv2.INTER_AREA).astype(np.float64)
    assert np.abs(small - area).mean() < 4.0


def test_short_side_keeps_aspect(shared_data):
    frame = next(decode.iter_frames(shared_data / "ntu_rgbd/hugging_visual/ntu_sample.avi", short_side=64))
    assert frame.shape == (64, round(1920 * 64 / 1080), 3)  # 64 x 114
    portrait = decode.output_size(300, 200, short_side=100)
    assert portrait == (150, 100)
    with pytest.raises(ValueError, match="not both"):
        decode.output_size(10, 10, size=(5, 5), short_side=5)


@pytest.fixture(scope="module")
def arid_frames(shared_data) -> list[np.ndarray]:
    """Every frame of a 30 fps, 56-frame clip at 24x32."""
    return list(decode.iter_frames(shared_data / "arid/train/Jump/Jump_11_1.mp4", size=(24, 32)))


@pytest.mark.parametrize("fps,every", [(None, 4), (10.0, 1), (12.0, 1), (15.0, 2), (60.0, 1)])
def test_temporal_resampling_picks_nearest_frames(shared_data, arid_frames, fps, every):
    n = len(arid_frames)
    assert n == 56
    step = 30.0 / (fps or 30.0)
    times = np.arange(0, 10 * n) * step  # source position of each resampled frame
    picked = np.floor(times + 0.5).astype(int)
    picked = picked[picked < n][::every]
    out = list(decode.iter_frames(shared_data / "arid/train/Jump/Jump_11_1.mp4", size=(24, 32), fps=fps, every=every))
    assert len(out) == len(picked)
    for frame, index in zip(out, picked):
        np.testing.assert_array_equal(frame, arid_frames[index])
    if fps is not None:  # the resampled clip keeps the duration: about n * fps / 30 frames
        assert abs(len(out) * every - n * fps / 30.0) <= every + 1


def test_source_indices():
    take = lambda it, k: [next(it) for _ in range(k)]  # noqa: E731
    assert take(decode.source_indices(None, None, 3), 4) == [0, 3, 6, 9]
    assert take(decode.source_indices(25.0, 10.0, 1), 5) == [0, 3, 5, 8, 10]  # 0, 2.5, 5, 7.5, 10 rounded up
    assert take(decode.source_indices(10.0, 30.0, 1), 7) == [0, 0, 1, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="frame rate unknown"):
        next(decode.source_indices(0.0, 10.0, 1))
    with pytest.raises(ValueError, match="every"):
        next(decode.source_indices(25.0, None, 0))


def test_bad_arguments_are_value_errors(shared_data):
    clip = shared_data / "ucf101/Archery/example.avi"
    for kw, message in [({"every": 0}, "every"), ({"fps": -1.0}, "fps"), ({"size": (0, 10)}, "size"),
                        ({"size": (8, 8), "short_side": 8}, "not both")]:
        with pytest.raises(ValueError, match=message) as caught:
            next(decode.iter_frames(clip, **kw))
        assert not isinstance(caught.value, DecodeError)


def write_video(path: Path, n_frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    assert writer.isOpened()
    for i in range(n_frames):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    return path


def truncated_copy(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def decode_all(path: Path, **kw) -> int:
    return sum(1 for _ in decode.iter_frames(path, size=(16, 16), **kw))


@pytest.mark.parametrize("clip,reason", [
    ("ucf101/Archery/example.avi", r"truncated: decoded \d+ of 131 frames"),  # AVI: header count survives
    ("arid/train/Jump/Jump_11_1.mp4", r"truncated: decoded \d+ of 56 frames"),  # MP4, index at the start
    ("natural_videos/bikes.mp4", r"MP4/MOV container without a readable index.*truncated"),  # index at the end
    ("asl_gestures/eat/eat.mkv", r"truncated: decoded \d+ of 4[78] frames"),
])
def test_truncated_copies_raise(shared_data, tmp_path, clip, reason):
    path = truncated_copy(shared_data / clip, tmp_path / ("half_" + Path(clip).name))
    with pytest.raises(DecodeError, match=reason) as caught:
        decode_all(path)
    assert caught.value.path == str(path) and str(path) in str(caught.value)


def test_bad_files_raise_with_path_and_reason(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    one = write_video(tmp_path / "one.avi", 1)
    two = write_video(tmp_path / "two.avi", 2)
    cases = [
        (empty, "zero bytes"),
        (text, "not a video or unsupported codec"),
        (tmp_path / "missing.avi", "no such file"),
        (tmp_path, "not a regular file"),
        (one, r"only one frame \(flow needs two\)"),
    ]
    for path, reason in cases:
        for action in (decode.probe, decode_all):
            with pytest.raises(DecodeError, match=reason) as caught:
                action(path)
            assert str(caught.value).startswith(f"{path}: ")
    assert decode_all(two) == 2
    with pytest.raises(DecodeError, match="only 1 frame after resampling"):
        decode_all(two, every=2)


def test_decode_error_pickles():
    import pickle

    error = pickle.loads(pickle.dumps(DecodeError("/x/y.avi", "zero bytes")))
    assert (error.path, error.reason, str(error)) == ("/x/y.avi", "zero bytes", "/x/y.avi: zero bytes")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_long_video_streams_in_bounded_memory(shared_data):
    """1394 frames of 128x171x3 would hold 91 MB if kept; streaming keeps one frame alive."""
    frame_bytes = 128 * 171 * 3
    source_frame_bytes = 768 * 432 * 3
    frames = decode.iter_frames(shared_data / LONG, size=(128, 171))
    for _ in range(20):  # let FFmpeg and OpenCV allocate their working buffers
        next(frames)
    rss_start = rss_bytes()
    tracemalloc.start()
    count, rss_peak = 20, rss_start
    try:
        for frame in frames:
            count += 1
            if count % 100 == 0:
                rss_peak = max(rss_peak, rss_bytes())
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 1394
    # Python-side arrays: the reused decoder buffer plus about one output frame at a time
    assert traced_peak < 2 * (source_frame_bytes + frame_bytes), traced_peak
    assert rss_peak - rss_start < 20 * 2**20, (rss_peak - rss_start) / 2**20
    assert count * frame_bytes > 4 * 20 * 2**20  # holding the frames would break the bound above


def test_copy_of_real_clip_decodes_like_original(shared_data, tmp_path):
    """Paths are plain strings or Path objects, anywhere on disk."""
    source = shared_data / "natural_videos/carphone_pristine.mp4"
    copy = Path(shutil.copy(source, tmp_path / "clip.mp4"))
    assert decode_all(copy) == decode_all(str(source)) == 120
    assert math.isclose(decode.probe(copy).fps, 29.97, abs_tol=0.01)


def thread_count() -> int:
    return len(list(Path("/proc/self/task").iterdir()))


def test_ffmpeg_decodes_on_one_thread(shared_data):
    """FFmpeg's H.264 decoder starts one thread per core by default; ours runs single-threaded."""
    clip = shared_data / "ntu_rgbd/hugging_visual/ntu_sample.avi"
    before = thread_count()
    frames = decode.iter_frames(clip, size=(16, 16))
    next(frames), next(frames)
    ours = thread_count() - before
    frames.close()
    default = cv2.VideoCapture(str(clip))
    default.read(), default.read()
    by_default = thread_count() - before
    default.release()
    assert ours <= 1, ours
    if len(os.sched_getaffinity(0)) > 1:  # FFmpeg's default spawns threads only on a multi-core machine
        assert by_default > ours, (ours, by_default)
