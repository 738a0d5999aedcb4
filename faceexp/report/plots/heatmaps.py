"""Figures of heatmaps: the method (Fig. 1), heatmaps over their faces, average maps
(Figs. 2, 3, 7), PSNR between networks (Figs. 4, 5) and face-region ratios."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from faceexp.report.plots.common import add_caption, as_hwc, hide_axes, overlay


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

    image = as_hwc(image)
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
        hide_axes(ax)
    fig.tight_layout()
    return add_caption(fig, source)


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


def plot_heatmap_row(images, heatmaps, titles=None, *, ncols=None, max_cols=5, source=None, size=2.0):
    """Heatmaps over their images in a grid.

    images : (N, H, W, 3); heatmaps : (N, H, W), entries may be None to show
    the image alone. ``ncols`` panels per row (default all N in one row). A grid wider
    than ``max_cols`` panels would be too small to see at a page's width: it is drawn
    transposed (row k of the given grid becomes column k) when it has at most
    ``max_cols`` rows (and more than one), else wrapped at ``max_cols`` panels per row.
    """
    n = len(heatmaps)
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    order = list(range(n))
    if ncols > max_cols:
        if 1 < nrows <= max_cols and n == nrows * ncols:
            order = [r * ncols + c for c in range(ncols) for r in range(nrows)]
            nrows, ncols = ncols, nrows
        else:
            ncols = max_cols
            nrows = int(np.ceil(n / ncols))
    images = None if images is None else [images[k] for k in order]
    heatmaps = [heatmaps[k] for k in order]
    titles = None if titles is None else [titles[k] for k in order]
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        hide_axes(ax)
        if k >= n:
            ax.set_visible(False)
            continue
        hm = heatmaps[k]
        img = images[k] if images is not None else np.zeros(np.shape(hm) + (3,))
        ax.imshow(as_hwc(img) if hm is None else overlay(img, hm))
        if titles is not None:
            ax.set_title(titles[k], fontsize=8)
    fig.tight_layout()
    return add_caption(fig, source)


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
            hide_axes(ax)
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
    fig.tight_layout()
    return add_caption(fig, source)


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
    fig.tight_layout()
    return add_caption(fig, source)


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
            hide_axes(ax)
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
        add_caption(fig, source)
    return fig


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
        fig.tight_layout()
        add_caption(fig, source)
    return fig

