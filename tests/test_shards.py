"""Shard reading with per-video lookups done once (shards.StoredVideo, Dataset's reader cache) and
frames added as JPEG bytes only, on real frames."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import cv2
import h5py
import hdf5plugin
import numpy as np
import pytest
import zstandard

from preprocess import dataset as dataset_module
from preprocess import decode, shards
from preprocess.dataset import Dataset
from preprocess.index import Index, add_shard, save_index

SIZE = (40, 52)


@pytest.fixture(scope="module")
def videos(shared_data: Path) -> dict[str, np.ndarray]:
    """Three short real clips, RGB uint8 [T,40,52,3] (T = 21, 9, 14)."""
    picks = {"a/one": ("ucf101/Archery/example.avi", 21), "b/two": ("kth/person01_boxing_d1_uncomp.avi", 9),
             "c": ("natural_videos/carphone_pristine.mp4", 14)}
    out = {}
    for video_id, (clip, n) in picks.items():
        frames = []
        for rgb in decode.iter_frames(shared_data / clip, size=SIZE):
            frames.append(rgb)
            if len(frames) == n:
                break
        out[video_id] = np.stack(frames)
    return out


def _jpeg(rgb: np.ndarray) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.reshape(-1)


@pytest.fixture(scope="module")
def dataset_dir(videos: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset of one shard: JPEG frames (added as bytes), flow codes and differences (arbitrary but known)."""
    root = tmp_path_factory.mktemp("ds")
    (root / "shards").mkdir()
    with h5py.File(root / "shards/00000.h5", "w") as f:
        for video_id, frames in videos.items():
            w = shards.VideoWriter(f, video_id, height=SIZE[0], width=SIZE[1], streams=("frames", "flow", "diff"))
            for t, rgb in enumerate(frames):
                w.add_jpeg(_jpeg(rgb))
                if t:
                    w.add_flow(np.stack([frames[t, ..., 0], frames[t - 1, ..., 1]], axis=-1))
                    w.add_diff(frames[t, ..., 2].astype(np.int16) - frames[t - 1, ..., 2])
            w.finish(fps=25.0, source=f"/src/{video_id}.avi", label=video_id[0], split=None)
        shards.write_file_attrs(f, ("frames", "flow", "diff"), {"frames": {}, "flow": {"bound": 20.0}, "diff": {}},
                                list(videos))
    index = Index()
    add_shard(index, root, "shards/00000.h5")
    save_index(root, index)
    return root


def _decoded(videos: dict[str, np.ndarray], video_id: str) -> np.ndarray:
    """The frames as stored: JPEG round trip decoded with OpenCV directly."""
    return np.stack([cv2.imdecode(_jpeg(rgb), cv2.IMREAD_COLOR)[..., ::-1] for rgb in videos[video_id]])


def test_stored_video_reads_match_independent_decoding(dataset_dir: Path, videos: dict[str, np.ndarray]) -> None:
    with h5py.File(dataset_dir / "shards/00000.h5") as f:
        assert json.loads(f.attrs["written_by"]) == {"h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version,
                                                     "zstandard": zstandard.__version__}
        for video_id, frames in videos.items():
            stored = shards.StoredVideo(f[f"videos/{video_id}"])
            expected = _decoded(videos, video_id)
            assert stored.frame_shape == SIZE
            for start, stop, step in ((0, None, 1), (2, 9, 3), (len(frames) - 1, None, 2), (4, 4, 1)):
                np.testing.assert_array_equal(stored.read_frames(start, stop, step), expected[start:stop:step])
            np.testing.assert_array_equal(np.stack(list(stored.iter_frames())), expected)
            assert [j.tobytes() for j in stored.iter_jpeg()] == [_jpeg(rgb).tobytes() for rgb in frames]
            np.testing.assert_array_equal(stored.read_items("diff", 1, 5),
                                          frames[2:6, ..., 2].astype(np.int16) - frames[1:5, ..., 2])
            with pytest.raises(IndexError, match=r"range \[0:99:1\]"):
                stored.read_frames(0, 99)


