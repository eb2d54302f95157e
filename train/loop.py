"""The training run: data, model, optimizer and schedule from a pipeline; checkpoints, resume, metrics, export.

``train(pipeline, data_dir, out_dir)`` writes into ``out_dir``: ``config.yaml`` (the resolved pipeline),
``metrics.jsonl`` + ``tensorboard/``, ``checkpoints/step_NNNNNNNN.pt`` (every ``checkpoint_every`` steps and at
the end) and ``backbone.pt`` (``train.backbones.save_backbone``, what evaluation loads). Under ``torchrun`` every
process runs this function; only rank 0 writes files.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from labels.curriculum import pacing
from labels.store import load_clip_labels
from preprocess.config import Pipeline
from train.backbones import build_backbone, save_backbone
from train.checkpoint import (
    atomic_torch_save,
    capture_rng_state,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    restore_rng_state,
)
from train.data import PaceClipDataset, StatsClipDataset
from train.distributed import DistributedContext, all_reduce_mean, barrier, setup_distributed, teardown_distributed
from train.methods import PretextMethod, build_method
from train.metrics import MetricsLogger
from train.optim import build_optimizer, lr_factor
from train.sampling import CurriculumBatchSampler, EpochBatchSampler, StepBatchSampler


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped before applying that step."""


@dataclasses.dataclass
class TrainData:
    """A training dataset, its batch sampler factory inputs, and the run length in steps."""

    dataset: StatsClipDataset | PaceClipDataset
    steps_per_epoch: int
    total_steps: int
    curriculum_order: np.ndarray | None  # dataset indices easiest first, or None for plain epochs


def build_data(pipeline: Pipeline, data_dir: str | Path) -> TrainData:
    """The dataset of ``pipeline.train.task`` over ``data_dir`` and the number of steps to run."""
    settings = pipeline.train
    order = None
    if settings.task == "stats":
        labels = load_clip_labels(data_dir)
        if (int(labels.clip_len), int(labels.crop_size)) != (settings.clip_len, settings.crop_size):
            raise ValueError(
                f"{data_dir}: labels were computed for {labels.clip_len}-frame clips cropped to {labels.crop_size}, "
                f"but train.clip_len={settings.clip_len} and train.crop_size={settings.crop_size}"
            )
        dataset: StatsClipDataset | PaceClipDataset = StatsClipDataset(data_dir, labels, settings.stats.label_scale)
        if settings.stats.curriculum:
            scores = dataset.scores()
            if np.isnan(scores).any():
                raise ValueError(
                    f"{data_dir}: curriculum scores are missing (compute labels with task 'curriculum' "
                    "or set train.stats.curriculum=false)"
                )
            order = np.argsort(-scores, kind="stable")
    else:
        views = 2 if settings.pace.contrastive == "context" else 1
        dataset = PaceClipDataset(
            data_dir, settings.pace.paces, settings.clip_len, settings.crop_size, views=views, seed=settings.seed
        )
    steps_per_epoch = len(dataset) // settings.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"{data_dir}: {len(dataset)} training items, fewer than one batch of {settings.batch_size}"
        )
    total = settings.epochs * steps_per_epoch
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    return TrainData(dataset, steps_per_epoch, total, order)


def build_sampler(
    pipeline: Pipeline, data: TrainData, ctx: DistributedContext, start_step: int
) -> StepBatchSampler:
    """This process's batch sampler, starting at ``start_step``."""
    settings = pipeline.train
    common = dict(seed=settings.seed, rank=ctx.rank, world_size=ctx.world_size, start_step=start_step)
    if data.curriculum_order is not None:
        n_total = len(data.curriculum_order)
        return CurriculumBatchSampler(
            data.curriculum_order,
            lambda step: pacing(pipeline.labels.pacing, step, n_total),
            settings.batch_size,
            data.total_steps,
            **common,
        )
    return EpochBatchSampler(len(data.dataset), settings.batch_size, data.total_steps, **common)


def autocast_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """Mixed-precision dtype on CUDA (bfloat16 where supported, else float16); None for full precision."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def write_config(pipeline: Pipeline, path: Path) -> None:
    """The resolved pipeline as YAML (tuples as lists)."""
    plain = yaml.safe_load(yaml.safe_dump(_plain(dataclasses.asdict(pipeline))))
    path.write_text(yaml.safe_dump(plain, sort_keys=False))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def augmentation_generator(device: torch.device, seed: int, step: int, rank: int) -> torch.Generator:
    """A generator for the on-device augmentation of one step, seeded from (seed, step, rank)."""
    mixed = int(np.random.SeedSequence([seed, step, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator(device=device).manual_seed(mixed)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Move every tensor of a collated batch to ``device`` (non-blocking from pinned memory)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def train(
    pipeline: Pipeline,
    data_dir: str | Path,
    out_dir: str | Path,
    device: str = "cpu",
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Train ``pipeline.train`` on the extracted dataset ``data_dir``; returns ``out_dir/backbone.pt``.

    ``resume=True`` continues from the latest checkpoint in ``out_dir/checkpoints`` (from scratch if there is
    none) and reproduces the uninterrupted run; without it an ``out_dir`` that already holds checkpoints is an
    error. Raises :class:`TrainingDiverged` on a NaN/inf loss, keeping the last good checkpoint.
    """
    ctx = setup_distributed(device)
    try:
        return _run(pipeline, Path(data_dir), Path(out_dir), ctx, resume, progress)
    finally:
        teardown_distributed(ctx)


