"""Dense Predictive Coding (Han, Xie & Zisserman, ICCV-W 2019): ConvGRU aggregation, sequential prediction of
future block features, the dense contrastive loss, and DPC's classification head for evaluation.

A clip is N blocks of L frames; the backbone (``r2d3d_18``) maps block i to a feature map [D, h, w] (time
averaged). The ConvGRU (1 layer, 1x1 kernels, hidden D, dropout 0.1 on the state at every step) reads the
ReLU'd features of the first N - P blocks; the predictor (conv1x1 -> ReLU -> conv1x1) turns the state into the
prediction of the next block, whose ReLU is fed back into the ConvGRU to predict the one after (P steps).
Every predicted vector (block, position) is scored against every target vector of the batch (the features of
the last P blocks before their ReLU): [B·P·hw] x [B·P·hw] dot products, no normalisation or temperature,
cross-entropy on the one positive (same video, same step, same position). Layout of the authors' code
(``dpc/model_3d.py``, ``backbone/convrnn.py``, ``eval/model_3d_lc.py``); DPC-R18 has 14,583,104 parameters.
"""
from __future__ import annotations

from enum import IntEnum


import torch
import torch.nn.functional as F
from torch import nn

from train.backbones.base import Backbone


def init_orthogonal(module: nn.Module) -> None:
    """DPC's initialisation of its heads: orthogonal weights (gain 1), zero biases."""
    for name, parameter in module.named_parameters():
        if "bias" in name:
            nn.init.zeros_(parameter)
        elif "weight" in name and parameter.ndim >= 2:
            nn.init.orthogonal_(parameter)


