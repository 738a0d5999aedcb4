"""Figures comparing explainers and their settings: faithfulness against stability,
sensitivity to the explainer's choices, deletion/insertion curves against random maps and
the model-randomisation check."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from faceexp.report.plots.common import add_caption


def plot_sampling_study(summary: pd.DataFrame, *, x="stability", y="faithfulness",
                        label="setting", ax=None, source=None):
    """Faithfulness against stability, one point per explainer setting (with error bars
    where ``<x>_sd`` / ``<y>_sd`` columns exist).

    Returns the figure (``ax.figure`` when ``ax`` is given).
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 4))
    else:
        fig = ax.figure
    markers = {net: m for net, m in zip(dict.fromkeys(summary.get("network", [])), "osD^v")}
    colours = {lab: f"C{k}" for k, lab in enumerate(dict.fromkeys(summary[label]))}
    for _, row in summary.iterrows():
        net = row.get("network")
        ax.errorbar(row[x], row[y], xerr=row.get(f"{x}_sd"), yerr=row.get(f"{y}_sd"),
                    fmt=markers.get(net, "o"), color=colours[row[label]], capsize=3,
                    label=f"{net}: {row[label]}" if net is not None else str(row[label]))
    ax.set(xlabel=x.replace("_", " "), ylabel=y.replace("_", " "))
    ax.legend(fontsize=7)
    if source:
        fig.tight_layout()
        add_caption(fig, source)
    return fig


def plot_sensitivity(summary: pd.DataFrame, *, source=None):
    """PSNR to the default heatmap per explainer choice (bars, 95% intervals), the seed
    floor as a dashed line, and faithfulness beside it (``summary`` from
    :func:`faceexp.evaluate.sensitivity.summarise_sensitivity`)."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 0.6 + 0.45 * len(summary)), sharey=True)
    labels = list(summary.index)
    y = np.arange(len(labels))[::-1]
    for axis, column, low, high, title in (
            (ax, "PSNR to default (dB)", "PSNR low", "PSNR high", "PSNR to the default (dB)"),
            (bx, "faithfulness", "faithfulness low", "faithfulness high", "faithfulness (AUC gap)")):
        values = summary[column].to_numpy(dtype=float)
        err = np.vstack([values - summary[low].to_numpy(dtype=float),
                         summary[high].to_numpy(dtype=float) - values])
        axis.barh(y, values, xerr=err, capsize=3,
                  color=["0.6" if k == "default" else "C0" for k in labels])
        axis.set(xlabel=title)
    if "default" in summary.index:
        ax.axvline(float(summary.loc["default", "PSNR to default (dB)"]), color="k", ls="--", lw=1,
                   label="seed floor")
        ax.legend(fontsize=7)
    ax.set_yticks(y, labels)
    fig.tight_layout()
    return add_caption(fig, source)


def plot_explainer_curves(curves: pd.DataFrame, *, reference: str = "pair", source=None):
    """Deletion and insertion curves of each explainer's map, beside the random maps of each
    kind (grey), mean over faces: one row of two panels per recogniser.

    ``curves`` is :func:`faceexp.evaluate.compare.combine` of comparisons' ``"curves"`` (or one
    ``Comparison.curves``): columns ``explainer``, ``kind``, ``map``, ``image``, ``mode``,
    ``reference``, ``fraction``, ``similarity`` (and ``recogniser``).

    Returns the figure.
    """
    import seaborn as sns

    data = curves[curves["reference"] == reference]
    if "recogniser" not in data:
        data = data.assign(recogniser="")
    names = list(dict.fromkeys(data["recogniser"]))
    fig, axes = plt.subplots(len(names), 2, figsize=(10.5, 3.3 * len(names) + 0.4),
                             sharey=True, squeeze=False)
    target = "genuine partner" if reference == "pair" else "face itself"
    for row, name in zip(axes, names):
        for ax, mode in zip(row, ("deletion", "insertion")):
            part = data[(data["recogniser"] == name) & (data["mode"] == mode)]
            sns.lineplot(data=part[part["map"] == "explainer"], x="fraction", y="similarity",
                         hue="explainer", marker="o", errorbar=None, ax=ax,
                         legend=ax is axes[0, 1])
            baseline = part[part["map"] == "baseline"].drop_duplicates(
                ["kind", "image", "fraction"])
            for kind, style in (("region", "--"), ("pixel", ":")):
                line = baseline[baseline["kind"] == kind].groupby("fraction")["similarity"].mean()
                if len(line):
                    ax.plot(line.index, line.to_numpy(), color="0.35", ls=style, lw=2,
                            label=f"random {kind} map")
            verb = "deleted" if mode == "deletion" else "inserted"
            ax.set(xlabel=f"fraction of pixels {verb}, most relevant first",
                   ylabel=f"cosine similarity to the {target}",
                   title=f"{name} {mode}".strip())
    entries = {}
    for ax in axes.flat:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(text, handle)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.legend(list(entries.values()), list(entries), fontsize=7, loc="upper left",
               bbox_to_anchor=(1.0, 0.98))
    fig.tight_layout()
    return add_caption(fig, source)


def plot_randomisation_curves(randomisation: pd.DataFrame, *, source=None):
    """Model-randomisation sanity check: each explainer's rank correlation with its own map
    as the recogniser's stages are re-initialised from the top (1 at none), mean over
    faces; one panel per recogniser.

    ``randomisation`` is :func:`faceexp.evaluate.compare.combine` of comparisons'
    ``"randomisation"``: columns ``explainer``, ``image``, ``stages``, ``stage``,
    ``rank_corr`` (and ``recogniser``).

    Returns the figure.
    """
    data = randomisation if "recogniser" in randomisation else \
        randomisation.assign(recogniser="")
    names = list(dict.fromkeys(data["recogniser"])) or [""]
    fig, axes = plt.subplots(1, len(names), figsize=(6.2 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        part = data[data["recogniser"] == name]
        ticks = part.drop_duplicates("stages").sort_values("stages")
        for k, (explainer, rows) in enumerate(part.groupby("explainer", sort=False)):
            mean = rows.groupby("stages")["rank_corr"].mean()
            ax.plot([0, *mean.index], [1.0, *mean.to_numpy()], marker="o", color=f"C{k}",
                    label=explainer)
        ax.set_xticks([0, *ticks["stages"]], ["none", *ticks["stage"]], rotation=30,
                      ha="right", fontsize=8)
        ax.axhline(0, color="0.6", lw=0.8)
        ax.set(xlabel="re-initialised from the top down to", ylim=(-1.05, 1.05),
               ylabel="rank correlation with the trained map", title=name)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return add_caption(fig, source)

