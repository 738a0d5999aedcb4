"""The paper's verification protocol (Sec. III-B), its pose breakdown and Table I.

Images are rows of a DataFrame with a column ``identity`` and, optionally, a
column ``pose`` (``"frontal"``, ``"three-quarter"``, ``"profile"``, or the
short codes ``"F"``, ``"3/4"``, ``"P"``). The order of the rows within an
identity defines its "first", "second", ... image: the frame's own row order
(for example sorted file names, as :mod:`faceexp.data` lists them). Pairs refer
to images by **position** (``frame.iloc[i]``), never by index label.

Protocol (Alonso-Fernandez et al., Sec. III-B):

- genuine: each image of a user against the remaining images of the same user,
  without symmetric duplicates (``i < j``);
- impostor: the first image of a user against the second image of each of the
  next 100 users in sorted identity order, wrapping around at the end.

Pose breakdown (Table I): ``"F-F"``, ``"3/4-3/4"``, ``"P-P"`` apply the
protocol within the images of one pose; the cross-pose pairs ``"F-3/4"``,
``"F-P"``, ``"3/4-P"`` compare every image of pose X of a user with every image
of pose Y of the same user (genuine) and the first X image of a user with the
second Y image of each of the next 100 users (impostor); ``"overall"`` applies
the protocol to all images regardless of pose.

Scores are cosine similarities (higher = same person); EERs come from
:mod:`faceexp.verify.metrics` (accept ``score >= threshold``; argument order
``(negatives, positives)``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from faceexp.core import checks
from faceexp.verify.fusion import DEFAULT_WEIGHTS, best_fusion, fusion_sweep
from faceexp.verify.metrics import CONVENTIONS, OVERALL, eer_by_group

__all__ = [
    "POSES",
    "POSE_CODES",
    "POSE_PAIRS",
    "TABLE_COLUMNS",
    "OVERALL",
    "verification_pairs",
    "verification_pairs_by_pose",
    "cosine_scores",
    "eer_table",
    "table_one",
    "format_eer_table",
]

# Pose labels (in Table I order) and their short codes, as faceexp.data.pose names them.
from faceexp.data.pose import POSE_CODES
from faceexp.data.layouts import POSES
from faceexp.core.similarity import pair_cosine, pair_positions  # noqa: E402
#: The six pose pairs of Table I, in its column order (same-pose, then cross-pose).
POSE_PAIRS = ("F-F", "3/4-3/4", "P-P", "F-3/4", "F-P", "3/4-P")
#: Table I's columns: the six pose pairs and ``"overall"`` (all images, any pose).
TABLE_COLUMNS = POSE_PAIRS + (OVERALL,)

_FROM_CODE = {code: pose for pose, code in POSE_CODES.items()}
COMBINED_ROW = "combined (best)"
CHANGE_ROW = "relative change"


# --------------------------------------------------------------------------
# validation


def _check_frame(frame) -> tuple[np.ndarray, np.ndarray | None]:
    """Identities (N,) and long pose names (N,) or None, or ValueError."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(
            f"frame must be a pandas DataFrame with an 'identity' column, got {type(frame).__name__}"
        )
    if "identity" not in frame.columns:
        raise ValueError(f"frame must have an 'identity' column; it has {list(frame.columns)}")
    identities = frame["identity"].to_numpy()
    missing = pd.isna(frame["identity"]).to_numpy()
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise ValueError(f"frame's 'identity' column is missing at row position {first}")
    poses = None
    if "pose" in frame.columns:
        raw = frame["pose"].to_numpy(dtype=object)
        poses = np.array([_FROM_CODE.get(p, p) if isinstance(p, str) else p for p in raw], dtype=object)
        bad = ~np.isin(poses, POSES)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"frame's 'pose' column holds {raw[first]!r} at row position {first}; accepted values are "
                f"{POSES} or the codes {tuple(POSE_CODES.values())} (drop images without a pose)"
            )
    return identities, poses


def _sorted_users(identities: np.ndarray) -> list:
    try:
        return sorted(pd.unique(identities))
    except TypeError as exc:
        raise ValueError(
            "frame's 'identity' values must be mutually comparable to sort them (all str or all int)"
        ) from exc


