"""Trustworthy datasets (issue 15): damaged shards named, verified and repaired; source fingerprints; transient
faults retried a bounded number of runs; missing list entries as failed inputs; impossible settings, unwritable
folders, an unreachable scheduler and a full disk refused with one line."""
from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from click.testing import CliRunner
from distributed import Client

from bench.faults import injected, video_counts
from cli import cli
from commands.contract import os_problem
from commands.pipeline import load_pipeline
from common.errors import ConfigError, Unwritable
from common.locks import exclusive
from common.runner import (MAX_TRANSIENT_ATTEMPTS, ClusterSettings, Task, failure_record, open_client, retry_now,
                           run_task)
from preprocess import extract as extract_module
from preprocess.dataset import Dataset
from preprocess.extract import SourceChanged, extract, format_summary
from preprocess.index import DatasetError, load_index, save_index
from preprocess.inputs import MISSING

WORDS = ["again", "bird", "book", "eat"]
SMALL = {"size": [32, 48], "every": 3, "flow": {"algo": "dis", "dis_preset": "ultrafast"}, "shard_mb": 0.02}


def _settings(**extra: object):
    return load_pipeline("demo", overrides={"preprocess": {**SMALL, **extra}}).preprocess


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """Worker threads in this process: extraction's own code (packing) can be patched; videos still run in
    sandbox processes."""
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as c:
        yield c


def _inputs(shared_data: Path, folder: Path, words: list[str]) -> Path:
    for word in words:
        (folder / word).mkdir(parents=True, exist_ok=True)
        (folder / word / f"{word}.mkv").symlink_to(shared_data / f"asl_gestures/{word}/{word}.mkv")
    return folder


def _frames(out: Path) -> dict[str, np.ndarray]:
    with Dataset(out) as ds:
        return {v.id: ds.read_frames(v.id) for v in ds.videos}


def test_damaged_shards_are_named_verified_and_repaired(client: Client, shared_data: Path, tmp_path: Path) -> None:
    src = _inputs(shared_data, tmp_path / "in", WORDS)
    out = tmp_path / "ds"
    first = extract(src, out, _settings(), client=client, progress=False)
    assert first.ok and len(first.new_shards) >= 3
    before = _frames(out)
    truncated, deleted = out / first.new_shards[0], out / first.new_shards[1]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    deleted.unlink()
    with pytest.raises(DatasetError, match="run the same extract command again") as refused:
        Dataset(out)  # what training and labels open first
    assert f"{truncated} ({truncated.stat().st_size} bytes, the index says" in str(refused.value)
    assert f"{deleted} (missing)" in str(refused.value)
    for args in ([str(out)], [str(out), "--verify"]):
        report = CliRunner().invoke(cli, ["inspect", *args])
        assert report.exit_code == 2 and "2 damaged shard(s)" in report.output, report.output
        assert f"{truncated}: " in report.output and f"{deleted}: missing" in report.output
    again = extract(src, out, _settings(), client=client, progress=False)
    assert again.ok and sorted(again.repaired) == sorted(first.new_shards[:2]) and again.extracted >= 1
    assert "repaired 2 damaged shard(s)" in format_summary(again)
    counts = video_counts(out)
    assert all(sorted(c) == [f"{w}/{w}" for w in WORDS] and set(c.values()) == {1} for c in counts.values()), counts
    after = _frames(out)
    assert all(np.array_equal(before[v], after[v]) for v in before)
    verified = CliRunner().invoke(cli, ["inspect", str(out), "--verify"])
    assert verified.exit_code == 0 and f"verified: every dataset of the {len(WORDS)} indexed videos" in verified.output


def test_a_different_clip_under_the_same_name_is_refused(client: Client, shared_data: Path, tmp_path: Path) -> None:
    first_in = _inputs(shared_data, tmp_path / "a", ["eat"])
    out = tmp_path / "ds"
    assert extract(first_in, out, _settings(), client=client, progress=False).ok
    other = tmp_path / "b" / "eat"
    other.mkdir(parents=True)
    (other / "eat.mkv").write_bytes((shared_data / "asl_gestures/yes/yes.mkv").read_bytes())  # same id, other clip
    index_before = (out / "index.json").read_bytes()
    with pytest.raises(SourceChanged, match=rf"'eat/eat' \({other / 'eat.mkv'}: \d+ bytes; the dataset's was extracted "
                                            rf"from {first_in / 'eat/eat.mkv'}"):
        extract(tmp_path / "b", out, _settings(), client=client, progress=False)
    assert (out / "index.json").read_bytes() == index_before
    same = tmp_path / "c" / "eat"  # a copy with a new modification time: the same source
    same.mkdir(parents=True)
    (same / "eat.mkv").write_bytes((shared_data / "asl_gestures/eat/eat.mkv").read_bytes())
    assert extract(tmp_path / "c", out, _settings(), client=client, progress=False).already_done == 1


