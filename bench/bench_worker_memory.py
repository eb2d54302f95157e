"""Do extraction workers and data loader workers pay page faults for their freed temporaries?

For each kind of worker process, the same work with glibc's default (adaptive) malloc thresholds and with
``keep_freed_memory()`` (fixed thresholds: docs/LABELS.md, "Label workers keep freed memory"), the two in
turns (ABBA), ``--rounds`` times each: CPU time split into user and system, and minor page faults
(``resource.getrusage`` of the worker process itself), per frame; medians, the ratio of CPU time (keep /
default) with its range over the turns, and the worker's peak memory. The kernel splits CPU time into user and
system by sampling at its tick, so system times of a few percent are noisy; the fault counts are exact.

- extraction: ``preprocess.video_task.extract_video`` in a persistent sandbox process, as a Dask worker
  runs it (``common.sandbox``), at 128x171, on an ARID clip (320x240, 56 frames) and a kinetics_style clip
  (340x256, 280 frames): frames only, frames + DIS (medium) flow + differences, and on the ARID clip
  frames + TV-L1 flow + differences (``--tvl1-rounds`` turns). One sandbox keeps glibc's default, the other sets
  ``keep_freed_memory()`` first; the first call of each is a warm-up.
- training: a torch DataLoader with one worker process producing batches of the stats method's dataset
  (``StatsClipDataset``, 30 labelled 16x112x112 clips) and of the pace method's (``VideoClipDataset``,
  30 clips at paces 1-4); ``worker_init_fn`` sets ``keep_freed_memory()`` or not. Each item carries the
  worker's ``getrusage`` once it is read, so the cost of ``--batches`` batches after ``--warmup`` batches is
  read from inside the worker.
- evaluation: the same for ``eval.video_clips.EvaluationClips`` (10 uniformly spaced centre-cropped
  16-frame clips per video, as ``eval.features.extract_features`` reads them).

    .venv/bin/python bench/bench_worker_memory.py --dataset DIR [--rounds 9] [--tvl1-rounds 3]
                                                  [--warmup 2] [--batches 20] [--only extraction train eval]

``--dataset`` (for the loaders): an extracted dataset of at least 30 training videos with frames and stats +
curriculum labels at 128x171, e.g. ``cli.py extract-flow IN DIR --algo dis`` then ``cli.py make-labels --data
DIR`` on 40 ARID clips (10 each of Jump, Run, Sit, Walk: docs/LABELS.md has the figures).
"""
from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # one core per worker, as the stages run them

import argparse  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.memory import keep_freed_memory  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CLIPS = {"ARID 320x240, 56 frames": "arid/train/Jump/Jump_11_1.mp4",
         "kinetics_style 340x256, 280 frames": "kinetics_style/arm_wrestling/demo.mp4"}
MODES = ("default", "keep")


def usage() -> np.ndarray:
    """This process's user CPU s, system CPU s and minor page faults so far, and its peak resident memory
    (MB): float64 [4]."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return np.array([r.ru_utime, r.ru_stime, r.ru_minflt, r.ru_maxrss / 1024.0], dtype=np.float64)


def cost_between(before: np.ndarray, after: np.ndarray, n_frames: int) -> np.ndarray:
    """[user s, system s, minor faults] per frame between two ``usage()`` and the peak memory (MB) at the end."""
    return np.append((after[:3] - before[:3]) / n_frames, after[3])


def measured(function: Callable[..., Any], args: tuple) -> tuple[Any, np.ndarray, np.ndarray]:
    """``function(*args)`` and this process's ``usage()`` before and after it."""
    before = usage()
    value = function(*args)
    return value, before, usage()


def set_malloc(mode: str) -> bool:
    """In a worker process: keep freed memory (``mode`` 'keep') or leave glibc's default."""
    return keep_freed_memory() if mode == "keep" else False


def extraction_job(clip: Path, streams: tuple[str, ...], algo: str):
    from preprocess.settings import ExtractSettings, FlowSettings
    from preprocess.video_task import VideoJob

    settings = ExtractSettings(size=(128, 171), flow=FlowSettings(algo=algo), diff="diff" in streams)
    return VideoJob(clip.stem, str(clip), None, "train", streams, settings)


