"""Face regions from the five MTCNN landmarks, and how much of a heatmap falls in each.

The paper reads its average heatmaps by eye: "the nose and inter-eye regions
receive the highest attention", "the eyes and mouth less" (Sec. IV-A, IV-B),
"forehead and cheeks in the initial layers" (Sec. IV-D). This module turns
those readings into numbers: :func:`region_masks` cuts an aligned face crop
into seven disjoint regions (:data:`REGIONS`) from its five landmarks,
:func:`region_ratios` gives each heatmap's share of mass per region divided by
the region's share of the area (1 = no preference, 2 = twice the attention of
a uniform map, 0 = none), and :func:`region_table` averages them over images
with bootstrap intervals.

Geometry (:func:`region_masks`), in a face frame fixed by the landmarks:
origin at the midpoint of the eyes, ``u`` along the line from the first eye
to the second, ``v`` perpendicular to it pointing towards the mouth, both in
units of the inter-eye distance ``d``; pixel (row r, column c) sits at
``(x, y) = (c, r)``, the landmarks' coordinates. The eyes are at ``u = -1/2``
and ``+1/2``, ``v = 0``; the nose tip at ``(u_n, v_n)``; the mouth corners'
midpoint at ``(u_m, v_m)``, half the mouth width ``w_m``. The nose axis is the
line from the origin to the nose tip, ``u_axis(v) = u_n v / v_n`` (it leans
with a turned head). With the constants of :data:`GEOMETRY`:

========== ===================================================================
region     pixels (first match in this order wins)
========== ===================================================================
eyes       inside an ellipse around either eye: semi-axes ``eye_half_width``
           (along ``u``) and ``eye_half_height`` (along ``v``)
mouth      inside the ellipse centred on the mouth midpoint, semi-axes
           ``w_m + mouth_margin`` and ``mouth_half_height``
nose       ``bridge_end * v_n <= v <= v_n + nose_below`` and
           ``|u - u_axis(v)| <= nose_half_width``
inter-eye  ``-brow <= v < bridge_end * v_n`` and ``|u - u_axis(v)| <=
           bridge_half_width``: between the eyes and down the nose bridge
forehead   inside the face oval and ``v < -brow``
cheeks     every other pixel inside the face oval (cheeks, jaw and chin)
outside    the rest (hair, background)
========== ===================================================================

The face oval is the ellipse centred at ``u = u_m / 2``, between ``v =
-forehead * v_m`` (the hairline) and ``v = v_m + chin * v_m`` (the chin), with
semi-axis ``face_half_width`` along ``u``. Eyes, mouth, nose and inter-eye
count as face even where they reach beyond the oval. Every pixel thus lies in
exactly one region. The constants are rough anthropometric proportions of a
frontal face (eye-to-mouth distance about 1.1 ``d``), not a face parser: they
follow the landmarks under rotation, scale and moderate yaw, but on a profile
(eyes nearly coincide, one side hidden) the regions are crude, and a crop
mirrored to look left (:func:`faceexp.data.pose.look_left`) must have its
landmarks mirrored too.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from faceexp.core.bootstrap import mean_interval

__all__ = ["REGIONS", "GEOMETRY", "region_masks", "region_ratios", "region_table",
           "region_contrast"]

#: The regions of :func:`region_masks`, in their order of precedence.
REGIONS = ("eyes", "mouth", "nose", "inter-eye", "forehead", "cheeks", "outside")

#: Proportions of the region geometry, in units of the inter-eye distance
#: (``forehead`` and ``chin`` in units of the eye-to-mouth distance ``v_m``,
#: ``bridge_end`` a fraction of the eye-to-nose-tip distance ``v_n``); see the
#: module docstring.
GEOMETRY = {
    "eye_half_width": 0.3,
    "eye_half_height": 0.18,
    "brow": 0.2,
    "bridge_half_width": 0.2,
    "bridge_end": 0.4,
    "nose_half_width": 0.25,
    "nose_below": 0.12,
    "mouth_margin": 0.12,
    "mouth_half_height": 0.18,
    "face_half_width": 1.0,
    "forehead": 0.85,
    "chin": 0.6,
}


def _geometry(geometry) -> dict:
    if geometry is None:
        return dict(GEOMETRY)
    if not isinstance(geometry, Mapping):
        raise ValueError(f"geometry must be a dict of some of {sorted(GEOMETRY)}, got "
                         f"{type(geometry).__name__}")
    unknown = sorted(set(geometry) - set(GEOMETRY))
    if unknown:
        raise ValueError(f"geometry: unknown key(s) {unknown}; accepted: {sorted(GEOMETRY)}")
    merged = {**GEOMETRY, **{k: float(v) for k, v in geometry.items()}}
    bad = [k for k, v in merged.items() if not np.isfinite(v) or v < 0]
    if bad:
        raise ValueError(f"geometry: {bad} must be finite numbers >= 0")
    return merged


def _shape(shape) -> tuple[int, int]:
    try:
        height, width = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (H, W), the aligned crop's size, got {shape!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"shape must be (H, W) with H, W >= 1, got {shape!r}")
    return height, width


def _labels_one(points: np.ndarray, height: int, width: int, g: dict) -> np.ndarray:
    """(H, W) region index (into REGIONS) of one face's pixels."""
    eye_a, eye_b, nose = points[0], points[1], points[2]
    mouth_a, mouth_b = points[3], points[4]
    midpoint = (eye_a + eye_b) / 2
    distance = float(np.linalg.norm(eye_b - eye_a))
    if not distance > 0:
        raise ValueError("landmarks: the two eyes coincide, so no face frame can be set; give the "
                         "five MTCNN landmarks (left eye, right eye, nose, mouth corners) as (x, y)")
    axis_u = (eye_b - eye_a) / distance
    axis_v = np.array([-axis_u[1], axis_u[0]])

    def frame(p):
        offset = np.asarray(p, dtype=np.float64) - midpoint
        return offset @ axis_u / distance, offset @ axis_v / distance

    mouth_mid = (mouth_a + mouth_b) / 2
    if frame(mouth_mid)[1] < 0:          # eyes given right-to-left: v must point to the mouth
        axis_v = -axis_v
    u_n, v_n = frame(nose)
    u_m, v_m = frame(mouth_mid)
    if not (v_n > 0 and v_m > 0):
        raise ValueError("landmarks: the nose tip and the mouth must lie below the eye line "
                         f"(got nose at v = {v_n:.2f}, mouth at v = {v_m:.2f} eye distances); check "
                         "the landmark order: left eye, right eye, nose, left and right mouth corner")
    half_mouth = float(np.linalg.norm(mouth_b - mouth_a)) / 2 / distance

    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    offset_x, offset_y = cols - midpoint[0], rows - midpoint[1]
    u = (offset_x * axis_u[0] + offset_y * axis_u[1]) / distance
    v = (offset_x * axis_v[0] + offset_y * axis_v[1]) / distance
    across_axis = np.abs(u - u_n * v / v_n)

    def ellipse(cu, cv, au, av):
        if au <= 0 or av <= 0:
            return np.zeros_like(u, dtype=bool)
        return ((u - cu) / au) ** 2 + ((v - cv) / av) ** 2 <= 1.0

    eyes = ellipse(-0.5, 0.0, g["eye_half_width"], g["eye_half_height"]) | \
        ellipse(0.5, 0.0, g["eye_half_width"], g["eye_half_height"])
    mouth = ellipse(u_m, v_m, half_mouth + g["mouth_margin"], g["mouth_half_height"])
    bridge_end = g["bridge_end"] * v_n
    nose_mask = (v >= bridge_end) & (v <= v_n + g["nose_below"]) & (across_axis <= g["nose_half_width"])
    inter_eye = (v >= -g["brow"]) & (v < bridge_end) & (across_axis <= g["bridge_half_width"])
    top, bottom = -g["forehead"] * v_m, v_m + g["chin"] * v_m
    face = ellipse(u_m / 2, (top + bottom) / 2, g["face_half_width"], (bottom - top) / 2)
    forehead = face & (v < -g["brow"])

    labels = np.full((height, width), REGIONS.index("outside"), dtype=np.int8)
    # paint from the lowest precedence up, so the first region of REGIONS wins
    for name, mask in (("cheeks", face), ("forehead", forehead), ("inter-eye", inter_eye),
                       ("nose", nose_mask), ("mouth", mouth), ("eyes", eyes)):
        labels[mask] = REGIONS.index(name)
    return labels


