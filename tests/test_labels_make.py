"""make-labels end to end: a tiny dataset of real ARID clips (128x171 frames, DIS flow) written with the
dataset's shard writer, labelled on 2 Dask workers; resume, failure reporting, settings guard, storage."""
from __future__ import annotations

import fcntl
import json
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from cli import cli
from preprocess.streams import crop
from labels.curriculum import motion_score
from labels.families import ClipView
from labels.job import label_video_clips
from labels.make import LabelSummary, make_labels
from labels.settings import LabelSettings
from labels.stats import appearance_statistics, motion_statistics
from labels.store import LabelError, load_clip_labels, part_path
from preprocess import shards
from preprocess.dataset import Dataset
from preprocess.flow_codec import quantize
from preprocess.index import Index, add_shard, save_index
from common.runner import ClusterSettings

BOUND = 20.0
CLIPS = {  # video id -> (source under ../shared/data, frames kept, frame size)
    "Turn/Turn_1_42": ("arid/train/Turn/Turn_1_42.mp4", 33, (128, 171)),
    "Jump/Jump_8_3": ("arid/train/Jump/Jump_8_3.mp4", 20, (128, 171)),
    "Jump/small": ("arid/train/Jump/Jump_8_6.mp4", 17, (96, 128)),  # too small for a 112 crop at (8, 29)
}
SETTINGS = LabelSettings(crop_variants=[(8, 29, False), (8, 29, True), (16, 59, False)])


