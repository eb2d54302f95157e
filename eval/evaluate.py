"""Evaluation of one training run (or a random initialisation, or stored video descriptors) on a labelled
extracted dataset.

``evaluate`` picks the train/test videos, builds the pretrained backbone and its randomly initialised
twin (or reads the descriptors), runs the requested protocols on both, and writes the report (results JSON,
Markdown, figures).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eval.clusters import CLUSTERS_TASK, cluster_comparison, clustered_videos, load_stored_clusters
from eval.descriptors import NETWORK_ONLY_TASKS, descriptor_source, model_name, read_descriptors
from eval.features import WINDOW_STAGES, cached_features, cached_window_features, file_sha256
from eval.fewshot import few_shot_accuracy
from eval.finetune import finetune, video_probabilities
from eval.labelled import LabelledSplit, LabelledVideos, labelled_split, labelled_videos
from eval.metrics import confusion_matrix, topk_accuracy
from eval.pairs import PairList
from eval.probe import logistic_regression_probabilities, probe_probabilities, train_linear_probe
from eval.report import differences, write_report
from eval.report_figures import RETRIEVAL_GRID_NEIGHBOURS, write_figures
from eval.retrieval import l2_normalize, nearest_neighbours, retrieval_recall
from eval.segment_finetune import segment_finetune
from eval.segments import SegmentLayout, cached_segment_features, cached_segment_window_features
from eval.settings import ALL_TASKS, TASKS, WINDOW_TASKS, EvalSettings
from eval.splits import label_fraction
from eval.video_protocols import pair_list, scenes_protocol, similarity_protocol
from preprocess.dataset import Dataset
from preprocess.streams import CHANNELS
from train.backbones import build_backbone, load_backbone

log = logging.getLogger(__name__)
BACKBONE_FILE = "backbone.pt"
FROZEN_TASKS = ("linear", "fewshot", "retrieval")


@dataclass
class Model:
    """A backbone to evaluate and what identifies its weights (for the feature cache), or (``backbone`` None)
    a file of stored video descriptors."""

    backbone: torch.nn.Module | None
    weights_id: str
    descriptors: Path | None = None


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
                 device: str | torch.device, backbone_args: dict[str, Any] | None = None,
                 pretrained: torch.nn.Module | None = None) -> dict[str, Model]:
    """``{"pretrained": ..., "random": ...}`` (only ``random`` when ``weights == "random"``, built as
    ``build_backbone(backbone, in_channels, **backbone_args)``); ``pretrained``: the backbone of ``weights``
    when already loaded (on ``device``).

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
        pretrained = pretrained if pretrained is not None else load_backbone(file, map_location=device)
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


def descriptor_model(weights: str | Path, file: Path) -> dict[str, Model]:
    """``{name: Model}`` of a stored descriptor file (``eval.descriptors.model_name``), identified by its hash."""
    if not file.is_file():
        read_descriptors(file, [])  # raises the error naming the file
    return {model_name(weights): Model(None, f"sha256:{file_sha256(file)}", file)}


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


def video_features(model: Model, dataset: Dataset, data_dir: str | Path, ids: list[str], settings: EvalSettings,
                   cache_dir: Path, device: torch.device, progress: bool, layout: SegmentLayout | None = None,
                   segments: int | None = None, seed: int | None = None) -> np.ndarray:
    """Video features float32 [N, D] of ``ids``: uniform clips through the backbone, or for a segment backbone
    (``layout``) ``segments`` of its segments (default ``eval.segments.test_segments``), spread over the video or
    at random positions seeded with ``seed`` (both cached); or the stored descriptors."""
    if model.backbone is None:
        return read_descriptors(model.descriptors, ids, settings.descriptors.max_missing_fraction).vectors
    if layout is not None:
        return cached_segment_features(model.backbone, model.weights_id, dataset, data_dir, ids, layout,
                                       settings.stream, settings.stage, segments or settings.segments.test_segments,
                                       settings.clips.crop_size, settings.clips.batch_size, cache_dir, device,
                                       progress, seed)
    return cached_features(model.backbone, model.weights_id, dataset, data_dir, ids, settings.stage,
                           settings.stream, settings.clips, cache_dir, device, progress)


def window_features(model: Model, dataset: Dataset, data_dir: str | Path, ids: list[str], settings: EvalSettings,
                    cache_dir: Path, device: torch.device, progress: bool,
                    layout: SegmentLayout | None = None) -> dict[str, np.ndarray]:
    """L2-normalised video descriptors of ``ids`` for the scenes and similarity protocols: per stage of
    ``WINDOW_STAGES`` from overlapping windows (segment windows for a segment backbone, ``layout``; cached), or
    ``{"descriptor": ...}`` for stored descriptors."""
    if model.backbone is None:
        stored = read_descriptors(model.descriptors, ids, settings.descriptors.max_missing_fraction)
        return {"descriptor": l2_normalize(stored.vectors).astype(np.float32)}
    if layout is not None:
        return cached_segment_window_features(model.backbone, model.weights_id, dataset, data_dir, ids, layout,
                                              settings.stream, settings.clips.crop_size, settings.windows.batch_size,
                                              cache_dir, device, progress)
    return cached_window_features(model.backbone, model.weights_id, dataset, data_dir, ids, settings.stream,
                                  settings.clips, settings.windows.overlap, settings.windows.batch_size, cache_dir,
                                  device, progress)


