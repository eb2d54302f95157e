"""IR (NCE) and LA losses against float64 brute-force loops; LA with one cluster per video is instance
discrimination; a tiny model overfits real clips with the IR loss and the memory bank."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from train.instance_losses import (
    InstanceRecognitionNCE,
    draw_noise_indices,
    scaled_num_noise,
    local_aggregation_loss,
    local_aggregation_loss_per_row,
)
from train.memory_bank import MemoryBank


def unit_rows(n: int, d: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def brute_force_nce(v: np.ndarray, bank: np.ndarray, indices: list[int], noise: np.ndarray, tau: float,
                    z: float | None) -> tuple[float, float]:
    """Wu et al.'s NCE, sample by sample in float64; Z = N * mean of all exp(v.m/tau) if not given."""
    n_bank, k = bank.shape[0], noise.shape[1]
    exp = [[math.exp(v[b] @ bank[j] / tau) for j in [indices[b], *noise[b]]] for b in range(len(indices))]
    if z is None:
        z = n_bank * sum(sum(row) for row in exp) / sum(len(row) for row in exp)
    noise_mass = k / n_bank
    total = 0.0
    for row in exp:
        p = [e / z for e in row]
        total -= math.log(p[0] / (p[0] + noise_mass))
        total -= sum(math.log(noise_mass / (q + noise_mass)) for q in p[1:])
    return total / len(exp), z


def test_ir_nce_matches_brute_force_and_keeps_its_normaliser() -> None:
    bank = MemoryBank(50, 16, seed=0)
    features, indices = unit_rows(6, 16, 1), torch.tensor([0, 7, 7, 12, 30, 49])
    loss_fn = InstanceRecognitionNCE(temperature=0.07, num_noise=20)
    loss = loss_fn(features, indices, bank, torch.Generator().manual_seed(5))
    noise = draw_noise_indices(6, 20, 50, torch.Generator().manual_seed(5)).numpy()
    expected, z = brute_force_nce(features.double().numpy(), bank.vectors.double().numpy(), indices.tolist(),
                                  noise, 0.07, None)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert loss_fn.log_normalizer.item() == pytest.approx(math.log(z), rel=1e-6)
    # Z is estimated once: after the bank moves, the next step uses the stored Z
    bank.update(indices, unit_rows(6, 16, 2))
    second = loss_fn(features, indices, bank, torch.Generator().manual_seed(6))
    noise = draw_noise_indices(6, 20, 50, torch.Generator().manual_seed(6)).numpy()
    expected, _ = brute_force_nce(features.double().numpy(), bank.vectors.double().numpy(), indices.tolist(),
                                  noise, 0.07, z)
    assert second.item() == pytest.approx(expected, rel=1e-5)
    restored = InstanceRecognitionNCE(temperature=0.07, num_noise=20)
    restored.load_state_dict(loss_fn.state_dict())
    assert restored.log_normalizer.item() == loss_fn.log_normalizer.item()


def test_noise_indices_are_uniform_over_the_bank() -> None:
    noise = draw_noise_indices(64, 4096, 10, torch.Generator().manual_seed(0))
    counts = np.bincount(noise.flatten().numpy(), minlength=10)
    assert noise.shape == (64, 4096) and counts.size == 10
    expected = noise.numel() / 10
    assert ((counts - expected) ** 2 / expected).sum() < 27.9  # chi-square, 9 dof, p = 0.001


def test_scaled_num_noise() -> None:
    assert scaled_num_noise(1_281_167) == 4096 and scaled_num_noise(240_000) == 4096
    assert scaled_num_noise(150) == 15 and scaled_num_noise(5) == 1


def brute_force_la(v: np.ndarray, bank: np.ndarray, indices: list[int], labels: np.ndarray, k: int,
                   tau: float, empty_numerator: float | None = None) -> list[float]:
    losses = []
    for b, i in enumerate(indices):
        sims = {j: float(v[b] @ bank[j]) / tau for j in range(bank.shape[0])}
        background = sorted(sims, key=sims.get, reverse=True)[:k]
        close = {j for j in range(bank.shape[0]) if any(run[j] == run[i] for run in labels)}
        numerator = sum(math.exp(sims[j]) for j in background if j in close) or empty_numerator
        losses.append(-math.log(numerator / sum(math.exp(sims[j]) for j in background)))
    return losses


def test_la_matches_brute_force_with_several_clusterings() -> None:
    bank = unit_rows(40, 8, 0)
    features, indices = unit_rows(5, 8, 1), torch.tensor([2, 11, 11, 25, 39])
    bank[indices] = F.normalize(bank[indices] + 2 * features, dim=1)  # own entries among the neighbours
    labels = torch.from_numpy(np.random.default_rng(2).integers(0, 6, size=(3, 40)))
    for k in (10, 25, 40):
        rows = local_aggregation_loss_per_row(features, bank, indices, labels, num_background=k, temperature=0.07)
        expected = brute_force_la(features.double().numpy(), bank.double().numpy(), indices.tolist(),
                                  labels.numpy(), k, 0.07)
        np.testing.assert_allclose(rows.double().numpy(), expected, rtol=1e-5, atol=5e-6)  # float32 logsumexp
        assert local_aggregation_loss(features, bank, indices, labels, k).item() == pytest.approx(
            rows.mean().item(), rel=1e-6)


