"""Pair lists: the builder's folds (classes of a test fold never in its training folds, balance, no
repeats) on synthetic and real ARID labels, the text format and ASLAN's MATLAB views."""
from __future__ import annotations

import csv
from collections import Counter
from itertools import combinations

import h5py
import numpy as np
import pytest
from scipy.io import savemat

from eval.pairs import PairList, build_pairs, classes_shared_across_folds, read_aslan_view, read_pairs, write_pairs


def _unbalanced_dataset(n_classes: int = 25) -> tuple[list[str], list[str]]:
    sizes = [2 + (7 * c) % 9 for c in range(n_classes)]  # 2 .. 10 videos per class
    labels = [f"class{c:02d}" for c, n in enumerate(sizes) for _ in range(n)]
    return [f"{label}/v{i:03d}.mp4" for i, label in enumerate(labels)], labels


def _check_pair_list(pairs: PairList, video_ids, labels, n_folds: int, n_half: int) -> None:
    label_of = dict(zip(video_ids, labels))
    for fold in range(n_folds):
        in_fold = pairs.fold == fold
        assert pairs.same[in_fold].sum() == n_half and (~pairs.same[in_fold]).sum() == n_half
    for a, b, same, ca, cb in zip(pairs.first, pairs.second, pairs.same, pairs.first_class, pairs.second_class):
        assert a != b and label_of[a] == ca and label_of[b] == cb and same == (ca == cb)
    assert max(Counter(frozenset(p) for p in zip(pairs.first, pairs.second)).values()) == 1
    for fold in range(n_folds):  # brute force: no class or video of the test fold in any training fold
        test = [i for i in range(len(pairs)) if pairs.fold[i] == fold]
        train = [i for i in range(len(pairs)) if pairs.fold[i] != fold]
        test_classes = {pairs.first_class[i] for i in test} | {pairs.second_class[i] for i in test}
        train_classes = {pairs.first_class[i] for i in train} | {pairs.second_class[i] for i in train}
        test_videos = {pairs.first[i] for i in test} | {pairs.second[i] for i in test}
        train_videos = {pairs.first[i] for i in train} | {pairs.second[i] for i in train}
        assert not test_classes & train_classes and not test_videos & train_videos


def test_builder_keeps_test_fold_classes_out_of_training_folds() -> None:
    video_ids, labels = _unbalanced_dataset()
    pairs = build_pairs(video_ids, labels, n_folds=10, pairs_per_fold=8, seed=3)
    assert len(pairs) == 80
    _check_pair_list(pairs, video_ids, labels, n_folds=10, n_half=4)
    assert all(not shared for shared in classes_shared_across_folds(pairs).values())
    leaky = PairList(pairs.first, pairs.second, pairs.same, pairs.first_class, pairs.second_class,
                     np.where(np.arange(len(pairs)) == 0, 1, pairs.fold))  # fold 0's first pair moved to fold 1
    assert classes_shared_across_folds(leaky)[1] == {pairs.first_class[0]}
    assert classes_shared_across_folds(leaky)[0] == {pairs.first_class[0]}
    again = build_pairs(video_ids, labels, n_folds=10, pairs_per_fold=8, seed=3)
    other = build_pairs(video_ids, labels, n_folds=10, pairs_per_fold=8, seed=4)
    assert again.first.tolist() == pairs.first.tolist() and other.first.tolist() != pairs.first.tolist()


def test_builder_caps_pairs_at_what_the_smallest_fold_allows() -> None:
    # 4 classes of 3 videos in 2 folds: per fold 2 * C(3, 2) = 6 same and 3 * 3 = 9 different pairs
    labels = [c for c in "abcd" for _ in range(3)]
    video_ids = [f"{c}{i}" for i, c in enumerate(labels)]
    pairs = build_pairs(video_ids, labels, n_folds=2, pairs_per_fold=600)
    _check_pair_list(pairs, video_ids, labels, n_folds=2, n_half=6)
    fold0 = [frozenset(p) for p, s, f in zip(zip(pairs.first, pairs.second), pairs.same, pairs.fold) if s and f == 0]
    classes0 = set(pairs.first_class[pairs.fold == 0])
    expected = {frozenset((a, b)) for a, b in combinations(video_ids, 2) if a[0] == b[0] and a[0] in classes0}
    assert set(fold0) == expected  # every possible same pair of the fold, once
    with pytest.raises(ValueError, match="at least 6 classes"):
        build_pairs(video_ids, labels, n_folds=3)
    with pytest.raises(ValueError, match="no class with 2 videos"):
        build_pairs(["a", "b", "c", "d"], ["w", "x", "y", "z"], n_folds=2)


