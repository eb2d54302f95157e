"""``run``: one command per paper (extract -> labels -> train -> eval for a named pipeline, each step resuming,
then the report table), and ``demo``: ``run --pipeline demo`` on videos the project generates."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from commands.contract import INPUT_FAILED, INTERRUPTED
from commands.pipeline import Pipeline, load_cluster, load_pipeline, train_pipeline
from common.errors import ConfigError, Refused
from common.runner import ClusterSettings
from common.settings import parse_overrides
from eval.descriptors import BASELINE_FAMILIES, NETWORK_ONLY_TASKS

COMPARISON_FILE = "comparison.md"  # the method, its random twin and the baselines side by side


def run_pipeline(pipeline: Pipeline, input_path: Path, out: Path, *, cluster: ClusterSettings,
                 workers: int | None = None, scheduler: str | None = None, device: str | None = None,
                 progress: bool = True) -> bool:
    """Run every stage of ``pipeline`` on the videos of ``input_path`` into ``out`` (``dataset/``, ``run/``,
    ``report/``; with ``eval.baselines`` also ``report_<baseline>/`` and ``comparison.md``), printing each step's
    summary and the report table; returns whether no input failed. Labels go to ``train.labels_dir`` when it is
    set (where training reads them), else ``dataset/labels``.
    Refuses (ConfigError) before any work when the pipeline's method is not implemented yet, and (ValueError)
    after extraction when the dataset has fewer than two labelled classes to evaluate on."""
    import torch

    from eval.evaluate import evaluate
    from eval.labelled import labelled_videos
    from eval.report import results_table
    from labels.make import format_summary as label_summary
    from labels.make import make_labels
    from preprocess.extract import extract
    from preprocess.dataset import Dataset
    from preprocess.extract import format_summary as extract_summary

    settings = pipeline.trainable()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dataset, run, report = out / "dataset", out / "run", out / "report"
    baselines = pipeline.eval.baselines if pipeline.eval.baselines and baseline_tasks(pipeline) else []
    if pipeline.eval.baselines and not baselines:  # before their labels are made (IDT is the costly part)
        click.echo(f"baselines skipped: none of the tasks {pipeline.eval.tasks} takes stored descriptors")
    label_tasks = list(pipeline.labels.tasks)
    label_tasks += [f for b in baselines for f in BASELINE_FAMILIES[b] if f not in label_tasks]
    click.echo(f"[1/4] extracting frames, flow and differences into {dataset}")
    extracted = extract(input_path, dataset, pipeline.preprocess, cluster=cluster, workers=workers,
                        scheduler=scheduler, progress=progress)
    click.echo(extract_summary(extracted))
    with Dataset(dataset) as opened:
        labelled_videos(opened)  # the evaluation at the end needs two labelled classes: refuse before the work
    labelled_ok = True
    if label_tasks:
        click.echo(f"[2/4] computing labels: {', '.join(label_tasks)}")
        labelled = make_labels(dataset, pipeline.labels, label_tasks, cluster=cluster, workers=workers,
                               scheduler=scheduler, labels_dir=settings.labels_dir, progress=progress)
        click.echo(label_summary(labelled))
        labelled_ok = labelled.ok
    else:
        click.echo("[2/4] no labels needed by this pipeline")
    click.echo(f"[3/4] pretext training ({settings.method}, {settings.backbone}) into {run}")
    weights = train_pipeline(pipeline, dataset, run, device=device, resume=True, progress=progress)
    click.echo(f"backbone saved to {weights}")
    click.echo(f"[4/4] evaluating pretrained vs random initialisation into {report}")
    results = evaluate(run, dataset, report, settings=pipeline.eval, device=device, progress=progress)
    click.echo(results_table(results))
    if baselines:
        evaluate_baselines(pipeline, dataset, out, device=device, progress=progress)
    return extracted.ok and labelled_ok


def baseline_tasks(pipeline: Pipeline) -> list[str]:
    """The pipeline's evaluation tasks that its hand-crafted baselines run: those that take stored descriptors
    (not fine-tuning or similarity)."""
    from eval.evaluate import resolve_tasks

    return [t for t in resolve_tasks(None, pipeline.eval) if t not in NETWORK_ONLY_TASKS]


def evaluate_baselines(pipeline: Pipeline, dataset: Path, out: Path, *, device: str, progress: bool) -> None:
    """Evaluate each of ``eval.baselines`` on the pipeline's split and protocols (those that take stored
    descriptors) into ``OUT/report_<baseline>``, then put them beside ``OUT/report`` in ``OUT/comparison.md``
    (+ ``.png``)."""
    from eval.evaluate import evaluate
    from eval.report import write_comparison

    tasks = baseline_tasks(pipeline)
    if not tasks:
        click.echo(f"baselines skipped: none of the tasks {pipeline.eval.tasks} takes stored descriptors")
        return
    reports, names = [out / "report"], [pipeline.name]
    for baseline in pipeline.eval.baselines:
        folder = out / f"report_{baseline}"
        click.echo(f"evaluating the hand-crafted baseline {baseline!r} ({', '.join(tasks)}) into {folder}")
        try:
            evaluate(baseline, dataset, folder, tasks, settings=pipeline.eval, device=device, progress=progress,
                     labels_dir=pipeline.trainable().labels_dir)
        except (ValueError, FileNotFoundError) as exc:
            raise Refused(f"baseline {baseline!r}: {exc} (the method's report in {out / 'report'} is complete; "
                          f"run the same command again after fixing this)") from exc
        reports.append(folder)
        names.append(baseline)
    click.echo(write_comparison(reports, out / COMPARISON_FILE, names)[0])
    click.echo(f"comparison written to {out / COMPARISON_FILE}")


def _run_or_refuse(pipeline_name: str, input_path: Path, out: Path, sets: tuple[str, ...],
                   pipelines_file: Path | None, **options: Any) -> None:
    from labels.store import LabelError
    from preprocess.index import DatasetError
    from preprocess.inputs import InputError
    from train.loop import TrainingDiverged

    try:
        pipeline = load_pipeline(pipeline_name, pipelines_file, overrides=parse_overrides(list(sets)))
        cluster = load_cluster(pipelines_file)
        ok = run_pipeline(pipeline, input_path, out, cluster=cluster, **options)
    except (ConfigError, DatasetError, InputError, LabelError) as exc:
        raise Refused(str(exc)) from exc
    except (ValueError, FileNotFoundError, FileExistsError) as exc:  # data or settings a later stage cannot use,
        raise Refused(str(exc)) from exc  # as the train and eval commands report them
    except KeyError as exc:  # a video id a stage does not find
        raise Refused(exc.args[0] if exc.args else str(exc)) from exc
    except TrainingDiverged as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo("interrupted: run the same command again to resume", err=True)
        raise SystemExit(INTERRUPTED) from None
    if not ok:
        raise SystemExit(INPUT_FAILED)


@click.command("run", short_help="One paper end to end: extract -> labels -> train -> eval for a named pipeline.")
@click.option("--pipeline", "pipeline_name", required=True, help="Named pipeline in pipelines.yaml.")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.argument("out", metavar="OUT", type=click.Path(file_okay=False, path_type=Path))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a pipeline setting (repeatable).")
@click.option("--pipelines-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--workers", type=click.IntRange(min=1), help="Dask worker processes for the CPU stage.")
@click.option("--scheduler", metavar="ADDRESS", help="Use a running Dask scheduler, e.g. tcp://host:8786.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Training/evaluation device.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def run_command(pipeline_name: str, input_path: Path, out: Path, sets: tuple[str, ...], pipelines_file: Path | None,
                workers: int | None, scheduler: str | None, device: str | None, no_progress: bool) -> None:
    """Run pipeline NAME on the videos of INPUT into OUT (dataset/, run/, report/): extraction, labels,
    pretext training and evaluation against random initialisation, each step resuming where it stopped; with
    eval.baselines (e.g. --set "eval.baselines=[idt]") also the hand-crafted baseline and OUT/comparison.md."""
    _run_or_refuse(pipeline_name, input_path, out, sets, pipelines_file, workers=workers, scheduler=scheduler,
                   device=device, progress=not no_progress)


@click.command("demo")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path), default="demo_out")
@click.option("--workers", default=2, show_default=True, help="Dask worker processes for the CPU stage.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None,
              help="Torch device for training/evaluation (default: cuda if present).")
def demo_command(out: Path, workers: int, device: str | None) -> None:
    """``run --pipeline demo`` on generated demo videos (OUT/videos); every step resumes."""
    from preprocess.demo_data import make_demo_videos

    videos = out / "videos"
    if not (videos / "trainlist01.txt").exists():
        click.echo(f"writing demo videos to {videos}")
        make_demo_videos(videos)
    _run_or_refuse("demo", videos, out, (), None, workers=workers, device=device, progress=True)


COMMANDS: list[click.Command] = [run_command, demo_command]
