"""Command-line commands of the labels stage (assembled by cli.py): make-labels, show-labels.

Exit status of make-labels: 0 every video labelled, 1 some video failed (listed at the end), 2 nothing
was done (bad settings, missing streams, or a labels folder made with other settings).
"""
from __future__ import annotations

from pathlib import Path

import click

from preprocess.config import ConfigError, load_cluster, load_pipeline, parse_overrides


class Refused(click.ClickException):
    """Nothing was labelled: the message says why (exit status 2)."""

    exit_code = 2


@click.command("make-labels")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Extracted dataset folder (frames and flow shards).")
@click.option("--task", "tasks", multiple=True, type=click.Choice(["stats", "curriculum"]),
              help="Labels to compute (repeatable; default: the pipeline's labels.tasks).")
@click.option("--pipeline", default="stats", show_default=True, help="Named pipeline in pipelines.yaml.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a pipeline setting, e.g. --set labels.stride=8 (repeatable).")
@click.option("--pipelines-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Pipelines file (default: the project's pipelines.yaml).")
@click.option("--labels-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the labels go (default: DATASET/labels).")
@click.option("--workers", type=int, help="Dask worker processes (default: cluster.workers of pipelines.yaml).")
@click.option("--scheduler", metavar="ADDRESS", help="Use a running Dask scheduler, e.g. tcp://host:8786.")
@click.option("--cluster", "cluster_kind", type=click.Choice(["local", "address", "slurm"]),
              help="Where to run (default: cluster.kind of pipelines.yaml).")
@click.option("--retry-failed", is_flag=True, help="Try again the videos that failed in earlier runs.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def make_labels_command(data_dir: Path, tasks: tuple[str, ...], pipeline: str, sets: tuple[str, ...],
                        pipelines_file: Path | None, labels_dir: Path | None, workers: int | None,
                        scheduler: str | None, cluster_kind: str | None, retry_failed: bool, no_progress: bool) -> None:
    """Compute motion/appearance statistics labels (--task stats) and curriculum scores (--task curriculum)
    for every clip and crop variant of a dataset, in parallel on Dask. Re-running resumes."""
    from labels.make import format_summary, make_labels
    from labels.store import LabelError
    from preprocess.index import DatasetError

    try:
        loaded = load_pipeline(pipeline, pipelines_file, overrides=parse_overrides(list(sets)))
        cluster = load_cluster(pipelines_file, overrides={"kind": cluster_kind} if cluster_kind else None)
        chosen = list(tasks) or list(loaded.labels.tasks)
        if not chosen:
            raise LabelError(f"pipeline {pipeline!r} has no label tasks; pass --task stats or --task curriculum")
        summary = make_labels(data_dir, loaded.labels, chosen, cluster=cluster, workers=workers, scheduler=scheduler,
                              labels_dir=labels_dir, retry_failed=retry_failed, progress=not no_progress)
    except (ConfigError, LabelError, DatasetError) as exc:
        raise Refused(str(exc)) from exc
    click.echo(format_summary(summary))
    if not summary.ok:
        raise SystemExit(1)


COMMANDS: list[click.Command] = [make_labels_command]
