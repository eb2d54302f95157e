"""Fine-tuning protocols of segment backbones, tested at video level.

- CPC ('stacked' layout, Lorre et al.): ``SegmentClassifier``: the mean of z_t over ``train_segments`` random
  segments of a video (own random crop each; ``test_segments`` spread uniformly and centre-cropped at test) ->
  BatchNorm1d -> dropout (0.9 in the paper) -> linear; the loss adds ``l2_to_pretrained`` times the squared
  distance of the encoder to its pretrained weights (``distance_to_pretrained``), which then replaces weight
  decay on the encoder.
- DPC ('blocks' layout, Han et al.): ``DPCClassifier`` (backbone -> ConvGRU over the N blocks -> BN -> dropout
  -> linear) on one random clip of N blocks per video and epoch (one random crop and flip); test clips start
  every half clip ("half-overlapping"), centre-cropped, softmax averaged over a video's clips.

Both use SGD with momentum and a cosine schedule (``FinetuneSettings``) and return an
``eval.finetune.FinetuneResult`` whose ``clip_probabilities`` hold the video's averaged softmax ([N, 1, C]).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from eval.finetune import FinetuneResult
from eval.metrics import topk_accuracy
from eval.segments import SegmentLayout, backbone_input, read_segments, spread_starts
from eval.settings import FinetuneSettings, SegmentEvalSettings
from preprocess.dataset import Dataset
from preprocess.streams import stream_length
from train.predictive.cpc import SegmentClassifier, distance_to_pretrained
from train.predictive.dpc import DPCClassifier


class SegmentItems(torch.utils.data.Dataset):
    """Item ``i``: the training segments of video ``i`` ([K, F, S, S, ...]) and its label; the draw depends only
    on (seed, epoch, i). CPC: ``count`` segments at independent random starts, own crop each; DPC: one clip of
    N consecutive blocks, one crop and flip."""

    def __init__(self, dataset: Dataset, stream: str, video_ids: list[str], labels: np.ndarray, layout: SegmentLayout,
                 count: int, crop_size: int, seed: int) -> None:
        self.dataset, self.stream, self.video_ids, self.labels = dataset, stream, video_ids, labels
        self.layout, self.count, self.crop_size, self.seed = layout, count, crop_size, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        video_id, layout = self.video_ids[i], self.layout
        n_items = stream_length(self.dataset.video(video_id).n_frames, self.stream, where=video_id)
        if layout.layout == "stacked":
            starts = rng.integers(0, max(n_items - layout.span, 0) + 1, size=self.count)
            values = read_segments(self.dataset, self.stream, video_id, layout, starts, self.crop_size, rng)
        else:
            clip_span = (layout.count - 1) * layout.segment_stride + layout.span
            start = int(rng.integers(0, max(n_items - clip_span, 0) + 1))
            starts = start + layout.segment_stride * np.arange(layout.count)
            values = read_segments(self.dataset, self.stream, video_id, layout, starts, self.crop_size, rng,
                                   per_segment=False)
        return values, int(self.labels[i])


def build_classifier(backbone: nn.Module, layout: SegmentLayout, n_classes: int, dropout: float) -> nn.Module:
    """CPC's ``SegmentClassifier`` (stacked) or DPC's ``DPCClassifier`` (blocks) around a copy of ``backbone``."""
    tuned = copy.deepcopy(backbone)
    if layout.layout == "stacked":
        return SegmentClassifier(tuned, n_classes, dropout=dropout)
    return DPCClassifier(tuned, n_classes, dropout=dropout)


def classify(model: nn.Module, x: torch.Tensor, layout: SegmentLayout) -> torch.Tensor:
    """Logits [B, C] of backbone inputs of B videos: stacked [B, K, C·F, 1, S, S], blocks [B, N, C, F, S, S]."""
    return model(x.squeeze(3) if layout.layout == "stacked" else x)


def test_starts(n_items: int, layout: SegmentLayout, count: int) -> list[np.ndarray]:
    """Segment starts of the test inputs of a video: CPC one input of ``count`` spread segments; DPC one clip of
    N blocks every half clip (at least one clip)."""
    if layout.layout == "stacked":
        return [spread_starts(n_items, layout.span, count)]
    clip_span = (layout.count - 1) * layout.segment_stride + layout.span
    hop = max(1, clip_span // 2)
    return [s + layout.segment_stride * np.arange(layout.count)
            for s in range(0, max(n_items - clip_span, 0) + 1, hop)]


@torch.no_grad()
def test_probabilities(model: nn.Module, dataset: Dataset, stream: str, video_ids: list[str], layout: SegmentLayout,
                       count: int, crop_size: int, device: str | torch.device,
                       progress: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """(video softmax float32 [N, C] averaged over its test inputs, per video the softmax of each input)."""
    model.eval()
    flow_bound = dataset.flow_bound if stream == "flow" else 1.0
    videos, clips = [], []
    for video_id in tqdm(video_ids, desc="fine-tune test", disable=not progress, leave=False):
        n_items = stream_length(dataset.video(video_id).n_frames, stream, where=video_id)
        scores = []
        for starts in test_starts(n_items, layout, count):
            values = read_segments(dataset, stream, video_id, layout, starts, crop_size)
            x = backbone_input(torch.from_numpy(values).to(device), layout, stream, flow_bound)
            scores.append(torch.softmax(classify(model, x.unsqueeze(0), layout).float(), dim=1)[0].cpu().numpy())
        clips.append(np.stack(scores))
        videos.append(clips[-1].mean(axis=0))
    return np.stack(videos).astype(np.float32), clips


def segment_finetune(backbone: nn.Module, layout: SegmentLayout, dataset: Dataset, stream: str, train_ids: list[str],
                     train_labels: np.ndarray, test_ids: list[str], test_labels: np.ndarray, n_classes: int,
                     settings: FinetuneSettings, segments: SegmentEvalSettings, crop_size: int, seed: int = 0,
                     device: str | torch.device = "cpu", progress: bool = False) -> FinetuneResult:
    """Fine-tune a copy of a segment ``backbone`` with its method's head, then test it per video."""
    torch.manual_seed(seed)
    model = build_classifier(backbone, layout, n_classes, settings.dropout).to(device)
    encoder = model.encoder if layout.layout == "stacked" else model.backbone
    pretrained = {name: value.detach().clone() for name, value in encoder.named_parameters()}
    encoder_params = set(map(id, encoder.parameters()))
    head = [p for p in model.parameters() if id(p) not in encoder_params]
    decay = 0.0 if settings.l2_to_pretrained > 0 else settings.weight_decay
    optimizer = torch.optim.SGD([{"params": head, "lr": settings.lr, "weight_decay": settings.weight_decay},
                                 {"params": list(encoder.parameters()), "lr": settings.lr * settings.backbone_lr_scale,
                                  "weight_decay": decay}], momentum=settings.momentum)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(settings.epochs, 1))
    items = SegmentItems(dataset, stream, train_ids, np.asarray(train_labels), layout, segments.train_segments,
                         crop_size, seed)
    loader = torch.utils.data.DataLoader(items, batch_size=settings.batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    flow_bound = dataset.flow_bound if stream == "flow" else 1.0
    history = []
    for epoch in tqdm(range(settings.epochs), desc="fine-tune", disable=not progress, leave=False):
        items.epoch = epoch
        model.train()
        total, correct = 0.0, 0
        for raw, labels in loader:
            x = backbone_input(raw.flatten(0, 1).to(device), layout, stream, flow_bound)
            logits = classify(model, x.unflatten(0, raw.shape[:2]), layout)
            labels = labels.to(device)
            loss = nn.functional.cross_entropy(logits, labels)
            if settings.l2_to_pretrained > 0:
                loss = loss + settings.l2_to_pretrained * distance_to_pretrained(encoder, pretrained)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
            correct += int((logits.argmax(dim=1) == labels).sum())
        scheduler.step()
        history.append({"epoch": epoch + 1, "loss": total / len(items), "train_top1": correct / len(items)})
    videos, clips = test_probabilities(model, dataset, stream, test_ids, layout, segments.test_segments, crop_size,
                                       device, progress)
    test_labels = np.asarray(test_labels)
    metrics = {
        "video_top1": topk_accuracy(videos, test_labels, 1),
        "video_top5": topk_accuracy(videos, test_labels, 5),
        "clip_top1": topk_accuracy(np.concatenate(clips), np.repeat(test_labels, [len(c) for c in clips]), 1),
    }
    if history:
        history[-1]["test_video_top1"] = metrics["video_top1"]
    return FinetuneResult(model=model.eval(), history=history, clip_probabilities=videos[:, None], metrics=metrics)
