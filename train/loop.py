"""The training run: data, model, optimizer and schedule from a pipeline; checkpoints, resume, metrics, export.

``train(settings, data_dir, out_dir)`` writes into ``out_dir``: ``config.yaml`` (the resolved pipeline),
``metrics.jsonl`` + ``tensorboard/``, ``checkpoints/step_NNNNNNNN.pt`` (every ``checkpoint_every`` steps and at
the end) and ``backbone.pt`` (``train.backbones.save_backbone``, what evaluation loads). Under ``torchrun`` every
process runs this function; only rank 0 writes files.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from common.memory import keep_freed_memory_in_worker
from preprocess.dataset import Dataset
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
from train.data import TrainingData
from train.distributed import DistributedContext, all_reduce_mean, barrier, setup_distributed, teardown_distributed
from train.methods import PretextMethod, build_method, method_class
from train.metrics import MetricsLogger
from train.optim import build_optimizer, lr_factor
from train.sampling import CurriculumBatchSampler, EpochBatchSampler, StepBatchSampler
from train.settings import TrainSettings


BACKBONE_FILE = "backbone.pt"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped before applying that step."""


@dataclasses.dataclass
class TrainData:
    """A method's training data and the run length in steps."""

    training: TrainingData
    steps_per_epoch: int
    total_steps: int

    @property
    def dataset(self) -> Any:
        return self.training.dataset


def build_data(settings: TrainSettings, data_dir: str | Path) -> TrainData:
    """The training data that method ``settings.method`` declares over ``data_dir``, and the steps to run."""
    training = method_class(settings.method).training_data(data_dir, settings)
    steps_per_epoch = len(training.dataset) // settings.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"{data_dir}: {len(training.dataset)} training items, fewer than one batch of {settings.batch_size}"
        )
    total = settings.epochs * steps_per_epoch
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    return TrainData(training, steps_per_epoch, total)


def build_sampler(settings: TrainSettings, data: TrainData, ctx: DistributedContext, start_step: int) -> StepBatchSampler:
    """This process's batch sampler, starting at ``start_step``: curriculum-paced when the method gives an
    easiest-first order, plain shuffled epochs otherwise."""
    common = dict(seed=settings.seed, rank=ctx.rank, world_size=ctx.world_size, start_step=start_step)
    order, pool_size = data.training.order, data.training.pool_size
    if order is not None and pool_size is not None:
        n_total = len(order)
        return CurriculumBatchSampler(order, lambda step: pool_size(step, n_total), settings.batch_size,
                                      data.total_steps, **common)
    return EpochBatchSampler(len(data.dataset), settings.batch_size, data.total_steps, **common)


def autocast_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """Mixed-precision dtype on CUDA (bfloat16 where supported, else float16); None for full precision."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def write_config(record: Mapping[str, Any], path: Path) -> None:
    """The resolved settings of a run as YAML (tuples as lists, keys sorted)."""
    path.write_text(yaml.safe_dump(_plain(dict(record))))


def _plain(value: Any) -> Any:
    """``value`` with every dataclass turned into a dict and every tuple into a list (what ``yaml.safe_dump``
    can write), recursively."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
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
    settings: TrainSettings,
    data_dir: str | Path,
    out_dir: str | Path,
    device: str = "cpu",
    resume: bool = False,
    progress: bool = True,
    record: Mapping[str, Any] | None = None,
) -> Path:
    """Train ``settings`` (a pipeline's ``train`` section) on the extracted dataset ``data_dir``; returns
    ``out_dir/backbone.pt``. ``record`` (default: ``settings``) is written to ``out_dir/config.yaml``.

    ``resume=True`` continues from the latest checkpoint in ``out_dir/checkpoints`` (from scratch if there is
    none) and reproduces the uninterrupted run; without it an ``out_dir`` that already holds checkpoints is an
    error. Raises :class:`TrainingDiverged` on a NaN/inf loss, keeping the last good checkpoint.
    """
    ctx = setup_distributed(device)
    try:
        return _run(settings, Path(data_dir), Path(out_dir), ctx, resume, progress, record)
    finally:
        teardown_distributed(ctx)


@dataclasses.dataclass
class TrainingState:
    """Everything a checkpoint restores: the method (backbone + heads), optimizer, schedule and grad scaler."""

    method: PretextMethod
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler

    def state_dict(self, step: int) -> dict[str, Any]:
        """The checkpoint dict of ``step`` (with this process's RNG states)."""
        return {
            "step": step,
            "model": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng_state(),
        }

    def load(self, checkpoint: dict[str, Any]) -> int:
        """Restore a checkpoint dict; returns its step."""
        self.method.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        restore_rng_state(checkpoint["rng"])
        return int(checkpoint["step"])


