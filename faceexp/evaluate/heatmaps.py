"""Heatmap statistics: PSNR between heatmaps, group averages, examples, overlays.

The paper (Alonso-Fernandez et al., Sec. IV-A, IV-B, IV-D) compares LIME
heatmaps scaled to ``[0, 1]``:

* average heatmaps per data set, vector source (GAP embedding vs softmax),
  network, pose and layer (Fig. 2, 3, 7), with three-quarter and profile
  faces mirrored so that every face looks left, drawn over the average face
  (:func:`average_heatmaps`, :func:`average_faces`, :func:`overlay`);
* the PSNR between two systems' heatmaps of the same image (Fig. 2, 4), its
  histogram per pose (:func:`psnr_between`, :func:`psnr_histograms`) and the
  images at the maximum, average and minimum PSNR (Fig. 5,
  :func:`psnr_examples`).

PSNR is scikit-image's ``peak_signal_noise_ratio``, called after the inputs
are checked: ``10 log10(data_range**2 / MSE)`` with ``data_range = 1`` for
heatmaps in ``[0, 1]``; identical maps give ``inf``.

Grouped results are DataFrames with one row per group: the grouping columns,
``count`` and an object column holding each group's mean array
(``heatmap`` or ``image``).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from skimage.metrics import peak_signal_noise_ratio

from faceexp.data.pose import look_left_batch

__all__ = [
    "heatmap_psnr",
    "psnr_pairs",
    "average_heatmaps",
    "average_faces",
    "averages_by_key",
    "psnr_between",
    "psnr_histograms",
    "psnr_examples",
    "overlay",
]

#: Order of the rows ``psnr_examples`` returns within a group.
EXAMPLE_KINDS = ("max", "average", "min")


# --------------------------------------------------------------------------- #
# PSNR
# --------------------------------------------------------------------------- #
def _check_data_range(data_range) -> float:
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float, np.number)) \
            or not np.isfinite(data_range) or data_range <= 0:
        raise ValueError(
            f"data_range must be a positive finite number (1.0 for heatmaps in [0, 1]), "
            f"got {data_range!r}"
        )
    return float(data_range)


def _as_float_array(value, name: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array, got {type(value).__name__}") from exc
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values; heatmaps must be finite")
    return array


def _skimage_psnr(reference: np.ndarray, heatmap: np.ndarray, data_range: float) -> float:
    """skimage's PSNR of two checked float64 maps; ``inf`` (no warning) when identical."""
    with np.errstate(divide="ignore"):        # MSE 0: data_range**2 / 0 -> inf
        return float(peak_signal_noise_ratio(reference, heatmap, data_range=data_range))


def heatmap_psnr(reference, heatmap, *, data_range: float = 1.0) -> float:
    """PSNR of ``heatmap`` against ``reference``, in dB.

    ``10 * log10(data_range**2 / mean((reference - heatmap)**2))``, computed
    by ``skimage.metrics.peak_signal_noise_ratio`` once the inputs are
    checked (finite, same shape, not empty, ``data_range`` given). The
    measure is symmetric in its two arguments.

    Parameters
    ----------
    reference, heatmap : array_like, same shape, e.g. (H, W)
        Heatmaps (any number of dimensions), finite.
    data_range : float, default 1.0
        Range of the values: 1 for heatmaps scaled to ``[0, 1]`` (the paper's).

    Returns
    -------
    float
        PSNR in dB; ``inf`` when the maps are identical. Two maps differing
        by 0.1 everywhere give 20 dB.

    Raises
    ------
    ValueError
        Shapes differ, an input is empty or not finite, or ``data_range`` is
        not positive.
    """
    data_range = _check_data_range(data_range)
    reference = _as_float_array(reference, "reference")
    heatmap = _as_float_array(heatmap, "heatmap")
    if reference.shape != heatmap.shape:
        raise ValueError(
            f"reference and heatmap must have the same shape, got {reference.shape} and "
            f"{heatmap.shape}"
        )
    if reference.size == 0:
        raise ValueError("reference and heatmap are empty; give maps with at least one pixel")
    return _skimage_psnr(reference, heatmap, data_range)


