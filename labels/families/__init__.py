"""Label families as plug-ins: each family is one module here, registered by name (``make-labels --task NAME``,
``labels.tasks`` in a pipeline).

A clip family labels every (clip start, crop variant) of a video: it names the streams it reads, the fields
of its rows (shape and storage dtype) and ``label(view)``, the values of one cropped clip. ``labels.job`` runs
every missing family of a video in one pass over its clips, so what families share (the flow read, the
motion boundaries of a crop) is computed once (:class:`ClipView` caches it). Each family's output lives in its
own folder ``LABELS/<name>/`` with its own recorded settings (``labels.store``). See docs/ARCHITECTURE.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from labels.stats import MotionBoundaries, motion_boundaries
from preprocess.streams import crop


@dataclass
class ClipView:
    """One clip of a video cut with one crop variant, computed lazily and cached: ``flow()`` float32
    [T-1, S, S, 2], ``frames()`` uint8 [T, S, S, 3] (contiguous), ``boundaries()`` of the flow."""

    read_flow: Callable[[], np.ndarray]
    read_frames: Callable[[], np.ndarray]
    y: int
    x: int
    size: int
    flip: bool
    _cache: dict[str, Any] = field(default_factory=dict)

    def _get(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self._cache:
            self._cache[name] = make()
        return self._cache[name]

    def flow(self) -> np.ndarray:
        return self._get("flow", lambda: crop(self.read_flow(), self.y, self.x, self.size, self.flip, "flow"))

    def frames(self) -> np.ndarray:
        return self._get("frames", lambda: np.ascontiguousarray(
            crop(self.read_frames(), self.y, self.x, self.size, self.flip)))

    def boundaries(self) -> MotionBoundaries:
        return self._get("boundaries", lambda: motion_boundaries(self.flow()[..., 0], self.flow()[..., 1]))


@dataclass(frozen=True)
class ClipFamily:
    """A family of per-(clip, crop variant) labels: its ``name``, the ``streams`` it reads, its row ``fields``
    ``{name: (shape, storage dtype)}`` and ``label(view) -> {field: value}``."""

    name: str
    streams: tuple[str, ...]
    fields: dict[str, tuple[tuple[int, ...], type]]
    label: Callable[[ClipView], dict[str, Any]]


FAMILIES: dict[str, ClipFamily] = {}


def register_family(family: ClipFamily) -> ClipFamily:
    """Make ``family`` computable as ``make-labels --task family.name``."""
    if family.name in FAMILIES:
        raise ValueError(f"label family {family.name!r} is registered twice")
    FAMILIES[family.name] = family
    return family


def family(name: str) -> ClipFamily:
    """The registered family ``name``; ValueError listing the known ones otherwise."""
    if name not in FAMILIES:
        raise ValueError(f"unknown label task {name!r} (known: {', '.join(sorted(FAMILIES))})")
    return FAMILIES[name]


from labels.families import curriculum, stats  # noqa: E402,F401  (each registers its family)
