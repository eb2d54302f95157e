"""Fault injection: extraction -> labels -> training under kills, a full disk and a truncated shard.

Each round starts from empty folders, runs the three stages as a user would (``cli.py`` subprocesses) with one
fault injected at a random point of a random stage, then runs the plain commands again and checks that they
complete (exit 0), that every input video is in the dataset exactly once per stream, and that the labels are
byte-identical to those of an undisturbed run.

    python bench/faults.py --rounds 8 --work /tmp/vssl_faults

Faults: SIGKILL of the client (the command itself), of a Dask worker process or of a sandbox process, at a
random time; a full disk (the dataset on a small tmpfs, where this process may mount one, grown afterwards);
a shard truncated after the run. :func:`injected` is also a sandbox function the tests use to fail on purpose.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CLIPS = ["Turn/Turn_1_42.mp4", "Turn/Turn_1_47.mp4", "Turn/Turn_7_38.mp4", "Turn/Turn_1_1.mp4",
         "Walk/Walk_10_1.mp4", "Run/Run_1_1.mp4"]
SETS = ["preprocess.size=[48, 64]", "preprocess.flow.algo=dis", "preprocess.flow.dis_preset=fast",
        "preprocess.shard_mb=0.3", "crop_size=32", "labels.crop_variants=[[8, 16, false], [8, 16, true]]",
        "train.stats.pacing={kind: single_step, start_fraction: 0.5, step_length: 2}",
        "train.backbone_args={channels: [4, 8, 8, 16, 16]}", "train.batch_size=4", "train.num_workers=0",
        "train.max_steps=6", "train.checkpoint_every=2"]
KINDS = ("kill-client", "kill-worker", "kill-sandbox", "disk-full", "truncate-shard")
STAGES = ("extract", "labels", "train")


def injected(kind: str, tmp: str | None) -> dict[str, Any]:
    """A sandbox function that fails as ``kind`` says: 'bad-input' (ValueError), 'memory' (MemoryError),
    'disk' (OSError ENOSPC), 'kill' (the process SIGKILLs itself), 'hang' (sleeps a minute); 'ok' writes ``tmp``."""
    if kind == "bad-input":
        raise ValueError("no frames decoded")
    if kind == "memory":
        raise MemoryError()
    if kind == "disk":
        raise OSError(28, "No space left on device", tmp)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "hang":
        time.sleep(60)
    if tmp is not None:
        Path(tmp).write_bytes(b"done")
    return {"kind": kind}


def stage_command(stage: str, inputs: Path, dataset: Path, run: Path) -> list[str]:
    """The plain command of ``stage`` (train always with --resume: from scratch when there is no checkpoint)."""
    sets = [a for s in SETS for a in ("--set", s)]
    cli = [sys.executable, str(ROOT / "cli.py")]
    if stage == "extract":
        return [*cli, "extract-flow", str(inputs), str(dataset), "--pipeline", "demo", "--workers", "2",
                "--no-progress", *sets]
    if stage == "labels":
        return [*cli, "make-labels", "--data", str(dataset), "--pipeline", "demo", "--workers", "2", "--no-progress",
                *sets]
    return [*cli, "train", "--pipeline", "demo", "--data", str(dataset), "--out", str(run), "--device", "cpu",
            "--resume", "--no-progress", *sets]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def run_stage(stage: str, inputs: Path, dataset: Path, run: Path) -> subprocess.CompletedProcess:
    return subprocess.run(stage_command(stage, inputs, dataset, run), capture_output=True, text=True, env=_env(),
                          timeout=600)


def _descendants(pid: int) -> list[Any]:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _is_sandbox(proc: Any) -> bool:
    try:
        return "common.sandbox import serve" in " ".join(proc.cmdline())
    except Exception:  # gone meanwhile
        return False


def _parent(proc: Any) -> int | None:
    try:
        return proc.ppid()
    except Exception:  # gone meanwhile
        return None


def kill_during(stage: str, kind: str, delay: float, inputs: Path, dataset: Path, run: Path) -> str:
    """Start ``stage`` and SIGKILL the client, a worker or a sandbox process after ``delay`` s; returns what died."""
    proc = subprocess.Popen(stage_command(stage, inputs, dataset, run), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env(), start_new_session=True)
    deadline = time.monotonic() + delay
    victim = "nothing (the stage ended first)"
    while proc.poll() is None:
        if time.monotonic() >= deadline:
            if kind == "kill-client":
                proc.kill()
                victim = "the client"
                break
            found = [p for p in _descendants(proc.pid) if _is_sandbox(p) == (kind == "kill-sandbox")]
            if kind == "kill-worker":  # worker processes: children of a nanny, not sandboxes
                found = [p for p in found if _parent(p) not in (None, proc.pid)]
            if found:
                target = random.choice(found)
                try:
                    target.kill()
                    victim = f"{kind[5:]} process {target.pid}"
                except Exception:
                    continue
                break
        time.sleep(0.02)
    try:
        proc.wait(timeout=600)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # what a killed client leaves behind (its local cluster)
        except ProcessLookupError:
            pass
    return victim


def video_counts(dataset: Path) -> dict[str, collections.Counter]:
    """``{stream: Counter(video id -> number of shards holding it)}`` read from the shard files themselves."""
    import h5py

    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for shard in sorted((dataset / "shards").glob("*.h5")):
        with h5py.File(shard, "r") as f:
            for stream in json.loads(f.attrs["streams"]):
                counts[stream].update(json.loads(f.attrs["videos"]))
    return counts


def label_bytes(dataset: Path) -> dict[str, bytes]:
    """Every array of every consolidated labels file, as bytes (``{family/dataset: bytes}``)."""
    import h5py

    def as_bytes(value: Any) -> bytes:
        if getattr(value, "dtype", None) is not None and value.dtype.kind == "O":  # variable-length strings
            return b"\0".join(v if isinstance(v, bytes) else str(v).encode() for v in value.ravel())
        return value.tobytes()

    out = {}
    for path in sorted((dataset / "labels").glob("*/*.h5")):
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: out.__setitem__(f"{path.stem}/{name}", as_bytes(obj[()]))
                         if isinstance(obj, h5py.Dataset) else None)
    return out


def check(inputs: Path, dataset: Path, run: Path, reference: dict[str, bytes]) -> list[str]:
    """Problems after the plain re-run (empty when the round survived)."""
    problems = []
    ids = sorted(str(p.relative_to(inputs).with_suffix("")) for p in inputs.rglob("*.mp4"))
    for stream, counts in video_counts(dataset).items():
        if sorted(counts) != ids or set(counts.values()) != {1}:
            problems.append(f"{stream}: videos in shards {dict(counts)}, expected each of {ids} once")
    if label_bytes(dataset) != reference:
        problems.append("labels differ from the undisturbed run")
    if not (run / "backbone.pt").is_file():
        problems.append("no backbone.pt")
    return problems


def _mount_tmpfs(folder: Path, size_kb: int, remount: bool = False) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    options = f"{'remount,' if remount else ''}size={size_kb}k"
    args = ["mount", "-o", options, str(folder)] if remount else ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)]
    return subprocess.run(args, capture_output=True).returncode == 0


def one_round(number: int, work: Path, inputs: Path, reference: dict[str, bytes], times: dict[str, float],
              data_kb: int, rng: random.Random) -> tuple[str, list[str]]:
    """Run the stages with one fault, re-run them plainly, check; returns (what was done, problems)."""
    folder = work / f"round_{number}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    dataset, run = folder / "dataset", folder / "run"
    kind, stage = rng.choice(KINDS), rng.choice(STAGES)
    if kind in ("kill-worker", "kill-sandbox"):
        stage = rng.choice(STAGES[:2])  # training runs in one process
    mounted = False
    if kind == "disk-full":
        stage = "extract"
        mounted = _mount_tmpfs(dataset, max(64, data_kb // 2))
        if not mounted:
            kind = "kill-client"  # no tmpfs here: another fault instead
    try:
        for before in STAGES[:STAGES.index(stage)]:
            assert run_stage(before, inputs, dataset, run).returncode == 0
        if kind == "truncate-shard":
            for each in STAGES:
                run_stage(each, inputs, dataset, run)
            shard = rng.choice(sorted((dataset / "shards").glob("*.h5")))
            shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
            done = f"truncated {shard.name} after a complete run"
        elif kind == "disk-full":
            first = run_stage("extract", inputs, dataset, run)
            done = f"extraction on a {max(64, data_kb // 2)} kB tmpfs: exit {first.returncode}: " \
                   f"{(first.stderr.strip().splitlines() or [''])[-1][:160]}"
            _mount_tmpfs(dataset, data_kb * 4, remount=True)
        else:
            delay = rng.uniform(0.3, times[stage])
            victim = kill_during(stage, kind, delay, inputs, dataset, run)
            done = f"{kind} in {stage} after {delay:.1f} s: killed {victim}"
        problems = []
        for each in STAGES:
            again = run_stage(each, inputs, dataset, run)
            if again.returncode != 0:
                problems.append(f"re-run of {each}: exit {again.returncode}: {again.stderr.strip()[-300:]}")
                break
        problems += [] if problems else check(inputs, dataset, run, reference)
        return done, problems
    finally:
        if mounted:
            subprocess.run(["umount", str(dataset)], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--work", type=Path, default=Path("/tmp/vssl_faults"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    random.seed(args.seed)
    inputs = args.work / "videos"
    shutil.rmtree(args.work, ignore_errors=True)
    for clip in CLIPS:
        if not (SHARED / "arid/train" / clip).is_file():
            raise SystemExit(f"{SHARED / 'arid/train' / clip}: missing input clip")
        (inputs / clip).parent.mkdir(parents=True, exist_ok=True)
        (inputs / clip).symlink_to(SHARED / "arid/train" / clip)
    clean = args.work / "clean"
    times = {}
    for stage in STAGES:
        started = time.monotonic()
        result = run_stage(stage, inputs, clean / "dataset", clean / "run")
        times[stage] = time.monotonic() - started
        if result.returncode != 0:
            raise SystemExit(f"undisturbed {stage} failed: {result.stderr}")
    reference = label_bytes(clean / "dataset")
    data_kb = sum(p.stat().st_size for p in (clean / "dataset").rglob("*") if p.is_file()) // 1024
    print(f"undisturbed run: {', '.join(f'{s} {t:.1f} s' for s, t in times.items())}; dataset {data_kb} kB")
    survived = 0
    for number in range(args.rounds):
        done, problems = one_round(number, args.work, inputs, reference, times, data_kb, rng)
        survived += not problems
        print(f"round {number}: {done}: {'survived' if not problems else 'FAILED: ' + '; '.join(problems)}", flush=True)
    print(f"{survived}/{args.rounds} rounds survived")
    raise SystemExit(0 if survived == args.rounds else 1)


if __name__ == "__main__":
    main()
