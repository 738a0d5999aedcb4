"""Verification metrics: equal error rate, DET/ROC curves and EER per group of comparisons.

Conventions used by every function of this module:

- Scores are **similarities**: higher means "more likely the same person"
  (cosine similarity in this project).
- A comparison is **accepted** when ``score >= threshold``.
- The argument order is bob.measure's ``(negatives, positives)``, i.e.
  ``(impostor scores, genuine scores)``.
- ``FMR(t)`` (false match rate) is the fraction of impostor scores ``>= t``;
  ``FNMR(t)`` (false non-match rate) is the fraction of genuine scores ``< t``.
  ``TMR(t) = 1 - FNMR(t)``.
- Rates are fractions in [0, 1]; tables elsewhere print them in percent.

The operating points of a score set are the thresholds at each distinct score
value (accept that value and everything above) plus "accept nothing"
(FMR 0, FNMR 1). bob.measure 6.1.1 and pyeer 0.5.6 both read the EER off these
points (pyeer without "accept nothing") but pick the point by different rules,
so they disagree by up to half a step (``1/(2 n)``) whenever the genuine and
impostor counts differ, even on tie-free scores, and by more with tied scores;
:func:`equal_error_rate` implements both rules exactly (``convention="bob"``,
the default, or ``"pyeer"``). It finds the two points around the FMR/FNMR
crossing by a selection (linear time on average) instead of a full sort, so
that :func:`faceexp.verify.fusion.fusion_sweep` (101 weights x 7 pose groups) stays fast.
Why our own EER rather than calling bob.measure or pyeer: the two libraries
disagree with each other, a fusion sweep needs thousands of EERs, and neither
is a runtime dependency; the tests check both rules against both libraries.

Only numpy and pandas are used (no torch).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

__all__ = [
    "EER",
    "CONVENTIONS",
    "equal_error_rate",
    "det_curve",
    "roc_curve",
    "eer_by_group",
    "group_masks",
    "OVERALL",
]

#: EER selection rules that :func:`equal_error_rate` implements.
CONVENTIONS = ("bob", "pyeer")

#: Group label of "all scores together" in :func:`eer_by_group`.
OVERALL = "overall"


@dataclass(frozen=True)
class EER:
    """An equal error rate and the operating point it was read at.

    Attributes
    ----------
    eer : float
        ``(fmr + fnmr) / 2`` at ``threshold``, a fraction in [0, 1].
    threshold : float
        Scores ``>= threshold`` are accepted; ``fmr`` and ``fnmr`` are the
        rates of exactly this rule.
    fmr : float
        Fraction of impostor scores ``>= threshold``.
    fnmr : float
        Fraction of genuine scores ``< threshold``.
    """

    eer: float
    threshold: float
    fmr: float
    fnmr: float


# --------------------------------------------------------------------------
# validation


def check_scores(values, name: str) -> np.ndarray:
    """A 1-D, finite, non-empty float64 copy of ``values``, or ValueError."""
    if hasattr(values, "detach"):  # a torch tensor, without importing torch
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers, got {type(values).__name__}") from exc
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D scores of shape (n,), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: at least one score is needed on each side")
    bad = ~np.isfinite(array)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} holds {int(bad.sum())} NaN or infinite score(s) (first at index {first}); "
            "scores must be finite numbers"
        )
    return array


def check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    return convention


# --------------------------------------------------------------------------
# operating points


def _operating_points(negatives: np.ndarray, positives: np.ndarray):
    """Distinct scores and error counts of every operating point.

    Returns ``(values, fa, fr)``: ``values`` (K,) the sorted distinct scores;
    ``fa`` (K + 1,) the number of impostor scores accepted and ``fr`` (K + 1,)
    the number of genuine scores rejected when the threshold is ``values[k]``
    (k < K) or above every score (k = K).
    """
    neg = np.sort(negatives)
    pos = np.sort(positives)
    merged = np.concatenate([neg, pos])
    # A stable sort of two sorted runs is a linear merge (timsort).
    order = np.argsort(merged, kind="stable")
    ordered = merged[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    neg_below = np.concatenate([[0], np.cumsum(order < neg.size)])[starts]
    values = ordered[starts]
    fa = np.empty(values.size + 1, dtype=np.int64)
    fr = np.empty(values.size + 1, dtype=np.int64)
    fa[:-1] = neg.size - neg_below  # impostor scores >= values[k]
    fr[:-1] = starts - neg_below  # genuine scores < values[k]
    fa[-1] = 0
    fr[-1] = pos.size
    return values, fa, fr


@dataclass(frozen=True)
class _Crossing:
    """The two operating points that bracket the crossing of FMR and FNMR.

    ``low`` is the highest distinct score whose threshold still has
    ``FMR > FNMR`` (point t1); ``high`` the lowest distinct score with
    ``FMR <= FNMR`` (point t2), or ``inf`` for "accept nothing". ``fa_*`` /
    ``fr_*`` are the accepted-impostor / rejected-genuine counts there.
    """

    low: float
    fa_low: int
    fr_low: int
    high: float
    fa_high: int
    fr_high: int
    low_is_min: bool


def _pivots(cand_neg, cand_pos, fa_above, fr_below, n_neg, n_pos):
    """Scores to try next when bracketing the crossing (any candidate is valid).

    Small candidate sets: their median. Large ones: two scores bracketing the
    crossing estimated on an evenly strided subsample of about 1000 scores per
    class, with a margin of a few sampling standard errors, so that one round
    usually leaves only a few percent of the scores.
    """
    size = cand_neg.size + cand_pos.size
    if size <= 4096:
        both = np.concatenate([cand_neg, cand_pos])
        return [np.partition(both, size // 2)[size // 2]]
    sub_neg = np.sort(cand_neg[:: max(1, cand_neg.size // 1000)])
    sub_pos = np.sort(cand_pos[:: max(1, cand_pos.size // 1000)])
    values = np.unique(np.concatenate([sub_neg, sub_pos]))
    # estimated counts at each subsample value, scaled to the candidates
    fa = fa_above + (sub_neg.size - np.searchsorted(sub_neg, values)) * (cand_neg.size / max(sub_neg.size, 1))
    fr = fr_below + np.searchsorted(sub_pos, values) * (cand_pos.size / max(sub_pos.size, 1))
    crossing = int(np.searchsorted(-(fa * n_pos - fr * n_neg), 0.0))  # first estimated FMR <= FNMR
    margin = max(2, values.size // 32)
    low = values[max(crossing - margin, 0)]
    high = values[min(crossing + margin, values.size - 1)]
    return [low, high]


def _crossing(neg: np.ndarray, pos: np.ndarray) -> _Crossing:
    """Find the two operating points around the FMR/FNMR crossing without a full sort.

    ``FMR(t) - FNMR(t)`` decreases strictly from one distinct score to the
    next, so the crossing can be bracketed by trying scores as thresholds
    (:func:`_pivots`) and dropping the candidates on the wrong side, like a
    quickselect: linear time on average. Counts are exact integers.
    """
    n_neg, n_pos = neg.size, pos.size
    # Start: low = the lowest score (accept everything: FMR 1 > FNMR 0),
    # high = "accept nothing" (FMR 0 <= FNMR 1). Invariants: the candidates
    # are the scores strictly between low and high; fa_high = #neg >= high;
    # pos_upto_low = #pos <= low.
    low = min(neg.min(), pos.min())
    fa_low, fr_low, low_is_min = n_neg, 0, True
    high, fa_high, fr_high = np.inf, 0, n_pos
    pos_upto_low = int(np.count_nonzero(pos == low))
    cand_neg = neg[neg > low]
    cand_pos = pos[pos > low]
    while cand_neg.size or cand_pos.size:
        for pivot in _pivots(cand_neg, cand_pos, fa_high, pos_upto_low, n_neg, n_pos):
            if not low < pivot < high:
                continue
            fa = fa_high + int(np.count_nonzero(cand_neg >= pivot))  # impostors accepted
            below = cand_pos < pivot
            fr = pos_upto_low + int(np.count_nonzero(below))  # genuine rejected
            if fa * n_pos > fr * n_neg:  # FMR > FNMR, compared exactly in integers
                low, fa_low, fr_low, low_is_min = pivot, fa, fr, False
                keep = ~below & (cand_pos != pivot)
                pos_upto_low += int(cand_pos.size - np.count_nonzero(keep))
                cand_pos = cand_pos[keep]
                cand_neg = cand_neg[cand_neg > pivot]
            else:
                high, fa_high, fr_high = pivot, fa, fr
                cand_pos = cand_pos[below]
                cand_neg = cand_neg[cand_neg < pivot]
    return _Crossing(float(low), int(fa_low), int(fr_low), float(high), int(fa_high),
                     int(fr_high), low_is_min)


def _accumulate_rate(n: int, start: float) -> np.ndarray:
    step = np.full(n + 1, 1.0 / n)
    step[0] = start
    return (np.subtract if start == 1.0 else np.add).accumulate(step)


@lru_cache(maxsize=32)
def _accumulate_rate_cached(n: int, start: float) -> np.ndarray:
    steps = _accumulate_rate(n, start)
    steps.flags.writeable = False
    return steps


def _bob_rate_steps(n: int, start: float) -> np.ndarray:
    """bob.measure's running rate after k steps of ``1/n``: shape (n + 1,).

    bob.measure updates FAR (from 1.0) and FRR (from 0.0) by repeated
    floating-point subtraction/addition of ``1/n``; ``ufunc.accumulate`` is
    sequential, so it reproduces those values bit for bit. Sizes up to 2**20
    are cached (a sweep asks for the same sizes again and again).
    """
    return _accumulate_rate_cached(n, start) if n <= 1 << 20 else _accumulate_rate(n, start)


def _threshold_bob(neg, pos, c: _Crossing) -> float:
    """The threshold ``bob.measure.eer_threshold`` (6.1.1) returns.

    bob.measure walks the operating points from the lowest threshold up and
    keeps the one with the smallest ``|FAR - FRR|``; a later point wins a tie
    (``<=``), except the point where one class is first exhausted, which must
    be strictly better (``<``). ``|FAR - FRR|`` is unimodal with its minimum at
    t1 or t2, so only those two points are compared. Its threshold is the
    midpoint between the highest rejected and the lowest accepted score, the
    lowest score when everything is accepted, and the highest score when the
    last point exhausts both classes at once.
    """
    n_neg, n_pos = neg.size, pos.size
    far = _bob_rate_steps(n_neg, 1.0)
    frr = _bob_rate_steps(n_pos, 0.0)
    pred_low = abs(far[n_neg - c.fa_low] - frr[c.fr_low])
    pred_high = abs(far[n_neg - c.fa_high] - frr[c.fr_high])
    high_exhausts = c.fa_high == 0 or c.fr_high == n_pos
    take_high = pred_high < pred_low if high_exhausts else pred_high <= pred_low
    if take_high:
        return c.low if np.isinf(c.high) else (c.low + c.high) / 2
    if c.low_is_min:
        return c.low
    below = np.concatenate([neg[neg < c.low], pos[pos < c.low]])
    return (below.max() + c.low) / 2


def _threshold_pyeer(neg, pos, c: _Crossing) -> float:
    """The threshold pyeer 0.5.6 (``calculate_roc`` + ``get_eer_values``) reads the EER at.

    pyeer finds the first distinct score t2 with ``FMR <= FNMR`` and the one
    before it, t1 (only t2 when ``FMR == FNMR`` there), and keeps the one with
    the smaller ``FMR + FNMR`` (t1 on a tie); the threshold is that score.
    """
    n_neg, n_pos = neg.size, pos.size
    fmr_low, fnmr_low = c.fa_low / n_neg, c.fr_low / n_pos
    fmr_high, fnmr_high = c.fa_high / n_neg, c.fr_high / n_pos
    if fmr_high - fnmr_high == 0 or fmr_high + fnmr_high < fmr_low + fnmr_low:
        return np.nextafter(c.low, np.inf) if np.isinf(c.high) else c.high
    return c.low


def equal_error_rate(negatives, positives, *, convention: str = "bob") -> EER:
    """Equal error rate of impostor and genuine similarity scores.

    Scores are similarities (higher = same person); a comparison is accepted
    when ``score >= threshold``; FMR is the fraction of impostor scores
    ``>= threshold`` and FNMR the fraction of genuine scores ``< threshold``.
    Among the operating points (a threshold at each distinct score, plus
    "accept nothing"), one point near the crossing of FMR and FNMR is chosen
    and the EER is ``(FMR + FNMR) / 2`` there.

    Parameters
    ----------
    negatives : array_like, shape (n_impostor,)
        Impostor scores (comparisons of different people). Finite.
    positives : array_like, shape (n_genuine,)
        Genuine scores (comparisons of the same person). Finite.
    convention : {"bob", "pyeer"}
        Which rule picks the EER point. Both give the same value when the two
        classes have the same size; otherwise they can differ by up to
        ``1 / (2 n_impostor)`` or ``1 / (2 n_genuine)``, even on tie-free scores.

        - ``"bob"`` (default): bob.measure 6.1.1's ``eer(negatives, positives)``.
          The point minimising ``|FMR - FNMR|`` (on a tie, the higher
          threshold); ``threshold`` is bob's ``eer_threshold``: the midpoint
          between the highest rejected and the lowest accepted score (the
          lowest score when everything is accepted). Ties in the scores
          themselves (integer-valued scores) need no special rule: all equal
          scores are accepted or rejected together.
        - ``"pyeer"``: pyeer 0.5.6's ``get_eer_values(calculate_roc(...))``
          (the FVC2000 interval). Of the two points bracketing the crossing,
          the one with the smaller ``FMR + FNMR`` (on a tie, the lower
          threshold); ``threshold`` is the lowest accepted score itself. On
          curves that never cross (all genuine scores below all impostor
          scores) pyeer returns 1 with a warning; here "accept nothing" is a
          point too, so the EER is read there.

        With tied scores a threshold step can change both rates at once; the
        two rules then may pick different points and the values differ more
        (see the tests for an integer-valued example).

    Returns
    -------
    EER
        ``eer``, ``threshold``, and ``fmr``, ``fnmr`` at that threshold.

    Raises
    ------
    ValueError
        If either side is empty, not 1-D, or holds NaN/infinite scores, or the
        convention is unknown.

    Notes
    -----
    scikit-learn's ``roc_curve`` drops collinear points by default
    (``drop_intermediate=True``); an EER read off those points can miss the
    crossing. This function never uses it.
    """
    negatives = check_scores(negatives, "negatives")
    positives = check_scores(positives, "positives")
    return _eer(negatives, positives, check_convention(convention))


def _eer(neg: np.ndarray, pos: np.ndarray, convention: str) -> EER:
    """:func:`equal_error_rate` on validated, non-empty float64 arrays."""
    select = _threshold_bob if convention == "bob" else _threshold_pyeer
    threshold = float(select(neg, pos, _crossing(neg, pos)))
    # The rates of the rule "accept >= threshold", counted at the threshold
    # itself (as bob.measure's farfrr does).
    fmr = float(np.count_nonzero(neg >= threshold) / neg.size)
    fnmr = float(np.count_nonzero(pos < threshold) / pos.size)
    return EER(eer=(fmr + fnmr) / 2.0, threshold=threshold, fmr=fmr, fnmr=fnmr)


def _curve(negatives, positives):
    negatives = check_scores(negatives, "negatives")
    positives = check_scores(positives, "positives")
    values, fa, fr = _operating_points(negatives, positives)
    thresholds = np.append(values, np.inf)
    return thresholds, fa / negatives.size, fr / positives.size


def det_curve(negatives, positives) -> pd.DataFrame:
    """FMR and FNMR at every distinct score threshold (a DET curve).

    Scores are similarities; a comparison is accepted when
    ``score >= threshold``.

    Parameters
    ----------
    negatives : array_like, shape (n_impostor,)
        Impostor scores.
    positives : array_like, shape (n_genuine,)
        Genuine scores.

    Returns
    -------
    pandas.DataFrame
        K + 1 rows for K distinct scores, thresholds ascending: one row per
        distinct score value (that value and everything above it accepted),
        then ``threshold = inf`` (accept nothing: FMR 0, FNMR 1). Columns
        ``threshold``, ``fmr`` (fraction of impostor scores ``>= threshold``),
        ``fnmr`` (fraction of genuine scores ``< threshold``). The first row
        has FMR 1 and FNMR 0.
    """
    thresholds, fmr, fnmr = _curve(negatives, positives)
    return pd.DataFrame({"threshold": thresholds, "fmr": fmr, "fnmr": fnmr})


def roc_curve(negatives, positives) -> pd.DataFrame:
    """FMR and TMR at every distinct score threshold (a ROC curve).

    The same points as :func:`det_curve` (scores are similarities, accepted
    when ``score >= threshold``; all points kept, unlike scikit-learn's
    default ``drop_intermediate=True``).

    Parameters
    ----------
    negatives : array_like, shape (n_impostor,)
        Impostor scores.
    positives : array_like, shape (n_genuine,)
        Genuine scores.

    Returns
    -------
    pandas.DataFrame
        K + 1 rows, thresholds ascending (the last is ``inf``, accept nothing).
        Columns ``threshold``, ``fmr`` (fraction of impostor scores
        ``>= threshold``), ``tmr`` (fraction of genuine scores
        ``>= threshold``).
    """
    thresholds, fmr, fnmr = _curve(negatives, positives)
    return pd.DataFrame({"threshold": thresholds, "fmr": fmr, "tmr": 1.0 - fnmr})



# --------------------------------------------------------------------------
# per-group EER


def check_labels(labels, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) like the scores, got {labels.shape}")
    try:
        as_float = labels.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("labels must be 1 (genuine) or 0 (impostor)") from exc
    bad = ~np.isin(as_float, (0.0, 1.0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"labels must be 1 (genuine) or 0 (impostor); index {first} holds {labels[first]!r}"
        )
    return as_float == 1.0


def group_masks(groups, n: int) -> dict:
    """Group label -> boolean mask (n,), in order of first appearance, ``"overall"`` last.

    ``"overall"`` is every comparison, unless a group is already labelled
    ``"overall"`` (as in ``verification_pairs_by_pose``, whose overall protocol
    is its own set of rows): then that group is used as it is.
    """
    if groups is None:
        return {OVERALL: np.ones(n, dtype=bool)}
    groups = np.asarray(groups, dtype=object)
    if groups.shape != (n,):
        raise ValueError(f"groups must have shape ({n},) like the scores, got {groups.shape}")
    names = [g for g in pd.unique(groups) if g != OVERALL]
    members = {g: groups == g for g in names}
    labelled = groups == OVERALL
    members[OVERALL] = labelled if labelled.any() else np.ones(n, dtype=bool)
    return members


def group_eer(negatives: np.ndarray, positives: np.ndarray, convention: str) -> float:
    """EER of one group (a fraction), NaN when it lacks genuine or impostor scores."""
    if negatives.size == 0 or positives.size == 0:
        return float("nan")
    return _eer(negatives, positives, convention).eer


def eer_by_group(scores, labels, groups=None, *, convention: str = "bob") -> pd.DataFrame:
    """EER of each group of comparisons (e.g. each pose pair of Table I), as fractions.

    The one place faceexp computes per-group EERs: Table I
    (:func:`faceexp.verify.protocol.eer_table`), the pixel-removal experiment and the
    fusion sweep all call it (or its helpers).

    Parameters
    ----------
    scores : array_like, shape (P,)
        Similarity scores (accepted when ``score >= threshold``).
    labels : array_like, shape (P,)
        1 for genuine, 0 for impostor comparisons.
    groups : array_like, shape (P,), optional
        A group label per comparison; ``"overall"`` is added for all
        comparisons together unless a group already has that label (see
        :func:`group_masks`). None: one group, ``"overall"``.
    convention : {"bob", "pyeer"}
        EER rule, see :func:`equal_error_rate`.

    Returns
    -------
    pandas.DataFrame
        One row per group (first appearance, ``"overall"`` last), columns
        ``group``, ``eer`` (a fraction in [0, 1]; NaN for a group without
        genuine or without impostor comparisons), ``n_genuine``, ``n_impostor``.
    """
    scores = check_scores(scores, "scores")
    genuine = check_labels(labels, scores.size)
    check_convention(convention)
    rows = []
    for name, mask in group_masks(groups, scores.size).items():
        negatives, positives = scores[mask & ~genuine], scores[mask & genuine]
        rows.append({"group": name, "eer": group_eer(negatives, positives, convention),
                     "n_genuine": int(positives.size), "n_impostor": int(negatives.size)})
    return pd.DataFrame(rows, columns=["group", "eer", "n_genuine", "n_impostor"])
