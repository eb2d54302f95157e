"""Benchmark of evaluation feature extraction on real ARID clips (prints ratios against baselines).

1. Reading 10 uniformly spaced 16-frame clips per video: one shared read of the covered frames
   (``eval.video_clips.uniform_clips``) vs a read per clip (baseline).
2. A second evaluation with the same weights: feature-cache hit vs extraction (baseline).

Run: ``.venv/bin/python bench/eval_features.py`` (about a minute on 2 cores).
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import cv2
import h5py
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval.clips import clip_indices, clip_starts  # noqa: E402
from eval.features import cached_features  # noqa: E402
from eval.settings import ClipSettings  # noqa: E402
from eval.video_clips import read_clip, uniform_clips  # noqa: E402
from preprocess import shards  # noqa: E402
from preprocess.dataset import Dataset  # noqa: E402
from preprocess.index import Index, add_shard, save_index  # noqa: E402
from timing import best_time  # noqa: E402  (bench/ is on sys.path when a script in it runs)
from train.backbones import build_backbone  # noqa: E402

ARID = Path(__file__).resolve().parents[2] / "shared" / "data" / "arid" / "train"
N_VIDEOS, N_FRAMES, SIZE = 6, 60, (128, 171)


def write_dataset(root: Path) -> None:
    """JPEG frames (quality 90, as extracted) of the first frames of a few real clips."""
    part = root / "part.h5"
    ids = []
    with h5py.File(part, "w") as f:
        for source in sorted(ARID.glob("*/*.mp4"))[::25][:N_VIDEOS]:
            cap = cv2.VideoCapture(str(source))
            video_id = f"{source.parent.name}/{source.stem}"
            writer = shards.VideoWriter(f, video_id, height=SIZE[0], width=SIZE[1], streams=("frames",))
            while writer.n_frames < N_FRAMES:
                ok, bgr = cap.read()
                if not ok:
                    break
                rgb = cv2.cvtColor(cv2.resize(bgr, SIZE[::-1], interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
                writer.add_frame(rgb, shards.encode_jpeg(rgb, 90))
            writer.finish(fps=30.0, source=str(source), label=source.parent.name, split="train")
            ids.append(video_id)
        settings = {"frames": {"image_format": "jpeg"}}
        shards.write_file_attrs(f, ("frames",), settings, ids)
    (root / "shards").mkdir()
    shards.copy_videos([part], root / "shards/00000.h5", settings)
    part.unlink()
    index = Index(classes=sorted({i.split("/")[0] for i in ids}))
    add_shard(index, root, "shards/00000.h5")
    save_index(root, index)


def main() -> None:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        root.mkdir()
        write_dataset(root)
        ds = Dataset(root)
        videos = ds.videos

        def per_clip() -> None:
            for v in videos:
                for s in clip_starts(v.n_frames, 16, 10):
                    read_clip(ds, "frames", v.id, clip_indices(s, 16, v.n_frames), 112)

        def shared() -> None:
            for v in videos:
                uniform_clips(ds, "frames", v.id, v.n_frames, 10, 16, 112)

        baseline, ours = best_time(per_clip, 3), best_time(shared, 3)
        print(f"clip reading, {len(videos)} videos x 10 clips x 16 frames ({N_FRAMES} frames each, JPEG):")
        print(f"  read per clip (baseline) {baseline:.3f} s, shared read {ours:.3f} s, speed-up x{baseline / ours:.2f}")

        torch.manual_seed(0)
        backbone = build_backbone("c3d").eval()
        clips = ClipSettings(clips_per_video=10, batch_size=10)
        ids = [v.id for v in videos]
        cache = Path(tmp) / "cache"
        start = time.perf_counter()
        cached_features(backbone, "bench", ds, root, ids, "pool5", "frames", clips, cache)
        extraction = time.perf_counter() - start
        hit = best_time(lambda: cached_features(backbone, "bench", ds, root, ids, "pool5", "frames", clips, cache), 3)
        n_clips = len(ids) * clips.clips_per_video
        print(f"c3d pool5 features, {n_clips} clips of 16x112x112 on CPU ({torch.get_num_threads()} threads):")
        print(f"  extraction (baseline) {extraction:.2f} s ({n_clips / extraction:.1f} clips/s), cache hit "
              f"{hit * 1000:.1f} ms, speed-up x{extraction / hit:.0f}")


if __name__ == "__main__":
    main()
