"""Command-line commands of the preprocess stage (assembled by cli.py): extract-frames, extract-flow,
inspect, make-demo-data.

Exit status: the contract of ``commands.contract`` (README "Exit status").
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from commands.contract import INPUT_FAILED, INTERRUPTED
from commands.pipeline import load_cluster, load_pipeline
from common.errors import ConfigError, Refused
from common.settings import merge, parse_overrides
from preprocess import demo_data


def _extract_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path)),
        click.argument("output", metavar="OUTPUT", type=click.Path(file_okay=False, path_type=Path)),
        click.option("--pipeline", default="stats", show_default=True, help="Named pipeline in pipelines.yaml."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Override any pipeline setting, e.g. --set preprocess.flow.bound=10 (repeatable)."),
        click.option("--pipelines-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Pipelines file (default: the project's pipelines.yaml)."),
        click.option("--size", nargs=2, type=int, metavar="H W", default=None,
                     help="Resize frames to H x W (default: the pipeline's preprocess.size)."),
        click.option("--short-side", type=int, help="Resize so the short side has this length (instead of --size)."),
        click.option("--fps", type=float, help="Resample to this frame rate (default: keep the source rate)."),
        click.option("--every", type=int, help="Keep every k-th frame, after --fps (default: 1)."),
        click.option("--image-format", type=click.Choice(["jpeg", "raw"]), help="Frame storage (default: jpeg)."),
        click.option("--jpeg-quality", type=int, help="JPEG quality 1-100 (default: 90)."),
        click.option("--diff/--no-diff", default=None, help="Store image differences (default: yes)."),
        click.option("--shard-mb", type=float, help="Target shard size in MB (default: 256)."),
        click.option("--video-timeout", type=float, help="Seconds before a video is recorded as failed (default: 900)."),
        click.option("--workers", type=click.IntRange(min=1), help="Dask worker processes (default: cluster.workers of pipelines.yaml)."),
        click.option("--scheduler", metavar="ADDRESS", help="Use a running Dask scheduler, e.g. tcp://host:8786."),
        click.option("--cluster", "cluster_kind", type=click.Choice(["local", "address", "slurm"]),
                     help="Where to run (default: cluster.kind of pipelines.yaml)."),
        click.option("--splits", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     help="Folder with UCF101/HMDB51 split files (default: the input folder)."),
        click.option("--split-number", type=int, default=1, show_default=True, help="Which split (1-3)."),
        click.option("--retry-failed", is_flag=True, help="Try again the videos that failed in earlier runs."),
        click.option("--no-progress", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


_FLAG_KEYS = {
    "size": "size", "short_side": "short_side", "fps": "fps", "every": "every", "image_format": "image_format",
    "jpeg_quality": "jpeg_quality", "diff": "diff", "shard_mb": "shard_mb", "video_timeout": "video_timeout_s",
}


def _run_extract(flow: bool, opts: dict[str, Any], flow_opts: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    from preprocess.extract import extract, format_summary
    from preprocess.index import DatasetError
    from preprocess.inputs import InputError

    section = {key: opts[flag] for flag, key in _FLAG_KEYS.items() if opts[flag] is not None}
    section.update({key: value for key, value in (extra or {}).items() if value is not None})
    if opts["short_side"] is not None:
        if opts["size"] is not None:
            raise click.UsageError("give --size or --short-side, not both")
        section["size"] = None
    flow_section = {k: v for k, v in flow_opts.items() if v is not None}
    if flow_section:
        section["flow"] = flow_section
    try:
        overrides = merge(parse_overrides(list(opts["sets"])), {"preprocess": section})
        pipeline = load_pipeline(opts["pipeline"], opts["pipelines_file"], overrides=overrides)
        cluster_overrides = {"kind": opts["cluster_kind"]} if opts["cluster_kind"] else None
        cluster = load_cluster(opts["pipelines_file"], overrides=cluster_overrides)
        summary = extract(
            opts["input_path"], opts["output"], pipeline.preprocess, flow=flow, workers=opts["workers"],
            scheduler=opts["scheduler"], cluster=cluster, splits=opts["splits"], split_number=opts["split_number"],
            retry_failed=opts["retry_failed"], progress=not opts["no_progress"],
        )
    except (ConfigError, DatasetError, InputError) as exc:
        raise Refused(str(exc)) from exc
    except KeyboardInterrupt:
        click.echo("interrupted: finished shards are kept; run the same command again to resume", err=True)
        raise SystemExit(INTERRUPTED) from None
    click.echo(format_summary(summary))
    if not summary.ok:
        raise SystemExit(INPUT_FAILED)


@click.command("extract-frames", short_help="Decode videos into resized frames in HDF5 shards (Dask, resumable).")
@_extract_options
def extract_frames_command(**opts: Any) -> None:
    """Decode the videos of INPUT (a folder, with class sub-folders or not, or a list file 'PATH [LABEL]'
    per line) into frame shards in dataset folder OUTPUT, in parallel on Dask. Re-running resumes."""
    _run_extract(False, opts, {})


@click.command("extract-flow", short_help="Like extract-frames, plus flow, differences, optional motion boundaries.")
@_extract_options
@click.option("--algo", type=click.Choice(["tvl1", "tvl1_torch", "dis", "farneback"]),
              help="Optical flow algorithm (default: tvl1; tvl1_torch: the same TV-L1 in PyTorch, batched).")
@click.option("--bound", type=float, help="Flow clipped to [-bound, bound] px before uint8 quantization (default: 20).")
@click.option("--dis-preset", type=click.Choice(["ultrafast", "fast", "medium"]), help="DIS preset (default: medium).")
@click.option("--flow-device", type=click.Choice(["cpu", "cuda"]), help="Device of tvl1_torch (default: cpu).")
@click.option("--flow-batch", type=click.IntRange(min=1), help="Frame pairs per tvl1_torch call (default: 2).")
@click.option("--motion-boundaries/--no-motion-boundaries", default=None,
              help="Also store the flow's motion boundaries |grad u|, |grad v| (stream mb; default: no). Added to a "
                   "dataset that has flow by computing its flow again.")
def extract_flow_command(algo: str | None, bound: float | None, dis_preset: str | None, flow_device: str | None,
                         flow_batch: int | None, motion_boundaries: bool | None, **opts: Any) -> None:
    """Like extract-frames, plus quantized optical flow (and image differences; motion boundaries with
    --motion-boundaries). Frames already in OUTPUT are reused, not decoded again. Re-running resumes."""
    _run_extract(True, opts, {"algo": algo, "bound": bound, "dis_preset": dis_preset, "device": flow_device,
                              "batch": flow_batch}, {"motion_boundaries": motion_boundaries})


@click.command("inspect", short_help="Print what a dataset holds: videos, streams, shards, sizes, settings, failures.")
@click.argument("dataset", metavar="OUTPUT", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--verify", is_flag=True, help="Read every indexed video's datasets in every shard (slow: reads it all).")
def inspect_command(dataset: Path, verify: bool) -> None:
    """Print what dataset folder OUTPUT holds: videos, frames, streams, shards and sizes, settings, failures.
    Shards missing, truncated or unreadable are listed and the exit status is 2."""
    from preprocess.index import DatasetError, load_index
    from preprocess.integrity import REPAIR_HINT, damaged_shards
    from preprocess.report import describe_dataset

    try:
        click.echo(describe_dataset(dataset))
        index = load_index(dataset)
    except DatasetError as exc:
        raise Refused(str(exc)) from exc
    damaged = damaged_shards(dataset, index, deep=verify)
    if damaged:
        lines = [f"  {dataset / rel}: {problem}" for rel, problem in sorted(damaged.items())]
        raise Refused(f"{len(damaged)} damaged shard(s):\n" + "\n".join(lines) + f"\n{REPAIR_HINT}")
    if verify:
        click.echo(f"verified: every dataset of the {len(index.videos)} indexed videos in {len(index.shards)} shard(s) reads")


@click.command("make-demo-data", short_help="Write synthetic demo videos (4 motion classes) with split files.")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--videos-per-class", default=demo_data.VIDEOS_PER_CLASS, show_default=True,
              help="Clips per class (4 classes).")
@click.option("--frames", "n_frames", default=demo_data.N_FRAMES, show_default=True, help="Frames per clip.")
@click.option("--test-per-class", default=demo_data.TEST_PER_CLASS, show_default=True,
              help="Clips per class listed in testlist01.txt.")
@click.option("--seed", default=0, show_default=True, help="Random seed.")
def make_demo_data_command(out: Path, videos_per_class: int, n_frames: int, test_per_class: int, seed: int) -> None:
    """Write synthetic demo videos (textured shapes moving right / down / rotating / zooming; the motion alone
    decides the class) to OUT in UCF101 layout with split files."""
    try:
        paths = demo_data.make_demo_videos(out, videos_per_class=videos_per_class, n_frames=n_frames,
                                           test_per_class=test_per_class, seed=seed)
    except ValueError as exc:
        raise Refused(f"{out}: {exc}") from exc
    click.echo(f"{len(paths)} demo videos written to {out}")


COMMANDS: list[click.Command] = [extract_frames_command, extract_flow_command, inspect_command, make_demo_data_command]
