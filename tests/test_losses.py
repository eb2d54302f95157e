"""Contrastive losses against brute-force per-row computations; projection head."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from train.backbones import ProjectionHead
from train.losses import info_nce, info_nce_per_row, nt_xent, positives_from_labels


def brute_force_info_nce(query: np.ndarray, keys: np.ndarray, positives: np.ndarray, temperature: float,
                         excluded: np.ndarray) -> np.ndarray:
    """Row by row in float64: mean over positives p of -log(exp(s_ip) / sum over kept j of exp(s_ij))."""
    losses = []
    for i in range(query.shape[0]):
        q = query[i] / np.linalg.norm(query[i])
        sims = {j: float(q @ (keys[j] / np.linalg.norm(keys[j]))) / temperature
                for j in range(keys.shape[0]) if not excluded[i, j]}
        denominator = sum(math.exp(s) for s in sims.values())
        terms = [-math.log(math.exp(sims[j]) / denominator) for j in sims if positives[i, j]]
        losses.append(sum(terms) / len(terms))
    return np.array(losses)


def test_info_nce_matches_brute_force_with_arbitrary_mask() -> None:
    g = torch.Generator().manual_seed(0)
    query, keys = torch.randn(7, 16, generator=g), torch.randn(11, 16, generator=g)
    positives = torch.rand(7, 11, generator=g) < 0.3
    positives[torch.arange(7), torch.arange(7)] = True  # every row has a positive
    excluded = torch.rand(7, 11, generator=g) < 0.2
    excluded[torch.arange(7), torch.arange(7)] = False
    for temperature in (0.07, 0.5, 1.0):
        rows = info_nce_per_row(query, keys, positives, temperature, excluded)
        expected = brute_force_info_nce(query.double().numpy(), keys.double().numpy(), positives.numpy(),
                                        temperature, excluded.numpy())
        np.testing.assert_allclose(rows.double().numpy(), expected, rtol=1e-4)
        torch.testing.assert_close(info_nce(query, keys, positives, temperature, excluded), rows.mean())


def test_single_positive_is_cross_entropy() -> None:
    g = torch.Generator().manual_seed(1)
    query, keys = torch.randn(5, 8, generator=g), torch.randn(9, 8, generator=g)
    targets = torch.tensor([0, 3, 8, 3, 1])
    mask = F.one_hot(targets, 9).bool()
    logits = F.normalize(query, dim=1) @ F.normalize(keys, dim=1).T / 0.2
    torch.testing.assert_close(info_nce(query, keys, mask, 0.2), F.cross_entropy(logits, targets))


def test_same_label_positives_and_gradients() -> None:
    video = torch.tensor([0, 0, 1, 2, 2, 1])
    mask = positives_from_labels(video, video)
    assert mask.tolist()[0] == [True, True, False, False, False, False] and mask[2, 5] and not mask[2, 3]
    embeddings = torch.randn(6, 4, generator=torch.Generator().manual_seed(2), requires_grad=True)
    loss = info_nce(embeddings, embeddings, mask, 0.1, exclude_mask=torch.eye(6, dtype=torch.bool))
    loss.backward()
    assert torch.isfinite(loss) and embeddings.grad.abs().sum() > 0


def test_nt_xent_matches_simclr_formula() -> None:
    g = torch.Generator().manual_seed(3)
    view1, view2 = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    z = F.normalize(torch.cat([view1, view2]).double(), dim=1)
    sims = (z @ z.T / 0.5).numpy()
    expected = []
    for i in range(8):
        partner = (i + 4) % 8
        denominator = sum(math.exp(sims[i, j]) for j in range(8) if j != i)
        expected.append(-math.log(math.exp(sims[i, partner]) / denominator))
    assert nt_xent(view1, view2, 0.5).item() == pytest.approx(np.mean(expected), rel=1e-5)
    # with labels, clips 0 and 1 share a class: each of their rows gets three positives
    labels = torch.tensor([7, 7, 1, 2])
    both_views = labels.repeat(2).numpy()
    same_class = brute_force_info_nce(z.numpy(), z.numpy(), np.equal.outer(both_views, both_views), 0.5,
                                      np.eye(8, dtype=bool))
    assert nt_xent(view1, view2, 0.5, labels).item() == pytest.approx(same_class.mean(), rel=1e-5)


def test_loss_in_low_precision_is_float32() -> None:
    g = torch.Generator().manual_seed(4)
    query, keys = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g)
    mask = torch.eye(3, dtype=torch.bool)
    low = info_nce(query.to(torch.bfloat16), keys.to(torch.bfloat16), mask, 0.05)
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(info_nce(query, keys, mask, 0.05).item(), rel=0.05)


def test_bad_input_is_reported() -> None:
    query = torch.randn(3, 4)
    with pytest.raises(ValueError, match=r"rows \[1\] have no positive key"):
        info_nce(query, query, torch.tensor([[1, 0, 0], [0, 0, 0], [0, 0, 1]], dtype=torch.bool))
    with pytest.raises(ValueError, match="temperature must be positive"):
        info_nce(query, query, torch.eye(3, dtype=torch.bool), 0.0)
    with pytest.raises(ValueError, match=r"positives_mask must be \(3, 3\)"):
        info_nce(query, query, torch.eye(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="views must have the same shape"):
        nt_xent(query, torch.randn(2, 4))


def test_projection_head() -> None:
    head = ProjectionHead(512, 2048, 128)
    expected_params = 512 * 2048 + 2 * 2048 + 2048 * 128 + 128  # no hidden bias under BN
    assert sum(p.numel() for p in head.parameters()) == expected_params
    assert head(torch.randn(4, 512)).shape == (4, 128)
    three = ProjectionHead(16, 32, 8, num_layers=3, batch_norm=False).eval()
    x = torch.randn(2, 16)
    manual = x
    linears = [m for m in three if isinstance(m, torch.nn.Linear)]
    for layer in linears[:-1]:
        manual = torch.relu(layer(manual))
    torch.testing.assert_close(three(x), linears[-1](manual))
    with pytest.raises(ValueError, match=r"expects \[B, 16\]"):
        three(torch.randn(2, 15))
