"""What the comparison measures, and on which faces.

Metrics: rank correlation, random baseline maps, deletion and insertion curves of a
similarity, their normalised AUC and Student-t intervals. Faces: genuine pairs and their
alignment.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from faceexp.core import checks
from faceexp.evaluate.faithfulness import DEFAULT_STEPS, deletion_order, removal_steps, deletion_auc
from faceexp.explain.lime_steps import paint
from faceexp.evaluate.masking import IMAGE_FILLS, apply_fill, as_images, as_maps, fill_tensor
from faceexp.core.similarity import cosine_rows
from faceexp.evaluate.compare.model import one_layer


# --------------------------------------------------------------------------- metrics


def rank_correlation(a: Any, b: Any) -> float:
    """Spearman rank correlation of two maps over their pixels (average ranks for
    ties); NaN when either map is constant."""
    from scipy.stats import spearmanr

    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"maps must have one shape, got {a.size} and {b.size} pixels")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def baseline_map(heatmap: Any, kind: str, *, segments: Any = None, rng: Any = None
                 ) -> np.ndarray:
    """A random map of the same kind as ``heatmap``: what an explainer is compared with.

    ``"region"``: standard-normal coefficients painted on ``segments`` (no
    smoothing): whole superpixels in random order, the contiguity of a region
    map. ``"pixel"``: ``heatmap``'s own values in a random permutation over
    the pixels (shuffled attributions: same values, scattered).

    ``rng``: a seed or ``np.random.Generator``.
    """
    heatmap = np.asarray(heatmap, dtype=np.float64)
    rng = np.random.default_rng(rng)
    if kind == "pixel":
        return rng.permutation(heatmap.reshape(-1)).reshape(heatmap.shape)
    if kind != "region":
        raise ValueError(f"kind must be 'region' or 'pixel', got {kind!r}")
    if segments is None:
        raise ValueError("segments: a region baseline needs the face's superpixels")
    segments = as_maps(segments, heatmap.shape, "segments", integer=True)
    labels = np.unique(segments, return_inverse=True)[1].reshape(heatmap.shape)
    return paint(rng.standard_normal((1, int(labels.max()) + 1)), labels, sigma=0,
                 positive_only=False)[0]


CURVE_MODES = ("deletion", "insertion")


def similarity_curves(embed: Callable, images: Any, heatmaps: Any, references: dict, *,
                      mode: str = "deletion", steps: Any = DEFAULT_STEPS, fill: Any = "black",
                      batch_size: int = 32) -> pd.DataFrame:
    """Similarity to reference embeddings as pixels are deleted or inserted, most relevant first.

    Deletion: the first ``round(fraction * H * W)`` pixels of the heatmap's
    order (decreasing value, ties in raster order: the order of
    :func:`faceexp.evaluate.faithfulness.deletion_curves`) are set to ``fill``.
    Insertion: only those pixels are kept and every other is set to
    ``fill`` (the curve starts at the blank image). For self-similarity
    deletion this is :func:`faceexp.evaluate.faithfulness.deletion_curves`'s
    ``"most-relevant-first"`` curve (tested); the reference may also be another
    embedding (a genuine partner's), and one pass serves every reference.

    Parameters
    ----------
    embed : callable
        ``(N, 3, H, W)`` in [0, 1] -> ``(N, D)`` (called ``batch_size`` images at a time).
    images : array_like, shape (N, 3, H, W)
    heatmaps : array_like, shape (N, H, W)
    references : dict of str -> array_like (N, D)
        Named reference embeddings, one row per image (e.g. ``{"self": ...,
        "pair": ...}``).
    mode : {"deletion", "insertion"}
    steps : fractions in [0, 1] (or an int number of steps), as ``deletion_curves``
    fill : "black", "mean", a number or 3 numbers in [0, 1], "blur" or "inpaint"
        What the changed pixels take (:func:`faceexp.evaluate.masking.apply_fill`).
    batch_size : int

    Returns
    -------
    DataFrame
        Columns ``image``, ``mode``, ``fraction``, ``n_pixels`` (changed),
        ``reference``, ``similarity``; rows by image, reference, fraction.
    """
    if mode not in CURVE_MODES:
        raise ValueError(f"mode must be one of {CURVE_MODES}, got {mode!r}")
    if not callable(embed):
        raise ValueError("embed must be a callable mapping (N, 3, H, W) batches to embeddings")
    tensor = as_images(images)
    n, _, height, width = tensor.shape
    maps = as_maps(heatmaps, (n, height, width), "heatmaps")
    fractions = removal_steps(steps)
    if not isinstance(references, dict) or not references:
        raise ValueError("references must be a dict name -> (N, D) embeddings, e.g. "
                         "{'self': ..., 'pair': ...}")
    refs = {}
    for name, value in references.items():
        value = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value,
                           dtype=np.float64)
        if value.ndim != 2 or value.shape[0] != n:
            raise ValueError(f"references[{name!r}] must be ({n}, D), got {value.shape}")
        refs[name] = value
    batch_size = checks.positive_int(batch_size, "batch_size")
    if not (isinstance(fill, str) and fill in IMAGE_FILLS):
        fill_tensor(fill, tensor)   # a bad constant fill fails here, before any forward
    counts = np.floor(fractions * height * width + 0.5).astype(np.int64)
    jobs = [(k, s) for k in range(n) for s in range(len(fractions))]
    orders = [deletion_order(maps[k], None, "most-relevant-first", 0, k) for k in range(n)]
    embedded = np.empty((len(jobs), next(iter(refs.values())).shape[1]))
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        masks = np.zeros((len(chunk), height * width), dtype=bool)
        for row, (k, s) in enumerate(chunk):
            masks[row, orders[k][:counts[s]]] = True
        if mode == "insertion":
            masks = ~masks
        index = torch.tensor([k for k, _ in chunk])
        batch = apply_fill(tensor[index], masks.reshape(-1, height, width), fill)
        (value,) = one_layer(embed(batch), len(chunk), "embed")
        embedded[start:start + len(chunk)] = value.detach().cpu().double().numpy() \
            if isinstance(value, torch.Tensor) else np.asarray(value, dtype=np.float64)
    rows = []
    for name, ref in refs.items():
        sims = cosine_rows(embedded, ref[[k for k, _ in jobs]])
        rows += [{"image": k, "mode": mode, "fraction": float(fractions[s]),
                  "n_pixels": int(counts[s]), "reference": name, "similarity": float(sim)}
                 for (k, s), sim in zip(jobs, sims)]
    table = pd.DataFrame(rows)
    return table.sort_values(["image", "reference", "fraction"], kind="stable") \
        .reset_index(drop=True)


def curve_auc(curves: pd.DataFrame, by: Sequence[str] = ("mode", "reference")) -> pd.DataFrame:
    """Normalised area under each curve: the trapezoid area of
    :func:`faceexp.evaluate.faithfulness.deletion_auc` divided by the span of the fractions
    (the mean similarity along the curve, so curves to 50% and to 100% share one scale).

    Parameters
    ----------
    curves : DataFrame
        Columns ``image``, ``fraction``, ``similarity`` and the ``by`` columns;
        one curve per image and ``by`` value.
    by : sequence of str

    Returns
    -------
    DataFrame
        The ``by`` columns, ``image``, ``auc``.
    """
    by = list(by)
    missing = [c for c in by + ["image", "fraction", "similarity"] if c not in curves]
    if missing:
        raise ValueError(f"curves: missing column(s) {missing}")
    parts = []
    for key, group in (curves.groupby(by, sort=False) if by else [((), curves)]):
        areas = deletion_auc(group.assign(order="curve"))
        spans = group.groupby("image", sort=False)["fraction"].agg(np.ptp)
        areas["auc"] = areas["auc"] / areas["image"].map(spans).to_numpy()
        key = key if isinstance(key, tuple) else (key,)
        parts.append(areas.drop(columns="order").assign(**dict(zip(by, key))))
    return pd.concat(parts, ignore_index=True)[by + ["image", "auc"]]


def t_interval(values: Any, *, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval of the mean of the finite ``values``:
    ``(mean, low, high)``; the interval is NaN with fewer than two values and the
    mean NaN with none."""
    from scipy.stats import t

    values = np.asarray(values, dtype=np.float64).reshape(-1)
    values = values[np.isfinite(values)]
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if values.size < 2:
        return mean, float("nan"), float("nan")
    half = float(t.ppf((1 + confidence) / 2, values.size - 1) * values.std(ddof=1)
                 / math.sqrt(values.size))
    return mean, mean - half, mean + half


# --------------------------------------------------------------------------- faces


def genuine_pairs(frame: pd.DataFrame, n_pairs: int, *, seed: int = 0) -> pd.DataFrame:
    """``n_pairs`` genuine pairs, spread over as many identities as possible.

    Each identity's images (in frame order) make disjoint pairs: the 1st with
    the 2nd, the 3rd with the 4th, ...; the identities are put in a random
    order and pairs are taken round-robin: every identity's first pair, then
    every identity's second pair, and so on.

    Parameters
    ----------
    frame : DataFrame
        Columns ``path`` and ``identity`` (e.g. :func:`faceexp.load_orl`).
    n_pairs : int
    seed : int
        Seed of the identities' order (``np.random.default_rng(seed)``).

    Returns
    -------
    DataFrame
        Columns ``identity``, ``probe``, ``partner`` (paths).
    """
    for column in ("path", "identity"):
        if column not in frame:
            raise ValueError(f"frame needs a column {column!r}; it has {list(frame.columns)}")
    n_pairs = checks.positive_int(n_pairs, "n_pairs")
    paths = {identity: group["path"].astype(str).tolist()
             for identity, group in frame.groupby("identity", sort=False)}
    identities = list(paths)
    order = [identities[i] for i in np.random.default_rng(checks.seed(seed)).permutation(
        len(identities))]
    rounds = max((len(v) // 2 for v in paths.values()), default=0)
    rows = [{"identity": identity, "probe": paths[identity][2 * r],
             "partner": paths[identity][2 * r + 1]}
            for r in range(rounds) for identity in order if len(paths[identity]) >= 2 * r + 2]
    if len(rows) < n_pairs:
        raise ValueError(f"n_pairs: {n_pairs} requested but the frame holds only {len(rows)} "
                         "disjoint genuine pairs")
    return pd.DataFrame(rows[:n_pairs])


def align_pairs(recogniser: Any, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray,
                                                                pd.DataFrame]:
    """Both faces of each pair aligned by the recogniser (``rec.align_many``).

    Returns ``(faces, partners, kept)``: two (P, H, W, 3) float32 arrays and
    the pairs whose two faces were found (a pair with a missing face is dropped).
    """
    found = recogniser.align_many(pairs["probe"].tolist() + pairs["partner"].tolist(),
                                  errors="return")
    n = len(pairs)
    keep = [k for k in range(n) if not isinstance(found[k], Exception)
            and not isinstance(found[n + k], Exception)]
    if not keep:
        raise ValueError("no pair has both faces found by the recogniser's alignment")
    faces = np.stack([found[k] for k in keep]).astype(np.float32)
    partners = np.stack([found[n + k] for k in keep]).astype(np.float32)
    return faces, partners, pairs.iloc[keep].reset_index(drop=True)
