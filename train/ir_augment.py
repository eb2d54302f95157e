"""Clip augmentation of video IR / LA (Tokmakov et al. 2020, after Hara et al.'s 3D ResNets), batched on the
device: a clip-consistent multi-scale random crop (a square of side scale x the short side, scale drawn from
``IR_CROP_SCALES``, placed uniformly), resized to 112, horizontal flip, grey with p 0.2 and colour jitter 0.4
(hue 0.4). Clips are float [B, 3, T, H, W] in [0, 1]; every frame of a clip gets the same parameters.
"""
from __future__ import annotations

import torch

from preprocess.streams import normalize
from train import augment

IR_CROP_SCALES: tuple[float, ...] = (1.0, 0.84089641525, 0.70710678118, 0.59460355750, 0.5)
"""1, 2^(-1/4), 2^(-1/2), 2^(-3/4), 1/2 of the short side."""
IR_CROP_SIZE = 112
IR_JITTER = 0.4
IR_GRAYSCALE_P = 0.2


def multiscale_crop_boxes(x: torch.Tensor, scales: tuple[float, ...] = IR_CROP_SCALES,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """Square boxes (top, left, height, width) in pixels, one per clip: float32 [B, 1, 4]; side = a scale
    drawn uniformly from ``scales`` times the short side, position uniform inside the frame."""
    if not scales or not all(0 < s <= 1 for s in scales):
        raise ValueError(f"multiscale_crop_boxes: scales must lie in (0, 1], got {scales}")
    batch, height, width = x.shape[0], x.shape[-2], x.shape[-1]
    device = generator.device if generator is not None else x.device
    choice = torch.randint(len(scales), (batch,), generator=generator, device=device)
    side = torch.tensor(scales, device=device)[choice] * min(height, width)
    top = torch.rand(batch, generator=generator, device=device) * (height - side)
    left = torch.rand(batch, generator=generator, device=device) * (width - side)
    return torch.stack([top, left, side, side], dim=-1)[:, None].to(x.device)


def ir_augment(x: torch.Tensor, size: int = IR_CROP_SIZE, generator: torch.Generator | None = None) -> torch.Tensor:
    """Multi-scale crop to ``size``, flip p 0.5, grey p 0.2, colour jitter 0.4/0.4/0.4 hue 0.4 (p 1), then
    ImageNet normalisation: [B, 3, T, H, W] in [0, 1] -> [B, 3, T, size, size]."""
    x = augment.resized_crop(x, multiscale_crop_boxes(x, generator=generator), size)
    x = augment.horizontal_flip(x, 0.5, generator=generator)
    x = augment.random_grayscale(x, IR_GRAYSCALE_P, generator=generator)
    x = augment.color_jitter(x, IR_JITTER, IR_JITTER, IR_JITTER, IR_JITTER, p=1.0, generator=generator)
    return normalize(x)
