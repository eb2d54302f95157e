"""Training a pretext method on one fixed batch, shared by the method tests."""
from __future__ import annotations

import torch


def train_steps(method: torch.nn.Module, inputs: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                steps: int) -> dict[str, list[float]]:
    """``steps`` optimizer steps on ``inputs``; the history of every logged metric."""
    history: dict[str, list[float]] = {}
    for _ in range(steps):
        output = method(inputs)
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        for name, value in output.metrics.items():
            history.setdefault(name, []).append(float(value))
    return history
