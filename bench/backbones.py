"""Backbone cost: forward+backward seconds per clip batch for each backbone, as a ratio to light C3D
(the baseline) measured in the same run, plus parameter counts.

Usage: .venv/bin/python bench/backbones.py [--batch 2] [--frames 16] [--size 112] [--repeats 2]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from train.backbones import BACKBONES, build_backbone


def step_seconds(name: str, clips: torch.Tensor, repeats: int) -> float:
    """Fastest forward+backward of ``name`` on ``clips``, in seconds."""
    model = build_backbone(name).to(clips.device).train()
    best = float("inf")
    for _ in range(repeats + 1):  # first run warms up
        start = time.perf_counter()
        model(clips).square().mean().backward()
        if clips.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    clips = torch.randn(args.batch, 3, args.frames, args.size, args.size, device=device)
    print(f"device {device}, batch {args.batch} x 3 x {args.frames} x {args.size} x {args.size}")
    baseline = step_seconds("c3d", clips, args.repeats)
    print(f"{'backbone':10s} {'params':>12s} {'fwd+bwd s':>10s} {'vs c3d':>7s}")
    for name in BACKBONES:
        seconds = baseline if name == "c3d" else step_seconds(name, clips, args.repeats)
        params = sum(p.numel() for p in build_backbone(name).parameters())
        print(f"{name:10s} {params:12,d} {seconds:10.3f} {seconds / baseline:7.2f}")


if __name__ == "__main__":
    main()
