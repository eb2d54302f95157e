"""Evaluation extras end to end on real ARID clips: overlapping-window features, dynamic scenes, action
similarity, the stored-descriptor (IDT) baseline, attention maps and the multi-report comparison.

The dataset is 2 clips per class of ARID's 6 classes, extracted by the CPU stage at 112x150, 15 fps, with
DIS flow (for the motion boundaries); backbones are a narrow C3D.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.svm import LinearSVC

from commands.pipeline import load_pipeline
from common.settings import parse_overrides
from eval.attention import activation_attention, attention_panels, clip_attention, summed_boundaries
from eval.evaluate import evaluate
from eval.features import cached_window_features, extract_window_features
from eval.pairs import classes_shared_across_folds, read_pairs, write_pairs
from eval.report import compare_runs, headline_values, write_report
from eval.retrieval import retrieval_recall
from eval.settings import ClipSettings, EvalSettings
from eval.similarity import pair_features, same_not_same_cross_validation
from labels.stats import clip_motion_boundaries
from preprocess.dataset import Dataset
from preprocess.extract import extract
from preprocess.streams import normalize
from conftest import TINY_C3D as TINY
from train.backbones import build_backbone

CLASSES = ["Jump", "Run", "Sit", "Stand", "Turn", "Walk"]
CLIPS = ClipSettings(clips_per_video=2, clip_len=16, crop_size=112, batch_size=4)


@pytest.fixture(scope="module")
def dataset_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    inputs = tmp_path_factory.mktemp("arid_inputs")
    videos = [str(p) for label in CLASSES for p in sorted((shared_data / "arid/train" / label).glob("*.mp4"))[:2]]
    (inputs / "videos.txt").write_text("\n".join(videos) + "\n")
    root = tmp_path_factory.mktemp("arid_extras") / "dataset"
    overrides = parse_overrides(["preprocess.size=[112,150]", "preprocess.fps=15", "preprocess.diff=false",
                                 "preprocess.flow.algo=dis"])
    summary = extract(inputs / "videos.txt", root, load_pipeline("stats", overrides=overrides).preprocess,
                      workers=1, progress=False)
    assert summary.failed == {} and summary.extracted == 12
    return root


def _settings() -> EvalSettings:
    settings = EvalSettings(clips=CLIPS, split="stratified", test_fraction=0.5)
    settings.similarity.n_folds = 3
    settings.fewshot.shots, settings.fewshot.draws = [1], 3
    return settings


def test_window_features_are_normalised_means_over_every_overlapping_clip(dataset_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    backbone = build_backbone("c3d", 3, **TINY).eval()
    ds = Dataset(dataset_dir)
    video = ds.videos[3]
    features = extract_window_features(backbone, ds, [video.id], "frames", CLIPS, overlap=8, batch_size=3)
    frames = ds.read_frames(video.id)
    starts = range(0, video.n_frames - 16 + 1, 8)  # by hand: every window of 16 frames, 8 apart
    clips = np.stack([frames[s: s + 16, :, 19:131] for s in starts])
    assert len(clips) >= 2
    with torch.no_grad():
        pooled = backbone.forward_stages(normalize(torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float() / 255))
    for stage in ("pool3", "pool4", "pool5"):
        mean = pooled[stage].mean(dim=0).numpy()
        np.testing.assert_allclose(features[stage][0], mean / np.linalg.norm(mean), rtol=1e-4, atol=1e-6)

    ids = [v.id for v in ds.videos]
    first = cached_window_features(backbone, "w", ds, dataset_dir, ids, "frames", CLIPS, 8, 4, tmp_path)

    class Exploding(torch.nn.Module):
        def forward_stages(self, x, last):
            raise AssertionError("features should come from the cache")

    again = cached_window_features(Exploding(), "w", ds, dataset_dir, ids, "frames", ClipSettings(clips_per_video=7),
                                   8, 1, tmp_path)  # the uniform clip count is not part of the windowing
    assert all(np.array_equal(first[s], again[s]) for s in first)
    with pytest.raises(AssertionError, match="from the cache"):
        cached_window_features(Exploding(), "w", ds, dataset_dir, ids, "frames", CLIPS, 4, 4, tmp_path)


def test_scenes_and_similarity_end_to_end_match_independent_computations(
        dataset_dir: Path, run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    results = evaluate(run_dir, dataset_dir, out, ["scenes", "similarity"], settings=_settings(),
                       cache_dir=tmp_path / "cache", device="cpu")
    assert set(results["models"]) == {"pretrained", "random"} and "n_train" not in results
    ds = Dataset(dataset_dir)
    ids = [v.id for v in ds.videos]
    labels = np.array([CLASSES.index(v.label) for v in ds.videos])
    pairs = read_pairs(out / "pairs.txt")
    assert results["n_pairs"] == len(pairs) == 12 and results["n_folds"] == 3  # 2 classes x 2 clips per fold
    assert all(not shared for shared in classes_shared_across_folds(pairs).values())
    cached = list((tmp_path / "cache").glob("*.npz"))
    assert len(cached) == 2  # one window extraction per model, shared by both protocols
    by_model = {}
    for file in cached:
        with np.load(file) as stored:
            assert stored["video_ids"].tolist() == ids
            by_model[file] = {s: stored[s] for s in ("pool3", "pool4", "pool5")}
    for name in ("pretrained", "random"):
        metrics = results["models"][name]
        # leave-one-out by a plain loop over held-out videos, on the cached pool5 descriptors
        loo = []
        for feats in by_model.values():
            x = feats["pool5"]
            right = [LinearSVC(C=1.0, max_iter=10000, random_state=0).fit(np.delete(x, i, 0), np.delete(labels, i))
                     .predict(x[i: i + 1])[0] == labels[i] for i in range(len(x))]
            loo.append(float(np.mean(right)))
        assert metrics["scenes.accuracy"] in loo
        row = {v: i for i, v in enumerate(ids)}
        first, second = [row[v] for v in pairs.first], [row[v] for v in pairs.second]
        expected = [same_not_same_cross_validation(pair_features(list(f.values()), first, second), pairs.same,
                                                   pairs.fold) for f in by_model.values()]
        assert metrics["similarity.accuracy"] in [e["accuracy"] for e in expected]
        spread = [float(np.std(e["fold_accuracies"], ddof=1)) for e in expected]
        assert metrics["similarity.accuracy.std"] in spread
        assert len(results["details"][name]["similarity"]["fold_accuracies"]) == 3
    summary = (out / "summary.md").read_text()
    assert "| scenes.accuracy |" in summary and "| similarity.accuracy |" in summary and "± " in summary
    for png in ("attention_pretrained.png", "attention_random.png"):
        assert (out / png).stat().st_size > 5000
    assert results["figure_videos"]["attention"] == [ds.videos[i].id for i in (0, 2, 4, 6)]  # classes in turn

    # the saved list read back by --pairs gives the same numbers; a list naming unknown videos is refused
    from cli import cli

    runner = CliRunner()
    common = ["--data", str(dataset_dir), "--task", "similarity", "--no-figures", "--no-progress", "--cache-dir",
              str(tmp_path / "cache"), "--set", "eval.clips.batch_size=4"]
    again = runner.invoke(cli, ["eval", "--weights", str(run_dir), "--out", str(tmp_path / "again"),
                                "--pairs", str(out / "pairs.txt"), *common])
    assert again.exit_code == 0, again.output
    rerun = json.loads((tmp_path / "again/results.json").read_text())
    accuracy = results["models"]["pretrained"]["similarity.accuracy"]
    assert rerun["models"]["pretrained"]["similarity.accuracy"] == accuracy
    pairs.first[0] = "Nowhere/missing"
    write_pairs(tmp_path / "bad.txt", pairs)
    bad = runner.invoke(cli, ["eval", "--weights", str(run_dir), "--out", str(tmp_path / "bad"),
                              "--pairs", str(tmp_path / "bad.txt"), *common])
    assert bad.exit_code != 0 and "bad.txt: 1 video(s) of the pair list" in bad.output
    assert "Nowhere/missing" in bad.output


def _write_descriptors(path: Path, ids: list[str], vectors: np.ndarray, name: str = "vectors") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle["videos"] = np.array(ids, dtype=h5py.string_dtype())
        handle[name] = vectors.astype(np.float32)


def test_descriptor_baseline_runs_the_frozen_protocols_on_a_stored_file(dataset_dir: Path, tmp_path: Path) -> None:
    ds = Dataset(dataset_dir)
    ids = [v.id for v in ds.videos]
    labels = np.array([CLASSES.index(v.label) for v in ds.videos])
    rng = np.random.default_rng(0)
    # signed, Fisher-vector-like rows: a class direction plus small noise, perfectly separable
    vectors = np.eye(6)[labels] * 4.0 - 1.0 + 0.1 * rng.standard_normal((len(ids), 6))
    file = tmp_path / "fv.h5"
    _write_descriptors(file, ids[::-1], vectors[::-1])  # stored order need not be the dataset's
    out = tmp_path / "desc"
    results = evaluate(f"descriptors:{file}", dataset_dir, out, ["linear", "fewshot", "retrieval", "scenes"],
                       settings=_settings(), device="cpu")
    assert set(results["models"]) == {"descriptors"} and results["backbone"] is None
    metrics = results["models"]["descriptors"]
    for key in ("logreg.top1", "fewshot.1shot", "retrieval.R@1", "scenes.accuracy"):
        assert metrics[key] == 1.0, key
    row = {v: i for i, v in enumerate(ids)}
    train = [row[v] for v in results["train_ids"]]
    test = [row[v] for v in results["test_ids"]]
    recall = retrieval_recall(vectors[test], labels[test], vectors[train], labels[train], [1, 5])
    assert {k: metrics[f"retrieval.R@{k}"] for k in (1, 5)} == recall
    assert "descriptors:" in (out / "summary.md").read_text() and (out / "retrieval_descriptors.png").is_file()
    assert not list(out.glob("attention_*.png"))  # no network, no attention

    # idt: the dataset's labels/fisher/fisher.h5, a clear error when it is missing or incomplete
    with pytest.raises(FileNotFoundError, match=r"labels/fisher/fisher.h5: no descriptor file \(make it with"):
        evaluate("idt", dataset_dir, tmp_path / "none", ["retrieval"], settings=_settings())
    fisher = dataset_dir / "labels/fisher/fisher.h5"
    try:
        _write_descriptors(fisher, ids[:-1], vectors[:-1])  # a video where IDT found no trajectory
        with pytest.raises(ValueError, match=f"fisher.h5: no descriptor for 1 of 12 videos, e.g. {ids[-1]} "
                                             r"\(at most 5% may lack one"):
            evaluate("idt", dataset_dir, tmp_path / "part", ["retrieval"], settings=_settings())
        tolerant = _settings()
        tolerant.descriptors.max_missing_fraction = 0.1
        part = evaluate("idt", dataset_dir, tmp_path / "part", ["retrieval"], settings=tolerant, make_figures=False)
        assert part["missing_descriptors"] == [ids[-1]]
        assert f"1 video(s) have no stored descriptor and count with a zero one: {ids[-1]}" in (
            tmp_path / "part/summary.md").read_text()
        zeroed = vectors.copy()
        zeroed[-1] = 0.0
        train = [ids.index(v) for v in part["train_ids"]]
        test = [ids.index(v) for v in part["test_ids"]]
        recall = retrieval_recall(zeroed[test], labels[test], zeroed[train], labels[train], [1, 5])
        assert {k: part["models"]["idt"][f"retrieval.R@{k}"] for k in (1, 5)} == recall
        _write_descriptors(fisher, ids, vectors, name="vector")  # the fisher family's field name
        idt = evaluate("idt", dataset_dir, tmp_path / "idt", ["retrieval"], settings=_settings(), make_figures=False)
        assert idt["models"]["idt"]["retrieval.R@1"] == 1.0
        with pytest.raises(ValueError, match="fisher.h5: stored descriptors cannot run finetune, similarity"):
            evaluate("idt", dataset_dir, tmp_path / "ft", ["finetune", "similarity"], settings=_settings())
    finally:
        fisher.unlink(missing_ok=True)
    elsewhere = tmp_path / "labels_elsewhere"  # eval --labels-dir: the Fisher vectors of another labels folder
    with pytest.raises(FileNotFoundError, match=f"{elsewhere}/fisher/fisher.h5: no descriptor file"):
        evaluate("idt", dataset_dir, tmp_path / "e0", ["retrieval"], settings=_settings(), labels_dir=elsewhere)
    _write_descriptors(elsewhere / "fisher/fisher.h5", ids, vectors, name="vector")
    other = evaluate("idt", dataset_dir, tmp_path / "e", ["retrieval"], settings=_settings(), make_figures=False,
                     labels_dir=elsewhere)
    assert other["models"]["idt"]["retrieval.R@1"] == 1.0
    with h5py.File(tmp_path / "wrong.h5", "w") as handle:
        handle["vectors"] = vectors
    with pytest.raises(ValueError, match="wrong.h5: not a descriptor file, no dataset 'videos'"):
        evaluate(f"descriptors:{tmp_path / 'wrong.h5'}", dataset_dir, tmp_path / "w", ["retrieval"],
                 settings=_settings())


def _fake_report(path: Path, models: dict[str, dict[str, float]], tasks: list[str]) -> Path:
    write_report({"weights": path.name, "backbone": "c3d", "stage": "pool5", "data": "d", "n_classes": 6,
                  "tasks": tasks, "models": models}, path)
    return path


def test_report_puts_several_folders_in_one_table_per_protocol_with_a_bar_chart(tmp_path: Path) -> None:
    method = _fake_report(tmp_path / "stats", {
        "pretrained": {"linear.top1": 0.5, "fewshot.1shot": 0.3, "fewshot.1shot.std": 0.05,
                       "finetune.100%.video_top1": 0.7},
        "random": {"linear.top1": 0.2, "fewshot.1shot": 0.2, "fewshot.1shot.std": 0.04,
                   "finetune.100%.video_top1": 0.6}}, ["linear", "fewshot", "finetune"])
    idt = _fake_report(tmp_path / "idt", {"idt": {"linear.top1": 0.4, "retrieval.R@1": 0.45}}, ["linear", "retrieval"])
    pairs = _fake_report(tmp_path / "aslan", {"pretrained": {
        "similarity.accuracy": 0.6, "similarity.accuracy.std": 0.02, "scenes.accuracy": 0.8}}, ["similarity", "scenes"])
    table = compare_runs([method, idt, pairs])
    sections = {part.split("\n")[0]: part for part in table.split("## ")[1:]}
    assert list(sections) == ["linear", "fewshot", "retrieval", "finetune", "scenes", "similarity"]
    assert sections["linear"].splitlines()[2] == ("| metric (%) | stats: pretrained | stats: random init | "
                                                  "idt: IDT (hand-crafted) |")
    assert "| linear.top1 | 50.0 | 20.0 | 40.0 |" in sections["linear"]
    assert "| fewshot.1shot | 30.0 ± 5.0 | 20.0 ± 4.0 |" in sections["fewshot"]
    assert "stats: supervised (from scratch)" in sections["finetune"] and "| 70.0 | 60.0 |" in sections["finetune"]
    assert "| similarity.accuracy | 60.0 ± 2.0 |" in sections["similarity"]
    bars = headline_values([method, idt, pairs])
    assert bars["fewshot.1shot"] == {"stats: pretrained": (0.3, 0.05), "stats: random init": (0.2, 0.04)}
    assert bars["finetune.100%.video_top1"]["stats: supervised (from scratch)"] == (0.6, None)
    assert set(bars) == {"linear.top1", "fewshot.1shot", "retrieval.R@1", "finetune.100%.video_top1",
                         "scenes.accuracy", "similarity.accuracy"}
    assert "`random` column is the supervised (from scratch) reference" in (method / "summary.md").read_text()

    from cli import cli

    result = CliRunner().invoke(cli, ["report", str(method), str(idt), str(pairs), "--figure", str(tmp_path / "b.png")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(table) and (tmp_path / "b.png").stat().st_size > 5000
    named = compare_runs([method, idt], names=["run A", "baseline"])
    assert "| metric (%) | run A: pretrained | run A: random init | baseline: IDT (hand-crafted) |" in named
    with pytest.raises(ValueError, match="one distinct name per report"):
        compare_runs([method, idt], names=["same", "same"])


def test_run_refuses_a_baseline_it_cannot_evaluate_naming_the_file(dataset_dir: Path, tmp_path: Path) -> None:
    from commands.run import evaluate_baselines
    from common.errors import Refused

    pipeline = load_pipeline("demo", overrides=parse_overrides(["eval.baselines=[idt]", "eval.split=stratified"]))
    with pytest.raises(Refused, match=r"baseline 'idt': .*labels/fisher/fisher.h5: no descriptor file"):
        evaluate_baselines(pipeline, dataset_dir, tmp_path, device="cpu", progress=False)
    assert not (tmp_path / "comparison.md").exists()


def test_attention_of_a_known_activation() -> None:
    a = torch.zeros(1, 3, 2, 2, 2)
    a[0, 0, 0, 0, 1], a[0, 1, 0, 0, 1], a[0, 2, 1, 1, 0] = 3.0, -4.0, 2.0  # energies 9 + 16 = 25 and 4
    attention = activation_attention(a, (2, 2, 2))  # same size: no interpolation
    expected = np.zeros((2, 2, 2), dtype=np.float32)
    expected[0, 0, 1], expected[1, 1, 0] = 1.0, 4.0 / 25.0
    np.testing.assert_allclose(attention[0], expected, rtol=1e-6)
    hot = torch.zeros(1, 4, 1, 4, 4)
    hot[0, 2, 0, 1, 3] = -1.5  # a hot spot at row 1, column 3 of a 4x4 map
    up = activation_attention(hot, (16, 112, 112))[0]
    assert up.shape == (16, 112, 112) and up.max() == pytest.approx(1.0)
    y, x = np.unravel_index(np.argmax(up[5]), (112, 112))
    assert 28 <= y < 56 and 84 <= x < 112
    np.testing.assert_allclose(up[0], up[15])  # one time step: constant over time
    assert np.all(activation_attention(torch.zeros(2, 3, 1, 2, 2), (4, 8, 8)) == 0)
    np.testing.assert_allclose(activation_attention(torch.ones(1, 5, 2, 3, 3), (4, 9, 9)), 1.0, rtol=1e-6)

    class Known(torch.nn.Module):  # the last conv stage outputs the activation above whatever the input
        def forward_features(self, x):
            return hot.expand(len(x), -1, -1, -1, -1)

    np.testing.assert_allclose(clip_attention(Known(), torch.zeros(2, 3, 16, 112, 112))[1], up)


def test_attention_panels_show_the_frame_and_the_summed_boundaries(dataset_dir: Path) -> None:
    torch.manual_seed(0)
    ds = Dataset(dataset_dir)
    video = ds.videos[0]
    panel = attention_panels(build_backbone("c3d", 3, **TINY), ds, "frames", [video.id], 16, 112)[0]
    start = int(np.rint((video.n_frames - 16) / 2))  # the middle of 3 uniform clips
    np.testing.assert_array_equal(panel["frame"], ds.read_frames(video.id, start + 8, start + 9)[0, :, 19:131])
    flow = ds.read_flow(video.id, start, start + 15)[:, :, 19:131]
    boundaries = clip_motion_boundaries(np.ascontiguousarray(flow[..., 0]), np.ascontiguousarray(flow[..., 1]))
    np.testing.assert_allclose(panel["boundaries"], boundaries.magnitude.sum(axis=0), rtol=1e-5)
    assert panel["attention"].shape == (112, 112) and panel["attention"].max() == pytest.approx(1.0)
    step = np.zeros((3, 8, 8, 2), dtype=np.float32)
    step[:, :, 4:, 0] = 2.0  # u jumps by 2 px between columns 3 and 4: boundaries there only
    summed = summed_boundaries(step)
    assert summed[:, 3:5].min() > 0 and summed[:, :2].max() == 0 and summed[:, 6:].max() == 0
