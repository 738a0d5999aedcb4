"""Figures of the paper and beyond; the only faceexp module that draws.

Every ``plot_*`` function takes the arrays/DataFrames that the compute modules
return and draws with matplotlib/seaborn. Those that draw one panel take
``ax=None`` (a new figure when None); :func:`plot_coefficients` and
:func:`plot_counts` return that axes, every other function returns the figure
(the one holding ``ax`` when it was given). ``source=`` adds a caption line
saying what data and model produced the figure, which the book prints under
every figure.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

POSE_PAIR_ORDER = ("F-F", "3/4-3/4", "P-P", "F-3/4", "F-P", "3/4-P", "overall")
METHOD_STYLE = {
    "significant": dict(color="C3", ls="-", marker="o"),
    "random-pixels": dict(color="C0", ls="--", marker="s"),
    "random-superpixels": dict(color="C2", ls=":", marker="^"),
}


def _caption(fig, source: str | None):
    if source:
        fig.text(0.01, 0.005, source, fontsize=7, color="0.35", ha="left", va="bottom",
                 wrap=True)
    return fig


def _hwc(image) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    return np.clip(image, 0, 1)


def overlay(image, heatmap, *, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """:func:`faceexp.evaluate.heatmaps.overlay`, clipping both inputs to [0, 1] first."""
    from faceexp.evaluate.heatmaps import overlay as _overlay

    return _overlay(_hwc(image), np.clip(np.asarray(heatmap, dtype=np.float32), 0, 1),
                    alpha=alpha, cmap=cmap)


def _off(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


# ----------------------------------------------------------------- method


def plot_method_overview(image, explanation, *, n_perturbations: int = 4, layer=None,
                         source: str | None = None):
    """Figure 1: image, superpixels, perturbed copies with their similarity, heatmap.

    Parameters
    ----------
    image : (H, W, 3) float in [0, 1]
    explanation : faceexp.explain.explainer.Explanation
    n_perturbations : int
        Perturbed samples shown (samples 1..n; sample 0 is the image itself).
    layer : str, optional
        Layer whose targets and heatmap are shown (default the first).
    """
    from skimage.segmentation import mark_boundaries

    image = _hwc(image)
    li = 0 if layer is None else explanation.layers.index(layer)
    seg = explanation.segments
    n = min(n_perturbations, explanation.samples.shape[0] - 1)
    fig, axes = plt.subplots(1, n + 3, figsize=(2.0 * (n + 3), 2.6))
    axes[0].imshow(image)
    axes[0].set_title("input")
    axes[1].imshow(mark_boundaries(image, seg, color=(1, 1, 0)))
    axes[1].set_title(f"{seg.max() + 1} superpixels")
    for k in range(n):
        keep = explanation.samples[k + 1][seg]
        axes[2 + k].imshow(image * keep[..., None])
        axes[2 + k].set_title(f"cos = {explanation.targets[li, k + 1]:.3f}")
    axes[-1].imshow(overlay(image, explanation.heatmaps[li]))
    axes[-1].set_title(f"heatmap ({explanation.layers[li]})")
    for ax in axes:
        _off(ax)
    fig.tight_layout(rect=(0, 0.05 if source else 0, 1, 1))
    return _caption(fig, source)


def plot_coefficients(explanation, *, layer=None, ax=None):
    """Bar chart of the fitted superpixel coefficients, sorted."""
    li = 0 if layer is None else explanation.layers.index(layer)
    coef = np.sort(np.asarray(explanation.coefficients[li]))[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 2.5))
    ax.bar(np.arange(coef.size), coef, color=np.where(coef >= 0, "C3", "C0"))
    ax.set_xlabel("superpixel (sorted)")
    ax.set_ylabel("coefficient")
    ax.set_title(f"weighted linear fit, R² = {float(explanation.r2[li]):.2f}")
    return ax


def plot_heatmap_row(images, heatmaps, titles=None, *, ncols=None, source=None, size=2.0):
    """Heatmaps over their images in a grid.

    images : (N, H, W, 3); heatmaps : (N, H, W), entries may be None to show
    the image alone.
    """
    n = len(heatmaps)
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        _off(ax)
        if k >= n:
            ax.set_visible(False)
            continue
        hm = heatmaps[k]
        img = images[k] if images is not None else np.zeros(np.shape(hm) + (3,))
        ax.imshow(_hwc(img) if hm is None else overlay(img, hm))
        if titles is not None:
            ax.set_title(titles[k], fontsize=8)
    fig.tight_layout(rect=(0, 0.04 if source else 0, 1, 1))
    return _caption(fig, source)


def plot_psnr_examples(examples: pd.DataFrame, heatmaps: Mapping, *, layer=None, source=None):
    """Figure 5: the images at the maximum, average and minimum PSNR between two
    subjects, each with both subjects' heatmaps.

    examples : from :func:`faceexp.evaluate.heatmaps.psnr_examples` (columns ``position``,
        ``example``, ``psnr`` and the grouping column ``pose``; optionally
        ``position_a`` / ``position_b``, each set's own row, as
        :func:`faceexp.study.compare_networks_analysis` gives them).
    heatmaps : ``{name: HeatmapSet}`` of the same images (first two are used).
    layer : str, optional
        Default each set's embedding layer.
    """
    (a, ha), (b, hb) = list(heatmaps.items())[:2]
    imgs, maps, titles = [], [], []
    for _, r in examples.iterrows():
        for name, hs, column in ((a, ha, "position_a"), (b, hb, "position_b")):
            i = int(r[column]) if column in r else int(r["position"])
            imgs.append(hs.images[i])
            maps.append(hs.layer(layer or getattr(hs, "embedding_layer", "gap"))[i])
            titles.append(f"{r['example']} {r.get('pose', '')}: {name}\n{r['psnr']:.1f} dB")
    return plot_heatmap_row(imgs, maps, titles, ncols=6, source=source)


def plot_layer_rows(maps: Mapping, columns: Mapping, *, faces: Mapping | None = None, source=None,
                    size=1.9):
    """Average heatmaps across depth, one row per network with its own columns (Fig. 7).

    Parameters
    ----------
    maps : mapping (network, column) -> (H, W) heatmap
    columns : mapping network -> list of column labels (left to right)
    faces : mapping network -> (H, W, 3) average face, optional (drawn under)
    """
    width = max(len(c) for c in columns.values())
    fig, axes = plt.subplots(len(columns), width, figsize=(size * width + 0.6, size * len(columns) + 0.5),
                             squeeze=False)
    for r, (net, cols) in enumerate(columns.items()):
        for c in range(width):
            ax = axes[r, c]
            _off(ax)
            if c >= len(cols) or (net, cols[c]) not in maps:
                ax.set_visible(c < len(cols))
                continue
            hm = maps[(net, cols[c])]
            face = faces.get(net) if faces else None
            ax.imshow(overlay(face, hm) if face is not None else hm,
                      cmap=None if face is not None else "jet", vmin=0, vmax=1)
            ax.set_title(str(cols[c]), fontsize=8)
            if c == 0:
                ax.set_ylabel(str(net), fontsize=9)
    fig.tight_layout(rect=(0, 0.05 if source else 0, 1, 1))
    return _caption(fig, source)


def plot_region_ratios(table: pd.DataFrame, *, source=None):
    """Region ratio (heatmap mass share / area share; 1 = no preference) per face region,
    one group of bars per region and one bar per network, with 95% intervals
    (``table`` from :func:`faceexp.report.claims.region_summary`)."""
    nets = list(dict.fromkeys(table["network"]))
    regions = list(dict.fromkeys(table["region"]))
    fig, ax = plt.subplots(figsize=(1.2 * len(regions) + 2, 3.4))
    width = 0.8 / max(1, len(nets))
    for k, net in enumerate(nets):
        part = table[table["network"] == net].set_index("region").reindex(regions)
        x = np.arange(len(regions)) - 0.4 + width * (k + 0.5)
        err = np.vstack([part["ratio"] - part["ci_low"], part["ci_high"] - part["ratio"]])
        ax.bar(x, part["ratio"], width * 0.9, yerr=err, capsize=2, label=net, color=f"C{k}")
    ax.axhline(1.0, color="0.4", lw=1, ls="--")
    ax.set_xticks(np.arange(len(regions)), regions)
    ax.set(ylabel="mass share / area share")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout(rect=(0, 0.07 if source else 0, 1, 1))
    return _caption(fig, source)


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
    fig.tight_layout(rect=(0, 0.08 if source else 0, 1, 1))
    return _caption(fig, source)


# --------------------------------------------------------------- training


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
    fig.tight_layout(rect=(0, 0.05 if source else 0, 1, 1))
    return _caption(fig, source)


def plot_counts(counts: pd.Series, *, title="", xlabel="", ax=None):
    """A labelled bar chart of counts (e.g. images per pose)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 2.6))
    bars = ax.bar([str(i) for i in counts.index], counts.to_numpy(), color="C0")
    ax.bar_label(bars)
    ax.set(title=title, xlabel=xlabel, ylabel="images")
    return ax


