"""Memory bank: initialisation, the update rule against a float64 loop, state_dict round trip; k-means runs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from train.bank_clustering import kmeans_runs, scaled_num_clusters
from train.memory_bank import MemoryBank


def test_initial_bank_is_normalised_uniform_draw_with_unit_expected_norm() -> None:
    bank = MemoryBank(500, 128, seed=3)
    s = 1 / math.sqrt(128 / 3)
    assert 128 * s**2 / 3 == pytest.approx(1.0)  # E|x|^2 = d s^2 / 3 = 1 for x ~ U[-s, s]^d
    raw = torch.rand(500, 128, generator=torch.Generator().manual_seed(3)) * 2 * s - s
    torch.testing.assert_close(bank.vectors, raw / raw.norm(dim=1, keepdim=True))
    torch.testing.assert_close(bank.vectors.norm(dim=1), torch.ones(500))
    assert torch.equal(MemoryBank(500, 128, seed=3).vectors, bank.vectors)
    assert not torch.equal(MemoryBank(500, 128, seed=4).vectors, bank.vectors)


def test_update_matches_float64_loop_and_leaves_other_rows() -> None:
    bank = MemoryBank(20, 8, seed=0)
    before = bank.vectors.double().numpy().copy()
    indices = torch.tensor([3, 17, 0, 9])
    features = torch.nn.functional.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(1)), dim=1)
    bank.update(indices, features)
    expected = before.copy()
    for i, f in zip(indices.tolist(), features.double().numpy()):
        mixed = 0.5 * before[i] + 0.5 * f
        expected[i] = mixed / np.sqrt((mixed**2).sum())
    np.testing.assert_allclose(bank.vectors.double().numpy(), expected, atol=1e-6)
    untouched = [i for i in range(20) if i not in indices.tolist()]
    assert np.array_equal(bank.vectors.double().numpy()[untouched], before[untouched])
    # a feature that is not unit length still leaves a unit row
    bank.update(torch.tensor([5]), 7 * torch.ones(1, 8))
    assert bank.vectors[5].norm().item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(IndexError):
        bank.update(torch.tensor([20]), torch.ones(1, 8))


def test_repeated_index_takes_its_last_occurrence() -> None:
    bank, reference = MemoryBank(10, 4, seed=0), MemoryBank(10, 4, seed=0)
    features = torch.eye(4)
    bank.update(torch.tensor([2, 7, 2, 2]), features)
    reference.update(torch.tensor([7, 2]), features[[1, 3]])
    assert torch.equal(bank.vectors, reference.vectors)


def test_state_dict_round_trip_resumes_exactly() -> None:
    bank = MemoryBank(30, 16, seed=0)
    generator = torch.Generator().manual_seed(2)
    bank.update(torch.arange(10), torch.randn(10, 16, generator=generator))
    restored = MemoryBank(30, 16, seed=99)
    restored.load_state_dict(bank.state_dict())
    assert list(bank.state_dict()) == ["vectors"] and torch.equal(restored.vectors, bank.vectors)
    step = torch.randn(5, 16, generator=generator)
    bank.update(torch.tensor([1, 4, 8, 20, 29]), step)
    restored.update(torch.tensor([1, 4, 8, 20, 29]), step)
    assert torch.equal(restored.vectors, bank.vectors)


def test_kmeans_runs_are_converged_partitions_and_recover_two_blobs() -> None:
    rng = np.random.default_rng(0)
    points = rng.standard_normal((300, 16)).astype(np.float32)
    labels = kmeans_runs(points, 6, runs=3, seed=5)
    assert labels.shape == (3, 300) and labels.dtype == np.int64
    assert np.array_equal(kmeans_runs(points, 6, runs=3, seed=5), labels)
    assert len({run.tobytes() for run in labels}) == 3  # the seeds give different clusterings
    for run in labels:  # Lloyd's fixed point: every point is nearest to the mean of its own cluster
        means = np.stack([points[run == c].mean(axis=0) for c in range(6)])
        nearest = ((points[:, None, :] - means[None]) ** 2).sum(-1).argmin(axis=1)
        assert (nearest == run).mean() > 0.97
    truth = np.repeat([0, 1], 40)
    blobs = rng.standard_normal((80, 16)) + 10 * truth[:, None]
    for run in kmeans_runs(blobs, 2, runs=3, seed=0):
        assert len(set(zip(truth.tolist(), run.tolist()))) == 2


def test_scaled_num_clusters_keeps_the_papers_ratio() -> None:
    assert scaled_num_clusters(240_000) == 6000
    assert scaled_num_clusters(150) == 4  # ARID: 150 * 6000 / 240000 = 3.75
    assert scaled_num_clusters(10) == 2 and scaled_num_clusters(2) == 2