class ConvGRUCell(nn.Module):
    """Convolutional GRU cell: input [B, C, H, W] and state [B, S, H, W] -> new state [B, S, H, W].

    r = σ(W_r * [x, s]), u = σ(W_u * [x, s]), o = tanh(W_o * [x, r ⊙ s]), s' = (1 - u) ⊙ s + u ⊙ o."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        width, padding = in_channels + hidden_channels, kernel_size // 2
        self.reset_gate = nn.Conv2d(width, hidden_channels, kernel_size, padding=padding)
        self.update_gate = nn.Conv2d(width, hidden_channels, kernel_size, padding=padding)
        self.out_gate = nn.Conv2d(width, hidden_channels, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        if state is None:
            state = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[2:])
        combined = torch.cat([x, state], dim=1)
        reset = torch.sigmoid(self.reset_gate(combined))
        update = torch.sigmoid(self.update_gate(combined))
        candidate = torch.tanh(self.out_gate(torch.cat([x, state * reset], dim=1)))
        return state * (1 - update) + candidate * update


class ConvGRU(nn.Module):
    """One ConvGRU layer with dropout on the state after every step (the dropped state is carried on).

    sequence [B, N, C, H, W] (+ optional state [B, S, H, W]) -> (states [B, N, S, H, W], last state [B, S, H, W]).
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        self.cell = ConvGRUCell(in_channels, hidden_channels, kernel_size)
        self.dropout = nn.Dropout(dropout)
        init_orthogonal(self)

    def forward(self, sequence: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        states = []
        for step in range(sequence.shape[1]):
            state = self.dropout(self.cell(sequence[:, step], state))
            states.append(state)
        return torch.stack(states, dim=1), states[-1]


def block_maps(backbone: Backbone, blocks: torch.Tensor) -> torch.Tensor:
    """Backbone maps of every block: float [B, N, C, L, H, W] -> [B, N, D, t, h, w]."""
    if blocks.ndim != 6:
        raise ValueError(f"expected blocks [B, N, C, L, H, W], got shape {tuple(blocks.shape)}")
    batch, n_blocks = blocks.shape[:2]
    return backbone.forward_features(blocks.flatten(0, 1)).unflatten(0, (batch, n_blocks))


def predict_sequentially(aggregator: ConvGRU, predictor: nn.Module, context_features: torch.Tensor,
                         steps: int) -> torch.Tensor:
    """DPC's sequential prediction: the ConvGRU reads ReLU'd context features [B, N - P, D, h, w]; the predictor
    turns its state into the next block's prediction, whose ReLU is fed back in -> predictions [B, P, D, h, w]."""
    _, state = aggregator(context_features)
    predictions = []
    for _ in range(steps):
        prediction = predictor(state)
        predictions.append(prediction)
        _, state = aggregator(F.relu(prediction).unsqueeze(1), state)
    return torch.stack(predictions, dim=1)


class DPC(nn.Module):
    """DPC's pretraining network: backbone + ConvGRU + predictor, predicting the last ``pred_steps`` blocks.

    ``forward``: blocks float [B, N, C, L, H, W] -> (predictions [B, P, D, h, w], targets [B, P, D, h, w]);
    the predictions depend on the first N - P blocks only.
    """

    def __init__(self, backbone: Backbone, pred_steps: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        if pred_steps < 1:
            raise ValueError(f"pred_steps must be >= 1, got {pred_steps}")
        self.backbone = backbone
        self.pred_steps = pred_steps
        width = backbone.num_features
        self.aggregator = ConvGRU(width, width, kernel_size=1, dropout=dropout)
        self.predictor = nn.Sequential(nn.Conv2d(width, width, 1), nn.ReLU(inplace=True), nn.Conv2d(width, width, 1))
        init_orthogonal(self.predictor)

    def predict(self, context_features: torch.Tensor) -> torch.Tensor:
        """Sequential prediction from ReLU'd features [B, N - P, D, h, w] -> predictions [B, P, D, h, w]."""
        return predict_sequentially(self.aggregator, self.predictor, context_features, self.pred_steps)

    def forward(self, blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if blocks.shape[1] <= self.pred_steps:
            raise ValueError(f"need more than {self.pred_steps} blocks, got shape {tuple(blocks.shape)}")
        features = block_maps(self.backbone, blocks).mean(dim=3)
        context_blocks = blocks.shape[1] - self.pred_steps
        return self.predict(F.relu(features[:, :context_blocks])), features[:, context_blocks:]


class TargetKind(IntEnum):
    """What a target vector is to a prediction in DPC's dense loss."""

    EASY_NEGATIVE = 0  # another video
    POSITIVE = 1  # same video, step and position
    TEMPORAL_NEGATIVE = 2  # same video and position, another step
    SPATIAL_NEGATIVE = 3  # same video, another position (any step)


def target_kinds(batch: int, steps: int, positions: int) -> torch.Tensor:
    """int8 [B·P·hw, B·P·hw] ``TargetKind`` of target (column) for prediction (row), both flattened as
    (video, step, position)."""
    index = torch.arange(batch * steps * positions)
    video, step, position = index // (steps * positions), index // positions % steps, index % positions
    same_video = video[:, None] == video[None, :]
    same_position = position[:, None] == position[None, :]
    same_step = step[:, None] == step[None, :]
    kinds = torch.full(same_video.shape, TargetKind.EASY_NEGATIVE, dtype=torch.int8)
    kinds[same_video] = TargetKind.SPATIAL_NEGATIVE
    kinds[same_video & same_position] = TargetKind.TEMPORAL_NEGATIVE
    kinds[same_video & same_position & same_step] = TargetKind.POSITIVE
    return kinds


def target_kind_counts(batch: int, steps: int, positions: int) -> dict[str, int]:
    """Targets of each kind per prediction (every row has the same): 1 : (q-1) : (hw-1)q : (B-1)hwq."""
    row = target_kinds(batch, steps, positions)[0].long()
    counts = torch.bincount(row, minlength=len(TargetKind))
    return {kind.name.lower(): int(counts[kind]) for kind in TargetKind}


def dense_vectors(maps: torch.Tensor) -> torch.Tensor:
    """Feature maps [B, P, D, h, w] -> vectors [B·P·hw, D], flattened as (video, step, position)."""
    return maps.permute(0, 1, 3, 4, 2).flatten(0, 3)


def dense_predictive_loss(predictions: torch.Tensor, targets: torch.Tensor, keys: torch.Tensor | None = None,
                          first_video: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """DPC's loss: mean over the B·P·hw predicted vectors of the cross-entropy of their dot products with all
    B·P·hw target vectors, the positive being the same (video, step, position). Computed in float32.

    predictions, targets float [B, P, D, h, w] -> (scalar loss with graph, detached top-1 accuracy). Under data
    parallelism ``keys`` float [B_all·P·hw, D] are the target vectors of the whole batch (all processes, in
    order, flattened as (video, step, position)), this process's videos starting at ``first_video``.
    """
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ")
    queries = dense_vectors(predictions).float()
    keys = dense_vectors(targets).float() if keys is None else keys.float()
    scores = queries @ keys.T
    positives = first_video * (scores.shape[0] // predictions.shape[0]) + torch.arange(scores.shape[0],
                                                                                        device=scores.device)
    accuracy = (scores.detach().argmax(dim=1) == positives).float().mean()
    return F.cross_entropy(scores, positives), accuracy


class DPCClassifier(nn.Module):
    """DPC's evaluation network: backbone -> ReLU -> time average (in this order, unlike ``DPC``) -> ConvGRU
    over the blocks -> last state -> spatial average -> BatchNorm1d -> dropout -> linear.

    blocks float [B, N, C, L, H, W] -> logits [B, num_classes].
    """

    def __init__(self, backbone: Backbone, num_classes: int, dropout: float = 0.5, gru_dropout: float = 0.1) -> None:
        super().__init__()
        self.backbone = backbone
        width = backbone.num_features
        self.aggregator = ConvGRU(width, width, kernel_size=1, dropout=gru_dropout)
        self.norm = nn.BatchNorm1d(width)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))
        init_orthogonal(self.classifier)

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        _, state = self.aggregator(F.relu(block_maps(self.backbone, blocks)).mean(dim=3))
        return self.classifier(self.norm(state.mean(dim=(2, 3))))
