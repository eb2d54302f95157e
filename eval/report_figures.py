"""The figures of an evaluation report: t-SNE, confusion matrix, retrieval grids, attention maps and
fine-tuning curves, drawn by ``eval.figures`` from the results of ``eval.evaluate``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from eval import figures
from eval.attention import attention_panels
from eval.labelled import LabelledSplit, LabelledVideos
from eval.settings import EvalSettings
from preprocess.dataset import Dataset

RETRIEVAL_GRID_QUERIES = 6
RETRIEVAL_GRID_NEIGHBOURS = 3
ATTENTION_CLIPS = 4


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


def write_retrieval_grid(out_dir: Path, dataset: Dataset, split: LabelledSplit, neighbours: np.ndarray,
                         picks: np.ndarray, name: str) -> str:
    """``retrieval_<name>.png``: the test videos ``picks`` and their nearest training videos; returns the name."""
    file = f"retrieval_{name}.png"
    figures.plot_retrieval_grid(
        [middle_frame(dataset, split.test_ids[q]) for q in picks],
        [[middle_frame(dataset, split.train_ids[g]) for g in neighbours[q]] for q in picks],
        split.train_labels[neighbours[picks]] == split.test_labels[picks, None],
        [split.classes[split.test_labels[q]] for q in picks],
        [[split.classes[split.train_labels[g]] for g in neighbours[q]] for q in picks],
        out_dir / file,
    )
    return file


def write_figures(out_dir: Path, dataset: Dataset, split: LabelledSplit | None, labelled: LabelledVideos,
                  networks: dict[str, torch.nn.Module], features: dict[str, np.ndarray], details: dict[str, dict],
                  settings: EvalSettings, device: torch.device) -> tuple[list[str], dict[str, list[str]]]:
    """t-SNE per model, confusion matrix, retrieval grid per model, attention maps per network (``networks``:
    name -> backbone), fine-tuning curves.

    The retrieval queries (test videos, classes in turn: ``grid_queries``) and the attention clips (labelled
    videos, likewise) depend on the split and labels only, so every model and every run on the same split
    shows the same videos. Returns (file names, {"retrieval": query ids, "attention": video ids})."""
    written: list[str] = []
    shown: dict[str, list[str]] = {}
    headline = next(iter(details))
    for name, feats in features.items():
        labels = np.concatenate([split.train_labels, split.test_labels])
        file = f"tsne_{name}.png"
        figures.plot_tsne(feats, labels, split.classes, out_dir / file, f"t-SNE of {name} video features",
                          settings.seed)
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
    if split is not None and dataset.has_stream("frames"):
        picks = grid_queries(split.test_labels, RETRIEVAL_GRID_QUERIES)
        for name, d in details.items():
            if "retrieval" in d:
                written.append(write_retrieval_grid(out_dir, dataset, split, d["retrieval"]["neighbours"], picks, name))
                shown["retrieval"] = [split.test_ids[q] for q in picks]
    if networks and dataset.has_stream("frames"):
        videos = [labelled.ids[i] for i in grid_queries(labelled.labels, ATTENTION_CLIPS)]
        captions = [f"{labelled.classes[labelled.labels[labelled.ids.index(v)]]}: {v}" for v in videos]
        for name, backbone in networks.items():
            panels = attention_panels(backbone, dataset, settings.stream, videos, settings.clips.clip_len,
                                      settings.clips.crop_size, device)
            file = f"attention_{name}.png"
            figures.plot_attention(panels, captions, out_dir / file, f"Attention of the last conv stage: {name}")
            written.append(file)
        shown["attention"] = videos
    histories = {f"{model} {fraction}": run["history"] for model, d in details.items()
                 for fraction, run in d.get("finetune", {}).items()}
    if histories:
        figures.plot_training_curves(histories, out_dir / "finetune_curves.png")
        written.append("finetune_curves.png")
    return written, shown
