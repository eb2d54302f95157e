"""Benchmark of the extraction pipeline against the bare OpenCV flow call, and of Dask scaling.

    .venv/bin/python bench/bench_flow.py [--size 128 171] [--tvl1-pairs 6] [--tvl1-turns 7] [--dis-turns 9]
                                         [--videos 25] [--scaling-turns 2]

Prints, for TV-L1 and DIS (medium): frames/s of the bare flow call on pre-decoded gray frames vs the whole
per-video pipeline (decode -> resize -> JPEG -> flow -> quantize -> HDF5, plus differences) in one
process with one thread, as a ratio, for flow from the decoded frames (a fresh extraction) and from the
stored ones (JPEG round trip: frames extracted by an earlier run); for DIS also the CPU time of each step
alone, and bytes and write time of flow codes and differences as the extraction writes them (Zstandard
chunks written directly) and through each HDF5 compression filter. All are timed in CPU seconds of this
process (``time.process_time``), which a busy shared machine disturbs far less than wall time. Then the
wall-time speed-up of a multi-video extraction from 1 to 2 Dask workers (cluster start and sandbox start
excluded), and peak memory of the sandbox and Dask worker processes. Figures are only comparable within
one run (same machine load).
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from preprocess import decode, difference  # noqa: E402
from preprocess import flow as flow_module  # noqa: E402
from preprocess import shards  # noqa: E402
from commands.pipeline import load_pipeline  # noqa: E402
from preprocess.extract import extract  # noqa: E402
from preprocess.flow_codec import quantize  # noqa: E402
from common.runner import open_client  # noqa: E402
from common.runner import ClusterSettings
from preprocess.settings import ExtractSettings  # noqa: E402
from preprocess.video_task import GRAY_SOURCES, VideoJob, extract_video  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def trimmed_copy(src: Path, dst: Path, n_frames: int) -> Path:
    """The first ``n_frames`` of a real clip re-encoded as MJPG .avi (short input for slow flow)."""
    cap = cv2.VideoCapture(str(src))
    frames = []
    while len(frames) < n_frames:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(bgr)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), cap.get(cv2.CAP_PROP_FPS) or 25, (w, h))
    for bgr in frames:
        writer.write(bgr)
    writer.release()
    return dst


def gray_frames(video: Path, settings: ExtractSettings, source: str) -> list[np.ndarray]:
    """Gray frames of ``video`` from the project's decoder at ``settings.size``, as the pipeline computes
    flow from them: straight from the decoder (``decoded``) or after the JPEG round trip (``stored``)."""
    gray = []
    for bgr in decode.iter_frames(video, size=settings.size, bgr=True):
        if source == "stored":
            gray.append(shards.jpeg_to_gray(shards.encode_jpeg_bgr(bgr, settings.jpeg_quality)))
        else:
            gray.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    return gray


def _cpu_ms_per_item(run: Callable[[], object], n_items: int, repeats: int) -> float:
    """CPU milliseconds per item of ``run()`` (which handles ``n_items`` items), best of ``repeats``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return 1e3 * best / n_items


def _write_items(items: list[np.ndarray], **compression: Any) -> int:
    """Bytes of an in-memory HDF5 file holding ``items`` one chunk each, written through h5py in slabs of 16
    with HDF5's own ``compression`` filter."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        ds = f.create_dataset("items", shape=(0, *items[0].shape), maxshape=(None, *items[0].shape),
                              dtype=items[0].dtype, chunks=(1, *items[0].shape), **compression)
        for i in range(0, len(items), 16):
            slab = np.stack(items[i:i + 16])
            ds.resize(i + len(slab), axis=0)
            ds[i:] = slab
    return len(buffer.getvalue())


def _write_stream(stream: str, items: list[np.ndarray]) -> int:
    """Bytes of an in-memory HDF5 file holding ``items`` as the extraction writes the ``stream`` ('flow' or
    'diff'): ``shards.VideoWriter``, each item compressed and written as its chunk."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        writer = shards.VideoWriter(f, "v", height=items[0].shape[0], width=items[0].shape[1], streams=(stream,))
        writer.count_frame()
        for item in items:
            writer.count_frame()
            (writer.add_flow if stream == "flow" else writer.add_diff)(item)
        writer.finish(fps=25.0, source="bench", label=None, split=None)
    return len(buffer.getvalue())


