"""Report figures of a run: the training curves (and the shared confusion matrix)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np

from sercal_keras.io_utils import atomic_path
from sercal_keras.reporting import pyplot


def plot_training_curves(history: Sequence[Dict[str, Any]], path, best_epoch: Optional[int] = None,
                         title: str = "", averaged_epochs: Optional[Sequence[int]] = None) -> Path:
    """Loss, accuracy / validation UA, and learning rate per epoch.

    `best_epoch` (0-based) is marked by a dotted line; `averaged_epochs`
    (1-based first and last, `--average-from-epoch`) by a shaded span instead.
    """
    plt = pyplot()

    def column(name):
        return np.array([np.nan if row.get(name) in (None, "") else float(row[name]) for row in history])

    epochs = np.array([int(row["epoch"]) + 1 for row in history])
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    axes[0].plot(epochs, column("loss"), label="train loss")
    if np.isfinite(column("val_loss")).any():
        axes[0].plot(epochs, column("val_loss"), label="validation loss (segments)")
    axes[0].set_ylabel("cross-entropy")
    axes[1].plot(epochs, column("accuracy"), label="train accuracy (segments)")
    if np.isfinite(column("val_ua")).any():
        axes[1].plot(epochs, column("val_ua"), label="validation UA (utterances)")
        axes[1].plot(epochs, column("val_wa"), label="validation WA (utterances)", alpha=0.6)
    axes[1].set_ylim(0, 1.02)
    axes[2].plot(epochs, column("learning_rate"))
    axes[2].set_yscale("log")
    axes[2].set_ylabel("learning rate")
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if averaged_epochs:
            ax.axvspan(averaged_epochs[0] - 0.5, averaged_epochs[1] + 0.5, color="grey", alpha=0.12,
                       label="averaged epochs" if ax is axes[1] else None)
        elif best_epoch is not None:
            ax.axvline(best_epoch + 1, color="grey", linestyle=":", linewidth=1)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)
