"""Report figures as PNG files (matplotlib, no display needed).

Each function takes plain arrays and a path and writes one figure.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402


EXACT_TSNE_MAX = 2000  # up to this many points the exact gradient is faster than Barnes-Hut (and fits memory)


def tsne_embedding(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE of features [N, D] (N >= 3) -> float [N, 2]; perplexity capped below N."""
    n = len(features)
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 videos, got {n}")
    perplexity = float(min(30.0, (n - 1) / 3))
    method = "exact" if n <= EXACT_TSNE_MAX else "barnes_hut"
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed, method=method).fit_transform(features)


def plot_tsne(features: np.ndarray, labels: np.ndarray, class_names: list[str], path: str | Path,
              title: str = "t-SNE of video features", seed: int = 0) -> None:
    """Scatter of the t-SNE of features [N, D], one colour per class of int labels [N]."""
    points = tsne_embedding(np.asarray(features, dtype=np.float64), seed)
    fig, ax = plt.subplots(figsize=(6, 5))
    colours = plt.get_cmap("tab20" if len(class_names) > 10 else "tab10")
    for c, name in enumerate(class_names):
        mask = labels == c
        if mask.any():
            ax.scatter(points[mask, 0], points[mask, 1], s=18, color=colours(c % colours.N), label=name)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(class_names) <= 20:
        ax.legend(fontsize=7, loc="best", markerscale=1.2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: str | Path,
                   title: str = "Confusion matrix") -> None:
    """Confusion counts int [C, C] (rows true, columns predicted) as a heat map with the counts written in."""
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 1.0 + 0.5 * n) if n > 8 else (5.5, 5))
    ax.imshow(matrix, cmap="Blues")
    ticks = np.arange(n)
    ax.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        threshold = matrix.max() / 2 if matrix.max() else 1
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > threshold else "black")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_retrieval_grid(query_frames: list[np.ndarray], retrieved_frames: list[list[np.ndarray]],
                        correct: np.ndarray, query_names: list[str], retrieved_names: list[list[str]],
                        path: str | Path) -> None:
    """One row per query: its frame, then its nearest training videos' frames, framed green when they
    share the query's class and red otherwise.

    query_frames: Q uint8 [H, W, 3]; retrieved_frames: Q lists of K uint8 [H, W, 3]; correct: bool [Q, K].
    """
    n_queries, k = len(query_frames), len(retrieved_frames[0])
    fig, axes = plt.subplots(n_queries, k + 1, figsize=(2.2 * (k + 1), 2.0 * n_queries), squeeze=False)
    for row in range(n_queries):
        cells = [(query_frames[row], f"query: {query_names[row]}", "black")]
        cells += [
            (frame, f"#{j + 1} {name}", "green" if correct[row, j] else "red")
            for j, (frame, name) in enumerate(zip(retrieved_frames[row], retrieved_names[row]))
        ]
        for ax, (frame, label, colour) in zip(axes[row], cells):
            ax.imshow(frame)
            ax.set_title(label, fontsize=8, color=colour)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(4 if colour != "black" else 1)
    fig.suptitle("Retrieval: query and top-%d neighbours (green: same class)" % k, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_training_curves(histories: dict[str, list[dict[str, float]]], path: str | Path) -> None:
    """Loss and accuracy per epoch of several fine-tuning runs.

    histories: {run name: [{"epoch", "loss", "train_top1", optional "test_video_top1"}, ...]}.
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for name, history in histories.items():
        epochs = [h["epoch"] for h in history]
        ax_loss.plot(epochs, [h["loss"] for h in history], marker=".", label=name)
        line = ax_acc.plot(epochs, [h["train_top1"] for h in history], marker=".", label=f"{name} train clip")[0]
        tested = [h for h in history if h.get("test_video_top1") is not None]
        if tested:
            ax_acc.plot([h["epoch"] for h in tested], [h["test_video_top1"] for h in tested], "--", marker="o",
                        color=line.get_color(), label=f"{name} test video")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="Fine-tuning loss")
    ax_acc.set(xlabel="epoch", ylabel="top-1 accuracy", title="Fine-tuning accuracy", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.legend(fontsize=7)
    ax_acc.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_attention(panels: list[dict], names: list[str], path: str | Path, title: str = "Attention") -> None:
    """One row per clip: its frame, the attention map over it, and the summed motion boundaries.

    panels: dicts with ``frame`` uint8 [S, S, 3], ``attention`` float [S, S] in [0, 1], ``boundaries`` float
    [S, S] or None (the column is left out when no clip has one); names: one caption per row.
    """
    with_boundaries = any(p["boundaries"] is not None for p in panels)
    columns = 3 if with_boundaries else 2
    fig, axes = plt.subplots(len(panels), columns, figsize=(2.4 * columns, 2.3 * len(panels)), squeeze=False)
    for row, (panel, name) in enumerate(zip(panels, names)):
        axes[row, 0].imshow(panel["frame"])
        axes[row, 0].set_title(name, fontsize=8)
        axes[row, 1].imshow(panel["frame"])
        axes[row, 1].imshow(panel["attention"], cmap="jet", alpha=0.5, vmin=0.0, vmax=1.0)
        axes[row, 1].set_title("attention (last conv)", fontsize=8)
        if with_boundaries:
            if panel["boundaries"] is not None:
                axes[row, 2].imshow(panel["boundaries"], cmap="gray")
            axes[row, 2].set_title("motion boundaries u + v", fontsize=8)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_headline_bars(values: dict[str, dict[str, tuple[float, float | None]]], path: str | Path,
                       title: str = "Headline metrics") -> None:
    """Grouped bars: one group per metric, one bar per column, error bars where a spread is given.

    values: {metric: {column: (value, spread or None)}} with fractions in [0, 1] (drawn in percent).
    """
    metrics = list(values)
    columns = list(dict.fromkeys(c for per_metric in values.values() for c in per_metric))
    width = 0.8 / max(len(columns), 1)
    fig, ax = plt.subplots(figsize=(min(16.0, max(6.0, 0.3 * len(metrics) * len(columns) + 4)), 4.5))
    colours = plt.get_cmap("tab10" if len(columns) <= 10 else "tab20")
    for j, column in enumerate(columns):
        xs, heights, spreads = [], [], []
        for i, metric in enumerate(metrics):
            if column in values[metric]:
                value, spread = values[metric][column]
                xs.append(i + (j - (len(columns) - 1) / 2) * width)
                heights.append(100 * value)
                spreads.append(spread)
        ax.bar(xs, heights, width, label=column, color=colours(j % colours.N))
        with_spread = [k for k, spread in enumerate(spreads) if spread is not None]
        if with_spread:
            ax.errorbar([xs[k] for k in with_spread], [heights[k] for k in with_spread],
                        yerr=[100 * spreads[k] for k in with_spread], fmt="none", ecolor="black", capsize=3)
    ax.set_xticks(np.arange(len(metrics)), metrics, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
