"""Settings of the evaluation stage (one section of a pipeline in pipelines.yaml).

Defaults follow the papers' protocols: 10 uniformly sampled centre-cropped 16x112x112 clips per video,
pool5 features, BN + dropout + linear probe (Lorre et al. 2020), few-shot k = 1/5/10/20, retrieval
top-k = 1/5/10/20/50, fine-tuning with SGD.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Task = Literal["linear", "finetune", "fewshot", "retrieval", "scenes", "similarity", "clusters"]
ALL_TASKS: tuple[str, ...] = ("linear", "finetune", "fewshot", "retrieval")  # what ``all`` runs
WINDOW_TASKS: tuple[str, ...] = ("scenes", "similarity")  # on overlapping-window video features
CLUSTER_TASKS: tuple[str, ...] = ("clusters",)  # k-means of features next to the dataset's IDT clusters labels
TASKS: tuple[str, ...] = ALL_TASKS + WINDOW_TASKS + CLUSTER_TASKS


def _check_at_least_one(settings: object, *names: str) -> None:
    """ValueError naming the first of the int fields ``names`` of ``settings`` that is below 1."""
    for name in names:
        if getattr(settings, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(settings, name)}")


def _check_dropout(dropout: float) -> None:
    """ValueError unless ``dropout`` is a drop probability in [0, 1)."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")


@dataclass
class ClipSettings:
    """How clips are cut from a stored video for feature extraction and testing."""

    clips_per_video: int = 10  # uniformly spaced along the video
    clip_len: int = 16  # frames per clip (the pipeline's clip_len, or the backbone's training clip length)
    crop_size: int = 112  # centre crop (square) taken from the stored frames
    batch_size: int = 8  # clips per forward pass
    num_workers: int = 0  # DataLoader processes reading clips (feature extraction and fine-tuning)
    frames: int | None = None  # frames of an evaluation clip when they differ from clip_len (CVRL: 32)
    stride: int = 1  # temporal stride between a clip's frames (CVRL: 2)

    def __post_init__(self) -> None:
        _check_at_least_one(self, "clips_per_video", "clip_len", "crop_size", "batch_size", "stride")
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")

    @property
    def length(self) -> int:
        """Frames of an evaluation clip: ``frames``, or ``clip_len`` when it is not set."""
        return self.frames or self.clip_len


@dataclass
class LinearProbeSettings:
    """Batch-norm + dropout + linear layer on frozen video features, and logistic regression."""

    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-2  # Adam
    weight_decay: float = 1e-4
    dropout: float = 0.5
    logreg_c: float = 1.0  # inverse L2 strength of the logistic regression (standardised features)
    logreg_max_iter: int = 1000

    def __post_init__(self) -> None:
        _check_at_least_one(self, "epochs", "batch_size", "logreg_max_iter")
        _check_dropout(self.dropout)
        if self.lr <= 0 or self.logreg_c <= 0:
            raise ValueError(f"lr and logreg_c must be > 0, got {self.lr} and {self.logreg_c}")


@dataclass
class FewShotSettings:
    """k labelled videos per class, logistic regression on L2-normalised frozen features."""

    shots: list[int] = field(default_factory=lambda: [1, 5, 10, 20])
    draws: int = 10  # random draws averaged per k

    def __post_init__(self) -> None:
        _check_at_least_one(self, "draws")
        if not self.shots or min(self.shots) < 1:
            raise ValueError(f"shots must be a non-empty list of counts >= 1, got {self.shots}")


@dataclass
class RetrievalSettings:
    """Test videos query the training videos by cosine similarity."""

    ks: list[int] = field(default_factory=lambda: [1, 5, 10, 20, 50])

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be a non-empty list of counts >= 1, got {self.ks}")


@dataclass
class FinetuneSettings:
    """Whole network with a new classifier head."""

    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3  # SGD, for the new head
    backbone_lr_scale: float = 1.0  # backbone lr = lr * this (e.g. 0.1 for a lower backbone lr)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    dropout: float = 0.5
    freeze_stages: int = 0  # freeze the first k stages of the backbone
    l2_to_pretrained: float = 0.0  # coefficient of ||θ - θ_pretrained||² (CPC's fine-tuning: 1e-4; 0: off)
    label_fractions: list[float] = field(default_factory=lambda: [1.0])  # e.g. [0.01, 0.1, 1.0]

    def __post_init__(self) -> None:
        _check_at_least_one(self, "batch_size")  # epochs may be 0: test the network as it comes
        _check_dropout(self.dropout)
        bad = [f for f in self.label_fractions if not 0.0 < f <= 1.0]
        if bad:
            raise ValueError(f"label_fractions must lie in (0, 1], got {bad}")
        if self.freeze_stages < 0:
            raise ValueError(f"freeze_stages must be >= 0, got {self.freeze_stages}")
        if self.l2_to_pretrained < 0:
            raise ValueError(f"l2_to_pretrained must be >= 0, got {self.l2_to_pretrained}")


