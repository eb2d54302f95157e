"""Shared test fixtures: the real data folder beside the checkout."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from train.backbones import build_backbone, save_backbone

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real videos and flow ground truth); its absence is an error, not a skip."""
    if not (SHARED_DATA / "videos.csv").is_file():
        raise FileNotFoundError(f"real test data not found at {SHARED_DATA} (expected ../shared/data beside the repo)")
    return SHARED_DATA


TINY_C3D = {"channels": (8, 16, 16, 32, 32)}  # a narrow C3D: evaluation tests on CPU


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 'training run' holding a narrow C3D (``TINY_C3D``) whose weights differ from the random twin's (seed 0)."""
    root = tmp_path_factory.mktemp("run")
    torch.manual_seed(123)
    save_backbone(build_backbone("c3d", 3, **TINY_C3D), root / "backbone.pt")
    return root
