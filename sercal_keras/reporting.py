"""Pieces every report shares: Markdown tables and the confusion-matrix figure.

Used by training (run directories), evaluation, the quantization report and
the benchmarks, so every report draws and tabulates the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from sercal_keras.io_utils import atomic_path


def markdown_table(headers: Sequence, rows: Sequence[Sequence]) -> str:
    """A GitHub Markdown table from a header list and rows of cells.

    Example:
    >>> print(markdown_table(["a", "b"], [[1, 2]]), end="")
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(matrix, labels: Sequence[str], path, title: str = "") -> Path:
    """Row-normalised confusion matrix (recall per true class) with the counts.

    Args:
        matrix: counts (C, C), rows true class, columns predicted.
        labels: class names.
        path: the PNG to write (atomically).
        title: figure title.
    """
    plt = pyplot()
    matrix = np.asarray(matrix, dtype=np.float64)
    support = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, support, out=np.zeros_like(matrix), where=support > 0)
    size = 1.2 + 0.7 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{share[i, j]:.2f}\n({int(matrix[i, j])})", ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.6 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return Path(path)
