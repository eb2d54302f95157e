"""Classifiers on frozen video features: BN + dropout + linear probe (torch) and logistic regression.

Both take float features [N, D] with int labels [N] and return class probabilities [M, C] for new
features, so the metrics in ``eval.metrics`` apply to either.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

from eval.settings import LinearProbeSettings


class LinearProbe(nn.Module):
    """Batch-norm, dropout and one linear layer: float [B, D] -> logits [B, C] (Lorre et al. 2020)."""

    def __init__(self, in_features: int, n_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(in_features)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.norm(x)))


def train_linear_probe(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    settings: LinearProbeSettings,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[LinearProbe, list[float]]:
    """Fit a ``LinearProbe`` with Adam and cross-entropy on features [N, D] and labels int [N].

    Returns the probe (in eval mode) and the mean training loss of every epoch.
    """
    if len(features) < 2:
        raise ValueError(f"the linear probe needs at least 2 training videos, got {len(features)}")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32, device=device)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64, device=device)
    probe = LinearProbe(x.shape[1], n_classes, settings.dropout).to(device)
    optimizer = torch.optim.Adam(probe.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    losses = []
    probe.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(x), generator=generator).to(device)
        batches = order.split(settings.batch_size)
        if len(batches) > 1 and len(batches[-1]) == 1:  # batch-norm needs two samples
            batches = batches[:-2] + (torch.cat(batches[-2:]),)
        total = 0.0
        for batch in batches:
            loss = nn.functional.cross_entropy(probe(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        losses.append(total / len(x))
    return probe.eval(), losses


@torch.no_grad()
def probe_probabilities(probe: LinearProbe, features: np.ndarray) -> np.ndarray:
    """Softmax of the probe's logits: features [M, D] -> float32 [M, C]."""
    device = next(probe.parameters()).device
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32, device=device)
    return torch.softmax(probe.eval()(x), dim=1).cpu().numpy()


def logistic_regression_probabilities(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    n_classes: int,
    c: float = 1.0,
    max_iter: int = 1000,
) -> np.ndarray:
    """Multinomial L2 logistic regression on standardised features.

    train_features [N, D] with int labels [N]; test_features [M, D]. Returns float64 [M, n_classes];
    classes absent from the training labels get probability 0.
    """
    scaler = StandardScaler().fit(train_features)
    classes = np.unique(train_labels)
    probabilities = np.zeros((len(test_features), n_classes))
    if len(classes) == 1:
        probabilities[:, classes[0]] = 1.0
        return probabilities
    model = LogisticRegression(C=c, max_iter=max_iter)
    model.fit(scaler.transform(train_features), train_labels)
    probabilities[:, model.classes_] = model.predict_proba(scaler.transform(test_features))
    return probabilities
