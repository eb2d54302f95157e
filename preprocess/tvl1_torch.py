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

from typing import Any

import numpy as np
import torch

from preprocess.tvl1_ops import centered_gradient, divergence, forward_gradient, median_blur, remap_cubic, \
    resize_linear
from preprocess.tvl1_parameters import TVL1Parameters

MIN_LEVEL_SIZE = 16  # OpenCV builds no pyramid level narrower or lower than this
FLOAT_EPSILON = float(np.finfo(np.float32).eps)  # |grad I1|^2 below this: no thresholding step


def _pyramid(images: torch.Tensor, p: TVL1Parameters) -> list[torch.Tensor]:
    """Levels finest first of images float32 [B, H, W] (OpenCV's sizes: rounded ``scale_step`` products)."""
    levels = [images]
    for _ in range(1, p.scales_number):
        h, w = levels[-1].shape[-2:]
        size = (round(h * p.scale_step), round(w * p.scale_step))
        if min(size) < MIN_LEVEL_SIZE:
            break
        levels.append(resize_linear(levels[-1], size, (1.0 / p.scale_step, 1.0 / p.scale_step)))
    return levels


class _Warp:
    """The data term of one warp: I1 warped by the flow u0, linearised around u0.

    Attributes (float32 [B, 1, H, W] unless said): direction [B, C, H, W] = (I1wx, I1wy[, gamma]);
    grad = I1wx^2 + I1wy^2; rho_c = I1w - I1wx u0_1 - I1wy u0_2 - I0, so that rho(u) = rho_c + direction . u.
    """

    def __init__(self, image0: torch.Tensor, image1: torch.Tensor, gradient1: torch.Tensor, u: torch.Tensor,
                 gamma: float):
        b, h, w = image0.shape
        ys, xs = torch.meshgrid(torch.arange(h, device=u.device, dtype=u.dtype),
                                torch.arange(w, device=u.device, dtype=u.dtype), indexing="ij")
        warped = remap_cubic(torch.cat([image1[:, None], gradient1], dim=1), xs + u[:, 0], ys + u[:, 1])
        i1w, i1wx, i1wy = warped[:, 0:1], warped[:, 1:2], warped[:, 2:3]
        self.grad = i1wx * i1wx + i1wy * i1wy
        self.rho_c = i1w - i1wx * u[:, 0:1] - i1wy * u[:, 1:2] - image0[:, None]
        components = [i1wx, i1wy] + ([torch.full_like(i1wx, gamma)] if gamma != 0 else [])
        self.direction = torch.cat(components, dim=1)


def _iteration(warp: _Warp, u: torch.Tensor, p: torch.Tensor, params: TVL1Parameters
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One primal-dual iteration of all pairs: u [B, C, H, W], p [B, C, 2, H, W] -> new u, new p, and the
    summed squared change of u per pair float32 [B]."""
    l_t = params.lambda_ * params.theta
    taut = params.tau / params.theta
    rho = warp.rho_c + (warp.direction * u).sum(dim=1, keepdim=True)  # the residual at u (thresholding step)
    step = torch.where(rho < -l_t * warp.grad, l_t,
                       torch.where(rho > l_t * warp.grad, -l_t,
                                   torch.where(warp.grad > FLOAT_EPSILON, -rho / warp.grad, 0.0)))
    v = u + step * warp.direction
    u_new = v + params.theta * divergence(p[:, :, 0], p[:, :, 1])  # primal step
    change = ((u_new - u) ** 2).sum(dim=(1, 2, 3))
    ux, uy = forward_gradient(u_new)  # dual step: p = (p + taut grad u) / (1 + taut |grad u|)
    norm = 1.0 + taut * torch.hypot(ux, uy)
    p_new = (p + taut * torch.stack([ux, uy], dim=2)) / norm[:, :, None]
    return u_new, p_new, change


def _keep_converged(active: torch.Tensor, new: torch.Tensor, old: torch.Tensor, all_active: bool) -> torch.Tensor:
    """``new`` for the active pairs (bool [B]) and ``old`` for the others."""
    if all_active:
        return new
    return torch.where(active.view(-1, *([1] * (new.ndim - 1))), new, old)


def _solve_level(image0: torch.Tensor, image1: torch.Tensor, u: torch.Tensor, params: TVL1Parameters) -> torch.Tensor:
    """The flow of one pyramid level: images float32 [B, H, W], initial flow u [B, C, H, W] -> refined u."""
    b, c, h, w = u.shape
    threshold = params.epsilon ** 2 * h * w
    gradient1 = torch.stack(centered_gradient(image1), dim=1)  # [B, 2, H, W]
    p = torch.zeros(b, c, 2, h, w, dtype=u.dtype, device=u.device)
    for _ in range(params.warpings_number):
        warp = _Warp(image0, image1, gradient1, u, params.gamma)
        change = torch.full((b,), float("inf"), device=u.device)
        for _ in range(params.outer_iterations):
            active = change > threshold
            n_active = int(active.sum())
            if n_active == 0:
                break
            if params.median_filtering > 1:
                filtered = torch.cat([median_blur(u[:, :2], params.median_filtering), u[:, 2:]], dim=1)
                u = _keep_converged(active, filtered, u, n_active == b)
            for _ in range(params.inner_iterations):
                active = change > threshold
                n_active = int(active.sum())
                if n_active == 0:
                    break
                u_new, p_new, change_new = _iteration(warp, u, p, params)
                u = _keep_converged(active, u_new, u, n_active == b)
                p = _keep_converged(active, p_new, p, n_active == b)
                change = _keep_converged(active, change_new, change, n_active == b)
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