def region_masks(landmarks, shape, *, geometry: Mapping | None = None) -> dict:
    """Masks of the seven face regions of an aligned crop, from its five landmarks.

    Parameters
    ----------
    landmarks : array_like, shape (5, 2) or (N, 5, 2)
        ``(x, y)`` pixel coordinates in the crop, in MTCNN's order: left eye,
        right eye, nose tip, left mouth corner, right mouth corner (as
        :func:`faceexp.data.pose.estimate_pose` reads them). Either eye order works.
    shape : (H, W)
        Size of the crop (and of its heatmaps).
    geometry : dict, optional
        Overrides of :data:`GEOMETRY` (see the module docstring).

    Returns
    -------
    dict
        ``region -> bool mask`` for every name of :data:`REGIONS`, each of
        shape (H, W) (or (N, H, W) for N faces). Disjoint, and together they
        cover every pixel once.

    Raises
    ------
    ValueError
        Bad shapes or non-finite landmarks, eyes that coincide, or a nose or
        mouth above the eye line (landmarks in the wrong order).
    """
    height, width = _shape(shape)
    g = _geometry(geometry)
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape[-2:] != (5, 2) or points.ndim not in (2, 3):
        raise ValueError(f"landmarks must have shape (5, 2) or (N, 5, 2): MTCNN's five (x, y) points, "
                         f"got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("landmarks hold NaN or infinite values (a face MTCNN did not find?); "
                         "leave such faces out")
    if points.ndim == 2:
        labels = _labels_one(points, height, width, g)
    else:
        labels = np.stack([_labels_one(p, height, width, g) for p in points]) if len(points) else \
            np.empty((0, height, width), dtype=np.int8)
    return {name: labels == k for k, name in enumerate(REGIONS)}