def evaluate_model(model: Model, dataset: Dataset, data_dir: str | Path, split: LabelledSplit | None,
                   labelled: LabelledVideos, pairs: PairList | None, tasks: list[str], settings: EvalSettings,
                   cache_dir: Path, device: torch.device, progress: bool, layout: SegmentLayout | None = None
                   ) -> tuple[dict[str, float], dict[str, Any], np.ndarray | None]:
    """Run ``tasks`` on one model: (flat metrics, details, video features [N_train + N_test, D] or None
    when no frozen-feature protocol on the split ran). ``pairs``: the similarity pair list (or None). A segment
    backbone (``layout``) is fed its segments (``eval.segments``)."""
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {}
    features = None
    frozen = [t for t in tasks if t in FROZEN_TASKS]
    if frozen:
        if layout is not None:  # training videos: random segments; test videos: spread ones (CPC's protocol)
            common = (model, dataset, data_dir)
            train_x = video_features(*common, split.train_ids, settings, cache_dir, device, progress, layout,
                                     settings.segments.train_segments, settings.seed)
            test_x = video_features(*common, split.test_ids, settings, cache_dir, device, progress, layout)
        else:
            ids = sorted(split.train_ids + split.test_ids)
            all_x = video_features(model, dataset, data_dir, ids, settings, cache_dir, device, progress)
            row = {vid: i for i, vid in enumerate(ids)}
            train_x = all_x[[row[v] for v in split.train_ids]]
            test_x = all_x[[row[v] for v in split.test_ids]]
        features = np.concatenate([train_x, test_x])
        metrics, details = frozen_feature_protocols(train_x, test_x, split, frozen, settings, device)
    if "finetune" in tasks:
        tuned_metrics, details["finetune"] = finetune_protocol(model, dataset, split, settings, device, progress,
                                                               layout)
        metrics.update(tuned_metrics)
    if any(t in WINDOW_TASKS for t in tasks):
        stages = window_features(model, dataset, data_dir, labelled.ids, settings, cache_dir, device, progress,
                                 layout)
        if "scenes" in tasks:
            x = stages["descriptor"] if model.backbone is None else stages[settings.scenes.stage]
            scene_metrics, details["scenes"] = scenes_protocol(x, labelled.labels, labelled.classes, settings.scenes)
            metrics.update(scene_metrics)
        if "similarity" in tasks:
            pair_metrics, details["similarity"] = similarity_protocol([stages[s] for s in WINDOW_STAGES],
                                                                      labelled.ids, pairs, settings.similarity)
            metrics.update(pair_metrics)
    return metrics, details, features


def resolve_tasks(tasks: list[str] | tuple[str, ...] | None, settings: EvalSettings) -> list[str]:
    """The tasks to run: ``tasks`` (``all`` standing for linear, finetune, fewshot, retrieval) or the settings'."""
    tasks = list(settings.tasks if tasks is None else tasks)
    if "all" in tasks:
        tasks = list(ALL_TASKS) + [t for t in tasks if t in WINDOW_TASKS]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        raise ValueError(f"unknown evaluation task(s) {unknown or tasks} (known: {', '.join(TASKS)}, all)")
    return tasks