def build_state(settings: TrainSettings, data: TrainData, device: torch.device) -> TrainingState:
    """A fresh method on ``device`` with its optimizer (the method's parameter groups), per-step LR schedule
    and grad scaler."""
    channels = method_class(settings.method).input_channels(settings)
    backbone = build_backbone(settings.backbone, in_channels=channels, **settings.backbone_args)
    method = build_method(settings, backbone)
    method.attach(settings, data.dataset)
    method = method.to(device)
    optimizer = build_optimizer(settings, method.parameter_groups(settings))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(settings, step, data.steps_per_epoch, data.total_steps)
    )
    scaler = torch.amp.GradScaler("cuda", enabled=autocast_dtype(device, settings.amp) == torch.float16)
    return TrainingState(method, optimizer, scheduler, scaler)


def wrap_model(method: PretextMethod, settings: TrainSettings, ctx: DistributedContext) -> torch.nn.Module:
    """The module the loop calls: ``method``, under DDP when distributed (SyncBatchNorm on CUDA), compiled if
    asked. Parameters stay shared with ``method``."""
    model: torch.nn.Module = method
    if ctx.enabled:
        if settings.sync_batchnorm and ctx.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = DistributedDataParallel(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)
    return torch.compile(model) if settings.compile else model


def not_finite_message(what: str, step: int, last_saved: Path | None) -> str:
    """The message of :class:`TrainingDiverged`: the step, what went non-finite and the checkpoint to go back to."""
    return (
        f"step {step}: {what} not finite; training stopped. "
        f"Last good checkpoint: {last_saved or 'none (no checkpoint written yet)'}"
    )


def input_contract(settings: TrainSettings, data_dir: Path) -> dict[str, Any]:
    """What the backbone's input was in training (recorded in ``backbone.pt``; evaluation reads it): the stream,
    clip length, crop size, normalisation, for flow the dataset's flow bound, and for a segment backbone its
    ``segments`` (``PretextMethod.segment_contract``)."""
    method = method_class(settings.method)
    stream = method.input_stream(settings)
    contract: dict[str, Any] = {"stream": stream, "clip_len": settings.clip_len, "crop_size": settings.crop_size,
                                "normalization": {"frames": "imagenet", "flow": "bound", "diff": "255"}[stream]}
    segments = method.segment_contract(settings)
    if segments is not None:
        contract["segments"] = segments
    if stream == "flow":
        with Dataset(data_dir) as dataset:
            contract["flow_bound"] = dataset.flow_bound
    return contract


