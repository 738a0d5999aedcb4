"""A harder verification protocol built from ORL: clean gallery, degraded probes (ours,
not the paper's).

Each identity's images alternate between **gallery** (1st, 3rd, ... image, clean) and
**probe** (2nd, 4th, ..., degraded by :mod:`faceexp.data.degradation`: low resolution); every gallery
image is compared with every probe (genuine: same identity). The strength of the
degradation is chosen once, from data, on pairs that are not scored
(:func:`choose_strength`: the training identities' pairs), and the recognisers are scored
on the test identities' pairs. Fusion of two systems on it: :func:`fusion_gain` (weight
chosen by k-fold over identities, fused minus best single EER with a paired interval).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from faceexp.verify.intervals import bootstrap_eer, kfold_fusion
from faceexp.verify.metrics import check_labels, group_eer

__all__ = ["PROTOCOL_LABEL", "EER_RANGE", "EER_TARGET", "MIN_GENUINE_PER_POSE",
           "gallery_probe_roles", "gallery_probe_pairs", "pair_cosines", "choose_strength",
           "fusion_gain"]

#: How the book labels this protocol.
PROTOCOL_LABEL = "ORL with degraded probes (ours, not the paper's)"
#: The EER range (fractions) each main recogniser should fall in.
EER_RANGE = (0.02, 0.15)
#: The EER the strength is aimed at: the geometric middle of :data:`EER_RANGE`, about 5.5%.
EER_TARGET = float(np.sqrt(EER_RANGE[0] * EER_RANGE[1]))
#: A pose pair is reported on its own only with at least this many genuine pairs.
MIN_GENUINE_PER_POSE = 20


def gallery_probe_roles(frame: pd.DataFrame) -> np.ndarray:
    """``(N,)`` array of "gallery" / "probe": within each identity (in the frame's row
    order) the 1st, 3rd, ... image is a gallery image, the 2nd, 4th, ... a probe."""
    if not isinstance(frame, pd.DataFrame) or "identity" not in frame.columns:
        raise ValueError("frame must be a pandas DataFrame with an 'identity' column")
    rank = frame.groupby("identity", sort=False).cumcount().to_numpy()
    return np.where(rank % 2 == 0, "gallery", "probe")


def _pose_code(pose) -> str:
    from faceexp.data.pose import POSE_CODES

    if not isinstance(pose, str):
        return "F"          # no label: ORL's MTCNN labels leave nothing unlabelled; count as frontal
    return POSE_CODES.get(pose, pose)


def gallery_probe_pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """Every (gallery, probe) comparison of ``frame`` (see :func:`gallery_probe_roles`).

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``i`` (gallery row position), ``j`` (probe row position),
        ``label`` (1 genuine, 0 impostor), ``identity_i``, ``identity_j`` and, where
        ``frame`` has a ``pose`` column, ``pose_pair`` ("F-F", "F-3/4", ...: the two
        poses in Table I's order, whichever side is the probe).
    """
    roles = gallery_probe_roles(frame)
    gallery, probe = np.flatnonzero(roles == "gallery"), np.flatnonzero(roles == "probe")
    if not len(gallery) or not len(probe):
        raise ValueError("frame must hold at least one identity with two images (a gallery "
                         "image and a probe)")
    i, j = (a.ravel() for a in np.meshgrid(gallery, probe, indexing="ij"))
    ids = frame["identity"].to_numpy()
    pairs = pd.DataFrame({"i": i, "j": j, "label": (ids[i] == ids[j]).astype(np.int64),
                          "identity_i": ids[i], "identity_j": ids[j]})
    if "pose" in frame.columns:
        order = {"F": 0, "3/4": 1, "P": 2}
        codes = np.array([_pose_code(p) for p in frame["pose"]], dtype=object)
        a, b = codes[i], codes[j]
        swap = np.array([order.get(x, 3) > order.get(y, 3) for x, y in zip(a, b)])
        first, second = np.where(swap, b, a), np.where(swap, a, b)
        pairs["pose_pair"] = [f"{x}-{y}" for x, y in zip(first, second)]
    return pairs


def pair_cosines(gallery, probes, pairs: pd.DataFrame) -> np.ndarray:
    """Cosine of gallery row ``i`` (clean descriptors ``(N, D)``) and probe row ``j``
    (degraded descriptors ``(N, D)``) of each pair: ``(P,)``."""
    from faceexp.core.similarity import pair_cosine

    gallery, probes = np.asarray(gallery, np.float64), np.asarray(probes, np.float64)
    if gallery.shape != probes.shape or gallery.ndim != 2:
        raise ValueError(f"gallery and probes must be (N, D) descriptors of the same frame, got "
                         f"{gallery.shape} and {probes.shape}")
    both = np.concatenate([gallery, probes])
    return np.asarray(pair_cosine(both, pairs["i"].to_numpy(), pairs["j"].to_numpy() + len(gallery)),
                      dtype=np.float64)


def choose_strength(table: pd.DataFrame, *, target: float = EER_TARGET) -> float:
    """The strength whose EERs lie nearest ``target``: the one minimising, over strengths,
    the largest ``|log(EER_system / target)|`` over systems (an EER of 0 counts as
    infinitely far). Ties go to the smallest strength.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``strength``, ``system``, ``eer`` (fractions), e.g. each main
        recogniser's EER on the training identities' pairs at each candidate strength.
    target : float, default :data:`EER_TARGET`

    Returns
    -------
    float
    """
    if not isinstance(table, pd.DataFrame) or not {"strength", "system", "eer"} <= set(table):
        raise ValueError("table must be a DataFrame with columns strength, system, eer")
    if not 0 < target < 1:
        raise ValueError(f"target must be an EER fraction in (0, 1), got {target}")
    eer = table["eer"].to_numpy(dtype=float)
    with np.errstate(divide="ignore"):
        distance = np.abs(np.log(np.where(eer > 0, eer, 0.0) / target))
    worst = pd.Series(distance, index=table.index).groupby(table["strength"]).max().sort_index()
    if worst.isna().all():
        raise ValueError("table has no EER at any strength")
    return float(worst.idxmin())


def fusion_gain(scores_a, scores_b, pairs: pd.DataFrame, *, k: int = 5, seed=0,
                n_boot: int = 1000, level: float = 0.95, names=("a", "b")) -> dict:
    """Fused minus best single EER, the fusion weight chosen by k-fold over identities.

    The weights and the scored pairs are :func:`faceexp.verify.intervals.kfold_fusion`'s:
    for each fold, ``a`` is chosen on the pairs with neither identity in the fold and
    applied to the pairs with both in it. On those pooled test pairs, the fused EER is
    compared with the better of the two systems alone (the one of lower EER on the same
    pairs: if anything this flatters the baseline). The interval is paired: both EERs
    are recomputed on the same identity resamples (:func:`bootstrap_eer` with the same
    seed draws the same identities), and the percentile interval is taken of their
    difference.

    Parameters
    ----------
    scores_a, scores_b : array_like, shape (P,)
    pairs : pandas.DataFrame
        ``label``, ``identity_i``, ``identity_j`` (e.g. :func:`gallery_probe_pairs`).
    k, seed, n_boot, level
        Folds, seed (int) of the folds and the bootstrap, resamples, coverage.
    names : (str, str)
        The two systems' names, for ``best``.

    Returns
    -------
    dict
        ``weights`` (per fold), ``fused``, ``best`` (name), ``best_eer``, ``other_eer``,
        ``difference`` (fused - best, a fraction; < 0: fusion helps), ``ci_low``,
        ``ci_high``, ``relative`` (difference / best_eer), ``genuine``, ``impostor``,
        ``identities``, ``k``, and ``table``: the
        :func:`~faceexp.verify.intervals.kfold_fusion` table (its "k-fold" line has the
        relative change against the better system, ``change``, with its interval).
    """
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int (the paired bootstrap redraws it), got {seed!r}")
    folds = kfold_fusion(scores_a, scores_b, pairs, k=k, seed=seed, n_boot=max(int(n_boot), 1))
    a_of = folds[folds["line"] == "fold"].set_index("fold")["a"]
    fold_of = folds.attrs["folds"]
    ids_i, ids_j = pairs["identity_i"].to_numpy(), pairs["identity_j"].to_numpy()
    fi = np.array([fold_of[u] for u in ids_i])
    fj = np.array([fold_of[u] for u in ids_j])
    tested = fi == fj
    s1 = np.asarray(scores_a, np.float64)[tested]
    s2 = np.asarray(scores_b, np.float64)[tested]
    genuine = check_labels(pairs["label"].to_numpy(), len(pairs))[tested]
    weights = np.array([a_of[f] for f in fi[tested]])
    fused = weights * s1 + (1.0 - weights) * s2
    eers = [group_eer(s[~genuine], s[genuine], "bob") for s in (fused, s1, s2)]
    best = 1 if eers[1] <= eers[2] else 2
    sets = {0: fused, 1: s1, 2: s2}
    labels = genuine.astype(np.int64)
    _, _, boot_fused = bootstrap_eer(fused, labels, ids_i[tested], ids_j[tested], n_boot=n_boot,
                                     level=level, seed=int(seed))
    _, _, boot_best = bootstrap_eer(sets[best], labels, ids_i[tested], ids_j[tested],
                                    n_boot=n_boot, level=level, seed=int(seed))
    diff = boot_fused - boot_best
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(diff, [tail, 100 - tail])
    difference = eers[0] - eers[best]
    return {"weights": {int(f): float(a) for f, a in a_of.items()}, "fused": eers[0],
            "best": names[best - 1], "best_eer": eers[best], "other_eer": eers[3 - best],
            "difference": float(difference), "ci_low": float(low), "ci_high": float(high),
            "relative": float(difference / eers[best]) if eers[best] > 0 else float("nan"),
            "genuine": int(genuine.sum()), "impostor": int((~genuine).sum()),
            "identities": int(len(set(ids_i[tested]) | set(ids_j[tested]))), "k": int(k),
            "table": folds}

