"""Evaluation of one training run (or a random initialisation) on a labelled extracted dataset.

``evaluate`` picks the train/test videos, builds the pretrained backbone and its randomly initialised
twin, runs the requested protocols on both, and writes the report (results JSON, Markdown, figures).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eval import figures
from eval.features import cached_features, file_sha256
from eval.fewshot import few_shot_accuracy
from eval.finetune import finetune, video_probabilities
from eval.metrics import confusion_matrix, topk_accuracy
from eval.probe import logistic_regression_probabilities, probe_probabilities, train_linear_probe
from eval.report import differences, write_report
from eval.retrieval import nearest_neighbours, retrieval_recall
from eval.segment_finetune import segment_finetune
from eval.segments import SegmentLayout, segment_features
from eval.settings import ALL_TASKS, EvalSettings
from eval.splits import label_fraction, stratified_split
from preprocess.dataset import Dataset
from preprocess.streams import CHANNELS
from train.backbones import build_backbone, load_backbone

log = logging.getLogger(__name__)
BACKBONE_FILE = "backbone.pt"
RETRIEVAL_GRID_QUERIES = 6
RETRIEVAL_GRID_NEIGHBOURS = 3


@dataclass
class LabelledSplit:
    """Train and test videos of a dataset with int class labels."""

    classes: list[str]
    train_ids: list[str]
    train_labels: np.ndarray  # int64 [N_train]
    test_ids: list[str]
    test_labels: np.ndarray  # int64 [N_test]


@dataclass
class Model:
    """A backbone to evaluate and what identifies its weights (for the feature cache)."""

    backbone: torch.nn.Module
    weights_id: str


def labelled_split(dataset: Dataset, settings: EvalSettings) -> LabelledSplit:
    """Labelled videos split by the dataset's split files (``split: files``) or stratified per class."""
    videos = [v for v in dataset.videos if v.label is not None]
    classes = sorted({v.label for v in videos})
    if len(classes) < 2:
        raise ValueError(f"{dataset.path}: evaluation needs labelled videos of at least 2 classes, found {classes}")
    labels = np.array([classes.index(v.label) for v in videos], dtype=np.int64)
    ids = [v.id for v in videos]
    if settings.split == "stratified":
        train, test = stratified_split(labels, settings.test_fraction, settings.seed)
    else:
        train = np.flatnonzero([v.split == "train" for v in videos])
        test = np.flatnonzero([v.split == "test" for v in videos])
        if len(train) == 0 or len(test) == 0:
            raise ValueError(f"{dataset.path}: split files give {len(train)} train and {len(test)} test videos; "
                             "extract with split files or evaluate with split: stratified")
    return LabelledSplit(classes, [ids[i] for i in train], labels[train], [ids[i] for i in test], labels[test])


def resolve_weights(weights: str | Path) -> Path:
    """A training run directory (its ``backbone.pt``) or a backbone file."""
    path = Path(weights)
    file = path / BACKBONE_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no backbone weights (expected a training run directory or {BACKBONE_FILE})")
    return file


def with_input_contract(settings: EvalSettings, contract: dict[str, Any], where: str) -> EvalSettings:
    """``settings`` with the stream, clip length and crop size that the backbone was trained on (the input
    contract recorded in its file; empty for files written before it was recorded)."""
    if not contract:
        return settings
    if contract["stream"] != settings.stream:
        log.info("%s: evaluating the %s stream the backbone was trained on", where, contract["stream"])
    clips = dataclasses.replace(settings.clips, clip_len=int(contract["clip_len"]),
                                crop_size=int(contract["crop_size"]))
    return dataclasses.replace(settings, stream=contract["stream"], clips=clips)


