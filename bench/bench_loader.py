"""Clips/s delivered by the training loader: 16x112x112 RGB pace clips with on-device augmentation.

Compares, in the same run and on the same frames, ``train.data.PaceClipDataset`` reading HDF5 shards (JPEG
frames back to back, the extraction's default layout) against a plain baseline: one folder of JPEG files per
video (the common ``frames/<video>/000001.jpg`` layout), decoded with OpenCV. Both draw the same clips (same
frame indices and crops), go through a torch DataLoader with the same number of worker processes, and get
the same batched augmentation (flip, per-frame colour jitter, normalize) on the CPU (measured with and
without it: in training it runs on the GPU, here it runs in the main process and dominates).

    .venv/bin/python bench/bench_loader.py [--videos 8] [--batches 12] [--workers 1 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.memory import keep_freed_memory_in_worker  # noqa: E402
from preprocess import shards  # noqa: E402
from preprocess.index import Index, add_shard, save_index  # noqa: E402
from preprocess.streams import normalize  # noqa: E402
from train import augment  # noqa: E402
from train.clips import crop_offsets  # noqa: E402
from train.data import ClipSpec, VideoClipDataset  # noqa: E402
from train.methods.pace import PaceSampler  # noqa: E402
from train.methods.base import to_float_clip  # noqa: E402
from train.sampling import EpochBatchSampler, SampleKey  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HEIGHT, WIDTH, CLIP_LEN, CROP, QUALITY = 128, 171, 16, 112, 90
PACES = [1.0, 2.0, 3.0, 4.0]


def read_video(path: Path, n_frames: int) -> np.ndarray:
    """The first ``n_frames`` of ``path`` resized to HEIGHT x WIDTH: uint8 RGB [T, H, W, 3]."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < n_frames:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(cv2.resize(bgr, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(frames)


def write_inputs(videos: dict[str, np.ndarray], root: Path) -> tuple[Path, Path]:
    """The same frames as an HDF5-shard dataset (JPEG) and as JPEG folders; returns both roots."""
    dataset, folders = root / "dataset", root / "jpeg_folders"
    (dataset / "shards").mkdir(parents=True)
    part = dataset / "part.h5"
    settings = {"frames": {"image_format": "jpeg", "jpeg_quality": QUALITY, "size": [HEIGHT, WIDTH]}}
    with h5py.File(part, "w") as f:
        for video_id, frames in videos.items():
            writer = shards.VideoWriter(f, video_id, height=HEIGHT, width=WIDTH, streams=("frames",))
            folder = folders / video_id
            folder.mkdir(parents=True)
            for t, rgb in enumerate(frames):
                jpeg = shards.encode_jpeg(rgb, QUALITY)
                writer.add_frame(rgb, jpeg)
                (folder / f"{t + 1:06d}.jpg").write_bytes(jpeg.tobytes())
            writer.finish(fps=30.0, source=video_id, label=None, split="train")
        shards.write_file_attrs(f, ("frames",), settings, list(videos))
    shards.copy_videos([part], dataset / "shards/00000.h5", settings)
    part.unlink()
    index = Index()
    add_shard(index, dataset, "shards/00000.h5")
    save_index(dataset, index)
    return dataset, folders


class JpegFolderClips:
    """Baseline: the clips the pace method's ``VideoClipDataset`` draws, read as JPEG files from one folder per
    video."""

    def __init__(self, folders: Path, reference: VideoClipDataset) -> None:
        self.reference = reference
        self.folders = folders

    def __len__(self) -> int:
        return len(self.reference)

    def __getitem__(self, key: SampleKey) -> dict[str, np.ndarray]:
        video = self.reference.videos[self.reference.video_indices[key.index]]
        rng = np.random.default_rng([self.reference.seed, key.step, key.slot])
        indices, targets = self.reference.spec.sampler.draw(video.n_frames, rng)
        clips = []
        for row in indices:
            frames = np.stack([
                cv2.cvtColor(cv2.imread(str(self.folders / video.id / f"{t + 1:06d}.jpg")), cv2.COLOR_BGR2RGB)
                for t in row
            ])
            y, x = crop_offsets(frames.shape[1], frames.shape[2], CROP, rng, where=video.id)
            clips.append(frames[:, y : y + CROP, x : x + CROP])
        return {"frames": np.stack(clips), "pace": targets["pace"], "video": np.int64(self.reference.video_indices[key.index])}


def augment_batch(frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The pace task's batched augmentation: uint8 [B, 1, T, S, S, 3] -> normalized float [B, 3, T, S, S]."""
    clip = to_float_clip(frames.flatten(0, 1))
    clip = augment.horizontal_flip(clip, per_frame=False, generator=generator)
    clip = augment.color_jitter(clip, 0.8, 0.8, 0.8, 0.2, p=0.8, per_frame=True, generator=generator)
    return normalize(clip)


def clips_per_second(dataset: object, n_items: int, batch: int, batches: int, workers: int,
                     augmented: bool) -> float:
    """Clips/s of a DataLoader over ``dataset`` (followed by the augmentation if ``augmented``), after one
    warm-up batch."""
    sampler = EpochBatchSampler(n_items, batch, total_steps=batches + 1, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                        worker_init_fn=keep_freed_memory_in_worker)  # as train.loop
    generator = torch.Generator().manual_seed(0)
    started, clips = 0.0, 0
    for step, item in enumerate(loader):
        frames = augment_batch(item["frames"], generator) if augmented else item["frames"]
        if step == 0:
            started = time.perf_counter()
            continue
        clips += frames.shape[0]
    return clips / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    sources = sorted((DATA / "kinetics_style").rglob("*.mp4"))[: args.videos]  # 340x256 / 426x240, ~10 s
    sources += sorted((DATA / "arid/train").rglob("*.mp4"))[: max(0, args.videos - len(sources))]
    videos = {f"v{i:02d}": read_video(path, args.frames) for i, path in enumerate(sources)}
    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        dataset_dir, folders = write_inputs(videos, Path(tmp))
        spec = ClipSpec(PaceSampler(tuple(PACES), CLIP_LEN, views=1), crop_size=CROP)
        shard_clips = VideoClipDataset(dataset_dir, spec, seed=0)
        folder_clips = JpegFolderClips(folders, shard_clips)
        n = len(shard_clips)
        print(f"{n} videos x {args.frames} frames {HEIGHT}x{WIDTH}, clips {CLIP_LEN}x{CROP}x{CROP}, paces {PACES}, "
              f"batch {args.batch}, {args.batches} timed batches")
        for augmented in (False, True):
            for workers in args.workers:
                baseline = clips_per_second(folder_clips, n, args.batch, args.batches, workers, augmented)
                ours = clips_per_second(shard_clips, n, args.batch, args.batches, workers, augmented)
                print(f"{'with' if augmented else 'no'} CPU augmentation, workers={workers}: "
                      f"jpeg folders {baseline:6.1f} clips/s ({baseline / workers:6.1f}/worker) | "
                      f"hdf5 shards {ours:6.1f} clips/s ({ours / workers:6.1f}/worker) | ratio {ours / baseline:.2f}x")


if __name__ == "__main__":
    main()
