"""Video Local Aggregation (Zhuang et al. 2019 adapted to video) with the IDT prior (Tokmakov et al. 2020).

The embedding, bank and clips are those of Video IR (``video_ir.MemoryBankMethod``); the loss is LA's
(``train.instance_losses.local_aggregation_loss``): pull each clip towards the bank entries that share a
cluster with its video in any of m clusterings, among its 4096 nearest entries. The clusterings
(``cluster_labels`` int64 [m, N], a buffer) come from ``clusters``:

- ``kmeans`` (Video LA): m faiss k-means runs on the bank, recomputed before the first step, after it, and
  every ``recluster_every`` epochs;
- ``idt`` (the IDT prior): the fixed clusters of the ``clusters`` label family,
  ``DATASET/labels/clusters/clusters.h5`` (``videos`` str [V], ``assignments`` int64 [m, V]), read once and
  never recomputed;
- ``joint``: k-means on [bank vector, ``fisher_weight`` x sketched IDT Fisher vector] per video, the vectors
  read from ``DATASET/labels/fisher/fisher.h5`` (``videos`` str [V], ``vectors`` float32 [V, D]), recomputed
  like ``kmeans``.

k-means runs on rank 0 and its labels are broadcast (faiss need not be bit-identical across processes). When
the dataset has class labels, every clustering's NMI against them is logged (metric ``cluster_nmi``, the mean
over the m runs of the clusters in use) and kept in the history ``clusterings`` of the extra state.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import torch
import torch.distributed as dist
from sklearn.metrics import normalized_mutual_info_score

from labels.families.fisher import VECTOR_FIELD
from labels.store import LabelError, consolidated_path, labels_root
from train.backbones.base import Backbone
from train.bank_clustering import kmeans_runs, scaled_num_clusters
from train.instance_losses import IR_TEMPERATURE, LA_BACKGROUND_NEIGHBOURS, local_aggregation_loss
from train.methods.base import StepOutput
from train.methods.registry import register_method
from train.methods.video_ir import EMBEDDING_DIM, MemoryBankMethod
from train.settings import TrainSettings


@dataclass
class VideoLASettings:
    """Video LA (section ``train.video_la``). ``num_clusters`` / ``num_kmeans`` apply to ``kmeans`` and ``joint``
    (the IDT prior brings its own clusterings)."""

    clusters: Literal["kmeans", "idt", "joint"] = "kmeans"
    num_clusters: int | None = None  # K (None: the paper's ~40 videos per cluster, K = 6000 for 240k videos)
    num_kmeans: int = 3  # m
    recluster_every: int = 1  # epochs between re-clusterings (kmeans, joint)
    fisher_weight: float = 1.0  # joint: scale of the sketched FV block (unit norm) next to the unit bank vector
    num_background: int = LA_BACKGROUND_NEIGHBOURS
    embedding_dim: int = EMBEDDING_DIM
    temperature: float = IR_TEMPERATURE
    bank_momentum: float = 0.5
    seed: int = 0  # k-means run r uses seed + r

    def __post_init__(self) -> None:
        if self.num_kmeans < 1 or self.recluster_every < 1 or self.num_background < 1:
            raise ValueError(f"num_kmeans, recluster_every and num_background must be >= 1, got {self.num_kmeans}, "
                             f"{self.recluster_every}, {self.num_background}")
        if self.num_clusters is not None and self.num_clusters < 2:
            raise ValueError(f"num_clusters must be >= 2 (or null), got {self.num_clusters}")
        if self.temperature <= 0 or self.fisher_weight < 0 or not 0 <= self.bank_momentum < 1:
            raise ValueError(f"need temperature > 0, fisher_weight >= 0 and bank_momentum in [0, 1), got "
                             f"{self.temperature}, {self.fisher_weight}, {self.bank_momentum}")


def read_per_video(path: Path, field: str, video_ids: list[str]) -> np.ndarray:
    """Rows of ``field`` for ``video_ids`` from a per-video label file (``videos`` str [V] and ``field`` with
    the video axis last for ``assignments`` [m, V], first otherwise): [m, N] or [N, D]. ``LabelError`` naming
    the file when it is missing, malformed or lacks some of the videos (``train`` and ``run`` refuse with it)."""
    if not path.is_file():
        raise LabelError(f"{path}: missing (make the labels first: make-labels --task {path.parent.name})")
    try:
        with h5py.File(path, "r") as f:
            stored = [v.decode() if isinstance(v, bytes) else str(v) for v in f["videos"][()]]
            values = np.asarray(f[field][()])
    except (OSError, KeyError) as exc:
        raise LabelError(f"{path}: cannot read 'videos' and '{field}': {exc}") from exc
    axis = 1 if field == "assignments" else 0
    if values.ndim != 2 or values.shape[axis] != len(stored):
        raise LabelError(f"{path}: '{field}' has shape {values.shape}, expected {len(stored)} videos on axis {axis}")
    position = {video: i for i, video in enumerate(stored)}
    missing = [video for video in video_ids if video not in position]
    if missing:
        raise LabelError(f"{path}: {len(missing)} training video(s) missing, e.g. {', '.join(missing[:3])}")
    return np.take(values, [position[video] for video in video_ids], axis=axis)


def broadcast_from_main(tensor: torch.Tensor) -> None:
    """Overwrite ``tensor`` on every process with rank 0's (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.broadcast(tensor, src=0)


