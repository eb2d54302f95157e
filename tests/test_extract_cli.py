"""The extraction CLI as a user runs it: corrupt inputs and exit status, resume after SIGKILL, inspect."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import pytest

from preprocess import shards
from preprocess.dataset import Dataset

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--pipeline", "demo", "--size", "48", "64", "--no-progress", "--workers", "2"]


def _cli(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], capture_output=True, text=True,
                          timeout=240, **kwargs)


def test_corrupt_inputs_are_recorded_and_the_rest_completes(shared_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "good.mkv").symlink_to(shared_data / "asl_gestures/eat/eat.mkv")
    whole = (shared_data / "natural_videos/carphone_pristine.mp4").read_bytes()
    (src / "truncated.mp4").write_bytes(whole[: len(whole) // 2])  # the index (moov) is at the end: lost
    (src / "empty.mp4").write_bytes(b"")
    (src / "notes.mp4").write_text("these are not video frames\n" * 20)
    out = tmp_path / "ds"
    run = _cli("extract-flow", src, out, *FAST, "--every", "3")
    assert run.returncode == 1, run.stderr
    index = json.loads((out / "index.json").read_text())
    assert sorted(index["failures"]) == ["empty", "notes", "truncated"]
    for vid, failure in index["failures"].items():
        assert failure["path"] == str(src / f"{vid}.mp4") and failure["reason"]
        assert f"{src / vid}.mp4: " in run.stdout  # the end-of-run report names every failed file
    assert list(index["videos"]) == ["good"] and Dataset(out).video("good").n_frames == 16  # 47 frames, every 3
    report = _cli("inspect", out)
    assert report.returncode == 0 and "videos: 1 extracted, 3 failed" in report.stdout
    assert str(src / "empty.mp4") in report.stdout
    again = _cli("extract-flow", src, out, *FAST, "--every", "3")  # nothing to redo; failures still reported
    assert again.returncode == 1 and "0 extracted now, 1 already complete, 3 failed" in again.stdout
    refused = _cli("extract-flow", src, out, *FAST, "--every", "2")
    assert refused.returncode == 2 and "every: 3 in the dataset, 2 now" in refused.stderr


def _shard_state(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "shards").glob("*.h5")}


def test_resume_after_the_client_is_killed(shared_data: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    words = ["again", "bird", "book", "brother", "eat", "help", "hungry", "learn"]
    for word in words:
        (src / word).mkdir(parents=True)
        (src / word / f"{word}.mkv").symlink_to(shared_data / f"asl_gestures/{word}/{word}.mkv")
    out = tmp_path / "ds"
    args = ["extract-flow", src, out, "--pipeline", "demo", "--size", "96", "128", "--dis-preset", "medium",
            "--workers", "1", "--shard-mb", "0.01", "--no-progress"]  # one shard per video
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list((out / "shards").glob("*.h5")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = _shard_state(out)
    assert 1 <= len(first) < len(words), "the run must be killed part-way"
    time.sleep(1.0)  # the killed client's workers and sandboxes exit with it (zombies may await reaping)
    states = subprocess.run(["ps", "-o", "stat=", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert [s for s in states if not s.startswith("Z")] == [], "processes of the killed run still alive"
    run = _cli(*args)
    assert run.returncode == 0, run.stderr
    after = _shard_state(out)
    assert {k: after[k] for k in first} == first  # completed shards untouched (same inode and mtime)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name] and not list((out / "parts").iterdir())
    ids = []
    for name in after:
        with h5py.File(out / "shards" / name) as f:
            ids += shards.read_file_attrs(f)["videos"]
    assert sorted(ids) == sorted(f"{w}/{w}" for w in words)  # every video exactly once
    ds = Dataset(out)
    assert len(ds) == len(words) and all(ds.read_flow(v.id).shape[0] == v.n_frames - 1 for v in ds.videos)
    assert "0 failed" in run.stdout and f"{len(words)} input videos" in run.stdout


def test_extraction_on_a_running_cluster_by_address(shared_data: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    src = tmp_path / "in"
    for word in ("eat", "yes"):
        (src / word).mkdir(parents=True)
        (src / word / f"{word}.mkv").symlink_to(shared_data / f"asl_gestures/{word}/{word}.mkv")
    out = tmp_path / "ds"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        run = _cli("extract-flow", src, out, "--pipeline", "demo", "--size", "48", "64", "--no-progress",
                   "--scheduler", cluster.scheduler_address)
        assert run.returncode == 0, run.stderr
        assert len(cluster.workers) == 1  # the cluster outlives the client that used it
    ds = Dataset(out)
    assert sorted(v.id for v in ds.videos) == ["eat/eat", "yes/yes"] and ds.has_stream("flow")


@pytest.mark.parametrize("command", ["extract-frames", "extract-flow", "inspect", "make-demo-data"])
def test_every_command_documents_its_options(command: str) -> None:
    run = _cli(command, "--help")
    text = " ".join(run.stdout.split())
    assert run.returncode == 0 and "Usage:" in text
    if command.startswith("extract"):
        assert "--workers" in text and "--scheduler" in text and "[default: stats]" in text


def test_make_demo_data_writes_ucf101_layout(tmp_path: Path) -> None:
    run = _cli("make-demo-data", tmp_path / "demo", "--videos-per-class", "2", "--frames", "5", "--test-per-class", "1")
    assert run.returncode == 0 and "8 demo videos" in run.stdout
    videos = sorted(p.relative_to(tmp_path / "demo").as_posix() for p in (tmp_path / "demo").rglob("*.avi"))
    assert len(videos) == 8 and videos[0] == "move_down/v_move_down_g01_c01.avi"
    train = (tmp_path / "demo/trainlist01.txt").read_text().split("\n")
    test = (tmp_path / "demo/testlist01.txt").read_text().split()
    assert "move_down/v_move_down_g01_c01.avi 2" in train and "move_down/v_move_down_g02_c01.avi" in test
    cap = cv2.VideoCapture(str(tmp_path / "demo" / videos[0]))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == 128


def test_every_extraction_option_reaches_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each option of extract-flow lands in the preprocess settings (or the call) it names, over the pipeline."""
    from click.testing import CliRunner

    from cli import cli
    from preprocess.extract import ExtractSummary

    calls = []

    def record(input_path, output, settings, **kwargs):
        calls.append((settings, kwargs))
        return ExtractSummary(dataset=str(output), videos=0, already_done=0, extracted=0, failed={}, new_shards=[],
                              seconds=0.0, peak_rss_mb=0.0)

    monkeypatch.setattr("preprocess.extract.extract", record)
    (tmp_path / "splits").mkdir()
    args = ["extract-flow", str(tmp_path), str(tmp_path / "ds"), "--pipeline", "stats", "--size", "60", "80",
            "--fps", "12.5", "--every", "2", "--image-format", "raw", "--jpeg-quality", "70", "--no-diff",
            "--shard-mb", "8", "--video-timeout", "30", "--workers", "3", "--cluster", "local", "--splits",
            str(tmp_path / "splits"), "--split-number", "2", "--retry-failed", "--no-progress", "--algo", "tvl1_torch",
            "--bound", "12", "--dis-preset", "fast", "--flow-device", "cpu", "--flow-batch", "4", "--motion-boundaries"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    (settings, kwargs), = calls
    assert (settings.size, settings.fps, settings.every, settings.image_format, settings.jpeg_quality, settings.diff,
            settings.shard_mb, settings.video_timeout_s, settings.motion_boundaries) == (
        (60, 80), 12.5, 2, "raw", 70, False, 8.0, 30.0, True)
    assert (settings.flow.algo, settings.flow.bound, settings.flow.dis_preset, settings.flow.device,
            settings.flow.batch) == ("tvl1_torch", 12.0, "fast", "cpu", 4)
    assert (kwargs["flow"], kwargs["workers"], kwargs["cluster"].kind, kwargs["splits"], kwargs["split_number"],
            kwargs["retry_failed"], kwargs["progress"]) == (True, 3, "local", tmp_path / "splits", 2, True, False)
    short = CliRunner().invoke(cli, ["extract-frames", str(tmp_path), str(tmp_path / "ds"), "--short-side", "90"])
    assert short.exit_code == 0, short.output
    assert (calls[-1][0].size, calls[-1][0].short_side, calls[-1][1]["flow"]) == (None, 90, False)
    both = CliRunner().invoke(cli, ["extract-frames", str(tmp_path), str(tmp_path / "ds"), "--short-side", "90",
                                    "--size", "60", "80"])
    assert both.exit_code == 2 and "give --size or --short-side, not both" in both.output
