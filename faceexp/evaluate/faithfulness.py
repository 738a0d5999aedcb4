"""Faithfulness of heatmaps: deletion and insertion curves, their areas and the MoRF-LeRF gap.

:func:`deletion_curves` measures, per image, the standard deletion ("pixel
flipping") curve: the cosine similarity of the degraded image's embedding to
the clean image's (or to a reference embedding, e.g. a genuine partner's:
``references``) as a growing fraction of pixels is removed (set to the
fill of :mod:`faceexp.evaluate.removal`) most-relevant-first (MoRF),
least-relevant-first (LeRF) or in random superpixel order; with
``mode="insertion"`` the image starts fully removed and its pixels come back
in that order.
:func:`deletion_auc` integrates the curves (trapezoid rule) and
:func:`faithfulness_gap` gives AUC(LeRF) - AUC(MoRF) (or AUC(random) -
AUC(MoRF)): the larger, the more faithful the heatmap.

Randomness: the random superpixel order of image ``k`` is the permutation of
:func:`faceexp.evaluate.removal.remove_random_superpixels`, from
``np.random.default_rng([seed, k])``.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.integrate import trapezoid

from faceexp.core import checks
from faceexp.data.preprocessing import IMAGENET_MEAN
from faceexp.core.batching import BatchedEmbed, resolve_batch_size
from faceexp.core.similarity import cosine_rows
from faceexp.evaluate.masking import apply_masks, as_images, as_maps, check_embed, check_choices, fill_tensor, label_index, segments_or_slic, superpixel_permutation

__all__ = [
    "ORDERS",
    "DEFAULT_STEPS",
    "INSERTION_STEPS",
    "MODES",
    "deletion_curves",
    "deletion_auc",
    "faithfulness_gap",
]

#: Deletion orders of :func:`deletion_curves`.
ORDERS = ("most-relevant-first", "least-relevant-first", "random-superpixels")
#: Default deletion fractions: 0, 0.05, ..., 0.5 of the pixels.
DEFAULT_STEPS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
#: Default insertion fractions: 0, 0.1, ..., 1 of the pixels restored.
INSERTION_STEPS = tuple(round(0.1 * k, 1) for k in range(11))
#: Modes of :func:`deletion_curves`.
MODES = ("deletion", "insertion")
#: Columns of a curves table that :func:`deletion_auc` keeps apart besides image and order.
CURVE_KEYS = ("mode", "reference")


# --------------------------------------------------------------------------- validation


def removal_steps(steps: Any) -> np.ndarray:
    if isinstance(steps, numbers.Integral) and not isinstance(steps, bool):
        n = checks.positive_int(steps, "steps", 1)
        return np.linspace(0.0, 1.0, n + 1)
    try:
        values = np.asarray([float(s) for s in steps], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"steps must be fractions in [0, 1] or an int number of steps, got "
                         f"{steps!r}") from None
    if values.size < 2 or not np.isfinite(values).all() or values.min() < 0 or \
            values.max() > 1 or (np.diff(values) <= 0).any():
        raise ValueError(f"steps must be at least two strictly increasing fractions in "
                         f"[0, 1] (e.g. 0, 0.05, ..., 0.5), got {steps!r}")
    return values


# --------------------------------------------------------------------------- deletion


def deletion_order(heatmap: np.ndarray, segments: np.ndarray | None, order: str, seed: int,
                    index: int) -> np.ndarray:
    """Flat pixel indices in removal order.

    Heatmap ties are broken by raster position (row-major, earliest first) in
    both directions. ``"random-superpixels"``: superpixels in a random order
    from ``default_rng([seed, index])`` (the same permutation as
    :func:`faceexp.evaluate.removal.remove_random_superpixels`), each superpixel's
    pixels in raster order.
    """
    flat = heatmap.reshape(-1)
    if order == "most-relevant-first":
        return np.argsort(-flat, kind="stable")
    if order == "least-relevant-first":
        return np.argsort(flat, kind="stable")
    areas, inverse = label_index(segments)
    rank = np.empty(areas.size, dtype=np.int64)
    rank[superpixel_permutation(areas.size, seed, index)] = np.arange(areas.size)
    return np.argsort(rank[inverse], kind="stable")


def deletion_curves(embed: Callable, images: Any, heatmaps: Any, *, steps: Any = None,
                    orders: Sequence[str] = ORDERS, segments: Any = None, n_segments: int = 75,
                    seed: int = 0, fill: Any = IMAGENET_MEAN, batch_size: int | None = None,
                    layer: str = "gap", flip_average: bool = False, references: Any = None,
                    mode: str = "deletion", progress: bool = True) -> pd.DataFrame:
    """Similarity to the clean image (or a reference) as pixels are removed, or restored,
    in heatmap order.

    Deletion (``mode="deletion"``): for each image and order, the first
    ``floor(fraction * H * W + 0.5)`` pixels of the order are set to ``fill``
    and the cosine similarity between the degraded image's embedding and the
    unmodified image's (or ``references[k]``) is recorded. Insertion
    (``mode="insertion"``): every pixel is set to ``fill`` except the first
    ``floor(fraction * H * W + 0.5)`` of the order, so fraction 0 is the fully
    removed image and fraction 1 the clean one; a faithful map makes the
    similarity rise fast most-relevant-first.

    Orders:

    * ``"most-relevant-first"`` (MoRF): decreasing heatmap value;
    * ``"least-relevant-first"`` (LeRF): increasing heatmap value;
    * ``"random-superpixels"``: whole superpixels in random order (a baseline
      with the same contiguity as heatmap regions); the superpixel that a
      step's pixel count ends in is removed partly, in raster order, so every
      order removes exactly the same number of pixels at each step.

    Heatmap ties are broken by raster position (row-major, earliest first) in
    both MoRF and LeRF, so the result is deterministic.

    Parameters
    ----------
    embed : callable
        As in :func:`faceexp.evaluate.removal.removal_experiment` (always called with
        ``batch_size`` images).
    images : torch.Tensor or ndarray, shape (N, 3, H, W)
        Float images in [0, 1].
    heatmaps : array_like, shape (N, H, W)
    steps : sequence of float or int, optional
        Strictly increasing fractions of the pixels in [0, 1], or an int ``n``
        for the ``n + 1`` fractions 0, 1/n, ..., 1. None: ``DEFAULT_STEPS``
        (0, 0.05, ..., 0.5) for deletion, ``INSERTION_STEPS`` (0, 0.1, ..., 1)
        for insertion.
    orders : sequence of str
        Subset of ``ORDERS``.
    segments : array_like of int, shape (N, H, W) or (H, W), optional
        Superpixels for ``"random-superpixels"``; None: SLIC with
        ``n_segments`` (the explainer's default options).
    n_segments : int
        SLIC superpixels when ``segments`` is None.
    seed : int
        Seed of the random superpixel order (image ``k`` uses
        ``default_rng([seed, k])``).
    fill : 3 floats, one float, "mean" or "black"
        Pixel-space value of removed pixels; default ``IMAGENET_MEAN``.
    batch_size : int, optional
        Images per ``embed`` call (the last batch is padded).
        None: the explainer's choice (:func:`faceexp.explain.explainer.resolve_batch_size`).
    layer : str
        Layer of a dict-returning ``embed``.
    flip_average : bool
        Use the mean of the image's and its mirror's embedding (default False:
        the explainer compares plain embeddings).
    references : array_like, shape (N, D) or (N, 3, H, W), optional
        The embedding each image's curve is scored against (row ``k`` for
        image ``k``; e.g. a clean genuine partner's embedding of the same
        layer, so the curve measures the *pair's* similarity, which the
        explainer was not fitted to), or images (in [0, 1]) embedded here
        the same way. None: the clean image's own embedding.
    mode : {"deletion", "insertion"}
    progress : bool
        Show a progress bar over the batches.

    Returns
    -------
    DataFrame
        Columns ``image`` (0 .. N-1), ``order``, ``fraction`` (as requested),
        ``n_removed`` (pixels set to ``fill``), ``similarity`` (cosine; 0 if a
        vector is zero; the clean image's where nothing is removed). Rows by
        image, then order, then fraction.
    """
    from tqdm import tqdm

    check_embed(embed)
    tensor = as_images(images)
    n, _, height, width = tensor.shape
    n_pixels = height * width
    maps = as_maps(heatmaps, (n, height, width), "heatmaps")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    insertion = mode == "insertion"
    fractions = removal_steps((INSERTION_STEPS if insertion else DEFAULT_STEPS) if steps is None
                       else steps)
    orders = check_choices(orders, ORDERS, "orders")
    seed = checks.seed(seed)
    batch_size = resolve_batch_size(embed, batch_size)
    fill_t = fill_tensor(fill, tensor)
    if "random-superpixels" in orders:
        segments = segments_or_slic(segments, tensor, n_segments)
    counts = np.floor(fractions * n_pixels + 0.5).astype(np.int64)
    removed = n_pixels - counts if insertion else counts

    jobs = [(k, order, step) for k in range(n) for order in orders
            for step in range(len(fractions)) if removed[step] > 0]
    n_batches = -(-n // batch_size) + -(-len(jobs) // batch_size)
    bar = tqdm(total=n_batches, disable=not progress, desc="deletion", unit="batch")
    try:
        runner = BatchedEmbed(embed, batch_size=batch_size, flip_average=flip_average,
                              layers=[layer], finite=True)

        def embedded(batch):
            return runner.run(batch)[layer].to("cpu", torch.float64).numpy()

        clean = []
        for start in range(0, n, batch_size):
            clean.append(embedded(tensor[start:start + batch_size]))
            bar.update(1)
        clean = np.concatenate(clean)
        if references is None:
            references = clean
        elif getattr(references, "ndim", 0) == 4:          # images: embed them likewise
            given = as_images(references, "references")
            if given.shape != tensor.shape:
                raise ValueError(f"references: one image per image, shape "
                                 f"{tuple(tensor.shape)}, got {tuple(given.shape)}")
            references = np.concatenate([embedded(given[start:start + batch_size])
                                         for start in range(0, n, batch_size)])
        else:
            references = np.asarray(references, dtype=np.float64)
            if references.ndim != 2 or references.shape != clean.shape:
                raise ValueError(f"references must be one embedding per image, shape "
                                 f"{clean.shape} (layer {layer!r}), got {references.shape}")
        similarity = {}
        cached: tuple = (None, None, None)
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start:start + batch_size]
            masks = np.zeros((len(chunk), n_pixels), dtype=bool)
            for row, (k, order, step) in enumerate(chunk):
                if cached[:2] != (k, order):
                    cached = (k, order, deletion_order(
                        maps[k], None if segments is None else segments[k], order, seed, k))
                if insertion:
                    masks[row] = True
                    masks[row, cached[2][:counts[step]]] = False
                else:
                    masks[row, cached[2][:counts[step]]] = True
            index = torch.tensor([k for k, _, _ in chunk], device=tensor.device)
            batch = apply_masks(tensor[index], masks.reshape(-1, height, width), fill_t)
            sims = cosine_rows(embedded(batch), references[[k for k, _, _ in chunk]])
            for (k, order, step), value in zip(chunk, sims):
                similarity[k, order, step] = float(value)
            bar.update(1)
    finally:
        bar.close()
    clean_similarity = cosine_rows(clean, references)
    rows = [{"image": k, "order": order, "fraction": float(fractions[step]),
             "n_removed": int(removed[step]),
             "similarity": similarity.get((k, order, step), float(clean_similarity[k]))}
            for k in range(n) for order in orders for step in range(len(fractions))]
    return pd.DataFrame(rows, columns=["image", "order", "fraction", "n_removed", "similarity"])


def deletion_auc(curves: pd.DataFrame) -> pd.DataFrame:
    """Area under each deletion curve (trapezoid rule over the fraction axis).

    The area is not rescaled: a curve at similarity 1 from fraction 0 to 0.5
    has area 0.5. Lower MoRF area = faster fall = more faithful heatmap.

    Parameters
    ----------
    curves : DataFrame
        Columns ``image``, ``order``, ``fraction``, ``similarity`` (from
        :func:`deletion_curves`); one curve per (image, order).

    Returns
    -------
    DataFrame
        Columns ``image``, ``order``, ``auc``, one row per curve (in order of
        first appearance); curves that also carry ``mode`` and/or ``reference``
        columns (deletion and insertion, self- and pair-similarity curves in one
        table) keep them, one curve per value.
    """
    _check_curves(curves)
    extra = [c for c in CURVE_KEYS if c in curves.columns]
    rows = []
    for key, curve in curves.groupby(extra + ["image", "order"], sort=False):
        labels = dict(zip(extra, key[:len(extra)]))
        image, order = key[len(extra):]
        curve = curve.sort_values("fraction")
        x = curve["fraction"].to_numpy(dtype=np.float64)
        if np.unique(x).size != x.size:
            raise ValueError(f"curves: image {image!r}, order {order!r} has repeated "
                             "fractions; give one curve per (image, order)")
        if x.size < 2:
            raise ValueError(f"curves: image {image!r}, order {order!r} has {x.size} point; "
                             "at least 2 are needed for an area")
        rows.append({**labels, "image": image, "order": order,
                     "auc": float(trapezoid(curve["similarity"].to_numpy(dtype=np.float64),
                                            x))})
    return pd.DataFrame(rows, columns=extra + ["image", "order", "auc"])


def _check_curves(curves: Any) -> None:
    if not isinstance(curves, pd.DataFrame):
        raise ValueError(f"curves must be the DataFrame of deletion_curves, got "
                         f"{type(curves).__name__}")
    missing = [c for c in ("image", "order", "fraction", "similarity") if c not in curves]
    if missing:
        raise ValueError(f"curves: missing column(s) {missing}; expected image, order, "
                         "fraction, similarity (from deletion_curves)")
    if curves.empty:
        raise ValueError("curves: no rows")


def faithfulness_gap(aucs: pd.DataFrame, *,
                     baseline: str = "least-relevant-first") -> pd.DataFrame:
    """Per-image faithfulness: AUC(baseline) - AUC(most-relevant-first).

    Parameters
    ----------
    aucs : DataFrame
        Columns ``image``, ``order``, ``auc`` (from :func:`deletion_auc`), with
        the ``"most-relevant-first"`` and ``baseline`` orders for every image.
    baseline : {"least-relevant-first", "random-superpixels"}
        The order MoRF is compared with.

    Returns
    -------
    DataFrame
        Columns ``image``, ``gap`` (higher = removing the heatmap's top pixels
        hurts the embedding more than the baseline order = more faithful).
    """
    if baseline not in ORDERS[1:]:
        raise ValueError(f"baseline must be one of {ORDERS[1:]}, got {baseline!r}")
    if not isinstance(aucs, pd.DataFrame) or not {"image", "order", "auc"} <= set(aucs):
        raise ValueError("aucs must be the DataFrame of deletion_auc (image, order, auc)")
    table = aucs.pivot_table(index="image", columns="order", values="auc", sort=False)
    missing = [o for o in ("most-relevant-first", baseline)
               if o not in table or table[o].isna().any()]
    if missing:
        raise ValueError(f"aucs: order(s) {missing} missing for some images; run "
                         f"deletion_curves with orders including them")
    gap = table[baseline] - table["most-relevant-first"]
    return pd.DataFrame({"image": table.index.to_numpy(), "gap": gap.to_numpy()})