# ---------------------------------------------------------- average maps


def plot_average_heatmaps(maps: Mapping, faces: Mapping | None = None, *,
                          rows: Sequence, cols: Sequence, annotations: Mapping | None = None,
                          source=None, size=2.1):
    """A grid of average heatmaps (paper Figs. 2, 3, 7).

    Parameters
    ----------
    maps : mapping (row, col) -> (H, W) average heatmap in [0, 1]
        A row label may be a tuple; its key is then ``(*row, col)``, as
        :func:`faceexp.evaluate.heatmaps.averages_by_key` makes them.
    faces : mapping -> (H, W, 3) average face, optional
        Looked up by the panel's key, then its column, then its row.
        Drawn under the heatmap (as the paper overlays the average face).
    rows, cols : sequences of the row and column labels, in order.
    annotations : mapping (row, col) -> str, optional
        Text under each panel (e.g. the PSNR or the image count).
    """
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(size * len(cols) + 0.6,
                                                           size * len(rows) + 0.5),
                             squeeze=False)
    def key(row, col):
        return (*row, col) if isinstance(row, tuple) else (row, col)

    for r, row in enumerate(rows):
        for c, col in enumerate(cols):
            ax = axes[r, c]
            _off(ax)
            hm = maps.get(key(row, col))
            if hm is None:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
                continue
            face = None
            if faces:
                face = next((faces[k] for k in (key(row, col), col, row) if k in faces), None)
            ax.imshow(overlay(face, hm) if face is not None else hm,
                      cmap=None if face is not None else "jet", vmin=0, vmax=1)
            if annotations and key(row, col) in annotations:
                ax.set_xlabel(annotations[key(row, col)], fontsize=8)
            if r == 0:
                ax.set_title(str(col), fontsize=9)
            if c == 0:
                ax.set_ylabel(" ".join(map(str, row)) if isinstance(row, tuple) else str(row),
                              fontsize=9)
    sm = plt.cm.ScalarMappable(cmap="jet", norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=axes, fraction=0.025, pad=0.02, label="importance")
    if source:
        _caption(fig, source)
    return fig