@dataclass
class SegmentEvalSettings:
    """Evaluation of a segment backbone (CPC, DPC: its ``backbone.pt`` records ``segments``).

    Frozen protocols: a video's feature is the mean of the pooled features of ``test_segments`` segments spread
    uniformly over it (CPC: the mean of z_t). CPC fine-tuning: BN + dropout + linear on the mean of z_t over
    ``train_segments`` random segments per video (``test_segments`` at test), the L2 penalty towards the
    pretrained weights ``finetune.l2_to_pretrained``. DPC fine-tuning: backbone + ConvGRU over the N blocks of a
    clip; test clips start every half clip, softmax averaged per video.
    """

    test_segments: int = 15
    train_segments: int = 8

    def __post_init__(self) -> None:
        _check_at_least_one(self, "test_segments", "train_segments")


@dataclass
class WindowSettings:
    """Video features of the scenes and similarity protocols: every ``clip_len``-frame clip (``clips.clip_len``)
    with consecutive clips sharing ``overlap`` frames, pool3/pool4/pool5 averaged per video, L2-normalised."""

    overlap: int = 8
    batch_size: int = 8  # clips per forward pass

    def __post_init__(self) -> None:
        _check_at_least_one(self, "batch_size")
        if self.overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {self.overlap}")


@dataclass
class ScenesSettings:
    """Dynamic scene recognition (YUPENN): a linear SVM on one stage's video features, leave-one-out."""

    stage: Literal["pool3", "pool4", "pool5"] = "pool5"
    svm_c: float = 1.0
    max_iter: int = 10000
    n_jobs: int = 1  # threads for the N leave-one-out fits (-1: one per core)

    def __post_init__(self) -> None:
        _check_at_least_one(self, "max_iter")
        if self.svm_c <= 0:
            raise ValueError(f"svm_c must be > 0, got {self.svm_c}")


@dataclass
class SimilaritySettings:
    """Action similarity labelling (ASLAN): 12 (dis)similarities x pool3/4/5, linear SVM over the folds.

    ``pairs``: a pair list (``*.txt`` of ``eval.pairs.write_pairs`` or an ASLAN view ``*.mat``); without it
    one is built from the labelled videos with ``n_folds`` folds of disjoint classes.
    """

    pairs: str | None = None
    n_folds: int = 10
    pairs_per_fold: int = 600
    svm_c: float = 1.0
    max_iter: int = 10000

    def __post_init__(self) -> None:
        _check_at_least_one(self, "pairs_per_fold", "max_iter")
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be >= 2, got {self.n_folds}")
        if self.svm_c <= 0:
            raise ValueError(f"svm_c must be > 0, got {self.svm_c}")


@dataclass
class DescriptorSettings:
    """Stored video descriptors (``--weights idt`` / ``descriptors:FILE``)."""

    max_missing_fraction: float = 0.05  # videos without a row get a zero descriptor, up to this share

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_missing_fraction < 1.0:
            raise ValueError(f"max_missing_fraction must lie in [0, 1), got {self.max_missing_fraction}")


@dataclass
class EvalSettings:
    """Which protocols run, how features are taken and how the data is split."""

    tasks: list[Task] = field(default_factory=lambda: ["linear", "fewshot", "retrieval"])
    stage: Literal["pool3", "pool4", "pool5"] = "pool5"
    stream: Literal["frames", "flow", "diff", "mb"] = "frames"  # input the backbone was trained on
    split: Literal["files", "stratified"] = "files"  # dataset's split files, or a stratified split
    test_fraction: float = 0.3  # for split: stratified
    seed: int = 0  # splits, draws, random initialisation and training
    clips: ClipSettings = field(default_factory=ClipSettings)
    linear: LinearProbeSettings = field(default_factory=LinearProbeSettings)
    fewshot: FewShotSettings = field(default_factory=FewShotSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    windows: WindowSettings = field(default_factory=WindowSettings)
    scenes: ScenesSettings = field(default_factory=ScenesSettings)
    similarity: SimilaritySettings = field(default_factory=SimilaritySettings)
    descriptors: DescriptorSettings = field(default_factory=DescriptorSettings)
    segments: SegmentEvalSettings = field(default_factory=SegmentEvalSettings)
    # hand-crafted baselines `run` evaluates beside the method, in one comparison (idt: the dataset's IDT
    # Fisher vectors, for which `run` also makes the idt and fisher labels)
    baselines: list[Literal["idt"]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        if len(set(self.baselines)) != len(self.baselines):
            raise ValueError(f"baselines names a baseline more than once: {self.baselines}")