def is_main_process() -> bool:
    """True on rank 0, or without a process group."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def mean_nmi(labels: np.ndarray, classes: np.ndarray) -> float:
    """Mean over the m clusterings int [m, N] of the NMI against class indices int [N]."""
    return float(np.mean([normalized_mutual_info_score(classes, run) for run in labels]))


@register_method("video_la")
class VideoLocalAggregation(MemoryBankMethod):
    """Video LA: LA loss with the clusterings of ``settings.clusters``; history and state in extra state."""

    Settings = VideoLASettings
    cluster_labels: torch.Tensor

    def __init__(self, backbone: Backbone, settings: VideoLASettings) -> None:
        super().__init__(backbone, settings)
        self.ready = False  # cluster_labels hold clusters of this method's source
        self.steps_done = 0  # optimizer steps of this run so far (for the history)
        self.clusterings: list[dict[str, Any]] = []  # {"step", "nmi"} per (re-)clustering
        self.prior: np.ndarray | None = None  # idt: the fixed clusters [m, N]
        self.fisher: np.ndarray | None = None  # joint: the sketched FVs [N, D]
        self.classes: np.ndarray | None = None  # class index per training video, when every one has a label

    def attach(self, settings: TrainSettings, dataset: Any) -> None:
        """The bank, then the clusters' inputs: the IDT prior's file (idt) or the Fisher vectors (joint)."""
        super().attach(settings, dataset)
        options: VideoLASettings = self.settings
        videos = [dataset.videos[i] for i in dataset.video_indices]
        ids = [video.id for video in videos]
        root = labels_root(dataset.dataset.path, settings.labels_dir)
        if options.clusters == "idt":
            self.prior = read_per_video(consolidated_path(root, "clusters"), "assignments", ids).astype(np.int64)
            runs = self.prior.shape[0]
        else:
            runs = options.num_kmeans
            if options.clusters == "joint":
                self.fisher = read_per_video(consolidated_path(root, "fisher"), VECTOR_FIELD, ids).astype(np.float32)
        labels = [video.label for video in videos]
        if all(label is not None for label in labels) and len(set(labels)) > 1:
            self.classes = np.unique(labels, return_inverse=True)[1]
        self.register_buffer("cluster_labels", torch.zeros(runs, len(ids), dtype=torch.long))
        self._ddp_params_and_buffers_to_ignore.append("cluster_labels")  # the same on every process
        if self.prior is not None:
            self.use_clusters(self.prior)

    def num_clusters(self) -> int:
        """K of the k-means runs: the setting, or the paper's ratio of videos per cluster."""
        return self.settings.num_clusters or scaled_num_clusters(self.bank.size)

    def cluster_space(self) -> np.ndarray:
        """What k-means clusters: the bank [N, 128], or [bank, fisher_weight x FV] [N, 128 + D] (joint)."""
        bank = self.bank.vectors.detach().cpu().numpy()
        if self.fisher is None:
            return bank
        return np.hstack([bank, self.settings.fisher_weight * self.fisher])

    def use_clusters(self, labels: np.ndarray) -> None:
        """Make ``labels`` int [m, N] the clusters in use and record their NMI."""
        self.cluster_labels.copy_(torch.from_numpy(labels))
        self.ready = True
        nmi = None if self.classes is None else mean_nmi(labels, self.classes)
        self.clusterings.append({"step": self.steps_done, "nmi": nmi})

    @torch.no_grad()
    def recluster(self) -> None:
        """k-means (m runs) of the cluster space on rank 0, broadcast to every process."""
        if self.prior is not None:
            return
        if is_main_process():
            labels = kmeans_runs(self.cluster_space(), min(self.num_clusters(), self.bank.size),
                                 self.settings.num_kmeans, seed=self.settings.seed)
            self.cluster_labels.copy_(torch.from_numpy(labels))
        broadcast_from_main(self.cluster_labels)
        self.use_clusters(self.cluster_labels.cpu().numpy())

    def prepare(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """As ``MemoryBankMethod.prepare``; clusters the bank first when no clusters of this source exist yet."""
        if not self.ready:
            self.recluster()
        return super().prepare(batch, generator)

    def forward(self, inputs: dict[str, torch.Tensor]) -> StepOutput:
        embedding = self.embed(inputs["clip"])
        loss = local_aggregation_loss(embedding, self.bank.vectors, inputs["index"], self.cluster_labels,
                                      self.settings.num_background, self.settings.temperature)
        self.remember(inputs["index"], embedding)
        metrics = {"loss": loss.detach(), **self.bank_metrics(embedding, inputs["index"])}
        if self.classes is not None and self.clusterings and self.clusterings[-1]["nmi"] is not None:
            metrics["cluster_nmi"] = torch.tensor(self.clusterings[-1]["nmi"], device=loss.device)
        return StepOutput(loss, metrics)

    def after_step(self, inputs: dict[str, torch.Tensor], output: StepOutput, step: int) -> None:
        """Bank update, then the re-clustering after the first step."""
        super().after_step(inputs, output, step)
        self.steps_done = step
        if step == 1:
            self.recluster()

    def on_epoch_end(self, epoch: int) -> None:
        """Re-cluster every ``recluster_every`` epochs."""
        if epoch % self.settings.recluster_every == 0:
            self.recluster()

    def get_extra_state(self) -> dict[str, Any]:
        return {"clusters": self.settings.clusters, "ready": self.ready,
                "clusterings": [dict(c) for c in self.clusterings]}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the clusters' state and history (resume). Clusters of another source (an earlier phase,
        through ``init_from``) are not used: the IDT prior is put back, k-means clusters are recomputed
        before the next step."""
        if state["clusters"] != self.settings.clusters:
            if self.prior is not None:
                self.cluster_labels.copy_(torch.from_numpy(self.prior))
            self.ready = self.prior is not None
            return
        self.ready = bool(state["ready"])
        self.clusterings = [dict(c) for c in state["clusterings"]]
