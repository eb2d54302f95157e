"""Shard layout, index and the Dataset reader, on frames of real clips written through the shard writer."""
from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from preprocess import shards
from preprocess.dataset import Dataset
from preprocess.flow_codec import dequantize, quantize
from preprocess.index import DatasetError, Index, IndexSaver, add_shard, load_index, save_index

BOUND = 20.0


def _real_frames(path: Path, n: int, size: tuple[int, int]) -> np.ndarray:
    """First ``n`` frames of a real clip, RGB uint8 [n,h,w,3] (read with OpenCV directly, as a reference)."""
    cap = cv2.VideoCapture(str(path))
    out = []
    while len(out) < n:
        ok, bgr = cap.read()
        assert ok, f"{path}: ran out of frames"
        out.append(cv2.cvtColor(cv2.resize(bgr, size[::-1], interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    return np.stack(out)


def _jpeg_round_trip(rgb: np.ndarray) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]


def _write_part(path: Path, video_id: str, frames: np.ndarray, image_format: str, label: str) -> None:
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    with h5py.File(path, "w") as f:
        w = shards.VideoWriter(f, video_id, height=frames.shape[1], width=frames.shape[2],
                               streams=("frames", "flow", "diff"), image_format=image_format)
        for t, rgb in enumerate(frames):
            w.add_frame(rgb, shards.encode_jpeg(rgb, 90) if image_format == "jpeg" else None)
            if t:
                w.add_flow(quantize(dis.calc(gray[t - 1], gray[t], None), BOUND))
                w.add_diff(gray[t].astype(np.int16) - gray[t - 1])
        w.finish(fps=25.0, source=f"/src/{video_id}.avi", label=label, split="train")
        settings = {"frames": {"image_format": image_format}, "flow": {"bound": BOUND}, "diff": {}}
        shards.write_file_attrs(f, ("frames", "flow", "diff"), settings, [video_id])


@pytest.fixture(scope="module")
def clips(shared_data: Path) -> dict[str, np.ndarray]:
    return {
        "ApplyEyeMakeup/v_a": _real_frames(shared_data / "ucf101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", 20, (60, 81)),
        "Archery/v_b": _real_frames(shared_data / "ucf101/Archery/example.avi", 7, (60, 81)),
    }


@pytest.fixture(scope="module", params=["jpeg", "raw"])
def dataset_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                clips: dict[str, np.ndarray]) -> Path:
    root = tmp_path_factory.mktemp(f"ds_{request.param}")
    (root / "shards").mkdir()
    parts = []
    for i, (vid, frames) in enumerate(clips.items()):
        parts.append(root / f"part{i}.h5")
        _write_part(parts[-1], vid, frames, request.param, vid.split("/")[0])
    settings = {"frames": {"image_format": request.param}, "flow": {"bound": BOUND}, "diff": {}}
    ids = shards.copy_videos(parts, root / "shards/00000.h5", settings)
    assert ids == list(clips)
    index = Index(classes=sorted({v.split("/")[0] for v in clips}))
    add_shard(index, root, "shards/00000.h5")
    save_index(root, index)
    return root


def test_frames_flow_and_diff_read_back(dataset_dir: Path, clips: dict[str, np.ndarray]) -> None:
    ds = Dataset(dataset_dir)
    assert [v.id for v in ds.videos] == sorted(clips) and ds.classes == ["ApplyEyeMakeup", "Archery"]
    assert all(ds.has_stream(s) for s in ("frames", "flow", "diff")) and ds.flow_bound == BOUND
    raw = ds.settings["frames"]["image_format"] == "raw"
    for vid, frames in clips.items():
        rec = ds.video(vid)
        assert (rec.n_frames, rec.height, rec.width, rec.label, rec.split) == (len(frames), 60, 81, vid.split("/")[0], "train")
        got = ds.read_frames(vid)
        assert got.dtype == np.uint8 and got.shape == frames.shape
        np.testing.assert_array_equal(got, frames if raw else np.stack([_jpeg_round_trip(f) for f in frames]))
        np.testing.assert_array_equal(ds.read_frames(vid, 2, 7, 2), got[2:7:2])
        gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.int16) for f in frames]
        diff = ds.read_diff(vid, 1, 4)
        assert diff.dtype == np.float32 and diff.shape == (3, 60, 81)
        np.testing.assert_array_equal(diff, np.stack([gray[t + 1] - gray[t] for t in range(1, 4)]))
        flow = ds.read_flow(vid)
        assert flow.shape == (len(frames) - 1, 60, 81, 2) and flow.dtype == np.float32
        np.testing.assert_array_equal(flow[1:5:3], dequantize(ds.read_flow_codes(vid, 1, 5, 3), BOUND))
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        direct = dis.calc(cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY), cv2.cvtColor(frames[1], cv2.COLOR_RGB2GRAY), None)
        assert np.abs(flow[0] - np.clip(direct, -BOUND, BOUND)).max() <= BOUND / 255 + 1e-4


