"""The bootstrap: argument checks, resampling counts, percentile intervals, and per-image means and paired differences.

Every interval here is a **percentile bootstrap** (the ``(1 - level) / 2``
and ``(1 + level) / 2`` percentiles of the resampled statistic, numpy's
linear interpolation; resamples where the statistic is undefined are
ignored), and every function takes a ``seed``: an int (the default 0 makes
every result reproducible), a ``numpy.random.Generator`` (used as it is), or
None (a fresh seed, not reproducible) (:func:`as_rng`). The resampling draws
``rng.integers(0, N, size=(n_boot, N))`` for N units, as
``scipy.stats.bootstrap`` does for one sample (:func:`draw_counts`).

:func:`mean_interval` and :func:`paired_difference` resample **images**: two
measures of the same images are compared paired, image by image. What the
units are elsewhere (identities for EERs: :mod:`faceexp.verify.intervals`)
is the caller's choice.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from faceexp.core import checks

__all__ = [
    "check_n_boot",
    "check_level",
    "as_rng",
    "percentile_interval",
    "draw_counts",
    "mean_interval",
    "paired_difference",
]


# --------------------------------------------------------------------------
# checks and resampling shared by every bootstrap


def check_n_boot(n_boot) -> int:
    """``n_boot`` (resamples) as an int >= 1, or ValueError."""
    return checks.positive_int(n_boot, "n_boot")


def check_level(level) -> float:
    """``level`` (an interval's coverage) as a float strictly between 0 and 1, or ValueError."""
    level = checks.finite_real(level, "level")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1 (0.95 for a 95% interval), "
                         f"got {level!r}")
    return level


def as_rng(seed) -> np.random.Generator:
    """A Generator used as given; an int seeds a new one; None draws a fresh seed."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(checks.seed(seed, "seed", fresh=True))


def percentile_interval(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along axis 0, NaN resamples ignored (all NaN: NaN)."""
    alpha = (1.0 - level) / 2.0
    values = np.asarray(values, dtype=np.float64)
    low = np.full(values.shape[1:], np.nan)
    high = np.full(values.shape[1:], np.nan)
    valid = ~np.all(np.isnan(values), axis=0)
    if np.any(valid):
        low[valid], high[valid] = np.nanpercentile(values[:, valid], [100 * alpha, 100 * (1 - alpha)],
                                                   axis=0)
    return low, high


