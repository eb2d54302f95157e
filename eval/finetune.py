"""Fine-tuning: the whole backbone with a new classifier head, tested at video level.

Training takes one random clip (random start, crop, flip) per video per epoch; testing averages the
softmax over uniformly sampled centre-cropped clips of each video (video accuracy) and also scores every
clip alone (clip accuracy).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from eval.metrics import topk_accuracy
from eval.settings import ClipSettings, FinetuneSettings
from eval.video_clips import evaluation_loader, random_clip
from preprocess.dataset import Dataset
from preprocess.streams import to_input


class VideoClassifier(nn.Module):
    """Backbone, dropout and a linear head: clip [B, C, T, H, W] -> logits [B, n_classes].

    The first ``frozen_stages`` stages of the backbone keep their weights and stay in eval mode (their
    batch-norm statistics do not move) even while the classifier trains.
    """

    def __init__(self, backbone: nn.Module, n_classes: int, dropout: float = 0.5, frozen_stages: int = 0) -> None:
        super().__init__()
        stage_names = list(backbone.stages)
        if frozen_stages > len(stage_names):
            raise ValueError(f"cannot freeze {frozen_stages} stages of a backbone with {len(stage_names)}")
        self.backbone = backbone
        self.frozen = stage_names[:frozen_stages]
        for name in self.frozen:
            backbone.stages[name].requires_grad_(False)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.num_features, n_classes)

    def train(self, mode: bool = True) -> "VideoClassifier":
        super().train(mode)
        for name in self.frozen:
            self.backbone.stages[name].eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.backbone(x)))


class TrainingClips(torch.utils.data.Dataset):
    """Item ``i``: a random clip of video ``i`` and its label; the draw depends only on (seed, epoch, i)."""

    def __init__(self, dataset: Dataset, stream: str, video_ids: list[str], labels: np.ndarray, clip_len: int,
                 crop_size: int, seed: int, stride: int = 1) -> None:
        self.dataset, self.stream = dataset, stream
        self.video_ids, self.labels = video_ids, labels
        self.clip_len, self.crop_size, self.seed, self.stride = clip_len, crop_size, seed, stride
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        video_id = self.video_ids[i]
        clip = random_clip(self.dataset, self.stream, video_id, self.dataset.video(video_id).n_frames,
                           self.clip_len, self.crop_size, rng, self.stride)
        return clip, int(self.labels[i])


def video_probabilities(clip_probabilities: np.ndarray) -> np.ndarray:
    """Video scores as the mean softmax over its clips: [N, K, C] -> [N, C]."""
    return clip_probabilities.mean(axis=1)


@dataclass
class FinetuneResult:
    """Outcome of one fine-tuning run."""

    model: VideoClassifier  # the tuned network (eval mode)
    history: list[dict[str, float]]  # per epoch: epoch, loss, train_top1 (+ test_video_top1 on the last)
    clip_probabilities: np.ndarray  # float32 [N_test, K, C] softmax of every test clip
    metrics: dict[str, float] = field(default_factory=dict)  # video_top1, video_top5, clip_top1


@torch.no_grad()
def test_clip_probabilities(model: nn.Module, dataset: Dataset, stream: str, video_ids: list[str], clips: ClipSettings,
                            flow_bound: float, device: str | torch.device, progress: bool = False) -> np.ndarray:
    """Softmax of every uniformly sampled centre-cropped clip of every video: float32 [N, K, C]."""
    model.eval()
    out = []
    loader = evaluation_loader(dataset, stream, video_ids, clips, device)
    for raw in tqdm(loader, desc="fine-tune test", disable=not progress, leave=False):
        x = to_input(raw, stream, flow_bound=flow_bound, device=device)
        logits = torch.cat([model(batch) for batch in x.split(clips.batch_size)])
        out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    return np.stack(out)


def finetune(backbone: nn.Module, dataset: Dataset, stream: str, train_ids: list[str], train_labels: np.ndarray,
             test_ids: list[str], test_labels: np.ndarray, n_classes: int, settings: FinetuneSettings,
             clips: ClipSettings, seed: int = 0, device: str | torch.device = "cpu",
             progress: bool = False) -> FinetuneResult:
    """Fine-tune a copy of ``backbone`` with a new head on the training videos, then test it.

    SGD with momentum and a cosine schedule; the head uses ``settings.lr`` and the backbone
    ``settings.lr * settings.backbone_lr_scale``. ``backbone`` itself is left unchanged.
    """
    torch.manual_seed(seed)
    model = VideoClassifier(copy.deepcopy(backbone), n_classes, settings.dropout, settings.freeze_stages).to(device)
    flow_bound = dataset.flow_bound if stream == "flow" else 1.0
    backbone_params = [p for p in model.backbone.parameters() if p.requires_grad]
    groups = [{"params": model.head.parameters(), "lr": settings.lr}]
    if backbone_params:
        groups.append({"params": backbone_params, "lr": settings.lr * settings.backbone_lr_scale})
    optimizer = torch.optim.SGD(groups, momentum=settings.momentum, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(settings.epochs, 1))
    items = TrainingClips(dataset, stream, train_ids, np.asarray(train_labels), clips.length, clips.crop_size,
                          seed, clips.stride)
    loader = torch.utils.data.DataLoader(items, batch_size=settings.batch_size, shuffle=True,
                                         num_workers=clips.num_workers,
                                         generator=torch.Generator().manual_seed(seed))
    history = []
    for epoch in tqdm(range(settings.epochs), desc="fine-tune", disable=not progress, leave=False):
        items.epoch = epoch
        model.train()
        total_loss, correct = 0.0, 0
        for raw, labels in loader:
            x = to_input(raw, stream, flow_bound=flow_bound, device=device)
            labels = labels.to(device)
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(labels)
            correct += int((logits.argmax(dim=1) == labels).sum())
        scheduler.step()
        history.append({"epoch": epoch + 1, "loss": total_loss / len(items), "train_top1": correct / len(items)})
    probabilities = test_clip_probabilities(model, dataset, stream, test_ids, clips, flow_bound, device, progress)
    test_labels = np.asarray(test_labels)
    videos = video_probabilities(probabilities)
    metrics = {
        "video_top1": topk_accuracy(videos, test_labels, 1),
        "video_top5": topk_accuracy(videos, test_labels, 5),
        "clip_top1": topk_accuracy(probabilities.reshape(-1, n_classes),
                                   np.repeat(test_labels, probabilities.shape[1]), 1),
    }
    if history:
        history[-1]["test_video_top1"] = metrics["video_top1"]
    return FinetuneResult(model=model.eval(), history=history, clip_probabilities=probabilities, metrics=metrics)