def breakdown(video: Path, settings: ExtractSettings, repeats: int) -> None:
    """CPU ms per frame of each step of the DIS pipeline, timed alone, and ratio of the bare flow call to
    their sum for flow from the decoded frames and from the stored ones (JPEG -> gray in place of
    BGR -> gray); then bytes and write time of flow codes and differences per HDF5 compression filter."""
    frames = list(decode.iter_frames(video, size=settings.size, bgr=True))
    jpegs = [shards.encode_jpeg_bgr(bgr, settings.jpeg_quality) for bgr in frames]
    gray = [cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) for bgr in frames]
    flow_fn = flow_module.make_flow(settings.flow)
    flows = [flow_fn(a, b) for a, b in zip(gray[:-1], gray[1:])]
    codes = [quantize(f, settings.flow.bound) for f in flows]
    diffs = [difference.image_difference(a, b) for a, b in zip(gray[:-1], gray[1:])]
    n, pairs = len(frames), len(flows)
    gzip1 = {"compression": "gzip", "compression_opts": 1}
    steps = {
        "decode+resize": _cpu_ms_per_item(lambda: list(decode.iter_frames(video, size=settings.size, bgr=True)), n,
                                          repeats),
        "JPEG encode": _cpu_ms_per_item(lambda: [shards.encode_jpeg_bgr(b, settings.jpeg_quality) for b in frames], n,
                                        repeats),
        "BGR -> gray": _cpu_ms_per_item(lambda: [cv2.cvtColor(b, cv2.COLOR_BGR2GRAY) for b in frames], n, repeats),
        "JPEG -> gray": _cpu_ms_per_item(lambda: [shards.jpeg_to_gray(j) for j in jpegs], n, repeats),
        "flow (bare)": _cpu_ms_per_item(lambda: [flow_fn(a, b) for a, b in zip(gray[:-1], gray[1:])], pairs, repeats),
        "quantize": _cpu_ms_per_item(lambda: [quantize(f, settings.flow.bound) for f in flows], pairs, repeats),
        "flow codes zstd-1 write": _cpu_ms_per_item(lambda: _write_stream("flow", codes), pairs, repeats),
        "difference": _cpu_ms_per_item(lambda: [difference.image_difference(a, b) for a, b in zip(gray[:-1], gray[1:])],
                                       pairs, repeats),
        "difference zstd-1 write": _cpu_ms_per_item(lambda: _write_stream("diff", diffs), pairs, repeats),
    }
    print("  CPU ms per frame, each step timed alone: " + ", ".join(f"{k} {v:.3f}" for k, v in steps.items()))
    flow_ms = steps["flow (bare)"]
    for src, gray_step in (("decoded", "BGR -> gray"), ("stored", "JPEG -> gray")):
        rest = sum(steps[k] for k in ("decode+resize", "JPEG encode", gray_step, "quantize", "flow codes zstd-1 write"))
        print(f"  flow from the {src} frames: bare flow / (bare flow + other steps without differences) = "
              f"{flow_ms / (flow_ms + rest):.2f}x")
    filters = {"none": {}, "zstd-1": dict(shards.COMPRESSION), "gzip-1": gzip1,
               "gzip-1+shuffle": {**gzip1, "shuffle": True}, "lzf": {"compression": "lzf"}}
    for stream, name, items in (("flow", "flow codes uint8 [H,W,2]", codes), ("diff", "difference int16 [H,W]", diffs)):
        ms = _cpu_ms_per_item(lambda: _write_stream(stream, items), pairs, repeats)
        size = _write_stream(stream, items) / pairs
        chosen = f"zstd-1 chunks written directly (chosen) {size:,.0f} B {1e3 * ms:.0f} us"
        cells = []
        for label, compression in filters.items():
            ms = _cpu_ms_per_item(lambda: _write_items(items, **compression), pairs, repeats)
            cells.append(f"{label} {_write_items(items, **compression) / pairs:,.0f} B {1e3 * ms:.0f} us")
        print(f"  {name}, bytes and write CPU per item: {chosen}; through HDF5's filter: " + " | ".join(cells))


def bare_flow_fps(gray: list[np.ndarray], settings: ExtractSettings) -> float:
    """Flow pairs per CPU second of the OpenCV call alone, on frames prepared beforehand."""
    flow_fn = flow_module.make_flow(settings.flow)
    start = time.process_time()
    for a, b in zip(gray[:-1], gray[1:]):
        flow_fn(a, b)
    return (len(gray) - 1) / (time.process_time() - start)


def pipeline_fps(video: Path, settings: ExtractSettings, workdir: Path, gray_from: str) -> float:
    """Frames/s of one video through the whole per-video task (as run in a worker's sandbox), flow and
    differences computed from the ``gray_from`` frames."""
    streams = ("frames", "flow", "diff") if settings.diff else ("frames", "flow")
    job = VideoJob("bench/video", str(video), None, None, streams, settings, flow_from=gray_from, diff_from=gray_from)
    out = workdir / f"part-{time.monotonic_ns()}.h5"
    start = time.process_time()
    meta = extract_video(job, str(out))
    elapsed = time.process_time() - start
    out.unlink()
    return (meta["n_frames"] - 1) / elapsed


