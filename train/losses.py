"""Contrastive losses as plain functions (InfoNCE with any positives mask, NT-Xent), device- and
autocast-friendly (similarities are computed in float32).

One mask covers the usual cases: "same video" or "same pace" positives come from
``positives_from_labels``, SimCLR's "other view of the same clip" from ``nt_xent``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def positives_from_labels(query_labels: torch.Tensor, key_labels: torch.Tensor) -> torch.Tensor:
    """Bool [N, M]: True where query i and key j share a label (e.g. video index, pace class); labels int [N], [M]."""
    return query_labels[:, None] == key_labels[None, :]


def similarity_logits(query: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cosine similarities / temperature: query [N, D], keys [M, D] -> float32 [N, M]."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if query.ndim != 2 or keys.ndim != 2 or query.shape[1] != keys.shape[1]:
        raise ValueError(f"expected query [N, D] and keys [M, D], got {tuple(query.shape)} and {tuple(keys.shape)}")
    query = F.normalize(query.float(), dim=1)
    keys = F.normalize(keys.float(), dim=1)
    return query @ keys.T / temperature


def info_nce_per_row(query: torch.Tensor, keys: torch.Tensor, positives_mask: torch.Tensor,
                     temperature: float = 0.1, exclude_mask: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE loss of each query row: float32 [N].

    For row i with logits s_ij = cos(q_i, k_j) / temperature over the keys not excluded (``exclude_mask``
    bool [N, M], e.g. the query itself), the loss is the mean over its positives p (``positives_mask``
    bool [N, M], excluded entries ignored) of -log(exp(s_ip) / sum_j exp(s_ij)). With one positive per row
    this is the usual InfoNCE / cross-entropy; with several it is the supervised-contrastive form.
    Every row needs at least one positive.
    """
    logits = similarity_logits(query, keys, temperature)
    if positives_mask.shape != logits.shape:
        raise ValueError(f"positives_mask must be {tuple(logits.shape)}, got {tuple(positives_mask.shape)}")
    positives = positives_mask.to(device=logits.device, dtype=torch.bool)
    if exclude_mask is not None:
        if exclude_mask.shape != logits.shape:
            raise ValueError(f"exclude_mask must be {tuple(logits.shape)}, got {tuple(exclude_mask.shape)}")
        excluded = exclude_mask.to(device=logits.device, dtype=torch.bool)
        logits = logits.masked_fill(excluded, float("-inf"))
        positives = positives & ~excluded
    n_positives = positives.sum(dim=1)
    if bool((n_positives == 0).any()):
        rows = torch.nonzero(n_positives == 0).flatten().tolist()
        raise ValueError(f"info_nce: rows {rows[:10]} have no positive key")
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive_log_prob = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    return -positive_log_prob / n_positives


def info_nce(query: torch.Tensor, keys: torch.Tensor, positives_mask: torch.Tensor, temperature: float = 0.1,
             exclude_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``info_nce_per_row`` over the queries: a float32 scalar."""
    return info_nce_per_row(query, keys, positives_mask, temperature, exclude_mask).mean()


def nt_xent(view1: torch.Tensor, view2: torch.Tensor, temperature: float = 0.5,
            labels: torch.Tensor | None = None) -> torch.Tensor:
    """SimCLR's NT-Xent over 2N embeddings: view1, view2 [N, D] are two views of the same N clips.

    Each embedding is contrasted against the other 2N - 1 (itself excluded); positives are the other view of
    the same clip, plus, if ``labels`` int [N] is given, every embedding of a clip with the same label.
    Returns a float32 scalar.
    """
    if view1.shape != view2.shape:
        raise ValueError(f"nt_xent: views must have the same shape, got {tuple(view1.shape)} and {tuple(view2.shape)}")
    n = view1.shape[0]
    embeddings = torch.cat([view1, view2])
    index = torch.arange(n, device=embeddings.device)
    groups = (labels.to(embeddings.device) if labels is not None else index).repeat(2)
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=embeddings.device)
    return info_nce(embeddings, embeddings, positives_from_labels(groups, groups), temperature, self_mask)
