"""Batched clip augmentations as functional torch ops (any device, one call per batch, no per-sample loops).

Every op takes a float clip batch ``x`` [B, C, T, H, W] with values in [0, 1] (C = 3 for colour ops) and
returns a tensor of the same layout. Random ops draw their parameters once per clip (``per_frame=False``:
every frame of a clip gets the same crop, flip, colour change) or once per frame (``per_frame=True``),
from ``generator`` if given (draws happen on the generator's device, so a CPU generator gives the same
result on any device). Colour ops compute in float32 and return ``x``'s dtype (autocast friendly).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights of (R, G, B)."""


def _check_clip(x: torch.Tensor, op: str, colour: bool = False) -> None:
    if x.ndim != 5 or not x.is_floating_point():
        raise ValueError(f"{op}: expected a float clip batch [B, C, T, H, W], got {x.dtype} {tuple(x.shape)}")
    if colour and x.shape[1] != 3:
        raise ValueError(f"{op}: needs RGB clips (C = 3), got C = {x.shape[1]}")


def _uniform(x: torch.Tensor, per_frame: bool, low: float, high: float,
             generator: torch.Generator | None) -> torch.Tensor:
    """Uniform draws in [low, high): float32 [B, T] (per frame) or [B, 1] (per clip), on ``x``'s device."""
    shape = (x.shape[0], x.shape[2] if per_frame else 1)
    device = generator.device if generator is not None else x.device
    draws = torch.rand(shape, generator=generator, device=device, dtype=torch.float32)
    return (low + (high - low) * draws).to(x.device)


