"""``eval --task clusters`` on real ARID clips: the stored IDT clusters' NMI and purity next to the same k-means
(K, runs, seed, iterations of the clusters labels) on the L2-normalised features of the random-init and of a
pretrained backbone, over the same videos (a segment backbone's own segment features); the report table and the
refusal without clusters labels."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli import cli
from commands.pipeline import load_cluster, load_pipeline
from common.settings import parse_overrides
from eval.clusters import labelled_quality, load_stored_clusters
import eval.evaluate
from eval.evaluate import evaluate
from eval.features import extract_features
from eval.segments import SegmentLayout, segment_features
from eval.settings import ClipSettings, EvalSettings, SegmentEvalSettings
from labels.clusters import cluster_quality, kmeans_assignments
from labels.make import make_labels
from preprocess.dataset import Dataset
from preprocess.extract import extract
from train.backbones import build_backbone, save_backbone

CLIPS = ["Jump/Jump_8_3.mp4", "Jump/Jump_8_6.mp4", "Run/Run_11_11.mp4", "Run/Run_11_1.mp4",
         "Walk/Walk_10_1.mp4", "Walk/Walk_10_10.mp4"]
TINY = {"channels": [8, 16, 16, 32, 32]}
CLIP = ClipSettings(clips_per_video=2, clip_len=8, crop_size=48, batch_size=4)
LABELS = ["labels.idt={size: [90, 120]}", "labels.clusters={k: 3, runs: 2}",
          "labels.fisher={gmm_components: 3, gmm_n_init: 1, gmm_max_iter: 20, rows_per_video: 100, sketch_dim: 64}"]


def _settings(seed: int = 0) -> EvalSettings:
    return EvalSettings(stage="pool5", split="stratified", test_fraction=0.5, seed=seed, clips=CLIP)


@pytest.fixture(scope="module")
def dataset_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval_clusters")
    listing = root / "videos.txt"
    listing.write_text("".join(f"{shared_data / 'arid/train' / c} {c.split('/')[0]}\n" for c in CLIPS))
    preprocess = load_pipeline("stats", overrides=parse_overrides(["preprocess.size=[60, 80]",
                                                                   "preprocess.diff=false"])).preprocess
    assert extract(listing, root / "dataset", preprocess, flow=False, workers=1, progress=False).ok
    labels = load_pipeline("stats", overrides=parse_overrides(LABELS)).labels
    made = make_labels(root / "dataset", labels, ["idt", "fisher", "clusters"], cluster=load_cluster(), workers=2,
                       progress=False)
    assert all(not task.failed for task in made.tasks)
    return root / "dataset"


def test_features_are_clustered_like_the_idt_vectors_and_reported_side_by_side(dataset_dir: Path,
                                                                                tmp_path: Path) -> None:
    torch.manual_seed(7)
    save_backbone(build_backbone("c3d", 3, **TINY), tmp_path / "backbone.pt")
    results = evaluate(tmp_path / "backbone.pt", dataset_dir, tmp_path / "report", ["clusters"], settings=_settings(),
                       device="cpu", make_figures=False)
    section = results["clusters"]
    stored = load_stored_clusters(dataset_dir)
    ds = Dataset(dataset_dir)
    classes = [ds.video(v).label for v in stored.videos]
    assert (section["k"], section["runs"], section["videos"], section["labelled"]) == (3, 2, 6, 6)
    assert stored.assignments.shape == (2, 6)
    idt = cluster_quality(stored.assignments, classes)  # the stored figures are those of the stored assignments
    assert section["idt"] == pytest.approx(idt) and section["idt"]["nmi"] == pytest.approx(stored.nmi)
    for name, seed in (("random", 0), ("pretrained", 7)):  # the random twin is built with settings.seed
        torch.manual_seed(seed)
        backbone = build_backbone("c3d", 3, **TINY).eval()
        features = extract_features(backbone, ds, stored.videos, "pool5", "frames", CLIP)
        unit = features / np.linalg.norm(features, axis=1, keepdims=True)
        expected = cluster_quality(kmeans_assignments(unit, 3, 2, stored.settings.seed), classes)
        assert section["models"][name] == pytest.approx(expected)
        assert results["models"][name]["clusters.nmi"] == pytest.approx(expected["nmi"])
        assert 0 <= expected["nmi"] <= 1 and 1 / 3 <= expected["purity"] <= 1
    summary = (tmp_path / "report/summary.md").read_text()
    assert "| IDT Fisher vectors (stored clusters) | " + f"{100 * idt['nmi']:.1f} | {100 * idt['purity']:.1f} |" in summary
    assert "| random features |" in summary and "| pretrained features |" in summary
    written = json.loads((tmp_path / "report/results.json").read_text())
    assert written["clusters"]["models"]["random"]["nmi"] == pytest.approx(section["models"]["random"]["nmi"])


def test_a_segment_backbone_is_clustered_on_its_own_segment_features(dataset_dir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A backbone whose file records a segment layout is clustered on the mean of its spread test segments (the
    frozen features of its linear protocol), not on plain clips."""
    layout = SegmentLayout("blocks", count=2, frames=8, frame_stride=1, segment_stride=8, modality="rgb")
    contract = {"stream": "frames", "clip_len": 8, "crop_size": 48, "normalization": "imagenet",
                "segments": dataclasses.asdict(layout)}
    torch.manual_seed(7)
    save_backbone(build_backbone("c3d", 3, **TINY), tmp_path / "backbone.pt", contract=contract)
    clustered: dict[str, np.ndarray] = {}
    compare = eval.evaluate.cluster_comparison
    monkeypatch.setattr(eval.evaluate, "cluster_comparison",
                        lambda stored, ds, features: clustered.update(features) or compare(stored, ds, features))
    settings = dataclasses.replace(_settings(), segments=SegmentEvalSettings(test_segments=3))
    results = evaluate(tmp_path / "backbone.pt", dataset_dir, tmp_path / "report", ["clusters"], settings=settings,
                       device="cpu", make_figures=False)
    stored = load_stored_clusters(dataset_dir)
    ds = Dataset(dataset_dir)
    classes = [ds.video(v).label for v in stored.videos]
    for name, seed in (("random", 0), ("pretrained", 7)):
        torch.manual_seed(seed)
        backbone = build_backbone("c3d", 3, **TINY).eval()
        features = segment_features(backbone, ds, stored.videos, layout, "frames", "pool5", 3, 48, 4)
        np.testing.assert_allclose(clustered[name], features, rtol=1e-5, atol=1e-6)
        assert not np.allclose(features, extract_features(backbone, ds, stored.videos, "pool5", "frames", CLIP))
        unit = features / np.linalg.norm(features, axis=1, keepdims=True)
        expected = cluster_quality(kmeans_assignments(unit, 3, 2, stored.settings.seed), classes)
        assert results["models"][name]["clusters.nmi"] == pytest.approx(expected["nmi"])
        assert results["models"][name]["clusters.purity"] == pytest.approx(expected["purity"])


