"""CVRL's temporally consistent augmentation of two clips (Qian et al., CVPR 2021), batched on the device.

Each clip gets its own random parameters, shared by all its frames: random resized crop (area 0.3-1,
aspect 0.5-2), horizontal flip, colour jitter of strength s = 1 (brightness, contrast, saturation 0.8 s,
hue 0.2 s, in a random order per clip) with p 0.8, grey p 0.2, Gaussian blur (sigma 0.1-2, taps 10% of
the crop side: 23 at 224) with p 1.0 on the first clip and 0.1 on the second, solarisation with p 0.2 on
the second clip only. Built from the ops of ``train.augment``; clips are float [B, 3, T, H, W] in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from preprocess.streams import IMAGENET_MEAN, IMAGENET_STD, normalize
from train import augment

JITTER_OPS = (augment.adjust_brightness, augment.adjust_contrast, augment.adjust_saturation, augment.adjust_hue)
"""Colour jitter ops in the index order used by ``JitterParams.order``; each takes (clip, per-clip factor)."""


def _draw(batch: int, low: float, high: float, generator: torch.Generator | None,
          device: torch.device) -> torch.Tensor:
    """Uniform float32 [batch] in [low, high) on ``device`` (drawn on the generator's device)."""
    draw_device = generator.device if generator is not None else device
    return (low + (high - low) * torch.rand(batch, generator=generator, device=draw_device)).to(device)


def solarize(x: torch.Tensor, p: float, threshold: float = 0.5,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """With probability ``p`` per clip, invert the values at or above ``threshold``: v -> 1 - v.
    [B, C, T, H, W] in [0, 1] -> same."""
    if x.ndim != 5:
        raise ValueError(f"solarize: expected a clip batch [B, C, T, H, W], got {tuple(x.shape)}")
    apply = (_draw(x.shape[0], 0.0, 1.0, generator, x.device) < p).view(-1, 1, 1, 1, 1)
    return torch.where(apply & (x >= threshold), 1 - x, x)


@dataclass
class JitterParams:
    """Per-clip colour jitter draws: ``factors`` float32 [4, B] (brightness, contrast, saturation factors and
    hue shift in turns), ``order`` int64 [B, 4] (a permutation of the four ops per clip), ``apply`` bool [B]."""

    factors: torch.Tensor
    order: torch.Tensor
    apply: torch.Tensor


def draw_jitter(batch: int, strength: float, p: float, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> JitterParams:
    """SimCLR's colour jitter of ``strength`` s: factors ~ U(max(0, 1 - 0.8 s), 1 + 0.8 s) for brightness,
    contrast, saturation, hue shift ~ U(-0.2 s, 0.2 s); order uniform over the 24 permutations."""
    device = torch.device(device)
    high = 0.8 * strength
    factors = torch.stack([_draw(batch, max(0.0, 1 - high), 1 + high, generator, device) for _ in range(3)]
                          + [_draw(batch, -0.2 * strength, 0.2 * strength, generator, device)])
    order = torch.argsort(torch.stack([_draw(batch, 0.0, 1.0, generator, device) for _ in range(4)], dim=1), dim=1)
    apply = _draw(batch, 0.0, 1.0, generator, device) < p
    return JitterParams(factors, order, apply)


def apply_jitter(x: torch.Tensor, params: JitterParams) -> torch.Tensor:
    """Colour jitter with drawn parameters: each selected clip goes through the four ops in its own order.
    RGB [B, 3, T, H, W] -> same (computed in float32, returned in x's dtype)."""
    out = x.float().clone()
    for position in range(len(JITTER_OPS)):
        for op_index, op in enumerate(JITTER_OPS):
            rows = torch.nonzero(params.apply & (params.order[:, position] == op_index)).flatten()
            if rows.numel():
                out[rows] = op(out[rows], params.factors[op_index, rows].view(-1, 1, 1, 1, 1))
    return out.to(x.dtype)


@dataclass
class CVRLAugment:
    """The paper's augmentation settings a pipeline may change (section ``train.cvrl.augment``); ``blur_p`` and
    ``solarize_p`` are (first clip, second clip)."""

    crop_scale: tuple[float, float] = (0.3, 1.0)
    crop_ratio: tuple[float, float] = (0.5, 2.0)
    flip_p: float = 0.5
    jitter_strength: float = 1.0
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: tuple[float, float] = (1.0, 0.1)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: tuple[float, float] = (0.0, 0.2)


@dataclass
class CVRLAugmentSettings(CVRLAugment):
    """:class:`CVRLAugment` plus what the run sets: the output crop size and the normalisation."""

    crop_size: int | tuple[int, int] = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


def augment_clip(x: torch.Tensor, settings: CVRLAugmentSettings, blur_p: float, solarize_p: float,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """One clip per row, every frame alike: [B, 3, T, H, W] in [0, 1] -> normalized [B, 3, T, s, s]."""
    s = settings
    x = augment.random_resized_crop(x, s.crop_size, s.crop_scale, s.crop_ratio, generator=generator)
    x = augment.horizontal_flip(x, s.flip_p, generator=generator)
    x = apply_jitter(x, draw_jitter(x.shape[0], s.jitter_strength, s.jitter_p, generator, x.device))
    x = augment.random_grayscale(x, s.grayscale_p, generator=generator)
    if blur_p > 0:
        x = augment.gaussian_blur(x, s.blur_sigma, blur_p, generator=generator)
    if solarize_p > 0:
        x = solarize(x, solarize_p, generator=generator)
    return normalize(x, s.mean, s.std)


def augment_pair(first: torch.Tensor, second: torch.Tensor, settings: CVRLAugmentSettings | None = None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The two clips of each video, augmented independently (blur and solarisation asymmetric):
    [B, 3, T, H, W] x 2 in [0, 1] -> normalized [B, 3, T, s, s] x 2."""
    s = settings if settings is not None else CVRLAugmentSettings()
    return (augment_clip(first, s, s.blur_p[0], s.solarize_p[0], generator),
            augment_clip(second, s, s.blur_p[1], s.solarize_p[1], generator))
