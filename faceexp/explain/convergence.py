"""Stop sampling when the map has converged: ``Explainer(n_samples="auto")``.

The explainer draws its samples in rounds; after each round the agreement of the
current map with the map of infinitely many samples is estimated, and sampling stops
when it reaches ``1 - tolerance`` (or at ``max_samples``).

The estimate is split-half reliability (classical test theory, no model of the noise
needed): the samples so far (row 0, the unperturbed image, in both halves) are split
at random into two halves, each half is fitted as the explainer fits all of them, and
the Spearman correlation ``r_half`` of the two halves' coefficients over superpixels
is taken (averaged over ``n_splits`` random splits). A half-map is the true map plus
noise of variance v, so ``r_half`` = var(true) / (var(true) + v); the map of all the
samples has noise v / 2, hence (Spearman-Brown) reliability ``r_full = 2 r_half /
(1 + r_half)``, and its correlation with the true (infinite-sample) map is
``sqrt(r_full)``. The maps compared are the raw coefficients (not ``max(b, 0)``,
whose ties at 0 say nothing about ranks). No library offers this estimate for a
LIME fit (scikit-learn's ``cross_val_score`` scores predictions, not coefficient
ranks), hence our own few lines; the fits are :func:`faceexp.explain.lime_steps.fit_linear`'s.
:func:`estimate_agreement` gives the same estimate for any saved explanation.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterator

import numpy as np

from faceexp.core import checks
from faceexp.explain.lime_steps import fit_linear

__all__ = ["split_half_agreement", "spearman_brown", "rank_correlation", "estimate_agreement",
           "check_auto_options", "sample_until_agreement", "AUTO", "DEFAULT_TOLERANCE",
           "DEFAULT_MAX_SAMPLES", "DEFAULT_ROUND_SAMPLES", "DEFAULT_SPLITS", "DEFAULT_CONFIRM"]

#: The ``n_samples`` value that turns the stopping rule on.
AUTO = "auto"
#: Default ``tolerance``: stop at an estimated Spearman 0.9 with the infinite-sample map.
DEFAULT_TOLERANCE = 0.1
#: Default ``max_samples``: the paper's 1000.
DEFAULT_MAX_SAMPLES = 1000
#: Default ``round_samples``: the agreement is estimated every 100 samples.
DEFAULT_ROUND_SAMPLES = 100
#: Random half-splits averaged per estimate.
DEFAULT_SPLITS = 5
#: Consecutive checks that must reach the target before sampling stops: one noisy
#: crossing is not enough (stopping on the first read ~0.08 above the true agreement on
#: SFace, stop 28's honesty run).
DEFAULT_CONFIRM = 2


def spearman_brown(r: np.ndarray | float, factor: float = 2.0) -> np.ndarray:
    """Reliability of ``factor`` times the samples from reliability ``r``:
    ``factor r / (1 + (factor - 1) r)``; r <= 0 gives 0."""
    r = np.clip(np.asarray(r, dtype=np.float64), 0.0, 1.0)
    return factor * r / (1.0 + (factor - 1.0) * r)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Spearman correlation of (L, S) arrays (average ranks for ties); a pair
    of constant rows counts as 1 (the same map), one constant row as 0."""
    from scipy.stats import rankdata

    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    norm = np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))
    out = np.empty(len(a))
    for i in range(len(a)):
        if norm[i] > 0:
            out[i] = (ra[i] @ rb[i]) / norm[i]
        else:
            out[i] = 1.0 if not ra[i].any() and not rb[i].any() else 0.0
    return out


def split_half_agreement(samples: np.ndarray, targets: np.ndarray, weights: np.ndarray, *,
                         ridge: float = 0.0, n_splits: int = DEFAULT_SPLITS,
                         rng: Any = 0) -> tuple[np.ndarray, np.ndarray]:
    """Estimated Spearman agreement of the map of these samples with the infinite-sample map.

    Parameters
    ----------
    samples : (n, S) bool
        On/off vectors; row 0 (the unperturbed image) goes into both halves.
    targets : (n, L) float
        The fitted target of every sample and layer.
    weights : (n,) float
        Kernel weights.
    ridge : float >= 0
        As the explainer's fit.
    n_splits : int >= 1
        Random half-splits averaged.
    rng : seed or numpy Generator
        Draws the splits.

    Returns
    -------
    agreement : (L,) float in [0, 1]
        ``sqrt(spearman_brown(r_half))``: the estimated correlation of the full map
        with the true map, per layer.
    r_half : (L,) float
        Mean Spearman correlation between the two halves' coefficients.
    """
    n_splits = checks.positive_int(n_splits, "n_splits")
    samples = np.asarray(samples, dtype=bool)
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim == 1:
        targets = targets[:, None]
    n = samples.shape[0]
    if n < 3 or targets.shape[0] != n or np.shape(weights) != (n,):
        raise ValueError(f"samples, targets and weights must have the same n >= 3 rows, got "
                         f"{samples.shape}, {targets.shape}, {np.shape(weights)}")
    rng = np.random.default_rng(rng)
    rest = np.arange(1, n)
    cut = (n - 1) // 2
    r = np.zeros((n_splits, targets.shape[1]))
    for k in range(n_splits):
        order = rng.permutation(rest)
        halves = [np.concatenate([[0], order[:cut]]), np.concatenate([[0], order[cut:]])]
        a, b = (fit_linear(samples[h], targets[h], weights[h], ridge=ridge)[0] for h in halves)
        r[k] = rank_correlation(a, b)
    r_half = r.mean(axis=0)
    return np.sqrt(spearman_brown(r_half)), r_half