def _parse_pose_pair(pose_pair, poses) -> tuple[str, str] | None:
    """``None`` for overall, else the two long pose names."""
    if pose_pair is None or pose_pair == OVERALL:
        return None
    if pose_pair not in POSE_PAIRS:
        raise ValueError(f"pose_pair must be None, {OVERALL!r} or one of {POSE_PAIRS}, got {pose_pair!r}")
    if poses is None:
        raise ValueError(f"pose_pair={pose_pair!r} needs a 'pose' column in frame")
    x, y = pose_pair.split("-")
    return _FROM_CODE[x], _FROM_CODE[y]


# --------------------------------------------------------------------------
# pairs


def _positions_by_user(identities: np.ndarray, selected: np.ndarray, users: list) -> list[np.ndarray]:
    """Per user (in ``users`` order), the positions of its selected images, in frame order."""
    positions = np.flatnonzero(selected)
    groups = pd.Series(positions).groupby(identities[positions], sort=False).indices
    empty = np.empty(0, dtype=np.int64)
    return [positions[groups[u]] if u in groups else empty for u in users]


def _genuine_same(images: list[np.ndarray]):
    firsts, seconds = [], []
    for p in images:
        if p.size > 1:
            a, b = np.triu_indices(p.size, k=1)
            firsts.append(p[a])
            seconds.append(p[b])
    return firsts, seconds


def _genuine_cross(images_x: list[np.ndarray], images_y: list[np.ndarray]):
    firsts, seconds = [], []
    for px, py in zip(images_x, images_y):
        if px.size and py.size:
            firsts.append(np.repeat(px, py.size))
            seconds.append(np.tile(py, px.size))
    return firsts, seconds


def _impostor_protocol(images_x, images_y, n_impostor_users):
    """First X image of each user vs the second Y image of each of the next users."""
    targets = np.array([k for k, p in enumerate(images_y) if p.size >= 2], dtype=np.int64)
    firsts, seconds = [], []
    for rank, px in enumerate(images_x):
        if px.size == 0 or targets.size == 0:
            continue
        start = int(np.searchsorted(targets, rank, side="right"))
        cycle = targets[(start + np.arange(targets.size)) % targets.size]
        cycle = cycle[cycle != rank][:n_impostor_users]  # the user itself comes last, if at all
        if cycle.size:
            firsts.append(np.full(cycle.size, px[0]))
            seconds.append(np.array([images_y[k][1] for k in cycle], dtype=np.int64))
    return firsts, seconds


def _impostor_all(images_x, images_y, same: bool):
    """Every X image of each user vs every Y image of every other user, once."""
    firsts, seconds = [], []
    for rank, px in enumerate(images_x):
        if px.size == 0:
            continue
        others = images_y[rank + 1:] if same else images_y[:rank] + images_y[rank + 1:]
        py = np.concatenate(others) if others else np.empty(0, dtype=np.int64)
        if py.size:
            firsts.append(np.repeat(px, py.size))
            seconds.append(np.tile(py, px.size))
    return firsts, seconds


def _cat(parts) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)


