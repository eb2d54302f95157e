"""The stored streams in one place: RGB frames, optical flow, image differences, motion boundaries.

For each stream: its channel count, how many items a video of N frames has, reading a clip at any frame
indices, cropping and mirroring it (a mirrored flow field also has its u component negated: the one place
this rule is written), and turning a batch of clips into the backbone's float input. Training, evaluation,
the labels and ``show-labels`` all go through these functions.

Arrays per stream (one clip, T items): ``frames`` uint8 [T, H, W, 3] (RGB); ``flow`` float32 [T, H, W, 2]
(u, v in px, item t: frame t -> t+1); ``diff`` float32 [T, H, W] (frame t+1 - frame t, in [-255, 255]); ``mb``
float32 [T, H, W, 2] (``|grad u|``, ``|grad v|`` of flow t in px/px, >= 0; unchanged by a mirror).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # torch is imported on first use: CPU-stage workers that only read and crop never load it
    import torch

CHANNELS: dict[str, int] = {"frames": 3, "flow": 2, "diff": 1, "mb": 2}
_READERS = {"frames": "read_frames", "flow": "read_flow", "diff": "read_diff", "mb": "read_motion_boundaries"}
MB_INPUT_SCALE = 2.0  # px/px: motion boundaries are divided by this for the backbone (the default stored bound)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def check_stream(stream: str) -> None:
    """ValueError unless ``stream`` is one of the stored streams."""
    if stream not in CHANNELS:
        raise ValueError(f"unknown stream {stream!r} (known: {', '.join(CHANNELS)})")


def stream_length(n_frames: int, stream: str, where: str = "video") -> int:
    """Items of ``stream`` in a video of ``n_frames`` frames (flow, differences, mb: one fewer, per pair)."""
    check_stream(stream)
    length = n_frames if stream == "frames" else n_frames - 1
    if length < 1:
        raise ValueError(f"{where} has {n_frames} frame(s), too few for stream {stream!r}")
    return length


def arithmetic_runs(sorted_unique: np.ndarray) -> list[tuple[int, int, int]]:
    """Split increasing ints [N] into maximal runs with a constant step: ``(start, stop, step)`` slices."""
    runs: list[tuple[int, int, int]] = []
    i, n = 0, len(sorted_unique)
    while i < n:
        j = i + 1
        step = int(sorted_unique[j] - sorted_unique[i]) if j < n else 1
        while j + 1 < n and sorted_unique[j + 1] - sorted_unique[j] == step:
            j += 1
        if j == n:  # single trailing element
            runs.append((int(sorted_unique[i]), int(sorted_unique[i]) + 1, 1))
            break
        runs.append((int(sorted_unique[i]), int(sorted_unique[j]) + 1, step))
        i = j + 1
    return runs


def read_items(dataset: Any, stream: str, video_id: str, indices: np.ndarray | Sequence[int]) -> np.ndarray:
    """Items of ``stream`` at arbitrary ``indices`` int [T] (repeats and wrap-arounds allowed) of a
    ``preprocess.dataset.Dataset`` video, each read (and decoded) once: [T, H, W, ...] in the stream's dtype.

    Raises ValueError naming the dataset and video when the stream holds fewer items than asked for.
    """
    check_stream(stream)
    read = getattr(dataset, _READERS[stream])
    indices = np.asarray(indices, dtype=np.int64)
    unique, inverse = np.unique(indices, return_inverse=True)
    parts = []
    for start, stop, step in arithmetic_runs(unique):
        part = read(video_id, start, stop, step)
        if len(part) != len(range(start, stop, step)):
            raise ValueError(f"{dataset.path}: {video_id}: asked for {stream} {start}..{stop - 1}, got {len(part)} items")
        parts.append(part)
    if len(parts) == 1 and np.array_equal(unique, indices):  # one increasing run: no copy needed
        return parts[0]
    return np.concatenate(parts, axis=0)[inverse]


def crop(values: np.ndarray, y: int, x: int, size: int, flip: bool = False, stream: str = "frames") -> np.ndarray:
    """The ``size`` x ``size`` window at (``y``, ``x``) of every item of a clip [T, H, W, ...], mirrored
    horizontally when ``flip``; a mirrored ``flow`` has its u component negated (a copy then; else a view); the
    other streams (``mb`` included: gradient magnitudes do not change under a mirror) are only mirrored.

    Raises ValueError when the window does not fit the frames.
    """
    check_stream(stream)
    height, width = values.shape[1:3]
    if not (0 <= y and 0 <= x and y + size <= height and x + size <= width and size > 0):
        raise ValueError(f"crop (y={y}, x={x}, size={size}) does not fit frames of {height}x{width}")
    window = values[:, y : y + size, x : x + size]
    if not flip:
        return window
    mirrored = window[:, :, ::-1]
    if stream != "flow":
        return mirrored
    mirrored = mirrored.copy()
    if mirrored.dtype == np.uint8:  # stored codes: code c stands for -(c - 127.5) * scale after the mirror
        mirrored[..., 0] = 255 - mirrored[..., 0]
    elif np.issubdtype(mirrored.dtype, np.floating):
        mirrored[..., 0] = -mirrored[..., 0]
    else:
        raise ValueError(f"flow must be float (px) or uint8 (codes), got {mirrored.dtype}")
    return mirrored


def normalize(x: "torch.Tensor", mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> "torch.Tensor":
    """(x - mean) / std per channel of a float clip batch [B, C, T, H, W] -> same."""
    import torch

    if x.ndim != 5 or not x.is_floating_point():
        raise ValueError(f"normalize: expected a float clip batch [B, C, T, H, W], got {x.dtype} {tuple(x.shape)}")
    if len(mean) != x.shape[1] or len(std) != x.shape[1] or min(std) <= 0:
        raise ValueError(f"normalize: need one mean and one positive std per channel (C = {x.shape[1]}), "
                         f"got mean {tuple(mean)}, std {tuple(std)}")
    shape = (1, x.shape[1], 1, 1, 1)
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(shape)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(shape)
    return (x - m) / s


def to_input(clips: "np.ndarray | torch.Tensor", stream: str, *, flow_bound: float = 20.0,
             subtract_mean: bool = False, mb_scale: float = MB_INPUT_SCALE,
             device: "str | torch.device" = "cpu") -> "torch.Tensor":
    """A batch of clips -> the backbone's float input [B, C, T, H, W] on ``device``.

    ``frames`` uint8 [B, T, H, W, 3]: scaled to [0, 1], then ImageNet-normalised; ``flow`` float [B, T, H, W, 2]
    px: divided by ``flow_bound`` (to [-1, 1]), with ``subtract_mean`` the spatial mean of each flow frame
    removed (camera motion, as CPC on flow does); ``diff`` float [B, T, H, W]: divided by 255; ``mb`` float
    [B, T, H, W, 2] px/px: divided by ``mb_scale``.
    """
    import torch

    check_stream(stream)
    x = torch.as_tensor(clips).to(device, non_blocking=True)
    if stream == "frames":
        return normalize(x.permute(0, 4, 1, 2, 3).float() / 255.0)
    if stream == "flow":
        x = x.permute(0, 4, 1, 2, 3).float() / float(flow_bound)
        return x - x.mean(dim=(3, 4), keepdim=True) if subtract_mean else x
    if stream == "mb":
        return x.permute(0, 4, 1, 2, 3).float() / float(mb_scale)
    return x.unsqueeze(1).float() / 255.0
