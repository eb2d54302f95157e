"""Time to write and read the dataset index (``index.json``) of a large dataset, and what the run's
throttled saves cost.

    .venv/bin/python bench/bench_index.py [--videos 100000] [--videos-per-shard 60] [--repeats 3]

Builds an index like a Kinetics-sized extraction's (every video in one shard per ~60 videos, three streams)
and times, in the same run: ``save_index`` as it is (compact JSON of the fields, no copy) against the
baseline it replaced (``dataclasses.asdict`` deep copy, indented JSON), and ``load_index``. Then the client
time the saves take over a whole run: after every shard (the baseline) or at most every 30 s
(``IndexSaver``), for a run finishing one shard per ``--shard-seconds``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from preprocess.index import FORMAT, SAVE_INTERVAL_S, VERSION, Index, index_path, load_index, save_index  # noqa: E402
from timing import best_time  # noqa: E402


def synthetic_index(n_videos: int, per_shard: int) -> Index:
    """An index of ``n_videos`` videos in 400 classes, ``per_shard`` videos per shard."""
    index = Index(source="/data/kinetics400/train", classes=[f"class_{c:03d}" for c in range(400)])
    for i in range(n_videos):
        label = f"class_{i % 400:03d}"
        video_id = f"{label}/{i:06d}_yt-{i * 7919 % 10**11:011d}"
        shard = f"shards/{i // per_shard:05d}.h5"
        index.videos[video_id] = {"path": f"/data/kinetics400/train/{video_id}.mp4", "label": label, "split": "train",
                                  "n_frames": 250, "fps": 25.0, "height": 128, "width": 171,
                                  "shards": {"frames": shard, "flow": shard, "diff": shard}}
    for j in range(-(-n_videos // per_shard)):
        index.shards[f"shards/{j:05d}.h5"] = {"streams": ["diff", "flow", "frames"], "videos": per_shard,
                                             "bytes": 268_435_456}
    return index


def save_index_baseline(root: Path, index: Index) -> None:
    """The first version: deep copy with ``dataclasses.asdict`` and indented JSON."""
    data = {"format": FORMAT, "version": VERSION, **dataclasses.asdict(index)}
    index_path(root).write_text(json.dumps(data, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--videos-per-shard", type=int, default=60)
    parser.add_argument("--shard-seconds", type=float, default=1.0,
                        help="one shard finished every so many seconds (100 DIS workers: ~1 s)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    index = synthetic_index(args.videos, args.videos_per_shard)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        baseline = best_time(lambda: save_index_baseline(root, index), args.repeats)
        baseline_mb = index_path(root).stat().st_size / 1e6
        now = best_time(lambda: save_index(root, index), args.repeats)
        now_mb = index_path(root).stat().st_size / 1e6
        load = best_time(lambda: load_index(root), args.repeats)
        assert load_index(root) == index
    shards = len(index.shards)
    run_seconds = shards * args.shard_seconds
    print(f"index of {args.videos:,} videos in {shards:,} shards (wall time, best of {args.repeats}):")
    print(f"  save: {now:.2f} s for {now_mb:.1f} MB vs baseline {baseline:.2f} s for {baseline_mb:.1f} MB "
          f"= {baseline / now:.1f}x faster; load: {load:.2f} s")
    every_shard = shards * baseline
    throttled = min(shards, run_seconds / SAVE_INTERVAL_S + 1) * now
    print(f"  a run finishing one shard every {args.shard_seconds:g} s ({run_seconds / 3600:.1f} h): saves after every "
          f"shard (baseline) take {every_shard / 3600:.2f} h of client time ({every_shard / run_seconds:.0%} of the run), "
          f"every {SAVE_INTERVAL_S:g} s {throttled:.0f} s ({throttled / run_seconds:.1%})")


if __name__ == "__main__":
    main()
