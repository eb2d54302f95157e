"""A picture of one clip's statistics labels: frames, summed motion boundaries with the chosen regions and
directions, per-frame boundary energy, colour consistency of every region and the dominant colours; and, when
the dataset stores them, a row of its per-frame motion boundaries (the ``mb`` stream)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from labels.curriculum import score_from_boundaries  # noqa: E402
from labels.regions import PATTERNS, region_layout  # noqa: E402
from labels.stats import (  # noqa: E402
    appearance_statistics,
    colour_consistency,
    colour_keys,
    colour_octant,
    clip_motion_boundaries,
    motion_labels,
    most_frequent_key,
)

OCTANT_NAMES = ["blue", "cyan", "magenta", "white", "black", "green", "red", "yellow"]
PATTERN_TITLES = {"blocks": "pattern 1: blocks", "rings": "pattern 2: rings", "triangles": "pattern 3: triangles"}
PATTERN_COLOURS = {"blocks": "red", "rings": "cyan", "triangles": "yellow"}


def _outline(ax: plt.Axes, mask: np.ndarray, colour: str, width: float = 2.0) -> None:
    ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=width)


def _arrow(ax: plt.Axes, mask: np.ndarray, direction: int, colour: str) -> None:
    """Arrow at the region's centroid pointing to direction bin ``direction`` (1-based, 45 degree bins,
    angles as ``cv2.cartToPolar(Dx, Dy)`` in image coordinates: y points down)."""
    ys, xs = np.nonzero(mask)
    angle = np.deg2rad(45.0 * (direction - 1))
    length = 12.0
    ax.annotate("", xy=(xs.mean() + length * np.cos(angle), ys.mean() + length * np.sin(angle)),
                xytext=(xs.mean(), ys.mean()), arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 2})


def _key_rgb(key: int) -> tuple[float, float, float]:
    return ((key & 255) / 255, ((key >> 8) & 255) / 255, ((key >> 16) & 255) / 255)


def _stored_boundaries_row(axes: np.ndarray, boundaries: np.ndarray) -> None:
    """Four panels of the stored motion boundaries [T-1, S, S, 2] px/px: u and v at the middle flow frame and
    their means over the clip, on one colour scale per pair."""
    middle = len(boundaries) // 2
    for column, (values, what) in enumerate(((boundaries[middle], f"flow frame {middle}"),
                                             (boundaries.mean(axis=0), "clip mean"))):
        top = max(float(values.max()), 1e-6)
        for k, name in enumerate(("u", "v")):
            ax = axes[2 * column + k]
            shown = ax.imshow(values[..., k], cmap="magma", vmin=0.0, vmax=top)
            ax.figure.colorbar(shown, ax=ax, fraction=0.046)
            ax.set_title(f"stored mb stream: |grad {name}| (px/px)\n{what}", fontsize=10)


def render_clip_labels(frames: np.ndarray, flow: np.ndarray, out_path: str | Path,
                       title: str = "", stored_mb: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Draw the labels of one cropped clip into a PNG.

    Args:
        frames: uint8 [T, S, S, 3] RGB crop; flow: float [T-1, S, S, 2] (u, v) px of the same crop.
        out_path: PNG file to write; title: first line of the figure title.
        stored_mb: the stored motion boundaries of the same crop, float [T-1, S, S, 2] px/px, drawn in a fourth
            row when given.
    Returns:
        ``{"motion": int64 [14], "appearance": int64 [13], "score": float64 []}`` as drawn.
    """
    layout = region_layout(frames.shape[1])
    boundaries = clip_motion_boundaries(flow[..., 0], flow[..., 1])
    motion = motion_labels(boundaries)
    appearance = appearance_statistics(frames)
    score = score_from_boundaries(boundaries)
    consistency = colour_consistency(frames)
    keys = colour_keys(frames).reshape(frames.shape[0], -1)

    rows = 3 if stored_mb is None else 4
    fig, axes = plt.subplots(rows, 4, figsize=(16, 13 / 3 * rows))
    for ax, t in zip(axes[0], np.linspace(0, len(frames) - 1, 4).astype(int)):
        ax.imshow(frames[t])
        ax.set_title(f"frame {t}")
    for k, name in enumerate(("u", "v")):
        ax = axes[1, k]
        ax.imshow(boundaries.magnitude[k], cmap="magma")
        ax.set_title(f"{name}: summed motion boundary |(Dx, Dy)|")
        for p, pattern in enumerate(PATTERNS):
            region, direction = motion[4 * p + 2 * k], motion[4 * p + 2 * k + 1]
            mask = layout.masks[layout.offsets[pattern] + region - 1]
            _outline(ax, mask, PATTERN_COLOURS[pattern])
            _arrow(ax, mask, direction, PATTERN_COLOURS[pattern])
    ax = axes[1, 2]
    steps = np.arange(1, boundaries.frame_energy.shape[1] + 1)
    ax.bar(steps - 0.2, boundaries.frame_energy[0], width=0.4, label="u")
    ax.bar(steps + 0.2, boundaries.frame_energy[1], width=0.4, label="v")
    ax.axvline(motion[12] - 0.2, color="C0", ls="--")
    ax.axvline(motion[13] + 0.2, color="C1", ls="--")
    ax.set_title(f"per-flow boundary energy\n(global: u {motion[12]}, v {motion[13]})")
    ax.set_xlabel("flow frame")
    ax.legend()
    axes[1, 3].axis("off")
    axes[1, 3].text(0, 0.8, "outlines / arrows:\n  red    pattern 1 block\n  cyan   pattern 2 ring\n"
                    "  yellow pattern 3 triangle\narrow: direction bin\n(45 deg bins, y down)",
                    fontsize=11, va="top", family="monospace")
    for p, pattern in enumerate(PATTERNS):
        ax = axes[2, p]
        rows = layout.pattern_slice(pattern)
        masks = layout.masks[rows].astype(float)
        score_map = np.tensordot(consistency[rows], masks, axes=1) / np.maximum(masks.sum(axis=0), 1)
        shown = ax.imshow(score_map, cmap="viridis")
        fig.colorbar(shown, ax=ax, fraction=0.046)
        names = []
        for which, (colour, tag) in enumerate((("red", "D"), ("white", "C"))):
            region = appearance[4 * p + 2 * which] - 1
            _outline(ax, layout.masks[layout.offsets[pattern] + region], colour, 3.0)
            key = most_frequent_key(keys[:, layout.region_pixels[layout.offsets[pattern] + region]])
            ax.add_patch(plt.Rectangle((3 + 22 * which, 3), 12, 12, facecolor=_key_rgb(key), edgecolor="black"))
            ax.text(9 + 22 * which, 22, tag, color=colour, fontsize=9, ha="center", weight="bold")
            names.append(f"{tag}: {region + 1}, {OCTANT_NAMES[colour_octant(key) - 1]}")
        ax.set_title(f"colour consistency, {PATTERN_TITLES[pattern]}\nred D most diverse ({names[0]})\n"
                     f"white C most consistent ({names[1]})", fontsize=10)
    ax = axes[2, 3]
    global_key = most_frequent_key(keys)
    ax.imshow(np.full((10, 10, 3), _key_rgb(global_key)))
    ax.set_title(f"dominant colour of the clip: {OCTANT_NAMES[appearance[12] - 1]}\n"
                 f"RGB {tuple(int(c * 255) for c in _key_rgb(global_key))}")
    if stored_mb is not None:
        _stored_boundaries_row(axes[3], stored_mb)
    for ax in axes.flat:
        if ax is not axes[1, 2]:
            ax.set_xticks([])
            ax.set_yticks([])
    title += (f"\nmotion {motion.tolist()}   appearance {appearance.tolist()}   curriculum score {score:.3f}")
    fig.suptitle(title, fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(out_path, dpi=80)
    plt.close(fig)
    return {"motion": motion, "appearance": appearance, "score": np.float64(score)}
