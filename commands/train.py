"""Command-line commands of the train stage (assembled by cli.py)."""
from __future__ import annotations

from pathlib import Path

import click

import contextlib
import json
import os

from commands.pipeline import load_pipeline, pipeline_record, train_pipeline
from common.errors import ConfigError, Refused
from common.locks import exclusive
from common.settings import merge, parse_overrides

LOCK_NAME = ".lock"  # held by the run writing the folder (rank 0 under torchrun)


@click.command("train")
@click.option("--pipeline", "pipeline_name", required=True, help="Named pipeline in pipelines.yaml (e.g. stats, pace).")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Extracted dataset folder (frames/flow shards and labels).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: backbone.pt, metrics.jsonl, config.yaml, checkpoints/.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None,
              help="Training device (default: cuda if available, else cpu).")
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in --out.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a pipeline setting, e.g. --set train.lr=0.01 (repeatable).")
@click.option("--pipelines-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Pipelines file (default: the project's pipelines.yaml).")
@click.option("--labels-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Stored labels made with make-labels --labels-dir (default: DATA/labels); = --set train.labels_dir.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def train_command(pipeline_name: str, data_dir: Path, out_dir: Path, device: str | None, resume: bool,
                  overrides: tuple[str, ...], pipelines_file: Path | None, labels_dir: Path | None,
                  no_progress: bool) -> None:
    """Pretext training of a backbone; run under torchrun for multi-GPU (DistributedDataParallel)."""
    import torch

    from labels.store import LabelError
    from preprocess.index import DatasetError
    from train.loop import TrainingDiverged

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")

    try:
        # the path as a value, not YAML text: a folder named "a: b" or "x #1" stays that folder
        labels = {"train": {"labels_dir": str(labels_dir.resolve())}} if labels_dir is not None else {}
        pipeline = load_pipeline(pipeline_name, pipelines_file,
                                 overrides=merge(parse_overrides(list(overrides)), labels))
        pipeline.trainable()
    except ConfigError as exc:
        raise Refused(str(exc)) from exc
    from train.resume import ResumeRefused, check_resume

    main = os.environ.get("RANK", "0") == "0"
    out_dir.mkdir(parents=True, exist_ok=True)
    busy = Refused(f"{out_dir}: another train run is writing this folder; wait for it or choose another --out")
    with exclusive(out_dir / LOCK_NAME, busy) if main else contextlib.nullcontext():
        try:
            if resume and main:
                record = json.loads(json.dumps(pipeline_record(pipeline)))
                for key, (old, new) in check_resume(out_dir, record).items():
                    click.echo(f"resumed with {key}: {old!r} -> {new!r} (recorded in {out_dir / 'resumes.jsonl'})")
            export = train_pipeline(pipeline, data_dir, out_dir, device=device, resume=resume, progress=not no_progress)
        except (FileExistsError, ResumeRefused, LabelError, DatasetError, ValueError) as exc:
            raise Refused(str(exc)) from exc  # settings or data that do not fit: nothing was trained
        except TrainingDiverged as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"backbone written to {export}")


COMMANDS: list[click.Command] = [train_command]
