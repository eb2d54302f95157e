"""Settings of the CPU stage (one section of a pipeline in pipelines.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class FlowSettings:
    """Optical flow backend and its storage."""

    algo: Literal["tvl1", "tvl1_torch", "dis", "farneback"] = "tvl1"
    bound: float = 20.0  # flow clipped to [-bound, bound] px, quantized linearly to uint8
    tvl1: dict[str, Any] = field(default_factory=dict)  # DualTVL1 setters, e.g. {tau: 0.25, lambda: 0.15}
    device: Literal["cpu", "cuda"] = "cpu"  # tvl1_torch: where the pairs are iterated
    batch: int = 2  # tvl1_torch: frame pairs per call (1-2 on a CPU core, tens on a GPU; frame batches grow to match)
    dis_preset: Literal["ultrafast", "fast", "medium"] = "medium"
    farneback: dict[str, Any] = field(default_factory=dict)  # calcOpticalFlowFarneback keyword arguments


@dataclass
class ExtractSettings:
    """How videos become frames, flows, image differences and motion boundaries."""

    size: tuple[int, int] | None = (128, 171)  # (h, w); None to keep the short-side rule below
    short_side: int | None = None  # resize so the short side has this length (used when size is None)
    fps: float | None = None  # resample to this frame rate (None: keep the source rate)
    every: int = 1  # keep every k-th frame (after fps resampling)
    image_format: Literal["jpeg", "raw"] = "jpeg"
    jpeg_quality: int = 90
    flow: FlowSettings = field(default_factory=FlowSettings)
    diff: bool = True  # store grayscale image differences
    motion_boundaries: bool = False  # with flow: also store its motion boundaries |grad u|, |grad v| (stream mb)
    motion_boundaries_bound: float = 2.0  # px/px; clipped to [0, bound], uint8 step bound/255 (docs/FLOW.md)
    shard_mb: float = 256.0  # target shard size in MB (a shard is closed once its videos reach it)
    video_timeout_s: float = 900.0  # a video taking longer is recorded as failed

    def __post_init__(self) -> None:
        if self.size is None and self.short_side is None:
            raise ValueError("one of size or short_side must be set")
        if self.size is not None and min(self.size) < 1:
            raise ValueError(f"size must be two positive lengths (h, w), got {list(self.size)}")
        if self.short_side is not None and self.short_side < 1:
            raise ValueError(f"short_side must be >= 1, got {self.short_side}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if self.flow.bound <= 0:
            raise ValueError(f"flow.bound must be > 0, got {self.flow.bound}")
        if self.motion_boundaries_bound <= 0:
            raise ValueError(f"motion_boundaries_bound must be > 0, got {self.motion_boundaries_bound}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.shard_mb <= 0 or self.video_timeout_s <= 0:
            raise ValueError(f"shard_mb and video_timeout_s must be > 0, got {self.shard_mb}, {self.video_timeout_s}")
