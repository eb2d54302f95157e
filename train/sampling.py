"""Step-indexed batch samplers: the global batch of every optimizer step is a pure function of (seed, step).

That makes resume exact (restart at step s and the same batches follow), makes the batches independent of the
number of DataLoader workers, and splits one global batch over DDP processes (rank r takes items r, r+W, ...).
Each yielded item is a :class:`SampleKey` ``(index, step, slot)``; datasets seed their own random draws
(crop, pace, start) from it, so a clip depends only on the seed, the step and its place in the global batch.
"""
from __future__ import annotations

from typing import Callable, Iterator, NamedTuple

import numpy as np
from torch.utils.data import Sampler


class SampleKey(NamedTuple):
    """One item of a batch: dataset ``index``, the optimizer ``step`` and its ``slot`` in the global batch."""

    index: int
    step: int
    slot: int


class StepBatchSampler(Sampler):
    """Base class: yields this process's share of the global batch for steps ``start_step .. total_steps-1``."""

    def __init__(
        self, batch_size: int, total_steps: int, seed: int = 0, rank: int = 0, world_size: int = 1, start_step: int = 0
    ) -> None:
        if batch_size % world_size:
            raise ValueError(f"global batch size {batch_size} is not divisible by {world_size} processes")
        self.batch_size = batch_size
        self.total_steps = total_steps
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start_step = start_step

    def global_batch(self, step: int) -> np.ndarray:
        """Dataset indices int64 [batch_size] of the whole (all-process) batch at ``step``."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[list[SampleKey]]:
        for step in range(self.start_step, self.total_steps):
            batch = self.global_batch(step)
            yield [SampleKey(int(batch[slot]), step, slot) for slot in range(self.rank, len(batch), self.world_size)]

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)


class EpochBatchSampler(StepBatchSampler):
    """Plain epochs: a fresh permutation of all ``n_items`` per epoch, cut into full batches (the rest dropped)."""

    def __init__(self, n_items: int, batch_size: int, total_steps: int, **kwargs) -> None:
        super().__init__(batch_size, total_steps, **kwargs)
        if n_items < batch_size:
            raise ValueError(f"only {n_items} training items for a batch of {batch_size}: lower train.batch_size")
        self.n_items = n_items
        self.steps_per_epoch = n_items // batch_size

    def global_batch(self, step: int) -> np.ndarray:
        epoch, within = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n_items)
        return order[within * self.batch_size : (within + 1) * self.batch_size]


class CurriculumBatchSampler(StepBatchSampler):
    """Curriculum: at step s the batch is drawn uniformly (without replacement) from the ``available(s)`` easiest
    items, ``easiest_first`` listing dataset indices from easiest to hardest (Hacohen & Weinshall 2019)."""

    def __init__(
        self,
        easiest_first: np.ndarray,
        available: Callable[[int], int],
        batch_size: int,
        total_steps: int,
        **kwargs,
    ) -> None:
        super().__init__(batch_size, total_steps, **kwargs)
        if len(easiest_first) < batch_size:
            raise ValueError(f"only {len(easiest_first)} training items for a batch of {batch_size}")
        self.easiest_first = np.asarray(easiest_first, dtype=np.int64)
        self.available = available

    def pool_size(self, step: int) -> int:
        """How many of the easiest items step ``step`` draws from (at least one batch, at most all)."""
        return int(np.clip(self.available(step), self.batch_size, len(self.easiest_first)))

    def global_batch(self, step: int) -> np.ndarray:
        pool = self.easiest_first[: self.pool_size(step)]
        return np.random.default_rng([self.seed, step]).choice(pool, size=self.batch_size, replace=False)