def psnr_pairs(a, b, *, data_range: float = 1.0) -> np.ndarray:
    """PSNR between corresponding heatmaps of two stacks.

    Parameters
    ----------
    a, b : array_like, shape (N, H, W)
        Heatmaps; row ``k`` of ``a`` is compared with row ``k`` of ``b``.
    data_range : float, default 1.0
        As in :func:`heatmap_psnr`.

    Returns
    -------
    numpy.ndarray of float64, shape (N,)
        PSNR in dB per pair (``inf`` for identical maps).
    """
    data_range = _check_data_range(data_range)
    a = _as_float_array(a, "a")
    b = _as_float_array(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape (N, H, W), got {a.shape} and {b.shape}")
    if a.ndim < 2 or a.shape[0] == 0 or a[0].size == 0:
        raise ValueError(
            f"a and b must be stacks of heatmaps of shape (N, H, W) with N >= 1, got {a.shape} "
            "(use heatmap_psnr for a single pair)"
        )
    return np.array([_skimage_psnr(x, y, data_range) for x, y in zip(a, b)], dtype=np.float64)


# --------------------------------------------------------------------------- #
# Group averages
# --------------------------------------------------------------------------- #
def _as_table(groups, n: int) -> pd.DataFrame:
    if groups is None:
        return pd.DataFrame(index=pd.RangeIndex(n))
    if isinstance(groups, pd.DataFrame):
        table = groups
    elif isinstance(groups, Mapping):
        try:
            table = pd.DataFrame(dict(groups))
        except ValueError as exc:
            raise ValueError(f"groups: columns must all have one value per image: {exc}") from exc
    else:
        raise ValueError(
            f"groups must be a pandas DataFrame or a dict of columns, got {type(groups).__name__}"
        )
    if len(table) != n:
        raise ValueError(f"groups has {len(table)} rows for {n} maps; give one row per map")
    return table.reset_index(drop=True)


def _by_columns(by, table: pd.DataFrame) -> list:
    if by is None:
        return []
    if isinstance(by, str):
        by = [by]
    by = list(by)
    missing = [c for c in by if c not in table.columns]
    if missing:
        raise ValueError(
            f"by names column(s) {missing} absent from groups; available: {list(table.columns)}"
        )
    if len(set(by)) != len(by):
        raise ValueError(f"by has duplicates: {by}")
    return by


def _looks_values(looks, table: pd.DataFrame, n: int):
    if looks is None:
        return None
    if isinstance(looks, str):
        if looks not in table.columns:
            raise ValueError(
                f"looks={looks!r} is not a column of groups; give a column name or one "
                "'left'/'right'/'unknown' per map"
            )
        looks = table[looks]
    looks = list(looks)
    if len(looks) != n:
        raise ValueError(f"looks has {len(looks)} entries for {n} maps; give one per map")
    return looks


def _is_missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # arrays, lists: never "missing"
        return False


def _group_codes(table: pd.DataFrame, by: list) -> tuple[np.ndarray, pd.DataFrame]:
    """Group number of each row (groups in order of first appearance) and the groups' keys.

    Missing labels (None, NaN, NA) form one group of their own per column.
    """
    n = len(table)
    if not by:
        return np.zeros(n, dtype=np.int64), pd.DataFrame(index=pd.RangeIndex(1 if n else 0))
    first: dict = {}
    positions = []
    codes = np.empty(n, dtype=np.int64)
    missing = object()
    for k, row in enumerate(table[by].itertuples(index=False, name=None)):
        key = tuple(missing if _is_missing(v) else v for v in row)
        code = first.get(key)
        if code is None:
            code = first[key] = len(first)
            positions.append(k)
        codes[k] = code
    return codes, table[by].iloc[positions].reset_index(drop=True)


def _group_means(stack: np.ndarray, groups, by, looks, *, width_axis: int, column: str
                 ) -> pd.DataFrame:
    n = stack.shape[0]
    table = _as_table(groups, n)
    by = _by_columns(by, table)
    looks = _looks_values(looks, table, n)
    if looks is not None:
        stack = look_left_batch(stack, looks, axis=width_axis)
    codes, keys = _group_codes(table, by)
    rows = []
    for code in range(int(codes.max()) + 1):
        members = np.flatnonzero(codes == code)
        # Sum in float64: averages of thousands of float32 maps stay exact to 1e-7.
        mean = stack[members].sum(axis=0, dtype=np.float64) / len(members)
        rows.append((len(members), mean.astype(np.float32)))
    out = keys.copy()
    out["count"] = np.array([r[0] for r in rows], dtype=np.int64)
    out[column] = pd.Series([r[1] for r in rows], index=out.index, dtype=object)
    return out


def average_heatmaps(heatmaps, groups=None, *, by=None, looks=None) -> pd.DataFrame:
    """Mean heatmap of each group of images.

    Groups are any columns (training vs validation, vector source GAP vs
    softmax, network, pose, layer): the paper's Fig. 2, 3 and 7.

    Parameters
    ----------
    heatmaps : array_like, shape (N, H, W)
        One heatmap per image, e.g. scaled to ``[0, 1]``.
    groups : pandas.DataFrame or dict of columns, length N, optional
        Per-image labels (``pose``, ``network``, ``source``, ...). Its index
        is ignored: row ``k`` describes ``heatmaps[k]``.
    by : str or list of str, optional
        Columns of ``groups`` to group by; None averages everything into
        one row.
    looks : str or sequence of str, length N, optional
        Where each face points in the image, ``"left"``, ``"right"`` or
        ``"unknown"`` (None/NaN), e.g. ``estimate_pose(...)["looks"]``, or the
        name of such a column of ``groups``. Maps of faces that look right
        are mirrored left-right before averaging, so that every face looks
        left (paper, Fig. 3). The paper mirrors only three-quarter and
        profile faces: pass ``"unknown"`` (or None) for frontal ones to
        leave them as they are.

    Returns
    -------
    pandas.DataFrame
        One row per group, in order of first appearance; columns: the ``by``
        columns, ``count`` (int, images in the group) and ``heatmap`` (object:
        a float32 ``(H, W)`` mean map). Missing labels (NaN) form their own
        group.

    Raises
    ------
    ValueError
        ``heatmaps`` is not ``(N, H, W)``, ``groups`` or ``looks`` has another
        length, a ``by`` column is missing, a ``looks`` value is unknown.
    """
    stack = _as_float_array(heatmaps, "heatmaps")
    if stack.ndim != 3 or stack.shape[0] == 0:
        raise ValueError(
            f"heatmaps must have shape (N, H, W) with N >= 1, got {stack.shape} "
            "(add an axis with h[None] for one map)"
        )
    return _group_means(stack, groups, by, looks, width_axis=-1, column="heatmap")


def _channel_axis(images: np.ndarray, channel_axis) -> int:
    if channel_axis is not None:
        if channel_axis not in (1, 3, -1):
            raise ValueError(
                f"channel_axis must be 1 (N, 3, H, W), 3 or -1 (N, H, W, 3), or None, "
                f"got {channel_axis!r}"
            )
        axis = 3 if channel_axis == -1 else channel_axis
        if images.shape[axis] != 3:
            raise ValueError(
                f"images have {images.shape[axis]} values on channel_axis={channel_axis}, not 3"
            )
        return axis
    last, first = images.shape[3] == 3, images.shape[1] == 3
    if last and first:
        raise ValueError(
            f"images of shape {images.shape} could be (N, 3, H, W) or (N, H, W, 3): "
            "pass channel_axis=1 or channel_axis=-1"
        )
    if not (last or first):
        raise ValueError(
            f"images must have shape (N, H, W, 3), (N, 3, H, W) or (N, H, W) (grey), "
            f"got {images.shape}"
        )
    return 3 if last else 1


def average_faces(images, groups=None, *, by=None, looks=None, channel_axis=None
                  ) -> pd.DataFrame:
    """Mean image of each group (the average face the paper draws heatmaps on).

    Same grouping and mirroring as :func:`average_heatmaps`, so that a
    group's average face and average heatmap line up.

    Parameters
    ----------
    images : array_like, shape (N, H, W, 3), (N, 3, H, W) or (N, H, W)
        Images in ``[0, 1]``.
    groups, by, looks
        As in :func:`average_heatmaps`.
    channel_axis : {None, 1, -1}
        Where the colour axis is; None detects it (and refuses to guess when
        both axis 1 and the last axis have 3 values).

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``by`` columns, ``count`` and ``image``
        (object: float32 ``(H, W, 3)`` whatever the input layout, or
        ``(H, W)`` for grey input).
    """
    stack = _as_float_array(images, "images")
    if stack.shape[:1] == (0,) or stack.ndim not in (3, 4):
        raise ValueError(
            f"images must have shape (N, H, W, 3), (N, 3, H, W) or (N, H, W) with N >= 1, "
            f"got {stack.shape}"
        )
    if stack.ndim == 4 and _channel_axis(stack, channel_axis) == 1:
        stack = np.moveaxis(stack, 1, -1)
    width_axis = -2 if stack.ndim == 4 else -1
    return _group_means(stack, groups, by, looks, width_axis=width_axis, column="image")


def averages_by_key(table: pd.DataFrame, *, by=None, column: str | None = None) -> dict:
    """A grouped result of :func:`average_heatmaps` / :func:`average_faces` as a dict.

    Handy for grids such as ``faceexp.report.plots.plot_average_heatmaps`` that look
    panels up by ``(row, col)``.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`average_heatmaps` or :func:`average_faces`.
    by : str or list of str, optional
        Key columns; default every column except ``count`` and the array column.
    column : str, optional
        The array column; default ``"heatmap"`` or ``"image"``, whichever exists.

    Returns
    -------
    dict
        ``key -> array``; the key is a tuple of the ``by`` values, or the value
        itself when ``by`` is one column.
    """
    if not isinstance(table, pd.DataFrame):
        raise ValueError(
            "table must be a DataFrame from average_heatmaps/average_faces, "
            f"got {type(table).__name__}"
        )
    if column is None:
        found = [c for c in ("heatmap", "image") if c in table.columns]
        if len(found) != 1:
            raise ValueError(
                f"pass column=: table has {found or 'neither'} of the columns 'heatmap', 'image'"
            )
        column = found[0]
    elif column not in table.columns:
        raise ValueError(f"table has no column {column!r}; columns: {list(table.columns)}")
    if by is None:
        by = [c for c in table.columns if c not in ("count", column)]
    by = _by_columns(by, table)
    if not by:
        raise ValueError("no key columns: pass by=[...] naming the grouping columns")
    keys = list(table[by].itertuples(index=False, name=None))
    if len(set(keys)) != len(keys):
        raise ValueError(f"the columns {by} do not identify the rows uniquely; add a column to by")
    arrays = table[column].tolist()
    return {(key if len(by) > 1 else key[0]): array for key, array in zip(keys, arrays)}


# --------------------------------------------------------------------------- #
# PSNR between two systems
# --------------------------------------------------------------------------- #
def psnr_between(heatmaps_a, heatmaps_b, frame=None, *, data_range: float = 1.0,
                 column: str = "psnr") -> pd.DataFrame:
    """Per-image PSNR between two systems' heatmaps (e.g. MobileNetV2 vs ResNet50).

    Parameters
    ----------
    heatmaps_a, heatmaps_b : array_like, shape (N, H, W)
        The two systems' heatmaps of the same N images, in the same order.
    frame : pandas.DataFrame, length N, optional
        Per-image columns to carry along (``pose``, ``identity``, ``path``...).
    data_range : float, default 1.0
        As in :func:`heatmap_psnr`.
    column : str, default "psnr"
        Name of the added column.

    Returns
    -------
    pandas.DataFrame
        ``frame``'s columns and index (a RangeIndex without ``frame``) plus
        ``column`` (float64, dB; ``inf`` for identical maps).
    """
    values = psnr_pairs(heatmaps_a, heatmaps_b, data_range=data_range)
    if frame is None:
        out = pd.DataFrame(index=pd.RangeIndex(len(values)))
    else:
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(
                f"frame must be a pandas DataFrame or None, got {type(frame).__name__}"
            )
        if len(frame) != len(values):
            raise ValueError(
                f"frame has {len(frame)} rows for {len(values)} heatmaps; give one row per image"
            )
        if column in frame.columns:
            raise ValueError(f"frame already has a column {column!r}; pass another column=")
        out = frame.copy()
    out[column] = values
    return out


def _psnr_column(df, column: str) -> np.ndarray:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(
            f"df must be a pandas DataFrame (from psnr_between), got {type(df).__name__}"
        )
    if column not in df.columns:
        raise ValueError(
            f"df has no column {column!r}; columns: {list(df.columns)} (see psnr_between)"
        )
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        raise ValueError(f"column {column!r} has NaN or non-numeric values")
    if np.isneginf(values).any():
        raise ValueError(f"column {column!r} has -inf values; PSNR is never -inf")
    return values


def psnr_histograms(df, *, by="pose", bins=20, range=None, column: str = "psnr"
                    ) -> pd.DataFrame:
    """Histogram of PSNR values per group, on common bins (paper, Fig. 4).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per image with a PSNR ``column`` (from :func:`psnr_between`).
    by : str, list of str or None, default "pose"
        Grouping column(s); None for one histogram of everything.
    bins : int or sequence of float, default 20
        Number of equal-width bins over ``range`` (default: the finite values'
        minimum to maximum over *all* groups, so the groups share their
        bins), or the bin edges, increasing.
    range : (float, float), optional
        Lower and upper edge when ``bins`` is an int.
    column : str, default "psnr"
        The PSNR column.

    Returns
    -------
    pandas.DataFrame
        Columns: the ``by`` columns, ``bin_left``, ``bin_right``, ``count``
        (int); ``len(edges) - 1`` rows per group, groups in order of first
        appearance. Bins are half-open ``[left, right)`` except the last,
        which includes its right edge (numpy's convention). Infinite PSNR
        (identical heatmaps) is counted in the last bin; values outside
        explicit edges or ``range`` are not counted.
    """
    values = _psnr_column(df, column)
    table = df.reset_index(drop=True)
    by = _by_columns(by, table)
    finite = values[np.isfinite(values)]
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError(f"bins must be a positive integer or a sequence of edges, got {bins}")
        if range is None:
            if finite.size == 0:
                raise ValueError(
                    f"column {column!r} has no finite value to place bins on; pass range=(lo, hi)"
                )
            range = (float(finite.min()), float(finite.max()))
        lo, hi = (float(v) for v in range)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
            raise ValueError(f"range must be two finite numbers lo <= hi, got {range!r}")
        edges = np.histogram_bin_edges(finite, bins=int(bins), range=(lo, hi))
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) \
                or np.any(np.diff(edges) <= 0):
            raise ValueError(
                "bins must be a positive integer or at least two finite, increasing edges, "
                f"got {bins!r}"
            )
    capped = np.where(np.isposinf(values), edges[-1], values)

    codes, keys = _group_codes(table, by)
    parts = []
    for code in np.arange(len(keys)):
        counts, _ = np.histogram(capped[codes == code], bins=edges)
        part = pd.DataFrame({
            "bin_left": edges[:-1], "bin_right": edges[1:], "count": counts.astype(np.int64),
        })
        for name in by:
            part.insert(len(part.columns) - 3, name, keys.loc[code, name])
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=by + ["bin_left", "bin_right", "count"])
    return pd.concat(parts, ignore_index=True)