def test_raw_frames_are_exact(tmp_path: Path, clips: dict[str, np.ndarray]) -> None:
    frames = clips["Archery/v_b"]
    with h5py.File(tmp_path / "p.h5", "w") as f:
        w = shards.VideoWriter(f, "x", height=60, width=81, streams=("frames",), image_format="raw")
        for rgb in frames:
            w.add_frame(rgb)
        assert w.finish(fps=30, source="s", label=None, split=None) == len(frames)
        np.testing.assert_array_equal(shards.read_frames(f["videos/x"]), frames)
        assert list(shards.iter_frames(f["videos/x"]))[3].tolist() == frames[3].tolist()


def test_ranges_and_unknown_names_are_reported(dataset_dir: Path) -> None:
    ds = Dataset(dataset_dir)
    with pytest.raises(IndexError, match="outside"):
        ds.read_frames("Archery/v_b", 0, 99)
    with pytest.raises(KeyError, match="no video 'nope'"):
        ds.read_flow("nope")
    with pytest.raises(ValueError, match="unknown stream"):
        ds.has_stream("depth")
    assert ds.read_flow("Archery/v_b", 3, 3).shape == (0, 60, 81, 2)


def test_pickles_without_handles_and_reopens(dataset_dir: Path) -> None:
    ds = Dataset(dataset_dir)
    first = ds.read_frames("Archery/v_b", 0, 2)
    assert ds._files  # a handle is open now
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._files == {}
    np.testing.assert_array_equal(copy.read_frames("Archery/v_b", 0, 2), first)
    ds.close()
    copy.close()


def test_missing_or_foreign_index_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"index.json: no dataset index"):
        Dataset(tmp_path)
    (tmp_path / "index.json").write_text('{"format": "other"}')
    with pytest.raises(DatasetError, match="not a vssl-dataset index"):
        load_index(tmp_path)


def test_videos_lacking_a_stream_are_left_out(dataset_dir: Path, tmp_path: Path) -> None:
    import json
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(dataset_dir, root)
    index = json.loads((root / "index.json").read_text())
    del index["videos"]["Archery/v_b"]["shards"]["flow"]  # e.g. its flow run failed after frames were stored
    (root / "index.json").write_text(json.dumps(index))
    ds = Dataset(root)
    assert [v.id for v in ds.videos] == ["ApplyEyeMakeup/v_a"] and ds.incomplete == ["Archery/v_b"]
    assert ds.has_stream("flow") and ds.has_stream("frames")
    with pytest.raises(KeyError, match="lacks a stream"):
        ds.read_frames("Archery/v_b")


def test_index_saver_writes_at_most_every_interval(tmp_path: Path) -> None:
    index = Index(source="in", classes=["a"], videos={"a/v": {"path": "a/v.avi", "shards": {"frames": "s/0.h5"}}},
                  failures={"a/w": {"path": "a/w.avi", "reason": "zero bytes"}})
    saver = IndexSaver(tmp_path, index, interval_s=3600)
    saver.changed()
    assert not (tmp_path / "index.json").exists()  # the interval has not passed
    saver.save()
    assert load_index(tmp_path) == index
    index.failures.clear()
    saver.changed()
    assert load_index(tmp_path).failures  # not written again yet
    IndexSaver(tmp_path, index, interval_s=0).changed()
    assert load_index(tmp_path) == index and not list(tmp_path.glob("*.tmp-*"))
