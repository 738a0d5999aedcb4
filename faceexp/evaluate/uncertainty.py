"""Uncertainty of the book's numbers: identity-bootstrap EER intervals, fold-chosen fusion, paired and noise-floor comparisons.

Every interval of this module is a **percentile bootstrap** (the
``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of the resampled
statistic, numpy's linear interpolation; resamples where the statistic is
undefined are ignored), and every function takes a ``seed``: an int (the
default 0 makes every result reproducible), a ``numpy.random.Generator``
(used as it is), or None (a fresh seed, not reproducible). What is resampled
depends on what is independent:

* **EERs resample identities, not pairs** (:func:`bootstrap_eer`,
  :func:`eer_interval`, :func:`kfold_fusion`): all comparisons of one person
  share that person's images, so they are not independent draws; the
  interval reflects the variation between people.
* **Per-image measures resample images** (:func:`mean_interval`,
  :func:`paired_difference`, :func:`noise_floor`, :func:`relative_to_floor`):
  two measures of the same images (significant vs random removal, two seeds
  of one explainer) are compared **paired**, image by image.

Scores are similarities (accepted when ``score >= threshold``) and EERs are
fractions, as in :mod:`faceexp.verify.metrics`; PSNRs are in dB, as in
:mod:`faceexp.evaluate.heatmaps`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from faceexp.core import checks
from faceexp.verify.fusion import best_fusion, fuse_scores, fusion_sweep
from faceexp.evaluate.heatmaps import psnr_pairs
from faceexp.verify.metrics import check_convention, group_eer, check_labels, check_scores, group_masks

__all__ = [
    "KFOLD_WEIGHTS",
    "bootstrap_eer",
    "eer_interval",
    "kfold_fusion",
    "mean_interval",
    "paired_difference",
    "noise_floor",
    "relative_to_floor",
]

#: Fusion weights :func:`kfold_fusion` tries by default: 0, 0.05, ..., 1.
KFOLD_WEIGHTS = np.linspace(0.0, 1.0, 21)

#: What :func:`relative_to_floor` says of a between-model PSNR, by the sign of its interval.
FLOOR_READINGS = ("lower than the seed floor", "not distinguishable from the seed floor",
                  "higher than the seed floor")


# --------------------------------------------------------------------------
# checks and resampling shared by every function


def _n_boot(n_boot) -> int:
    return checks.positive_int(n_boot, "n_boot")


def _level(level) -> float:
    level = checks.finite_real(level, "level")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1 (0.95 for a 95% interval), "
                         f"got {level!r}")
    return level


def _rng(seed) -> np.random.Generator:
    """A Generator used as given; an int seeds a new one; None draws a fresh seed."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(checks.seed(seed, "seed", fresh=True))