def verification_pairs(
    frame: pd.DataFrame,
    *,
    n_impostor_users: int = 100,
    all_impostors: bool = False,
    pose_pair: str | None = None,
) -> pd.DataFrame:
    """Genuine and impostor comparisons of the paper's verification protocol.

    Parameters
    ----------
    frame : pandas.DataFrame, N rows
        One row per image, with a column ``identity`` and optionally ``pose``
        (``"frontal"``, ``"three-quarter"``, ``"profile"`` or ``"F"``,
        ``"3/4"``, ``"P"``). Within an identity, the frame's row order defines
        the first, second, ... image (e.g. sorted file names).
    n_impostor_users : int
        Each user's first image is compared with the second image of this many
        following users (sorted identity order, wrapping around); 100 in the
        paper. With fewer eligible users, all the others are used. Users with a
        single image (of the pose in question) have no second image: they are
        skipped as impostor targets (counted in ``attrs``) and the next
        eligible user is taken instead, so each user still gets
        ``n_impostor_users`` comparisons when enough users are eligible. They
        still serve as sources (their first image).
    all_impostors : bool
        For small datasets: instead of the first-vs-second rule, every image of
        each user against every image of every other user, once
        (``sum over user pairs n_u * n_v`` comparisons).
    pose_pair : str, optional
        One of :data:`POSE_PAIRS` (needs a ``pose`` column) or ``"overall"`` /
        None (all images, any pose). Same-pose pairs ``X-X`` apply the protocol
        within the images of pose X. Cross-pose pairs ``X-Y``: genuine = every
        X image of a user against every Y image of the same user; impostor =
        the first X image of a user against the second Y image of each of the
        next users ("first" and "second" counted within the pose); with
        ``all_impostors`` every X image against every Y image of every other
        user.

    Returns
    -------
    pandas.DataFrame
        One row per comparison, genuine first, users in sorted identity order.
        Columns:

        - ``i``, ``j``: row positions in ``frame``. Genuine same-pose/overall
          pairs have ``i < j``; cross-pose genuine pairs have the X image in
          ``i`` and the Y image in ``j``; impostor pairs have the source
          user's first (X) image in ``i`` and the target's second (Y) image in
          ``j`` (with ``all_impostors``: the image of the user earlier in
          sorted order in ``i`` (same pose), or the X image (cross-pose)).
        - ``label``: 1 genuine, 0 impostor.
        - ``identity_i``, ``identity_j``.
        - ``pose_pair``: the pose pair (``"overall"`` for all images), only
          when ``frame`` has a ``pose`` column.

        It may be empty (e.g. a pose missing from the data). ``attrs``
        records how it was made: ``n_impostor_users``, ``all_impostors``,
        ``pose_pair``, ``n_users``, ``n_skipped_targets`` (users with exactly
        one image of the target pose, skipped as impostor targets; 0 with
        ``all_impostors``), ``n_genuine``, ``n_impostor``, ``image_order``.
    """
    identities, poses = _check_frame(frame)
    n_impostor_users = checks.positive_int(n_impostor_users, "n_impostor_users")
    if not isinstance(all_impostors, (bool, np.bool_)):
        raise ValueError(f"all_impostors must be True or False, got {all_impostors!r}")
    pair = _parse_pose_pair(pose_pair, poses)
    users = _sorted_users(identities)

    if pair is None:
        selected_x = selected_y = np.ones(len(frame), dtype=bool)
        label = OVERALL
    else:
        selected_x, selected_y = poses == pair[0], poses == pair[1]
        label = pose_pair
    same = pair is None or pair[0] == pair[1]
    images_x = _positions_by_user(identities, selected_x, users)
    images_y = images_x if same else _positions_by_user(identities, selected_y, users)

    gen = _genuine_same(images_x) if same else _genuine_cross(images_x, images_y)
    if all_impostors:
        imp = _impostor_all(images_x, images_y, same)
        skipped = 0
    else:
        imp = _impostor_protocol(images_x, images_y, n_impostor_users)
        skipped = sum(1 for p in images_y if p.size == 1)
    gi, gj, ii, ij = _cat(gen[0]), _cat(gen[1]), _cat(imp[0]), _cat(imp[1])

    i = np.concatenate([gi, ii])
    j = np.concatenate([gj, ij])
    pairs = pd.DataFrame(
        {
            "i": i,
            "j": j,
            "label": np.concatenate([np.ones(gi.size, np.int64), np.zeros(ii.size, np.int64)]),
            "identity_i": identities[i],
            "identity_j": identities[j],
        }
    )
    if poses is not None:
        pairs["pose_pair"] = label
    pairs.attrs = {
        "n_impostor_users": n_impostor_users,
        "all_impostors": bool(all_impostors),
        "pose_pair": label,
        "n_users": len(users),
        "n_skipped_targets": int(skipped),
        "n_genuine": int(gi.size),
        "n_impostor": int(ii.size),
        "image_order": "frame row order within each identity",
    }
    return pairs


