"""Trustworthy run folders (issue 15): train and eval lock --out, --resume refuses changed settings by key and
records the resumable ones, damaged shards named by training and labels, a full disk while checkpointing,
weights that are not a checkpoint."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cli import cli
from commands.pipeline import load_cluster, load_pipeline
from common.locks import exclusive
from common.settings import parse_overrides
from labels.make import make_labels
from preprocess.extract import extract

REPO = Path(__file__).resolve().parents[1]
CLIPS = ["Turn/Turn_1_42.mp4", "Turn/Turn_1_47.mp4"]
BASE = ["preprocess.size=[48, 64]", "preprocess.flow.algo=dis", "preprocess.flow.dis_preset=ultrafast", "crop_size=32",
        "labels.crop_variants=[[8, 16, false], [8, 16, true]]",
        "train.stats.pacing={kind: single_step, start_fraction: 0.5, step_length: 2}",
        "train.backbone_args={channels: [4, 8, 8, 16, 16]}", "train.batch_size=4", "train.num_workers=0",
        "train.log_every=1", "train.checkpoint_every=1",
        "train.optimizer=sgd", "train.lr=0.0005", "train.schedule={kind: step, step_epochs: 6, gamma: 0.1}"]


@pytest.fixture(scope="module")
def dataset_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reliab_runs")
    listing = root / "videos.txt"
    listing.write_text("".join(f"{shared_data / 'arid/train' / clip}\n" for clip in CLIPS))
    pipeline = load_pipeline("demo", overrides=parse_overrides(BASE))
    assert extract(listing, root / "dataset", pipeline.preprocess, workers=1, progress=False).ok
    make_labels(root / "dataset", pipeline.labels, ["stats", "curriculum"], cluster=load_cluster(), workers=1, progress=False)
    return root / "dataset"


def _train(data: Path, out: Path, *sets: str, resume: bool = False):
    args = ["train", "--pipeline", "demo", "--data", str(data), "--out", str(out), "--device", "cpu", "--no-progress"]
    return CliRunner().invoke(cli, [*args, *(["--resume"] if resume else []),
                                    *[a for s in [*BASE, *sets] for a in ("--set", s)]])


def test_a_second_train_run_into_a_held_folder_is_refused(dataset_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    with exclusive(out / ".lock", RuntimeError("held")):  # the first run
        second = _train(dataset_dir, out, "train.max_steps=1")
    assert second.exit_code == 2 and f"{out}: another train run is writing this folder" in second.output
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


def test_resume_refuses_changed_settings_by_key_and_records_more_steps(dataset_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = _train(dataset_dir, out, "train.max_steps=2")
    assert first.exit_code == 0, first.output
    config = (out / "config.yaml").read_text()
    changed = _train(dataset_dir, out, "train.max_steps=2", "train.lr=0.01", "train.batch_size=2", resume=True)
    assert changed.exit_code == 2, changed.output
    assert "train.batch_size: 4 in the run, 2 now; train.lr: 0.0005 in the run, 0.01 now" in changed.output
    assert (out / "config.yaml").read_text() == config and not (out / "resumes.jsonl").exists()
    more = _train(dataset_dir, out, "train.max_steps=3", resume=True)
    assert more.exit_code == 0, more.output
    assert "resumed with train.max_steps: 2 -> 3" in more.output
    history = [json.loads(line) for line in (out / "resumes.jsonl").read_text().splitlines()]
    assert [(h["at_step"], h["changes"]) for h in history] == [(2, {"train.max_steps": [2, 3]})]
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["max_steps"] == 3
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    cosine = _train(dataset_dir, out, "train.max_steps=4", "train.schedule.kind=cosine", resume=True)
    assert cosine.exit_code == 2 and "train.schedule.kind: 'step' in the run, 'cosine' now" in cosine.output
    latest = sorted((out / "checkpoints").glob("*.pt"))[-1]
    latest.write_bytes(b"\0" * 64)  # damaged since the last run
    broken = _train(dataset_dir, out, "train.max_steps=5", resume=True)
    assert broken.exit_code == 2 and f"{latest}" in broken.output
    assert len((out / "resumes.jsonl").read_text().splitlines()) == 1  # the refused resume is not recorded


def test_a_full_disk_while_checkpointing_leaves_the_last_good_checkpoint(dataset_dir: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    out = tmp_path / "run"
    assert _train(dataset_dir, out, "train.max_steps=1").exit_code == 0
    real_save = torch.save

    def full(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"\0" * 100)  # cut off by the full disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(torch, "save", full)
    stopped = _train(dataset_dir, out, "train.max_steps=2", resume=True)
    assert stopped.exit_code == 2, stopped.output
    assert "no space left on the disk; free space and run the same command again" in stopped.output
    assert len(stopped.output.strip().splitlines()) == 2  # the resume note, then the one-line error
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000001.pt"]
    monkeypatch.setattr(torch, "save", real_save)
    assert _train(dataset_dir, out, "train.max_steps=2", resume=True).exit_code == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000001.pt", "step_00000002.pt"]


def test_training_and_labels_name_a_damaged_shard(dataset_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "dataset"
    shutil.copytree(dataset_dir, copy)
    shard = sorted((copy / "shards").glob("*.h5"))[0]
    shard.write_bytes(shard.read_bytes()[:4096])
    trained = _train(copy, tmp_path / "run", "train.max_steps=1")
    assert trained.exit_code == 2 and f"{shard} (4096 bytes, the index says" in trained.output
    assert "run the same extract command again" in trained.output and "Traceback" not in trained.output
    labelled = CliRunner().invoke(cli, ["make-labels", "--data", str(copy), "--pipeline", "demo", "--labels-dir",
                                        str(tmp_path / "labels"), "--no-progress", "--workers", "1"])
    assert labelled.exit_code == 2 and str(shard) in labelled.output


def test_eval_locks_its_folder_and_names_a_file_that_is_not_a_checkpoint(dataset_dir: Path, tmp_path: Path) -> None:
    weights = tmp_path / "notes.pt"
    weights.write_text("these are not weights\n")
    args = ["eval", "--weights", str(weights), "--data", str(dataset_dir), "--task", "retrieval", "--device", "cpu",
            "--no-progress", "--no-figures"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "report")])
    assert result.exit_code == 2 and f"{weights}: not a PyTorch backbone file" in result.output, result.output
    assert "weights_only" not in result.output and "Traceback" not in result.output
    held = tmp_path / "held"
    held.mkdir()
    with exclusive(held / ".lock", RuntimeError("held")):
        busy = CliRunner().invoke(cli, [*args, "--out", str(held)])
    assert busy.exit_code == 2 and f"{held}: another eval run is writing this report folder" in busy.output


def _interrupt_when(args: list[str], ready: Path, signum: int) -> subprocess.CompletedProcess:
    """Run ``cli.py ARGS``, send ``signum`` once ``ready`` exists (the command is at work), wait for its end."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_real_sigterm_and_sigint_exit_130(dataset_dir: Path, tmp_path: Path) -> None:
    sets = [a for s in BASE for a in ("--set", s)]
    training = _interrupt_when(["train", "--pipeline", "demo", "--data", str(dataset_dir), "--out", str(tmp_path / "run"),
                                "--device", "cpu", "--no-progress", *sets, "--set", "train.max_steps=10000",
                                "--set", "train.epochs=10000"],
                               tmp_path / "run" / "checkpoints" / "step_00000001.pt", signal.SIGTERM)
    assert training.returncode == 130 and "interrupted" in training.stderr, training.stderr[-2000:]
    assert "Aborted!" not in training.stderr
    labelling = _interrupt_when(["make-labels", "--data", str(dataset_dir), "--pipeline", "demo", "--labels-dir",
                                 str(tmp_path / "labels"), "--workers", "1", "--no-progress", *sets],
                                tmp_path / "labels" / "stats" / "parts", signal.SIGINT)
    assert labelling.returncode == 130 and "interrupted" in labelling.stderr, labelling.stderr[-2000:]
