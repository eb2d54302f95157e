"""Speed and memory of the statistics labels on 16x112x112 clips, one core.

Run: ``.venv/bin/python bench/bench_labels.py [--repeats N] [--dataset DIR]``. Uses the 24 clips of
``../shared/data/stats_reference.npz``. Baseline in the same run: the plain per-region loop
implementation in ``tests/test_labels_naive.py`` (scipy convolution per frame, one mask per region).
With ``--dataset`` (an extracted dataset with frames and flow) it also times labelling its videos as
``make-labels`` does in each worker, reading included, without Dask: a warm-up pass, then ``--repeats``
passes, each with a fresh dataset reader (median and range, page faults per clip variant). Everything runs
with the label workers' malloc settings (``common.memory.keep_freed_memory``).
"""
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # one core: before numpy loads its thread pools

import argparse  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from labels.curriculum import score_from_boundaries  # noqa: E402
from labels.job import label_video_clips  # noqa: E402
from common.memory import keep_freed_memory  # noqa: E402
from labels.settings import LabelSettings  # noqa: E402
from labels.stats import appearance_statistics, clip_motion_boundaries, motion_labels, motion_statistics  # noqa: E402
from preprocess.dataset import Dataset  # noqa: E402
from preprocess.flow_codec import dequantize  # noqa: E402
from test_labels_naive import naive_appearance, naive_motion  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "stats_reference.npz"


def seconds_per_clip(function: Callable[[int], object], cases: list[int], repeats: int) -> float:
    """Best-of-``repeats`` mean CPU time of ``function(case)`` over ``cases``; CPU time of this single-threaded
    process is the time of one core, and is less disturbed than wall time by other work on the machine."""
    function(cases[0])  # warm caches (region layout, histogram bins)
    best = np.inf
    for _ in range(repeats):
        start = time.process_time()
        for case in cases:
            function(case)
        best = min(best, (time.process_time() - start) / len(cases))
    return best


def peak_allocation_mb(function: Callable[[int], object], case: int) -> float:
    """Peak memory (tracemalloc, numpy arrays included) allocated while labelling one clip."""
    function(case)
    tracemalloc.start()
    function(case)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats (best is reported)")
    parser.add_argument("--baseline-clips", type=int, default=4, help="clips timed with the slow baseline")
    parser.add_argument("--dataset", type=Path, help="extracted dataset to label with reading included")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    keep_freed_memory()  # as label_video does in each worker
    with np.load(DATA) as data:
        rgb = data["rgb"]
        flow = dequantize(data["flow_q"], float(data["flow_bound"]))
    u = np.ascontiguousarray(flow[..., 0])
    v = np.ascontiguousarray(flow[..., 1])
    cases = list(range(len(rgb)))
    baseline_cases = cases[:: max(1, len(cases) // args.baseline_clips)][: args.baseline_clips]

    def both(i: int) -> object:
        boundaries = clip_motion_boundaries(u[i], v[i])
        return motion_labels(boundaries), score_from_boundaries(boundaries), appearance_statistics(rgb[i])

    timings = {
        "motion": (seconds_per_clip(lambda i: motion_statistics(u[i], v[i]), cases, args.repeats),
                   seconds_per_clip(lambda i: naive_motion(u[i], v[i]), baseline_cases, 1)),
        "appearance": (seconds_per_clip(lambda i: appearance_statistics(rgb[i]), cases, args.repeats),
                       seconds_per_clip(lambda i: naive_appearance(rgb[i]), baseline_cases, 1)),
    }
    timings["both (+ curriculum score)"] = (seconds_per_clip(both, cases, args.repeats),
                                            timings["motion"][1] + timings["appearance"][1])
    print(f"statistics labels, 16x112x112 clips, 1 core, CPU time ({len(cases)} clips; baseline on "
          f"{len(baseline_cases)}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"{'labels':<28}{'ms/clip':>9}{'clips/s':>9}{'baseline ms':>13}{'speed-up':>10}")
    for name, (fast, slow) in timings.items():
        print(f"{name:<28}{fast * 1e3:9.2f}{1 / fast:9.1f}{slow * 1e3:13.1f}{slow / fast:9.1f}x")
    print("peak allocation per clip (tracemalloc): "
          f"motion {peak_allocation_mb(lambda i: motion_statistics(u[i], v[i]), 0):.1f} MB, "
          f"appearance {peak_allocation_mb(lambda i: appearance_statistics(rgb[i]), 0):.1f} MB "
          f"(input clip: flow {u[0].nbytes * 2 / 2**20:.1f} MB float32, rgb {rgb[0].nbytes / 2**20:.1f} MB)")
    if args.dataset:
        time_dataset(args.dataset, timings["both (+ curriculum score)"][0], args.repeats)


def time_dataset(path: Path, labelling_only: float, repeats: int) -> None:
    """Label every video of an extracted dataset in this process (both tasks, default crop variants): a warm-up
    pass, then ``repeats`` passes, each with a fresh reader (every video opened again, as a worker meets it)."""
    settings = LabelSettings()
    per_row, faults = [], []
    for _ in range(repeats + 1):
        dataset = Dataset(path)
        start, faults_before = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        rows = 0
        for video in dataset.videos:
            labels = label_video_clips(dataset, video.id, ("stats", "curriculum"), settings)
            rows += len(labels["stats"].start)
        per_row.append((time.process_time() - start) / rows)
        faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before) / rows)
        dataset.close()
    median = float(np.median(per_row[1:]))
    print(f"dataset {path}: {len(dataset)} videos, {rows} clip variants, {median * 1e3:.2f} ms CPU each "
          f"(median of {repeats} passes, range {min(per_row[1:]) * 1e3:.2f}-{max(per_row[1:]) * 1e3:.2f}; "
          f"{np.median(faults[1:]):.0f} page faults each) with reading (JPEG decode, flow decompression; stats and "
          f"curriculum in one pass), {1 / median:.1f} per s; {median / labelling_only:.2f}x the labelling alone")


if __name__ == "__main__":
    main()