def _percentiles(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
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


def _draw_counts(n_units: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_units) multiplicities of ``n_units`` units drawn with replacement.

    Draws ``rng.integers(0, n_units, size=(n_boot, n_units))``, the draw of
    ``scipy.stats.bootstrap`` for one sample of ``n_units`` values, so a
    statistic computed from these counts equals scipy's for the same generator.
    """
    draws = rng.integers(0, n_units, size=(n_boot, n_units))
    offsets = (np.arange(n_boot) * n_units)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=n_boot * n_units).reshape(n_boot, n_units)


# --------------------------------------------------------------------------
# identity bootstrap of EERs


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values and the code of each value (sorted as str if the types mix)."""
    try:
        names, codes = np.unique(values, return_inverse=True)
    except TypeError:
        names, codes = np.unique(values.astype(str), return_inverse=True)
    return names, codes.ravel()


def _identities(identity_i, identity_j, n: int):
    """Codes of the pairs' identities: (index_i (P,), index_j (P,) or None, distinct identities)."""
    identity_i = np.asarray(identity_i, dtype=object).ravel()
    if identity_i.shape != (n,):
        raise ValueError(f"identity_i must have one value per pair, shape ({n},), got {identity_i.shape}")
    if identity_j is None:
        names, index_i = _codes(identity_i)
        return index_i, None, names
    identity_j = np.asarray(identity_j, dtype=object).ravel()
    if identity_j.shape != (n,):
        raise ValueError(f"identity_j must have one value per pair, shape ({n},), got {identity_j.shape}")
    names, index = _codes(np.concatenate([identity_i, identity_j]))
    return index[:n], index[n:], names


def _pair_weights(counts: np.ndarray, index_i: np.ndarray, index_j: np.ndarray | None) -> np.ndarray:
    """Multiplicity of every pair in one resample (see :func:`bootstrap_eer`)."""
    if index_j is None:
        return counts[index_i]
    return np.where(index_i == index_j, counts[index_i], counts[index_i] * counts[index_j])


def _bootstrap_eers(score_sets: list, genuine: np.ndarray, index_i, index_j, n_identities: int,
                    n_boot: int, rng: np.random.Generator, convention: str) -> np.ndarray:
    """(n_boot, S) EERs of S score sets of the same pairs, all on the same identity resamples."""
    eers = np.full((n_boot, len(score_sets)), np.nan)
    counts = _draw_counts(n_identities, n_boot, rng)
    negatives = [s[~genuine] for s in score_sets]
    positives = [s[genuine] for s in score_sets]
    for b in range(n_boot):
        weights = _pair_weights(counts[b], index_i, index_j)
        w_neg, w_pos = weights[~genuine], weights[genuine]
        if not (w_neg.any() and w_pos.any()):
            continue
        for s, (neg, pos) in enumerate(zip(negatives, positives)):
            eers[b, s] = group_eer(np.repeat(neg, w_neg), np.repeat(pos, w_pos), convention)
    return eers


def bootstrap_eer(scores, labels, identity_i, identity_j=None, *, n_boot: int = 1000,
                  level: float = 0.95, seed=0, convention: str = "bob"
                  ) -> tuple[float, float, np.ndarray]:
    """Percentile bootstrap interval of one EER, resampling identities (people), not pairs.

    Each resample draws as many identities as there are, with replacement,
    and keeps every pair with a multiplicity set by its identities' draws:

    * with ``identity_j`` (the rule of this module): a genuine pair of
      person ``u`` (``identity_i == identity_j``) is kept ``c_u`` times, where
      ``c_u`` is how often ``u`` was drawn; an impostor pair of persons
      ``u != v`` is kept ``c_u * c_v`` times, once for every combination of a
      drawn copy of ``u`` and a drawn copy of ``v``. A resample is thus the
      comparisons a data set made of the drawn people would give (without
      comparing two copies of one person with each other); an impostor pair
      is dropped when either of its people was not drawn.
    * with ``identity_j=None``: every pair is kept ``c_u`` times, ``u`` its
      ``identity_i`` (the pair is attributed to its first person only; the
      rule of :func:`faceexp.verify.verification.bootstrap_eer_ci`,
      which gives the same numbers for the same generator).

    Parameters
    ----------
    scores : array_like, shape (P,)
        Similarities (higher = same person), finite.
    labels : array_like, shape (P,)
        1 genuine, 0 impostor.
    identity_i, identity_j : array_like, shape (P,)
        The identities of each pair's two images (any hashable values);
        ``identity_j`` None: see above.
    n_boot : int, default 1000
        Resamples.
    level : float, default 0.95
        Coverage of the interval.
    seed : int or numpy.random.Generator, default 0
        The resampling draws ``rng.integers(0, G, size=(n_boot, G))`` for the
        G identities, as ``scipy.stats.bootstrap`` does for one sample of the
        identity indices, so both give the same interval for the same generator.
    convention : {"bob", "pyeer"}
        EER rule, see :func:`faceexp.verify.metrics.equal_error_rate`.

    Returns
    -------
    low, high : float
        The interval's ends (fractions).
    eers : numpy.ndarray, shape (n_boot,)
        The resampled EERs; NaN where a resample has no genuine or no impostor
        pair (ignored by the percentiles).

    Raises
    ------
    ValueError
        On mismatched lengths, labels other than 0/1, non-finite scores, no
        genuine or no impostor pair, or a bad ``n_boot``, ``level`` or ``seed``.
    """
    scores = check_scores(scores, "scores")
    genuine = check_labels(labels, scores.size)
    if genuine.all() or not genuine.any():
        raise ValueError("the EER needs both genuine (label 1) and impostor (label 0) pairs")
    index_i, index_j, names = _identities(identity_i, identity_j, scores.size)
    n_boot, level, convention = _n_boot(n_boot), _level(level), check_convention(convention)
    eers = _bootstrap_eers([scores], genuine, index_i, index_j, len(names), n_boot, _rng(seed),
                           convention)[:, 0]
    low, high = _percentiles(eers[:, None], level)
    return float(low[0]), float(high[0]), eers


def _pair_columns(pairs, n: int | None = None) -> pd.DataFrame:
    if not isinstance(pairs, pd.DataFrame):
        raise ValueError("pairs must be a DataFrame with columns label, identity_i, identity_j "
                         f"(faceexp.verify.protocol.verification_pairs), got {type(pairs).__name__}")
    missing = [c for c in ("label", "identity_i", "identity_j") if c not in pairs.columns]
    if missing:
        raise ValueError(f"pairs needs the columns {missing} (as faceexp.verify.protocol.verification_pairs "
                         f"gives); it has {list(pairs.columns)}")
    if n is not None and len(pairs) != n:
        raise ValueError(f"pairs has {len(pairs)} rows for {n} scores; give one score per pair")
    return pairs


def _score_dict(scores, n: int) -> dict:
    if isinstance(scores, dict):
        if not scores:
            raise ValueError("scores must be a (P,) array or a non-empty dict name -> (P,) scores")
        out = {}
        for name, values in scores.items():
            values = check_scores(values, f"scores[{name!r}]")
            if values.shape != (n,):
                raise ValueError(f"scores[{name!r}] must have one score per pair, shape ({n},), "
                                 f"got {values.shape}")
            out[name] = values
        return out
    values = check_scores(scores, "scores")
    if values.shape != (n,):
        raise ValueError(f"scores must have one score per pair, shape ({n},), got {values.shape}")
    return {None: values}


def eer_interval(scores, pairs: pd.DataFrame, *, by: str | None = None, n_boot: int = 1000,
                 level: float = 0.95, seed=0, convention: str = "bob") -> pd.DataFrame:
    """EER with an identity-bootstrap interval and its pair counts, per group of pairs.

    The point estimate is :func:`faceexp.verify.metrics.eer_by_group`'s; the interval
    is :func:`bootstrap_eer`'s with both identities of each pair (a genuine
    pair of person ``u`` is kept once per draw of ``u``, an impostor pair of
    ``u`` and ``v`` ``c_u * c_v`` times), computed within each group.

    Parameters
    ----------
    scores : array_like, shape (P,), or dict name -> (P,)
        Similarity scores, one per row of ``pairs``; a dict (e.g. one entry
        per recogniser or layer) gives one block of rows per entry, with a
        ``system`` column.
    pairs : pandas.DataFrame, P rows
        Columns ``label`` (1 genuine, 0 impostor), ``identity_i``,
        ``identity_j`` (as :func:`faceexp.verify.protocol.verification_pairs` gives)
        and the ``by`` column if given.
    by : str, optional
        Column of ``pairs`` whose values are the groups (e.g. ``"pose_pair"``
        of :func:`faceexp.verify.protocol.verification_pairs_by_pose`); ``"overall"``
        is added as in :func:`faceexp.verify.metrics.group_masks`. None: one group,
        ``"overall"``.
    n_boot : int, default 1000
    level : float, default 0.95
    seed : int or numpy.random.Generator, default 0
        An int seeds every group's resampling afresh (a group's interval does
        not depend on which other groups or systems there are); a Generator
        is used in turn by every group.
    convention : {"bob", "pyeer"}
        EER rule, see :func:`faceexp.verify.metrics.equal_error_rate`.

    Returns
    -------
    pandas.DataFrame
        One row per (system and) group, groups in order of first appearance,
        ``"overall"`` last. Columns: ``system`` (only for a dict of scores),
        ``group``, ``eer``, ``ci_low``, ``ci_high`` (fractions; NaN where the
        group lacks genuine or impostor pairs), ``genuine``, ``impostor``
        (pair counts), ``identities`` (people in the group's pairs).
        ``attrs``: ``level``, ``n_boot``, ``resampling``, ``convention``.
    """
    pairs = _pair_columns(pairs)
    n = len(pairs)
    systems = _score_dict(scores, n)
    n_boot, level, convention = _n_boot(n_boot), _level(level), check_convention(convention)
    if by is not None and by not in pairs.columns:
        raise ValueError(f"by must be a column of pairs ({list(pairs.columns)}), got {by!r}")
    genuine = check_labels(pairs["label"].to_numpy(), n)
    members = group_masks(None if by is None else pairs[by].to_numpy(), n)
    identity_i = pairs["identity_i"].to_numpy()
    identity_j = pairs["identity_j"].to_numpy()
    rows = []
    for system, values in systems.items():
        for group, mask in members.items():
            g_genuine = genuine[mask]
            row = {} if system is None else {"system": system}
            row.update(group=group, eer=np.nan, ci_low=np.nan, ci_high=np.nan,
                       genuine=int(g_genuine.sum()), impostor=int((~g_genuine).sum()),
                       identities=int(len(pd.unique(np.concatenate([identity_i[mask],
                                                                    identity_j[mask]])))))
            if g_genuine.any() and (~g_genuine).any():
                index_i, index_j, names = _identities(identity_i[mask], identity_j[mask],
                                                      int(mask.sum()))
                eers = _bootstrap_eers([values[mask]], g_genuine, index_i, index_j, len(names),
                                       n_boot, _rng(seed), convention)
                low, high = _percentiles(eers, level)
                row.update(eer=group_eer(values[mask][~g_genuine], values[mask][g_genuine],
                                          convention),
                           ci_low=float(low[0]), ci_high=float(high[0]))
            rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs = {"level": level, "n_boot": n_boot, "convention": convention,
                   "resampling": "identities (genuine pair x c_u, impostor pair x c_u c_v)"}
    return frame


# --------------------------------------------------------------------------
# fusion weight chosen on held-out identities


def _fold_assignment(identities: np.ndarray, k, seed, folds) -> np.ndarray:
    """Fold number (0 .. K-1) of every identity."""
    if folds is not None:
        if not hasattr(folds, "get"):
            raise ValueError(f"folds must be a dict identity -> fold label, got {type(folds).__name__}")
        missing = [u for u in identities if u not in folds]
        if missing:
            raise ValueError(f"folds has no fold for the identities {missing[:5]}"
                             f"{' ...' if len(missing) > 5 else ''}; give every identity of pairs a fold")
        labels = [folds[u] for u in identities]
        _, codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
        codes = codes.ravel()
        if codes.max() < 1:
            raise ValueError("folds must name at least 2 folds")
        return codes
    k = checks.positive_int(k, "k", 2)
    if k > len(identities):
        raise ValueError(f"k must be at most the number of identities ({len(identities)}), got {k}")
    order = _rng(seed).permutation(len(identities))
    codes = np.empty(len(identities), dtype=np.int64)
    codes[order] = np.arange(len(identities)) % k
    return codes


def _fusion_rows(a1, a2, fused, genuine, identity_i, identity_j, n_boot, level, seed, convention):
    """EER of the fused scores and of each system alone, with joint identity-bootstrap intervals."""
    index_i, index_j, names = _identities(identity_i, identity_j, len(fused))
    sets = [fused, a1, a2]
    point = np.array([group_eer(s[~genuine], s[genuine], convention) for s in sets])
    eers = _bootstrap_eers(sets, genuine, index_i, index_j, len(names), n_boot, _rng(seed),
                           convention)
    low, high = _percentiles(eers[:, :1], level)

    def change(values):
        baseline = np.minimum(values[..., 1], values[..., 2])
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(baseline > 0, (values[..., 0] - baseline) / baseline, np.nan)

    change_low, change_high = _percentiles(change(eers)[:, None], level)
    return {"eer": float(point[0]), "ci_low": float(low[0]), "ci_high": float(high[0]),
            "eer_first": float(point[1]), "eer_second": float(point[2]),
            "change": float(change(point)), "change_low": float(change_low[0]),
            "change_high": float(change_high[0]),
            "genuine": int(genuine.sum()), "impostor": int((~genuine).sum()),
            "identities": len(names)}


def kfold_fusion(scores_a, scores_b, pairs: pd.DataFrame, *, k: int = 5, seed=0,
                 weights=KFOLD_WEIGHTS, folds=None, n_boot: int = 1000, level: float = 0.95,
                 convention: str = "bob") -> pd.DataFrame:
    """Fusion ``a * scores_a + (1 - a) * scores_b`` with ``a`` chosen on held-out identities.

    The identities of ``pairs`` are split into ``k`` folds (a seeded random
    permutation dealt round-robin, so fold sizes differ by at most one). For
    each fold, ``a`` is the weight of lowest EER
    (:func:`faceexp.verify.fusion.best_fusion`: ties go to the smallest ``a``) on the
    **training pairs**, those with neither identity in the fold, and is
    applied to the fold's **test pairs**, those with both identities in the
    fold. Pairs between two folds are in no test part: they are left out of
    the k-fold EER (every genuine pair is in one test part, an impostor pair
    only when its two people share a fold, about 1/k of them), so that no
    person of a test pair was seen when ``a`` was chosen. The k-fold EER is the
    EER of the test pairs of all folds pooled, each fused with its fold's
    weight; its interval is :func:`bootstrap_eer`'s over those pairs with the
    fold weights held fixed (the choice of ``a`` is not repeated per
    resample, so the interval leaves out that part of the variation).

    The **oracle** line is the paper's procedure: ``a`` tuned on all pairs and
    the EER read on the same pairs (optimistic: the weight saw its test set).

    Parameters
    ----------
    scores_a, scores_b : array_like, shape (P,)
        Similarity scores of the two systems for the rows of ``pairs``;
        ``a = 1`` is ``scores_a`` alone, ``a = 0`` ``scores_b`` alone.
    pairs : pandas.DataFrame, P rows
        Columns ``label``, ``identity_i``, ``identity_j``
        (:func:`faceexp.verify.protocol.verification_pairs`). One protocol: for
        :func:`faceexp.verify.protocol.verification_pairs_by_pose`, pass the rows of
        one ``pose_pair``.
    k : int, default 5
        Folds, 2 <= k <= number of identities.
    seed : int or numpy.random.Generator, default 0
        Seeds the fold split and the bootstrap.
    weights : array_like, shape (W,)
        Candidate values of ``a`` in [0, 1]; must include 0 and 1. Default
        0, 0.05, ..., 1.
    folds : dict identity -> fold label, optional
        An explicit split (overrides ``k`` and the seeded split).
    n_boot : int, default 1000
    level : float, default 0.95
    convention : {"bob", "pyeer"}
        EER rule, see :func:`faceexp.verify.metrics.equal_error_rate`.

    Returns
    -------
    pandas.DataFrame
        Rows ``line = "fold"`` (one per fold: its ``a``, the EER of its test
        pairs, NaN when they lack a class), then ``"k-fold"`` and
        ``"oracle"``. Columns: ``line``, ``fold``, ``a`` (NaN for "k-fold":
        see the fold rows), ``eer``, ``ci_low``, ``ci_high``, ``eer_first``
        (``scores_a`` alone on the same pairs), ``eer_second`` (``scores_b``
        alone), ``change`` (``(eer - min(eer_first, eer_second)) /
        min(...)``, the relative change against the better single system, as
        :func:`faceexp.verify.fusion.best_fusion`), ``change_low``, ``change_high``
        (its interval from the same resamples), ``genuine``, ``impostor``,
        ``identities``; intervals only on the "k-fold" and "oracle" rows.
        ``attrs``: ``k``, ``level``, ``n_boot``, ``folds`` (identity -> fold),
        ``rule``.

    Raises
    ------
    ValueError
        On bad arguments, or when a fold's training pairs lack genuine or
        impostor pairs (use fewer folds).
    """
    pairs = _pair_columns(pairs)
    n = len(pairs)
    first = _score_dict(scores_a, n)[None]
    second = _score_dict(scores_b, n)[None]
    genuine = check_labels(pairs["label"].to_numpy(), n)
    if genuine.all() or not genuine.any():
        raise ValueError("pairs must hold both genuine (label 1) and impostor (label 0) pairs")
    weights = np.atleast_1d(np.asarray(weights, dtype=np.float64))
    if weights.ndim != 1 or not (np.isclose(weights, 0).any() and np.isclose(weights, 1).any()):
        raise ValueError("weights must be a 1-D sequence of values of a in [0, 1] including 0 and 1 "
                         f"(the single systems), got {weights!r}")
    n_boot, level, convention = _n_boot(n_boot), _level(level), check_convention(convention)
    rng = _rng(seed)
    identity_i = pairs["identity_i"].to_numpy()
    identity_j = pairs["identity_j"].to_numpy()
    index_i, index_j, names = _identities(identity_i, identity_j, n)
    fold_of = _fold_assignment(names, k, rng, folds)
    fold_i, fold_j = fold_of[index_i], fold_of[index_j]

    rows = []
    fused = np.full(n, np.nan)
    tested = np.zeros(n, dtype=bool)
    for f in range(int(fold_of.max()) + 1):
        train = (fold_i != f) & (fold_j != f)
        test = (fold_i == f) & (fold_j == f)
        if not (genuine[train].any() and (~genuine[train]).any()):
            raise ValueError(f"fold {f}: the pairs outside it lack genuine or impostor pairs, so no "
                             "weight can be chosen; use fewer folds (k) or more identities")
        sweep = fusion_sweep(first[train], second[train], genuine[train].astype(np.int64),
                             weights=weights, convention=convention)
        a = best_fusion(sweep)["a"]
        fused[test] = fuse_scores(first[test], second[test], a)
        tested |= test
        g = genuine[test]
        rows.append({"line": "fold", "fold": f, "a": a,
                     "eer": group_eer(fused[test][~g], fused[test][g], convention),
                     "genuine": int(g.sum()), "impostor": int((~g).sum()),
                     "identities": int((fold_of == f).sum())})
    g = genuine[tested]
    if not (g.any() and (~g).any()):
        raise ValueError("the folds' test pairs hold no impostor (or no genuine) pair: every impostor "
                         "pair joins two folds; use fewer folds (k)")
    kfold = _fusion_rows(first[tested], second[tested], fused[tested], g, identity_i[tested],
                         identity_j[tested], n_boot, level, rng, convention)
    rows.append({"line": "k-fold", "fold": np.nan, "a": np.nan, **kfold})
    oracle_a = best_fusion(fusion_sweep(first, second, genuine.astype(np.int64), weights=weights,
                                        convention=convention))["a"]
    oracle = _fusion_rows(first, second, fuse_scores(first, second, oracle_a), genuine, identity_i,
                          identity_j, n_boot, level, rng, convention)
    rows.append({"line": "oracle", "fold": np.nan, "a": oracle_a, **oracle})
    columns = ["line", "fold", "a", "eer", "ci_low", "ci_high", "eer_first", "eer_second", "change",
               "change_low", "change_high", "genuine", "impostor", "identities"]
    frame = pd.DataFrame(rows).reindex(columns=columns)
    frame.attrs = {
        "k": int(fold_of.max()) + 1, "level": level, "n_boot": n_boot, "convention": convention,
        "folds": {name: int(fold) for name, fold in zip(names.tolist(), fold_of)},
        "rule": "a chosen on pairs with neither identity in the fold; EER on pairs with both in it",
    }
    return frame


# --------------------------------------------------------------------------
# per-image measures: means, paired differences, the seed-to-seed PSNR floor


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
    counts = _draw_counts(values.shape[0], n_boot, rng)
    means = counts @ values / values.shape[0]
    low, high = _percentiles(means, level)
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
    n_boot, level, rng = _n_boot(n_boot), _level(level), _rng(seed)
    present = ~np.isnan(array)
    filled = np.where(present, array, 0.0)
    counts = _draw_counts(array.shape[0], n_boot, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        resampled = (counts @ filled) / (counts @ present)
        mean = filled.sum(axis=0) / present.sum(axis=0)
    low, high = _percentiles(resampled, level)
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
    n_boot, level = _n_boot(n_boot), _level(level)
    difference = a_values - b_values
    mean, low, high = _bootstrap_means(difference, n_boot, level, _rng(seed))
    frame = pd.DataFrame({"mean_a": a_values.mean(axis=0), "mean_b": b_values.mean(axis=0),
                          "difference": mean, "ci_low": low, "ci_high": high,
                          "fraction_greater": (difference > 0).mean(axis=0),
                          "n": a_values.shape[0]}, index=labels)
    frame.attrs = {"level": level, "n_boot": n_boot, "resampling": "images, paired"}
    return frame


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
        Bootstrap over images (:func:`mean_interval`).
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
    frame.attrs = {"level": _level(level), "n_boot": _n_boot(n_boot), "unit": "dB"}
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
    n_boot, level, rng = _n_boot(n_boot), _level(level), _rng(seed)
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
        counts_b = _draw_counts(between_kept.size, n_boot, rng)
        counts_f = _draw_counts(floor_kept.size, n_boot, rng)
        resampled = counts_f @ floor_kept / floor_kept.size - counts_b @ between_kept / between_kept.size
        low, high = (float(v[0]) for v in _percentiles(resampled[:, None], level))
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