def test_dataset_keeps_one_reader_per_video_and_stream(dataset_dir: Path, videos: dict[str, np.ndarray],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset_module, "OPEN_VIDEOS", 2)
    with Dataset(dataset_dir) as ds:
        first = ds._stored("a/one", "frames")
        assert ds._stored("a/one", "frames") is first
        np.testing.assert_array_equal(ds.read_frames("a/one", 3, 8), _decoded(videos, "a/one")[3:8])
        ds.read_diff("b/two")
        assert list(ds._open) == [("a/one", "frames"), ("b/two", "diff")]
        codes = ds.read_flow_codes("c", 0, 4)  # a third reader: the oldest is dropped
        assert list(ds._open) == [("b/two", "diff"), ("c", "flow")]
        np.testing.assert_array_equal(codes[..., 0], videos["c"][1:5, ..., 0])
        np.testing.assert_array_equal(ds.read_frames("a/one", 3, 8), _decoded(videos, "a/one")[3:8])
        clone = pickle.loads(pickle.dumps(ds))
        assert clone._open == {} and clone._files == {}
        np.testing.assert_array_equal(clone.read_frames("c", 5, 6), _decoded(videos, "c")[5:6])
        clone.close()
        with pytest.raises(KeyError, match="no video 'nope'"):
            ds.read_frames("nope")
    assert ds._open == {} and ds._files == {}


def test_dataset_readers_are_not_inherited_by_a_forked_process(dataset_dir: Path,
                                                               videos: dict[str, np.ndarray]) -> None:
    ds = Dataset(dataset_dir)
    parent_reader = ds._stored("a/one", "frames")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must open its own handles, and read the right frames
        ok = ds._stored("a/one", "frames") is not parent_reader and np.array_equal(
            ds.read_frames("a/one", 0, 2), _decoded(videos, "a/one")[:2])
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    ds.close()


def test_frames_are_counted_without_storing_when_frames_are_not_a_stream(tmp_path: Path,
                                                                         videos: dict[str, np.ndarray]) -> None:
    frames = videos["b/two"]
    with h5py.File(tmp_path / "p.h5", "w") as f:
        w = shards.VideoWriter(f, "x", height=SIZE[0], width=SIZE[1], streams=("diff",))
        with pytest.raises(ValueError, match="frames are not a stream of this file"):
            w.add_jpeg(_jpeg(frames[0]))
        for t in range(len(frames)):
            w.count_frame()
            if t:
                w.add_diff(np.zeros(SIZE, np.int16))
        assert w.finish(fps=25.0, source="x", label=None, split=None) == len(frames)
        assert "frames_jpeg" not in f["videos/x"]
        raw = shards.VideoWriter(f, "y", height=SIZE[0], width=SIZE[1], streams=("frames",), image_format="raw")
        with pytest.raises(ValueError, match="image_format raw: pass the frame's pixels"):
            raw.add_jpeg(_jpeg(frames[0]))
        with pytest.raises(ValueError, match="frames are a stream of this file"):
            raw.count_frame()


def test_items_written_as_compressed_chunks_read_back_through_the_declared_filter(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    flows = rng.integers(120, 136, (19, *SIZE, 2), dtype=np.uint8)  # 19 items: one full slab and a partial one
    diffs = rng.integers(-300, 300, (19, *SIZE), dtype=np.int16)
    rgb = np.broadcast_to(np.arange(20)[:, None, None, None] * 9 + np.arange(SIZE[1])[:, None], (20, *SIZE, 3))
    rgb = rgb.astype(np.uint8)
    with h5py.File(tmp_path / "p.h5", "w") as f:
        w = shards.VideoWriter(f, "v", height=SIZE[0], width=SIZE[1], streams=("frames", "flow", "diff"),
                               image_format="raw")
        with pytest.raises(ValueError, match=r"flow: item int64\[.*\], expected uint8"):
            w.add_flow(flows[0].astype(np.int64))
        for t in range(20):
            w.add_frame(rgb[t])
            if t:
                w.add_flow(flows[t - 1])
                w.add_diff(diffs[t - 1])
        w.finish(fps=25.0, source="x", label=None, split=None)
    with h5py.File(tmp_path / "p.h5", "r") as f:  # plain h5py: the chunks go through the Zstandard filter
        for name, expected in (("frames", rgb), ("flow", flows), ("diff", diffs)):
            dataset = f[f"videos/v/{name}"]
            assert dataset.id.get_create_plist().get_filter(0)[0] == hdf5plugin.ZSTD_ID
            assert dataset.id.get_storage_size() < expected.nbytes  # stored compressed
            np.testing.assert_array_equal(dataset[()], expected)
            np.testing.assert_array_equal(dataset[5:7], expected[5:7])
