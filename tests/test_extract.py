"""Extraction of real clips on a 2-worker Dask LocalCluster: frame counts, stored flow and differences
against direct computation, frames reused by a later flow run, settings mismatch, time limit, memory bound,
and demo data with its splits and class-dependent motion."""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Iterator

import cv2
import h5py
import numpy as np
import pytest

from preprocess import decode, shards
from preprocess import flow as flow_module
from commands.pipeline import load_pipeline
from preprocess.dataset import Dataset
from preprocess.demo_data import CLASSES, make_demo_videos
from preprocess.extract import SettingsMismatch, extract, format_summary
from preprocess.flow_codec import quantize
from common.runner import open_client
from common.runner import ClusterSettings

SMALL = {"preprocess": {"size": [48, 64], "flow": {"algo": "dis", "dis_preset": "fast", "bound": 20}}}


def _pipeline(**preprocess: object):
    section = {**SMALL["preprocess"], **preprocess}
    return load_pipeline("demo", overrides={"preprocess": section}).preprocess


def _count_frames(path: Path) -> int:
    """Frames of a video counted by decoding with OpenCV directly (independent of the project's decoder)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    return n


def _gray(frames: np.ndarray) -> list[np.ndarray]:
    return [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    with open_client(ClusterSettings(kind="local"), workers=2) as c:
        assert sorted(c.nthreads().values()) == [1, 1]  # two single-threaded worker processes
        yield c


@pytest.fixture(scope="module")
def real_clips(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Several codecs, containers and sizes, in class folders (symlinks to the shared data)."""
    root = tmp_path_factory.mktemp("real_in")
    picks = {
        "Archery/example.avi": "ucf101/Archery/example.avi",  # xvid 320x240
        "Run/Run_11_1.mp4": "arid/train/Run/Run_11_1.mp4",  # H.264, dark
        "eat/eat.mkv": "asl_gestures/eat/eat.mkv",  # mkv 640x480
        "boxing/person01_boxing_d1_uncomp.avi": "kth/person01_boxing_d1_uncomp.avi",  # uncompressed 160x120
        "misc/carphone_pristine.mp4": "natural_videos/carphone_pristine.mp4",  # 176x144
    }
    for rel, src in picks.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(shared_data / src)
    return root