def test_builder_on_arid_labels(shared_data) -> None:
    with open(shared_data / "videos.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row["dataset"] == "arid"]
    video_ids, labels = [row["path"] for row in rows], [row["label"] for row in rows]
    assert len(set(labels)) == 6
    pairs = build_pairs(video_ids, labels, n_folds=3, pairs_per_fold=600, seed=0)  # ASLAN's KTH protocol
    _check_pair_list(pairs, video_ids, labels, n_folds=3, n_half=300)
    assert [len(set(pairs.first_class[pairs.fold == f])) for f in range(3)] == [2, 2, 2]


def test_text_format_round_trip(tmp_path) -> None:
    video_ids, labels = _unbalanced_dataset()
    pairs = build_pairs(video_ids, labels, n_folds=10, pairs_per_fold=4)
    write_pairs(tmp_path / "pairs.txt", pairs)
    lines = (tmp_path / "pairs.txt").read_text().splitlines()
    assert lines[0].startswith("#") and len(lines) == len(pairs) + 1
    first_row = [pairs.first[0], pairs.second[0], "1", pairs.first_class[0], pairs.second_class[0], "0"]
    assert lines[1] == "\t".join(first_row)
    again = read_pairs(tmp_path / "pairs.txt")
    for column in ("first", "second", "same", "first_class", "second_class", "fold"):
        assert getattr(again, column).tolist() == getattr(pairs, column).tolist()
    (tmp_path / "bad.txt").write_text("a\tb\tyes\tx\tx\t0\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        read_pairs(tmp_path / "bad.txt")


def _aslan_view2() -> np.ndarray:
    """A small View-2 matrix in ASLAN's layout: [pairs, 5 columns, splits] of doubles."""
    split0 = [[1, 2, 1, 7, 7], [3, 4, 0, 7, 9]]
    split1 = [[5, 6, 1, 11, 11], [5, 10, 0, 11, 12]]
    return np.stack([np.array(split0, float), np.array(split1, float)], axis=2)


def test_reads_aslan_views_as_they_are(tmp_path) -> None:
    view2 = _aslan_view2()
    savemat(tmp_path / "View2.mat", {"action_splits_pairs": view2})
    pairs = read_pairs(tmp_path / "View2.mat")
    assert pairs.first.tolist() == ["0001", "0003", "0005", "0005"]
    assert pairs.second.tolist() == ["0002", "0004", "0006", "0010"]
    assert pairs.same.tolist() == [True, False, True, False]
    assert pairs.first_class.tolist() == ["7", "7", "11", "11"]
    assert pairs.second_class.tolist() == ["7", "9", "11", "12"]
    assert pairs.fold.tolist() == [0, 0, 1, 1]
    savemat(tmp_path / "train_pairs.mat", {"train_pairs": view2[:, :, 1]})  # View-1: [N, 5]
    view1 = read_aslan_view(tmp_path / "train_pairs.mat")
    assert view1.first.tolist() == ["0005", "0005"] and view1.fold.tolist() == [0, 0]
    with h5py.File(tmp_path / "View2_v73.mat", "w") as handle:  # MATLAB v7.3 stores the axes reversed
        handle["action_splits_pairs"] = view2.T
    v73 = read_pairs(tmp_path / "View2_v73.mat")
    assert v73.first.tolist() == pairs.first.tolist() and v73.fold.tolist() == pairs.fold.tolist()
    savemat(tmp_path / "wrong.mat", {"pairs": np.ones((3, 4))})
    with pytest.raises(ValueError, match="shape"):
        read_pairs(tmp_path / "wrong.mat")
    (tmp_path / "damaged.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(range(256)) * 2)
    with pytest.raises(ValueError, match=f"^{tmp_path / 'damaged.mat'}: not a MATLAB pair matrix"):
        read_pairs(tmp_path / "damaged.mat")
