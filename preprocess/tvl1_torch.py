"""TV-L1 optical flow in PyTorch, batched over frame pairs: OpenCV's DualTVL1 step for step, on CPU or CUDA.

The duality-based TV-L1 of Zach, Pock and Bischof (2007) as Sanchez Perez, Meinhardt-Llopis and Facciolo
specify it (IPOL 2013) and OpenCV's ``DualTVL1OpticalFlow`` (optflow/tvl1flow.cpp) implements it: a pyramid
of ``scales_number`` levels (INTER_LINEAR, ratio ``scale_step``, none under 16 px); per level the dual
variables p are zeroed, then ``warpings_number`` times the second image and its half-central-difference
gradient are warped by the flow (bicubic, zero outside), and up to ``outer_iterations`` times the flow is
median filtered and followed by up to ``inner_iterations`` iterations of: the thresholding step (v), the
primal step (u = v + theta div p) and the dual step (p). A warp stops once the summed squared change of u
falls to ``epsilon**2 * H * W``; each pair of the batch is checked on its own and stops changing then.
The flow is upsampled to the next level (INTER_LINEAR) and multiplied by ``1 / scale_step``.

All pairs of a batch are iterated together (one set of tensor operations per step); the result of a pair
does not depend on the other pairs of its batch (tests/test_tvl1_torch.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from preprocess.tvl1_ops import centered_gradient, divergence, forward_gradient, median_blur, remap_cubic, \
    resize_linear
from preprocess.tvl1_parameters import TVL1Parameters

MIN_LEVEL_SIZE = 16  # OpenCV builds no pyramid level narrower or lower than this
FLOAT_EPSILON = float(np.finfo(np.float32).eps)  # OpenCV steps by -rho / |grad I1|^2 only where that is above this


def _pyramid(images: torch.Tensor, params: TVL1Parameters) -> list[torch.Tensor]:
    """Levels finest first of images float32 [B, H, W] (OpenCV's sizes: rounded ``scale_step`` products)."""
    levels = [images]
    for _ in range(1, params.scales_number):
        h, w = levels[-1].shape[-2:]
        size = (round(h * params.scale_step), round(w * params.scale_step))
        if min(size) < MIN_LEVEL_SIZE:
            break
        levels.append(resize_linear(levels[-1], size, (1.0 / params.scale_step, 1.0 / params.scale_step)))
    return levels


@dataclass
class _DataTerm:
    """The data term of one warp: I1 warped by the flow u0 and linearised around it, per pair.

    Attributes: direction float32 [N, C, H, W] = (I1wx, I1wy[, gamma]); rho_c [N, 1, H, W] = I1w - I1wx u0_1 -
    I1wy u0_2 - I0, so that the residual at u is rho(u) = rho_c + direction . u; neg_inv_grad [N, 1, H, W] =
    -1 / (I1wx^2 + I1wy^2), or -1e30 where that is below float epsilon (where OpenCV steps by +-lambda theta,
    or by 0 where rho is exactly 0).
    """

    direction: torch.Tensor
    rho_c: torch.Tensor
    neg_inv_grad: torch.Tensor

    @classmethod
    def warp(cls, image0: torch.Tensor, image1: torch.Tensor, gradient1: torch.Tensor, u: torch.Tensor,
             gamma: float) -> _DataTerm:
        """Images float32 [N, H, W], gradient1 [N, 2, H, W] (x, y) of image1, flow u [N, C, H, W]."""
        h, w = image0.shape[-2:]
        ys, xs = torch.meshgrid(torch.arange(h, device=u.device, dtype=u.dtype),
                                torch.arange(w, device=u.device, dtype=u.dtype), indexing="ij")
        warped = remap_cubic(torch.cat([image1[:, None], gradient1], dim=1), xs + u[:, 0], ys + u[:, 1])
        i1w, i1wx, i1wy = warped[:, 0:1], warped[:, 1:2], warped[:, 2:3]
        grad = i1wx * i1wx + i1wy * i1wy
        neg_inv_grad = torch.where(grad > FLOAT_EPSILON, -1.0 / grad, -1e30)
        rho_c = i1w - i1wx * u[:, 0:1] - i1wy * u[:, 1:2] - image0[:, None]
        components = [i1wx, i1wy] + ([torch.full_like(i1wx, gamma)] if gamma != 0 else [])
        return cls(torch.cat(components, dim=1), rho_c, neg_inv_grad)

    def select(self, keep: torch.Tensor) -> _DataTerm:
        """The data term of the pairs where ``keep`` (bool [N]) is True."""
        return _DataTerm(self.direction[keep], self.rho_c[keep], self.neg_inv_grad[keep])


def _iterate(term: _DataTerm, u: torch.Tensor, p: torch.Tensor, gradient: torch.Tensor,
             params: TVL1Parameters) -> tuple[torch.Tensor, torch.Tensor]:
    """One primal-dual iteration of every pair: u [N, C, H, W] -> new u, and the summed squared change of u
    per pair float32 [N]. Updates the dual variables p [N, C, 2, H, W] in place; ``gradient`` [N, C, 2, H, W]
    is scratch space whose last column (x) and last row (y) are 0."""
    l_t = params.lambda_ * params.theta
    taut = params.tau / params.theta
    rho = (term.direction * u).sum(dim=1, keepdim=True).add_(term.rho_c)
    step = rho.mul_(term.neg_inv_grad).clamp_(-l_t, l_t)  # thresholding step: v = u + step (I1wx, I1wy)
    u_new = torch.addcmul(u, term.direction, step)
    u_new.add_(divergence(p[:, :, 0], p[:, :, 1]), alpha=params.theta)  # primal step: u = v + theta div p
    change = (u_new - u).square_().sum(dim=(1, 2, 3))
    forward_gradient(u_new, out=gradient)
    norm = torch.hypot(gradient[:, :, 0], gradient[:, :, 1]).mul_(taut).add_(1.0)
    p.add_(gradient, alpha=taut).div_(norm[:, :, None])  # dual step: p = (p + taut grad u) / (1 + taut |grad u|)
    return u_new, change


def _solve_level(image0: torch.Tensor, image1: torch.Tensor, u: torch.Tensor, params: TVL1Parameters) -> torch.Tensor:
    """The flow of one pyramid level: images float32 [B, H, W], initial flow u [B, C, H, W] -> refined u.

    Per warp, the pairs still iterating are gathered into smaller tensors as the others converge; a converged
    pair's u and p are written back and stay unchanged until the next warp.
    """
    b, c, h, w = u.shape
    threshold = params.epsilon ** 2 * h * w
    gradient1 = torch.stack(centered_gradient(image1), dim=1)  # [B, 2, H, W]
    p = torch.zeros(b, c, 2, h, w, dtype=u.dtype, device=u.device)
    u = u.clone()
    for _ in range(params.warpings_number):
        pairs = torch.arange(b, device=u.device)  # those still iterating, in this warp
        term = _DataTerm.warp(image0, image1, gradient1, u, params.gamma)
        u_active, p_active = u.clone(), p.clone()
        gradient = torch.zeros_like(p)
        for n in range(params.outer_iterations * params.inner_iterations):
            if n % params.inner_iterations == 0 and params.median_filtering > 1:  # an outer iteration begins
                u_active[:, :2] = median_blur(u_active[:, :2], params.median_filtering)
            u_active, change = _iterate(term, u_active, p_active, gradient, params)
            converged = change <= threshold
            if bool(converged.any()):
                u.index_copy_(0, pairs, u_active)
                p.index_copy_(0, pairs, p_active)
                keep = ~converged
                pairs, term, u_active, p_active = pairs[keep], term.select(keep), u_active[keep], p_active[keep]
                gradient = gradient[keep]
                if len(pairs) == 0:
                    break
        u.index_copy_(0, pairs, u_active)
        p.index_copy_(0, pairs, p_active)
    return u


def _as_images(frames: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 grey levels or float in [0, 1] (scaled by 255, as OpenCV does) [B, H, W] -> float32 0..255."""
    tensor = torch.as_tensor(frames, device=device)
    if tensor.dtype == torch.uint8:
        return tensor.float()
    if not tensor.is_floating_point():
        raise ValueError(f"frames must be uint8 or float, got {tensor.dtype}")
    return tensor.float() * 255.0


def tvl1_flow(prev: np.ndarray | torch.Tensor, next: np.ndarray | torch.Tensor, *,
              device: str | torch.device | None = None, **parameters: Any) -> np.ndarray | torch.Tensor:
    """TV-L1 flow of each pair ``(prev[i], next[i])``: grey [B, H, W] x2 -> float32 [B, H, W, 2] (u, v) in px.

    ``prev[i][y, x]`` moves to ``next[i][y + v, x + u]``. Frames are uint8 (0..255) or float in [0, 1] (as
    cv2.optflow.DualTVL1OpticalFlow takes them). ``parameters`` are OpenCV's, spelled as
    :meth:`TVL1Parameters.from_mapping` takes them (``tau``, ``lambda``, ``theta``, ``scales_number``,
    ``warpings_number``, ``epsilon``, ``inner_iterations``, ``outer_iterations``, ``scale_step``, ``gamma``,
    ``median_filtering``), with OpenCV's defaults. Runs on ``device`` (default: that of ``prev``, CPU for
    numpy); numpy in gives numpy out, a tensor in gives a tensor on ``device`` out.
    """
    params = TVL1Parameters.from_mapping(parameters)
    if prev.shape != next.shape or len(prev.shape) != 3 or min(prev.shape[1:]) < 3:
        raise ValueError(f"tvl1_flow needs two [B, H, W] batches of one shape with H, W >= 3, got "
                         f"{tuple(prev.shape)} and {tuple(next.shape)}")
    device = torch.device(device) if device is not None else getattr(prev, "device", torch.device("cpu"))
    levels0 = _pyramid(_as_images(prev, device), params)
    levels1 = _pyramid(_as_images(next, device), params)
    b, h, w = levels0[-1].shape
    u = torch.zeros(b, 3 if params.gamma != 0 else 2, h, w, device=device)
    for level in range(len(levels0) - 1, -1, -1):
        u = _solve_level(levels0[level], levels1[level], u, params)
        if level > 0:
            finer_h, finer_w = levels0[level - 1].shape[-2:]
            u = resize_linear(u, (finer_h, finer_w), (h / finer_h, w / finer_w))
            u = torch.cat([u[:, :2] * (1.0 / params.scale_step), u[:, 2:]], dim=1)  # the illumination term unscaled
            h, w = finer_h, finer_w
    flow = u[:, :2].permute(0, 2, 3, 1).contiguous()
    return flow.cpu().numpy() if isinstance(prev, np.ndarray) else flow


def tvl1_video_flows(frames: np.ndarray | torch.Tensor, batch_size: int = 64, *,
                     device: str | torch.device | None = None, **parameters: Any) -> np.ndarray | torch.Tensor:
    """TV-L1 flow between consecutive frames [T, H, W] -> float32 [T-1, H, W, 2], ``batch_size`` pairs per
    :func:`tvl1_flow` call: the memory bound (peak ~160 float32 frames of H x W per pair, measured on CPU at
    128x171, most of it in the median filter's shifted copies)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(frames) < 2:
        raise ValueError(f"flow needs at least two frames, got {len(frames)}")
    pairs = len(frames) - 1
    flows = [tvl1_flow(frames[start:end], frames[start + 1:end + 1], device=device, **parameters)
             for start, end in ((s, min(s + batch_size, pairs)) for s in range(0, pairs, batch_size))]
    return np.concatenate(flows) if isinstance(flows[0], np.ndarray) else torch.cat(flows)
