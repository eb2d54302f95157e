"""Shared test fixtures: the real data folder beside the checkout."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real videos and flow ground truth); its absence is an error, not a skip."""
    if not (SHARED_DATA / "videos.csv").is_file():
        raise FileNotFoundError(f"real test data not found at {SHARED_DATA} (expected ../shared/data beside the repo)")
    return SHARED_DATA
