"""Improved Dense Trajectories: frames per second per core on the KTH clip (160x120, 360 frames) and on a
320x240 ARID clip, against the original release's C++ build on this machine type (issue #11: 82 frames/s
on the KTH clip, about 17 frames/s at 320x240; target >= 0.5x).

Run: ``.venv/bin/python bench/bench_idt.py [--repeats N] [--detector orb|sift|none]``. Time is the CPU time
of this single-threaded process (``cv2.setNumThreads(1)``, one BLAS/OpenMP thread), decoding included as in
the release; the best of the repeats is reported.
"""
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # one core: before numpy loads its thread pools

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from labels.idt import dense_trajectories  # noqa: E402
from labels.idt.files import grey_frames  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CLIPS = {  # clip -> the release's frames/s on one core of this machine type (issue #11)
    "kth/person01_boxing_d1_uncomp.avi": 82.0,
    "arid/train/Sit/Sit_2_6.mp4": 17.0,
}


def frames_per_second(path: Path, repeats: int, detector: str) -> tuple[float, int, int]:
    """Best frames/s of CPU time over ``repeats`` runs; also the frame count and the number of trajectories."""
    frames = sum(1 for _ in grey_frames(path))
    best, rows = float("inf"), 0
    for _ in range(repeats):
        start = time.process_time()
        rows = len(dense_trajectories(path, detector=detector))
        best = min(best, time.process_time() - start)
    return frames / best, frames, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (best is reported)")
    parser.add_argument("--detector", default="sift", choices=["orb", "sift", "none"],
                        help="features for the camera homography in place of SURF")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(f"IDT, one core, detector {args.detector}, best of {args.repeats}")
    for clip, release in CLIPS.items():
        path = DATA / clip
        rate, frames, rows = frames_per_second(path, args.repeats, args.detector)
        height, width = next(grey_frames(path)).shape
        print(f"{clip} ({width}x{height}, {frames} frames, {rows} trajectories): {rate:.1f} frames/s, "
              f"{rate / release:.2f}x the release's {release:.0f} frames/s")


if __name__ == "__main__":
    main()
