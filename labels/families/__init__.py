"""Label families as plug-ins: each family is one module here, registered by name (``make-labels --task NAME``,
``labels.tasks`` in a pipeline). Each family's output lives in its own folder ``LABELS/<name>/`` with its own
recorded settings (``labels.store``). Three kinds, by the phases they declare (see docs/ARCHITECTURE.md):

- :class:`ClipFamily`: rows per (clip start, crop variant) of a video: the streams it reads, the fields of its
  rows (shape, storage dtype) and ``label(view)``. ``labels.job`` runs every missing clip family of a video in
  one pass over its clips, so what they share (the flow read, a crop's motion boundaries) is computed once
  (:class:`ClipView` caches it).
- :class:`VideoFamily`: named arrays per video (``encode``, parallel on Dask, resumable, failures per video),
  optionally after a ``fit`` on the client over a bounded sample of the families it ``requires`` (a model saved
  in its folder and read by every worker), consolidated into one file when its ``fields`` have fixed shapes.
- :class:`GlobalFamily`: one ``compute`` over every video's output of the families it requires (e.g. k-means).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from labels.stats import MotionBoundaries, clip_motion_boundaries
from preprocess.streams import crop


@dataclass
class ClipView:
    """One clip of a video cut with one crop variant, computed lazily and cached: ``flow()`` float32
    [T-1, S, S, 2], ``frames()`` uint8 [T, S, S, 3] (contiguous), ``boundaries()`` of the flow.

    ``clip`` holds the whole clip of each stream the families declared (``{"flow": float32 [T-1, H, W, 2],
    "frames": uint8 [T, H, W, 3]}``), read once per clip and shared by its crop variants; asking for a stream
    that is not there is a ValueError naming it."""

    clip: dict[str, np.ndarray]
    y: int
    x: int
    size: int
    flip: bool
    _cache: dict[str, Any] = field(default_factory=dict)

    def _get(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self._cache:
            self._cache[name] = make()
        return self._cache[name]

    def _stream(self, name: str) -> np.ndarray:
        if name not in self.clip:
            raise ValueError(f"the {name} stream was not read for this clip (read: {', '.join(self.clip) or 'none'}); "
                             f"a family that uses it lists {name!r} in its streams")
        return self.clip[name]

    def flow(self) -> np.ndarray:
        return self._get("flow", lambda: crop(self._stream("flow"), self.y, self.x, self.size, self.flip, "flow"))

    def frames(self) -> np.ndarray:
        return self._get("frames", lambda: np.ascontiguousarray(
            crop(self._stream("frames"), self.y, self.x, self.size, self.flip)))

    def boundaries(self) -> MotionBoundaries:
        return self._get("boundaries", lambda: clip_motion_boundaries(self.flow()[..., 0], self.flow()[..., 1]))


@dataclass(frozen=True)
class ClipFamily:
    """A family of per-(clip, crop variant) labels: its ``name``, the ``streams`` it reads, its row ``fields``
    ``{name: (shape, storage dtype)}`` and ``label(view) -> {field: value}``."""

    name: str
    streams: tuple[str, ...]
    fields: dict[str, tuple[tuple[int, ...], type]]
    label: Callable[[ClipView], dict[str, Any]]


@dataclass(frozen=True)
class NoSettings:
    """A family without settings of its own (clip families use the labels section's clip geometry)."""


@dataclass
class FamilyContext:
    """What a family's ``fit`` / ``compute`` sees on the client: the dataset, its own folder (for model files),
    its settings, the ids of the videos and ``read(family, video_id)``: the stored arrays of a required
    family for one video (a part), and ``consolidated(family)``: a required family's consolidated arrays
    (``videos`` str [V] plus its fields [V, ...])."""

    dataset: Any
    folder: Any
    settings: Any
    video_ids: list[str]
    read: Callable[[str, str], dict[str, np.ndarray]]
    consolidated: Callable[[str], dict[str, np.ndarray]]


@dataclass
class VideoContext:
    """What a video family's ``encode`` sees on a worker: the video's record (``preprocess.dataset``:
    ``id``, ``path`` of the source file, ``n_frames``, ...), the dataset, its own folder (model files), its
    settings and ``read(family)``: the stored arrays of a required family for this video."""

    video: Any
    dataset: Any
    folder: Any
    settings: Any
    read: Callable[[str], dict[str, np.ndarray]]


@dataclass(frozen=True)
class VideoFamily:
    """Arrays per video: ``encode(context) -> {name: array}``, optionally after ``fit(context)`` (which writes
    its model into ``context.folder``); ``fields`` ``{name: (shape, dtype)}`` when the outputs have fixed
    shapes and are consolidated into ``<name>.h5``, None for variable ones (read per video)."""

    name: str
    encode: Callable[[VideoContext], dict[str, np.ndarray]]
    Settings: type = NoSettings
    requires: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()
    fields: dict[str, tuple[tuple[int, ...], type]] | None = None
    fit: Callable[[FamilyContext], None] | None = None


@dataclass(frozen=True)
class GlobalFamily:
    """One result over all videos: ``compute(context) -> {name: array}``, stored in ``<name>.h5``; computed again
    only when its inputs changed (``labels.make.global_inputs``)."""

    name: str
    compute: Callable[[FamilyContext], dict[str, np.ndarray]]
    Settings: type = NoSettings
    requires: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()


Family = ClipFamily | VideoFamily | GlobalFamily
FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Make ``family`` computable as ``make-labels --task family.name``."""
    if family.name in FAMILIES:
        raise ValueError(f"label family {family.name!r} is registered twice")
    FAMILIES[family.name] = family
    return family


def family(name: str) -> Family:
    """The registered family ``name``; ValueError listing the known ones otherwise."""
    if name not in FAMILIES:
        raise ValueError(f"unknown label task {name!r} (known: {', '.join(sorted(FAMILIES))})")
    return FAMILIES[name]


def family_settings_class(name: str) -> type:
    """The settings dataclass of family ``name`` (its section ``labels.<name>``)."""
    return getattr(family(name), "Settings", NoSettings)


from labels.families import clusters, curriculum, fisher, idt, stats  # noqa: E402,F401  (each registers its family)
