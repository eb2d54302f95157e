"""Backbones by name, and saving/loading them with the arguments they were built with."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from train.backbones.base import Backbone
from train.backbones.registry import BACKBONES
from train.checkpoint import atomic_torch_save


def build_backbone(name: str, in_channels: int = 3, **kwargs: Any) -> Backbone:
    """Randomly initialised backbone ``name`` (a key of ``BACKBONES``) for clips of ``in_channels`` channels
    (3 RGB, 2 flow, 1 difference); ``kwargs`` go to its constructor. The result remembers its build
    arguments in ``build_args`` (used by ``save_backbone``)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    try:
        model = BACKBONES[name](in_channels=in_channels, **kwargs)
    except TypeError as exc:  # an argument the constructor does not take
        raise ValueError(f"backbone {name!r}: {exc}") from exc
    model.build_args = {"name": name, "in_channels": in_channels, "kwargs": dict(kwargs)}
    model.input_contract = {}  # what training fed it (stream, clip length, ...): set by load_backbone
    return model


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside DistributedDataParallel (``.module``) / ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def save_backbone(model: Backbone, path: str | Path, contract: dict[str, Any] | None = None) -> None:
    """Write ``{'name', 'in_channels', 'kwargs', 'state_dict', 'input'}`` to ``path`` (torch.save, CPU tensors);
    ``input`` is the input contract of training (``contract``: stream, clip length, crop size, normalisation,
    flow bound), which evaluation reads instead of being told again.

    The model must come from ``build_backbone`` (or ``load_backbone``); DistributedDataParallel and
    ``torch.compile`` wrappers are looked through. The file appears under its final name only once
    completely written.
    """
    model = unwrap(model)
    build_args = getattr(model, "build_args", None)
    if build_args is None:
        raise ValueError(f"cannot save {type(model).__name__} to {path}: it was not made by build_backbone")
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    atomic_torch_save({**build_args, "state_dict": state, "input": dict(contract or {})}, path)


def _load_problem(error: Exception) -> str:
    """What torch.load found wrong, without its advice to load untrusted files with ``weights_only=False``."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    elif "weights_only" in text:
        text = ""
    text = " ".join(text.split())
    return f"{type(error).__name__}{': ' + text if text else ''}"


def load_backbone(path: str | Path, map_location: str | torch.device = "cpu") -> Backbone:
    """Rebuild the backbone saved at ``path`` by ``save_backbone`` and load its weights (eval mode)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols
            saved = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise ValueError(f"{path}: not a PyTorch backbone file (expected the backbone.pt a training run writes): "
                         f"{_load_problem(error)}") from None
    required = {"name", "in_channels", "kwargs", "state_dict"}
    if not isinstance(saved, dict) or not required <= set(saved):
        raise ValueError(f"{path}: not a backbone file (needs a dict with keys {sorted(required)})")
    model = build_backbone(saved["name"], saved["in_channels"], **saved["kwargs"])
    model.load_state_dict(saved["state_dict"])
    model.input_contract = dict(saved.get("input") or {})
    return model.to(map_location).eval()
