"""Figures and tables of verification: EERs with intervals per recogniser, fusion
curves (Fig. 6), EER per layer (Fig. 8) and Table I."""
from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from faceexp.report.plots.common import POSE_PAIR_ORDER, add_caption


def plot_verification(table: pd.DataFrame, *, source=None):
    """EER (%) with its 95% interval per recogniser, in its own alignment and in the
    canonical crop (``table`` from :func:`faceexp.study.verification_analysis`)."""
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(table)))
    labels = [f"{r.recogniser} ({r.frame})" for r in table.itertuples()]
    y = np.arange(len(table))[::-1]
    eer = 100 * table["eer"].to_numpy()
    err = np.vstack([eer - 100 * table["ci_low"].to_numpy(), 100 * table["ci_high"].to_numpy() - eer])
    colours = ["C0" if f == "own" else "C1" for f in table["frame"]]
    for k in range(len(table)):
        ax.errorbar(eer[k], y[k], xerr=err[:, k:k + 1], fmt="o", color=colours[k], capsize=3)
    ax.set_yticks(y, labels)
    ax.set(xlabel="EER (%) with 95% interval (bootstrap over identities)")
    ax.set_xlim(left=0)
    fig.tight_layout()
    return add_caption(fig, source)


def plot_fusion_curves(sweep: pd.DataFrame, *, best_a=None, names=("MB2", "R50"), ax=None,
                       source=None):
    """EER (%) against the fusion weight a, one line per pose pair (Fig. 6).

    ``sweep`` has columns ``a``, ``group``, ``eer`` (fraction), as returned by
    :func:`faceexp.verify.fusion.fusion_sweep`.

    Returns the figure (``ax.figure`` when ``ax`` is given).
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.4))
    else:
        fig = ax.figure
    groups = [g for g in POSE_PAIR_ORDER if g in set(sweep["group"])] + \
        [g for g in sweep["group"].unique() if g not in POSE_PAIR_ORDER]
    for g in groups:
        part = sweep[sweep["group"] == g].sort_values("a")
        if part["eer"].notna().any():
            ax.plot(part["a"], 100 * part["eer"], label=g, lw=2.2 if g == "overall" else 1.2)
    if best_a is not None:
        ax.axvline(best_a, color="k", ls=":", lw=1)
        ax.text(best_a, ax.get_ylim()[1], f" a={best_a:.2f}", va="top", fontsize=8)
    ax.set(xlabel=f"a  (score = a·s_{names[0]} + (1−a)·s_{names[1]})", ylabel="EER (%)")
    ax.legend(fontsize=7, ncol=2)
    if source:
        fig.tight_layout()
        add_caption(fig, source)
    return fig


def plot_fusion_sweeps(sweeps: Mapping, bests: Mapping, *, source=None):
    """:func:`plot_fusion_curves` for several fused pairs side by side
    (``{"a + b": sweep}`` and ``{"a + b": best}`` as
    :func:`faceexp.study.complementarity_analysis` gives them)."""
    fig, axes = plt.subplots(1, len(sweeps), figsize=(5.5 * len(sweeps), 3.4), squeeze=False)
    for ax, (key, sweep) in zip(axes[0], sweeps.items()):
        plot_fusion_curves(sweep, best_a=bests[key]["a"], names=tuple(key.split(" + ")), ax=ax)
        ax.set_title(key, fontsize=9)
    fig.tight_layout()
    return add_caption(fig, source)


def plot_eer_per_layer(per_layer: pd.DataFrame, *, source=None):
    """EER (%) per layer for each network, block ends marked by arrows (Fig. 8).

    ``per_layer`` has columns ``network``, ``index`` (layer position, e.g.
    the Matlab layer number), ``eer`` (fraction) and ``block_end`` (bool); with
    ``ci_low`` / ``ci_high`` the 95% interval is drawn as a band.
    """
    nets = list(dict.fromkeys(per_layer["network"]))
    fig, axes = plt.subplots(1, len(nets), figsize=(5.5 * len(nets), 3.2), squeeze=False)
    for ax, net in zip(axes[0], nets):
        part = per_layer[per_layer["network"] == net].sort_values("index")
        ax.plot(part["index"], 100 * part["eer"], color="C0", lw=1, label="EER")
        if {"ci_low", "ci_high"} <= set(part.columns):
            ax.fill_between(part["index"], 100 * part["ci_low"], 100 * part["ci_high"],
                            color="C0", alpha=0.2, lw=0, label="95% CI (identities)")
            ax.legend(fontsize=7)
        ends = part[part["block_end"]]
        top = 100 * part["eer"].max()
        for _, r in ends.iterrows():
            ax.annotate("", xy=(r["index"], 100 * r["eer"]),
                        xytext=(r["index"], 100 * r["eer"] + 0.12 * top),
                        arrowprops=dict(arrowstyle="->", color="C3", lw=1))
        ax.set(title=net, xlabel="layer", ylabel="EER (%)")
    fig.tight_layout()
    return add_caption(fig, source)


def style_table_one(table: pd.DataFrame, *, caption="EER (%) per pose pair"):
    """Table I (EERs as fractions, :func:`faceexp.verify.protocol.table_one`) as a styled pandas
    table printed in percent (empty cells shown as n/a)."""
    return (table.style.format(lambda v: "n/a" if pd.isna(v) else (f"{100 * v:.2f}" if isinstance(v, float) else str(v)))
            .set_caption(caption)
            .background_gradient(axis=None, cmap="RdYlGn_r")
            .set_table_styles([{"selector": "caption", "props": "caption-side: top; font-weight: bold;"}]))

