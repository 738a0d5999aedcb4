"""Figures of pixel removal: EER against the threshold (Fig. 9), pixels removed (Fig. 10),
removed images (Fig. 11), deletion/insertion curves and the paired comparison."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from faceexp.report.plots.common import METHOD_STYLE, add_caption, as_hwc, hide_axes


def plot_removal_eer(results: pd.DataFrame, *, pose_pairs=("overall",), source=None):
    """EER against the removal threshold, significant vs random (Fig. 9).

    ``results`` has columns ``network`` (optional), ``threshold``, ``method``,
    ``pose_pair``, ``eer`` (fraction). Threshold "none"/NaN is the unmodified
    baseline, drawn as a horizontal line. A method drawn with one seed and
    ``ci_low`` / ``ci_high`` columns (the significant removal) gets error bars of
    its 95% identity-bootstrap interval; one with several seeds a min-max band.
    """
    nets = list(dict.fromkeys(results["network"])) if "network" in results else [None]
    fig, axes = plt.subplots(len(pose_pairs), len(nets), figsize=(5 * len(nets), 3.0 * len(pose_pairs)),
                             squeeze=False)
    for r, pp in enumerate(pose_pairs):
        for c, net in enumerate(nets):
            ax = axes[r, c]
            part = results[results["pose_pair"] == pp]
            if net is not None:
                part = part[part["network"] == net]
            thr = pd.to_numeric(part["threshold"], errors="coerce")
            base = part[thr.isna()]
            part = part.assign(threshold=thr).dropna(subset=["threshold"])
            for method, g in part.groupby("method", sort=False):
                g = g.groupby("threshold")["eer"].agg(["mean", "min", "max", "count"])
                g = g.sort_index(ascending=False)
                seeds = int(g["count"].max())
                label = f"{method} (mean of {seeds} seeds; band: min-max)" if seeds > 1 else method
                line, = ax.plot(g.index, 100 * g["mean"], label=label, **METHOD_STYLE.get(method, {}))
                if seeds == 1 and {"ci_low", "ci_high"} <= set(part.columns):
                    ci = part[part["method"] == method].groupby("threshold")[
                        ["ci_low", "ci_high"]].mean().reindex(g.index)
                    ax.errorbar(g.index, 100 * g["mean"],
                                yerr=[100 * (g["mean"] - ci["ci_low"]).clip(lower=0),
                                      100 * (ci["ci_high"] - g["mean"]).clip(lower=0)],
                                fmt="none", ecolor=line.get_color(), capsize=3, lw=1)
                if seeds > 1:
                    ax.fill_between(g.index, 100 * g["min"], 100 * g["max"], alpha=0.2,
                                    color=line.get_color())
            if len(base):
                ax.axhline(100 * base["eer"].iloc[0], color="0.5", lw=1, label="no removal")
            ax.invert_xaxis()
            ax.set(xlabel="heatmap threshold (pixels above it removed)", ylabel="EER (%)",
                   title=f"{net or ''} {pp}".strip())
            ax.legend(fontsize=7)
    fig.tight_layout()
    return add_caption(fig, source)


def plot_removed_fraction(fractions: pd.DataFrame, *, ax=None, source=None):
    """Box plots of the share of pixels removed per threshold (Fig. 10).

    ``fractions`` has columns ``threshold``, ``fraction`` (and optionally ``network``).

    Returns the figure (``ax.figure`` when ``ax`` is given).
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 3.2))
    else:
        fig = ax.figure
    order = sorted(fractions["threshold"].unique(), reverse=True)
    nets = list(dict.fromkeys(fractions["network"])) if "network" in fractions else [None]
    width = 0.8 / len(nets)
    for k, net in enumerate(nets):
        part = fractions if net is None else fractions[fractions["network"] == net]
        data = [100 * part.loc[part["threshold"] == t, "fraction"].to_numpy() for t in order]
        pos = np.arange(len(order)) - 0.4 + width * (k + 0.5)
        bp = ax.boxplot(data, positions=pos, widths=width * 0.9, patch_artist=True,
                        flierprops=dict(markersize=2))
        for box in bp["boxes"]:
            box.set_facecolor(f"C{k}")
            box.set_alpha(0.6)
        if net is not None:
            box.set_label(net)
    ax.set_xticks(np.arange(len(order)), [f"{t:g}" for t in order])
    ax.set(xlabel="heatmap threshold", ylabel="pixels removed (%)")
    if nets != [None]:
        ax.legend(fontsize=7)
    if source:
        fig.tight_layout()
        add_caption(fig, source)
    return fig


