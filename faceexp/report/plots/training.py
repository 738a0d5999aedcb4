"""Figures of the networks' training: loss and accuracy per epoch, counts of images."""
from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import pandas as pd

from faceexp.report.plots.common import add_caption


def plot_training_curves(metrics: Mapping[str, pd.DataFrame], *, source=None):
    """Loss and accuracy per epoch for each network: {name: metrics.csv frame}."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.4))
    for k, (name, m) in enumerate(metrics.items()):
        c = f"C{k}"
        ax_loss.plot(m["epoch"], m["train_loss"], color=c, ls="--", label=f"{name} train")
        ax_loss.plot(m["epoch"], m["val_loss"], color=c, label=f"{name} validation")
        ax_acc.plot(m["epoch"], m["train_acc"], color=c, ls="--", label=f"{name} train")
        ax_acc.plot(m["epoch"], m["val_acc"], color=c, label=f"{name} validation")
        steps = m.index[m["lr"].diff().fillna(0) != 0]
        for s in steps:
            ax_loss.axvline(m.loc[s, "epoch"] - 0.5, color=c, lw=0.6, alpha=0.5)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss (vertical lines: LR steps)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title="identification accuracy")
    ax_acc.legend(fontsize=7)
    fig.tight_layout()
    return add_caption(fig, source)


def plot_counts(counts: pd.Series, *, title="", xlabel="", ax=None):
    """A labelled bar chart of counts (e.g. images per pose)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 2.6))
    bars = ax.bar([str(i) for i in counts.index], counts.to_numpy(), color="C0")
    ax.bar_label(bars)
    ax.set(title=title, xlabel=xlabel, ylabel="images")
    return ax

