"""Batched image operations of OpenCV's DualTVL1, in PyTorch: the same arithmetic as the OpenCV calls it makes.

Every function takes and returns float32 tensors on any device; images are ``[N, H, W]`` or ``[N, C, H, W]``
(the leading dimensions are batch). tests/test_tvl1_torch.py checks each against the OpenCV function it
replaces (``cv2.resize`` INTER_LINEAR, ``cv2.remap`` INTER_CUBIC with a zero border, ``cv2.medianBlur``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

CUBIC_A = -0.75  # OpenCV's bicubic kernel parameter


def _linear_weights(src_len: int, dst_len: int, src_per_dst: float, device: torch.device) -> torch.Tensor:
    """float32 [dst_len, src_len]: the rows of cv2.resize INTER_LINEAR along one axis (pixel-centre mapping
    ``src = (dst + 0.5) * src_per_dst - 0.5``, edge pixels repeated)."""
    position = ((torch.arange(dst_len, dtype=torch.float64) + 0.5) * src_per_dst - 0.5).float()
    left = torch.floor(position)
    fraction = position - left
    left = left.long()
    outside = (left < 0) | (left >= src_len - 1)
    fraction[outside] = 0.0
    left = left.clamp(0, src_len - 1)
    weights = torch.zeros(dst_len, src_len)
    rows = torch.arange(dst_len)
    weights[rows, left] += 1.0 - fraction
    weights[rows, (left + 1).clamp(max=src_len - 1)] += fraction
    return weights.to(device)


def resize_linear(images: torch.Tensor, size: tuple[int, int], src_per_dst: tuple[float, float]) -> torch.Tensor:
    """cv2.resize INTER_LINEAR of float images [..., H, W] to ``size`` (h, w); ``src_per_dst`` (y, x) is
    OpenCV's inverse scale (``1 / fx`` when called with ``fx``, ``W / w`` when called with a size)."""
    rows = _linear_weights(images.shape[-2], size[0], src_per_dst[0], images.device)
    cols = _linear_weights(images.shape[-1], size[1], src_per_dst[1], images.device)
    return rows @ images @ cols.T


def _cubic_weights(fraction: torch.Tensor) -> torch.Tensor:
    """OpenCV's 4 bicubic weights (a = -0.75) of taps -1, 0, 1, 2 at ``fraction`` in [0, 1): [..., 4]."""
    a = CUBIC_A
    x = fraction + 1.0
    w0 = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    w1 = ((a + 2.0) * fraction - (a + 3.0)) * fraction * fraction + 1.0
    y = 1.0 - fraction
    w2 = ((a + 2.0) * y - (a + 3.0)) * y * y + 1.0
    return torch.stack([w0, w1, w2, 1.0 - w0 - w1 - w2], dim=-1)


def remap_cubic(images: torch.Tensor, map_x: torch.Tensor, map_y: torch.Tensor) -> torch.Tensor:
    """cv2.remap INTER_CUBIC, BORDER_CONSTANT 0: ``out[n, c, y, x] = images[n, c](map_y[n, y, x], map_x[n, y, x])``.

    images float32 [N, C, H, W]; maps float32 [N, H', W'] in pixels -> float32 [N, C, H', W']. Taps outside the
    image count as 0; the coordinates are used unrounded (OpenCV 5's float-map remap does the same).
    """
    n, c, h, w = images.shape
    map_x = map_x.clamp(-4.0, w + 4.0)  # farther out every tap is outside either way
    map_y = map_y.clamp(-4.0, h + 4.0)
    left = torch.floor(map_x)
    top = torch.floor(map_y)
    weights_x = _cubic_weights(map_x - left)  # [N, H', W', 4]
    weights_y = _cubic_weights(map_y - top)
    padded = F.pad(images, (1, 1, 1, 1)).reshape(n, c, -1)  # taps outside clamp onto the zero frame
    taps = torch.arange(-1, 3, device=images.device)
    cols = (left.long()[..., None] + taps + 1).clamp(0, w + 1)  # [N, H', W', 4] in padded coordinates
    rows = (top.long()[..., None] + taps + 1).clamp(0, h + 1)
    index = (rows[..., :, None] * (w + 2) + cols[..., None, :]).reshape(n, 1, -1)  # [N, 1, H'W'16]
    values = padded.gather(2, index.expand(n, c, -1)).reshape(n, c, *map_x.shape[1:], 4, 4)
    weights = (weights_y[..., :, None] * weights_x[..., None, :])[:, None]  # [N, 1, H', W', 4, 4]
    return (values * weights).sum(dim=(-2, -1))


def median_blur(images: torch.Tensor, ksize: int) -> torch.Tensor:
    """cv2.medianBlur of float images [..., H, W] with an odd ``ksize`` (edge pixels repeated)."""
    radius = ksize // 2
    h, w = images.shape[-2:]
    flat = images.reshape(-1, 1, h, w)
    padded = F.pad(flat, (radius, radius, radius, radius), mode="replicate")[:, 0]
    window = torch.stack([padded[:, dy:dy + h, dx:dx + w] for dy in range(ksize) for dx in range(ksize)], dim=1)
    return window.median(dim=1).values.reshape(images.shape)


def centered_gradient(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Half central differences (x, y) of [..., H, W], with the edge pixel repeated (OpenCV's one-sided
    ``0.5 * (I[1] - I[0])`` at the borders)."""
    h, w = images.shape[-2:]
    flat = images.reshape(-1, 1, h, w)
    padded = F.pad(flat, (1, 1, 1, 1), mode="replicate")[:, 0]
    dx = 0.5 * (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2])
    dy = 0.5 * (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1])
    return dx.reshape(images.shape), dy.reshape(images.shape)


def forward_gradient(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences (x, y) of [..., H, W]; 0 on the last column (x) and the last row (y)."""
    dx = F.pad(images[..., :, 1:] - images[..., :, :-1], (0, 1))
    dy = F.pad(images[..., 1:, :] - images[..., :-1, :], (0, 0, 0, 1))
    return dx, dy


def divergence(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Backward-difference divergence of the field (px, py) [..., H, W]: ``px[x] - px[x-1] + py[y] - py[y-1]``
    with ``p[-1] = 0``."""
    return px - F.pad(px[..., :, :-1], (1, 0)) + py - F.pad(py[..., :-1, :], (0, 0, 1, 0))
