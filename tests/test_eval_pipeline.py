"""Evaluation end to end on real ARID clips: features, cache, fine-tuning, the report and the CLI.

The dataset is made by the CPU stage's extraction (``preprocess.extract.extract``: real decoding, JPEG
frames at 112x150 and 15 fps, UCF101-style split files) from 3 clips per class (2 train, 1 test);
backbones are a narrow C3D so the suite stays within its time budget.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from eval.clips import clip_starts
from eval.evaluate import evaluate, labelled_split
from eval.features import cached_features, extract_features
from eval.finetune import finetune
from eval.retrieval import retrieval_recall
from eval.settings import ClipSettings, EvalSettings, FinetuneSettings
from commands.pipeline import load_pipeline
from common.errors import ConfigError
from common.settings import parse_overrides
from preprocess.dataset import Dataset
from preprocess.extract import extract
from preprocess.streams import normalize
from conftest import TINY_C3D as TINY
from train.backbones import build_backbone, load_backbone, save_backbone

CLASSES = ["Jump", "Run", "Sit", "Stand", "Turn", "Walk"]
HEIGHT, WIDTH = 112, 150
CLIPS = ClipSettings(clips_per_video=2, clip_len=16, crop_size=112, batch_size=4)


@pytest.fixture(scope="module")
def dataset_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    inputs = tmp_path_factory.mktemp("arid_inputs")
    videos, train, test = [], [], []
    for label in CLASSES:
        for i, source in enumerate(sorted((shared_data / "arid/train" / label).glob("*.mp4"))[:3]):
            videos.append(str(source))
            (test if i == 2 else train).append(f"{label}/{source.name}")
    (inputs / "videos.txt").write_text("\n".join(videos) + "\n")
    (inputs / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (inputs / "testlist01.txt").write_text("\n".join(test) + "\n")
    root = tmp_path_factory.mktemp("arid_eval") / "dataset"
    overrides = parse_overrides([f"preprocess.size=[{HEIGHT},{WIDTH}]", "preprocess.fps=15", "preprocess.diff=false"])
    settings = load_pipeline("stats", overrides=overrides).preprocess
    summary = extract(inputs / "videos.txt", root, settings, flow=False, workers=1, progress=False)
    assert summary.failed == {} and summary.extracted == 18
    return root


def _centre_clips(ds: Dataset, video) -> np.ndarray:
    """The two evaluation clips of a video, cut by hand: starts 0 and n-16, columns 19..130 of 150."""
    frames = ds.read_frames(video.id)
    return np.stack([frames[s : s + 16, :, 19:131] for s in (0, video.n_frames - 16)])


def test_video_features_are_the_mean_of_centre_clip_features(dataset_dir: Path) -> None:
    torch.manual_seed(0)
    backbone = build_backbone("c3d", 3, **TINY).eval()
    ds = Dataset(dataset_dir)
    video = ds.videos[4]
    features = extract_features(backbone, ds, [video.id], "pool4", "frames", CLIPS)
    assert features.shape == (1, 32) and features.dtype == np.float32
    assert video.n_frames >= 16 and clip_starts(video.n_frames, 16, 2).tolist() == [0, video.n_frames - 16]
    x = normalize(torch.from_numpy(_centre_clips(ds, video)).permute(0, 4, 1, 2, 3).float() / 255)
    with torch.no_grad():
        expected = backbone.stages["conv4"](backbone.stages["conv3"](backbone.stages["conv2"](
            backbone.stages["conv1"](x)))).mean(dim=(2, 3, 4)).mean(dim=0)
    np.testing.assert_allclose(features[0], expected.numpy(), rtol=1e-4, atol=1e-6)


def test_feature_cache_is_reused_and_keyed_by_stage(dataset_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    backbone = build_backbone("c3d", 3, **TINY).eval()
    ds = Dataset(dataset_dir)
    ids = [v.id for v in ds.videos]
    first = cached_features(backbone, "w1", ds, dataset_dir, ids, "pool5", "frames", CLIPS, tmp_path)
    two_workers = ClipSettings(clips_per_video=2, batch_size=4, num_workers=2)
    np.testing.assert_array_equal(first, extract_features(backbone, ds, ids, "pool5", "frames", two_workers))
    assert len(list(tmp_path.glob("*.npz"))) == 1

    class Exploding(torch.nn.Module):
        def forward_stages(self, x, last):
            raise AssertionError("features should come from the cache")

    again = cached_features(Exploding(), "w1", ds, dataset_dir, ids, "pool5", "frames",
                            ClipSettings(clips_per_video=2, batch_size=1), tmp_path)
    np.testing.assert_array_equal(first, again)
    with pytest.raises(AssertionError, match="from the cache"):
        cached_features(Exploding(), "w1", ds, dataset_dir, ids, "pool4", "frames", CLIPS, tmp_path)
    with pytest.raises(AssertionError, match="from the cache"):
        cached_features(Exploding(), "w2", ds, dataset_dir, ids, "pool5", "frames", CLIPS, tmp_path)
    with pytest.raises(AssertionError, match="from the cache"):
        cached_features(Exploding(), "w1", ds, dataset_dir, ids[:-1], "pool5", "frames", CLIPS, tmp_path)


def test_finetune_video_accuracy_is_argmax_of_mean_softmax(dataset_dir: Path) -> None:
    torch.manual_seed(0)
    backbone = build_backbone("c3d", 3, **TINY)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    ds = Dataset(dataset_dir)
    train = [v for v in ds.videos if v.split == "train"]
    test = [v for v in ds.videos if v.split == "test"]
    settings = FinetuneSettings(epochs=2, batch_size=6, lr=0.01, freeze_stages=2)
    result = finetune(backbone, ds, "frames", [v.id for v in train], np.array([CLASSES.index(v.label) for v in train]),
                      [v.id for v in test], np.array([CLASSES.index(v.label) for v in test]), 6, settings, CLIPS)
    labels = np.array([CLASSES.index(v.label) for v in test])
    probabilities = result.clip_probabilities
    assert probabilities.shape == (6, 2, 6)
    np.testing.assert_allclose(probabilities.sum(axis=2), 1.0, rtol=1e-5)
    by_hand = np.mean([np.argmax(probabilities[i].mean(axis=0)) == labels[i] for i in range(6)])
    clips_by_hand = np.mean([np.argmax(probabilities[i, k]) == labels[i] for i in range(6) for k in range(2)])
    assert result.metrics["video_top1"] == pytest.approx(by_hand)
    assert result.metrics["clip_top1"] == pytest.approx(clips_by_hand)
    # the scores are the tuned model's softmax on the centre clips
    clips = _centre_clips(ds, test[0])
    with torch.no_grad():
        logits = result.model.eval()(normalize(torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float() / 255))
    np.testing.assert_allclose(probabilities[0], torch.softmax(logits, 1).numpy(), rtol=1e-4, atol=1e-6)
    assert [h["epoch"] for h in result.history] == [1, 2] and "test_video_top1" in result.history[-1]
    tuned = result.model.backbone.state_dict()
    for key, value in before.items():
        frozen = key.startswith(("stages.conv1.", "stages.conv2."))
        assert torch.equal(tuned[key], value) == frozen, key
    assert all(torch.equal(backbone.state_dict()[k], v) for k, v in before.items())  # the input is untouched


def test_evaluate_writes_report_with_values_matching_independent_computations(
        dataset_dir: Path, run_dir: Path, tmp_path: Path) -> None:
    settings = EvalSettings(clips=CLIPS, finetune=FinetuneSettings(epochs=1, batch_size=6, label_fractions=[0.5, 1]))
    settings.fewshot.shots, settings.fewshot.draws = [1, 2, 5], 3
    out = tmp_path / "report"
    results = evaluate(run_dir, dataset_dir, out, ["all"], settings=settings, cache_dir=tmp_path / "cache",
                       device="cpu")
    assert set(results["models"]) == {"pretrained", "random"}
    assert results["n_train"] == 12 and results["n_test"] == 6 and results["classes"] == CLASSES
    ds = Dataset(dataset_dir)
    labels = {v.id: CLASSES.index(v.label) for v in ds.videos}
    for name in ("pretrained", "random"):
        metrics = results["models"][name]
        cached = list((tmp_path / "cache").glob("*.npz"))
        assert len(cached) == 2
        # retrieval recall recomputed from the cached features by a plain loop
        feats = {}
        for file in cached:
            with np.load(file) as stored:
                feats[file] = dict(zip(stored["video_ids"].tolist(), stored["features"]))
        recalls = [retrieval_recall(np.stack([f[v] for v in results["test_ids"]]),
                                    np.array([labels[v] for v in results["test_ids"]]),
                                    np.stack([f[v] for v in results["train_ids"]]),
                                    np.array([labels[v] for v in results["train_ids"]]), [1, 5, 10, 20, 50])
                   for f in feats.values()]
        assert {k: metrics[f"retrieval.R@{k}"] for k in (1, 5, 10, 20, 50)} in recalls
        assert metrics["retrieval.R@20"] == 1.0  # the gallery has 12 videos covering every class
        for key in ("linear.top1", "logreg.top1", "finetune.100%.video_top1"):  # whole test videos of 6
            assert metrics[key] * 6 == pytest.approx(round(metrics[key] * 6)), (key, metrics[key])
        assert metrics["linear.top5"] >= metrics["linear.top1"]
        assert "fewshot.5shot" not in metrics  # only 2 training videos per class
        assert np.asarray(results["details"][name]["linear"]["confusion"]).sum() == 6
        assert [r["n_train"] for r in results["details"][name]["finetune"].values()] == [6, 12]
        clips = results["settings"]["clips"]["clips_per_video"] * 6  # whole test clips
        assert metrics["finetune.50%.clip_top1"] * clips == pytest.approx(round(metrics["finetune.50%.clip_top1"] * clips))
    pre, rnd = results["models"]["pretrained"], results["models"]["random"]
    for key, value in results["difference"].items():
        assert value == pytest.approx(pre[key] - rnd[key])
    stored = json.loads((out / "results.json").read_text())
    assert stored["models"] == results["models"]
    summary = (out / "summary.md").read_text()
    assert "| retrieval.R@1 |" in summary and "pretrained − random" in summary
    for png in ("tsne_pretrained.png", "tsne_random.png", "confusion_pretrained.png", "retrieval_pretrained.png",
                "finetune_curves.png"):
        assert (out / png).stat().st_size > 5000 and png in summary


def test_cli_eval_random_and_report_side_by_side(dataset_dir: Path, run_dir: Path, tmp_path: Path) -> None:
    from cli import cli

    runner = CliRunner()
    common = ["--data", str(dataset_dir), "--task", "retrieval", "--clips", "2", "--split", "stratified",
              "--set", "eval.clips.batch_size=4", "--no-figures", "--no-progress", "--cache-dir", str(tmp_path / "c")]
    first = runner.invoke(cli, ["eval", "--weights", str(run_dir), "--out", str(tmp_path / "a"), *common])
    assert first.exit_code == 0, first.output
    assert "pretrained − random" in first.output
    bad = runner.invoke(cli, ["eval", "--weights", "random", "--out", str(tmp_path / "b"), *common])
    assert bad.exit_code != 0 and "--weights random needs --backbone" in bad.output
    tiny = ["--backbone", "c3d", "--backbone-arg", "channels=[8, 16, 16, 32, 32]"]
    alone = runner.invoke(cli, ["eval", "--weights", "random", *tiny, "--out", str(tmp_path / "r"), *common])
    assert alone.exit_code == 0, alone.output
    assert json.loads((tmp_path / "r/results.json").read_text())["weights_id"].startswith(
        "random:c3d:3:[('channels', [8, 16, 16, 32, 32])]")
    typo = runner.invoke(cli, ["eval", "--weights", "random", "--backbone", "c3d", "--backbone-arg", "chanels=[8]",
                               "--out", str(tmp_path / "r2"), *common])
    assert typo.exit_code != 0 and "backbone 'c3d':" in typo.output and "'chanels'" in typo.output
    with_file = runner.invoke(cli, ["eval", "--weights", str(run_dir), *tiny[2:], "--out", str(tmp_path / "r3"),
                                    *common])
    assert with_file.exit_code != 0 and "backbone arguments apply to --weights random only" in with_file.output
    missing = runner.invoke(cli, ["eval", "--weights", str(tmp_path), "--out", str(tmp_path / "b"), *common])
    assert missing.exit_code != 0 and f"{tmp_path / 'backbone.pt'}: no backbone weights" in missing.output
    second = runner.invoke(cli, ["eval", "--weights", str(run_dir / "backbone.pt"), "--out", str(tmp_path / "b"),
                                 *common, "--stage", "pool3"])
    assert second.exit_code == 0, second.output
    table = runner.invoke(cli, ["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "t.md")])
    assert table.exit_code == 0, table.output
    assert table.output.splitlines()[0] == "## retrieval"
    header = table.output.splitlines()[2]
    assert header.count("pretrained") == 2 and header.count("random init") == 2
    a = json.loads((tmp_path / "a/results.json").read_text())["models"]["pretrained"]["retrieval.R@1"]
    row = next(line for line in table.output.splitlines() if line.startswith("| retrieval.R@1 |"))
    assert row.split("|")[2].strip() == f"{100 * a:.1f}"
    assert (tmp_path / "t.md").read_text() in table.output
    assert (tmp_path / "t.png").stat().st_size > 5000 and "bar chart written to" in table.output
    broken = runner.invoke(cli, ["report", str(tmp_path / "c")])
    assert broken.exit_code != 0 and "results.json: no evaluation results" in broken.output


def test_splits_from_files_or_stratified(dataset_dir: Path) -> None:
    ds = Dataset(dataset_dir)
    files = labelled_split(ds, EvalSettings())
    assert files.test_ids == [v.id for v in ds.videos if v.split == "test"] and len(files.train_ids) == 12
    assert files.test_labels.tolist() == list(range(6))
    stratified = labelled_split(ds, EvalSettings(split="stratified", test_fraction=0.3, seed=3))
    assert np.bincount(stratified.test_labels).tolist() == [1] * 6
    assert sorted(stratified.train_ids + stratified.test_ids) == sorted(v.id for v in ds.videos)


def test_random_initialisation_alone_and_bad_weights(dataset_dir: Path, tmp_path: Path) -> None:
    settings = EvalSettings(tasks=["retrieval"], clips=CLIPS)
    results = evaluate("random", dataset_dir, tmp_path / "r", backbone="c3d", backbone_args=TINY, settings=settings,
                       make_figures=False)
    assert set(results["models"]) == {"random"} and "difference" not in results
    assert results["weights_id"].startswith("random:c3d:3:")
    assert "−" not in (tmp_path / "r/summary.md").read_text()
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt"):
        evaluate(garbage, dataset_dir, tmp_path / "g", settings=settings)
    flow_net = tmp_path / "flow_net.pt"
    save_backbone(build_backbone("c3d", 2, **TINY), flow_net)
    with pytest.raises(ValueError, match="flow_net.pt: backbone takes 2 input channels"):
        evaluate(flow_net, dataset_dir, tmp_path / "f", settings=settings)
    with pytest.raises(ValueError, match=r"unknown evaluation task\(s\) \['probe'\]"):
        evaluate(flow_net, dataset_dir, tmp_path / "f", ["probe"], settings=settings)


def test_a_weights_file_is_read_once(dataset_dir: Path, run_dir: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import eval.evaluate as evaluate_module

    loads: list[Path] = []

    def counting_load(path, map_location="cpu"):
        loads.append(Path(path))
        return load_backbone(path, map_location=map_location)

    monkeypatch.setattr(evaluate_module, "load_backbone", counting_load)
    results = evaluate(run_dir, dataset_dir, tmp_path / "once", ["retrieval"],
                       settings=EvalSettings(tasks=["retrieval"], clips=CLIPS), make_figures=False)
    assert loads == [run_dir / "backbone.pt"] and set(results["models"]) == {"pretrained", "random"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("eval.retrieval.ks=[]", "eval.retrieval: ks must be a non-empty list"),
        ("eval.fewshot.shots=[0, 5]", "eval.fewshot: shots must be a non-empty list"),
        ("eval.linear.batch_size=0", "eval.linear: batch_size must be >= 1"),
        ("eval.finetune.dropout=1.0", r"eval.finetune: dropout must lie in \[0, 1\)"),
        ("eval.clips.num_workers=-1", "eval.clips: num_workers must be >= 0, got -1"),
        ("eval.baselines=[idt, idt]", r"eval: baselines names a baseline more than once: \['idt', 'idt'\]"),
    ],
)
def test_bad_eval_settings_are_refused_before_any_work(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_pipeline("stats", overrides=parse_overrides([override]))