def _run(settings: TrainSettings, data_dir: Path, out_dir: Path, ctx: DistributedContext, resume: bool,
         progress: bool, record: Mapping[str, Any] | None) -> Path:
    ckpt_dir = out_dir / "checkpoints"
    existing = latest_checkpoint(ckpt_dir)
    if existing is not None and not resume:
        raise FileExistsError(f"{out_dir}: already holds checkpoints; pass --resume or choose another --out")
    torch.manual_seed(settings.seed)
    np.random.seed(settings.seed)
    data = build_data(settings, data_dir)
    state = build_state(settings, data, ctx.device)
    if existing is not None:
        start_step = state.load(load_checkpoint(existing))
    else:
        start_step = 0
        if settings.init_from is not None:
            initialize_from(state.method, settings.init_from)
    model = wrap_model(state.method, settings, ctx)
    amp_dtype = autocast_dtype(ctx.device, settings.amp)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_config(record if record is not None else {"train": settings}, out_dir / "config.yaml")
    loader = DataLoader(
        data.dataset,
        batch_sampler=build_sampler(settings, data, ctx, start_step),
        num_workers=settings.num_workers,
        worker_init_fn=keep_freed_memory_in_worker,  # pace batches: ~5% less worker CPU (docs/TRAINING.md)
        pin_memory=ctx.device.type == "cuda",
        generator=torch.Generator().manual_seed(settings.seed),  # not the global RNG: dropout resumes exactly
    )
    logger = MetricsLogger(out_dir, start_step, enabled=ctx.is_main)
    bar = tqdm(total=data.total_steps, initial=start_step, disable=not (progress and ctx.is_main), unit="step")
    step, last_saved = start_step, existing
    window = MetricWindow()
    try:
        model.train()
        for batch in loader:
            batch = to_device(batch, ctx.device)
            with torch.no_grad():
                inputs = state.method.prepare(batch, augmentation_generator(ctx.device, settings.seed, step, ctx.rank))
            with torch.autocast(ctx.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                output = model(inputs)
            if not bool(all_reduce_mean(torch.isfinite(output.loss).float()) == 1.0):
                raise TrainingDiverged(not_finite_message(f"loss is {output.loss.item()},", step, last_saved))
            apply_gradients(state, output.loss, settings.grad_clip)
            step += 1
            state.method.after_step(inputs, output, step)
            if step % data.steps_per_epoch == 0:
                state.method.on_epoch_end(step // data.steps_per_epoch)
            window.add(output.metrics, settings.batch_size * state.method.clips_per_item())
            bar.update(1)
            if step % settings.log_every == 0 or step == data.total_steps:
                values = window.summary()
                values["lr"] = state.optimizer.param_groups[0]["lr"]
                logger.log(step, values)
                bar.set_postfix(loss=f"{values['loss']:.4g}", clips_s=f"{values['clips_per_s']:.1f}")
            if step % settings.checkpoint_every == 0 or step == data.total_steps:
                if not all(bool(torch.isfinite(p).all()) for p in state.method.parameters()):
                    raise TrainingDiverged(not_finite_message("parameters are", step, last_saved))
                last_saved = save_training_state(ckpt_dir, step, state, settings.keep_checkpoints, ctx)
    finally:
        bar.close()
        logger.close()
    export = out_dir / BACKBONE_FILE
    if ctx.is_main:
        save_backbone(state.method.backbone, export, contract=input_contract(settings, data_dir))
    barrier(ctx)
    return export


def initialize_from(method: PretextMethod, source: str | Path) -> list[str]:
    """Load the method state of ``source`` (a run folder: its latest checkpoint; or a checkpoint file) into
    ``method``: every entry whose name and shape match (weights, buffers such as a memory bank, extra state).
    Returns the names of this method's entries that were not there (new heads stay freshly initialised);
    ValueError when nothing matches."""
    path = Path(source)
    checkpoint = latest_checkpoint(path / "checkpoints") if path.is_dir() else path
    if checkpoint is None or not Path(checkpoint).is_file():
        raise ValueError(f"{source}: no checkpoint to start from (init_from needs a run folder or a checkpoint)")
    saved = load_checkpoint(checkpoint)["model"]
    own = method.state_dict()
    usable = {k: v for k, v in saved.items()
              if k in own and (not isinstance(v, torch.Tensor) or v.shape == own[k].shape)}
    if not any(isinstance(v, torch.Tensor) for v in usable.values()):
        raise ValueError(f"{checkpoint}: no parameter fits this method (another backbone?)")
    method.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


def apply_gradients(state: TrainingState, loss: torch.Tensor, grad_clip: float | None) -> None:
    """Backward pass (scaled when float16), optional gradient-norm clipping, optimizer and schedule step."""
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    if grad_clip is not None:
        state.scaler.unscale_(state.optimizer)
        torch.nn.utils.clip_grad_norm_(state.method.parameters(), grad_clip)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.scheduler.step()


class MetricWindow:
    """Means of the step metrics since the last summary (summed on the device, averaged over processes)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start a new window now."""
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.clips = 0
        self.started = time.perf_counter()

    def add(self, metrics: dict[str, torch.Tensor], clips: int) -> None:
        """Add one step's scalar ``metrics`` (device tensors, no sync) and its global number of ``clips``."""
        for name, value in metrics.items():
            self.sums[name] = self.sums.get(name, 0) + value.detach().float()
        self.steps += 1
        self.clips += clips

    def summary(self) -> dict[str, float]:
        """``{metric: mean}`` plus ``clips_per_s`` (global clips); starts a new window."""
        values = {name: float(all_reduce_mean(total / self.steps)) for name, total in self.sums.items()}
        values["clips_per_s"] = self.clips / max(time.perf_counter() - self.started, 1e-9)
        self.reset()
        return values


def save_training_state(folder: Path, step: int, state: TrainingState, keep: int, ctx: DistributedContext) -> Path:
    """Write the checkpoint of ``step`` (rank 0 only) and prune old ones; returns its path."""
    path = checkpoint_path(folder, step)
    if ctx.is_main:
        atomic_torch_save(state.state_dict(step), path)
        prune_checkpoints(folder, keep)
    barrier(ctx)
    return path
