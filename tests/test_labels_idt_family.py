"""The IDT label families end to end on real clips: idt (per video) -> fisher (fit on a sample, then encode
per video) -> clusters (one k-means over all videos, again only when its inputs changed), on Dask, resumable,
failures per video."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import normalized_mutual_info_score

from cli import cli
from commands.pipeline import load_cluster, load_pipeline
from common.settings import parse_overrides
from labels.clusters import kmeans_assignments
from labels.families.fisher import ENCODER_FILE, SKETCH_FILE
from labels.fisher import FisherEncoder
from labels.idt import dense_trajectories, dense_trajectories_from_frames
import labels.families.clusters
from labels.make import format_summary, make_labels
from labels.sketch import CountSketch
from labels.store import (FORMAT, VERSION, claim_settings, consolidated_path, family_dir, part_path, read_arrays,
                          read_settings, write_arrays)
from preprocess.decode import iter_frames
from preprocess.extract import extract

CLIPS = ["Jump/Jump_8_3.mp4", "Jump/Jump_8_6.mp4", "Run/Run_11_11.mp4", "Run/Run_11_1.mp4",
         "Walk/Walk_10_1.mp4", "Walk/Walk_10_10.mp4",
         "Turn/Turn_1_42.mp4"]  # a dark turn: no trajectory survives at 90x120 (as for the static clip)
IDT = "labels.idt={size: [90, 120]}"
FISHER = "labels.fisher={gmm_components: 3, gmm_n_init: 1, gmm_max_iter: 20, rows_per_video: 100, sketch_dim: 64}"


def settings():
    overrides = parse_overrides([IDT, FISHER, "labels.tasks=[idt, fisher, clusters]"])
    return load_pipeline("stats", overrides=overrides).labels


@pytest.fixture(scope="module")
def dataset_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("idt_family")
    static = root / "Still" / "still.avi"  # no motion at all: no trajectory survives
    static.parent.mkdir()
    writer = cv2.VideoWriter(str(static), cv2.VideoWriter_fourcc(*"MJPG"), 25, (120, 90))
    frame = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    for _ in range(30):
        writer.write(frame)
    writer.release()
    listing = root / "videos.txt"
    paths = [shared_data / "arid/train" / clip for clip in CLIPS]
    listing.write_text("".join(f"{p} {p.parent.name}\n" for p in paths) + f"{static} Still\n")
    overrides = parse_overrides(["preprocess.size=[60, 80]"])
    summary = extract(listing, root / "dataset", load_pipeline("stats", overrides=overrides).preprocess,
                      flow=False, workers=1, progress=False)
    assert summary.ok, summary.failed
    return root / "dataset"


@pytest.fixture(scope="module")
def first_run(dataset_dir: Path):
    return make_labels(dataset_dir, settings(), ["idt", "fisher", "clusters"], cluster=load_cluster(), workers=2,
                       progress=False)


def test_idt_parts_are_the_trajectories_of_the_source_video(first_run, dataset_dir: Path, shared_data: Path) -> None:
    idt = {t.task: t for t in first_run.tasks}["idt"]
    assert idt.labelled == 6 and sorted(idt.failed) == ["Still/still", "Turn/Turn_1_42"]
    assert all("no trajectory survived" in failure["reason"] for failure in idt.failed.values())
    root = dataset_dir / "labels"
    stored = read_arrays(part_path(root, "idt", "Walk/Walk_10_10"), "idt")["trajectories"]
    direct = dense_trajectories(shared_data / "arid/train/Walk/Walk_10_10.mp4", size=(90, 120))
    assert stored.dtype == np.float32 and stored.shape[1] == 436 and len(stored) > 50
    np.testing.assert_array_equal(stored, direct)


def test_fisher_vectors_use_the_saved_model_and_the_failure_is_passed_on(first_run, dataset_dir: Path) -> None:
    fisher = {t.task: t for t in first_run.tasks}["fisher"]
    assert fisher.labelled == 6 and "idt failed: " in fisher.failed["Still/still"]["reason"]
    folder = family_dir(dataset_dir / "labels", "fisher")
    encoder, sketch = FisherEncoder.load(folder / ENCODER_FILE), CountSketch.load(folder / SKETCH_FILE)
    stored = read_arrays(consolidated_path(dataset_dir / "labels", "fisher"), "fisher")
    assert stored["vector"].shape == (6, 64) and stored["vector"].dtype == np.float32
    for video, vector in zip(stored["videos"], stored["vector"]):
        rows = read_arrays(part_path(dataset_dir / "labels", "idt", str(video)), "idt")["trajectories"]
        np.testing.assert_array_equal(vector, sketch.apply(encoder.transform(rows)))
    assert encoder.blocks[0].gmm.n_components == 3


def test_clusters_are_k_means_of_the_stored_vectors(first_run, dataset_dir: Path) -> None:
    root = dataset_dir / "labels"
    clusters = read_arrays(consolidated_path(root, "clusters"), "clusters")
    vectors = read_arrays(consolidated_path(root, "fisher"), "fisher")
    assert clusters["videos"].tolist() == vectors["videos"].tolist()
    np.testing.assert_array_equal(clusters["assignments"], kmeans_assignments(vectors["vector"], 2, 3, 1234))
    classes = [str(v).split("/")[0] for v in clusters["videos"]]
    nmi = np.mean([normalized_mutual_info_score(classes, run) for run in clusters["assignments"]])
    purity = np.mean([sum(max(np.sum((run == c) & (np.array(classes) == k)) for k in set(classes))
                          for c in set(run)) / len(run) for run in clusters["assignments"]])
    assert clusters["nmi"][0] == pytest.approx(nmi) and clusters["purity"][0] == pytest.approx(purity)
    assert clusters["assignments"].shape == (3, 6)


def _no_kmeans(*args, **kwargs):
    raise AssertionError("k-means ran although the clusters' inputs did not change")


def test_second_run_redoes_nothing_and_other_settings_are_refused(first_run, dataset_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = family_dir(dataset_dir / "labels", "fisher") / ENCODER_FILE
    clusters = consolidated_path(dataset_dir / "labels", "clusters")
    before, clustered = encoder.stat().st_mtime_ns, clusters.stat().st_mtime_ns
    assert {t.task: (t.labelled, t.already_done) for t in first_run.tasks}["clusters"] == (6, 0)
    monkeypatch.setattr(labels.families.clusters, "kmeans_assignments", _no_kmeans)
    again = make_labels(dataset_dir, settings(), ["idt", "fisher", "clusters"], cluster=load_cluster(), workers=1,
                        progress=False)
    counts = {t.task: (t.labelled, t.already_done) for t in again.tasks}
    assert counts["idt"] == (0, 6) and counts["fisher"] == (0, 6) and encoder.stat().st_mtime_ns == before
    assert counts["clusters"] == (0, 6) and clusters.stat().st_mtime_ns == clustered
    assert "clusters: 0 videos labelled now, 6 already labelled, 0 failed; 6 rows" in format_summary(again)
    result = CliRunner().invoke(cli, ["make-labels", "--data", str(dataset_dir), "--task", "fisher", "--no-progress",
                                      "--set", "labels.fisher={gmm_components: 5}", "--set", IDT])
    assert result.exit_code == 2 and "family.gmm_components: 3 there, 5 now" in result.output


def test_show_labels_draws_the_trajectories_of_a_clip(first_run, dataset_dir: Path, tmp_path: Path,
                                                      shared_data: Path) -> None:
    out = tmp_path / "figures/idt.png"  # its folder is made (OpenCV alone would write nothing and say nothing)
    result = CliRunner().invoke(cli, ["show-labels", "--task", "idt", "--data", str(dataset_dir), "--video",
                                      "Walk/Walk_10_10", "--start", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    frames = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
              for f in iter_frames(shared_data / "arid/train/Walk/Walk_10_10.mp4", size=(90, 120))][5:35]
    expected = len(dense_trajectories_from_frames(frames))
    assert f"{expected} trajectories in frames 5-34" in result.output and expected > 0
    image = cv2.imread(str(out))
    assert image.shape == (2 * 90, 4 * 120, 3)  # 8 frames, 4 per row
    short = CliRunner().invoke(cli, ["show-labels", "--task", "idt", "--data", str(dataset_dir), "--video",
                                     "Jump/Jump_8_3", "--start", "10000", "--out", str(out)])
    assert short.exit_code == 2 and "no 30-frame clip at frame 10000" in short.output


def test_clusters_are_computed_again_when_a_video_is_added_or_a_vector_changes(
        first_run, dataset_dir: Path, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "dataset"
    shutil.copytree(dataset_dir, copy)
    listing = tmp_path / "videos.txt"
    added = shared_data / "arid/train/Run/Run_11_2.mp4"
    listing.write_text((dataset_dir.parent / "videos.txt").read_text() + f"{added} Run\n")
    overrides = parse_overrides(["preprocess.size=[60, 80]"])
    assert extract(listing, copy, load_pipeline("stats", overrides=overrides).preprocess, flow=False, workers=1,
                   progress=False).ok
    grown = make_labels(copy, settings(), ["idt", "fisher", "clusters"], cluster=load_cluster(), workers=1,
                        progress=False)
    counts = {t.task: (t.labelled, t.already_done) for t in grown.tasks}
    assert counts["idt"] == (1, 6) and counts["fisher"] == (1, 6) and counts["clusters"] == (7, 0)
    root = copy / "labels"
    stored = read_arrays(consolidated_path(root, "clusters"), "clusters")
    vectors = read_arrays(consolidated_path(root, "fisher"), "fisher")
    assert "Run/Run_11_2" in stored["videos"].tolist() and stored["assignments"].shape == (3, 7)
    np.testing.assert_array_equal(stored["assignments"], kmeans_assignments(vectors["vector"], 2, 3, 1234))
    # the same videos with one Fisher vector changed (as a refitted encoder would give): computed again
    vectors["vector"][0] *= -1
    write_arrays(consolidated_path(root, "fisher"), "fisher", "", vectors, read_settings(root, "fisher"))
    changed = make_labels(copy, settings(), ["clusters"], cluster=load_cluster(), workers=1, progress=False)
    assert (changed.tasks[0].labelled, changed.tasks[0].already_done) == (7, 0)
    np.testing.assert_array_equal(read_arrays(consolidated_path(root, "clusters"), "clusters")["assignments"],
                                  kmeans_assignments(vectors["vector"], 2, 3, 1234))
    monkeypatch.setattr(labels.families.clusters, "kmeans_assignments", _no_kmeans)
    same = make_labels(copy, settings(), ["clusters"], cluster=load_cluster(), workers=1, progress=False)
    assert (same.tasks[0].labelled, same.tasks[0].already_done) == (0, 7)


def test_clusters_without_a_fisher_file_are_refused_naming_it(dataset_dir: Path, tmp_path: Path) -> None:
    """make-labels --task clusters where the fisher labels were claimed but never consolidated (a killed run): one
    line naming the file (exit 2), not h5py's "unable to open file"."""
    root = tmp_path / "labels"
    claim_settings(root, "fisher", {"format": FORMAT, "version": VERSION, "family": {}})
    fisher = consolidated_path(root, "fisher")
    args = ["make-labels", "--data", str(dataset_dir), "--task", "clusters", "--labels-dir", str(root),
            "--no-progress", "--workers", "1"]
    missing = CliRunner().invoke(cli, args)
    assert missing.exit_code == 2 and missing.output == (
        f"Error: {fisher}: no fisher labels here (run make-labels --task fisher first)\n"), missing.output


def test_clusters_of_fewer_than_two_fisher_vectors_are_refused_naming_the_folder(dataset_dir: Path,
                                                                                tmp_path: Path) -> None:
    root = tmp_path / "labels"
    claim_settings(root, "fisher", {"format": FORMAT, "version": VERSION, "family": {}})
    args = ["make-labels", "--data", str(dataset_dir), "--task", "clusters", "--labels-dir", str(root),
            "--no-progress", "--workers", "1"]
    one_vector = {"videos": np.array(["Jump/Jump_8_3"]), "vector": np.ones((1, 64), np.float32)}
    write_arrays(consolidated_path(root, "fisher"), "fisher", "", one_vector, read_settings(root, "fisher"))
    one = CliRunner().invoke(cli, args)
    assert one.exit_code == 2 and one.output == (
        f"Error: {family_dir(root, 'clusters')}: clusters need the Fisher vectors of at least 2 videos, "
        "found 1\n"), one.output
    assert not consolidated_path(root, "clusters").exists()
