"""Deletion and insertion with other fills, and whether the explainers' ranking survives them.

Blacked-out pixels are out of distribution (ROAD, Rong et al. 2022), and faceexp's
LIME blacks pixels out too, so a black-fill deletion curve may favour it. Here the
curves of :func:`faceexp.evaluate.compare.similarity_curves` are redrawn with any
fill of :func:`faceexp.evaluate.masking.apply_fill` (:data:`FILLS`: black, blur, and
OpenCV inpainting as the in-distribution fill); :func:`fill_ranking` ranks the
explainers per fill and :func:`fill_agreement` gives Kendall's tau between the
fills' rankings (``scipy.stats.kendalltau``).
"""
from __future__ import annotations

from itertools import combinations
from typing import Any, Callable

import pandas as pd

from faceexp.evaluate.compare.measures import CURVE_MODES, curve_auc, similarity_curves
from faceexp.evaluate.faithfulness import DEFAULT_STEPS

__all__ = ["FILLS", "fill_curves", "fill_aucs", "fill_ranking", "fill_agreement"]

#: The fills compared: the black of today, blur, and an in-distribution one.
FILLS = ("black", "blur", "inpaint")


def fill_curves(embed: Callable, images: Any, heatmaps: Any, references: Any, *,
                mode: str = "deletion", steps: Any = DEFAULT_STEPS, fill: Any = "black",
                batch_size: int = 32) -> pd.DataFrame:
    """The pair's similarity as the most relevant pixels are deleted (or inserted) with ``fill``.

    The pixel order and counts are those of
    :func:`faceexp.evaluate.compare.similarity_curves` (equal to it for constant
    fills, tested); the changed pixels take ``fill`` through
    :func:`faceexp.evaluate.masking.apply_fill`.

    Parameters
    ----------
    embed : callable
        ``(N, 3, H, W)`` in [0, 1] -> ``(N, D)``.
    images : array_like, shape (N, 3, H, W)
    heatmaps : array_like, shape (N, H, W)
    references : array_like, shape (N, D)
        The reference embedding of each image (its mate's).
    mode : {"deletion", "insertion"}
    steps : fractions in [0, 1]
    fill : "black", "mean", a number, 3 numbers, "blur" or "inpaint"
    batch_size : int

    Returns
    -------
    DataFrame
        Columns ``image``, ``mode``, ``fill``, ``fraction``, ``n_pixels``, ``similarity``.
    """
    curves = similarity_curves(embed, images, heatmaps, {"pair": references}, mode=mode,
                               steps=steps, fill=fill, batch_size=batch_size)
    return curves.drop(columns="reference").assign(fill=str(fill))[
        ["image", "mode", "fill", "fraction", "n_pixels", "similarity"]]


def fill_aucs(embed: Callable, images: Any, maps: dict, references: Any, *,
              fills=FILLS, modes=CURVE_MODES, steps: Any = DEFAULT_STEPS,
              batch_size: int = 32, progress: bool = False) -> pd.DataFrame:
    """Normalised deletion/insertion AUC (:func:`faceexp.evaluate.compare.curve_auc`) of
    every explainer's maps, per fill and mode.

    Parameters
    ----------
    maps : dict of str -> array_like (N, H, W)
        Explainer name -> its maps of ``images``.
    fills, modes : sequences

    Returns
    -------
    DataFrame
        Columns ``explainer``, ``fill``, ``mode``, ``image``, ``auc``.
    """
    from tqdm import tqdm

    if not isinstance(maps, dict) or not maps:
        raise ValueError("maps must be a dict explainer -> (N, H, W) maps")
    jobs = [(name, fill, mode) for name in maps for fill in fills for mode in modes]
    parts = []
    for name, fill, mode in tqdm(jobs, disable=not progress, desc="fills", unit="curve set"):
        curves = fill_curves(embed, images, maps[name], references, mode=mode, steps=steps,
                             fill=fill, batch_size=batch_size)
        parts.append(curve_auc(curves, by=("mode", "fill")).assign(explainer=name))
    return pd.concat(parts, ignore_index=True)[["explainer", "fill", "mode", "image", "auc"]]


def fill_ranking(aucs: pd.DataFrame, *, mode: str = "deletion") -> pd.DataFrame:
    """Rank of each explainer per fill (1 = best): deletion ranks a *lower* mean AUC
    first (the similarity falls faster), insertion a higher one.

    Returns
    -------
    DataFrame
        Index ``explainer``, one column per fill (ranks, average ranks for ties).
    """
    if mode not in CURVE_MODES:
        raise ValueError(f"mode must be one of {CURVE_MODES}, got {mode!r}")
    part = aucs[aucs["mode"] == mode]
    if part.empty:
        raise ValueError(f"aucs holds no {mode!r} rows")
    means = part.groupby(["explainer", "fill"], sort=False)["auc"].mean().unstack("fill")
    return means.rank(ascending=(mode == "deletion"), method="average")


def fill_agreement(ranking: pd.DataFrame) -> pd.DataFrame:
    """Kendall's tau (``scipy.stats.kendalltau``) between every two fills' rankings.

    Returns
    -------
    DataFrame
        Columns ``fill_a``, ``fill_b``, ``tau``, ``p_value``, ``explainers``
        (NaN with fewer than two explainers).
    """
    from scipy.stats import kendalltau

    rows = []
    for a, b in combinations(list(ranking.columns), 2):
        if len(ranking) < 2:
            tau, p = float("nan"), float("nan")
        else:
            result = kendalltau(ranking[a].to_numpy(), ranking[b].to_numpy())
            tau, p = float(result.statistic), float(result.pvalue)
        rows.append({"fill_a": a, "fill_b": b, "tau": tau, "p_value": p,
                     "explainers": len(ranking)})
    return pd.DataFrame(rows, columns=["fill_a", "fill_b", "tau", "p_value", "explainers"])
