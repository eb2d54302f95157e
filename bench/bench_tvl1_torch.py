"""PyTorch TV-L1 (preprocess.tvl1_torch) against OpenCV's DualTVL1: accuracy and frames/s in one run.

    .venv/bin/python bench/bench_tvl1_torch.py [--chairs 9] [--codes-pairs 16] [--cpu-pairs 8 4]
                                               [--cpu-batches 1 4] [--gpu-batches 64 256]

Prints, default parameters throughout, one CPU thread for both (torch and OpenCV):
1. FlyingChairs at full size (512x384): mean EPE against the ground truth of OpenCV and of tvl1_torch, the
   mean EPE between the two, and between OpenCV and OpenCV on the frames plus 0.01 grey levels of Gaussian
   noise (how far the algorithm itself moves for a change that small);
2. stored codes (flow_codec.quantize, bound 20) of consecutive UCF101 pairs at 128x171: share of values within
   one level of OpenCV's;
3. frames/s at 128x171 and 256x342 on UCF101 frames: OpenCV pair by pair, tvl1_torch on CPU in calls of
   ``--cpu-batches`` pairs (CPU time; small batches stay in cache), and on CUDA with batches of 64 and 256
   pairs (wall time) when a GPU is present; each with its ratio to OpenCV on one core.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from preprocess import decode  # noqa: E402
from preprocess.flow_codec import quantize  # noqa: E402
from preprocess.tvl1_torch import tvl1_flow  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CLIPS = sorted((DATA / "ucf101").glob("*/*.avi"))
BOUND = 20.0


def read_flo(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    w, h = np.frombuffer(raw, np.int32, 2, offset=4)
    return np.frombuffer(raw, np.float32, 2 * w * h, offset=12).reshape(h, w, 2)


def endpoint_errors(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.sqrt(((estimate - truth) ** 2).sum(axis=-1)).mean(axis=(-2, -1))


def opencv_flows(prev: np.ndarray, next_: np.ndarray) -> np.ndarray:
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    return np.stack([tvl1.calc(a, b, None) for a, b in zip(prev, next_)])


def consecutive_pairs(size: tuple[int, int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` consecutive grey frame pairs at ``size`` from the UCF101 clips in turn, uint8 [n, H, W] x2."""
    prev, next_ = [], []
    for clip in itertools.cycle(CLIPS):
        frames = [cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) for rgb in decode.iter_frames(clip, size=size)]
        prev += frames[:-1]
        next_ += frames[1:]
        if len(prev) >= n:
            return np.stack(prev[:n]), np.stack(next_[:n])


def chairs_accuracy(n: int) -> None:
    print(f"1. FlyingChairs 512x384, {n} pairs, mean EPE px")
    root = DATA / "flow_gt" / "flyingchairs"
    stems = [root / f"{i:07d}" for i in range(n)]
    prev = np.stack([cv2.imread(f"{stem}-img0.ppm", cv2.IMREAD_GRAYSCALE) for stem in stems])
    next_ = np.stack([cv2.imread(f"{stem}-img1.ppm", cv2.IMREAD_GRAYSCALE) for stem in stems])
    truth = np.stack([read_flo(Path(f"{stem}-gt.flo")) for stem in stems])
    theirs = opencv_flows(prev, next_)
    ours = tvl1_flow(prev, next_)
    rng = np.random.default_rng(0)
    noisy = [((frames + rng.normal(0, 0.01, frames.shape)) / 255).astype(np.float32) for frames in (prev, next_)]
    theirs_noisy = opencv_flows(*noisy)
    print(f"   vs truth: opencv {endpoint_errors(theirs, truth).mean():.3f}, tvl1_torch "
          f"{endpoint_errors(ours, truth).mean():.3f}, zero flow {endpoint_errors(0 * truth, truth).mean():.3f}")
    print(f"   tvl1_torch vs opencv {endpoint_errors(ours, theirs).mean():.3f}; opencv vs opencv on frames + 0.01 "
          f"grey noise {endpoint_errors(theirs_noisy, theirs).mean():.3f}")


def stored_codes(n: int) -> None:
    prev, next_ = consecutive_pairs((128, 171), n)
    ours = quantize(tvl1_flow(prev, next_), BOUND).astype(int)
    theirs = quantize(opencv_flows(prev, next_), BOUND).astype(int)
    within = np.mean(np.abs(ours - theirs) <= 1, axis=(1, 2, 3))
    print(f"2. stored codes, {n} consecutive UCF101 pairs at 128x171: within one level of OpenCV's "
          f"{within.mean():.4f} (lowest pair {within.min():.4f}), equal {np.mean(ours == theirs):.4f}")


def cpu_seconds(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def cuda_seconds(fn) -> float:
    fn()  # warm-up: kernels, allocator
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def in_batches(prev: np.ndarray, next_: np.ndarray, batch: int) -> None:
    for start in range(0, len(prev), batch):
        tvl1_flow(prev[start:start + batch], next_[start:start + batch])


def speed(cpu_pairs: list[int], cpu_batches: list[int], gpu_batches: list[int]) -> None:
    print("3. frames/s (one CPU thread; CUDA wall time after a warm-up call)")
    for size, n in zip([(128, 171), (256, 342)], cpu_pairs):
        prev, next_ = consecutive_pairs(size, max([n] + (gpu_batches if torch.cuda.is_available() else [])))
        opencv_fps = n / cpu_seconds(lambda: opencv_flows(prev[:n], next_[:n]))
        line = f"   {size[0]}x{size[1]}: opencv {opencv_fps:.2f}"
        for batch in cpu_batches:
            fps = n / cpu_seconds(lambda: in_batches(prev[:n], next_[:n], batch))
            line += f", tvl1_torch cpu batch {batch} {fps:.2f} ({fps / opencv_fps:.2f}x)"
        if torch.cuda.is_available():
            for batch in gpu_batches:
                prev_gpu = torch.from_numpy(prev[:batch]).cuda()
                next_gpu = torch.from_numpy(next_[:batch]).cuda()
                fps = batch / cuda_seconds(lambda: tvl1_flow(prev_gpu, next_gpu))
                line += f", cuda batch {batch} {fps:.1f} ({fps / opencv_fps:.0f}x)"
        else:
            line += ", cuda: no GPU here, not measured"
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chairs", type=int, default=9, help="FlyingChairs pairs at full size (0: skip)")
    parser.add_argument("--codes-pairs", type=int, default=16, help="UCF101 pairs for the codes (0: skip)")
    parser.add_argument("--cpu-pairs", type=int, nargs=2, default=[8, 4], help="pairs at 128x171 and 256x342")
    parser.add_argument("--cpu-batches", type=int, nargs="+", default=[1, 4], help="pairs per call on CPU")
    parser.add_argument("--gpu-batches", type=int, nargs="*", default=[64, 256])
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    print(f"torch {torch.__version__}, OpenCV {cv2.__version__}, "
          f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device'}")
    if args.chairs:
        chairs_accuracy(args.chairs)
    if args.codes_pairs:
        stored_codes(args.codes_pairs)
    speed(args.cpu_pairs, args.cpu_batches, args.gpu_batches)


if __name__ == "__main__":
    main()