def verification_pairs_by_pose(frame: pd.DataFrame, **kwargs) -> pd.DataFrame:
    """The comparisons of every Table I column: six pose pairs and overall.

    Parameters
    ----------
    frame : pandas.DataFrame, N rows
        Images with columns ``identity`` and ``pose`` (see
        :func:`verification_pairs`).
    **kwargs
        ``n_impostor_users`` and ``all_impostors``, passed on to
        :func:`verification_pairs`.

    Returns
    -------
    pandas.DataFrame
        :func:`verification_pairs` for each of :data:`TABLE_COLUMNS`,
        concatenated in that order (``pose_pair`` column: ``"F-F"``, ...,
        ``"overall"``). The overall rows repeat image pairs of the pose-pair
        rows; keep the groups apart (EERs per ``pose_pair``). A pose pair with
        no images gives no rows (its EER is NaN in tables, never 0).
        ``attrs``: ``n_impostor_users``, ``all_impostors``, ``image_order``,
        and per pose pair ``counts`` (``{"genuine": g, "impostor": m}``) and
        ``n_skipped_targets``.
    """
    _, poses = _check_frame(frame)
    if poses is None:
        raise ValueError(
            "frame needs a 'pose' column for a pose breakdown; use verification_pairs for overall pairs"
        )
    unknown = set(kwargs) - {"n_impostor_users", "all_impostors"}
    if unknown:
        raise ValueError(f"unexpected keyword(s) {sorted(unknown)}; accepted: n_impostor_users, all_impostors")
    parts = [verification_pairs(frame, pose_pair=column, **kwargs) for column in TABLE_COLUMNS]
    pairs = pd.concat(parts, ignore_index=True)
    first = parts[0].attrs
    pairs.attrs = {
        "n_impostor_users": first["n_impostor_users"],
        "all_impostors": first["all_impostors"],
        "image_order": first["image_order"],
        "counts": {p.attrs["pose_pair"]: {"genuine": p.attrs["n_genuine"], "impostor": p.attrs["n_impostor"]}
                   for p in parts},
        "n_skipped_targets": {p.attrs["pose_pair"]: p.attrs["n_skipped_targets"] for p in parts},
    }
    return pairs


# --------------------------------------------------------------------------
# scores


def _as_matrix(embeddings, name: str) -> np.ndarray:
    if hasattr(embeddings, "detach"):  # torch tensor, without importing torch
        embeddings = embeddings.detach().cpu().numpy()
    array = np.asarray(embeddings)
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def _cosine(matrix: np.ndarray, i: np.ndarray, j: np.ndarray, chunk_size, name: str
            ) -> np.ndarray:
    """:func:`faceexp.core.similarity.pair_cosine` with ``chunk_size`` pairs per chunk."""
    chunk_bytes = (64 << 20) if chunk_size is None else \
        chunk_size * 3 * matrix.itemsize * max(matrix.shape[1], 1)
    return pair_cosine(matrix, i, j, chunk_bytes=chunk_bytes, name=name)


def cosine_scores(embeddings, pairs, *, chunk_size: int | None = None):
    """Cosine similarity of each pair of embeddings.

    Parameters
    ----------
    embeddings : array_like or torch.Tensor, shape (N, D), or dict
        One descriptor per image (row ``k`` = ``frame.iloc[k]``), or a dict
        ``layer -> (N, D)`` to score several layers at once.
    pairs : pandas.DataFrame or array_like, shape (P, 2)
        Row positions: columns ``i`` and ``j`` (from
        :func:`verification_pairs`) or an integer array of ``(i, j)`` rows.
    chunk_size : int, optional
        Pairs per chunk. The row norms are computed once; each chunk gathers
        its rows (dot products accumulated in float64), so no (P, D) array is
        ever built; repeated and mirrored pairs are scored once. Default:
        about 64 MiB of gathered rows per chunk.

    Returns
    -------
    numpy.ndarray, shape (P,), or dict
        Cosine similarities in [-1, 1] (float64; higher = more similar), or a
        dict ``layer -> (P,)`` for a dict input.

    Raises
    ------
    ValueError
        On a bad shape, non-finite values, out-of-range positions, or an
        all-zero descriptor in a pair.
    """
    if chunk_size is not None:
        chunk_size = checks.positive_int(chunk_size, "chunk_size")
    if isinstance(embeddings, dict):
        if not embeddings:
            raise ValueError("embeddings is an empty dict; give at least one layer -> (N, D) array")
        matrices = {layer: _as_matrix(m, f"embeddings[{layer!r}]") for layer, m in embeddings.items()}
        rows = {m.shape[0] for m in matrices.values()}
        if len(rows) != 1:
            raise ValueError(
                f"every layer of embeddings must have the same number of rows N, got {sorted(rows)}"
            )
        i, j = pair_positions(pairs, rows.pop())
        return {layer: _cosine(m, i, j, chunk_size, f"embeddings[{layer!r}]")
                for layer, m in matrices.items()}
    matrix = _as_matrix(embeddings, "embeddings")
    i, j = pair_positions(pairs, matrix.shape[0])
    return _cosine(matrix, i, j, chunk_size, "embeddings")


# --------------------------------------------------------------------------
# tables


