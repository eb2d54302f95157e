"""Flow backends: accuracy on FlyingChairs (raw vs stored), per-frame cost, and per-video chain overhead.

    .venv/bin/python bench/flow_backends.py [--pairs 12] [--tvl1-pairs 4] [--chairs-tvl1 3]

Prints, with one OpenCV thread and CPU time (``time.process_time``, steadier than wall time on a shared
machine):
1. mean endpoint error per backend on the FlyingChairs pairs at full size (512x384), raw and after the
   uint8 round trip of ``flow_codec`` (bound 20), against the zero-flow EPE as baseline;
2. per-frame time of each backend at 128x171 and 256x342 on UCF101 frames, with the DIS-medium time as
   baseline ratio;
3. the per-video chain (``decode.iter_frames`` -> gray -> ``make_flow`` -> ``quantize`` ->
   ``image_difference``) as frames/s relative to the bare OpenCV flow call on pre-decoded gray frames;
4. ``decode.resize_frame`` against ``cv2.INTER_AREA`` (time ratio and mean grey-level difference).
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from preprocess import decode, difference, flow  # noqa: E402
from preprocess.flow_codec import dequantize, quantize  # noqa: E402
from preprocess.settings import FlowSettings  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CLIP = DATA / "ucf101" / "Archery" / "example.avi"
BACKENDS = {
    "tvl1": FlowSettings(algo="tvl1"),
    "dis-medium": FlowSettings(algo="dis", dis_preset="medium"),
    "dis-fast": FlowSettings(algo="dis", dis_preset="fast"),
    "farneback": FlowSettings(algo="farneback"),
}
BOUND = 20.0


def read_flo(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    w, h = np.frombuffer(raw, np.int32, 2, offset=4)
    return np.frombuffer(raw, np.float32, 2 * w * h, offset=12).reshape(h, w, 2)


def epe(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(((estimate - truth) ** 2).sum(axis=2)).mean())


def cpu_seconds(fn, *args) -> tuple[float, object]:
    start = time.process_time()
    out = fn(*args)
    return time.process_time() - start, out


def chairs_accuracy(pairs_per_backend: dict[str, int]) -> None:
    print("1. FlyingChairs 512x384, mean EPE px (raw | stored uint8, bound 20 | zero flow on the same pairs)")
    root = DATA / "flow_gt" / "flyingchairs"
    for name, settings in BACKENDS.items():
        fn = flow.make_flow(settings)
        raw, stored, zero, seconds = [], [], [], 0.0
        for i in range(pairs_per_backend.get(name, 9)):
            gray0 = cv2.imread(str(root / f"{i:07d}-img0.ppm"), cv2.IMREAD_GRAYSCALE)
            gray1 = cv2.imread(str(root / f"{i:07d}-img1.ppm"), cv2.IMREAD_GRAYSCALE)
            truth = read_flo(root / f"{i:07d}-gt.flo")
            dt, estimate = cpu_seconds(fn, gray0, gray1)
            seconds += dt
            raw.append(epe(estimate, truth))
            stored.append(epe(dequantize(quantize(estimate, BOUND), BOUND), truth))
            zero.append(epe(np.zeros_like(truth), truth))
        print(f"   {name:11s} pairs {len(raw)}  raw {np.mean(raw):5.2f} | stored {np.mean(stored):5.2f} | "
              f"zero {np.mean(zero):5.2f}  (raw/zero {np.mean(raw) / np.mean(zero):.2f}, "
              f"{seconds / len(raw):.2f} s/pair)")


def gray_frames(size: tuple[int, int], n: int) -> list[np.ndarray]:
    frames = itertools.islice(decode.iter_frames(CLIP, size=size), n)
    return [cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) for rgb in frames]


def per_frame_cost(pairs: int, tvl1_pairs: int) -> None:
    print("2. per-frame flow time (CPU ms), UCF101 frames; ratio to DIS medium at the same size")
    for size in [(128, 171), (256, 342)]:
        frames = gray_frames(size, max(pairs, tvl1_pairs) + 1)
        times = {}
        for name, settings in BACKENDS.items():
            fn = flow.make_flow(settings)
            n = tvl1_pairs if name == "tvl1" else pairs
            fn(frames[0], frames[1])  # warm-up
            dt, _ = cpu_seconds(lambda: [fn(frames[t], frames[t + 1]) for t in range(n)])
            times[name] = dt / n
        base = times["dis-medium"]
        print(f"   {size[0]}x{size[1]}: " + ", ".join(
            f"{name} {t * 1000:.1f} ms ({t / base:.1f}x)" for name, t in times.items()))


def bare_calls(settings: FlowSettings):
    """The plain OpenCV call for ``settings``, built without this project's code."""
    if settings.algo == "tvl1":
        return cv2.optflow.DualTVL1OpticalFlow_create().calc
    if settings.algo == "dis":
        presets = {"medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST}
        return cv2.DISOpticalFlow_create(presets[settings.dis_preset]).calc
    return lambda a, b, f: cv2.calcOpticalFlowFarneback(a, b, f, 0.5, 3, 15, 3, 5, 1.2, 0)


def chain_overhead(pairs: int, tvl1_pairs: int, repeats: int = 3) -> None:
    print("3. per-video chain (decode+resize -> gray -> flow -> quantize -> difference) vs bare flow call, "
          "128x171, frames/s ratio (best of 3; TV-L1 once)")
    size = (128, 171)
    for name, settings in BACKENDS.items():
        n = tvl1_pairs if name == "tvl1" else pairs
        tries = 1 if name == "tvl1" else repeats
        frames = gray_frames(size, n + 1)
        calc = bare_calls(settings)
        calc(frames[0], frames[1], None)  # warm-up: first calls allocate the pyramids
        fn = flow.make_flow(settings)
        fn(frames[0], frames[1])

        def chain() -> int:
            previous = None
            for rgb in itertools.islice(decode.iter_frames(CLIP, size=size), n + 1):
                gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
                if previous is not None:
                    quantize(fn(previous, gray), settings.bound)
                    difference.image_difference(previous, gray)
                previous = gray
            return n

        bare = min(cpu_seconds(lambda: [calc(frames[t], frames[t + 1], None) for t in range(n)])[0]
                   for _ in range(tries))
        piped = min(cpu_seconds(chain)[0] for _ in range(tries))
        print(f"   {name:11s} bare {n / bare:7.1f} frames/s, chain {n / piped:7.1f} frames/s: ratio {bare / piped:.3f}")


def resize_cost() -> None:
    print("4. resize_frame vs INTER_AREA to 128x171 (CPU time ratio; mean |difference| in grey levels)")
    for clip in ["ucf101/Archery/example.avi", "ud810_ps7_actions/A2_one_hand_wave/PS7A2P1T1.avi",
                 "ntu_rgbd/hugging_visual/ntu_sample.avi"]:
        ok, frame = cv2.VideoCapture(str(DATA / clip)).read()
        k = 40
        area, ref = cpu_seconds(lambda: [cv2.resize(frame, (171, 128), interpolation=cv2.INTER_AREA)
                                         for _ in range(k)][-1])
        ours, out = cpu_seconds(lambda: [decode.resize_frame(frame, (128, 171)) for _ in range(k)][-1])
        diff = np.abs(out.astype(np.float64) - ref).mean()
        print(f"   {frame.shape[0]}x{frame.shape[1]}: INTER_AREA {area / k * 1000:.2f} ms, resize_frame "
              f"{ours / k * 1000:.2f} ms ({ours / area:.2f}x), mean |diff| {diff:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=12, help="frame pairs per DIS/Farneback timing")
    parser.add_argument("--tvl1-pairs", type=int, default=4, help="frame pairs per TV-L1 timing")
    parser.add_argument("--chairs-tvl1", type=int, default=3, help="FlyingChairs pairs for TV-L1 (slow)")
    args = parser.parse_args()
    flow.pin_opencv_threads(1)
    chairs_accuracy({"tvl1": args.chairs_tvl1})
    per_frame_cost(args.pairs, args.tvl1_pairs)
    chain_overhead(args.pairs, args.tvl1_pairs)
    resize_cost()


if __name__ == "__main__":
    main()
