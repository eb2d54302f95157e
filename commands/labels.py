"""Command-line commands of the labels stage (assembled by cli.py): make-labels, show-labels.

Exit status of make-labels: 0 every video labelled, 1 some video failed (listed at the end), 2 nothing
was done (bad settings, missing streams, or a labels folder made with other settings).
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from commands.contract import INPUT_FAILED
from commands.pipeline import load_cluster, load_pipeline
from common.errors import ConfigError, Refused
from labels.families import FAMILIES
from common.settings import parse_overrides


@click.command("make-labels",
               short_help="Compute label families (stats, curriculum, idt, fisher, clusters) of a dataset (Dask, resumable).")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Extracted dataset folder (frames and flow shards).")
@click.option("--task", "tasks", multiple=True, type=click.Choice(sorted(FAMILIES)),
              help="Label family to compute (repeatable; default: the pipeline's labels.tasks).")
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
    """Compute label families of a dataset in parallel on Dask: motion/appearance statistics (--task stats) and
    curriculum scores (--task curriculum) per clip and crop variant; Improved Dense Trajectories (--task idt),
    their Fisher vectors (--task fisher) and k-means clusters (--task clusters) per video. Re-running resumes."""
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
        raise SystemExit(INPUT_FAILED)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # what show-labels writes (matplotlib and OpenCV both can)


@click.command("show-labels", short_help="Draw one clip's statistics labels or its dense trajectories into a PNG.")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Extracted dataset folder.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Image to write (.png or .jpg; its folder is made).")
@click.option("--task", type=click.Choice(["stats", "idt"]), default="stats", show_default=True,
              help="stats: the statistics labels of a crop; idt: the tracked dense trajectories of the clip.")
@click.option("--video", "video_id", help="Video id (default: the first video of the dataset).")
@click.option("--start", default=0, show_default=True, help="First frame of the clip.")
@click.option("--variant", default=0, show_default=True, help="Index into the crop variants.")
@click.option("--pipeline", default="stats", show_default=True,
              help="Pipeline whose labels settings apply when the dataset has no labels yet.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a pipeline setting (repeatable).")
@click.option("--labels-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Labels folder whose settings apply (default: DATASET/labels, if present).")
def show_labels_command(data_dir: Path, out_path: Path, task: str, video_id: str | None, start: int, variant: int,
                        pipeline: str, sets: tuple[str, ...], labels_dir: Path | None) -> None:
    """Draw one clip's statistics labels into a PNG (frames, summed motion boundaries with the chosen regions
    and direction arrows, per-frame boundary energy, colour consistency, dominant colours, and the stored motion
    boundaries when the dataset has them), or with --task idt its Improved Dense Trajectories over the frames."""
    if out_path.suffix.lower() not in IMAGE_SUFFIXES:
        raise Refused(f"{out_path}: --out must name a {', '.join(IMAGE_SUFFIXES)} file")
    if task == "idt":
        _show_idt(data_dir, out_path, video_id, start, pipeline, sets, labels_dir)
        return
    from labels.show import render_clip_labels
    from labels.store import (SETTINGS_FILE, LabelError, consolidated_path, family_dir, labels_root, load_clip_labels,
                              read_settings)
    from preprocess.dataset import Dataset
    from preprocess.streams import crop
    from preprocess.index import DatasetError

    try:
        root = labels_root(data_dir, labels_dir)
        if (family_dir(root, "stats") / SETTINGS_FILE).exists():
            recorded = read_settings(root, "stats")
            clip_len, size, variants = recorded["clip_len"], recorded["crop_size"], recorded["crop_variants"]
        else:
            labels = load_pipeline(pipeline, overrides=parse_overrides(list(sets))).labels
            clip_len, size, variants = labels.clip_len, labels.crop_size, labels.crop_variants
        if not 0 <= variant < len(variants):
            raise LabelError(f"--variant {variant}: there are {len(variants)} crop variants {variants}")
        y, x, flip = variants[variant]
        dataset = Dataset(data_dir)
        video = dataset.video(video_id) if video_id else dataset.videos[0]
        if not 0 <= start <= video.n_frames - clip_len:
            raise LabelError(f"{video.path}: no {clip_len}-frame clip at frame {start} ({video.n_frames} frames)")
        frames = dataset.read_frames(video.id, start, start + clip_len)
        flow = dataset.read_flow(video.id, start, start + clip_len - 1)
        try:
            frames = np.ascontiguousarray(crop(frames, y, x, size, bool(flip)))
            flow = crop(flow, y, x, size, bool(flip), "flow")
        except ValueError as exc:  # a crop of the settings that the stored frames cannot hold
            raise LabelError(f"{video.path}: {exc} (stored in {data_dir})") from exc
        boundaries = None
        if dataset.has_stream("mb"):
            stored_mb = dataset.read_motion_boundaries(video.id, start, start + clip_len - 1)
            boundaries = crop(stored_mb, y, x, size, bool(flip), "mb")
        stored = load_clip_labels(data_dir, labels_dir) if consolidated_path(root, "stats").exists() else None
    except KeyError as exc:  # unknown video id
        raise Refused(exc.args[0]) from exc
    except (ConfigError, LabelError, DatasetError, ValueError) as exc:
        raise Refused(str(exc)) from exc
    title = f"{video.id} frames {start}-{start + clip_len - 1}, crop (y={y}, x={x}){' flipped' if flip else ''}"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    drawn = render_clip_labels(frames, flow, out_path, title, boundaries)
    click.echo(f"motion {drawn['motion'].tolist()}\nappearance {drawn['appearance'].tolist()}\n"
               f"curriculum score {float(drawn['score']):.4f}\nwritten to {out_path}")
    if boundaries is not None:
        mean_u, mean_v = boundaries.mean(axis=(0, 1, 2))
        click.echo(f"stored motion boundaries drawn: mean |grad u| {mean_u:.4f}, |grad v| {mean_v:.4f} px/px")
    if stored is not None:
        row = np.flatnonzero((stored.video_id == video.id) & (stored.start == start) & (stored.variant == variant))
        if len(row):
            same = (np.array_equal(stored.motion[row[0]], drawn["motion"])
                    and np.array_equal(stored.appearance[row[0]], drawn["appearance"]))
            click.echo("stored labels: " + ("identical" if same else "DIFFERENT (were they made from other data?)"))


COMMANDS: list[click.Command] = [make_labels_command, show_labels_command]


def _show_idt(data_dir: Path, out_path: Path, video_id: str | None, start: int, pipeline: str, sets: tuple[str, ...],
              labels_dir: Path | None) -> None:
    """show-labels --task idt: the trajectories of a clip of 2 x track_length frames, with the idt settings
    of the labels folder (or of the pipeline when there are none)."""
    import cv2

    from labels.families.idt import trajectory_montage
    from labels.store import SETTINGS_FILE, LabelError, family_dir, labels_root, read_settings
    from preprocess.dataset import Dataset
    from preprocess.decode import DecodeError
    from preprocess.index import DatasetError

    try:
        labels = load_pipeline(pipeline, overrides=parse_overrides(list(sets))).labels
        settings = labels.of("idt")
        root = labels_root(data_dir, labels_dir)
        if (family_dir(root, "idt") / SETTINGS_FILE).exists():
            recorded = read_settings(root, "idt")["family"]
            settings = type(settings)(**{**recorded, "size": tuple(recorded["size"]) if recorded["size"] else None})
        dataset = Dataset(data_dir)
        video = dataset.video(video_id) if video_id else dataset.videos[0]
        image, count = trajectory_montage(video.path, settings, start, 2 * settings.track_length)
    except KeyError as exc:  # unknown video id
        raise Refused(exc.args[0]) from exc
    except (ConfigError, LabelError, DatasetError, DecodeError, ValueError) as exc:
        raise Refused(str(exc)) from exc
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_path), image):
        raise Refused(f"{out_path}: OpenCV could not write the image")
    click.echo(f"{count} trajectories in frames {start}-{start + 2 * settings.track_length - 1} of {video.path}\n"
               f"written to {out_path}")
