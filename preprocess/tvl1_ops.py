"""Batched image operations of OpenCV's DualTVL1, in PyTorch: the same arithmetic as the OpenCV calls it makes.

Every function takes and returns float32 tensors on any device; images are ``[N, H, W]`` or ``[N, C, H, W]``
(the leading dimensions are batch). tests/test_tvl1_torch.py checks each against the OpenCV function it
replaces (``cv2.resize`` INTER_LINEAR, ``cv2.remap`` INTER_CUBIC with a zero border, ``cv2.medianBlur``).
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F


def _linear_taps(src_len: int, dst_len: int, src_per_dst: float, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """cv2.resize INTER_LINEAR along one axis: for each output pixel, the two source indices (int64 [dst_len])
    and the weight of the second (float32 [dst_len]); pixel-centre mapping ``src = (dst + 0.5) * src_per_dst -
    0.5``, edge pixels repeated."""
    position = ((torch.arange(dst_len, dtype=torch.float64) + 0.5) * src_per_dst - 0.5).float()
    first = torch.floor(position)
    fraction = position - first
    first = first.long()
    fraction[(first < 0) | (first >= src_len - 1)] = 0.0
    first = first.clamp(0, src_len - 1)
    second = (first + 1).clamp(max=src_len - 1)
    return first.to(device), second.to(device), fraction.to(device)


def _resize_axis(images: torch.Tensor, dim: int, length: int, src_per_dst: float) -> torch.Tensor:
    """cv2.resize INTER_LINEAR along dimension ``dim`` to ``length`` pixels."""
    first, second, fraction = _linear_taps(images.shape[dim], length, src_per_dst, images.device)
    shape = [1] * images.ndim
    shape[dim] = length
    fraction = fraction.view(shape)
    return images.index_select(dim, first) * (1.0 - fraction) + images.index_select(dim, second) * fraction


def resize_linear(images: torch.Tensor, size: tuple[int, int], src_per_dst: tuple[float, float]) -> torch.Tensor:
    """cv2.resize INTER_LINEAR of float images [..., H, W] to ``size`` (h, w), rows after columns as OpenCV;
    ``src_per_dst`` (y, x) is OpenCV's inverse scale (``1 / fx`` when called with ``fx``, ``W / w`` when called
    with a size)."""
    columns_done = _resize_axis(images, images.ndim - 1, size[1], src_per_dst[1])
    return _resize_axis(columns_done, images.ndim - 2, size[0], src_per_dst[0])


def remap_cubic(images: torch.Tensor, map_x: torch.Tensor, map_y: torch.Tensor) -> torch.Tensor:
    """cv2.remap INTER_CUBIC, BORDER_CONSTANT 0: ``out[n, c, y, x] = images[n, c](map_y[n, y, x], map_x[n, y, x])``.

    images float32 [N, C, H, W]; maps float32 [N, H', W'] in pixels -> float32 [N, C, H', W']. Both use the
    bicubic kernel with a = -0.75 and count taps outside the image as 0. ``grid_sample`` takes coordinates
    normalised to [-1, 1]; the images are zero-padded to 2**k + 1 pixels so that the normalisation is a power of
    two and integer coordinates come back exact (a flow of exactly 0 samples the pixels themselves, as in
    OpenCV; off by 1e-5 px, the zero border would feed a growing flow along the last row over the warps).
    """
    h, w = images.shape[-2:]
    span_y, span_x = 1 << (h - 2).bit_length(), 1 << (w - 2).bit_length()  # powers of two >= H - 1, W - 1
    padded = F.pad(images, (0, span_x + 1 - w, 0, span_y + 1 - h))
    grid = torch.stack([map_x * (2.0 / span_x) - 1.0, map_y * (2.0 / span_y) - 1.0], dim=-1)
    return F.grid_sample(padded, grid, mode="bicubic", padding_mode="zeros", align_corners=True)


def _merge_exchange(n: int) -> list[tuple[int, int]]:
    """Comparators (i, j), i < j, of Batcher's merge-exchange sort of ``n`` wires (Knuth, TAOCP 5.2.2 M)."""
    pairs = []
    t = (n - 1).bit_length()
    p = 1 << (t - 1)
    while p > 0:
        q, r, d = 1 << (t - 1), 0, p
        while d > 0:
            pairs += [(i, i + d) for i in range(n - d) if i & p == r]
            d, q, r = q - p, q >> 1, p
        p >>= 1
    return pairs


@lru_cache(maxsize=None)
def median_network(n: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """The comparators of a sort of ``n`` (odd) wires that the middle output depends on, in order, as
    ``(i, j, keep_min, keep_max)``: wire i takes the minimum, wire j the maximum, each only where later needed."""
    needed = {n // 2}
    kept = []
    for i, j in reversed(_merge_exchange(n)):
        if i in needed or j in needed:
            kept.append((i, j, i in needed, j in needed))
            needed |= {i, j}
    return tuple(reversed(kept))


def median_blur(images: torch.Tensor, ksize: int) -> torch.Tensor:
    """cv2.medianBlur of float images [..., H, W] with an odd ``ksize`` (edge pixels repeated), by a
    min/max network over the ksize**2 shifted copies (3x faster than ``Tensor.median`` on CPU)."""
    radius = ksize // 2
    h, w = images.shape[-2:]
    flat = images.reshape(-1, 1, h, w)
    padded = F.pad(flat, (radius, radius, radius, radius), mode="replicate")[:, 0]
    wires = [padded[:, dy:dy + h, dx:dx + w] for dy in range(ksize) for dx in range(ksize)]
    for i, j, keep_min, keep_max in median_network(ksize * ksize):
        low = torch.minimum(wires[i], wires[j]) if keep_min else None
        wires[j] = torch.maximum(wires[i], wires[j]) if keep_max else None
        wires[i] = low
    return wires[ksize * ksize // 2].reshape(images.shape)


def centered_gradient(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Half central differences (x, y) of [..., H, W], with the edge pixel repeated (OpenCV's one-sided
    ``0.5 * (I[1] - I[0])`` at the borders)."""
    h, w = images.shape[-2:]
    flat = images.reshape(-1, 1, h, w)
    padded = F.pad(flat, (1, 1, 1, 1), mode="replicate")[:, 0]
    dx = 0.5 * (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2])
    dy = 0.5 * (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1])
    return dx.reshape(images.shape), dy.reshape(images.shape)


def forward_gradient(images: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Forward differences of [..., H, W] -> [..., 2, H, W] (x, y), 0 on the last column (x) and the last row
    (y). ``out``, if given, is a buffer of that shape whose last column (x) and last row (y) are 0: it is
    filled and returned (the solver reuses one per warp)."""
    if out is None:
        out = images.new_zeros(*images.shape[:-2], 2, *images.shape[-2:])
    torch.sub(images[..., :, 1:], images[..., :, :-1], out=out[..., 0, :, :-1])
    torch.sub(images[..., 1:, :], images[..., :-1, :], out=out[..., 1, :-1, :])
    return out


def divergence(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Backward-difference divergence of the field (px, py) [..., H, W]: ``px[x] - px[x-1] + py[y] - py[y-1]``
    with ``p[-1] = 0``."""
    div = px + py
    div[..., :, 1:] -= px[..., :, :-1]
    div[..., 1:, :] -= py[..., :-1, :]
    return div
