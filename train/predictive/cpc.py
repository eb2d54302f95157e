"""CPC on video segments (Lorre et al., WACV 2020, "Temporal contrastive pretraining for video action
recognition"): autoregressive context models, the step-ahead prediction maps W_k and the contrastive loss.

A video is T segments; the encoder (``resnet18_2d`` on F stacked frames) maps segment t to h_t [D, h, w]
(7x7x512 at 224). An autoregressive model turns h_1..h_t into a context c_t that never sees later segments.
With z_t = spatial mean of h_t and p = spatial mean, the prediction of z_{t+k} is W_k p(c_t), k = 1..K
(K = T - 1, or ``max_steps_ahead``). Each prediction is scored by dot products against all B·T segment
representations of the batch (the positive z_{t+k} and B·T - 1 negatives, the other segments of the same
video being the hard ones) and trained by softmax cross-entropy.

"Masked" temporal convolutions are implemented as causal convolutions: a 3D convolution with temporal size
k_t padded by k_t - 1 steps on the past side only, which equals a (2k_t - 1)-tap convolution whose future taps
are masked to zero (k_t = 2 is the masked 3x3x3 convolution: taps t - 1 and t), without the dead weights.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from train.backbones.base import Backbone
from train.backbones.r2plus1d import mid_channels

CONTEXT_LAYERS = 3
SPATIAL_KERNEL = 3


def encode_segments(encoder: Backbone, segments: torch.Tensor) -> torch.Tensor:
    """Encoder feature maps of every segment: float [B, T, C·F, H, W] -> h [B, T, D, h, w] (time of the
    encoder output averaged; it is 1 for ``resnet18_2d``)."""
    if segments.ndim != 5:
        raise ValueError(f"expected segments [B, T, C*F, H, W], got shape {tuple(segments.shape)}")
    batch, steps = segments.shape[:2]
    maps = encoder.forward_features(segments.flatten(0, 1).unsqueeze(2))
    return maps.mean(dim=2).unflatten(0, (batch, steps))


class CausalConv3d(nn.Module):
    """3D convolution whose output at time t sees input times t - k_t + 1 .. t only; space is 'same'-padded.

    [B, C_in, T, H, W] -> [B, C_out, T, H, W] for ``kernel`` (k_t, k, k)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int], bias: bool) -> None:
        super().__init__()
        self.past = kernel[0] - 1
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, padding=(0, kernel[1] // 2, kernel[2] // 2),
                              bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 0, 0, 0, self.past, 0)))


def causal_conv3d(in_channels: int, out_channels: int, temporal_kernel: int, bias: bool) -> nn.Module:
    """Masked (causal) k_t x 3 x 3 convolution."""
    return CausalConv3d(in_channels, out_channels, (temporal_kernel, SPATIAL_KERNEL, SPATIAL_KERNEL), bias)


