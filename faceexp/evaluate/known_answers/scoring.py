"""How well a map finds a known answer: pixel AUC, pointing game, mass ratio, the control.

Per map and ground-truth mask (both (H, W)):

- :func:`pixel_auc`: ROC AUC of the map's values as a score of "pixel in the
  mask" (``sklearn.metrics.roc_auc_score``; ties count half): 1 when every
  mask pixel outranks every other, 0.5 for a map that knows nothing, 0 for
  the complement;
- :func:`pointing_game`: the share of the map's maximal pixels that fall in the
  mask (1 when its unique maximum hits it; a constant map scores the mask's
  area share);
- :func:`mass_ratio`: the map's (non-negative) mass inside the mask divided by
  the mask's area share (1 = no better than spread evenly).

**The control.** Swapped patches sit in the middle of the face, where maps of
faces look anyway, so each score is also computed for the same explainer's map
of the *unmodified* pair with the same mask (``auc_control``);
``delta = auc - auc_control`` is paired over probes (:func:`summarise_scores`,
:func:`faceexp.core.bootstrap.paired_difference`), and :func:`change_auc` is the
AUC of the change between the two maps. :func:`random_map` is the random
baseline of the same kind.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from faceexp.core.bootstrap import mean_interval, paired_difference

__all__ = ["pixel_auc", "pointing_game", "mass_ratio", "map_scores", "change_auc", "random_map",
           "summarise_scores", "SCORE_COLUMNS", "GROUP_COLUMNS"]

#: The columns of a summary row (:func:`summarise_scores`).
SCORE_COLUMNS = ("auc", "auc_low", "auc_high", "auc_control", "delta", "delta_low", "delta_high",
                 "pointing", "mass_ratio", "change_auc", "auc_random", "auc_random_low",
                 "auc_random_high")
#: What a summary row is per.
GROUP_COLUMNS = ("recogniser", "explainer", "task", "map")


def _pair(heatmap: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(heatmap, dtype=np.float64)
    truth = np.asarray(mask)
    if truth.dtype != bool:
        raise ValueError(f"mask must be a bool (H, W) array, got dtype {truth.dtype}")
    if values.shape != truth.shape or values.ndim != 2:
        raise ValueError(f"map and mask must be one (H, W) shape, got {values.shape} and "
                         f"{truth.shape}")
    if not np.isfinite(values).all():
        raise ValueError("map: values must be finite")
    if truth.all() or not truth.any():
        raise ValueError("mask must hold both pixels inside and outside the answer")
    return values.reshape(-1), truth.reshape(-1)


def pixel_auc(heatmap: Any, mask: Any) -> float:
    """ROC AUC of the map's values against the mask's pixels (0.5 = random)."""
    from sklearn.metrics import roc_auc_score

    values, truth = _pair(heatmap, mask)
    return float(roc_auc_score(truth, values))


def pointing_game(heatmap: Any, mask: Any) -> float:
    """Share of the map's maximal pixels inside the mask (1: its maximum hits)."""
    values, truth = _pair(heatmap, mask)
    top = values == values.max()
    return float(truth[top].mean())


def mass_ratio(heatmap: Any, mask: Any) -> float:
    """(Mass of ``max(map, 0)`` inside the mask / total mass) / (mask area / image area);
    NaN for a map with no positive mass."""
    values, truth = _pair(heatmap, mask)
    mass = np.maximum(values, 0.0)
    total = mass.sum()
    if total <= 0:
        return float("nan")
    return float((mass[truth].sum() / total) / truth.mean())


def map_scores(heatmap: Any, mask: Any) -> dict[str, float]:
    """``{"auc", "pointing", "mass_ratio"}`` of one map against one mask."""
    return {"auc": pixel_auc(heatmap, mask), "pointing": pointing_game(heatmap, mask),
            "mass_ratio": mass_ratio(heatmap, mask)}


def change_auc(heatmap: Any, control: Any, mask: Any) -> float:
    """AUC of ``heatmap - control`` (the map of the modified pair minus the map of the
    clean pair, as given) against the mask: where did the map change?"""
    control = np.asarray(control, dtype=np.float64)
    if control.shape != np.shape(heatmap):
        raise ValueError(f"control must have the map's shape {np.shape(heatmap)}, got "
                         f"{control.shape}")
    return pixel_auc(np.asarray(heatmap, dtype=np.float64) - control, mask)


def random_map(shape: tuple[int, int], *, segments: Any = None, rng: Any = 0) -> np.ndarray:
    """A random map: standard-normal values per superpixel of ``segments`` (a region
    map's contiguity), or per pixel without segments. ``rng``: seed or Generator."""
    rng = np.random.default_rng(rng)
    if segments is None:
        return rng.standard_normal(tuple(shape))
    labels = np.unique(np.asarray(segments), return_inverse=True)[1].reshape(tuple(shape))
    return rng.standard_normal(int(labels.max()) + 1)[labels]


def summarise_scores(per_probe: pd.DataFrame, *, by: Sequence[str] = GROUP_COLUMNS,
                     n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One row per group of per-probe scores, with bootstrap intervals over probes.

    Parameters
    ----------
    per_probe : DataFrame
        One row per (group, probe): the ``by`` columns, ``auc``, ``auc_control``,
        ``pointing``, ``mass_ratio``, and optionally ``change_auc``,
        ``auc_random``.
    by : sequence of str
    n_boot, level, seed
        The bootstrap (:func:`faceexp.core.bootstrap.mean_interval`;
        ``delta`` by :func:`~faceexp.core.bootstrap.paired_difference`).

    Returns
    -------
    DataFrame
        The ``by`` columns, :data:`SCORE_COLUMNS` (means; ``*_low``/``*_high``
        the interval) and ``kept`` (probes scored).
    """
    by = list(by)
    missing = [c for c in by + ["auc", "auc_control", "pointing", "mass_ratio"]
               if c not in per_probe]
    if missing:
        raise ValueError(f"per_probe: missing column(s) {missing}")
    rows = []
    for key, group in per_probe.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        auc = mean_interval(group["auc"].to_numpy(), n_boot=n_boot, level=level, seed=seed)
        delta = paired_difference(group["auc"].to_numpy(), group["auc_control"].to_numpy(),
                                  n_boot=n_boot, level=level, seed=seed)
        row = dict(zip(by, key))
        row.update(auc=float(auc["mean"].iloc[0]), auc_low=float(auc["ci_low"].iloc[0]),
                   auc_high=float(auc["ci_high"].iloc[0]),
                   auc_control=float(group["auc_control"].mean()),
                   delta=float(delta["difference"].iloc[0]),
                   delta_low=float(delta["ci_low"].iloc[0]),
                   delta_high=float(delta["ci_high"].iloc[0]),
                   pointing=float(group["pointing"].mean()),
                   mass_ratio=float(np.nanmean(group["mass_ratio"]))
                   if group["mass_ratio"].notna().any() else float("nan"))
        row["change_auc"] = float(group["change_auc"].mean()) if "change_auc" in group \
            else float("nan")
        if "auc_random" in group:
            random = mean_interval(group["auc_random"].to_numpy(), n_boot=n_boot, level=level,
                                   seed=seed)
            row.update(auc_random=float(random["mean"].iloc[0]),
                       auc_random_low=float(random["ci_low"].iloc[0]),
                       auc_random_high=float(random["ci_high"].iloc[0]))
        else:
            row.update(auc_random=float("nan"), auc_random_low=float("nan"),
                       auc_random_high=float("nan"))
        row["kept"] = len(group)
        rows.append(row)
    return pd.DataFrame(rows, columns=by + list(SCORE_COLUMNS) + ["kept"])
