"""EER intervals from a bootstrap over identities, and the fusion weight chosen on held-out identities.

**EERs resample identities, not pairs** (:func:`bootstrap_eer`,
:func:`eer_interval`, :func:`kfold_fusion`): all comparisons of one person
share that person's images, so they are not independent draws; the interval
reflects the variation between people. Intervals are percentile bootstraps
(:func:`faceexp.core.bootstrap.percentile_interval`) and every function takes
a ``seed`` (an int, a ``numpy.random.Generator`` or None, see
:func:`faceexp.core.bootstrap.as_rng`).

Scores are similarities (accepted when ``score >= threshold``) and EERs are
fractions, as in :mod:`faceexp.verify.metrics`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from faceexp.core import checks
from faceexp.core.bootstrap import as_rng, check_level, check_n_boot, draw_counts, percentile_interval
from faceexp.verify.fusion import best_fusion, fuse_scores, fusion_sweep
from faceexp.verify.metrics import check_convention, group_eer, check_labels, check_scores, group_masks

__all__ = [
    "KFOLD_WEIGHTS",
    "bootstrap_eer",
    "eer_interval",
    "kfold_fusion",
]

#: Fusion weights :func:`kfold_fusion` tries by default: 0, 0.05, ..., 1.
KFOLD_WEIGHTS = np.linspace(0.0, 1.0, 21)


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
    counts = draw_counts(n_identities, n_boot, rng)
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
      rule of :func:`faceexp.verify.verification.verify_frame`'s interval).

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
    n_boot, level, convention = check_n_boot(n_boot), check_level(level), check_convention(convention)
    eers = _bootstrap_eers([scores], genuine, index_i, index_j, len(names), n_boot, as_rng(seed),
                           convention)[:, 0]
    low, high = percentile_interval(eers[:, None], level)
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
    n_boot, level, convention = check_n_boot(n_boot), check_level(level), check_convention(convention)
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
                                       n_boot, as_rng(seed), convention)
                low, high = percentile_interval(eers, level)
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
    order = as_rng(seed).permutation(len(identities))
    codes = np.empty(len(identities), dtype=np.int64)
    codes[order] = np.arange(len(identities)) % k
    return codes


def _fusion_rows(a1, a2, fused, genuine, identity_i, identity_j, n_boot, level, seed, convention):
    """EER of the fused scores and of each system alone, with joint identity-bootstrap intervals."""
    index_i, index_j, names = _identities(identity_i, identity_j, len(fused))
    sets = [fused, a1, a2]
    point = np.array([group_eer(s[~genuine], s[genuine], convention) for s in sets])
    eers = _bootstrap_eers(sets, genuine, index_i, index_j, len(names), n_boot, as_rng(seed),
                           convention)
    low, high = percentile_interval(eers[:, :1], level)

    def change(values):
        baseline = np.minimum(values[..., 1], values[..., 2])
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(baseline > 0, (values[..., 0] - baseline) / baseline, np.nan)

    change_low, change_high = percentile_interval(change(eers)[:, None], level)
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
    n_boot, level, convention = check_n_boot(n_boot), check_level(level), check_convention(convention)
    rng = as_rng(seed)
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