def psnr_examples(df, *, by="pose", column: str = "psnr") -> pd.DataFrame:
    """The images at the maximum, average and minimum PSNR of each group (Fig. 5).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per image with a PSNR ``column`` (from :func:`psnr_between`).
    by : str, list of str or None, default "pose"
        Grouping column(s); None selects over all rows.
    column : str, default "psnr"
        The PSNR column.

    Returns
    -------
    pandas.DataFrame
        Three rows per group, in the order "max", "average", "min" (groups in
        order of first appearance): ``df``'s rows (its index kept) plus
        ``example`` (the kind), ``position`` (the row's position in ``df``,
        e.g. to index the heatmap arrays) and ``group_mean`` (the group's mean
        PSNR). "average" is the row closest to the group mean (over finite
        values); ties go to the first row. A one-image group repeats that
        image three times.
    """
    values = _psnr_column(df, column)
    by = _by_columns(by, df)
    if len(df) == 0:
        raise ValueError("df is empty; psnr_examples needs at least one row")
    codes, _ = _group_codes(df.reset_index(drop=True), by)
    picks, kinds, means = [], [], []
    for code in np.arange(int(codes.max()) + 1):
        members = np.flatnonzero(codes == code)
        group = values[members]
        finite = group[np.isfinite(group)]
        mean = float(finite.mean()) if finite.size else float("inf")
        if finite.size:
            average = members[np.flatnonzero(np.isfinite(group))[np.argmin(np.abs(finite - mean))]]
        else:
            average = members[0]
        for kind, position in zip(EXAMPLE_KINDS,
                                  (members[np.argmax(group)], average, members[np.argmin(group)])):
            picks.append(int(position))
            kinds.append(kind)
            means.append(mean)
    out = df.iloc[picks].copy()
    out["example"] = kinds
    out["position"] = np.asarray(picks, dtype=np.int64)
    out["group_mean"] = means
    return out