def build_models(weights: str | Path, backbone: str | None, in_channels: int, seed: int,
                 device: str | torch.device, backbone_args: dict[str, Any] | None = None) -> dict[str, Model]:
    """``{"pretrained": ..., "random": ...}`` (only ``random`` when ``weights == "random"``, built as
    ``build_backbone(backbone, in_channels, **backbone_args)``).

    The random twin has the pretrained backbone's architecture, initialised with ``seed``.
    """
    models: dict[str, Model] = {}
    if str(weights) == "random":
        if backbone is None:
            raise ValueError("--weights random needs --backbone NAME")
        name, kwargs = backbone, dict(backbone_args or {})
    else:
        if backbone_args:
            raise ValueError(f"{weights}: backbone arguments apply to --weights random only (a weights file "
                             f"records its architecture)")
        file = resolve_weights(weights)
        pretrained = load_backbone(file, map_location=device)
        name, kwargs = pretrained.build_args["name"], pretrained.build_args["kwargs"]
        if backbone is not None and backbone != name:
            raise ValueError(f"{file}: holds a {name!r} backbone, not {backbone!r}")
        if pretrained.in_channels != in_channels:
            raise ValueError(f"{file}: backbone takes {pretrained.in_channels} input channels, the evaluated "
                             f"stream has {in_channels}; set eval.stream to the stream it was trained on")
        models["pretrained"] = Model(pretrained, f"sha256:{file_sha256(file)}")
    torch.manual_seed(seed)
    random_backbone = build_backbone(name, in_channels, **kwargs).to(device).eval()
    models["random"] = Model(random_backbone, f"random:{name}:{in_channels}:{sorted(kwargs.items())}:seed{seed}:"
                                              f"torch{torch.__version__}")
    return models