def test_la_with_one_cluster_per_video_is_instance_discrimination() -> None:
    bank = unit_rows(30, 8, 3)
    features, indices = unit_rows(7, 8, 4), torch.tensor([0, 3, 3, 9, 17, 22, 29])
    singletons = torch.arange(30)[None]
    loss = local_aggregation_loss(features, bank, indices, singletons, num_background=30, temperature=0.07)
    softmax_id = F.cross_entropy(features @ bank.T / 0.07, indices)  # Wu et al.'s non-parametric softmax
    assert loss.item() == pytest.approx(softmax_id.item(), rel=1e-5)


def test_la_row_without_close_neighbours_gets_the_constant_numerator() -> None:
    bank = unit_rows(30, 8, 3)
    indices = torch.tensor([0, 3, 9])
    features = (-bank[indices]).clone().requires_grad_()  # its own entry is the farthest one
    rows = local_aggregation_loss_per_row(features, bank, indices, torch.arange(30)[None], num_background=5)
    expected = brute_force_la(features.detach().double().numpy(), bank.double().numpy(), indices.tolist(),
                              np.arange(30)[None], 5, 0.07, empty_numerator=1e-7)
    np.testing.assert_allclose(rows.detach().double().numpy(), expected, rtol=1e-5)
    rows.sum().backward()
    assert torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0


def real_clips(shared_data: Path, count: int, frames: int, size: int) -> torch.Tensor:
    """The first ``frames`` frames of ``count`` ARID videos, resized: float [count, 3, frames, size, size]."""
    paths = sorted((shared_data / "arid" / "train").glob("*/*.mp4"))[::25][:count // 2]
    paths += sorted((shared_data / "arid" / "train").glob("*/*.mp4"))[3::25][:count - len(paths)]
    clips = []
    for path in paths:
        capture = cv2.VideoCapture(str(path))
        images = [cv2.resize(capture.read()[1], (size, size), interpolation=cv2.INTER_AREA) for _ in range(frames)]
        capture.release()
        clip = torch.from_numpy(np.stack(images)).float() / 255  # [T, H, W, 3]
        clips.append((clip - clip.mean()) / clip.std())  # ARID is dark: standardise each clip
    return torch.stack(clips).permute(0, 4, 1, 2, 3)


def test_tiny_model_overfits_real_clips_with_ir_loss(shared_data: Path) -> None:
    """12 real clips in a bank of 512 videos (the others stay at their initial vectors, as unseen videos)."""
    torch.manual_seed(0)
    clips = real_clips(shared_data, count=12, frames=4, size=32)
    model = nn.Sequential(nn.Conv3d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d((1, 4, 4)),
                          nn.Flatten(), nn.Linear(256, 32))
    bank, loss_fn = MemoryBank(512, 32, seed=0), InstanceRecognitionNCE(num_noise=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator, indices = torch.Generator().manual_seed(1), torch.arange(12)

    def retrieved_own_entry() -> float:
        with torch.no_grad():
            return (bank.similarities(F.normalize(model(clips), dim=1)).argmax(dim=1) == indices).float().mean().item()

    assert retrieved_own_entry() < 0.75
    losses = []
    for _ in range(60):
        features = F.normalize(model(clips), dim=1)
        loss = loss_fn(features, indices, bank, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        bank.update(indices, features)
        losses.append(loss.item())
    assert retrieved_own_entry() == 1.0  # every clip retrieves its own bank entry
    assert np.mean(losses[-10:]) < 0.5 * losses[0]


def within_minus_between_cluster_similarity(embeddings: torch.Tensor, clusters: torch.Tensor) -> float:
    """Mean cosine similarity of distinct same-cluster pairs minus that of different-cluster pairs."""
    v = F.normalize(embeddings, dim=1)
    sims, same = v @ v.T, clusters[:, None] == clusters[None, :]
    return (sims[same & ~torch.eye(len(clusters), dtype=torch.bool)].mean() - sims[~same].mean()).item()


def train_free_embeddings(cluster_labels: torch.Tensor, steps: int = 30) -> torch.Tensor:
    """12 free 16-d embeddings trained with the LA loss (8 background neighbours) and a memory bank."""
    embeddings = torch.nn.Parameter(unit_rows(12, 16, 5))
    bank, indices = MemoryBank(12, 16, seed=0), torch.arange(12)
    optimizer = torch.optim.SGD([embeddings], lr=2.0)
    for _ in range(steps):
        features = F.normalize(embeddings, dim=1)
        loss = local_aggregation_loss(features, bank.vectors, indices, cluster_labels, num_background=8)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        bank.update(indices, features)
    return embeddings.detach()


def test_la_gathers_clusters_where_instance_discrimination_does_not() -> None:
    clusters = torch.arange(12) // 4  # three clusters of four videos
    start = within_minus_between_cluster_similarity(unit_rows(12, 16, 5), clusters)
    aggregated = within_minus_between_cluster_similarity(train_free_embeddings(clusters[None]), clusters)
    separated = within_minus_between_cluster_similarity(train_free_embeddings(torch.arange(12)[None]), clusters)
    assert abs(start) < 0.05 and aggregated > 0.25 and separated < 0.05