def causal_conv2plus1d(in_channels: int, out_channels: int, temporal_kernel: int, bias: bool) -> nn.Module:
    """Masked Conv(2+1)D: 1x3x3 spatial conv -> BN -> ReLU -> causal k_t x 1 x 1 temporal conv, with Tran et
    al.'s parameter-matching middle width (the same size as ``causal_conv3d``)."""
    mid = mid_channels(in_channels, out_channels, (temporal_kernel, SPATIAL_KERNEL, SPATIAL_KERNEL))
    return nn.Sequential(
        nn.Conv3d(in_channels, mid, (1, SPATIAL_KERNEL, SPATIAL_KERNEL), padding=(0, 1, 1), bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        CausalConv3d(mid, out_channels, (temporal_kernel, 1, 1), bias),
    )


class CausalConvContext(nn.Module):
    """Three masked convolutions with BN + ReLU between them: h [B, T, D, h, w] -> c [B, T, hidden, h, w].

    Causal in eval mode (in training mode BN statistics are shared over all segments of the batch)."""

    def __init__(self, in_channels: int, hidden_channels: int, temporal_kernel: int,
                 make_conv: Callable[[int, int, int, bool], nn.Module]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        widths = [in_channels] + [hidden_channels] * CONTEXT_LAYERS
        for i, (width_in, width_out) in enumerate(zip(widths, widths[1:])):
            last = i == CONTEXT_LAYERS - 1
            layers.append(make_conv(width_in, width_out, temporal_kernel, last))
            if not last:
                layers += [nn.BatchNorm3d(width_out), nn.ReLU(inplace=True)]
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features.transpose(1, 2)).transpose(1, 2)


class MaskedConv3dContext(CausalConvContext):
    """CPC's autoregressive model: 3 masked k_t x 3 x 3 convolutions (k_t = 2: a masked 3x3x3 kernel)."""

    def __init__(self, in_channels: int, hidden_channels: int, temporal_kernel: int = 2) -> None:
        super().__init__(in_channels, hidden_channels, temporal_kernel, causal_conv3d)


class MaskedConv2Plus1dContext(CausalConvContext):
    """Ablation: 3 masked Conv(2+1)D layers of the same size as ``MaskedConv3dContext``."""

    def __init__(self, in_channels: int, hidden_channels: int, temporal_kernel: int = 2) -> None:
        super().__init__(in_channels, hidden_channels, temporal_kernel, causal_conv2plus1d)


class ConvLSTMContext(nn.Module):
    """Ablation: one ConvLSTM layer (3x3 gate convolutions): h [B, T, D, h, w] -> c [B, T, hidden, h, w]."""

    def __init__(self, in_channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, SPATIAL_KERNEL,
                               padding=SPATIAL_KERNEL // 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, steps, _, height, width = features.shape
        hidden = features.new_zeros(batch, self.hidden_channels, height, width)
        cell = torch.zeros_like(hidden)
        contexts = []
        for t in range(steps):
            gates = self.gates(torch.cat([features[:, t], hidden], dim=1))
            input_gate, forget_gate, output_gate, candidate = gates.chunk(4, dim=1)
            cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(input_gate) * torch.tanh(candidate)
            hidden = torch.sigmoid(output_gate) * torch.tanh(cell)
            contexts.append(hidden)
        return torch.stack(contexts, dim=1)


class PooledLSTMContext(nn.Module):
    """Ablation: an LSTM on spatially pooled h_t: h [B, T, D, h, w] -> c [B, T, hidden, 1, 1]."""

    def __init__(self, in_channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_channels, hidden_channels, batch_first=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        contexts, _ = self.lstm(features.mean(dim=(3, 4)))
        return contexts[..., None, None]


CONTEXT_MODELS: dict[str, Callable[[int, int], nn.Module]] = {
    "masked_conv3d": MaskedConv3dContext,
    "masked_conv2plus1d": MaskedConv2Plus1dContext,
    "conv_lstm": ConvLSTMContext,
    "lstm": PooledLSTMContext,
}


def build_context_model(name: str, in_channels: int, hidden_channels: int) -> nn.Module:
    """Autoregressive model ``name`` (a key of ``CONTEXT_MODELS``): h [B, T, D, h, w] -> c [B, T, hidden, h', w']."""
    if name not in CONTEXT_MODELS:
        raise ValueError(f"unknown autoregressive model {name!r}; choose one of {sorted(CONTEXT_MODELS)}")
    return CONTEXT_MODELS[name](in_channels, hidden_channels)


def steps_ahead(segments: int, max_steps_ahead: int | None) -> int:
    """K: how many steps ahead are predicted, T - 1 unless ``max_steps_ahead`` is smaller."""
    if segments < 2:
        raise ValueError(f"CPC needs at least 2 segments, got {segments}")
    if max_steps_ahead is not None and max_steps_ahead < 1:
        raise ValueError(f"max_steps_ahead must be >= 1, got {max_steps_ahead}")
    return segments - 1 if max_steps_ahead is None else min(max_steps_ahead, segments - 1)


class CPC(nn.Module):
    """Encoder + autoregressive model + K linear prediction maps W_k (no bias, stacked in one ``nn.Linear``).

    ``forward``: segments float [B, T, C·F, H, W] -> (predictions [B, T, K, D] with predictions[:, t, k - 1]
    = W_k p(c_t), targets z [B, T, D]). Predictions with t + k >= T exist but are unused by ``cpc_loss``.
    """

    def __init__(self, encoder: Backbone, context_model: str = "masked_conv3d", context_channels: int = 512,
                 segments: int = 10, max_steps_ahead: int | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.context_model = build_context_model(context_model, encoder.num_features, context_channels)
        self.steps_ahead = steps_ahead(segments, max_steps_ahead)
        self.segments = segments
        self.predictions = nn.Linear(context_channels, self.steps_ahead * encoder.num_features, bias=False)

    def contexts(self, features: torch.Tensor) -> torch.Tensor:
        """Context maps c [B, T, hidden, h', w'] of encoder maps h [B, T, D, h, w]."""
        return self.context_model(features)

    def forward(self, segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if segments.shape[1] != self.segments:
            raise ValueError(f"expected {self.segments} segments, got shape {tuple(segments.shape)}")
        features = encode_segments(self.encoder, segments)
        pooled_context = self.contexts(features).mean(dim=(3, 4))
        predictions = self.predictions(pooled_context).unflatten(-1, (self.steps_ahead, -1))
        return predictions, features.mean(dim=(3, 4))


class PredictionLoss(NamedTuple):
    """Scalar loss (with graph), detached accuracy over all predictions and per step ahead k = 1..K ([K])."""

    loss: torch.Tensor
    accuracy: torch.Tensor
    accuracy_per_step: torch.Tensor


def prediction_pairs(segments: int, steps: int,
                     device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The V scored predictions (origin t, step k) with t + k < T: int64 [V], [V] (0-based t, k from 1)."""
    origin, step = torch.meshgrid(torch.arange(segments, device=device), torch.arange(1, steps + 1, device=device),
                                  indexing="ij")
    valid = origin + step < segments
    return origin[valid], step[valid]


def candidate_keys(batch: int, segments: int, targets: torch.Tensor, exclude_same_video: bool,
                   n_keys: int | None = None, first_video: int = 0) -> torch.Tensor:
    """Bool [B, V, N_keys]: which segment keys (default N_keys = B·T; more when the keys of other processes
    are gathered, video ``first_video + b`` being prediction row b's) enter the softmax of prediction (b, v)
    whose positive is key index ``targets`` [B, V]; all of them, or without the other segments of the same
    video."""
    keys = batch * segments if n_keys is None else n_keys
    everything = torch.ones(batch, targets.shape[1], keys, dtype=torch.bool, device=targets.device)
    if not exclude_same_video:
        return everything
    key_video = torch.arange(keys, device=targets.device) // segments
    query_video = first_video + torch.arange(batch, device=targets.device)
    own_video = key_video[None, None, :] == query_video[:, None, None]
    positive = torch.arange(keys, device=targets.device)[None, None, :] == targets[..., None]
    return everything & (~own_video | positive)


def cpc_loss(predictions: torch.Tensor, targets: torch.Tensor, exclude_same_video: bool = False,
             keys: torch.Tensor | None = None, first_video: int = 0) -> PredictionLoss:
    """CPC's loss: sum over the predictions (t, k), t + k < T, of the softmax cross-entropy of the dot products
    <W_k p(c_t), z_j> over the segment keys z_j of the batch, the positive being z_{t+k} of the same video;
    averaged over the B videos. Computed in float32.

    predictions float [B, T, K, D] (``CPC.forward``), targets z float [B, T, D]. Under data parallelism
    ``keys`` float [B_all·T, D] are the z of the whole batch (all processes, in order), this process's videos
    starting at video ``first_video``; by default the keys are ``targets``.
    """
    batch, segments, steps, _ = predictions.shape
    if targets.shape[:2] != (batch, segments) or targets.shape[2] != predictions.shape[3]:
        raise ValueError(f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} do not match")
    keys = targets.flatten(0, 1) if keys is None else keys
    origin, step = prediction_pairs(segments, steps, predictions.device)
    queries = predictions[:, origin, step - 1].float()  # [B, V, D]
    logits = queries @ keys.float().T  # [B, V, N_keys]
    videos = first_video + torch.arange(batch, device=predictions.device)
    positives = videos[:, None] * segments + (origin + step)[None, :]
    allowed = candidate_keys(batch, segments, positives, exclude_same_video, keys.shape[0], first_video)
    logits = logits.masked_fill(~allowed, float("-inf"))
    loss = F.cross_entropy(logits.flatten(0, 1), positives.flatten(), reduction="sum") / batch
    correct = (logits.detach().argmax(dim=2) == positives).float()  # [B, V]
    per_step = torch.zeros(steps, device=predictions.device).index_add_(0, step - 1, correct.sum(dim=0))
    per_step = per_step / torch.bincount(step - 1, minlength=steps).mul(batch)
    return PredictionLoss(loss, correct.mean(), per_step)


class SegmentClassifier(nn.Module):
    """CPC's evaluation head for any segment encoder: the video representation is the mean of z_t over its
    segments (any number: 8 in training, 15 at test in the paper), then BatchNorm1d, dropout and a linear layer.

    segments float [B, T, C·F, H, W] -> logits [B, num_classes].
    """

    def __init__(self, encoder: Backbone, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.encoder = encoder
        self.norm = nn.BatchNorm1d(encoder.num_features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(encoder.num_features, num_classes))

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        video = encode_segments(self.encoder, segments).mean(dim=(1, 3, 4))
        return self.classifier(self.norm(video))


def distance_to_pretrained(model: nn.Module, pretrained: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of squared distances ||θ - θ_0||² of the parameters of ``model`` named in ``pretrained`` (a
    ``state_dict``) to those weights: CPC's fine-tuning penalty, "weight decay with origin the pretrained
    weights" (L2-SP). A float32 scalar with graph; the caller multiplies it by the decay coefficient."""
    terms = [(parameter.float() - pretrained[name].to(parameter.device).float()).square().sum()
             for name, parameter in model.named_parameters() if name in pretrained]
    if not terms:
        raise ValueError("distance_to_pretrained: no parameter of the model is named in the pretrained weights")
    return torch.stack(terms).sum()
