"""Score fusion of two recognisers (paper IV-C, Fig. 6, Table I).

``a * s_1 + (1 - a) * s_2``, its EER per group of comparisons for every weight
``a`` (:func:`fusion_sweep`), and the weight with the lowest EER on one group
(:func:`best_fusion`). Scores are similarities, accepted when ``score >=
threshold``; EERs are fractions, as everywhere in faceexp.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from faceexp.verify.metrics import (OVERALL, check_convention, group_eer, check_labels, check_scores,
                             group_masks)

__all__ = ["DEFAULT_WEIGHTS", "fuse_scores", "fusion_sweep", "best_fusion"]

#: The fusion weights of the paper's Figure 6: 0, 0.01, ..., 1.
DEFAULT_WEIGHTS = np.round(np.arange(0, 1.0001, 0.01), 2)


def _weight(a) -> float:
    try:
        a = float(a)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a must be a number in [0, 1], got {a!r}") from exc
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"a must be a number in [0, 1], got {a!r}")
    return a


def fuse_scores(s1, s2, a) -> np.ndarray:
    """Weighted-average score fusion ``a * s1 + (1 - a) * s2``.

    The paper (Sec. IV-C) prints ``a * s_MB2 + (a - 1) * s_R50``, a slip; the
    intended formula is ``a * s_MB2 + (1 - a) * s_R50``: ``a = 1`` is the first
    system alone, ``a = 0`` the second.

    Parameters
    ----------
    s1, s2 : array_like, shape (P,)
        Similarity scores of the same P comparisons by two systems.
    a : float
        Weight of ``s1``, in [0, 1].

    Returns
    -------
    numpy.ndarray, shape (P,)
        The fused similarity scores.
    """
    s1 = np.asarray(s1, dtype=np.float64)
    s2 = np.asarray(s2, dtype=np.float64)
    if s1.shape != s2.shape:
        raise ValueError(f"s1 and s2 must have the same shape, got {s1.shape} and {s2.shape}")
    a = _weight(a)
    return a * s1 + (1.0 - a) * s2


def fusion_sweep(
    scores1,
    scores2,
    labels,
    *,
    groups=None,
    weights=DEFAULT_WEIGHTS,
    convention: str = "bob",
) -> pd.DataFrame:
    """EER of the fused scores ``a * scores1 + (1 - a) * scores2`` for each weight ``a``.

    Scores are similarities (accepted when ``score >= threshold``); see
    :func:`fuse_scores` for the formula and :func:`faceexp.verify.metrics.equal_error_rate` for the EER.

    Parameters
    ----------
    scores1, scores2 : array_like, shape (P,)
        Similarity scores of the same P comparisons by two systems (e.g.
        MobileNetV2 and ResNet50).
    labels : array_like, shape (P,)
        1 for genuine, 0 for impostor comparisons.
    groups : array_like, shape (P,), optional
        A group label per comparison (e.g. the ``pose_pair`` column of
        :func:`faceexp.verify.protocol.verification_pairs_by_pose`). Each group gets
        its own EER. A group ``"overall"`` is added for all comparisons
        together, unless a group is already labelled ``"overall"`` (as in
        ``verification_pairs_by_pose``, whose overall protocol is its own set
        of rows): then that group is used as it is. With ``groups=None`` the
        only group is ``"overall"``.
    weights : array_like, shape (W,)
        Values of ``a`` in [0, 1]; default 0, 0.01, ..., 1 (101 values).
    convention : {"bob", "pyeer"}
        EER rule, see :func:`faceexp.verify.metrics.equal_error_rate`.

    Returns
    -------
    pandas.DataFrame
        W x G rows, columns ``a``, ``group``, ``eer`` (a fraction; NaN for a
        group without genuine or without impostor comparisons). Groups appear
        in order of first appearance, ``"overall"`` last.

    Raises
    ------
    ValueError
        On mismatched shapes, non-finite scores, labels other than 0/1,
        weights outside [0, 1], or when the overall group lacks a class.
    """
    scores1 = check_scores(scores1, "scores1")
    scores2 = check_scores(scores2, "scores2")
    if scores1.shape != scores2.shape:
        raise ValueError(
            f"scores1 and scores2 must have the same shape, got {scores1.shape} and {scores2.shape}"
        )
    genuine = check_labels(labels, scores1.size)
    weights = np.atleast_1d(np.asarray(weights, dtype=np.float64))
    if weights.ndim != 1 or weights.size == 0:
        raise ValueError("weights must be a non-empty 1-D sequence of numbers in [0, 1]")
    if not np.all((weights >= 0) & (weights <= 1)):
        raise ValueError(f"weights must lie in [0, 1], got min {weights.min()} and max {weights.max()}")
    check_convention(convention)
    members = group_masks(groups, scores1.size)
    overall = members[OVERALL]
    if not (genuine[overall].any() and (~genuine[overall]).any()):
        raise ValueError(
            "labels of the overall group must hold both genuine (1) and impostor (0) comparisons"
        )
    group_names = list(members)

    # Split each group's scores by class once; fuse per weight.
    parts = []
    for name in group_names:
        mask = members[name]
        neg_mask, pos_mask = mask & ~genuine, mask & genuine
        parts.append((name, scores1[neg_mask], scores2[neg_mask], scores1[pos_mask], scores2[pos_mask]))
    rows = []
    for a in weights:
        for name, neg1, neg2, pos1, pos2 in parts:
            rows.append((float(a), name, group_eer(a * neg1 + (1.0 - a) * neg2,
                                                    a * pos1 + (1.0 - a) * pos2, convention)))
    frame = pd.DataFrame(rows, columns=["a", "group", "eer"])
    frame.attrs["convention"] = convention
    return frame


def best_fusion(sweep: pd.DataFrame, *, by: str = OVERALL) -> dict:
    """The fusion weight with the lowest EER on one group, and its EER everywhere.

    As the paper's "combined (best)" row of Table I: ``a`` is chosen on the
    ``by`` group (the overall EER, giving a = 0.58 in the paper) and applied to
    every group. The relative change of each group is measured against the
    **better single system of that group**, ``min(EER(a=1), EER(a=0))``: only
    this baseline reproduces all of the paper's percentages from its
    two-decimal EERs (e.g. F-F: 3.53 vs min(3.69, 3.93) -> -4.1% within
    rounding; 3/4-P: 3.37 vs min(3.75, 3.69) = 3.69 -> -8.6%, whereas the
    MobileNetV2 EER as baseline would give -10.1%).

    Parameters
    ----------
    sweep : pandas.DataFrame
        Output of :func:`fusion_sweep` (columns ``a``, ``group``, ``eer``); it
        must contain ``a = 0`` and ``a = 1`` (the two single systems).
    by : str
        The group on which ``a`` is chosen. On a tie the smallest ``a`` wins.

    Returns
    -------
    dict
        ``a`` (float), ``by`` (str), and per group (dicts keyed by group, in
        the sweep's order): ``eer`` (fused EER at ``a``), ``eer_1`` (``a = 1``,
        the first system alone), ``eer_2`` (``a = 0``, the second system
        alone), ``relative_change`` (``(eer - min(eer_1, eer_2)) /
        min(eer_1, eer_2)``, a fraction; NaN where an EER is NaN or the
        baseline is 0).
    """
    if not isinstance(sweep, pd.DataFrame) or not {"a", "group", "eer"} <= set(sweep.columns):
        raise ValueError("sweep must be a DataFrame from fusion_sweep with columns a, group, eer")
    groups = list(pd.unique(sweep["group"]))
    if by not in groups:
        raise ValueError(f"by must be one of the sweep's groups {groups}, got {by!r}")
    table = sweep.pivot(index="a", columns="group", values="eer")[groups]
    for single in (0.0, 1.0):
        if not np.isclose(table.index.values, single).any():
            raise ValueError(
                f"sweep must include a = {single:g} (a single system) to measure the relative change"
            )
    chosen = table[by]
    if chosen.isna().all():
        raise ValueError(f"group {by!r} has no EER (it lacks genuine or impostor comparisons)")
    a = float(chosen.index[int(np.nanargmin(chosen.values))])
    row = table.loc[a]
    eer_1 = table.iloc[int(np.flatnonzero(np.isclose(table.index.values, 1.0))[0])]
    eer_2 = table.iloc[int(np.flatnonzero(np.isclose(table.index.values, 0.0))[0])]
    baseline = np.minimum(eer_1, eer_2)  # NaN propagates
    with np.errstate(divide="ignore", invalid="ignore"):
        change = (row - baseline) / baseline.where(baseline > 0)
    return {
        "a": a,
        "by": by,
        "eer": {g: float(row[g]) for g in groups},
        "eer_1": {g: float(eer_1[g]) for g in groups},
        "eer_2": {g: float(eer_2[g]) for g in groups},
        "relative_change": {g: float(change[g]) for g in groups},
    }
