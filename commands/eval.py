"""Command-line commands of the eval stage (assembled by cli.py): ``eval`` and ``report``."""
from __future__ import annotations

from pathlib import Path

import click

from eval.settings import TASKS
from commands.pipeline import load_pipeline
from common.errors import ConfigError, Refused
from common.locks import exclusive
from common.settings import build, parse_overrides

LOCK_NAME = ".lock"  # held by the eval run writing the report folder


def _settings(pipeline_name: str | None, pipelines_file: Path | None, overrides: tuple[str, ...], **options):
    """Eval settings from a pipeline (or the defaults), ``--set eval.KEY=VALUE`` and the direct options."""
    from eval.settings import EvalSettings

    nested = parse_overrides(list(overrides))
    eval_overrides = nested.setdefault("eval", {})
    for key, value in options.items():
        if value is not None:
            node = eval_overrides
            *parents, last = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
    if pipeline_name is not None:
        return load_pipeline(pipeline_name, pipelines_file, overrides=nested).eval
    other = sorted(set(nested) - {"eval"})
    if other:
        raise ConfigError(f"--set {other[0]}.*: without --pipeline only eval.* settings apply")
    return build(EvalSettings, eval_overrides, "eval")


@click.command("eval", short_help="Evaluate a backbone vs random init, or stored descriptors (IDT), on the protocols.")
@click.option("--task", "tasks", multiple=True, type=click.Choice([*TASKS, "all"]),
              help="Protocol to run (repeatable; 'all': linear, finetune, fewshot, retrieval; default: the "
                   "pipeline's eval.tasks; clusters: k-means of the features next to the dataset's IDT clusters).")
@click.option("--weights", required=True, metavar="RUN_DIR|FILE|random|idt|descriptors:FILE.h5",
              help="Training run folder (its backbone.pt), a backbone file, 'random' for random init only, 'idt' "
                   "for the dataset's IDT Fisher vectors (DATA/labels/fisher/fisher.h5), or descriptors:FILE.h5 "
                   "for any stored video descriptors ('videos' [V], 'vectors' [V, D]).")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Labelled extracted dataset folder.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Report folder: results.json, summary.md, figures.")
@click.option("--backbone", default=None, help="Backbone name (required with --weights random).")
@click.option("--backbone-arg", "backbone_args", multiple=True, metavar="KEY=VALUE",
              help="Constructor argument of the --weights random backbone, e.g. channels=[8,16,16,32,32] (repeatable).")
@click.option("--pipeline", "pipeline_name", default=None, help="Take eval settings from this pipeline.")
@click.option("--pipelines-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a setting, e.g. --set eval.finetune.epochs=10 (repeatable).")
@click.option("--stage", type=click.Choice(["pool3", "pool4", "pool5"]), default=None, help="Feature tap.")
@click.option("--split", type=click.Choice(["files", "stratified"]), default=None,
              help="Train/test from the dataset's split files, or a stratified split.")
@click.option("--clips", "clips_per_video", type=int, default=None, help="Clips per video.")
@click.option("--label-fraction", "label_fractions", type=float, multiple=True,
              help="Fine-tuning label fraction in (0, 1] (repeatable, e.g. 0.01 0.1 1).")
@click.option("--pairs", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Similarity pair list (*.txt of eval.pairs, or an ASLAN view *.mat); default: built from the "
                   "labelled videos (eval.similarity.n_folds folds of disjoint classes) and saved as pairs.txt.")
@click.option("--seed", type=int, default=None)
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Feature cache (default: REPORT_DIR/feature_cache); share it between reports to reuse features.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None)
@click.option("--no-figures", is_flag=True, help="Skip the PNG figures.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--labels-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Labels folder holding the IDT clusters for --task clusters and the Fisher vectors of --weights idt "
                   "(default: DATA/labels).")
def eval_command(tasks: tuple[str, ...], weights: str, data_dir: Path, out_dir: Path, backbone: str | None,
                 backbone_args: tuple[str, ...], pipeline_name: str | None, pipelines_file: Path | None, overrides: tuple[str, ...],
                 stage: str | None, split: str | None, clips_per_video: int | None,
                 label_fractions: tuple[float, ...], pairs: str | None, seed: int | None, cache_dir: Path | None,
                 device: str | None, no_figures: bool, no_progress: bool, labels_dir: Path | None) -> None:
    """Evaluate a pretrained backbone against its random initialisation, or stored video descriptors (linear
    probe, fine-tuning, few-shot, retrieval, dynamic scenes, action similarity) and write a report."""
    from eval.evaluate import evaluate
    from eval.report import results_table
    from labels.store import LabelError

    try:
        settings = _settings(pipeline_name, pipelines_file, overrides, stage=stage, split=split, seed=seed,
                             **{"clips.clips_per_video": clips_per_video,
                                "finetune.label_fractions": list(label_fractions) or None,
                                "similarity.pairs": pairs})
        constructor_args = parse_overrides(list(backbone_args), flag="--backbone-arg")
    except ConfigError as exc:
        raise Refused(str(exc)) from exc
    from preprocess.index import DatasetError

    out_dir.mkdir(parents=True, exist_ok=True)
    busy = Refused(f"{out_dir}: another eval run is writing this report folder; wait for it or choose another --out")
    with exclusive(out_dir / LOCK_NAME, busy):
        try:
            results = evaluate(weights, data_dir, out_dir, list(tasks) or None, backbone=backbone,
                               backbone_args=constructor_args or None, settings=settings,
                               cache_dir=cache_dir, device=device, make_figures=not no_figures,
                               progress=not no_progress, labels_dir=labels_dir)
        except (ValueError, FileNotFoundError, KeyError, DatasetError, LabelError) as exc:
            raise Refused(exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)) from exc
    click.echo(results_table(results))
    click.echo(f"report written to {out_dir}")


@click.command("report", short_help="Compare any number of reports: a table per protocol and a bar chart.")
@click.argument("report_dirs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the tables to this Markdown file (and the bar chart beside it, as .png).")
@click.option("--figure", "figure_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Bar chart PNG of the headline metrics (default: the --out file with .png).")
def report_command(report_dirs: tuple[Path, ...], out_file: Path | None, figure_file: Path | None) -> None:
    """Put any number of evaluation reports (methods, random, IDT, supervised) side by side: one table per
    protocol, and a bar chart of the headline metrics."""
    from eval.report import write_comparison

    try:
        table, figure = write_comparison(list(report_dirs), out_file, figure_file=figure_file)
    except (ValueError, FileNotFoundError) as exc:
        raise Refused(str(exc)) from exc
    click.echo(table)
    if figure is not None:
        click.echo(f"bar chart written to {figure}")


COMMANDS: list[click.Command] = [eval_command, report_command]
