"""Settings of the label stage (one section of a pipeline in pipelines.yaml)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from common.errors import ConfigError
from common.settings import build
from labels.families import FAMILIES, NoSettings, family_settings_class


@dataclass
class LabelSettings:
    """Which labels to compute and for which clips and crops."""

    tasks: list[str] = field(default_factory=lambda: ["stats", "curriculum"])  # registered label families
    clip_len: int = 16  # frames per clip (and clip_len - 1 flows)
    stride: int = 16  # distance between clip starts (16: non-overlapping)
    crop_size: int = 112  # side of the square crop the labels describe (a multiple of 8)
    # crop variants as [y, x, flip]: offsets of the crop within the stored frame, flip = mirrored
    crop_variants: list[tuple[int, int, bool]] = field(
        default_factory=lambda: [(8, 29, False), (8, 29, True), (0, 0, False), (16, 59, False)]
    )
    video_timeout_s: float = 600.0  # labelling one video taking longer is recorded as a failure
    family_settings: dict[str, Any] = field(default_factory=dict)  # each family's own section labels.<family>

    def __post_init__(self) -> None:
        unknown = sorted(set(self.tasks) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown label task(s) {', '.join(unknown)} (known: {', '.join(sorted(FAMILIES))})")
        if self.clip_len < 2:
            raise ValueError(f"clip_len must be >= 2 (clips need flow), got {self.clip_len}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if self.crop_size < 8 or self.crop_size % 8:
            raise ValueError(f"crop_size must be a positive multiple of 8, got {self.crop_size}")
        if not self.crop_variants:
            raise ValueError("crop_variants must list at least one [y, x, flip]")
        if len(set(map(tuple, self.crop_variants))) != len(self.crop_variants):
            raise ValueError(f"crop_variants has duplicates: {self.crop_variants}")
        if any(y < 0 or x < 0 for y, x, _ in self.crop_variants):
            raise ValueError(f"crop offsets must be >= 0, got {self.crop_variants}")

    def of(self, family: str) -> Any:
        """The settings of ``family`` (its section, or its defaults)."""
        return self.family_settings.get(family) or family_settings_class(family)()


def build_label_settings(values: Mapping[str, Any] | None, where: str) -> LabelSettings:
    """``LabelSettings`` from a pipeline's ``labels:`` mapping; a sub-section named after a registered family
    is checked against that family's settings dataclass (families without settings take none)."""
    values = dict(values or {})
    if "family_settings" in values:
        raise ConfigError(f"{where}: unknown key 'family_settings' (a family's settings go in {where}.<family>)")
    sections = {name: values.pop(name) for name in list(values) if name in FAMILIES}
    settings = build(LabelSettings, values, where)
    for name, section in sections.items():
        cls = family_settings_class(name)
        if cls is NoSettings:
            raise ConfigError(f"{where}.{name}: the {name} family has no settings of its own")
        settings.family_settings[name] = build(cls, section, f"{where}.{name}")
    return settings