def _decode(path: Path, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < n:
        ok, bgr = capture.read()
        assert ok, f"{path}: fewer than {n} frames"
        frames.append(cv2.cvtColor(cv2.resize(bgr, size[::-1], interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def _write_video(path: Path, video_id: str, source: Path, n: int, size: tuple[int, int]) -> None:
    """One part file as extraction writes it: JPEG frames, DIS flow of the decoded-back frames, quantized."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    with h5py.File(path, "w") as f:
        writer = shards.VideoWriter(f, video_id, height=size[0], width=size[1], streams=("frames", "flow"))
        previous = None
        for rgb in _decode(source, n, size):
            jpeg = shards.encode_jpeg(rgb, 90)
            writer.add_frame(rgb, jpeg)
            gray = cv2.cvtColor(shards.decode_jpeg(jpeg), cv2.COLOR_RGB2GRAY)
            if previous is not None:
                writer.add_flow(quantize(dis.calc(previous, gray, None), BOUND))
            previous = gray
        writer.finish(fps=30.0, source=str(source), label=video_id.split("/")[0], split="train")
        settings = {"frames": {"image_format": "jpeg"}, "flow": {"algo": "dis", "bound": BOUND}}
        shards.write_file_attrs(f, ("frames", "flow"), settings, [video_id])


@pytest.fixture(scope="module")
def dataset_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("arid_ds")
    (root / "shards").mkdir()
    index = Index(classes=["Jump", "Turn"])
    for i, (video_id, (source, n, size)) in enumerate(CLIPS.items()):
        _write_video(root / "shards" / f"{i:05d}.h5", video_id, shared_data / source, n, size)
        add_shard(index, root, f"shards/{i:05d}.h5")
    save_index(root, index)
    return root


@pytest.fixture(scope="module")
def first_run(dataset_dir: Path) -> LabelSummary:
    return make_labels(dataset_dir, SETTINGS, ["stats", "curriculum"], cluster=ClusterSettings(workers=2),
                       progress=False)


def test_failure_is_recorded_by_path_and_reason(first_run: LabelSummary, shared_data: Path) -> None:
    for task in first_run.tasks:
        assert task.labelled == 2 and task.already_done == 0
        assert list(task.failed) == ["Jump/small"]
        failure = task.failed["Jump/small"]
        assert failure["path"] == str(shared_data / CLIPS["Jump/small"][0])
        assert "does not fit in 96x128 frames" in failure["reason"]
    for task in ("stats", "curriculum"):
        recorded = json.loads((Path(first_run.labels_dir) / task / "failures.json").read_text())
        assert set(recorded) == {"Jump/small"}


def test_stored_labels_equal_direct_computation(first_run: LabelSummary, dataset_dir: Path) -> None:
    labels = load_clip_labels(dataset_dir)
    # Turn: 33 frames -> clips at 0, 16; Jump: 20 frames -> clip at 0; 3 crop variants each
    assert len(labels) == 9 and labels.clip_len == 16 and labels.crop_size == 112
    assert sorted(set(zip(labels.video_id.tolist(), labels.start.tolist()))) == [
        ("Jump/Jump_8_3", 0), ("Turn/Turn_1_42", 0), ("Turn/Turn_1_42", 16)]
    assert labels.crop.tolist()[:3] == [[8, 29], [8, 29], [16, 59]] and labels.flip.tolist()[:3] == [False, True, False]
    dataset = Dataset(dataset_dir)
    for row in range(len(labels)):
        video_id, start = str(labels.video_id[row]), int(labels.start[row])
        (y, x), flip = labels.crop[row], bool(labels.flip[row])
        flow = crop(dataset.read_flow(video_id, start, start + 15), y, x, 112, flip, "flow")
        frames = np.ascontiguousarray(crop(dataset.read_frames(video_id, start, start + 16), y, x, 112, flip))
        np.testing.assert_array_equal(labels.motion[row], motion_statistics(flow[..., 0], flow[..., 1]))
        np.testing.assert_array_equal(labels.appearance[row], appearance_statistics(frames))
        assert labels.score[row] == np.float32(motion_score(flow[..., 0], flow[..., 1]))
    assert labels.motion.dtype == np.int64 and labels.score.dtype == np.float32
    assert 1 <= labels.motion.min() and labels.motion.max() <= 16


def test_second_run_does_nothing_new(first_run: LabelSummary, dataset_dir: Path) -> None:
    stats_file = Path(first_run.labels_dir) / "stats" / "stats.h5"
    before = stats_file.stat().st_mtime_ns
    again = make_labels(dataset_dir, SETTINGS, ["stats", "curriculum"], cluster=ClusterSettings(workers=2),
                        progress=False)
    for task in again.tasks:
        assert (task.labelled, task.already_done, list(task.failed)) == (0, 2, ["Jump/small"])
    assert stats_file.stat().st_mtime_ns == before


def test_both_tasks_in_one_pass_and_a_missing_task_alone(dataset_dir: Path, tmp_path: Path) -> None:
    class CountingDataset(Dataset):
        flow_reads = frame_reads = 0

        def read_flow(self, *args, **kwargs):
            CountingDataset.flow_reads += 1
            return super().read_flow(*args, **kwargs)

        def read_frames(self, *args, **kwargs):
            CountingDataset.frame_reads += 1
            return super().read_frames(*args, **kwargs)

    both = label_video_clips(CountingDataset(dataset_dir), "Turn/Turn_1_42", ("stats", "curriculum"), SETTINGS)
    # two clips, each stream read once per clip for both tasks and all three crop variants
    assert (CountingDataset.flow_reads, CountingDataset.frame_reads) == (2, 2)
    label_video_clips(CountingDataset(dataset_dir), "Turn/Turn_1_42", ("curriculum",), SETTINGS)
    assert (CountingDataset.flow_reads, CountingDataset.frame_reads) == (4, 2)  # curriculum declares flow only
    alone = {task: label_video_clips(Dataset(dataset_dir), "Turn/Turn_1_42", (task,), SETTINGS)[task]
             for task in ("stats", "curriculum")}
    for task, labels in alone.items():
        np.testing.assert_array_equal(both[task].start, labels.start)
        for name, values in labels.values.items():
            np.testing.assert_array_equal(both[task].values[name], values)
    with pytest.raises(ValueError, match=r"unknown label task 'motion' \(known: clusters, curriculum, fisher, idt, stats\)"):
        label_video_clips(Dataset(dataset_dir), "Turn/Turn_1_42", ("motion",), SETTINGS)

    labels_dir = tmp_path / "labels"

    def run(tasks: list[str]) -> dict[str, tuple[int, int]]:
        summary = make_labels(dataset_dir, SETTINGS, tasks, cluster=ClusterSettings(workers=1), labels_dir=labels_dir,
                              progress=False)
        return {t.task: (t.labelled, t.already_done) for t in summary.tasks}
    assert run(["stats"]) == {"stats": (2, 0)}
    stats_part = part_path(labels_dir, "stats", "Turn/Turn_1_42")
    before = stats_part.stat().st_mtime_ns
    assert run(["stats", "curriculum", "stats"]) == {"stats": (0, 2), "curriculum": (2, 0)}
    assert stats_part.stat().st_mtime_ns == before
    part_path(labels_dir, "curriculum", "Jump/Jump_8_3").unlink()  # as if killed between the two parts
    assert run(["stats", "curriculum"]) == {"stats": (0, 2), "curriculum": (1, 1)}
    np.testing.assert_array_equal(load_clip_labels(dataset_dir, labels_dir).score,
                                  load_clip_labels(dataset_dir).score)


def test_cli_reports_failures_and_refuses_other_settings(first_run: LabelSummary, dataset_dir: Path) -> None:
    base = ["make-labels", "--data", str(dataset_dir), "--pipeline", "stats", "--no-progress",
            "--set", "labels.crop_variants=[[8, 29, false], [8, 29, true], [16, 59, false]]"]
    result = CliRunner().invoke(cli, base)
    assert result.exit_code == 1, result.output
    assert "failed" in result.output and "Jump_8_6.mp4: " in result.output
    result = CliRunner().invoke(cli, [*base, "--set", "labels.stride=8"])
    assert result.exit_code == 2 and "stride: 16 there, 8 now" in result.output
    with pytest.raises(LabelError, match="crop_variants"):
        make_labels(dataset_dir, LabelSettings(), ["stats"], cluster=ClusterSettings(workers=1), progress=False)
    with open(Path(first_run.labels_dir) / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running make-labels holds it
        with pytest.raises(LabelError, match="another make-labels run is using this labels folder"):
            make_labels(dataset_dir, SETTINGS, ["stats"], cluster=ClusterSettings(workers=1), progress=False)


def test_crops_that_fit_no_video_are_refused_before_any_work(dataset_dir: Path, tmp_path: Path) -> None:
    too_large = LabelSettings(crop_size=256, crop_variants=[(0, 0, False), (8, 40, True)])
    sizes = ", ".join(sorted({f"{h}x{w}" for _, _, (h, w) in CLIPS.values()}))
    with pytest.raises(LabelError, match=rf"the 256x256 crops at .* need frames of at least 264x296, the videos "
                                         rf"have {sizes}: set a smaller crop_size"):
        make_labels(dataset_dir, too_large, ["stats"], cluster=ClusterSettings(workers=1), progress=False,
                    labels_dir=tmp_path / "labels")
    assert not (tmp_path / "labels").exists()


def test_missing_labels_are_reported(tmp_path: Path) -> None:
    with pytest.raises(LabelError, match="no stats labels here"):
        load_clip_labels(tmp_path)


def test_show_labels_draws_the_stored_labels(first_run: LabelSummary, dataset_dir: Path, tmp_path: Path,
                                            shared_data: Path) -> None:
    out = tmp_path / "figures/clip.png"  # its folder is made
    args = ["show-labels", "--data", str(dataset_dir), "--video", "Turn/Turn_1_42", "--start", "16", "--variant", "1",
            "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "stored labels: identical" in result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = load_clip_labels(dataset_dir)
    row = np.flatnonzero((labels.video_id == "Turn/Turn_1_42") & (labels.start == 16) & (labels.variant == 1))[0]
    assert f"motion {labels.motion[row].tolist()}" in result.output
    result = CliRunner().invoke(cli, [*args[:-2], "--variant", "7", "--out", str(out)])
    assert result.exit_code == 2 and "3 crop variants" in result.output
    small = CliRunner().invoke(cli, ["show-labels", "--data", str(dataset_dir), "--video", "Jump/small",
                                     "--out", str(out)])
    assert small.exit_code == 2 and small.output == (
        f"Error: {shared_data / CLIPS['Jump/small'][0]}: crop (y=8, x=29, size=112) does not fit frames of 96x128 "
        f"(stored in {dataset_dir})\n")
    other = CliRunner().invoke(cli, [*args[:-1], str(tmp_path / "clip.pdf")])
    assert other.exit_code == 2 and f"{tmp_path / 'clip.pdf'}: --out must name a .png, .jpg, .jpeg file" in other.output


def test_show_labels_refuses_unreadable_stored_labels(first_run: LabelSummary, dataset_dir: Path,
                                                       tmp_path: Path) -> None:
    labels_dir = tmp_path / "labels"
    (labels_dir / "stats").mkdir(parents=True)
    (labels_dir / "stats/settings.json").write_bytes((dataset_dir / "labels/stats/settings.json").read_bytes())
    (labels_dir / "stats/stats.h5").write_bytes(b"not an HDF5 file")
    out = tmp_path / "clip.png"
    result = CliRunner().invoke(cli, ["show-labels", "--data", str(dataset_dir), "--labels-dir", str(labels_dir),
                                      "--video", "Turn/Turn_1_42", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert f"{labels_dir / 'stats/stats.h5'}: unreadable labels" in result.output
    assert not out.exists()


def test_clip_view_names_a_stream_its_family_did_not_declare() -> None:
    flow = np.zeros((15, 128, 171, 2), np.float32)
    view = ClipView({"flow": flow}, 8, 29, 112, True)
    assert view.flow().shape == (15, 112, 112, 2) and view.boundaries().magnitude.shape == (2, 112, 112)
    with pytest.raises(ValueError, match=r"the frames stream was not read for this clip \(read: flow\); a family "
                                         r"that uses it lists 'frames' in its streams"):
        view.frames()