def _bernoulli(x: torch.Tensor, per_frame: bool, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Bool [B, T] or [B, 1]: True with probability ``p``."""
    return _uniform(x, per_frame, 0.0, 1.0, generator) < p


def _as_5d(param: torch.Tensor) -> torch.Tensor:
    """[B, T'] -> [B, 1, T', 1, 1], broadcastable against a clip batch."""
    return param[:, None, :, None, None]


# ---- geometry ---------------------------------------------------------------------------------------------

def sample_crop_boxes(x: torch.Tensor, scale: tuple[float, float] = (0.08, 1.0),
                      ratio: tuple[float, float] = (3 / 4, 4 / 3), per_frame: bool = False,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Random boxes for ``random_resized_crop``: float32 [B, T', 4] = (top, left, height, width) in pixels,
    T' = T if ``per_frame`` else 1.

    Area fraction ~ U(scale), log aspect ratio (width / height) ~ U(log ratio); a box larger than the frame
    is clipped to it; its position is uniform inside the frame.
    """
    _check_clip(x, "sample_crop_boxes")
    if not (0 < scale[0] <= scale[1] <= 1) or not (0 < ratio[0] <= ratio[1]):
        raise ValueError(f"sample_crop_boxes: bad scale {scale} or ratio {ratio}")
    height, width = x.shape[-2:]
    area = _uniform(x, per_frame, scale[0], scale[1], generator) * (height * width)
    aspect = torch.exp(_uniform(x, per_frame, math.log(ratio[0]), math.log(ratio[1]), generator))
    box_w = torch.sqrt(area * aspect).clamp(max=width)
    box_h = torch.sqrt(area / aspect).clamp(max=height)
    top = _uniform(x, per_frame, 0.0, 1.0, generator) * (height - box_h)
    left = _uniform(x, per_frame, 0.0, 1.0, generator) * (width - box_w)
    return torch.stack([top, left, box_h, box_w], dim=-1)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Crop ``boxes`` [B, T', 4] (top, left, height, width; pixels, T' = 1 or T) and resize to ``size``
    with bilinear interpolation: [B, C, T, H, W] -> [B, C, T, h, w].

    Pixel centres map exactly: a box of integer position and size equal to ``size`` returns the pixels
    inside it unchanged. No antialiasing when shrinking.
    """
    _check_clip(x, "resized_crop")
    out_h, out_w = (size, size) if isinstance(size, int) else size
    batch, channels, n_frames, height, width = x.shape
    if boxes.shape not in ((batch, 1, 4), (batch, n_frames, 4)):
        raise ValueError(f"resized_crop: boxes must be [{batch}, 1 or {n_frames}, 4], got {tuple(boxes.shape)}")
    top, left, box_h, box_w = boxes.to(device=x.device, dtype=torch.float32).expand(batch, n_frames, 4).unbind(-1)
    theta = torch.zeros(batch, n_frames, 2, 3, device=x.device, dtype=torch.float32)
    theta[..., 0, 0] = box_w / width
    theta[..., 0, 2] = (2 * left + box_w) / width - 1
    theta[..., 1, 1] = box_h / height
    theta[..., 1, 2] = (2 * top + box_h) / height - 1
    frames = x.transpose(1, 2).reshape(batch * n_frames, channels, height, width)
    grid = F.affine_grid(theta.reshape(-1, 2, 3), [batch * n_frames, channels, out_h, out_w], align_corners=False)
    out = F.grid_sample(frames, grid.to(frames.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(batch, n_frames, channels, out_h, out_w).transpose(1, 2)


def random_resized_crop(x: torch.Tensor, size: int | tuple[int, int], scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), per_frame: bool = False,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Random area/aspect crop resized to ``size``: [B, C, T, H, W] -> [B, C, T, h, w]."""
    return resized_crop(x, sample_crop_boxes(x, scale, ratio, per_frame, generator), size)


def horizontal_flip(x: torch.Tensor, p: float = 0.5, per_frame: bool = False,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror left-right with probability ``p`` (exact). Flow clips are mirrored by ``preprocess.streams.crop``
    when read (which also negates u), not here."""
    _check_clip(x, "horizontal_flip")
    flip = _as_5d(_bernoulli(x, per_frame, p, generator))
    return torch.where(flip, x.flip(-1), x)


# ---- colour -----------------------------------------------------------------------------------------------

def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma: [B, 3, T, H, W] -> [B, 1, T, H, W]."""
    weights = torch.tensor(LUMA_WEIGHTS, device=x.device, dtype=x.dtype)
    return torch.einsum("bcthw,c->bthw", x, weights).unsqueeze(1)


def _hsv_planes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RGB [B, 3, ...] -> hue, saturation, value [B, 1, ...] (``colorsys`` conventions, hue in [0, 1))."""
    r, g, b = x.split(1, dim=1)
    value = torch.maximum(torch.maximum(r, g), b)
    delta = value - torch.minimum(torch.minimum(r, g), b)
    safe = delta.clamp(min=1e-12)
    # colorsys order of precedence on ties: red, then green, then blue
    sector = torch.where(value == r, (g - b) / safe, torch.where(value == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    hue = torch.where(delta > 0, torch.remainder(sector / 6, 1.0), 0.0)
    saturation = torch.where(value > 0, delta / value.clamp(min=1e-12), 0.0)
    return hue, saturation, value


def _rgb_from_hsv(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """hue, saturation, value [B, 1, ...] -> RGB [B, 3, ...]: channel n of (R, G, B) = V - V S clamp(min(k, 4 - k),
    0, 1) with k = (n' + 6 H) mod 6, n' = 5, 3, 1."""
    offsets = torch.tensor([5.0, 3.0, 1.0], device=hue.device, dtype=hue.dtype).view(1, 3, *([1] * (hue.ndim - 2)))
    k = torch.remainder(offsets + 6 * hue, 6)
    ramp = torch.minimum(k, 4 - k).clamp_(0, 1)
    return value * (1 - saturation * ramp)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB [B, 3, ...] in [0, 1] -> HSV [B, 3, ...], hue in [0, 1) (``colorsys`` conventions)."""
    return torch.cat(_hsv_planes(x), dim=1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """HSV [B, 3, ...] (hue in [0, 1)) -> RGB [B, 3, ...]."""
    return _rgb_from_hsv(*x.split(1, dim=1))


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """x * factor, clamped to [0, 1]; ``factor`` broadcasts to [B, 1, T, 1, 1]."""
    return (x * factor).clamp(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with each frame's mean luma: mean + factor * (x - mean), clamped. RGB only."""
    mean = rgb_to_grayscale(x).mean(dim=(3, 4), keepdim=True)
    return (mean + factor * (x - mean)).clamp(0, 1)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the per-pixel luma: gray + factor * (x - gray), clamped. RGB only."""
    gray = rgb_to_grayscale(x)
    return (gray + factor * (x - gray)).clamp(0, 1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``shift`` turns (broadcasts to [B, 1, T, 1, 1]; 0.5 = opposite colour). RGB only."""
    hue, saturation, value = _hsv_planes(x)
    return _rgb_from_hsv(torch.remainder(hue + shift, 1.0), saturation, value)


def color_jitter(x: torch.Tensor, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4,
                 hue: float = 0.1, p: float = 0.8, per_frame: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """With probability ``p``: brightness, contrast, saturation factors ~ U(max(0, 1 - s), 1 + s) and hue
    shift ~ U(-hue, hue) turns, applied in that fixed order. RGB [B, 3, T, H, W] -> same."""
    _check_clip(x, "color_jitter", colour=True)
    if not 0 <= hue <= 0.5 or min(brightness, contrast, saturation) < 0:
        raise ValueError(f"color_jitter: strengths must be >= 0 and hue <= 0.5, got "
                         f"{brightness}, {contrast}, {saturation}, {hue}")
    apply = _bernoulli(x, per_frame, p, generator)

    def factor(identity: float, low: float, high: float) -> torch.Tensor:
        drawn = _uniform(x, per_frame, low, high, generator)
        return _as_5d(torch.where(apply, drawn, torch.full_like(drawn, identity)))

    out = x.float()
    out = adjust_brightness(out, factor(1.0, max(0.0, 1 - brightness), 1 + brightness))
    out = adjust_contrast(out, factor(1.0, max(0.0, 1 - contrast), 1 + contrast))
    out = adjust_saturation(out, factor(1.0, max(0.0, 1 - saturation), 1 + saturation))
    if hue > 0:
        out = adjust_hue(out, factor(0.0, -hue, hue))
    return out.to(x.dtype)


def random_grayscale(x: torch.Tensor, p: float = 0.2, per_frame: bool = False,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """With probability ``p`` replace RGB by its ITU-R 601 luma on all three channels."""
    _check_clip(x, "random_grayscale", colour=True)
    gray = _as_5d(_bernoulli(x, per_frame, p, generator))
    return torch.where(gray, rgb_to_grayscale(x.float()).to(x.dtype).expand_as(x), x)


# ---- blur -------------------------------------------------------------------------------------------------

def gaussian_kernels(sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Normalized 1-D Gaussian kernels: sigma float [N] -> [N, kernel_size] (odd size, centred)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"gaussian_kernels: kernel_size must be odd and positive, got {kernel_size}")
    radius = kernel_size // 2
    offsets = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)
    weights = torch.exp(-0.5 * (offsets[None, :] / sigma[:, None].float()) ** 2)
    return weights / weights.sum(dim=1, keepdim=True)


def default_blur_kernel_size(height: int, width: int) -> int:
    """About 10% of the shorter side, odd, at least 3 (SimCLR's choice)."""
    return max(3, int(0.1 * min(height, width)) // 2 * 2 + 1)


def gaussian_blur(x: torch.Tensor, sigma: tuple[float, float] = (0.1, 2.0), p: float = 0.5,
                  kernel_size: int | None = None, per_frame: bool = False,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """With probability ``p`` blur each frame with a separable Gaussian, sigma ~ U(sigma) pixels, borders
    mirrored (reflect without repeating the edge pixel). Any C. [B, C, T, H, W] -> same."""
    _check_clip(x, "gaussian_blur")
    if not 0 < sigma[0] <= sigma[1]:
        raise ValueError(f"gaussian_blur: sigma range must satisfy 0 < low <= high, got {sigma}")
    batch, channels, n_frames, height, width = x.shape
    size = kernel_size if kernel_size is not None else default_blur_kernel_size(height, width)
    if size // 2 >= min(height, width):
        raise ValueError(f"gaussian_blur: kernel_size {size} too large for {height}x{width} frames")
    apply = _bernoulli(x, per_frame, p, generator)
    sigmas = _uniform(x, per_frame, sigma[0], sigma[1], generator)
    kernels = gaussian_kernels(sigmas.reshape(-1), size)  # [B*T', K]
    identity = F.one_hot(torch.tensor(size // 2, device=x.device), size).float()
    kernels = torch.where(apply.reshape(-1, 1), kernels, identity).view(batch, 1, -1, size)
    groups = batch * channels * n_frames  # one plane per (b, c, t): a free view of the contiguous clip
    kernels = kernels.expand(batch, channels, n_frames, size).reshape(groups, size).to(x.dtype)
    planes = x.reshape(1, groups, height, width)
    pad = size // 2
    planes = F.conv2d(F.pad(planes, (0, 0, pad, pad), mode="reflect"), kernels.view(groups, 1, size, 1),
                      groups=groups)
    planes = F.conv2d(F.pad(planes, (pad, pad, 0, 0), mode="reflect"), kernels.view(groups, 1, 1, size),
                      groups=groups)
    return planes.view(batch, channels, n_frames, height, width)