def compare(name: str, video: Path, settings: ExtractSettings, workdir: Path, repeats: int) -> None:
    """Print bare flow vs pipeline rates, for flow from the decoded frames (a fresh extraction) and from the
    stored ones (frames extracted by an earlier run), each against the bare call on its own frames. Each
    measure is taken ``repeats`` times, in turns so that changes of the machine's load affect all alike;
    printed: the ratio of the best rates, and the median of the ratios of neighbouring measures."""
    gray = {src: gray_frames(video, settings, src) for src in GRAY_SOURCES}
    no_diff = dataclasses.replace(settings, diff=False)
    measures = {}
    for src in GRAY_SOURCES:
        measures[src, "bare flow"] = lambda src=src: bare_flow_fps(gray[src], settings)
        measures[src, "pipeline"] = lambda src=src: pipeline_fps(video, no_diff, workdir, src)
        measures[src, "with differences"] = lambda src=src: pipeline_fps(video, settings, workdir, src)
    runs: dict[tuple[str, str], list[float]] = {key: [] for key in measures}
    for _ in range(repeats):
        for key, measure in measures.items():
            runs[key].append(measure())
    print(f"{name}: {len(gray['decoded'])} frames {settings.size[0]}x{settings.size[1]} from {video.name}, "
          f"{repeats} turns; pipeline / bare flow as ratio of the best rates and median ratio within a turn:")
    for src in GRAY_SOURCES:
        bare = np.array(runs[src, "bare flow"])
        cells = [f"bare flow {bare.max():.1f} frames/s"]
        for what in ("pipeline", "with differences"):
            rates = np.array(runs[src, what])
            cells.append(f"{what} {rates.max():.1f} = {rates.max() / bare.max():.2f}x (median {np.median(rates / bare):.2f}x)")
        print(f"  flow from the {src} frames: " + "; ".join(cells))


def scaling(videos: Path, workdir: Path, size: tuple[int, int], turns: int) -> None:
    """Wall time of extracting ``videos`` with 1 and with 2 local Dask workers (cluster and sandbox start
    excluded), ``turns`` times each in turns; the speed-up is the ratio of the best times. Also the rate of
    work (CPU seconds of the workers per wall second) of those runs, whose ratio does not move with the
    machine's speed between runs."""
    pipeline = load_pipeline("stats", overrides={"preprocess": {"size": list(size), "flow": {"algo": "dis"}}})
    runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}  # (wall s, worker CPU s)
    warm_up = workdir / "warm_up"
    warm_up.mkdir()
    for clip in sorted(videos.iterdir())[:2]:
        (warm_up / clip.name).symlink_to(clip.resolve())
    for turn in range(turns):
        for workers in (1, 2):
            with open_client(ClusterSettings(kind="local"), workers=workers) as client:
                extract(warm_up, workdir / f"warm{workers}-{turn}", pipeline, client=client, progress=False)
                start = time.perf_counter()
                summary = extract(videos, workdir / f"scale{workers}-{turn}", pipeline, client=client, progress=False)
                runs[workers].append((time.perf_counter() - start, summary.cpu_seconds))
                worker_mb = client.run(_rss_mb)
            assert summary.ok, summary.failed
            print(f"{workers} worker(s): {summary.extracted} videos in {runs[workers][-1][0]:.1f} s wall, "
                  f"{summary.cpu_seconds:.1f} CPU s in workers; peak sandbox process {summary.peak_rss_mb:.0f} MB, "
                  f"Dask worker process {max(worker_mb.values()):.0f} MB")
    (wall1, cpu1), (wall2, cpu2) = min(runs[1]), min(runs[2])
    print(f"speed-up 1 -> 2 workers: {wall1 / wall2:.2f}x wall (best of {turns} each); rate of work "
          f"{cpu1 / wall1:.2f} -> {cpu2 / wall2:.2f} worker CPU s per s = {cpu2 / wall2 / (cpu1 / wall1):.2f}x; load "
          f"average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", nargs=2, type=int, default=[128, 171])
    parser.add_argument("--tvl1-pairs", type=int, default=6, help="frame pairs of the TV-L1 clip (TV-L1 is slow)")
    parser.add_argument("--tvl1-turns", type=int, default=7, help="turns of the TV-L1 per-worker measures")
    parser.add_argument("--dis-turns", type=int, default=9, help="turns of the DIS per-worker measures")
    parser.add_argument("--scaling-turns", type=int, default=2, help="turns of the 1 and 2 worker runs")
    parser.add_argument("--videos", type=int, default=25, help="ARID clips for the 1 -> 2 worker scaling run (25: all "
                        "Run clips; with fewer the speed-up depends on which video ends last)")
    args = parser.parse_args()
    flow_module.pin_opencv_threads(1)
    size = tuple(args.size)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ucf = DATA / "ucf101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
        short = trimmed_copy(ucf, work / "ucf_short.avi", args.tvl1_pairs + 1)
        base = load_pipeline("stats", overrides={"preprocess": {"size": list(size)}}).preprocess
        compare("TV-L1", short, base, work, args.tvl1_turns)
        dis = load_pipeline("stats", overrides={"preprocess": {"size": list(size), "flow": {"algo": "dis"}}}).preprocess
        compare("DIS medium", ucf, dis, work, args.dis_turns)
        breakdown(ucf, dis, args.dis_turns)
        clips = work / "arid"
        clips.mkdir()
        for clip in sorted((DATA / "arid/train/Run").glob("*.mp4"))[: args.videos]:
            (clips / clip.name).symlink_to(clip)
        scaling(clips, work, size, args.scaling_turns)


if __name__ == "__main__":
    main()