def _masks(masks, shape: tuple) -> dict:
    """Masks as (N, H, W) or (H, W) bool arrays matching heatmaps of ``shape`` (N, H, W)."""
    if not isinstance(masks, Mapping) or not masks:
        raise ValueError("masks must be a non-empty dict region -> bool (H, W) or (N, H, W) mask "
                         "(region_masks gives one)")
    out = {}
    for name, mask in masks.items():
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise ValueError(f"masks[{name!r}] must be boolean, got dtype {mask.dtype}")
        if mask.shape not in (shape[1:], shape):
            raise ValueError(f"masks[{name!r}] has shape {mask.shape}; the heatmaps {shape} need "
                             f"{shape[1:]} (one geometry for all) or {shape} (one per image)")
        out[name] = mask
    return out


def region_ratios(heatmaps, masks, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per image and region: share of the heatmap's mass in the region / region's share of the area.

    ``ratio[k, r] = (sum of heatmap k over r / sum of heatmap k) / (pixels of
    r / pixels)``. A uniform heatmap gives 1 in every region; a heatmap whose
    mass lies only in region ``r`` gives ``1 / area share of r`` there and 0
    elsewhere. With masks that partition the image (as :func:`region_masks`
    gives), the ratios weighted by the area shares sum to 1.

    Parameters
    ----------
    heatmaps : array_like, shape (N, H, W) or (H, W)
        Non-negative heatmaps (faceexp's are scaled to [0, 1]).
    masks : dict region -> bool array, shape (H, W) or (N, H, W)
        From :func:`region_masks`: one geometry for every image (e.g. from
        the average landmarks of aligned crops) or one per image.
    frame : pandas.DataFrame, N rows, optional
        Per-image columns to carry along (``identity``, ``pose``,
        ``recogniser``, ``layer``...), e.g. for :func:`region_table`'s ``by``.

    Returns
    -------
    pandas.DataFrame
        ``frame``'s columns (and index; else a RangeIndex) plus one float
        column per region: the ratio; NaN for an image whose heatmap is all 0
        (no information: it has no mass to share) or a region of no pixels.
        ``attrs["regions"]``: the region columns; ``attrs["n_empty"]``: the
        number of all-zero heatmaps.
    """
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3 or maps.shape[0] == 0 or maps[0].size == 0:
        raise ValueError(f"heatmaps must be (N, H, W) with N >= 1, got shape {maps.shape}")
    if not np.isfinite(maps).all() or (maps < 0).any():
        raise ValueError("heatmaps must be finite and non-negative (faceexp heatmaps lie in [0, 1])")
    masks = _masks(masks, maps.shape)
    total = maps.sum(axis=(1, 2))
    n_pixels = maps.shape[1] * maps.shape[2]
    columns = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, mask in masks.items():
            if mask.ndim == 2:
                mass = maps[:, mask].sum(axis=1)
                area = np.full(len(maps), mask.sum() / n_pixels)
            else:
                mass = (maps * mask).sum(axis=(1, 2))
                area = mask.sum(axis=(1, 2)) / n_pixels
            ratio = (mass / total) / area
            ratio[(total == 0) | (area == 0)] = np.nan
            columns[name] = ratio
    if frame is None:
        out = pd.DataFrame(index=pd.RangeIndex(len(maps)))
    else:
        if not isinstance(frame, pd.DataFrame) or len(frame) != len(maps):
            raise ValueError(f"frame must be a DataFrame with one row per heatmap ({len(maps)})")
        clash = [name for name in masks if name in frame.columns]
        if clash:
            raise ValueError(f"frame already has columns named like regions {clash}; rename them")
        out = frame.copy()
    for name, values in columns.items():
        out[name] = values
    out.attrs = {"regions": list(masks), "n_empty": int((total == 0).sum())}
    return out


def _region_columns(ratios, regions) -> list:
    if not isinstance(ratios, pd.DataFrame):
        raise ValueError(f"ratios must be the DataFrame of region_ratios, got {type(ratios).__name__}")
    if regions is None:
        regions = ratios.attrs.get("regions") or [r for r in REGIONS if r in ratios.columns]
    regions = [regions] if isinstance(regions, str) else list(regions)
    missing = [r for r in regions if r not in ratios.columns]
    if missing or not regions:
        raise ValueError(f"regions {missing or regions} are not columns of ratios "
                         f"({list(ratios.columns)})")
    return regions


def _groups(ratios: pd.DataFrame, by) -> tuple[list, list]:
    """(by columns, [(key tuple, row positions)]) in order of first appearance."""
    if by is None:
        return [], [((), np.arange(len(ratios)))]
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in by if c not in ratios.columns]
    if missing:
        raise ValueError(f"by names columns {missing} that ratios lacks; pass frame= to region_ratios "
                         f"to carry them; ratios has {list(ratios.columns)}")
    grouped = ratios.reset_index(drop=True).groupby(by, sort=False, dropna=False).indices
    return by, [((key if isinstance(key, tuple) else (key,)), positions)
                for key, positions in grouped.items()]


def region_table(ratios: pd.DataFrame, *, by=None, regions=None, n_boot: int = 2000,
                 level: float = 0.95, seed=0) -> pd.DataFrame:
    """Mean region ratio per region (and group) with a bootstrap interval over images.

    Parameters
    ----------
    ratios : pandas.DataFrame
        From :func:`region_ratios`.
    by : str or list of str, optional
        Columns of ``ratios`` to group by (e.g. ``["recogniser", "layer"]``).
    regions : sequence of str, optional
        Region columns; default those of ``ratios``.
    n_boot, level, seed
        Percentile bootstrap over the images of each group (all regions of an
        image resampled together); an int seed seeds every group afresh.

    Returns
    -------
    pandas.DataFrame
        One row per (group and) region: the ``by`` columns, ``region``,
        ``ratio`` (mean over images), ``ci_low``, ``ci_high``, ``n`` (images),
        ``n_excluded`` (images with no ratio: all-zero heatmaps).
    """
    regions = _region_columns(ratios, regions)
    by, groups = _groups(ratios, by)
    values = ratios[regions].to_numpy(dtype=np.float64)
    rows, attrs = [], {}
    for key, positions in groups:
        block = values[positions]
        valid = ~np.isnan(block).any(axis=1)
        summary = mean_interval(np.where(valid[:, None], block, np.nan), n_boot=n_boot, level=level,
                                seed=seed)
        attrs = summary.attrs
        for r, name in enumerate(regions):
            rows.append({**dict(zip(by, key)), "region": name, "ratio": summary["mean"].iloc[r],
                         "ci_low": summary["ci_low"].iloc[r], "ci_high": summary["ci_high"].iloc[r],
                         "n": int(valid.sum()), "n_excluded": int((~valid).sum())})
    table = pd.DataFrame(rows)
    table.attrs = attrs
    return table


def region_contrast(ratios: pd.DataFrame, high, low) -> pd.Series:
    """Per image: mean ratio of the ``high`` regions minus mean ratio of the ``low`` regions.

    The quantity of the paper's region claims, e.g. ``high=("nose",
    "inter-eye"), low=("eyes", "mouth")`` for "the nose and inter-eye region
    receive the most attention, the eyes and mouth less" (> 0 when it holds).
    Its mean with an interval is :func:`faceexp.core.bootstrap.mean_interval`;
    two layers or recognisers of the same images compare with
    :func:`faceexp.core.bootstrap.paired_difference`.

    Parameters
    ----------
    ratios : pandas.DataFrame
        From :func:`region_ratios`.
    high, low : str or sequence of str
        Region columns; each side is the plain mean of its regions' ratios.

    Returns
    -------
    pandas.Series
        One value per row of ``ratios`` (same index), NaN where a ratio is NaN.
    """
    high = _region_columns(ratios, high)
    low = _region_columns(ratios, low)
    overlap = sorted(set(high) & set(low))
    if overlap:
        raise ValueError(f"high and low share the regions {overlap}; give disjoint sets")
    values = ratios[high].mean(axis=1, skipna=False) - ratios[low].mean(axis=1, skipna=False)
    values.name = f"{'+'.join(high)} - {'+'.join(low)}"
    return values