def estimate_agreement(explanation, *, n_splits: int = DEFAULT_SPLITS,
                       rng: Any = 0) -> np.ndarray:
    """:func:`split_half_agreement` of an :class:`~faceexp.explain.explanation.Explanation`
    (its samples, targets, weights and ridge option): (L,) estimated agreement with the
    infinite-sample map, per layer."""
    return split_half_agreement(explanation.samples, explanation.targets.T, explanation.weights,
                                ridge=float(explanation.options.get("ridge", 0.0)),
                                n_splits=n_splits, rng=rng)[0]


def check_auto_options(n_samples: Any, tolerance: Any, max_samples: Any,
                       round_samples: Any) -> tuple[int | str, float, int, int]:
    """Validate the sample-count options of the explainer; one-line ValueError naming the
    parameter. Returns them normalised (``n_samples`` an int or ``"auto"``)."""
    if isinstance(n_samples, str):
        if n_samples != AUTO:
            raise ValueError(f"n_samples must be a positive int or 'auto' (sample until the "
                             f"map converges), got {n_samples!r}")
    else:
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) \
                or n_samples < 2:
            raise ValueError(f"n_samples must be an int >= 2 or 'auto', got {n_samples!r}")
        n_samples = int(n_samples)
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) \
            or not math.isfinite(tolerance) or not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be a number strictly between 0 and 1 (1 - the "
                         f"target Spearman agreement, e.g. 0.1), got {tolerance!r}")
    max_samples = checks.positive_int(max_samples, "max_samples", 3)
    round_samples = checks.positive_int(round_samples, "round_samples", 1)
    return n_samples, float(tolerance), max_samples, round_samples


def sample_until_agreement(batches: Iterator[tuple[int, list, np.ndarray, Any]],
                           samples: np.ndarray, weights: np.ndarray, *, tolerance: float,
                           round_samples: int, ridge: float, seed: int,
                           confirm: int = DEFAULT_CONFIRM
                           ) -> tuple[int, list, np.ndarray, Any, dict]:
    """Consume scored batches until the estimated agreement reaches ``1 - tolerance`` at
    ``confirm`` consecutive checks (``round_samples`` apart).

    Parameters
    ----------
    batches : iterator of (rows scored, layers, targets (L, max) so far, class index)
        The explainer's scoring, one batch at a time (stopping it stops the forwards).
    samples : (max, S) bool, weights : (max,)
        All the samples that may be scored, in order.
    tolerance, round_samples, ridge, seed
        The rule's settings; the splits are drawn from ``default_rng([seed, 1])``, not
        from the sample stream.
    confirm : int >= 1
        Consecutive checks at the target before stopping (1: the first crossing).

    Returns
    -------
    (samples used n, layers, targets (L, n), class index, record) where ``record`` is
    JSON: ``samples_used``, ``agreement`` (per layer, at the end), ``history`` (rows
    scored and the lowest layer agreement at every check), ``converged``.
    """
    confirm = checks.positive_int(confirm, "confirm", 1)
    total, n_superpixels = samples.shape
    # A half must hold at least the fit's S + 1 unknowns before its map means anything.
    first_check = 2 * (n_superpixels + 1) + 1
    rng = np.random.default_rng([seed, 1])
    history: list[list] = []
    next_check = round_samples
    agreement = None
    streak = 0
    done, layers, targets, class_index = 0, [], np.empty((0, 0)), None
    for done, layers, targets, class_index in batches:
        if done < total and (done < next_check or done < first_check):
            continue
        next_check = (done // round_samples + 1) * round_samples
        agreement = split_half_agreement(samples[:done], targets[:, :done].T, weights[:done],
                                         ridge=ridge, rng=rng)[0] \
            if done >= first_check else np.full(len(layers), np.nan)
        lowest = float(np.min(agreement))
        history.append([done, None if math.isnan(lowest) else lowest])
        streak = streak + 1 if lowest >= 1.0 - tolerance else 0
        if streak >= confirm:
            break
    converged = bool(agreement is not None and np.min(agreement) >= 1.0 - tolerance)
    record = {"samples_used": int(done), "tolerance": tolerance,
              "agreement": [None if math.isnan(a) else float(a) for a in agreement],
              "history": history, "converged": converged, "max_samples": int(total),
              "round_samples": round_samples, "confirm": confirm, "estimator": "split-half Spearman, "
              "Spearman-Brown, sqrt"}
    return done, layers, targets[:, :done].copy(), class_index, record
