"""Losses against a memory bank: Instance Recognition with NCE (Wu et al. 2018) and Local Aggregation
(Zhuang et al. 2019). Similarities are computed in float32; embeddings are L2-normalised here (a no-op for
the unit vectors of the methods' heads).

IR: P(i|v) = exp(v.m_i / tau) / Z with Z estimated once (from the first batch) and then kept fixed; NCE
against K noise entries drawn uniformly from the bank (P_n = 1/N):
    loss = -mean_b [ log h(i_b, v_b) + sum_k log(1 - h(j_bk, v_b)) ],  h(j, v) = P(j|v) / (P(j|v) + K / N).
LA: with B_i = the ``num_background`` bank entries closest to v_i and C_i = the entries sharing a cluster with
i in any of the m clusterings, loss_i = -log( sum_{j in B_i and C_i} p_j / sum_{j in B_i} p_j ),
p_j proportional to exp(v_i.m_j / tau).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from train.distributed import all_reduce_mean
from train.memory_bank import MemoryBank

IR_TEMPERATURE = 0.07
IR_NOISE_SAMPLES = 4096
LA_BACKGROUND_NEIGHBOURS = 4096
LA_EMPTY_LOG_MASS = math.log(1e-7)
"""log of the numerator of a sample with no close neighbour among its background neighbours (as a public
PyTorch port of the LA code): its loss then only pushes it away from its background neighbours."""


def scaled_num_noise(num_videos: int, num_noise: int = IR_NOISE_SAMPLES) -> int:
    """Noise samples for a bank of ``num_videos``: the paper's 4096, at most a tenth of the bank (at least 1)
    so that a sample rarely draws its own entry as noise (K / N draws per sample on average)."""
    return max(1, min(num_noise, num_videos // 10))


def draw_noise_indices(batch: int, num_noise: int, bank_size: int, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """Bank entries drawn uniformly with replacement: int64 [batch, num_noise] on ``device`` (drawn on the
    generator's device, so a CPU generator gives the same draws on any device)."""
    draw_device = generator.device if generator is not None else device
    noise = torch.randint(bank_size, (batch, num_noise), generator=generator, device=draw_device)
    return noise.to(device)


def bank_logits(features: torch.Tensor, bank_vectors: torch.Tensor, entries: torch.Tensor,
                temperature: float) -> torch.Tensor:
    """v_b . m_j / tau for the entries j = ``entries`` [B, K] of each row: features [B, D], bank [N, D] ->
    float32 [B, K] (gradient to the features only)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    v = F.normalize(features.float(), dim=1)
    return torch.einsum("bd,bkd->bk", v, bank_vectors.detach().float()[entries]) / temperature


def log_normalizer_estimate(logits: torch.Tensor, bank_size: int) -> torch.Tensor:
    """log Z with Z = N * mean(exp(logits)) over all given logits (any shape): float32 scalar."""
    return math.log(bank_size) + torch.logsumexp(logits.detach().float().flatten(), 0) - math.log(logits.numel())


def nce_loss(positive_logits: torch.Tensor, noise_logits: torch.Tensor, log_normalizer: torch.Tensor,
             bank_size: int) -> torch.Tensor:
    """NCE of Wu et al. from the logits s = v.m / tau of the positives [B] and noise entries [B, K] and
    log Z (scalar): a float32 scalar (the mean over the batch of the per-sample losses)."""
    num_noise = noise_logits.shape[1]
    log_noise_mass = math.log(num_noise / bank_size)  # log(K P_n)
    log_p_positive = positive_logits.float() - log_normalizer
    log_p_noise = noise_logits.float() - log_normalizer
    # log h = -softplus(log(K Pn) - log P); log(1 - h) = -softplus(log P - log(K Pn))
    positive_term = F.softplus(log_noise_mass - log_p_positive)
    noise_term = F.softplus(log_p_noise - log_noise_mass).sum(dim=1)
    return (positive_term + noise_term).mean()


class InstanceRecognitionNCE(nn.Module):
    """IR loss with its normaliser Z as state (a buffer, NaN until the first call estimates it, so it is
    saved and restored with the checkpoint). Under DDP the first estimate is averaged over the processes.

    forward(features [B, D], indices int [B], bank, generator=None, noise=None) -> float32 scalar loss; ``noise``
    int [B, K] gives the noise entries (drawn beforehand, e.g. with a per-step generator) instead of drawing them.
    """

    log_normalizer: torch.Tensor

    def __init__(self, temperature: float = IR_TEMPERATURE, num_noise: int = IR_NOISE_SAMPLES) -> None:
        super().__init__()
        if num_noise < 1:
            raise ValueError(f"num_noise must be >= 1, got {num_noise}")
        self.temperature, self.num_noise = temperature, num_noise
        self.register_buffer("log_normalizer", torch.tensor(float("nan")))

    def forward(self, features: torch.Tensor, indices: torch.Tensor, bank: MemoryBank,
                generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = draw_noise_indices(features.shape[0], self.num_noise, bank.size, generator, features.device)
        elif noise.shape != (features.shape[0], self.num_noise):
            raise ValueError(f"expected noise entries [{features.shape[0]}, {self.num_noise}], got {tuple(noise.shape)}")
        entries = torch.cat([indices.to(features.device, torch.long)[:, None], noise], dim=1)
        logits = bank_logits(features, bank.vectors, entries, self.temperature)
        if torch.isnan(self.log_normalizer):
            z = all_reduce_mean(torch.exp(log_normalizer_estimate(logits, bank.size)))
            self.log_normalizer.copy_(torch.log(z))
        return nce_loss(logits[:, 0], logits[:, 1:], self.log_normalizer, bank.size)


def local_aggregation_loss_per_row(features: torch.Tensor, bank_vectors: torch.Tensor, indices: torch.Tensor,
                                   cluster_labels: torch.Tensor, num_background: int = LA_BACKGROUND_NEIGHBOURS,
                                   temperature: float = IR_TEMPERATURE) -> torch.Tensor:
    """LA loss of each sample: float32 [B].

    ``features`` [B, D] (embeddings v), ``bank_vectors`` [N, D], ``indices`` int [B] (each sample's bank
    entry), ``cluster_labels`` int [m, N] (m clusterings of the N bank entries: k-means runs, or fixed
    clusters such as the IDT prior). Background neighbours: the min(num_background, N) entries of highest
    v.m_j. A row with no close neighbour among them (early in training, or a tiny ``num_background``) gets
    the numerator exp(``LA_EMPTY_LOG_MASS``) = 1e-7 (as a public PyTorch port of the LA code does).
    """
    if cluster_labels.ndim != 2 or cluster_labels.shape[1] != bank_vectors.shape[0]:
        raise ValueError(f"cluster_labels must be [m, {bank_vectors.shape[0]}], got {tuple(cluster_labels.shape)}")
    if temperature <= 0 or num_background < 1:
        raise ValueError(f"need temperature > 0 and num_background >= 1, got {temperature}, {num_background}")
    v = F.normalize(features.float(), dim=1)
    logits = v @ bank_vectors.detach().float().T / temperature
    background_logits, background = logits.topk(min(num_background, logits.shape[1]), dim=1)
    labels = cluster_labels.to(logits.device)
    own = labels[:, indices.to(logits.device, torch.long)]  # [m, B]
    close = (labels[:, background] == own[:, :, None]).any(dim=0)  # [B, k]
    has_close = close.any(dim=1)
    # a row without close neighbours gets the constant numerator; one finite entry keeps its gradient finite
    close[:, 0] |= ~has_close
    close_log_mass = torch.logsumexp(background_logits.masked_fill(~close, float("-inf")), dim=1)
    close_log_mass = torch.where(has_close, close_log_mass, torch.full_like(close_log_mass, LA_EMPTY_LOG_MASS))
    return torch.logsumexp(background_logits, dim=1) - close_log_mass


def local_aggregation_loss(features: torch.Tensor, bank_vectors: torch.Tensor, indices: torch.Tensor,
                           cluster_labels: torch.Tensor, num_background: int = LA_BACKGROUND_NEIGHBOURS,
                           temperature: float = IR_TEMPERATURE) -> torch.Tensor:
    """Mean of ``local_aggregation_loss_per_row`` over the batch: a float32 scalar."""
    return local_aggregation_loss_per_row(features, bank_vectors, indices, cluster_labels, num_background,
                                          temperature).mean()
