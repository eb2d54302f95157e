"""Batched augmentation speed: one call per batch vs a per-sample loop (the baseline), same run.

Usage: .venv/bin/python bench/augment.py [--batch 8] [--frames 16] [--repeats 3]
Prints seconds per batch for each op and the whole pipeline, and the loop/batched ratio.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from timing import best_time  # noqa: E402  (bench/ is on sys.path when a script in it runs)
from train.augment import color_jitter, gaussian_blur, horizontal_flip, random_grayscale, random_resized_crop
from train.cvrl_augment import CVRLAugmentSettings, augment_pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    clips = torch.rand(args.batch, 3, args.frames, 128, 171, device=device)
    ops: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "random_resized_crop": lambda x: random_resized_crop(x, 112),
        "horizontal_flip": lambda x: horizontal_flip(x),
        "color_jitter": lambda x: color_jitter(x, p=1.0),
        "random_grayscale": lambda x: random_grayscale(x, p=1.0),
        "gaussian_blur": lambda x: gaussian_blur(x, p=1.0),
        "cvrl augment_pair": lambda x: torch.cat(augment_pair(x, x, CVRLAugmentSettings(crop_size=112))),
    }
    print(f"device {device}, batch {args.batch} x 3 x {args.frames} x 128 x 171, best of {args.repeats}")
    print(f"{'op':22s} {'batched s':>10s} {'loop s':>10s} {'loop/batched':>13s}")
    for name, op in ops.items():
        batched = best_time(lambda: op(clips), args.repeats)
        looped = best_time(lambda: torch.cat([op(clips[i:i + 1]) for i in range(args.batch)]), args.repeats)
        print(f"{name:22s} {batched:10.4f} {looped:10.4f} {looped / batched:13.2f}")


if __name__ == "__main__":
    main()
