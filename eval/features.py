"""Video features from a frozen backbone: mean of pooled stage features over uniformly sampled clips,
cached on disk so several evaluations reuse one extraction.

The cache key covers the weights (file hash, or the random-initialisation recipe), the stage, the clip
settings, the input stream and the dataset (its path, its videos and its extraction settings).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from common.atomic import atomic_path
from eval.scenes import video_descriptor
from eval.settings import ClipSettings
from eval.video_clips import evaluation_loader
from preprocess.dataset import Dataset
from preprocess.streams import to_input
from train.backbones.base import Backbone


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def dataset_signature(dataset: Dataset, data_dir: str | Path, video_ids: list[str]) -> dict:
    """What identifies the features' input: the dataset's path and extraction settings, the videos and
    their lengths."""
    return {
        "path": str(Path(data_dir).resolve()),
        "videos": [[vid, int(dataset.video(vid).n_frames)] for vid in video_ids],
        "settings": dataset.settings,
    }


def cache_key(weights_id: str, stage: str, stream: str, clips: ClipSettings, dataset: Dataset, data_dir: str | Path,
              video_ids: list[str], overlap: int | None = None) -> str:
    """Hex digest naming one feature extraction (independent of batch size and worker count); with
    ``overlap`` the extraction of overlapping windows (clip length, overlap and crop, not the clip count)."""
    clip_recipe = {k: v for k, v in asdict(clips).items() if k not in ("batch_size", "num_workers")}
    if overlap is not None:
        clip_recipe = {"windows": True, "clip_len": clips.clip_len, "overlap": overlap, "crop_size": clips.crop_size}
    return recipe_key({"weights": weights_id, "stage": stage, "stream": stream, "clips": clip_recipe,
                       "dataset": dataset_signature(dataset, data_dir, video_ids)})


def recipe_key(recipe: dict) -> str:
    """Hex digest (32 characters) of a JSON-serialisable extraction recipe: the name of its cache file."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:32]


@torch.no_grad()
def clip_features(backbone: Backbone, clips: torch.Tensor, stage: str, batch_size: int) -> torch.Tensor:
    """Pooled ``stage`` features of normalized clips [N, C, T, H, W] -> float32 [N, D], in batches."""
    outputs = [backbone.forward_stages(batch, last=stage)[stage].float() for batch in clips.split(batch_size)]
    return torch.cat(outputs)


@torch.no_grad()
def extract_features(backbone: Backbone, dataset: Dataset, video_ids: list[str], stage: str, stream: str,
                     clips: ClipSettings, device: str | torch.device = "cpu", progress: bool = False) -> np.ndarray:
    """Video features float32 [N, D]: the mean over ``clips.clips_per_video`` centre-cropped clips of the
    backbone's pooled ``stage`` features (``backbone`` in eval mode on ``device``)."""
    backbone.eval()
    flow_bound = dataset.flow_bound if stream == "flow" else 1.0
    features = []
    loader = evaluation_loader(dataset, stream, video_ids, clips, device)
    for raw in tqdm(loader, desc=f"features ({stage})", disable=not progress, leave=False):
        x = to_input(raw, stream, flow_bound=flow_bound, device=device)
        features.append(clip_features(backbone, x, stage, clips.batch_size).mean(dim=0).cpu().numpy())
    return np.stack(features).astype(np.float32)


WINDOW_STAGES: tuple[str, ...] = ("pool3", "pool4", "pool5")


@torch.no_grad()
def extract_window_features(backbone: Backbone, dataset: Dataset, video_ids: list[str], stream: str,
                            clips: ClipSettings, overlap: int, batch_size: int, device: str | torch.device = "cpu",
                            progress: bool = False) -> dict[str, np.ndarray]:
    """Per stage of ``WINDOW_STAGES`` the video descriptors float32 [N, D_s]: every ``clips.clip_len`` clip
    of a video with ``overlap`` frames shared by consecutive clips (centre crop ``clips.crop_size``), the
    pooled features of all three stages from one ``forward_stages`` pass, averaged over the video's clips
    and L2-normalised (``eval.scenes.video_descriptor``)."""
    backbone.eval()
    flow_bound = dataset.flow_bound if stream == "flow" else 1.0
    rows: dict[str, list[np.ndarray]] = {stage: [] for stage in WINDOW_STAGES}
    loader = evaluation_loader(dataset, stream, video_ids, clips, device, overlap=overlap)
    for raw in tqdm(loader, desc="window features", disable=not progress, leave=False):
        x = to_input(raw, stream, flow_bound=flow_bound, device=device)
        outputs = [backbone.forward_stages(batch, last="pool5") for batch in x.split(batch_size)]
        for stage in WINDOW_STAGES:
            clip_rows = torch.cat([out[stage].float() for out in outputs]).cpu().numpy()
            rows[stage].append(video_descriptor(clip_rows).astype(np.float32))
    return {stage: np.stack(values) for stage, values in rows.items()}


def cached_arrays(cache_dir: str | Path, key: str, video_ids: list[str],
                  compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays stored in ``cache_dir/<key>.npz`` when it holds them for ``video_ids`` (in that order), else
    ``compute()``'s, stored there with the ids (written atomically, ``common.atomic``: a temporary file beside
    it, then a rename)."""
    path = Path(cache_dir) / f"{key}.npz"
    if path.is_file():
        with np.load(path) as stored:
            if stored["video_ids"].tolist() == list(video_ids):
                return {name: stored[name] for name in stored.files if name != "video_ids"}
    arrays = compute()
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays, video_ids=np.array(video_ids))
    return arrays


def cached_window_features(backbone: Backbone, weights_id: str, dataset: Dataset, data_dir: str | Path,
                           video_ids: list[str], stream: str, clips: ClipSettings, overlap: int, batch_size: int,
                           cache_dir: str | Path, device: str | torch.device = "cpu",
                           progress: bool = False) -> dict[str, np.ndarray]:
    """``extract_window_features`` read from ``cache_dir/<key>.npz`` when present, else computed and stored.

    The key (``cache_key`` with ``overlap``) covers the weights, stream, dataset and the windowing."""
    key = cache_key(weights_id, "+".join(WINDOW_STAGES), stream, clips, dataset, data_dir, video_ids, overlap)
    return cached_arrays(cache_dir, key, video_ids, lambda: extract_window_features(
        backbone, dataset, video_ids, stream, clips, overlap, batch_size, device, progress))


def cached_features(backbone: Backbone, weights_id: str, dataset: Dataset, data_dir: str | Path,
                    video_ids: list[str], stage: str, stream: str, clips: ClipSettings, cache_dir: str | Path,
                    device: str | torch.device = "cpu", progress: bool = False) -> np.ndarray:
    """Features float32 [N, D] of ``video_ids``, read from ``cache_dir/<key>.npz`` when present, else
    extracted and stored there (written atomically)."""
    key = cache_key(weights_id, stage, stream, clips, dataset, data_dir, video_ids)
    return cached_arrays(cache_dir, key, video_ids, lambda: {"features": extract_features(
        backbone, dataset, video_ids, stage, stream, clips, device, progress)})["features"]