def _pair_groups(pairs) -> tuple[np.ndarray, np.ndarray]:
    """Genuine mask (P,) and pose-pair labels (P,) of a pairs frame."""
    if not isinstance(pairs, pd.DataFrame) or "label" not in pairs.columns:
        raise ValueError("pairs must be a DataFrame with a 'label' column (from verification_pairs)")
    labels = pairs["label"].to_numpy()
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("pairs' label column must hold 1 (genuine) or 0 (impostor)")
    if "pose_pair" in pairs.columns:
        groups = pairs["pose_pair"].to_numpy(dtype=object)
        unknown = set(pd.unique(groups)) - set(TABLE_COLUMNS)
        if unknown:
            raise ValueError(
                f"pairs' pose_pair column holds {sorted(map(str, unknown))}; accepted: {TABLE_COLUMNS}"
            )
    else:
        groups = np.full(len(pairs), OVERALL, dtype=object)
    return labels == 1, groups


def _system_scores(scores, n: int, name: str) -> np.ndarray:
    if hasattr(scores, "detach"):
        scores = scores.detach().cpu().numpy()
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (n,):
        raise ValueError(f"scores of {name!r} must have shape ({n},), one per pair, got {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"scores of {name!r} hold NaN or infinite values")
    return scores


def eer_table(scores_by_system: dict, pairs: pd.DataFrame, *, convention: str = "bob") -> pd.DataFrame:
    """EER of each system for each Table I column, as fractions.

    Parameters
    ----------
    scores_by_system : dict
        ``name -> (P,)`` similarity scores, one per row of ``pairs`` (e.g.
        ``{"MB2": ..., "R50": ...}`` or the dict :func:`cosine_scores` returns
        for several layers).
    pairs : pandas.DataFrame, P rows
        From :func:`verification_pairs_by_pose` (or :func:`verification_pairs`;
        without a ``pose_pair`` column every pair counts as ``"overall"``).
    convention : {"bob", "pyeer"}
        EER rule, see :func:`faceexp.verify.metrics.equal_error_rate`.

    Returns
    -------
    pandas.DataFrame
        Rows = systems, columns = :data:`TABLE_COLUMNS` (F-F, 3/4-3/4, P-P,
        F-3/4, F-P, 3/4-P, overall); values = EER as a fraction in [0, 1]
        (:func:`format_eer_table` prints percent), NaN where a column has no
        genuine or no impostor comparison (:func:`faceexp.verify.metrics.eer_by_group`).
        ``attrs["counts"]``: ``{column: {"genuine": g, "impostor": m}}``.
    """
    if not isinstance(scores_by_system, dict) or not scores_by_system:
        raise ValueError("scores_by_system must be a non-empty dict name -> (P,) scores")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    genuine, groups = _pair_groups(pairs)
    index = pd.Index(list(scores_by_system), name="system")
    table = pd.DataFrame(index=index, columns=list(TABLE_COLUMNS), dtype=float)
    counts = {column: {"genuine": 0, "impostor": 0} for column in TABLE_COLUMNS}
    for name, scores in scores_by_system.items():
        scores = _system_scores(scores, len(pairs), name)
        per_group = eer_by_group(scores, genuine, groups, convention=convention)
        for row in per_group.itertuples():
            table.loc[name, row.group] = row.eer
            counts[row.group] = {"genuine": row.n_genuine, "impostor": row.n_impostor}
    table.columns.name = "pose pair"
    table.attrs = {"counts": counts, "unit": "fraction", "convention": convention}
    return table


def table_one(
    scores: dict,
    pairs: pd.DataFrame,
    *,
    weights=DEFAULT_WEIGHTS,
    by: str = OVERALL,
    convention: str = "bob",
) -> pd.DataFrame:
    """Table I: EER of two recognisers and of their best weighted fusion, as fractions.

    The fused score is ``a * s_1 + (1 - a) * s_2`` for the first and second
    entries of ``scores`` (:func:`faceexp.verify.fusion.fuse_scores`; the paper's
    printed ``(a - 1)`` is a slip). ``a`` is swept over ``weights`` and chosen
    where the ``by`` column (overall, as in the paper: a = 0.58) has the lowest
    EER, then applied to every column.

    The relative change of each cell is measured against the **better of the
    two single recognisers in that column**: ``(fused - min(EER_1, EER_2)) /
    min(EER_1, EER_2)``. This is the only baseline that reproduces every
    percentage of the paper's Table I from its two-decimal EERs: F-F 3.53 vs
    min(3.69, 3.93) gives -4.1% within rounding, and 3/4-P 3.37 vs
    min(3.75, 3.69) = 3.69 gives -8.6%, where MB2 as baseline would give
    -10.1%.

    Parameters
    ----------
    scores : dict
        Exactly two entries ``name -> (P,)`` similarity scores, one per row of
        ``pairs``, e.g. ``{"MB2": s_mb2, "R50": s_r50}``; the names are the
        table's rows and the first is weighted by ``a``.
    pairs : pandas.DataFrame, P rows
        From :func:`verification_pairs_by_pose` (or :func:`verification_pairs`).
    weights : array_like, shape (W,)
        Values of ``a`` in [0, 1]; must include 0 and 1. Default 0, 0.01, ..., 1.
    by : str
        Column on which ``a`` is chosen.
    convention : {"bob", "pyeer"}
        EER rule, see :func:`faceexp.verify.metrics.equal_error_rate`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`TABLE_COLUMNS`; rows the two names, ``"combined (best)"``
        (EER at the chosen ``a``) and ``"relative change"`` (the relative change
        above); all fractions (:func:`format_eer_table` prints percent), NaN in
        empty columns. ``attrs``: ``a``, ``by``, ``counts``, ``baseline``,
        ``convention``, ``unit``. For Figure 6 (EER against ``a``) call
        :func:`faceexp.verify.fusion.fusion_sweep` with the same arguments.
    """
    if not isinstance(scores, dict) or len(scores) != 2:
        raise ValueError("scores must be a dict of exactly two recognisers name -> (P,) scores, "
                         f"got {type(scores).__name__} of {len(scores) if hasattr(scores, '__len__') else '?'}")
    names = [str(name) for name in scores]
    if COMBINED_ROW in names or CHANGE_ROW in names:
        raise ValueError(f"scores' names must differ from {COMBINED_ROW!r} and {CHANGE_ROW!r}, "
                         f"got {names}")
    if by not in TABLE_COLUMNS:
        raise ValueError(f"by must be one of {TABLE_COLUMNS}, got {by!r}")
    table = eer_table(dict(scores), pairs, convention=convention)
    genuine, groups = _pair_groups(pairs)
    first, second = (_system_scores(value, len(pairs), name) for name, value in scores.items())
    sweep = fusion_sweep(first, second, genuine.astype(np.int64), groups=groups,
                         weights=weights, convention=convention)
    best = best_fusion(sweep, by=by)
    table.loc[COMBINED_ROW] = pd.Series({c: best["eer"].get(c, np.nan) for c in TABLE_COLUMNS})
    table.loc[CHANGE_ROW] = pd.Series({c: best["relative_change"].get(c, np.nan)
                                       for c in TABLE_COLUMNS})
    table.attrs = {
        **table.attrs,
        "a": best["a"],
        "by": by,
        "baseline": "better single recogniser per column: min of the two EERs",
    }
    return table


def format_eer_table(table: pd.DataFrame, *, decimals: int = 2) -> pd.DataFrame:
    """Strings for printing an EER table as the paper does.

    NaN becomes ``"n/a"``; in a :func:`table_one` table the combined row reads
    ``"3.53 (-4.1%)"`` and the relative-change row is folded into it.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`eer_table` or :func:`table_one` (EERs as fractions; they are
        printed in percent, the only place faceexp converts the unit).
    decimals : int
        Decimals of the EERs in percent (the change gets one).

    Returns
    -------
    pandas.DataFrame
        Same columns, string values.
    """
    if not isinstance(table, pd.DataFrame):
        raise ValueError("table must be a DataFrame from eer_table or table_one")

    def fmt(value):
        return "n/a" if pd.isna(value) else f"{100 * value:.{decimals}f}"

    values = table.drop(index=[CHANGE_ROW], errors="ignore")
    out = values.apply(lambda column: column.map(fmt))
    if CHANGE_ROW in table.index and COMBINED_ROW in table.index:
        for column in table.columns:
            change = table.loc[CHANGE_ROW, column]
            if not pd.isna(change) and not pd.isna(table.loc[COMBINED_ROW, column]):
                out.loc[COMBINED_ROW, column] = f"{fmt(table.loc[COMBINED_ROW, column])} ({100 * change:+.1f}%)"
    return out