def extraction(clips: dict[str, Path], rounds: int, tvl1_rounds: int, out: Path) -> list[dict]:
    """Per clip and stream set: CPU cost per frame of ``extract_video`` in each malloc mode's sandbox (TV-L1,
    ~60x slower than DIS, on the first clip only)."""
    from bench.bench_worker_memory import measured, set_malloc  # by module name: the sandbox imports them
    from common.sandbox import Sandbox
    from preprocess.video_task import extract_video

    cases = [(name, clip, streams, algo) for name, clip in clips.items()
             for streams, algo in ((("frames",), "dis"), (("frames", "flow", "diff"), "dis"))]
    cases.append((*cases[0][:2], ("frames", "flow", "diff"), "tvl1"))

    boxes = {mode: Sandbox() for mode in MODES}
    try:
        for mode, box in boxes.items():
            box.call(set_malloc, (mode,), None)
            box.call(measured, (extract_video, (extraction_job(cases[0][1], ("frames", "flow", "diff"), "dis"),
                                                str(out / f"warmup_{mode}.h5"))), None)  # imports, first buffers
        rows = []
        for name, clip, streams, algo in cases:
            job = extraction_job(clip, streams, algo)
            costs: dict[str, list[np.ndarray]] = {mode: [] for mode in MODES}
            for r in range(tvl1_rounds if algo == "tvl1" and "flow" in streams else rounds):
                for mode in (MODES if r % 2 == 0 else MODES[::-1]):
                    meta, before, after = boxes[mode].call(
                        measured, (extract_video, (job, str(out / f"{mode}.h5"))), None).value
                    costs[mode].append(cost_between(before, after, meta["n_frames"]))
            what = "frames" if streams == ("frames",) else f"frames + {algo.upper()} flow + diff"
            rows.append({"worker": "extraction", "case": f"{name}: {what}", "unit": "frame", **summary(costs)})
            print_row(rows[-1])
        return rows
    finally:
        for box in boxes.values():
            box.close()


class Probed:
    """A dataset whose items also carry the worker process's ``usage()`` once the item is read (the first
    items of two batches mark the work of the batches between them)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> tuple[Any, np.ndarray]:
        return self.dataset[key], usage()


def loader_cost(dataset: Any, mode: str, order: dict[str, Any], warmup: int, batches: int,
                frames: Callable[[Any], int]) -> np.ndarray:
    """Cost per frame [user s, system s, faults] in one DataLoader worker of ``batches`` batches after ``warmup``,
    and the worker's peak memory (MB)."""
    import torch

    loader = torch.utils.data.DataLoader(Probed(dataset), **order, num_workers=1,
                                         worker_init_fn=lambda _: set_malloc(mode))
    marks, n_frames = [], 0
    for step, (item, probe) in enumerate(loader):
        marks.append(np.asarray(probe).reshape(-1, 4)[0])
        if warmup <= step < warmup + batches:
            n_frames += frames(item)
        if step == warmup + batches:
            break
    del loader  # ends the worker
    return cost_between(marks[warmup], marks[warmup + batches], n_frames)


