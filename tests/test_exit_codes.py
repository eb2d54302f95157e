"""The exit-code contract (README "Exit status"), per command: 130 when interrupted (SIGINT arrives as
KeyboardInterrupt; SIGTERM is turned into one), 2 with one line for a full disk. Real signals to running commands
are sent in tests/test_reliability_runs.py."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli as cli_module
from cli import cli

# command -> (the function it calls once its arguments are checked, its arguments with DIR for a folder)
ENTRY = {
    "extract-frames": ("preprocess.extract.extract", ["DIR", "DIR/out"]),
    "extract-flow": ("preprocess.extract.extract", ["DIR", "DIR/out"]),
    "inspect": ("preprocess.report.describe_dataset", ["DIR"]),
    "make-demo-data": ("preprocess.demo_data.make_demo_videos", ["DIR/demo"]),
    "make-labels": ("labels.make.make_labels", ["--data", "DIR", "--pipeline", "demo", "--task", "stats"]),
    "show-labels": ("labels.store.labels_root", ["--data", "DIR", "--out", "DIR/x.png"]),
    # patched where the command calls it: patching train.loop.train would leak into train.phases, which binds
    # ``train`` when it is first imported (inside this call), and break a later test of phases
    "train": ("commands.train.train_pipeline", ["--pipeline", "demo", "--data", "DIR", "--out", "DIR/run",
                                                "--device", "cpu"]),
    "eval": ("eval.evaluate.evaluate", ["--weights", "random", "--backbone", "c3d", "--data", "DIR", "--out", "DIR/rep",
                                        "--device", "cpu"]),
    "report": ("eval.report.compare_runs", ["DIR"]),
    "run": ("commands.run.run_pipeline", ["--pipeline", "demo", "DIR", "DIR/out"]),
    "demo": ("preprocess.demo_data.make_demo_videos", ["DIR/demo"]),
}


def test_every_command_is_covered() -> None:
    assert set(ENTRY) == set(cli.commands)


def _invoke(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException):
    target, args = ENTRY[command]
    module, name = target.rsplit(".", 1)

    def fail(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(f"{module}.{name}", fail)
    return CliRunner().invoke(cli, [command, *[a.replace("DIR", str(tmp_path)) for a in args]])


@pytest.mark.parametrize("command", sorted(ENTRY))
def test_an_interrupted_command_exits_130(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _invoke(command, tmp_path, monkeypatch, KeyboardInterrupt())
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output and "Aborted!" not in result.output


@pytest.mark.parametrize("command", ["extract-flow", "make-labels", "train", "eval", "run"])
def test_a_full_disk_is_one_line_and_exit_2(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "big.h5"))
    result = _invoke(command, tmp_path, monkeypatch, full)
    assert result.exit_code == 2, result.output
    assert result.output == f"Error: {tmp_path / 'big.h5'}: no space left on the disk; free space and run the same " \
                            "command again (nothing half-written is kept)\n"


def test_sigterm_becomes_an_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    def terminated(*_args, **_kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt")

    monkeypatch.setattr("preprocess.report.describe_dataset", terminated)
    before = signal.getsignal(signal.SIGTERM)
    result = CliRunner().invoke(cli_module.cli, ["inspect", str(tmp_path)])
    assert result.exit_code == 130 and "interrupted" in result.output
    assert signal.getsignal(signal.SIGTERM) == before  # restored after the command


@pytest.mark.parametrize(("error", "code", "line"), [
    (ValueError("/data/ds: evaluation needs labelled videos of at least 2 classes, found ['B']"), 2,
     "Error: /data/ds: evaluation needs labelled videos of at least 2 classes, found ['B']\n"),
    (FileNotFoundError("/data/ds/labels/fisher/fisher.h5: no descriptors"), 2,
     "Error: /data/ds/labels/fisher/fisher.h5: no descriptors\n"),
    (KeyError("/data/ds: no video 'x' in this dataset"), 2, "Error: /data/ds: no video 'x' in this dataset\n"),
])
def test_run_reports_a_later_stage_refusal_in_one_line(error: BaseException, code: int, line: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    result = _invoke("run", tmp_path, monkeypatch, error)
    assert result.exit_code == code and result.output == line, result.output


def test_run_exits_1_when_training_diverges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from train.loop import TrainingDiverged

    result = _invoke("run", tmp_path, monkeypatch, TrainingDiverged("loss is nan at step 3"))
    assert result.exit_code == 1 and result.output == "Error: loss is nan at step 3\n", result.output


@pytest.mark.parametrize("command", [
    ["eval", "--weights", "random", "--backbone", "c3d", "--data", "DIR", "--out", "DIR/file/report"],
    ["train", "--pipeline", "demo", "--data", "DIR", "--out", "DIR/file/run"],
    ["extract-frames", "DIR/in", "DIR/file/dataset"],
])
def test_an_output_below_a_file_is_one_line_and_exit_2(command: list[str], tmp_path: Path, shared_data: Path) -> None:
    (tmp_path / "file").write_text("")
    (tmp_path / "in").mkdir()
    (tmp_path / "in/clip.mp4").symlink_to(shared_data / "arid/train/Jump/Jump_8_3.mp4")
    result = CliRunner().invoke(cli, [a.replace("DIR", str(tmp_path)) for a in command])
    out = command[-1].replace("DIR", str(tmp_path))
    assert result.exit_code == 2 and result.output == (
        f"Error: {out}: a part of this path is a file, not a folder; choose another folder\n"), result.output