def test_real_clips_on_two_workers(client: object, real_clips: Path, tmp_path: Path) -> None:
    every = 5
    out = tmp_path / "ds"
    summary = extract(real_clips, out, _pipeline(every=every, shard_mb=0.05), client=client, progress=False)
    assert summary.ok and summary.extracted == 5 and len(summary.new_shards) > 1
    ds = Dataset(out)
    assert ds.classes == ["Archery", "Run", "boxing", "eat", "misc"]
    assert all(ds.has_stream(s) for s in ("frames", "flow", "diff")) and ds.flow_bound == 20
    shard_videos = []
    for rel in summary.new_shards:
        with h5py.File(out / rel) as f:
            shard_videos += shards.read_file_attrs(f)["videos"]
    assert sorted(shard_videos) == [v.id for v in ds.videos]  # every video in exactly one shard
    flow_fn = flow_module.make_flow(ds_settings_flow(out))
    for video in ds.videos:
        assert video.n_frames == math.ceil(_count_frames(real_clips / Path(video.path).relative_to(real_clips)) / every)
        frames = ds.read_frames(video.id)
        assert frames.shape == (video.n_frames, 48, 64, 3) and (video.height, video.width) == (48, 64)
        decoded = np.stack(list(decode.iter_frames(video.path, size=(48, 64), every=every)))
        assert np.abs(frames.astype(np.int16) - decoded).mean() < 4  # stored as JPEG
        gray = _gray(decoded)  # flow and differences come from the decoded frames
        codes = ds.read_flow_codes(video.id)
        assert codes.shape == (video.n_frames - 1, 48, 64, 2)
        for t in (0, video.n_frames // 2, video.n_frames - 2):
            np.testing.assert_array_equal(codes[t], quantize(flow_fn(gray[t], gray[t + 1]), 20.0))
        diff = ds.read_diff(video.id, 2, 5)
        np.testing.assert_array_equal(diff, np.stack([gray[t + 1].astype(np.float32) - gray[t] for t in range(2, 5)]))
    assert ds.video("Archery/example").label == "Archery" and ds.video("Archery/example").fps == pytest.approx(25 / every)
    assert ds.settings["flow"]["from"] == ds.settings["diff"]["from"] == "decoded"


def test_odd_sizes_from_the_short_side_rule(client: object, shared_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "carphone.mp4").symlink_to(shared_data / "natural_videos/carphone_pristine.mp4")  # 176x144
    (src / "debate.avi").symlink_to(shared_data / "natural_videos/pres_debate.avi")  # 1280x720
    summary = extract(src, tmp_path / "ds", _pipeline(size=None, short_side=37, every=10), client=client, progress=False)
    assert summary.ok
    ds = Dataset(tmp_path / "ds")
    expected = {"carphone": (37, round(176 * 37 / 144)), "debate": (37, round(1280 * 37 / 720))}  # 37x45, 37x66
    for video in ds.videos:
        h, w = expected[video.id]
        assert (video.height, video.width) == (h, w)
        assert ds.read_frames(video.id, 0, 2).shape == (2, h, w, 3)
        assert ds.read_flow(video.id, 0, 2).shape == (2, h, w, 2) and ds.read_diff(video.id, 0, 1).shape == (1, h, w)
    assert ds.settings["frames"]["short_side"] == 37 and ds.settings["frames"]["size"] is None


def ds_settings_flow(out: Path):
    """The FlowSettings the dataset's flow was made with, rebuilt from the recorded settings."""
    recorded = Dataset(out).settings["flow"]
    return load_pipeline("demo", overrides={"preprocess": {"flow": {
        "algo": recorded["algo"], "bound": recorded["bound"], "dis_preset": recorded["params"]["preset"]}}}).preprocess.flow


def test_flow_run_reuses_stored_frames_and_other_settings_are_refused(client: object, shared_data: Path,
                                                                      tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "eat").mkdir(parents=True)
    (src / "yes").mkdir()
    shutil.copy(shared_data / "asl_gestures/eat/eat.mkv", src / "eat")
    shutil.copy(shared_data / "asl_gestures/yes/yes.mkv", src / "yes")
    out = tmp_path / "ds"
    listed = src / "list.txt"
    listed.write_text("eat/eat.mkv\nyes/yes.mkv\n")
    first = extract(listed, out, _pipeline(every=4), flow=False, client=client, progress=False)
    assert first.ok and first.extracted == 2
    ds = Dataset(out)
    assert ds.has_stream("frames") and ds.has_stream("diff") and not ds.has_stream("flow")
    frames_shard = out / first.new_shards[0]
    before = (frames_shard.stat().st_ino, frames_shard.stat().st_mtime_ns)
    for video in src.rglob("*.mkv"):
        video.unlink()  # the sources are gone: flow must come from the stored frames
    second = extract(listed, out, _pipeline(every=4), flow=True, client=client, progress=False)
    assert second.ok and second.extracted == 2 and second.new_shards != first.new_shards
    assert second.computed_from == {"flow": "stored", "diff": "decoded"}
    assert "flow computed from the stored frames; differences computed from the decoded frames" in format_summary(second)
    assert (frames_shard.stat().st_ino, frames_shard.stat().st_mtime_ns) == before
    ds = Dataset(out)
    assert ds.has_stream("flow") and (ds.settings["flow"]["from"], ds.settings["diff"]["from"]) == ("stored", "decoded")
    flow_fn = flow_module.make_flow(_pipeline().flow)
    gray = _gray(ds.read_frames("yes/yes", 3, 5))
    np.testing.assert_array_equal(ds.read_flow_codes("yes/yes", 3, 4)[0], quantize(flow_fn(gray[0], gray[1]), 20.0))
    with pytest.raises(SettingsMismatch, match=r"frames stream was extracted with other settings \(every: 4 in the dataset, 2 now\)"):
        extract(listed, out, _pipeline(every=2), flow=True, client=client, progress=False)
    with pytest.raises(SettingsMismatch, match="flow stream.*algo: 'dis' in the dataset, 'farneback' now"):
        extract(listed, out, _pipeline(every=4, flow={"algo": "farneback"}), client=client, progress=False)
    assert Dataset(out).settings == ds.settings


def test_flow_from_decoded_frames_decodes_a_video_again_whose_frames_came_earlier(
        client: object, shared_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    for word in ("eat", "yes"):
        (src / word).mkdir(parents=True)
    shutil.copy(shared_data / "asl_gestures/eat/eat.mkv", src / "eat")
    out = tmp_path / "ds"
    assert extract(src, out, _pipeline(every=4), flow=True, client=client, progress=False).ok  # flow from decoded
    shutil.copy(shared_data / "asl_gestures/yes/yes.mkv", src / "yes")
    frames_run = extract(src, out, _pipeline(every=4), flow=False, client=client, progress=False)
    assert frames_run.ok and frames_run.extracted == 1
    frames_shard = out / frames_run.new_shards[0]
    before = (frames_shard.stat().st_ino, frames_shard.stat().st_mtime_ns)
    flow_run = extract(src, out, _pipeline(every=4), flow=True, client=client, progress=False)
    assert flow_run.ok and flow_run.extracted == 1 and flow_run.already_done == 1
    assert (frames_shard.stat().st_ino, frames_shard.stat().st_mtime_ns) == before  # frames not written again
    ds = Dataset(out)
    assert ds.settings["flow"]["from"] == ds.settings["diff"]["from"] == "decoded"
    gray = _gray(np.stack(list(decode.iter_frames(src / "yes/yes.mkv", size=(48, 64), every=4))))
    flow_fn = flow_module.make_flow(_pipeline().flow)
    np.testing.assert_array_equal(ds.read_flow_codes("yes/yes", 3, 4)[0], quantize(flow_fn(gray[3], gray[4]), 20.0))
    assert ds.video("yes/yes").n_frames == len(gray)


def test_time_limit_stops_a_slow_video(client: object, shared_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "pres_debate.avi").symlink_to(shared_data / "natural_videos/pres_debate.avi")  # 1280x720
    pipeline = _pipeline(size=[720, 1280], video_timeout_s=1.5, flow={"algo": "tvl1"})  # seconds per frame pair
    summary = extract(src, tmp_path / "ds", pipeline, client=client, progress=False)
    assert summary.extracted == 0 and summary.seconds < 20
    assert summary.failed["pres_debate"]["reason"] == "timed out after 1.5 s (process killed)"
    assert not list((tmp_path / "ds/parts").iterdir())  # no partial output left behind


def test_long_video_stays_under_a_memory_bound(client: object, shared_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    video = shared_data / "natural_videos/one-by-one-person-detection.mp4"  # 139 s, 768x432
    (src / video.name).symlink_to(video)
    summary = extract(src, tmp_path / "ds", _pipeline(flow={"algo": "dis", "dis_preset": "ultrafast"}),
                      client=client, progress=False)
    assert summary.ok
    n = Dataset(tmp_path / "ds").video("one-by-one-person-detection").n_frames
    assert n == 1394
    decoded_mb = n * 768 * 432 * 3 / 2**20  # the whole video held in memory
    assert decoded_mb > 1300 and summary.peak_rss_mb < 400


def test_demo_videos_have_splits_and_class_dependent_motion(client: object, tmp_path: Path) -> None:
    make_demo_videos(tmp_path / "demo", videos_per_class=2, n_frames=12, test_per_class=1, seed=3)
    pipeline = load_pipeline("demo").preprocess
    summary = extract(tmp_path / "demo", tmp_path / "ds", pipeline, client=client, progress=False)
    assert summary.ok and summary.extracted == 8
    ds = Dataset(tmp_path / "ds")
    assert ds.classes == sorted(CLASSES)
    assert {v.id: v.split for v in ds.videos if v.label == "zoom"} == {"zoom/v_zoom_g01_c01": "train",
                                                                       "zoom/v_zoom_g02_c01": "test"}
    for video in ds.videos:
        assert video.n_frames == 12 and (video.height, video.width) == tuple(pipeline.size)
        flow = ds.read_flow(video.id)
        moving = np.linalg.norm(flow, axis=-1) > 0.4
        u, v = flow[..., 0][moving], flow[..., 1][moving]
        du_dx = np.gradient(flow[..., 0], axis=2)[moving]
        dv_dy = np.gradient(flow[..., 1], axis=1)[moving]
        if video.label == "move_right":
            assert np.median(u) > 0.5 and abs(np.median(v)) < 0.2 * np.median(u)
        elif video.label == "move_down":
            assert np.median(v) > 0.5 and abs(np.median(u)) < 0.2 * np.median(v)
        elif video.label == "zoom":
            assert np.mean(du_dx + dv_dy) > 0.005  # expanding: positive divergence
        else:
            curl = (np.gradient(flow[..., 1], axis=2) - np.gradient(flow[..., 0], axis=1))[moving]
            assert abs(np.mean(curl)) > abs(np.mean(du_dx + dv_dy))  # rotation: curl dominates divergence


def test_a_killed_worker_is_replaced_and_its_video_redone(client: object, shared_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    words = ["again", "bird", "book", "brother", "help", "learn"]
    for word in words:
        (src / word).mkdir(parents=True)
        (src / word / f"{word}.mkv").symlink_to(shared_data / f"asl_gestures/{word}/{word}.mkv")
    out = tmp_path / "ds"
    victim = next(iter(client.run(os.getpid).values()))
    killed = threading.Event()

    def kill_a_worker_mid_video() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed.is_set():
            if any(".tmp-" in p.name for p in (out / "parts").glob("*")):
                os.kill(victim, signal.SIGKILL)
                killed.set()
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_worker_mid_video)
    killer.start()
    try:
        summary = extract(src, out, _pipeline(size=[96, 128], flow={"algo": "dis", "dis_preset": "medium"}),
                          client=client, progress=False)
    finally:
        killed.set()
        killer.join()
    assert summary.ok and summary.extracted == len(words)
    ds = Dataset(out)
    assert sorted(v.id for v in ds.videos) == sorted(f"{w}/{w}" for w in words)
    assert all(ds.read_flow_codes(v.id).shape[0] == v.n_frames - 1 for v in ds.videos)
    assert not list((out / "parts").iterdir())
    deadline = time.monotonic() + 30
    while len(client.nthreads()) < 2 and time.monotonic() < deadline:  # the nanny restarts the worker
        time.sleep(0.2)
    assert victim not in client.run(os.getpid).values()


def test_a_dataset_in_use_or_a_foreign_folder_is_refused(shared_data: Path, tmp_path: Path) -> None:
    import fcntl

    from preprocess.index import DatasetError

    src = tmp_path / "in"
    src.mkdir()
    (src / "eat.mkv").symlink_to(shared_data / "asl_gestures/eat/eat.mkv")
    busy = tmp_path / "busy"
    busy.mkdir()
    with open(busy / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running extraction holds it
        with pytest.raises(DatasetError, match="another extraction is running on this dataset"):
            extract(src, busy, _pipeline(), progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("...")
    with pytest.raises(DatasetError, match="is not empty and holds no index.json"):
        extract(src, foreign, _pipeline(), progress=False)
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]


def test_a_shard_of_an_ended_run_is_not_published(shared_data: Path, tmp_path: Path) -> None:
    from preprocess.extract import pack_shard
    from common.locks import exclusive
    from preprocess.video_task import VideoJob, extract_video

    root = tmp_path / "ds"
    (root / "shards").mkdir(parents=True)
    part = tmp_path / "part.h5"
    settings = _pipeline()
    extract_video(VideoJob("eat/eat", str(shared_data / "asl_gestures/eat/eat.mkv"), "eat", None, ("frames",),
                           settings), str(part))
    with h5py.File(part) as f:
        recorded = {"frames": json.loads(f.attrs["settings"])["frames"]}
    with exclusive(root / ".lock", RuntimeError("busy")) as old_token:
        pass  # a run that was killed: a new one holds the dataset now
    with exclusive(root / ".lock", RuntimeError("busy")) as token:
        with pytest.raises(RuntimeError, match="the extraction that asked for this shard has ended"):
            pack_shard([str(part)], str(root / "shards/00000.h5"), recorded, old_token)
        assert list((root / "shards").iterdir()) == [] and part.exists()
        assert pack_shard([str(part)], str(root / "shards/00000.h5"), recorded, token) == ["eat/eat"]


def test_runner_keeps_few_tasks_in_flight_and_returns_every_outcome(client: object) -> None:
    from common.runner import Task, run_tasks

    tasks = [Task(f"item{i}", f"/src/{i}", None, {None: i * i}) for i in range(12)]
    tasks.append(Task("bad", "/src/bad", None, "not a dict"))  # dict.get("not a dict", None): TypeError
    outcomes = {o.key: o for o in run_tasks(client, dict.get, tasks, time_limit_s=30, progress=False, max_in_flight=2)}
    assert {k: o.result for k, o in outcomes.items() if o.status == "done"} == {f"item{i}": i * i for i in range(12)}
    assert outcomes["bad"].status == "failed" and outcomes["bad"].reason.startswith("TypeError: ")
    assert outcomes["bad"].source == "/src/bad"