def loaders(dataset_dir: Path, workers: set[str], rounds: int, warmup: int, batches: int) -> list[dict]:
    """The stats and pace training datasets ('train' in ``workers``) and eval's clips ('eval'), each in a
    DataLoader worker per malloc mode."""
    import torch

    from commands.pipeline import load_pipeline
    from eval.video_clips import EvaluationClips
    from preprocess.dataset import Dataset
    from train.methods.registry import method_class
    from train.sampling import EpochBatchSampler

    torch.set_num_threads(1)
    cases = []
    for name in ("stats", "pace") if "train" in workers else ():
        settings = load_pipeline(name).train
        data = method_class(name).training_data(dataset_dir, settings).dataset
        order = {"batch_sampler": EpochBatchSampler(len(data), settings.batch_size, warmup + batches + 1, seed=0)}
        cases.append(("train", f"{name} method's dataset (batch {settings.batch_size})", "clip frame",
                      data, order, lambda item: int(np.prod(item["frames"].shape[:-3]))))
    if "eval" in workers:
        dataset = Dataset(dataset_dir)
        clips = EvaluationClips(dataset, "frames", [v.id for v in dataset.videos], 10, 16, 112)
        order = {"batch_size": None, "sampler": list(range(len(clips))) * (1 + (warmup + batches) // len(clips))}
        cases.append(("eval", "EvaluationClips: 10 x 16 frames per video", "clip frame", clips, order,
                      lambda item: int(np.prod(item.shape[:-3]))))
    rows = []
    for worker, case, unit, data, order, frames in cases:
        costs: dict[str, list[np.ndarray]] = {mode: [] for mode in MODES}
        for r in range(rounds):
            for mode in (MODES if r % 2 == 0 else MODES[::-1]):
                costs[mode].append(loader_cost(data, mode, order, warmup, batches, frames))
        rows.append({"worker": worker, "case": case, "unit": unit, **summary(costs)})
        print_row(rows[-1])
    return rows


def summary(costs: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    """Medians per mode: user and system ms, faults (per unit), the largest peak memory (MB), and keep/default
    CPU time with its range."""
    out: dict[str, Any] = {}
    for mode, values in costs.items():
        arr = np.array(values)
        out[mode] = {"user_ms": 1e3 * float(np.median(arr[:, 0])), "sys_ms": 1e3 * float(np.median(arr[:, 1])),
                     "cpu_ms": 1e3 * float(np.median(arr[:, 0] + arr[:, 1])), "faults": float(np.median(arr[:, 2])),
                     "peak_mb": float(arr[:, 3].max())}
    per_round = [(k[0] + k[1]) / (d[0] + d[1]) for d, k in zip(costs["default"], costs["keep"])]
    out["ratio"] = out["keep"]["cpu_ms"] / out["default"]["cpu_ms"]
    out["ratio_range"] = (min(per_round), max(per_round))
    return out


def print_row(row: dict) -> None:
    d, k = row["default"], row["keep"]
    print(f"{row['worker']:10s} {row['case']:48s} per {row['unit']}: "
          f"default CPU {d['cpu_ms']:.3f} (user {d['user_ms']:.3f} sys {d['sys_ms']:.3f}) ms, {d['faults']:.1f} faults, "
          f"{d['peak_mb']:.0f} MB | keep CPU {k['cpu_ms']:.3f} (user {k['user_ms']:.3f} sys {k['sys_ms']:.3f}) ms, "
          f"{k['faults']:.1f} faults, {k['peak_mb']:.0f} MB | "
          f"CPU keep/default {row['ratio']:.3f}x (rounds {row['ratio_range'][0]:.3f}-{row['ratio_range'][1]:.3f})",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, help="extracted dataset with frames, flow and stats labels")
    parser.add_argument("--rounds", type=int, default=9, help="turns per mode (median)")
    parser.add_argument("--tvl1-rounds", type=int, default=3, help="turns per mode of the TV-L1 extraction")
    parser.add_argument("--warmup", type=int, default=2, help="loader batches before the measured ones")
    parser.add_argument("--batches", type=int, default=20, help="measured loader batches")
    parser.add_argument("--only", nargs="+", choices=("extraction", "train", "eval"),
                        default=["extraction", "train", "eval"])
    args = parser.parse_args()
    clips = {name: DATA / path for name, path in CLIPS.items()}
    if "extraction" in args.only:
        with tempfile.TemporaryDirectory(prefix="bench_worker_memory_") as tmp:
            extraction(clips, args.rounds, args.tvl1_rounds, Path(tmp))
    if {"train", "eval"} & set(args.only):
        if args.dataset is None:
            parser.error("--dataset is needed for the train and eval loaders")
        loaders(args.dataset, set(args.only), args.rounds, args.warmup, args.batches)


if __name__ == "__main__":
    main()