def evaluate(weights: str | Path, data_dir: str | Path, out_dir: str | Path,
             tasks: list[str] | tuple[str, ...] | None = None, *, backbone: str | None = None,
             backbone_args: dict[str, Any] | None = None, settings: EvalSettings | None = None,
             cache_dir: str | Path | None = None,
             device: str | torch.device | None = None, make_figures: bool = True,
             progress: bool = False, labels_dir: str | Path | None = None) -> dict[str, Any]:
    """Evaluate ``weights`` on ``data_dir``: a training run directory, a backbone file, ``"random"``, or stored
    video descriptors (``"idt"``: the IDT Fisher vectors of the labels folder ``labels_dir``, default DATA/labels;
    ``"descriptors:FILE.h5"``: any such file).

    ``tasks`` from linear, finetune, fewshot, retrieval, scenes, similarity, or ``["all"]`` (the first four;
    default: ``settings.tasks``), and clusters (``eval.clusters``: the IDT clusters of the labels folder
    ``labels_dir``, default DATA/labels, next to k-means of each model's features: ``results["clusters"]`` and
    ``clusters.*`` metrics).
    ``backbone``/``backbone_args`` name the architecture when ``weights == "random"``; otherwise a randomly
    initialised twin is evaluated alongside as the baseline (not for descriptors).
    Features are cached in ``cache_dir`` (default ``out_dir/feature_cache``). Writes ``results.json``,
    ``summary.md`` and PNG figures (and ``pairs.txt`` for similarity) into ``out_dir`` and returns the results
    dict, whose ``models`` maps each model to its flat metrics and ``difference`` holds pretrained minus random.
    """
    settings = settings or EvalSettings()
    tasks = resolve_tasks(tasks, settings)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache_dir) if cache_dir else out_dir / "feature_cache"
    contract: dict[str, Any] = {}
    layout = None
    loaded = None
    descriptors = descriptor_source(weights, data_dir, labels_dir)
    if descriptors is not None:
        refused = [t for t in tasks if t in NETWORK_ONLY_TASKS]
        if refused:
            raise ValueError(f"{descriptors}: stored descriptors cannot run {', '.join(refused)} (fine-tuning needs a "
                             f"network; the similarity measures need non-negative features, Fisher vectors are signed)")
    elif str(weights) != "random":
        file = resolve_weights(weights)
        loaded = load_backbone(file, map_location=device)
        contract = loaded.input_contract
        settings = with_input_contract(settings, contract, str(file))
        layout = SegmentLayout.from_contract(contract, str(file))
    with Dataset(data_dir) as dataset:
        if descriptors is None and not dataset.has_stream(settings.stream):
            raise ValueError(f"{data_dir}: dataset has no {settings.stream!r} stream, which the evaluated "
                             f"backbone reads (extract it first)")
        if "flow_bound" in contract and dataset.flow_bound != contract["flow_bound"]:
            raise ValueError(f"{data_dir}: flow is stored with bound {dataset.flow_bound:g} px, the backbone was "
                             f"trained on flow scaled by {contract['flow_bound']:g} px")
        labelled = labelled_videos(dataset)
        split = labelled_split(dataset, settings) if set(tasks) - set(WINDOW_TASKS) - {CLUSTERS_TASK} else None
        pairs, pairs_source = None, None
        if "similarity" in tasks:
            pairs, pairs_source = pair_list(settings.similarity, labelled.ids,
                                            [labelled.classes[c] for c in labelled.labels], settings.seed, out_dir)
        missing: list[str] = []
        if descriptors is not None:
            models = descriptor_model(weights, descriptors)
            missing = read_descriptors(descriptors, labelled.ids, settings.descriptors.max_missing_fraction).missing
        else:
            channels = layout.in_channels(settings.stream) if layout is not None else CHANNELS[settings.stream]
            models = build_models(weights, backbone, channels, settings.seed, device, backbone_args, loaded)
        metrics: dict[str, dict[str, float]] = {}
        details: dict[str, dict[str, Any]] = {}
        features: dict[str, np.ndarray] = {}
        for name, model in models.items():
            metrics[name], details[name], model_features = evaluate_model(
                model, dataset, data_dir, split, labelled, pairs, tasks, settings, cache_dir, device, progress,
                layout)
            if model_features is not None:
                features[name] = model_features
            log.info("%s: %s", name, {k: round(v, 4) for k, v in metrics[name].items()})
        clusters = None
        if CLUSTERS_TASK in tasks:
            stored = load_stored_clusters(data_dir, labels_dir)
            ids = clustered_videos(stored, dataset)
            clusters = cluster_comparison(stored, dataset, {
                name: video_features(model, dataset, data_dir, ids, settings, cache_dir, device, progress, layout)
                for name, model in models.items()})
            for name, quality in clusters["models"].items():
                metrics[name].update({f"{CLUSTERS_TASK}.{key}": value for key, value in quality.items()})
        stacked = layout is not None and layout.layout == "stacked"  # attention maps take plain clips
        networks = {name: m.backbone for name, m in models.items() if m.backbone is not None and not stacked}
        figure_files, shown = (write_figures(out_dir, dataset, split, labelled, networks, features, details, settings,
                                             device) if make_figures else ([], {}))
    first = next(iter(models.values()))
    results: dict[str, Any] = {
        "weights": str(weights),
        "weights_id": first.weights_id,
        "backbone": first.backbone.build_args["name"] if first.backbone is not None else None,
        "descriptors": str(descriptors) if descriptors is not None else None,
        "data": str(data_dir),
        "stage": settings.stage,
        "stream": settings.stream,
        "split": settings.split,
        "tasks": tasks,
        "classes": labelled.classes,
        "n_classes": len(labelled.classes),
        "n_labelled": len(labelled.ids),
        "settings": dataclasses.asdict(settings),
        "models": metrics,
        "details": details,
        "figures": figure_files,
        "figure_videos": shown,
    }
    if descriptors is not None:
        results["missing_descriptors"] = missing
    if clusters is not None:
        results["clusters"] = clusters
    if split is not None:
        results.update({"n_train": len(split.train_ids), "n_test": len(split.test_ids), "train_ids": split.train_ids,
                        "test_ids": split.test_ids})
    if pairs is not None:
        results.update({"pairs": pairs_source, "n_pairs": len(pairs), "n_folds": int(len(np.unique(pairs.fold)))})
    if "pretrained" in metrics:
        results["difference"] = differences(metrics["pretrained"], metrics["random"])
    write_report(results, out_dir)
    return results
