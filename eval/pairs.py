"""Same/not-same pair lists in folds: ASLAN's benchmark views read as they are, our text form of the same
columns, and a builder that makes such a list from any labelled dataset (classes of a fold unseen in the
others, as in ASLAN's View-2).

ASLAN's views (Kliper-Gross et al. 2012, the benchmark's ReadMe) are MATLAB files: View-1
``train_pairs.mat`` / ``test_pairs.mat`` hold an [N, 5] matrix, View-2 ``View2.mat`` the [600, 5, 10]
matrix ``action_splits_pairs`` (pairs x columns x splits); the columns are the first and second sample
ids, the pair label (1 same, 0 not-same), the first and second action ids. Sample ids are the
four-digit numbers (``0001`` .. ``3697``) that end ASLAN's video file names.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TEXT_HEADER = "# first\tsecond\tsame\tfirst_class\tsecond_class\tfold"


@dataclass(eq=False)
class PairList:
    """Pairs of videos with their same/not-same label, classes and fold, one entry per pair (arrays [P]):
    ``first``/``second`` video ids (str), ``same`` bool, ``first_class``/``second_class`` (str), ``fold`` int64."""

    first: np.ndarray
    second: np.ndarray
    same: np.ndarray
    first_class: np.ndarray
    second_class: np.ndarray
    fold: np.ndarray

    def __post_init__(self) -> None:
        self.first, self.second = np.asarray(self.first, dtype=str), np.asarray(self.second, dtype=str)
        self.first_class = np.asarray(self.first_class, dtype=str)
        self.second_class = np.asarray(self.second_class, dtype=str)
        self.same, self.fold = np.asarray(self.same, dtype=bool), np.asarray(self.fold, dtype=np.int64)
        sizes = {len(a) for a in (self.first, self.second, self.same, self.first_class, self.second_class, self.fold)}
        if len(sizes) != 1:
            raise ValueError(f"every column of a pair list needs one entry per pair, got lengths {sorted(sizes)}")

    def __len__(self) -> int:
        return len(self.same)


def write_pairs(path: str | Path, pairs: PairList) -> None:
    """Write ``pairs`` as text: a header line, then one tab-separated line per pair with ASLAN's five
    columns (first, second, same 1/0, first class, second class) and the fold."""
    lines = [TEXT_HEADER]
    for row in zip(pairs.first, pairs.second, pairs.same, pairs.first_class, pairs.second_class, pairs.fold):
        lines.append("\t".join([row[0], row[1], str(int(row[2])), row[3], row[4], str(int(row[5]))]))
    Path(path).write_text("\n".join(lines) + "\n")


def read_pairs(path: str | Path) -> PairList:
    """A pair list from ``write_pairs``'s text (``*.txt``) or an ASLAN view (``*.mat``, see module doc)."""
    path = Path(path)
    if path.suffix == ".mat":
        return read_aslan_view(path)
    columns: list[list[str]] = [[] for _ in range(6)]
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 6 or fields[2] not in ("0", "1") or not fields[5].lstrip("-").isdigit():
            raise ValueError(f"{path}:{number}: expected 'first<TAB>second<TAB>0|1<TAB>first_class<TAB>"
                             f"second_class<TAB>fold', got {line!r}")
        for column, field in zip(columns, fields):
            column.append(field)
    first, second, same, first_class, second_class, fold = columns
    return PairList(first, second, np.array(same) == "1", first_class, second_class,
                    np.array(fold, dtype=np.int64))


def _load_mat_matrix(path: Path) -> np.ndarray:
    """The one numeric matrix of a MAT file (v5 through scipy, v7.3/HDF5 through h5py, axes restored)."""
    import h5py

    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as handle:
            arrays = {name: handle[name][()].T for name in handle if isinstance(handle[name], h5py.Dataset)}
    else:
        from scipy.io import loadmat

        try:
            arrays = {name: value for name, value in loadmat(path).items() if not name.startswith("__")}
        except (ValueError, TypeError, OSError) as exc:  # scipy's messages do not name the file
            raise ValueError(f"{path}: not a MATLAB pair matrix ({exc})") from exc
    if len(arrays) != 1:
        raise ValueError(f"{path}: expected one pair matrix, found variables {sorted(arrays)}")
    return np.asarray(next(iter(arrays.values())))


def read_aslan_view(path: str | Path) -> PairList:
    """An ASLAN view as it is: [N, 5] (View-1, all pairs in fold 0) or [N, 5, S] (View-2, split s in fold s).

    Video ids are the four-digit sample ids (``"0001"``), classes the action ids (``"12"``).
    """
    matrix = _load_mat_matrix(Path(path))
    if matrix.ndim == 2:
        matrix = matrix[:, :, None]
    if matrix.ndim != 3 or matrix.shape[1] != 5:
        raise ValueError(f"{path}: expected an [N, 5] or [N, 5, S] pair matrix, got shape {matrix.shape}")
    rows = np.rint(matrix.transpose(2, 0, 1).reshape(-1, 5)).astype(np.int64)  # split-major
    if not np.isin(rows[:, 2], (0, 1)).all():
        raise ValueError(f"{path}: the pair label column (3rd) must hold 0 or 1")
    return PairList([f"{i:04d}" for i in rows[:, 0]], [f"{i:04d}" for i in rows[:, 1]], rows[:, 2] == 1,
                    rows[:, 3].astype(str), rows[:, 4].astype(str), np.repeat(np.arange(matrix.shape[2]), len(matrix)))