def draw_counts(n_units: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_units) multiplicities of ``n_units`` units drawn with replacement.

    Draws ``rng.integers(0, n_units, size=(n_boot, n_units))``, the draw of
    ``scipy.stats.bootstrap`` for one sample of ``n_units`` values, so a
    statistic computed from these counts equals scipy's for the same generator.
    """
    draws = rng.integers(0, n_units, size=(n_boot, n_units))
    offsets = (np.arange(n_boot) * n_units)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=n_boot * n_units).reshape(n_boot, n_units)


# --------------------------------------------------------------------------
# per-image measures: means and paired differences


def _per_image(values, name: str) -> tuple[np.ndarray, object]:
    """(N, T) float64 values and the labels of the T columns (None for a 1-D input)."""
    labels = None
    if isinstance(values, pd.DataFrame):
        labels = list(values.columns)
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    elif array.ndim != 2:
        raise ValueError(f"{name} must be per-image values of shape (N,) or (N, T), got {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty: give at least one image")
    return array, labels


def _bootstrap_means(values: np.ndarray, n_boot: int, level: float, rng) -> tuple:
    """Mean over rows (axis 0) of (N, T) values and its percentile interval over resampled rows."""
    counts = draw_counts(values.shape[0], n_boot, rng)
    means = counts @ values / values.shape[0]
    low, high = percentile_interval(means, level)
    return values.mean(axis=0), low, high


def mean_interval(values, *, n_boot: int = 2000, level: float = 0.95, seed=0) -> pd.DataFrame:
    """Mean of per-image values with a bootstrap interval over images.

    Parameters
    ----------
    values : array_like, shape (N,) or (N, T)
        One value per image (and per column, e.g. per region or threshold);
        NaN marks an image to leave out of that column (e.g. a heatmap with
        no information), counted in ``n_excluded``.
    n_boot : int, default 2000
    level : float, default 0.95
    seed : int or numpy.random.Generator, default 0
        Each resample draws N images with replacement,
        ``rng.integers(0, N, size=(n_boot, N))`` (``scipy.stats.bootstrap``'s
        draw for one sample), the same images for every column; a column's
        resampled mean is over the drawn images that have a value there.

    Returns
    -------
    pandas.DataFrame
        One row per column (index: a DataFrame's columns, else 0 .. T-1):
        ``mean``, ``ci_low``, ``ci_high``, ``n`` (images with a value),
        ``n_excluded`` (NaN). ``attrs``: ``level``, ``n_boot``.
    """
    array, labels = _per_image(values, "values")
    if np.isinf(array).any():
        raise ValueError("values hold infinite entries (e.g. the PSNR of identical maps); replace "
                         "them with NaN to leave them out, or give finite values")
    n_boot, level, rng = check_n_boot(n_boot), check_level(level), as_rng(seed)
    present = ~np.isnan(array)
    filled = np.where(present, array, 0.0)
    counts = draw_counts(array.shape[0], n_boot, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        resampled = (counts @ filled) / (counts @ present)
        mean = filled.sum(axis=0) / present.sum(axis=0)
    low, high = percentile_interval(resampled, level)
    frame = pd.DataFrame({"mean": mean, "ci_low": low, "ci_high": high,
                          "n": present.sum(axis=0), "n_excluded": (~present).sum(axis=0)},
                         index=labels)
    frame.attrs = {"level": level, "n_boot": n_boot, "resampling": "images"}
    return frame


def paired_difference(a, b, *, n_boot: int = 2000, level: float = 0.95, seed=0) -> pd.DataFrame:
    """Paired comparison of two measures of the same images: mean ``a - b`` with an interval.

    E.g. at each removal threshold, the similarity drop of an image after
    removing its significant pixels (``a``) and after removing as many random
    pixels (``b``): is the significant removal larger, by how much, for how
    many images?

    Parameters
    ----------
    a, b : array_like, shape (N,) or (N, T)
        Row ``k`` of both is image ``k``; columns (e.g. thresholds) are
        compared separately. Finite values. A DataFrame ``a`` names the rows
        of the result by its columns.
    n_boot : int, default 2000
    level : float, default 0.95
    seed : int or numpy.random.Generator, default 0
        The images are resampled (the same images for ``a`` and ``b`` and for
        every column): ``rng.integers(0, N, size=(n_boot, N))``, as
        ``scipy.stats.bootstrap(..., paired=True)`` draws.

    Returns
    -------
    pandas.DataFrame
        One row per column: ``mean_a``, ``mean_b``, ``difference`` (mean of
        ``a - b``), ``ci_low``, ``ci_high`` (its interval), ``fraction_greater``
        (fraction of images with ``a > b``), ``n`` (images).
        ``attrs``: ``level``, ``n_boot``.
    """
    a_values, labels = _per_image(a, "a")
    b_values, _ = _per_image(b, "b")
    if a_values.shape != b_values.shape:
        raise ValueError(f"a and b must be the same images: equal shapes (N,) or (N, T), got "
                         f"{a_values.shape} and {b_values.shape}")
    if not (np.isfinite(a_values).all() and np.isfinite(b_values).all()):
        raise ValueError("a and b must be finite; drop the images with NaN or infinite values from "
                         "both before comparing them")
    n_boot, level = check_n_boot(n_boot), check_level(level)
    difference = a_values - b_values
    mean, low, high = _bootstrap_means(difference, n_boot, level, as_rng(seed))
    frame = pd.DataFrame({"mean_a": a_values.mean(axis=0), "mean_b": b_values.mean(axis=0),
                          "difference": mean, "ci_low": low, "ci_high": high,
                          "fraction_greater": (difference > 0).mean(axis=0),
                          "n": a_values.shape[0]}, index=labels)
    frame.attrs = {"level": level, "n_boot": n_boot, "resampling": "images, paired"}
    return frame
