"""Step-indexed batch samplers, pace frame indices and the learning-rate schedule (pure functions)."""
from __future__ import annotations

import numpy as np
import pytest

from preprocess.streams import arithmetic_runs
from train.clips import pace_frame_indices, pace_span, snap_slow_pace
from train.sampling import CurriculumBatchSampler, EpochBatchSampler


def test_epoch_sampler_covers_every_item_once_per_epoch_and_splits_over_ranks() -> None:
    full = EpochBatchSampler(10, 4, total_steps=4, seed=3)
    assert full.steps_per_epoch == 2
    first_epoch = np.concatenate([full.global_batch(0), full.global_batch(1)])
    assert len(set(first_epoch.tolist())) == 8 and set(first_epoch.tolist()) <= set(range(10))
    assert not np.array_equal(full.global_batch(0), full.global_batch(2))  # new permutation each epoch
    single = [[k.index for k in batch] for batch in full]
    ranks = [list(EpochBatchSampler(10, 4, total_steps=4, seed=3, rank=r, world_size=2)) for r in range(2)]
    for step, batch in enumerate(single):
        merged = [None] * 4
        for r in range(2):
            for key in ranks[r][step]:
                assert key.step == step
                merged[key.slot] = key.index
        assert merged == batch


def test_sampler_resumes_with_the_same_batches() -> None:
    whole = [[tuple(k) for k in b] for b in EpochBatchSampler(9, 3, total_steps=7, seed=1)]
    tail = [[tuple(k) for k in b] for b in EpochBatchSampler(9, 3, total_steps=7, seed=1, start_step=4)]
    assert tail == whole[4:]


def test_curriculum_sampler_draws_only_from_the_available_easiest_items() -> None:
    order = np.array([5, 2, 7, 0, 1, 3, 4, 6])
    sampler = CurriculumBatchSampler(order, lambda s: 4 if s < 3 else 8, 2, total_steps=40, seed=0)
    early = np.concatenate([sampler.global_batch(s) for s in range(3)])
    assert set(early.tolist()) <= {5, 2, 7, 0}
    late = np.concatenate([sampler.global_batch(s) for s in range(3, 40)])
    assert set(late.tolist()) == set(range(8))
    assert all(len(set(sampler.global_batch(s).tolist())) == 2 for s in range(40))
    assert sampler.pool_size(0) == 4 and CurriculumBatchSampler(order, lambda s: 0, 3, 1).pool_size(0) == 3


def test_batch_not_divisible_by_processes_is_an_error() -> None:
    with pytest.raises(ValueError, match="not divisible by 2 processes"):
        EpochBatchSampler(10, 3, total_steps=1, world_size=2)


@pytest.mark.parametrize(
    "start, pace, n, expected",
    [
        (0, 2, 100, [0, 2, 4, 6]),
        (3, 1, 100, [3, 4, 5, 6]),
        (0, 0.5, 100, [0, 0, 1, 1]),
        (2, 1 / 3, 100, [2, 2, 2, 3]),
        (5, 2, 9, [5, 7, 0, 2]),  # runs past the end of a short video: loops to its start
    ],
)
def test_pace_frame_indices(start: int, pace: float, n: int, expected: list[int]) -> None:
    assert pace_frame_indices(start, 4, pace, n).tolist() == expected


def test_pace_span_and_arithmetic_runs() -> None:
    assert pace_span(16, 4) == 61 and pace_span(16, 1) == 16 and pace_span(16, 0.5) == 8
    values = np.array([0, 2, 4, 6, 7, 9, 20])
    runs = arithmetic_runs(values)
    rebuilt = np.concatenate([np.arange(a, b, s) for a, b, s in runs])
    assert rebuilt.tolist() == values.tolist() and len(runs) == 3
    assert arithmetic_runs(np.array([4])) == [(4, 5, 1)]


def test_step_schedule_divides_the_lr_by_ten_every_six_epochs() -> None:
    from commands.pipeline import load_pipeline
    from train.optim import lr_factor

    settings = load_pipeline("stats").train
    factors = [lr_factor(settings, step, steps_per_epoch=10, total_steps=180) for step in (0, 59, 60, 119, 120)]
    assert factors == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01])


def test_contrastive_masks_mark_same_video_or_same_pace_but_never_the_clip_itself() -> None:
    import torch

    from train.methods.pace import contrastive_masks

    video = torch.tensor([0, 0, 1, 1, 2, 2])
    pace = torch.tensor([0, 3, 1, 0, 2, 3])
    # queries are keys 2..3 (the second process's block of a gathered batch)
    positives, itself = contrastive_masks(video[2:4], pace[2:4], video, pace, 2, "context")
    assert positives.tolist() == [[False, False, False, True, False, False], [False, False, True, False, False, False]]
    assert itself.tolist() == [[False, False, True, False, False, False], [False, False, False, True, False, False]]
    positives, _ = contrastive_masks(video[2:4], pace[2:4], video, pace, 2, "pace")
    assert positives.tolist() == [[False] * 6, [True, False, False, False, False, False]]


def test_slow_paces_written_as_decimals_repeat_each_frame_equally() -> None:
    assert snap_slow_pace(0.33) == 1 / 3 and snap_slow_pace(0.5) == 0.5 and snap_slow_pace(3.0) == 3.0
    indices = pace_frame_indices(0, 12, snap_slow_pace(0.33), 100)
    assert indices.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_checkpoints_are_written_atomically_found_and_pruned(tmp_path) -> None:
    import torch

    from train.checkpoint import atomic_torch_save, checkpoint_path, latest_checkpoint, load_checkpoint, prune_checkpoints

    for step in (3, 10, 7):
        atomic_torch_save({"step": step, "model": {"w": torch.full((2,), float(step))}}, checkpoint_path(tmp_path, step))
    (tmp_path / ".step_00000011.pt.abc.tmp").write_bytes(b"partial")  # a write that never finished
    assert latest_checkpoint(tmp_path) == tmp_path / "step_00000010.pt"
    assert torch.equal(load_checkpoint(latest_checkpoint(tmp_path))["model"]["w"], torch.full((2,), 10.0))
    prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step_*.pt")) == ["step_00000007.pt", "step_00000010.pt"]
    (tmp_path / "step_00000012.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="step_00000012.pt: cannot read checkpoint"):
        load_checkpoint(latest_checkpoint(tmp_path))
