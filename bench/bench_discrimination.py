"""Cost of the discrimination methods' pieces: forward+backward seconds of the IR (NCE), LA and CVRL losses
on given embeddings, the memory-bank update, CVRL's two-clip augmentation, and the faiss k-means time of one
LA re-clustering (m runs) of a 128-d bank of 10k and 100k videos; with ``--dataset`` (an extracted dataset,
e.g. OUT/dataset of ``run``), the whole training step (augmentation, forward, backward, optimizer, bank update)
of the methods at the CPU pipelines' settings.

Usage: .venv/bin/python bench/bench_discrimination.py [--batch 32] [--bank 10000] [--videos 10000 100000]
       [--runs 3] [--threads 1] [--repeats 3] [--dataset DIR [--pipelines video_ir_cpu ...] [--step-batch 16]]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from torch.utils.data import default_collate

from bench.timing import best_time
from commands.pipeline import load_pipeline
from train.loop import apply_gradients, build_data, build_state
from train.sampling import SampleKey
from train.bank_clustering import kmeans_runs, scaled_num_clusters
from train.cvrl import symmetric_nt_xent
from train.cvrl_augment import CVRLAugmentSettings, augment_pair
from train.instance_losses import InstanceRecognitionNCE, local_aggregation_loss
from train.memory_bank import MemoryBank


def loss_step_times(batch: int, bank_size: int, runs: int, repeats: int) -> dict[str, float]:
    """Seconds of loss forward+backward (and the bank update) on random 128-d embeddings."""
    generator = torch.Generator().manual_seed(0)
    bank = MemoryBank(bank_size, 128, seed=0)
    indices = torch.randint(bank_size, (batch,), generator=generator)
    features = torch.randn(batch, 128, generator=generator, requires_grad=True)
    ir = InstanceRecognitionNCE()
    labels = torch.from_numpy(kmeans_runs(bank.vectors.numpy(), scaled_num_clusters(bank_size), runs))
    view1, view2 = (torch.randn(batch, 128, generator=generator, requires_grad=True) for _ in range(2))
    return {
        "IR NCE loss (4096 noise)": best_time(
            lambda: ir(F.normalize(features, dim=1), indices, bank, generator).backward(), repeats),
        f"LA loss (4096 neighbours, {runs} clusterings)": best_time(
            lambda: local_aggregation_loss(features, bank.vectors, indices, labels).backward(), repeats),
        "CVRL symmetric NT-Xent": best_time(lambda: symmetric_nt_xent(view1, view2).backward(), repeats),
        "memory-bank update": best_time(lambda: bank.update(indices, features.detach()), repeats),
    }


def augmentation_time(batch: int, frames: int, size: int, repeats: int) -> float:
    """Seconds of CVRL's two-clip augmentation of ``batch`` pairs of 128x171 clips to ``size``."""
    generator = torch.Generator().manual_seed(0)
    clips = torch.rand(batch, 3, frames, 128, 171, generator=generator)
    settings = CVRLAugmentSettings(crop_size=size)
    return best_time(lambda: augment_pair(clips, clips, settings, generator), repeats)


def method_step_times(dataset_dir: Path, pipelines: list[str], batch: int, repeats: int) -> dict[str, float]:
    """Seconds of one training step (prepare, forward, backward, optimizer step, after_step) of each pipeline's
    method on ``batch`` items of ``dataset_dir`` (its last phase for a phased pipeline)."""
    times = {}
    for name in pipelines:
        settings = load_pipeline(name, overrides={"train": {"batch_size": batch}}).train
        data = build_data(settings, dataset_dir)
        torch.manual_seed(0)
        state = build_state(settings, data, torch.device("cpu"))
        method = state.method.train()
        items = default_collate([data.dataset[SampleKey(i, 0, i)] for i in range(batch)])

        def step() -> None:
            inputs = method.prepare(items, torch.Generator().manual_seed(0))
            output = method(inputs)
            apply_gradients(state, output.loss, None)
            method.after_step(inputs, output, 2)

        step()  # LA clusters its bank before the first step
        times[f"{name}: {settings.method} step, {settings.backbone}, batch {batch}"] = best_time(step, repeats)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--bank", type=int, default=10_000)
    parser.add_argument("--videos", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3, help="k-means runs per re-clustering (m)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dataset", type=Path, help="extracted dataset for whole training steps")
    parser.add_argument("--pipelines", nargs="+", default=["video_ir_cpu", "video_la_cpu", "cvrl_cpu"])
    parser.add_argument("--step-batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    print(f"CPU, {args.threads} thread(s); batch {args.batch}, bank {args.bank} x 128")
    for name, seconds in loss_step_times(args.batch, args.bank, args.runs, args.repeats).items():
        print(f"  {name:42s} {1000 * seconds:9.2f} ms")
    seconds = augmentation_time(8, 16, 112, args.repeats)
    print(f"  {'CVRL augmentation, 8 pairs 16x128x171 -> 112':42s} {1000 * seconds:9.2f} ms")
    rng = np.random.default_rng(0)
    for videos in args.videos:
        vectors = rng.standard_normal((videos, 128)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        clusters = scaled_num_clusters(videos)
        start = time.perf_counter()
        kmeans_runs(vectors, clusters, args.runs)
        seconds = time.perf_counter() - start
        print(f"  k-means of {videos:,} videos, K = {clusters}, {args.runs} runs x 20 iterations: {seconds:8.2f} s")
    if args.dataset is not None:
        for name, seconds in method_step_times(args.dataset, args.pipelines, args.step_batch, args.repeats).items():
            print(f"  {name:60s} {1000 * seconds:9.1f} ms")


if __name__ == "__main__":
    main()
