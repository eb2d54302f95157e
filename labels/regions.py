"""The three spatial partitions of a square crop used by the statistics labels.

For a crop of side ``S`` (112 in the papers; any multiple of 8 works) the regions are:

- pattern 1, ``blocks``: a 4x4 grid of ``S/4`` blocks numbered row-major;
- pattern 2, ``rings``: four concentric square rings ``S/8`` wide, ring 0 the centre
  ``[3S/8:5S/8]``, ring 3 the outermost;
- pattern 3, ``triangles``: each ``S/2`` quadrant split by the image diagonal through it into two
  triangles that share the diagonal pixels, ordered WNW, NNW, NNE, ENE, WSW, SSW, SSE, ESE.

Labels are the 0-based region index plus one. Besides boolean masks, :class:`RegionLayout` holds
the coarsest common refinement of all three patterns ("parts"): every pixel lies in exactly one
part and every region is a union of parts, so per-region sums and histograms can be computed
once per part and combined with a small membership matrix.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

PATTERNS = ("blocks", "rings", "triangles")
PATTERN_SIZES = {"blocks": 16, "rings": 4, "triangles": 8}


def block_masks(size: int) -> np.ndarray:
    """Pattern 1: bool [16, size, size], block ``4*row + col``."""
    step = size // 4
    masks = np.zeros((16, size, size), dtype=bool)
    for row in range(4):
        for col in range(4):
            masks[4 * row + col, row * step:(row + 1) * step, col * step:(col + 1) * step] = True
    return masks


def ring_masks(size: int) -> np.ndarray:
    """Pattern 2: bool [4, size, size], ring 0 in the centre, ring 3 along the border."""
    width = size // 8
    squares = np.zeros((5, size, size), dtype=bool)  # squares[k]: centred square of half-side k*width
    for k in range(1, 5):
        lo, hi = size // 2 - k * width, size // 2 + k * width
        squares[k, lo:hi, lo:hi] = True
    return squares[1:] & ~squares[:-1]


def triangle_masks(size: int) -> np.ndarray:
    """Pattern 3: bool [8, size, size]; the diagonal pixels of each quadrant belong to both of its triangles."""
    yy, xx = np.mgrid[0:size, 0:size]
    half = size // 2
    top, left = yy < half, xx < half
    anti = xx + yy  # equals size-1 on the anti-diagonal
    return np.stack([
        top & left & (yy >= xx),  # WNW: left edge, upper half
        top & left & (yy <= xx),  # NNW: top edge, left half
        top & ~left & (anti <= size - 1),  # NNE
        top & ~left & (anti >= size - 1),  # ENE
        ~top & left & (anti <= size - 1),  # WSW
        ~top & left & (anti >= size - 1),  # SSW
        ~top & ~left & (yy >= xx),  # SSE
        ~top & ~left & (yy <= xx),  # ESE
    ])


@dataclass(frozen=True)
class RegionLayout:
    """All regions of one crop size, precomputed.

    Attributes:
        size: crop side ``S``.
        masks: bool [28, S, S], the blocks, then the rings, then the triangles.
        offsets: start of each pattern in ``masks`` (``{"blocks": 0, "rings": 16, "triangles": 20}``).
        part_of_pixel: int64 [S, S], the part each pixel lies in.
        membership: float64 [28, n_parts], 1 where the part belongs to the region.
        region_pixels: tuple of 28 int64 arrays, flat pixel indices of each region.
        region_area: float64 [28], pixels per region.
    """

    size: int
    masks: np.ndarray
    offsets: dict[str, int]
    part_of_pixel: np.ndarray
    membership: np.ndarray
    region_pixels: tuple[np.ndarray, ...]
    region_area: np.ndarray

    def pattern_slice(self, pattern: str) -> slice:
        """Rows of ``masks`` / ``membership`` holding ``pattern``."""
        start = self.offsets[pattern]
        return slice(start, start + PATTERN_SIZES[pattern])


@lru_cache(maxsize=8)
def region_layout(size: int) -> RegionLayout:
    """The :class:`RegionLayout` of a ``size`` x ``size`` crop (``size`` a positive multiple of 8)."""
    if size <= 0 or size % 8:
        raise ValueError(f"crop size must be a positive multiple of 8 for the statistics regions, got {size}")
    masks = np.concatenate([block_masks(size), ring_masks(size), triangle_masks(size)])
    starts = np.cumsum([0, *(PATTERN_SIZES[p] for p in PATTERNS)])
    offsets = {pattern: int(start) for pattern, start in zip(PATTERNS, starts)}
    signatures = masks.reshape(len(masks), -1).T  # [S*S, 28]: regions each pixel belongs to
    unique, part_of_pixel = np.unique(signatures, axis=0, return_inverse=True)
    flat = masks.reshape(len(masks), -1)
    layout = RegionLayout(
        size=size,
        masks=masks,
        offsets=offsets,
        part_of_pixel=part_of_pixel.reshape(size, size),
        membership=unique.T.astype(np.float64),
        region_pixels=tuple(np.flatnonzero(row) for row in flat),
        region_area=flat.sum(axis=1).astype(np.float64),
    )
    for array in (layout.masks, layout.part_of_pixel, layout.membership, layout.region_area, *layout.region_pixels):
        array.setflags(write=False)  # the layout is cached and shared by every caller
    return layout