def _percent(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def frozen_feature_protocols(train_x: np.ndarray, test_x: np.ndarray, split: LabelledSplit, tasks: list[str],
                             settings: EvalSettings, device: str | torch.device) -> tuple[dict, dict]:
    """Linear probe + logistic regression, few-shot and retrieval on video features.

    Returns (flat metrics, details) of one model.
    """
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {}
    n_classes = len(split.classes)
    if "linear" in tasks:
        probe, losses = train_linear_probe(train_x, split.train_labels, n_classes, settings.linear, settings.seed,
                                           device)
        probe_scores = probe_probabilities(probe, test_x)
        logreg_scores = logistic_regression_probabilities(train_x, split.train_labels, test_x, n_classes,
                                                          settings.linear.logreg_c, settings.linear.logreg_max_iter)
        for name, scores in (("linear", probe_scores), ("logreg", logreg_scores)):
            metrics[f"{name}.top1"] = topk_accuracy(scores, split.test_labels, 1)
            metrics[f"{name}.top5"] = topk_accuracy(scores, split.test_labels, 5)
        details["linear"] = {
            "train_loss": losses,
            "confusion": confusion_matrix(split.test_labels, probe_scores.argmax(1), n_classes),
        }
    if "fewshot" in tasks:
        smallest = int(np.bincount(split.train_labels, minlength=n_classes).min())
        shots = [k for k in settings.fewshot.shots if k <= smallest]
        if len(shots) < len(settings.fewshot.shots):
            details["fewshot_note"] = (f"k > {smallest} left out: the smallest class has {smallest} training videos")
        results = few_shot_accuracy(train_x, split.train_labels, test_x, split.test_labels, n_classes, shots,
                                    settings.fewshot.draws, settings.seed, settings.linear.logreg_c)
        for k, result in results.items():
            metrics[f"fewshot.{k}shot"] = result["mean"]
            metrics[f"fewshot.{k}shot.std"] = result["std"]
        details["fewshot"] = {k: {"mean": r["mean"], "std": r["std"], "accuracies": r["accuracies"]}
                              for k, r in results.items()}
    if "retrieval" in tasks:
        recall = retrieval_recall(test_x, split.test_labels, train_x, split.train_labels, settings.retrieval.ks)
        metrics.update({f"retrieval.R@{k}": value for k, value in recall.items()})
        neighbours = nearest_neighbours(test_x, train_x, RETRIEVAL_GRID_NEIGHBOURS)
        details["retrieval"] = {"neighbours": neighbours, "gallery_size": len(train_x)}
    return metrics, details


def finetune_protocol(model: Model, dataset: Dataset, split: LabelledSplit, settings: EvalSettings,
                      device: str | torch.device, progress: bool,
                      layout: SegmentLayout | None = None) -> tuple[dict, dict]:
    """Fine-tuning at every label fraction (a segment backbone: its method's protocol, ``eval.segment_finetune``);
    returns (flat metrics, details with histories)."""
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {}
    for fraction in settings.finetune.label_fractions:
        kept = label_fraction(split.train_labels, fraction, settings.seed)
        train_ids = [split.train_ids[i] for i in kept]
        if layout is not None:
            result = segment_finetune(model.backbone, layout, dataset, settings.stream, train_ids,
                                      split.train_labels[kept], split.test_ids, split.test_labels, len(split.classes),
                                      settings.finetune, settings.segments, settings.clips.crop_size, settings.seed,
                                      device, progress)
        else:
            result = finetune(model.backbone, dataset, settings.stream, train_ids, split.train_labels[kept],
                              split.test_ids, split.test_labels, len(split.classes), settings.finetune,
                              settings.clips, settings.seed, device, progress)
        metrics.update({f"finetune.{_percent(fraction)}.{name}": v for name, v in result.metrics.items()})
        details[_percent(fraction)] = {
            "n_train": len(kept),
            "history": result.history,
            "confusion": confusion_matrix(split.test_labels, video_probabilities(result.clip_probabilities).argmax(1),
                                          len(split.classes)),
        }
    return metrics, details


def middle_frame(dataset: Dataset, video_id: str) -> np.ndarray:
    """The middle stored frame of a video: uint8 [H, W, 3]."""
    n = dataset.video(video_id).n_frames
    return dataset.read_frames(video_id, n // 2, n // 2 + 1)[0]


def grid_queries(labels: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` indices into ``labels`` taking classes in turn: the first video of every class, then the
    second, ... (int64, at most ``len(labels)``)."""
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    rounds = max(len(members) for members in by_class)
    order = [members[r] for r in range(rounds) for members in by_class if r < len(members)]
    return np.array(order[:n], dtype=np.int64)


def write_figures(out_dir: Path, dataset: Dataset, split: LabelledSplit, features: dict[str, np.ndarray],
                  details: dict[str, dict], seed: int) -> list[str]:
    """t-SNE per model, confusion matrix, retrieval grid and fine-tuning curves; returns the file names."""
    written: list[str] = []
    headline = "pretrained" if "pretrained" in details else "random"
    for name, feats in features.items():
        labels = np.concatenate([split.train_labels, split.test_labels])
        file = f"tsne_{name}.png"
        figures.plot_tsne(feats, labels, split.classes, out_dir / file, f"t-SNE of {name} video features", seed)
        written.append(file)
    head = details[headline]
    confusion = head.get("linear", {}).get("confusion")
    source = "linear probe"
    if confusion is None and head.get("finetune"):
        fraction, run = next(reversed(head["finetune"].items()))
        confusion, source = run["confusion"], f"fine-tuning ({fraction} labels)"
    if confusion is not None:
        file = f"confusion_{headline}.png"
        figures.plot_confusion(confusion, split.classes, out_dir / file, f"Confusion matrix: {headline}, {source}")
        written.append(file)
    if "retrieval" in head and dataset.has_stream("frames"):
        neighbours = head["retrieval"]["neighbours"]
        picks = grid_queries(split.test_labels, RETRIEVAL_GRID_QUERIES)
        figures.plot_retrieval_grid(
            [middle_frame(dataset, split.test_ids[q]) for q in picks],
            [[middle_frame(dataset, split.train_ids[g]) for g in neighbours[q]] for q in picks],
            split.train_labels[neighbours[picks]] == split.test_labels[picks, None],
            [split.classes[split.test_labels[q]] for q in picks],
            [[split.classes[split.train_labels[g]] for g in neighbours[q]] for q in picks],
            out_dir / f"retrieval_{headline}.png",
        )
        written.append(f"retrieval_{headline}.png")
    histories = {f"{model} {fraction}": run["history"] for model, d in details.items()
                 for fraction, run in d.get("finetune", {}).items()}
    if histories:
        figures.plot_training_curves(histories, out_dir / "finetune_curves.png")
        written.append("finetune_curves.png")
    return written


def evaluate_model(model: Model, dataset: Dataset, data_dir: str | Path, split: LabelledSplit, tasks: list[str],
                   settings: EvalSettings, cache_dir: Path, device: torch.device, progress: bool,
                   layout: SegmentLayout | None = None) -> tuple[dict[str, float], dict[str, Any], np.ndarray | None]:
    """Run ``tasks`` on one model: (flat metrics, details, video features [N_train + N_test, D] or None
    when only fine-tuning ran). A segment backbone (``layout``) is fed its segments (``eval.segments``)."""
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {}
    features = None
    frozen = [t for t in tasks if t != "finetune"]
    if frozen:
        ids = sorted(split.train_ids + split.test_ids)
        if layout is not None:
            all_x = segment_features(model.backbone, dataset, ids, layout, settings.stream, settings.stage,
                                     settings.segments.test_segments, settings.clips.crop_size,
                                     settings.clips.batch_size, device, progress)
        else:
            all_x = cached_features(model.backbone, model.weights_id, dataset, data_dir, ids, settings.stage,
                                    settings.stream, settings.clips, cache_dir, device, progress)
        row = {vid: i for i, vid in enumerate(ids)}
        train_x = all_x[[row[v] for v in split.train_ids]]
        test_x = all_x[[row[v] for v in split.test_ids]]
        features = np.concatenate([train_x, test_x])
        metrics, details = frozen_feature_protocols(train_x, test_x, split, frozen, settings, device)
    if "finetune" in tasks:
        tuned_metrics, details["finetune"] = finetune_protocol(model, dataset, split, settings, device, progress,
                                                               layout)
        metrics.update(tuned_metrics)
    return metrics, details, features


def evaluate(weights: str | Path, data_dir: str | Path, out_dir: str | Path,
             tasks: list[str] | tuple[str, ...] | None = None, *, backbone: str | None = None,
             backbone_args: dict[str, Any] | None = None, settings: EvalSettings | None = None,
             cache_dir: str | Path | None = None,
             device: str | torch.device | None = None, make_figures: bool = True,
             progress: bool = False) -> dict[str, Any]:
    """Evaluate ``weights`` (a training run directory, a backbone file, or ``"random"``) on ``data_dir``.

    ``tasks`` from linear, finetune, fewshot, retrieval, or ``["all"]`` (default: ``settings.tasks``).
    ``backbone``/``backbone_args`` name the architecture when ``weights == "random"``; otherwise a randomly
    initialised twin is evaluated alongside as the baseline.
    Features are cached in ``cache_dir`` (default ``out_dir/feature_cache``). Writes ``results.json``,
    ``summary.md`` and PNG figures into ``out_dir`` and returns the results dict, whose ``models`` maps
    each model to its flat metrics and ``difference`` holds pretrained minus random.
    """
    settings = settings or EvalSettings()
    tasks = list(settings.tasks if tasks is None else tasks)
    tasks = list(ALL_TASKS) if "all" in tasks else tasks
    unknown = sorted(set(tasks) - set(ALL_TASKS))
    if unknown or not tasks:
        raise ValueError(f"unknown evaluation task(s) {unknown or tasks} (known: {', '.join(ALL_TASKS)}, all)")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache_dir) if cache_dir else out_dir / "feature_cache"
    contract: dict[str, Any] = {}
    layout = None
    if str(weights) != "random":
        file = resolve_weights(weights)
        contract = load_backbone(file).input_contract
        settings = with_input_contract(settings, contract, str(file))
        layout = SegmentLayout.from_contract(contract, str(file))
    with Dataset(data_dir) as dataset:
        if not dataset.has_stream(settings.stream):
            raise ValueError(f"{data_dir}: dataset has no {settings.stream!r} stream, which the evaluated "
                             f"backbone reads (extract it first)")
        if "flow_bound" in contract and dataset.flow_bound != contract["flow_bound"]:
            raise ValueError(f"{data_dir}: flow is stored with bound {dataset.flow_bound:g} px, the backbone was "
                             f"trained on flow scaled by {contract['flow_bound']:g} px")
        split = labelled_split(dataset, settings)
        channels = layout.in_channels(settings.stream) if layout is not None else CHANNELS[settings.stream]
        models = build_models(weights, backbone, channels, settings.seed, device, backbone_args)
        metrics: dict[str, dict[str, float]] = {}
        details: dict[str, dict[str, Any]] = {}
        features: dict[str, np.ndarray] = {}
        for name, model in models.items():
            metrics[name], details[name], model_features = evaluate_model(
                model, dataset, data_dir, split, tasks, settings, cache_dir, device, progress, layout)
            if model_features is not None:
                features[name] = model_features
            log.info("%s: %s", name, {k: round(v, 4) for k, v in metrics[name].items()})
        figure_files = write_figures(out_dir, dataset, split, features, details, settings.seed) if make_figures else []
    results: dict[str, Any] = {
        "weights": str(weights),
        "weights_id": next(iter(models.values())).weights_id,
        "backbone": next(iter(models.values())).backbone.build_args["name"],
        "data": str(data_dir),
        "stage": settings.stage,
        "stream": settings.stream,
        "split": settings.split,
        "tasks": tasks,
        "classes": split.classes,
        "n_classes": len(split.classes),
        "n_train": len(split.train_ids),
        "n_test": len(split.test_ids),
        "train_ids": split.train_ids,
        "test_ids": split.test_ids,
        "settings": dataclasses.asdict(settings),
        "models": metrics,
        "details": details,
        "figures": figure_files,
    }
    if "pretrained" in metrics:
        results["difference"] = differences(metrics["pretrained"], metrics["random"])
    write_report(results, out_dir)
    return results
