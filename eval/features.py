"""Video features from a frozen backbone: mean of pooled stage features over uniformly sampled clips,
cached on disk so several evaluations reuse one extraction.

The cache key covers the weights (file hash, or the random-initialisation recipe), the stage, the clip
settings, the input stream and the dataset (its path, its videos and its extraction settings).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from eval.settings import ClipSettings
from eval.video_clips import evaluation_loader
from preprocess.streams import to_input


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def dataset_signature(dataset, data_dir: str | Path, video_ids: list[str]) -> dict:
    """What identifies the features' input: the dataset's path and extraction settings, the videos and
    their lengths."""
    return {
        "path": str(Path(data_dir).resolve()),
        "videos": [[vid, int(dataset.video(vid).n_frames)] for vid in video_ids],
        "settings": dataset.settings,
    }


def cache_key(weights_id: str, stage: str, stream: str, clips: ClipSettings, dataset, data_dir: str | Path,
              video_ids: list[str]) -> str:
    """Hex digest naming one feature extraction (independent of batch size and worker count)."""
    clip_recipe = {k: v for k, v in asdict(clips).items() if k not in ("batch_size", "num_workers")}
    recipe = {"weights": weights_id, "stage": stage, "stream": stream, "clips": clip_recipe,
              "dataset": dataset_signature(dataset, data_dir, video_ids)}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:32]


@torch.no_grad()
def clip_features(backbone, clips: torch.Tensor, stage: str, batch_size: int) -> torch.Tensor:
    """Pooled ``stage`` features of normalized clips [N, C, T, H, W] -> float32 [N, D], in batches."""
    outputs = [backbone.forward_stages(batch, last=stage)[stage].float() for batch in clips.split(batch_size)]
    return torch.cat(outputs)


@torch.no_grad()
def extract_features(backbone, dataset, video_ids: list[str], stage: str, stream: str, clips: ClipSettings,
                     device: str | torch.device = "cpu", progress: bool = False) -> np.ndarray:
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


def cached_features(backbone, weights_id: str, dataset, data_dir: str | Path, video_ids: list[str], stage: str,
                    stream: str, clips: ClipSettings, cache_dir: str | Path, device: str | torch.device = "cpu",
                    progress: bool = False) -> np.ndarray:
    """Features float32 [N, D] of ``video_ids``, read from ``cache_dir/<key>.npz`` when present, else
    extracted and stored there (written atomically)."""
    key = cache_key(weights_id, stage, stream, clips, dataset, data_dir, video_ids)
    path = Path(cache_dir) / f"{key}.npz"
    if path.is_file():
        with np.load(path) as stored:
            if stored["video_ids"].tolist() == list(video_ids):
                return stored["features"]
    features = extract_features(backbone, dataset, video_ids, stage, stream, clips, device, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, features=features, video_ids=np.array(video_ids))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return features