def test_transient_failures_are_retried_by_later_runs_a_bounded_number_of_times(
        client: Client, shared_data: Path, tmp_path: Path) -> None:
    src = _inputs(shared_data, tmp_path / "in", ["again", "bird", "book"])
    listing = tmp_path / "list.txt"
    listing.write_text("in/again/again.mkv\n")
    out = tmp_path / "ds"
    assert extract(listing, out, _settings(), client=client, progress=False).ok
    index = load_index(out)
    index.failures = {  # as a killed worker and an out-of-memory sandbox leave them
        "in/bird/bird": {"path": str(src / "bird/bird.mkv"), "reason": "KilledWorker", "kind": "transient", "attempts": 1},
        "in/book/book": {"path": str(src / "book/book.mkv"), "reason": "MemoryError: ", "kind": "transient",
                         "attempts": MAX_TRANSIENT_ATTEMPTS},
    }
    save_index(out, index)
    listing.write_text("in/again/again.mkv\nin/bird/bird.mkv\nin/book/book.mkv\nin/gone/gone.mkv\n")
    second = extract(listing, out, _settings(), client=client, progress=False)
    assert second.extracted == 1 and sorted(second.failed) == ["in/book/book", "in/gone/gone"]  # bird retried by itself
    assert second.failed["in/gone/gone"]["reason"] == MISSING and second.failed["in/gone/gone"]["kind"] == "permanent"
    text = format_summary(second)
    assert f"{tmp_path / 'in/gone/gone.mkv'}: {MISSING}" in text and "--retry-failed" in text
    third = extract(listing, out, _settings(), client=client, progress=False, retry_failed=True)
    assert sorted(third.failed) == ["in/gone/gone"] and third.extracted == 1
    assert sorted(v.id for v in Dataset(out).videos) == ["in/again/again", "in/bird/bird", "in/book/book"]


def test_runner_tells_a_disturbed_run_from_a_bad_input() -> None:
    def outcome(kind: str, limit: float | None = 30.0):
        return run_task(injected, Task(kind, f"/videos/{kind}.mp4", None, kind), limit)

    assert not outcome("bad-input").transient and "ValueError: no frames decoded" in outcome("bad-input").reason
    for kind in ("memory", "disk", "kill"):
        assert outcome(kind).status == "failed" and outcome(kind).transient, kind
    hung = outcome("hang", 1.0)
    assert hung.transient and "timed out after 1 s" in hung.reason
    assert outcome("ok").status == "done"
    record = None
    for attempt in range(1, MAX_TRANSIENT_ATTEMPTS + 1):
        assert retry_now(record, False)
        record = failure_record(outcome("kill"), record)
        assert record["attempts"] == attempt and record["kind"] == "transient"
    assert not retry_now(record, False) and retry_now(record, True)
    assert not retry_now(failure_record(outcome("bad-input"), None), False)


@pytest.mark.parametrize("flags", [["--size", "0", "0"], ["--size", "-4", "64"], ["--fps", "0"],
                                   ["--short-side", "0"], ["--every", "0"]])
def test_impossible_settings_are_refused_before_anything_is_written(flags: list[str], tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = CliRunner().invoke(cli, ["extract-frames", str(tmp_path), str(out), "--pipeline", "demo", *flags])
    assert result.exit_code == 2 and "demo.preprocess: " in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_malformed_set_value_names_the_key(tmp_path: Path) -> None:
    for command in (["train", "--pipeline", "demo", "--data", str(tmp_path), "--out", str(tmp_path / "run")],
                    ["make-labels", "--data", str(tmp_path)], ["extract-frames", str(tmp_path), str(tmp_path / "ds")]):
        result = CliRunner().invoke(cli, [*command, "--set", "train.lr=[1"])
        assert result.exit_code == 2, result.output
        assert "--set train.lr: '[1' is not a valid YAML value (expected ',' or ']'" in result.output
    assert not (tmp_path / "run").exists() and not (tmp_path / "ds").exists()


def test_unreachable_scheduler_fails_fast_naming_the_address() -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 1 s"):
        with open_client(ClusterSettings(connect_timeout_s=1.0), scheduler="tcp://127.0.0.1:9"):
            pass
    assert time.monotonic() - started < 10


def test_unwritable_output_and_lock_are_one_line_refusals(tmp_path: Path) -> None:
    with pytest.raises(Unwritable, match=r"/sys/vssl.lock: cannot take the lock"):
        with exclusive("/sys/vssl.lock", RuntimeError("busy")):
            pass
    result = CliRunner().invoke(cli, ["make-demo-data", "/sys/vssl_demo", "--videos-per-class", "1",
                                      "--test-per-class", "0"])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "/sys/vssl_demo" in result.output, result.output


def test_a_full_disk_while_packing_leaves_nothing_half_written(client: Client, shared_data: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    src = _inputs(shared_data, tmp_path / "in", ["again", "bird"])
    out = tmp_path / "ds"
    real = extract_module.shards.copy_videos

    def full(parts, tmp, settings):
        Path(tmp).write_bytes(b"\0" * 1000)  # a shard cut off by the full disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    monkeypatch.setattr(extract_module.shards, "copy_videos", full)
    with pytest.raises(OSError) as caught:
        extract(src, out, _settings(), client=client, progress=False)
    message = os_problem(caught.value)
    assert message.startswith(f"{out / 'shards'}/") and "no space left on the disk; free space" in message
    assert not [p for p in (out / "shards").iterdir()]  # no temporary, no shard
    monkeypatch.setattr(extract_module.shards, "copy_videos", real)
    again = extract(src, out, _settings(), client=client, progress=False)
    assert again.ok and sorted(v.id for v in Dataset(out).videos) == ["again/again", "bird/bird"]
    assert json.loads((out / "index.json").read_text())["failures"] == {}


def test_every_stored_stream_has_its_datasets_checked() -> None:
    """A stream the integrity check does not know would be checked as frames and its shard called damaged."""
    from preprocess import integrity, shards

    assert set(shards.STREAMS) - {"frames"} == set(integrity._DATASETS)