def plot_removal_examples(images: Sequence, titles: Sequence[str], *, ncols=None, source=None):
    """Images with pixels removed (Fig. 11): images (N, H, W, 3) or (N, 3, H, W)."""
    n = len(images)
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.9 * ncols, 2.1 * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        hide_axes(ax)
        if k < n:
            ax.imshow(as_hwc(images[k]))
            ax.set_title(titles[k], fontsize=8)
        else:
            ax.set_visible(False)
    fig.tight_layout()
    return add_caption(fig, source)


def plot_deletion_curves(curves: pd.DataFrame, *, hue="order", ax=None, source=None):
    """Mean similarity to the unmodified image as pixels are deleted.

    ``curves`` has columns ``fraction``, ``similarity`` and ``order`` (and
    optionally ``network``), one row per image and step; the band is the 95% CI.

    Returns the figure (``ax.figure`` when ``ax`` is given).
    """
    import seaborn as sns

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.4))
    else:
        fig = ax.figure
    sns.lineplot(data=curves, x="fraction", y="similarity", hue=hue,
                 style="network" if "network" in curves else None, ax=ax, marker="o")
    ax.set(xlabel="fraction of pixels deleted", ylabel="cosine similarity to original")
    if source:
        fig.tight_layout()
        add_caption(fig, source)
    return fig


def plot_pair_curves(curves: pd.DataFrame, *, source=None):
    """Deletion and insertion curves scored on the genuine pair, side by side.

    ``curves`` is :attr:`faceexp.study.RemovalAnalysis.pair_curves`: columns
    ``mode`` ("deletion", "insertion"), ``fraction``, ``similarity`` (the degraded
    probe against its clean genuine partner), ``order`` and ``network``; the band
    is the 95% CI over images.
    """
    if curves is None or len(curves) == 0:
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no explained face has a genuine partner among the explained faces: "
                "explain two or more per person (images_per_identity)", ha="center", va="center",
                fontsize=8, wrap=True)
        return add_caption(fig, source)
    modes = [m for m in ("deletion", "insertion") if m in set(curves["mode"])]
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 3.6), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        plot_deletion_curves(curves[curves["mode"] == mode].drop(columns="mode"), ax=ax)
        ax.set(xlabel=f"fraction of pixels {'deleted' if mode == 'deletion' else 'restored'}",
               ylabel="cosine similarity to a genuine partner", title=mode)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return add_caption(fig, source)


def plot_paired_removal(paired: pd.DataFrame, *, source=None):
    """Significant against random removal, paired per image, at each threshold.

    ``paired`` is :attr:`faceexp.study.RemovalAnalysis.paired` (columns ``network``,
    ``baseline``, ``threshold``, ``difference``, ``ci_low``, ``ci_high``): the mean over
    images of (pair similarity after random removal - after significant removal),
    with its 95% bootstrap interval; above 0, the heatmap's pixels matter more.
    """
    baselines = list(dict.fromkeys(paired["baseline"]))
    fig, axes = plt.subplots(1, len(baselines), figsize=(6 * len(baselines), 3.4),
                             squeeze=False)
    nets = list(dict.fromkeys(paired["network"]))
    for ax, baseline in zip(axes[0], baselines):
        part = paired[paired["baseline"] == baseline]
        for k, net in enumerate(nets):
            g = part[part["network"] == net].sort_values("threshold", ascending=False)
            x = g["threshold"].astype(float) + (k - (len(nets) - 1) / 2) * 0.008
            ax.errorbar(x, g["difference"], yerr=[(g["difference"] - g["ci_low"]).clip(lower=0),
                                                  (g["ci_high"] - g["difference"]).clip(lower=0)],
                        fmt="o-", capsize=3, lw=1, ms=4, label=net)
        ax.axhline(0, color="0.5", lw=1)
        ax.invert_xaxis()
        ax.set(xlabel="heatmap threshold (pixels above it removed)",
               ylabel="random - significant\n(pair similarity)", title=f"against {baseline}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return add_caption(fig, source)

