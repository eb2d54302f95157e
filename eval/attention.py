"""Activation-based attention maps (Zagoruyko & Komodakis, ICLR 2017) of a backbone's last conv stage,
shown beside the clip's frame and its summed motion boundaries (thesis Figure 3.7).

The map of an activation A [C, t, h, w] is F(A) = sum_c |A_c|^2 (their F_sum^p with p = 2), upsampled
(trilinear) to the clip's [T, H, W] and divided by its maximum (an all-zero map stays zero).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from eval.clips import center_crop, clip_indices, clip_starts
from labels.stats import clip_motion_boundaries
from preprocess.dataset import Dataset
from preprocess.streams import read_items, stream_length, to_input
from train.backbones.base import Backbone


def activation_attention(activation: torch.Tensor | np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """Attention of activations float [B, C, t, h, w] -> float32 [B, T, H, W] in [0, 1] for ``size`` (T, H, W):
    sum over channels of the squared activation, trilinear upsampling, division by each map's maximum."""
    a = torch.as_tensor(activation, dtype=torch.float32)
    if a.ndim != 5:
        raise ValueError(f"expected activations [B, C, t, h, w], got shape {tuple(a.shape)}")
    energy = a.pow(2).sum(dim=1, keepdim=True)
    upsampled = F.interpolate(energy, size=tuple(size), mode="trilinear", align_corners=False)[:, 0]
    peak = upsampled.flatten(1).amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
    return (upsampled / peak[:, None, None, None]).numpy()


@torch.no_grad()
def clip_attention(backbone: Backbone, x: torch.Tensor) -> np.ndarray:
    """Attention of the last conv stage (``forward_features``) for input clips [B, C, T, H, W] ->
    float32 [B, T, H, W]."""
    backbone.eval()
    return activation_attention(backbone.forward_features(x).float().cpu(), tuple(x.shape[2:]))


def summed_boundaries(flow: np.ndarray) -> np.ndarray:
    """Summed motion boundaries of a clip's flow float [T, S, S, 2] (px): the magnitude of the u boundary plus
    that of the v boundary (``labels.stats.clip_motion_boundaries``) -> float32 [S, S]."""
    flow = np.asarray(flow, dtype=np.float32)
    magnitude = clip_motion_boundaries(np.ascontiguousarray(flow[..., 0]), np.ascontiguousarray(flow[..., 1])).magnitude
    return (magnitude[0] + magnitude[1]).astype(np.float32)


def attention_panels(backbone: Backbone, dataset: Dataset, stream: str, video_ids: list[str], clip_len: int,
                     crop_size: int, device: str | torch.device = "cpu") -> list[dict[str, np.ndarray | None]]:
    """Per video, its middle clip (centre crop): ``frame`` uint8 [S, S, 3] (the clip's middle frame),
    ``attention`` float32 [S, S] at that frame, ``boundaries`` float32 [S, S] of the clip's flow (None when
    the dataset has no flow stream)."""
    panels = []
    for video_id in video_ids:
        n_frames = dataset.video(video_id).n_frames
        length = stream_length(n_frames, stream, where=f"video {video_id!r}")
        start = int(clip_starts(length, clip_len, 3)[1])  # clip_len consecutive frames: span = clip_len
        where = f"{dataset.path}: {video_id}"
        items = center_crop(read_items(dataset, stream, video_id, clip_indices(start, clip_len, length)), crop_size,
                            where=where)
        flow_bound = dataset.flow_bound if stream == "flow" else 1.0
        attention = clip_attention(backbone, to_input(items[None], stream, flow_bound=flow_bound, device=device))[0]
        middle = clip_len // 2
        frame = center_crop(read_items(dataset, "frames", video_id, [(start + middle) % n_frames]), crop_size,
                            where=where)[0]
        boundaries = None
        if dataset.has_stream("flow"):
            flows = stream_length(n_frames, "flow", where=f"video {video_id!r}")
            flow = read_items(dataset, "flow", video_id, clip_indices(min(start, flows - 1), clip_len - 1, flows))
            boundaries = summed_boundaries(center_crop(flow, crop_size, where=where))
        panels.append({"frame": frame, "attention": attention[middle], "boundaries": boundaries})
    return panels