# ------------------------------------------------------------------ PSNR


def plot_psnr_histograms(psnr: pd.DataFrame, *, by="pose", value="psnr", bins=15, ax=None,
                         source=None):
    """Histogram per group of per-image PSNR between two networks' heatmaps (Fig. 4).

    Returns the figure (``ax.figure`` when ``ax`` is given).
    """
    import seaborn as sns

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.2))
    else:
        fig = ax.figure
    data = psnr.dropna(subset=[value])
    sns.histplot(data=data, x=value, hue=by if by in data else None, bins=bins,
                 element="step", stat="count", common_norm=False, ax=ax)
    ax.set(xlabel="PSNR between two networks' heatmaps of the same image (dB)", ylabel="images")
    if source:
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        _caption(fig, source)
    return fig


# ----------------------------------------------------------- verification


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
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        _caption(fig, source)
    return fig


def plot_fusion_sweeps(sweeps: Mapping, bests: Mapping, *, source=None):
    """:func:`plot_fusion_curves` for several fused pairs side by side
    (``{"a + b": sweep}`` and ``{"a + b": best}`` as
    :func:`faceexp.study.complementarity_analysis` gives them)."""
    fig, axes = plt.subplots(1, len(sweeps), figsize=(5.5 * len(sweeps), 3.4), squeeze=False)
    for ax, (key, sweep) in zip(axes[0], sweeps.items()):
        plot_fusion_curves(sweep, best_a=bests[key]["a"], names=tuple(key.split(" + ")), ax=ax)
        ax.set_title(key, fontsize=9)
    fig.tight_layout(rect=(0, 0.06 if source else 0, 1, 1))
    return _caption(fig, source)


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
    fig.tight_layout(rect=(0, 0.06 if source else 0, 1, 1))
    return _caption(fig, source)


