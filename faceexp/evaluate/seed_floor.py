"""The seed-to-seed floor of heatmap comparisons: how alike two explanations of the same images are by chance.

:func:`noise_floor` measures the per-image PSNR between two sampling seeds of
one explainer; :func:`relative_to_floor` says whether a PSNR between two
systems (GAP vs softmax, one recogniser vs another) is lower than that floor.
Both resample images (paired when the images are the same) with
:mod:`faceexp.core.bootstrap`; PSNRs are in dB, as in
:mod:`faceexp.evaluate.heatmaps`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from faceexp.core.bootstrap import (as_rng, check_level, check_n_boot, draw_counts, mean_interval,
                                    paired_difference, percentile_interval)
from faceexp.evaluate.heatmaps import psnr_pairs

__all__ = [
    "FLOOR_READINGS",
    "noise_floor",
    "relative_to_floor",
]

#: What :func:`relative_to_floor` says of a between-model PSNR, by the sign of its interval.
FLOOR_READINGS = ("lower than the seed floor", "not distinguishable from the seed floor",
                  "higher than the seed floor")


def _constant(stack: np.ndarray) -> np.ndarray:
    flat = stack.reshape(len(stack), -1)
    return flat.max(axis=1) == flat.min(axis=1)


def noise_floor(heatmaps_a, heatmaps_b, *, n_boot: int = 2000, level: float = 0.95, seed=0,
                data_range: float = 1.0) -> pd.DataFrame:
    """Seed-to-seed PSNR floor: how alike two explanations of the same images are by chance.

    ``heatmaps_a`` and ``heatmaps_b`` explain the same images with the same
    recogniser, layer and settings and different sampling seeds; their
    per-image PSNR (:func:`faceexp.evaluate.heatmaps.psnr_pairs`) says how much two
    heatmaps differ from sampling alone. A PSNR between two systems (GAP vs
    softmax, one recogniser vs another) means something only against it
    (:func:`relative_to_floor`).

    Images where either map is constant (no information: the target did not
    react to the perturbation, or every coefficient was <= 0 with
    ``positive_only``; such maps are painted all 0) are left out and counted,
    as are identical maps (PSNR ``inf``).

    Parameters
    ----------
    heatmaps_a, heatmaps_b : array_like, shape (N, H, W)
        The two seeds' heatmaps, row ``k`` of both the same image.
    n_boot, level, seed
        Bootstrap over images (:func:`faceexp.core.bootstrap.mean_interval`).
    data_range : float, default 1.0
        As in :func:`faceexp.evaluate.heatmaps.heatmap_psnr`.

    Returns
    -------
    pandas.DataFrame
        One row: ``psnr`` (mean dB over the images kept), ``ci_low``,
        ``ci_high``, ``n`` (images kept), ``n_constant``, ``n_identical``.
    """
    values = psnr_pairs(heatmaps_a, heatmaps_b, data_range=data_range)
    a = np.asarray(heatmaps_a, dtype=np.float64)
    b = np.asarray(heatmaps_b, dtype=np.float64)
    constant = _constant(a) | _constant(b)
    identical = ~constant & np.isinf(values)
    kept = values[~constant & ~identical]
    row = {"psnr": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": int(kept.size),
           "n_constant": int(constant.sum()), "n_identical": int(identical.sum())}
    if kept.size:
        summary = mean_interval(kept, n_boot=n_boot, level=level, seed=seed).iloc[0]
        row.update(psnr=float(summary["mean"]), ci_low=float(summary["ci_low"]),
                   ci_high=float(summary["ci_high"]))
    frame = pd.DataFrame([row])
    frame.attrs = {"level": check_level(level), "n_boot": check_n_boot(n_boot), "unit": "dB"}
    return frame


def relative_to_floor(psnr_between, floor, *, paired: bool = True, n_boot: int = 2000,
                      level: float = 0.95, seed=0) -> pd.DataFrame:
    """Is a between-system PSNR lower than the seed-to-seed floor? ``floor - between`` with an interval.

    Parameters
    ----------
    psnr_between : array_like, shape (N,)
        Per-image PSNR (dB) between two systems' heatmaps (e.g. the ``psnr``
        column of :func:`faceexp.evaluate.heatmaps.psnr_between`).
    floor : array_like, shape (N,) or (M,)
        Per-image PSNR (dB) between two seeds of one system
        (:func:`faceexp.evaluate.heatmaps.psnr_pairs` of the two seeds' stacks).
        Infinite values (identical maps) and NaN are left out (with
        ``paired``, the image is left out of both) and counted.
    paired : bool, default True
        True: the same N images in the same order, compared image by image
        (the images are resampled together). False: two independent sets of
        images, each resampled on its own.
    n_boot, level, seed
        Bootstrap over images.

    Returns
    -------
    pandas.DataFrame
        One row: ``between``, ``floor`` (mean dB), ``difference`` (``floor -
        between``, dB: > 0 when the two systems disagree more than two seeds
        of one do), ``ci_low``, ``ci_high``, ``n_between``, ``n_floor``,
        ``n_excluded``, ``reading`` (one of :data:`FLOOR_READINGS`: "lower"
        when the interval lies above 0, "higher" when below, else "not
        distinguishable").
    """
    if not isinstance(paired, (bool, np.bool_)):
        raise ValueError(f"paired must be True or False, got {paired!r}")
    between = np.asarray(psnr_between, dtype=np.float64).ravel()
    floor_values = np.asarray(floor, dtype=np.float64).ravel()
    if between.size == 0 or floor_values.size == 0:
        raise ValueError("psnr_between and floor must hold at least one PSNR each")
    if np.isneginf(between).any() or np.isneginf(floor_values).any():
        raise ValueError("psnr_between and floor hold -inf; a PSNR is never -inf")
    n_boot, level, rng = check_n_boot(n_boot), check_level(level), as_rng(seed)
    if paired:
        if between.shape != floor_values.shape:
            raise ValueError(f"paired=True needs one floor value per image of psnr_between: got "
                             f"{between.size} and {floor_values.size} values (pass paired=False for "
                             "two different sets of images)")
        keep = np.isfinite(between) & np.isfinite(floor_values)
        if not keep.any():
            raise ValueError("no image has a finite PSNR in both psnr_between and floor")
        result = paired_difference(floor_values[keep], between[keep], n_boot=n_boot, level=level,
                                   seed=rng).iloc[0]
        difference, low, high = result["difference"], result["ci_low"], result["ci_high"]
        between_kept, floor_kept = between[keep], floor_values[keep]
        excluded = int((~keep).sum())
    else:
        between_kept = between[np.isfinite(between)]
        floor_kept = floor_values[np.isfinite(floor_values)]
        if not (between_kept.size and floor_kept.size):
            raise ValueError("psnr_between or floor has no finite PSNR")
        counts_b = draw_counts(between_kept.size, n_boot, rng)
        counts_f = draw_counts(floor_kept.size, n_boot, rng)
        resampled = counts_f @ floor_kept / floor_kept.size - counts_b @ between_kept / between_kept.size
        low, high = (float(v[0]) for v in percentile_interval(resampled[:, None], level))
        difference = floor_kept.mean() - between_kept.mean()
        excluded = int(between.size - between_kept.size + floor_values.size - floor_kept.size)
    reading = FLOOR_READINGS[0] if low > 0 else FLOOR_READINGS[2] if high < 0 else FLOOR_READINGS[1]
    frame = pd.DataFrame([{
        "between": float(between_kept.mean()), "floor": float(floor_kept.mean()),
        "difference": float(difference), "ci_low": float(low), "ci_high": float(high),
        "n_between": int(between_kept.size), "n_floor": int(floor_kept.size),
        "n_excluded": excluded, "reading": reading,
    }])
    frame.attrs = {"level": level, "n_boot": n_boot, "paired": bool(paired), "unit": "dB"}
    return frame