def test_unlabelled_videos_are_left_out_of_the_quality() -> None:
    labels = {"a": "Run", "b": "Run", "c": None, "d": "Walk", "e": None, "f": "Walk"}
    dataset = SimpleNamespace(video=lambda video_id: SimpleNamespace(label=labels[video_id]))
    assignments = np.array([[0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 0, 1]])
    quality = labelled_quality(assignments, list(labels), dataset)
    assert quality["purity"] == pytest.approx((3 / 4 + 1) / 2)  # on a, b, d, f: run 0 {a, b, f} {d}, run 1 {a, b} {d, f}
    assert quality == pytest.approx(cluster_quality(assignments[:, [0, 1, 3, 5]], ["Run", "Run", "Walk", "Walk"]))
    assert np.isnan(labelled_quality(assignments, list(labels), SimpleNamespace(
        video=lambda video_id: SimpleNamespace(label="Run" if video_id == "a" else None)))["nmi"])


def test_cli_runs_the_protocol_and_refuses_a_dataset_without_clusters(dataset_dir: Path, tmp_path: Path) -> None:
    common = ["eval", "--task", "clusters", "--weights", "random", "--backbone", "c3d", "--backbone-arg",
              "channels=[8, 16, 16, 32, 32]", "--split", "stratified", "--clips", "2", "--set", "eval.clips.clip_len=8",
              "--set", "eval.clips.crop_size=48", "--device", "cpu", "--no-figures", "--no-progress"]
    result = CliRunner().invoke(cli, [*common, "--data", str(dataset_dir), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "clusters.nmi" in result.output and "pretrained" not in json.loads((tmp_path / "r/results.json").read_text())[
        "clusters"]["models"]
    empty = tmp_path / "labels"
    empty.mkdir()
    refused = CliRunner().invoke(cli, [*common, "--data", str(dataset_dir), "--out", str(tmp_path / "r2"),
                                       "--labels-dir", str(empty)])
    assert refused.exit_code != 0
    assert f"{empty / 'clusters/settings.json'}: no clusters labels here (run make-labels --task clusters" in refused.output