def _run(
    pipeline: Pipeline, data_dir: Path, out_dir: Path, ctx: DistributedContext, resume: bool, progress: bool
) -> Path:
    settings = pipeline.train
    ckpt_dir = out_dir / "checkpoints"
    existing = latest_checkpoint(ckpt_dir)
    if existing is not None and not resume:
        raise FileExistsError(f"{out_dir}: already holds checkpoints; pass --resume or choose another --out")
    torch.manual_seed(settings.seed)
    np.random.seed(settings.seed)

    data = build_data(pipeline, data_dir)
    backbone = build_backbone(settings.backbone, in_channels=3, **settings.backbone_args)
    method = build_method(settings, backbone).to(ctx.device)
    optimizer = build_optimizer(settings, method.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(settings, step, data.steps_per_epoch, data.total_steps)
    )
    amp_dtype = autocast_dtype(ctx.device, settings.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    start_step = 0
    if existing is not None:
        state = load_checkpoint(existing)
        method.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        start_step = int(state["step"])

    model: torch.nn.Module = method
    if ctx.enabled:
        if settings.sync_batchnorm and ctx.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = DistributedDataParallel(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)
    if settings.compile:
        model = torch.compile(model)

    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_config(pipeline, out_dir / "config.yaml")
    loader = DataLoader(
        data.dataset,
        batch_sampler=build_sampler(pipeline, data, ctx, start_step),
        num_workers=settings.num_workers,
        pin_memory=ctx.device.type == "cuda",
    )
    logger = MetricsLogger(out_dir, start_step, enabled=ctx.is_main)
    bar = tqdm(total=data.total_steps, initial=start_step, disable=not (progress and ctx.is_main), unit="step")
    step, last_saved = start_step, existing
    window_start, window_clips = time.perf_counter(), 0
    try:
        model.train()
        for batch in loader:
            batch = to_device(batch, ctx.device)
            with torch.no_grad():
                inputs = method.prepare(batch, augmentation_generator(ctx.device, settings.seed, step, ctx.rank))
            with torch.autocast(ctx.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                output = model(inputs)
            if not bool(all_reduce_mean(torch.isfinite(output.loss).float()) == 1.0):
                raise TrainingDiverged(
                    f"step {step}: loss is {output.loss.item()} (not finite); training stopped. "
                    f"Last good checkpoint: {last_saved or 'none (no checkpoint written yet)'}"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(output.loss).backward()
            if settings.grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(method.parameters(), settings.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            window_clips += settings.batch_size * method.clips_per_item()
            bar.update(1)
            if step % settings.log_every == 0 or step == data.total_steps:
                elapsed = time.perf_counter() - window_start
                values = {k: float(all_reduce_mean(v.float())) for k, v in output.metrics.items()}
                values["lr"] = optimizer.param_groups[0]["lr"]
                values["clips_per_s"] = window_clips / max(elapsed, 1e-9)
                logger.log(step, values)
                bar.set_postfix(loss=f"{values['loss']:.4g}", clips_s=f"{values['clips_per_s']:.1f}")
                window_start, window_clips = time.perf_counter(), 0
            if step % settings.checkpoint_every == 0 or step == data.total_steps:
                if not all(bool(torch.isfinite(p).all()) for p in method.parameters()):
                    raise TrainingDiverged(
                        f"step {step}: parameters are not finite; training stopped without saving them. "
                        f"Last good checkpoint: {last_saved or 'none (no checkpoint written yet)'}"
                    )
                last_saved = save_training_state(
                    ckpt_dir, step, method, optimizer, scheduler, scaler, settings.keep_checkpoints, ctx
                )
    finally:
        bar.close()
        logger.close()
    export = out_dir / "backbone.pt"
    if ctx.is_main:
        save_backbone(method.backbone, export)
    barrier(ctx)
    return export


def save_training_state(
    folder: Path,
    step: int,
    method: PretextMethod,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    keep: int,
    ctx: DistributedContext,
) -> Path:
    """Write the checkpoint of ``step`` (rank 0 only), prune old ones; returns its path."""
    path = checkpoint_path(folder, step)
    if ctx.is_main:
        state = {
            "step": step,
            "model": method.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": capture_rng_state(),
        }
        atomic_torch_save(state, path)
        prune_checkpoints(folder, keep)
    barrier(ctx)
    return path