def classes_shared_across_folds(pairs: PairList) -> dict[int, set[str]]:
    """Per fold, the classes of its pairs that also occur in another fold's pairs (all empty when every
    test fold's classes are unseen in its training folds)."""
    by_fold = {int(f): {str(c) for c in np.r_[pairs.first_class[pairs.fold == f], pairs.second_class[pairs.fold == f]]}
               for f in np.unique(pairs.fold)}
    return {f: classes & set().union(*(c for g, c in by_fold.items() if g != f)) for f, classes in by_fold.items()}


def _draw_unique_pairs(draw: Callable[[int], np.ndarray], n: int) -> np.ndarray:
    """``n`` distinct index pairs int64 [n, 2] (each as (low, high)) from ``draw(k)`` -> [k, 2] batches,
    kept in draw order."""
    taken = np.empty((0, 2), dtype=np.int64)
    while len(taken) < n:
        pool = np.concatenate([taken, np.sort(draw(2 * (n - len(taken))), axis=1)])
        _, first_seen = np.unique(pool, axis=0, return_index=True)
        taken = pool[np.sort(first_seen)][:n]
    return taken


def _fold_pairs(codes: np.ndarray, n_half: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n_half`` same-class and ``n_half`` different-class pairs of positions into ``codes`` (class codes
    int [M]), each drawn uniformly among all such unordered pairs without repetition."""
    classes, counts = np.unique(codes, return_counts=True)
    members = [np.flatnonzero(codes == c) for c in classes]
    weights = counts * (counts - 1) / 2.0

    def draw_same(k: int) -> np.ndarray:
        chosen = rng.choice(len(classes), size=k, p=weights / weights.sum())
        picks = [rng.choice(members[c], size=2, replace=False) for c in chosen]
        return np.array(picks, dtype=np.int64).reshape(k, 2)

    def draw_different(k: int) -> np.ndarray:
        candidates = rng.integers(0, len(codes), size=(4 * k, 2))
        return candidates[codes[candidates[:, 0]] != codes[candidates[:, 1]]][:k]

    return _draw_unique_pairs(draw_same, n_half), _draw_unique_pairs(draw_different, n_half)


def build_pairs(video_ids: Sequence[str], labels: Sequence, n_folds: int = 10, pairs_per_fold: int = 600,
                seed: int = 0) -> PairList:
    """A balanced same/not-same pair list over ``n_folds`` folds with disjoint classes.

    The classes (``labels``, one per video) are shuffled and dealt to the folds in turn; a fold's pairs
    join two of its own videos. Every fold gets the same number of same and of not-same pairs:
    ``pairs_per_fold // 2`` (ASLAN: 300 + 300) or fewer when a fold has too few distinct pairs. Pairs are
    uniform among the possible ones, without repetition. Needs at least 2 classes per fold
    (ASLAN's KTH protocol: 6 classes in 3 folds).
    """
    video_ids, labels = np.asarray(video_ids, dtype=str), np.asarray(labels).astype(str)
    if video_ids.shape != labels.shape or len(set(video_ids)) != len(video_ids):
        raise ValueError("expected one label per video and distinct video ids")
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) < 2 * n_folds:
        raise ValueError(f"{n_folds} folds with disjoint classes need at least {2 * n_folds} classes "
                         f"(2 per fold), got {len(classes)}; use fewer folds")
    rng = np.random.default_rng(seed)
    fold_of_class = np.empty(len(classes), dtype=np.int64)
    fold_of_class[rng.permutation(len(classes))] = np.arange(len(classes)) % n_folds
    available = []
    for fold in range(n_folds):
        counts = np.bincount(codes, minlength=len(classes))[fold_of_class == fold]
        same_pairs, different_pairs = (counts * (counts - 1) // 2).sum(), (counts.sum() ** 2 - (counts**2).sum()) // 2
        available.append(int(min(same_pairs, different_pairs)))
    n_half = min(pairs_per_fold // 2, *available)
    if n_half < 1:
        raise ValueError(f"fold {int(np.argmin(available))} has no class with 2 videos; cannot draw same pairs")
    parts = []
    for fold in range(n_folds):
        in_fold = np.flatnonzero(fold_of_class[codes] == fold)
        for same, pairs in zip((True, False), _fold_pairs(codes[in_fold], n_half, rng)):
            first, second = in_fold[pairs[:, 0]], in_fold[pairs[:, 1]]
            parts.append((video_ids[first], video_ids[second], np.full(n_half, same), labels[first], labels[second],
                          np.full(n_half, fold)))
    return PairList(*(np.concatenate(column) for column in zip(*parts)))
