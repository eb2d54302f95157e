"""Discrimination pieces under DDP with 2 CPU processes (gloo, torch.multiprocessing spawn): the memory bank
is the same on every process and equals the single-process update with the whole batch; the CVRL loss over
gathered negatives equals the single-process loss; the IR normaliser is the same on every process."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from train.cvrl import symmetric_nt_xent
from train.instance_losses import InstanceRecognitionNCE
from train.memory_bank import MemoryBank

WORLD = 2
PER_PROCESS = 3


def global_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """indices [6], bank features [6, 8], CVRL views [6, 16] x 2: the same on every process."""
    g = torch.Generator().manual_seed(0)
    return (torch.tensor([4, 17, 9, 30, 0, 22]), F.normalize(torch.randn(6, 8, generator=g), dim=1),
            torch.randn(6, 16, generator=g), torch.randn(6, 16, generator=g))


def worker(rank: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        mine = slice(rank * PER_PROCESS, (rank + 1) * PER_PROCESS)
        indices, features, view1, view2 = global_batch()
        bank = MemoryBank(32, 8, seed=0)
        bank.update(indices[mine], features[mine])
        local1, local2 = view1[mine].clone().requires_grad_(), view2[mine].clone().requires_grad_()
        loss = symmetric_nt_xent(local1, local2)
        loss.backward()
        ir = InstanceRecognitionNCE(num_noise=10)
        ir(features[mine], indices[mine], bank, torch.Generator().manual_seed(rank))
        torch.save({"bank": bank.vectors, "loss": loss.detach(), "grad1": local1.grad, "grad2": local2.grad,
                    "log_z": ir.log_normalizer}, f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_share_the_bank_and_the_single_process_loss(tmp_path: Path) -> None:
    mp.spawn(worker, args=(str(tmp_path),), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    indices, features, view1, view2 = global_batch()
    single = MemoryBank(32, 8, seed=0)
    single.update(indices, features)
    for result in results:
        assert torch.equal(result["bank"], single.vectors)
    full1, full2 = view1.clone().requires_grad_(), view2.clone().requires_grad_()
    loss = symmetric_nt_xent(full1, full2)
    loss.backward()
    for rank, result in enumerate(results):
        mine = slice(rank * PER_PROCESS, (rank + 1) * PER_PROCESS)
        torch.testing.assert_close(result["loss"], loss.detach())
        # each process gets its rows' gradient times the world size; DDP's averaging over processes undoes it
        torch.testing.assert_close(result["grad1"], WORLD * full1.grad[mine])
        torch.testing.assert_close(result["grad2"], WORLD * full2.grad[mine])
    assert results[0]["log_z"].item() == results[1]["log_z"].item()
    # the shared Z is the mean of the two processes' estimates
    estimates = []
    for rank in range(WORLD):
        mine = slice(rank * PER_PROCESS, (rank + 1) * PER_PROCESS)
        ir = InstanceRecognitionNCE(num_noise=10)
        ir(features[mine], indices[mine], single, torch.Generator().manual_seed(rank))
        estimates.append(ir.log_normalizer.exp())
    torch.testing.assert_close(results[0]["log_z"].exp(), torch.stack(estimates).mean())
    assert not torch.isclose(estimates[0], estimates[1])  # the processes did estimate different values
