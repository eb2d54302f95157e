"""Dynamic scene recognition (YUPENN protocol, thesis §2.6): overlapping clip windows, one L2-normalised
descriptor per video, a linear SVM evaluated leave-one-out over videos."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from joblib import Parallel, delayed
from sklearn.svm import LinearSVC

from eval.clips import clip_indices
from eval.retrieval import l2_normalize


def clip_windows(n_frames: int, clip_len: int = 16, overlap: int = 8) -> np.ndarray:
    """Frame indices int64 [K, clip_len] of the clips covering a video, consecutive clips sharing
    ``overlap`` frames: starts 0, s, 2s, ... (s = clip_len - overlap) while a clip fits.

    The frames after the last full clip are left out; a video shorter than ``clip_len`` gives one clip
    that loops (``eval.clips.clip_indices``).
    """
    if n_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {n_frames}")
    if not 0 <= overlap < clip_len:
        raise ValueError(f"overlap must lie in [0, clip_len), got {overlap} for clip_len {clip_len}")
    starts = np.arange(0, max(n_frames - clip_len, 0) + 1, clip_len - overlap)
    return np.stack([clip_indices(int(s), clip_len, n_frames) for s in starts])


def video_descriptor(clip_features: np.ndarray) -> np.ndarray:
    """Mean of a video's clip features [K, D], scaled to unit L2 norm: float64 [D] (all zeros stay zero)."""
    clip_features = np.asarray(clip_features, dtype=np.float64)
    if clip_features.ndim != 2 or len(clip_features) == 0:
        raise ValueError(f"expected clip features [K, D] with K >= 1, got shape {clip_features.shape}")
    return l2_normalize(clip_features.mean(axis=0, keepdims=True))[0]


class LeaveOneOut(NamedTuple):
    """Leave-one-out result: fraction of videos labelled correctly and each video's predicted label [N]."""

    accuracy: float
    predictions: np.ndarray


def _held_out_prediction(x: np.ndarray, y: np.ndarray, held_out: int, c: float, max_iter: int):
    """Label of video ``held_out`` from a ``LinearSVC(C=c)`` trained on all the other videos."""
    train = np.arange(len(x)) != held_out
    if len(np.unique(y[train])) == 1:
        return y[train][0]
    model = LinearSVC(C=c, max_iter=max_iter, random_state=0).fit(x[train], y[train])
    return model.predict(x[held_out: held_out + 1])[0]


def leave_one_out_svm(descriptors: np.ndarray, labels: np.ndarray, c: float = 1.0, max_iter: int = 10000,
                      n_jobs: int = 1) -> LeaveOneOut:
    """Label every video by a ``LinearSVC(C=c)`` (one-vs-rest) trained on all the other videos.

    descriptors: float [N, D] (``video_descriptor`` rows); labels [N] (ints or strings). When the other
    videos hold a single class, that class is predicted. The N fits run in ``n_jobs`` threads (-1: one per
    core); the result does not depend on it.
    """
    x, y = np.asarray(descriptors, dtype=np.float64), np.asarray(labels)
    if x.ndim != 2 or y.shape != (len(x),) or len(x) < 2:
        raise ValueError(f"expected descriptors [N, D] and labels [N] with N >= 2, got {x.shape} and {y.shape}")
    predicted = Parallel(n_jobs=n_jobs, prefer="threads")(
        delayed(_held_out_prediction)(x, y, held_out, c, max_iter) for held_out in range(len(x))
    )
    predictions = np.array(predicted, dtype=y.dtype)
    return LeaveOneOut(float((predictions == y).mean()), predictions)
