"""Training-step throughput of CPC and DPC: clips/s of forward + loss + backward + SGD step.

On CPU at small settings (always); on CUDA at the papers' settings with bf16 autocast and channels-last
weights and inputs, when a GPU is present (says so when none is).
A CPC clip is T segments of C·F stacked channels; a DPC clip is N blocks of L frames.

Usage: .venv/bin/python bench/bench_predictive.py [--repeats 3] [--skip-cpu]
"""
from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from bench.timing import best_time
from train.backbones import build_backbone
from train.predictive.cpc import CPC, cpc_loss
from train.predictive.dpc import DPC, dense_predictive_loss


@dataclass(frozen=True)
class Setting:
    """One benchmark configuration: ``batch`` clips of shape ``clip`` (without the batch axis)."""

    name: str
    batch: int
    clip: tuple[int, ...]
    build: Callable[[], nn.Module]
    loss: Callable[[nn.Module, torch.Tensor], torch.Tensor]


def cpc_setting(batch: int, segments: int, channels: int, size: int, context_channels: int) -> Setting:
    def build() -> nn.Module:
        return CPC(build_backbone("resnet18_2d", in_channels=channels), "masked_conv3d", context_channels, segments)

    return Setting(f"cpc B{batch} T{segments} C·F{channels} {size}px", batch, (segments, channels, size, size), build,
                   lambda model, clips: cpc_loss(*model(clips)).loss)


def dpc_setting(batch: int, blocks: int, frames: int, size: int, pred_steps: int) -> Setting:
    def build() -> nn.Module:
        return DPC(build_backbone("r2d3d_18", batch_statistics=True), pred_steps)

    return Setting(f"dpc B{batch} N{blocks}x{frames} {size}px pred{pred_steps}", batch,
                   (blocks, 3, frames, size, size), build, lambda model, clips: dense_predictive_loss(*model(clips))[0])


SMALL_CPU = [cpc_setting(4, 4, 5, 64, 64), dpc_setting(4, 4, 5, 64, 2)]
PAPER_CUDA = [cpc_setting(25, 10, 20, 224, 512), dpc_setting(32, 8, 5, 128, 3)]  # CPC on flow; DPC-R18 5pred3


def to_channels_last(tensor: torch.Tensor) -> torch.Tensor:
    """Channels-last copy of a 4-D (2D conv) or 5-D (3D conv) tensor; others unchanged."""
    if tensor.ndim == 4:
        return tensor.contiguous(memory_format=torch.channels_last)
    if tensor.ndim == 5:
        return tensor.contiguous(memory_format=torch.channels_last_3d)
    return tensor


def channels_last_clips(clips: torch.Tensor) -> torch.Tensor:
    """Clips whose per-segment / per-block views (batch axes folded) are channels-last."""
    return to_channels_last(clips.flatten(0, 1)).unflatten(0, clips.shape[:2])


def clips_per_second(setting: Setting, device: torch.device, repeats: int, fast: bool) -> float:
    """Clips/s of the best of ``repeats`` SGD steps (after one warm-up); ``fast``: bf16 autocast + channels-last."""
    torch.manual_seed(0)
    model = setting.build().to(device).train()
    clips = torch.randn(setting.batch, *setting.clip, device=device)
    if fast:
        for parameter in model.parameters():
            parameter.data = to_channels_last(parameter.data)
        clips = channels_last_clips(clips)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if fast else nullcontext()

    def step() -> None:
        with autocast:
            loss = setting.loss(model, clips)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()
    return setting.batch / best_time(step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-cpu", action="store_true", help="only the CUDA measurement")
    args = parser.parse_args()
    if not args.skip_cpu:
        print(f"CPU, float32, {torch.get_num_threads()} threads")
        for setting in SMALL_CPU:
            rate = clips_per_second(setting, torch.device("cpu"), args.repeats, False)
            print(f"  {setting.name:40s} {rate:8.2f} clips/s")
    if not torch.cuda.is_available():
        print("CUDA: no GPU present, paper settings not measured")
        return
    print(f"CUDA {torch.cuda.get_device_name()}, bf16 autocast + channels-last")
    for setting in PAPER_CUDA:
        rate = clips_per_second(setting, torch.device("cuda"), args.repeats, True)
        print(f"  {setting.name:40s} {rate:8.2f} clips/s")


if __name__ == "__main__":
    main()
