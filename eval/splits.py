"""Index selection for evaluation: stratified splits, label fractions, few-shot draws.

All functions take int class labels [N] and return sorted int64 indices into them.
"""
from __future__ import annotations

import numpy as np


def _indices_by_class(labels: np.ndarray) -> dict[int, np.ndarray]:
    labels = np.asarray(labels)
    return {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split every class into train and test with ``round(n_c * test_fraction)`` test items, at least one
    of each when a class has two or more items. Returns (train int64 [N_train], test int64 [N_test])."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c, members in _indices_by_class(labels).items():
        if len(members) < 2:
            raise ValueError(f"class {c} has {len(members)} video(s); a stratified split needs at least 2")
        n_test = min(max(int(round(len(members) * test_fraction)), 1), len(members) - 1)
        shuffled = rng.permutation(members)
        test.append(shuffled[:n_test])
        train.append(shuffled[n_test:])
    return np.sort(np.concatenate(train)).astype(np.int64), np.sort(np.concatenate(test)).astype(np.int64)


def label_fraction(labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """A stratified subset keeping ``fraction`` of every class (rounded), at least one per class.

    Used for the semi-supervised setting (1%, 10%, 100% of the training labels).
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    kept = [
        rng.choice(members, size=max(1, int(round(len(members) * fraction))), replace=False)
        for members in _indices_by_class(labels).values()
    ]
    return np.sort(np.concatenate(kept)).astype(np.int64)


def few_shot_draw(labels: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``shots`` items of every class, drawn without replacement.

    Raises ValueError naming the class when one has fewer than ``shots`` items.
    """
    by_class = _indices_by_class(labels)
    short = {c: len(m) for c, m in by_class.items() if len(m) < shots}
    if short:
        raise ValueError(f"{shots}-shot needs {shots} training videos per class; too few in classes {short}")
    drawn = [rng.choice(members, size=shots, replace=False) for members in by_class.values()]
    return np.sort(np.concatenate(drawn)).astype(np.int64)
