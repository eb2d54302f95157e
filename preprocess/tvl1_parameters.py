"""Parameters of the PyTorch TV-L1 (``preprocess.tvl1_torch``), named and defaulted as OpenCV's DualTVL1.

The defaults are those of ``cv2.optflow.DualTVL1OpticalFlow_create()`` (OpenCV 5.0, checked by
tests/test_tvl1_torch.py), so one ``flow.tvl1`` mapping of pipelines.yaml configures both backends.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

ALIASES = {"nscales": "scalesnumber", "warps": "warpingsnumber"}  # spellings that configure_tvl1 also takes


@dataclass(frozen=True)
class TVL1Parameters:
    """DualTVL1 parameters (Zach-Pock-Bischof 2007; Sanchez Perez et al., IPOL 2013 for the notation).

    Attributes:
        tau: time step of the dual (p) update (stable for tau <= 0.25).
        lambda_: weight of the data term (OpenCV's ``lambda``); smaller gives smoother flow.
        theta: coupling of the auxiliary flow v to the flow u.
        scales_number: pyramid levels (fewer when a level would be smaller than 16 px).
        warpings_number: warps of the second image per level.
        epsilon: stop a warp when the mean squared change of u over the pixels falls to epsilon**2.
        inner_iterations: primal-dual iterations between two median filterings.
        outer_iterations: median filterings per warp (at most inner * outer iterations per warp).
        scale_step: size ratio of one pyramid level to the next finer one.
        gamma: weight of the illumination-change term (0 disables it).
        median_filtering: median filter size applied to u before each outer iteration (1: none; 3 or 5).
    """

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    scales_number: int = 5
    warpings_number: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, bool) or not isinstance(value, int if spec.type == "int" else (int, float)):
                raise ValueError(f"tvl1.{spec.name}: expected {spec.type}, got {value!r}")
        if min(self.scales_number, self.warpings_number, self.inner_iterations, self.outer_iterations) < 1:
            raise ValueError(f"tvl1: scales, warps and iteration counts must be >= 1, got {self}")
        if self.tau <= 0 or self.theta <= 0 or self.lambda_ <= 0 or self.epsilon < 0:
            raise ValueError(f"tvl1: tau, theta and lambda must be > 0 and epsilon >= 0, got {self}")
        if not 0 < self.scale_step < 1:
            raise ValueError(f"tvl1.scale_step must be in (0, 1), got {self.scale_step}")
        if self.median_filtering not in (0, 1, 3, 5):
            raise ValueError(f"tvl1.median_filtering must be 0, 1, 3 or 5 (float median), got {self.median_filtering}")

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> TVL1Parameters:
        """Parameters from keys spelled as ``preprocess.flow.configure_tvl1`` takes them (setter names without
        ``set`` in any case or snake_case, ``nscales``, ``warps``, ``lambda``); an unknown key is a ValueError."""
        by_plain = {spec.name.replace("_", ""): spec.name for spec in fields(cls)}
        values = {}
        for key, value in params.items():
            plain = key.replace("_", "").lower()
            plain = ALIASES.get(plain, plain)
            if plain not in by_plain:
                raise ValueError(f"flow.tvl1: unknown parameter {key!r} (known: {', '.join(sorted(by_plain))})")
            values[by_plain[plain]] = value
        return cls(**values)
