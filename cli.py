"""vssl command line: ``python cli.py COMMAND ...`` (also installed as the ``vssl`` console script).

Each stage contributes its commands from its own ``commands`` module; this file assembles them and adds
``demo``, which chains every stage on generated videos.
"""
from __future__ import annotations

from pathlib import Path

import click

from eval import commands as eval_commands
from labels import commands as label_commands
from preprocess import commands as preprocess_commands
from train import commands as train_commands


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120, "terminal_width": 120})
def cli() -> None:
    """Self-supervised video representation learning: CPU stage (frames, flow, labels) and GPU stage
    (pretext training, evaluation)."""


for _module in (preprocess_commands, label_commands, train_commands, eval_commands):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


@cli.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path), default="demo_out")
@click.option("--workers", default=2, show_default=True, help="Dask worker processes for the CPU stage.")
@click.option("--device", default=None, help="Torch device for training/evaluation (default: cuda if present).")
def demo(out: Path, workers: int, device: str | None) -> None:
    """Run the main job on generated demo videos: extract -> labels -> pretext training -> evaluation.

    Uses the ``demo`` pipeline of pipelines.yaml; every step resumes, so re-running finishes what is missing.
    """
    import torch

    from eval.evaluate import evaluate
    from eval.report import results_table
    from labels.make import format_summary as label_summary
    from labels.make import make_labels
    from preprocess.config import load_cluster, load_pipeline
    from preprocess.demo_data import make_demo_videos
    from preprocess.extract import extract
    from preprocess.extract import format_summary as extract_summary
    from train.loop import train

    pipeline = load_pipeline("demo")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    videos, dataset, run, report = out / "videos", out / "dataset", out / "run", out / "report"
    if not (videos / "trainlist01.txt").exists():
        click.echo(f"[1/5] writing demo videos to {videos}")
        make_demo_videos(videos)
    click.echo(f"[2/5] extracting frames, flow and differences into {dataset}")
    extracted = extract(videos, dataset, pipeline, workers=workers)
    click.echo(extract_summary(extracted))
    click.echo(f"[3/5] computing labels: {', '.join(pipeline.labels.tasks)}")
    labelled = make_labels(dataset, pipeline.labels, pipeline.labels.tasks, cluster=load_cluster(), workers=workers)
    click.echo(label_summary(labelled))
    click.echo(f"[4/5] pretext training ({pipeline.train.task}, {pipeline.train.backbone}) into {run}")
    weights = train(pipeline, dataset, run, device=device, resume=True)
    click.echo(f"backbone saved to {weights}")
    click.echo(f"[5/5] evaluating pretrained vs random initialisation into {report}")
    results = evaluate(run, dataset, report, settings=pipeline.eval, device=device)
    click.echo(results_table(results))
    if not (extracted.ok and labelled.ok):
        raise SystemExit(1)


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
