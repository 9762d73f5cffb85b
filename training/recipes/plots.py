"""PNG plots of what people would rather look at than numbers: curves and confusion matrices."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402


def plot_history(history: list[dict[str, float]], path: Path, *, title: str) -> list[str]:
    """One panel per logged quantity against the epoch. A quantity logged only at some
    epochs (test accuracy every ``eval_every`` epochs) is drawn at those epochs."""
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k != "epoch" and k not in keys]
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, key in zip(axes.ravel(), keys, strict=False):
        points = [(row["epoch"], row[key]) for row in history if key in row]
        ax.plot([e for e, _ in points], [v for _, v in points], marker=".")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(keys) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return keys


def plot_confusion(matrix: NDArray[np.int64], labels: list[str], path: Path, *, title: str) -> None:
    """Row-normalised confusion matrix (true class per row)."""
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(6.0, 0.35 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
