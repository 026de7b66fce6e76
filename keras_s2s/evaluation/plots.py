"""Attention heatmaps."""

from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np


def plot_attention(
    source_tokens: list[str],
    target_tokens: list[str],
    weights: np.ndarray,
    path: str | os.PathLike | BinaryIO,
    title: str = "",
) -> str | BinaryIO:
    """Writes a heatmap of `weights [target, source]` (source tokens on x, target on y) as a
    PNG file at `path` (or into a binary file object); returns `path`."""
    import matplotlib  # Lazy: start-up time (only plots need it).

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights = np.asarray(weights)
    if weights.shape != (len(target_tokens), len(source_tokens)):
        raise ValueError(
            f"weights have shape {weights.shape}, expected "
            f"({len(target_tokens)}, {len(source_tokens)}) for the given tokens"
        )
    width = max(4.0, 0.35 * len(source_tokens) + 1.5)
    height = max(3.0, 0.35 * len(target_tokens) + 1.2)
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source_tokens)), [repr(t)[1:-1] for t in source_tokens], rotation=90)
    ax.set_yticks(range(len(target_tokens)), [repr(t)[1:-1] for t in target_tokens])
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
    return path if hasattr(path, "write") else os.fspath(path)
