"""k-means clusters (labels/clusters.py): the K rule, seeded faiss runs, blob recovery, purity and NMI."""
from __future__ import annotations

import math

import numpy as np
import pytest

from labels.clusters import cluster_quality, kmeans_assignments, purity, scaled_cluster_count


def blobs(n_blobs: int, per_blob: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit-variance Gaussian blobs whose centres are ~10 sqrt(2 * 64) apart in 64 dimensions."""
    rng = np.random.default_rng(seed)
    classes = np.repeat(np.arange(n_blobs), per_blob)
    centres = rng.normal(size=(n_blobs, 64)) * 10
    return (centres[classes] + rng.normal(size=(classes.size, 64))).astype(np.float32), classes


def test_cluster_count_rule():
    assert scaled_cluster_count(240_000) == 6000  # the paper's Kinetics-400 setting
    assert scaled_cluster_count(10_000) == 250 and scaled_cluster_count(100_000) == 2500
    assert scaled_cluster_count(150) == 4  # ARID
    assert scaled_cluster_count(30) == 2 and scaled_cluster_count(1) == 1
    assert scaled_cluster_count(150, videos_per_cluster=10, minimum=6) == 15
    with pytest.raises(ValueError):
        scaled_cluster_count(0)


def test_runs_reproducible_per_seed():
    x = np.random.default_rng(3).normal(size=(300, 16)).astype(np.float32)
    runs = kmeans_assignments(x, 7, runs=3, seed=100)
    assert runs.shape == (3, 300) and runs.dtype == np.int64 and runs.min() == 0 and runs.max() == 6
    np.testing.assert_array_equal(runs, kmeans_assignments(x, 7, runs=3, seed=100))
    np.testing.assert_array_equal(runs[2], kmeans_assignments(x, 7, runs=1, seed=102)[0])
    assert not np.array_equal(runs[0], runs[1])  # structureless data: different seeds, different partitions


def test_recovers_well_separated_blobs():
    x, classes = blobs(2, 60)
    for run in kmeans_assignments(x, 2, runs=3):
        assert cluster_quality(run, classes) == {"nmi": 1.0, "purity": 1.0}
    x, classes = blobs(5, 50, seed=1)
    over_segmented = kmeans_assignments(x, 20, runs=3)
    assert all(purity(run, classes) == 1.0 for run in over_segmented)  # no cluster straddles two blobs
    with pytest.raises(ValueError):
        kmeans_assignments(x, 251)


def test_purity_and_nmi_against_hand_computed_values():
    clusters = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    classes = np.array(["a", "a", "b", "b", "b", "b", "c", "a"])
    assert purity(clusters, classes) == 6 / 8  # majorities 2 (a) + 3 (b) + 1
    independent = cluster_quality(np.array([[0, 0, 1, 1]]), np.array([0, 1, 0, 1]))
    assert independent["nmi"] == pytest.approx(0.0, abs=1e-12) and independent["purity"] == 0.5
    # clusters {0,0}, {0,1}: H(K) = ln 2, H(C) = H(3/4, 1/4), H(C|K) = ln(2) / 2, NMI = 2 I / (H(K) + H(C))
    entropy_classes = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    mutual = entropy_classes - math.log(2) / 2
    quality = cluster_quality(np.array([[0, 0, 1, 1], [1, 1, 0, 0]]), np.array([0, 0, 0, 1]))
    assert quality["nmi"] == pytest.approx(2 * mutual / (math.log(2) + entropy_classes), rel=1e-12)
    assert quality["purity"] == 0.75