# --------------------------------------------------------------------------- #
# Overlay
# --------------------------------------------------------------------------- #
def overlay(image, heatmap, *, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a colour-mapped heatmap over an image.

    ``(1 - alpha) * image + alpha * cmap(heatmap)[..., :3]``. Only
    matplotlib's colour table is used (no figure is made).

    Parameters
    ----------
    image : array_like, shape (H, W, 3) or (H, W)
        Image in ``[0, 1]`` (grey is repeated to RGB).
    heatmap : array_like, shape (H, W)
        Heatmap in ``[0, 1]``.
    alpha : float in [0, 1], default 0.5
        Weight of the heatmap colours.
    cmap : str, default "jet"
        A matplotlib colormap name (the paper's figures use jet).

    Returns
    -------
    numpy.ndarray of float32, shape (H, W, 3)
        Values in ``[0, 1]``.
    """
    image = _as_float_array(image, "image")
    heatmap = _as_float_array(heatmap, "heatmap")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(
            f"image must have shape (H, W, 3) or (H, W), got {image.shape} "
            "(move the channel axis last with np.moveaxis(x, 0, -1))"
        )
    if heatmap.shape != image.shape[:2]:
        raise ValueError(
            f"heatmap must have the image's shape {image.shape[:2]}, got {heatmap.shape}"
        )
    tol = 1e-6
    for name, array in (("image", image), ("heatmap", heatmap)):
        if array.size and (array.min() < -tol or array.max() > 1 + tol):
            raise ValueError(
                f"{name} values must lie in [0, 1], got [{array.min():.4g}, {array.max():.4g}] "
                "(scale it first)"
            )
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.number)) \
            or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    import matplotlib

    try:
        colormap = matplotlib.colormaps[cmap]
    except (KeyError, TypeError):
        raise ValueError(
            f"cmap {cmap!r} is not a matplotlib colormap name (e.g. 'jet', 'viridis')"
        ) from None
    colours = colormap(np.clip(heatmap, 0.0, 1.0))[..., :3]
    out = (1.0 - alpha) * np.clip(image, 0.0, 1.0) + alpha * colours
    return np.clip(out, 0.0, 1.0).astype(np.float32)
