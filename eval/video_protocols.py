"""The scenes and similarity protocols on video descriptors: settings in, flat metrics and details out.

Dynamic scenes: ``eval.scenes.leave_one_out_svm`` over every labelled video. Action similarity: the pairs
of a list (read, or built by ``eval.pairs.build_pairs``), the 36 (dis)similarities of pool3/4/5
(``eval.similarity.pair_features``), ``same_not_same_cross_validation`` over the list's folds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eval.pairs import PairList, build_pairs, read_pairs, write_pairs
from eval.scenes import leave_one_out_svm
from eval.settings import ScenesSettings, SimilaritySettings
from eval.similarity import pair_features, same_not_same_cross_validation

PAIRS_FILE = "pairs.txt"


def scenes_protocol(descriptors: np.ndarray, labels: np.ndarray, classes: list[str],
                    settings: ScenesSettings) -> tuple[dict[str, float], dict[str, Any]]:
    """Leave-one-out linear SVM on descriptors float [N, D] with int labels [N] -> (metrics, details)."""
    result = leave_one_out_svm(descriptors, labels, settings.svm_c, settings.max_iter, settings.n_jobs)
    per_class = {classes[c]: float((result.predictions[labels == c] == c).mean()) for c in np.unique(labels)}
    return ({"scenes.accuracy": result.accuracy},
            {"predictions": result.predictions, "per_class_accuracy": per_class, "n_videos": len(labels)})


def pair_list(settings: SimilaritySettings, video_ids: list[str], labels: list[str], seed: int,
              out_dir: Path) -> tuple[PairList, str]:
    """The pairs to evaluate and where they come from: ``settings.pairs`` read as is (every video must be in
    ``video_ids``), else built from the labelled videos; either way saved as ``out_dir/pairs.txt``."""
    if settings.pairs:
        pairs, source = read_pairs(settings.pairs), str(settings.pairs)
        known = set(video_ids)
        absent = sorted({v for v in np.r_[pairs.first, pairs.second] if v not in known})
        if absent:
            raise ValueError(f"{settings.pairs}: {len(absent)} video(s) of the pair list are not labelled videos of "
                             f"the dataset, e.g. {', '.join(absent[:3])}")
    else:
        pairs = build_pairs(video_ids, labels, settings.n_folds, settings.pairs_per_fold, seed)
        source = f"built: {settings.n_folds} folds, {settings.pairs_per_fold} pairs per fold, seed {seed}"
    write_pairs(out_dir / PAIRS_FILE, pairs)
    return pairs, source


def similarity_protocol(stage_features: list[np.ndarray], video_ids: list[str], pairs: PairList,
                        settings: SimilaritySettings) -> tuple[dict[str, float], dict[str, Any]]:
    """Same/not-same cross-validation of ``pairs`` on per-stage video features (list of float [N, D_s], rows
    in ``video_ids`` order) -> (metrics, details). ``similarity.accuracy.std`` is the spread over folds
    (n - 1); the standard error of ASLAN is in the details."""
    row = {vid: i for i, vid in enumerate(video_ids)}
    first = np.array([row[v] for v in pairs.first], dtype=np.int64)
    second = np.array([row[v] for v in pairs.second], dtype=np.int64)
    result = same_not_same_cross_validation(pair_features(stage_features, first, second), pairs.same, pairs.fold,
                                            settings.svm_c, settings.max_iter)
    metrics = {"similarity.accuracy": result["accuracy"],
               "similarity.accuracy.std": float(np.std(result["fold_accuracies"], ddof=1)),
               "similarity.auc": result["auc"]}
    details = {key: result[key] for key in ("se", "fold_accuracies", "fold_aucs", "folds")}
    return metrics, {**details, "n_pairs": len(pairs)}
