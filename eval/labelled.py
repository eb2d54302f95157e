"""The labelled videos of an extracted dataset and their train/test split."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eval.settings import EvalSettings
from eval.splits import stratified_split
from preprocess.dataset import Dataset


@dataclass
class LabelledSplit:
    """Train and test videos of a dataset with int class labels."""

    classes: list[str]
    train_ids: list[str]
    train_labels: np.ndarray  # int64 [N_train]
    test_ids: list[str]
    test_labels: np.ndarray  # int64 [N_test]


@dataclass
class LabelledVideos:
    """Every labelled video of a dataset (dataset order) with int class labels."""

    classes: list[str]
    ids: list[str]
    labels: np.ndarray  # int64 [N]


def labelled_videos(dataset: Dataset) -> LabelledVideos:
    """The dataset's videos that have a label, with classes sorted by name (at least 2 needed)."""
    videos = [v for v in dataset.videos if v.label is not None]
    classes = sorted({v.label for v in videos})
    if len(classes) < 2:
        raise ValueError(f"{dataset.path}: evaluation needs labelled videos of at least 2 classes, found {classes}")
    return LabelledVideos(classes, [v.id for v in videos],
                          np.array([classes.index(v.label) for v in videos], dtype=np.int64))


def labelled_split(dataset: Dataset, settings: EvalSettings) -> LabelledSplit:
    """Labelled videos split by the dataset's split files (``split: files``) or stratified per class."""
    videos = [v for v in dataset.videos if v.label is not None]
    labelled = labelled_videos(dataset)
    classes, labels, ids = labelled.classes, labelled.labels, labelled.ids
    if settings.split == "stratified":
        train, test = stratified_split(labels, settings.test_fraction, settings.seed)
    else:
        train = np.flatnonzero([v.split == "train" for v in videos])
        test = np.flatnonzero([v.split == "test" for v in videos])
        if len(train) == 0 or len(test) == 0:
            raise ValueError(f"{dataset.path}: split files give {len(train)} train and {len(test)} test videos; "
                             "extract with split files or evaluate with split: stratified")
    return LabelledSplit(classes, [ids[i] for i in train], labels[train], [ids[i] for i in test], labels[test])