def style_table_one(table: pd.DataFrame, *, caption="EER (%) per pose pair"):
    """Table I (EERs as fractions, :func:`faceexp.verify.protocol.table_one`) as a styled pandas
    table printed in percent (empty cells shown as n/a)."""
    return (table.style.format(lambda v: "n/a" if pd.isna(v) else (f"{100 * v:.2f}" if isinstance(v, float) else str(v)))
            .set_caption(caption)
            .background_gradient(axis=None, cmap="RdYlGn_r")
            .set_table_styles([{"selector": "caption", "props": "caption-side: top; font-weight: bold;"}]))


# --------------------------------------------------------------- removal


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
    fig.tight_layout(rect=(0, 0.05 if source else 0, 1, 1))
    return _caption(fig, source)


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
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        _caption(fig, source)
    return fig


def plot_removal_examples(images: Sequence, titles: Sequence[str], *, ncols=None, source=None):
    """Images with pixels removed (Fig. 11): images (N, H, W, 3) or (N, 3, H, W)."""
    n = len(images)
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.9 * ncols, 2.1 * nrows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        _off(ax)
        if k < n:
            ax.imshow(_hwc(images[k]))
            ax.set_title(titles[k], fontsize=8)
        else:
            ax.set_visible(False)
    fig.tight_layout(rect=(0, 0.05 if source else 0, 1, 1))
    return _caption(fig, source)


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
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        _caption(fig, source)
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
        return _caption(fig, source)
    modes = [m for m in ("deletion", "insertion") if m in set(curves["mode"])]
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 3.6), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        plot_deletion_curves(curves[curves["mode"] == mode].drop(columns="mode"), ax=ax)
        ax.set(xlabel=f"fraction of pixels {'deleted' if mode == 'deletion' else 'restored'}",
               ylabel="cosine similarity to a genuine partner", title=mode)
        ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.06 if source else 0, 1, 1))
    return _caption(fig, source)


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
    fig.tight_layout(rect=(0, 0.06 if source else 0, 1, 1))
    return _caption(fig, source)


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
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        _caption(fig, source)
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
    fig.tight_layout(rect=(0, 0.07 if source else 0, 1, 1))
    return _caption(fig, source)


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
    fig.tight_layout(rect=(0, 0.05 if source else 0, 1, 1))
    return _caption(fig, source)


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
    fig.tight_layout(rect=(0, 0.07 if source else 0, 1, 1))
    return _caption(fig, source)
