"""Pixel removal: masking by heatmap or at random, and the EER experiment (paper IV-E).

The paper validates its heatmaps by removing, from every image, the pixels
whose heatmap value exceeds a threshold (0.9, 0.8, ..., 0.1), setting them to
the normalisation mean of the input layer (:data:`faceexp.data.preprocessing.IMAGENET_MEAN`
in pixel space, 0 once the model normalises the image), and re-running the
verification protocol (:func:`removal_experiment`): if the heatmaps point at
what the network uses, the EER rises faster than when the same number of
pixels is removed at random.

Two random baselines are offered, because *how* random pixels are removed
matters as much as how many:

* ``"random-pixels"`` (the paper's): the same number of scattered single
  pixels. A CNN has never seen such salt-and-pepper images; on ImageNet
  MobileNetV2 with ORL faces, blanking a random 10 % of single pixels dropped
  the cosine similarity to the clean image to about 0.63, while one
  contiguous 10 % region dropped it only to about 0.8-0.9. Against this
  baseline almost any contiguous heatmap region looks "more important than
  random".
* ``"random-superpixels"``: whole superpixels of the image's own SLIC map
  (the explainer's segments), drawn at random until the removed area is as
  close as possible to the same number of pixels. Heatmap regions are
  contiguous too (painted superpixels, smoothed), so this is the fair
  baseline.

Per-image deletion curves built on the same masks are in
:mod:`faceexp.evaluate.faithfulness`.

Randomness: the random removals of image ``k`` come from
``np.random.default_rng([seed, k])`` (``k`` = the image's position in the
input), so they do not depend on batch sizes, and the same seed removes
nested sets as the count grows (a random permutation is cut at the count).
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from faceexp.core import checks
from faceexp.verify import protocol
from faceexp.data.preprocessing import IMAGENET_MEAN
from faceexp.core.batching import BatchedEmbed, resolve_batch_size
from faceexp.verify.metrics import eer_by_group, group_masks
from faceexp.evaluate.masking import (as_images, as_maps, fill_tensor, as_counts, check_choices, check_embed, random_masks, apply_masks, like_input, segments_or_slic)

__all__ = [
    "METHODS",
    "DEFAULT_THRESHOLDS",
    "NO_REMOVAL",
    "remove_significant",
    "remove_random_pixels",
    "remove_random_superpixels",
    "removed_fraction",
    "removal_experiment",
    "genuine_partners",
    "significant_vs_random",
]

#: Removal methods of :func:`removal_experiment`.
METHODS = ("significant", "random-pixels", "random-superpixels")
#: The paper's thresholds (Fig. 9, 10): 0.9, 0.8, ..., 0.1.
DEFAULT_THRESHOLDS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
#: ``threshold`` and ``method`` of the no-removal rows of :func:`removal_experiment`.
NO_REMOVAL = "none"


# --------------------------------------------------------------------------- validation


def _thresholds(thresholds: Any) -> list[float]:
    if isinstance(thresholds, numbers.Real):
        thresholds = [thresholds]
    values = [checks.finite_real(t, "thresholds") for t in thresholds]
    if not values:
        raise ValueError("thresholds must be at least one threshold, e.g. (0.9, 0.8, ..., 0.1)")
    if len(set(values)) != len(values):
        raise ValueError(f"thresholds: duplicate values in {values}")
    return values


def _match(match: Any) -> str:
    if match not in ("closest", "at-least"):
        raise ValueError(f"match must be 'closest' or 'at-least', got {match!r}")
    return match


# --------------------------------------------------------------------------- masks


# --------------------------------------------------------------------------- removal


def remove_significant(images: Any, heatmaps: Any, threshold: float, *,
                       fill: Any = IMAGENET_MEAN):
    """Remove from every image the pixels whose heatmap value exceeds a threshold.

    Paper IV-E: the removed pixels are set to the normalisation mean of the
    input layer (``IMAGENET_MEAN`` in pixel space), which is 0 after the model
    normalises the image.

    Parameters
    ----------
    images : torch.Tensor or ndarray, shape (N, 3, H, W)
        Float images in [0, 1].
    heatmaps : array_like, shape (N, H, W)
        One heatmap per image (the explainer's are in [0, 1]).
    threshold : float
        Pixels with ``heatmap > threshold`` (strictly) are removed.
    fill : 3 floats, one float, "mean" or "black"
        Pixel-space value of removed pixels; default ``IMAGENET_MEAN``.

    Returns
    -------
    images_out : same type as ``images`` (and device), shape (N, 3, H, W)
    removed_mask : ndarray of bool, shape (N, H, W)
        True where a pixel was removed.
    """
    tensor = as_images(images)
    n, _, height, width = tensor.shape
    maps = as_maps(heatmaps, (n, height, width), "heatmaps")
    threshold = checks.finite_real(threshold, "threshold")
    fill_t = fill_tensor(fill, tensor)
    mask = maps > threshold
    return like_input(apply_masks(tensor, mask, fill_t), images), mask


def remove_random_pixels(images: Any, counts: Any, *, seed: int, fill: Any = IMAGENET_MEAN):
    """Remove a seeded random set of single pixels from every image (the paper's baseline).

    Image ``k`` loses exactly ``counts[k]`` pixels, the first ``counts[k]`` of a
    random permutation of its pixels drawn from
    ``np.random.default_rng([seed, k])``: the same seed gives the same pixels,
    and a larger count removes a superset.

    Parameters
    ----------
    images : torch.Tensor or ndarray, shape (N, 3, H, W)
        Float images in [0, 1].
    counts : array_like of int, shape (N,)
        Pixels to remove from each image, 0 .. H*W (e.g. the number above a
        threshold: ``removed_mask.sum(axis=(1, 2))`` of :func:`remove_significant`).
    seed : int
        Non-negative seed.
    fill : 3 floats, one float, "mean" or "black"
        Pixel-space value of removed pixels; default ``IMAGENET_MEAN``.

    Returns
    -------
    images_out : same type as ``images``, shape (N, 3, H, W)
    removed_mask : ndarray of bool, shape (N, H, W)
    """
    return _remove_random("random-pixels", images, counts, seed=seed, fill=fill)


def remove_random_superpixels(images: Any, segments: Any, counts: Any, *, seed: int,
                              fill: Any = IMAGENET_MEAN, match: str = "closest"):
    """Remove whole random superpixels, about ``counts[k]`` pixels from image ``k``.

    The superpixels of image ``k`` are put in a random order (a permutation
    from ``np.random.default_rng([seed, k])``) and removed whole, in that
    order, until the removed area reaches ``counts[k]``. The last superpixel
    (the one that makes the area reach or pass the count) is handled by
    ``match``:

    * ``"closest"`` (default): it is kept out if that leaves the area closer to
      ``counts[k]`` than putting it in (strictly closer; on a tie it goes in),
      so the removed area is the prefix area nearest to the count, and the
      error is at most half that superpixel's area;
    * ``"at-least"``: it is always removed (area >= count).

    Removed sets are nested: with the same seed a larger count removes a
    superset. A count of 0 removes nothing.

    Parameters
    ----------
    images : torch.Tensor or ndarray, shape (N, 3, H, W)
        Float images in [0, 1].
    segments : array_like of int, shape (N, H, W) or (H, W)
        Superpixel labels of each image (e.g. ``Explanation.segments``; any
        integers); one (H, W) map is used for every image.
    counts : array_like of int, shape (N,)
        Target number of pixels per image, 0 .. H*W.
    seed : int
        Non-negative seed.
    fill : 3 floats, one float, "mean" or "black"
        Pixel-space value of removed pixels; default ``IMAGENET_MEAN``.
    match : {"closest", "at-least"}
        How the last superpixel is handled, see above.

    Returns
    -------
    images_out : same type as ``images``, shape (N, 3, H, W)
    removed_mask : ndarray of bool, shape (N, H, W)
    """
    return _remove_random("random-superpixels", images, counts, seed=seed, fill=fill,
                          segments=segments, match=match)


def _remove_random(method: str, images: Any, counts: Any, *, seed: Any, fill: Any,
                   segments: Any = None, match: Any = "closest"):
    """Validate, draw :func:`random_masks` for every image and apply them."""
    tensor = as_images(images)
    n, _, height, width = tensor.shape
    if method == "random-superpixels":
        segments = as_maps(segments, (n, height, width), "segments", integer=True)
    counts = as_counts(counts, n, height * width)
    seed = checks.seed(seed)
    match = _match(match)
    fill_t = fill_tensor(fill, tensor)
    mask = random_masks(method, counts, (height, width), seed, segments=segments, match=match)
    return like_input(apply_masks(tensor, mask, fill_t), images), mask


def removed_fraction(heatmaps: Any, thresholds: Any = DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """Fraction of each image's pixels above each threshold (paper Fig. 10).

    Parameters
    ----------
    heatmaps : array_like, shape (N, H, W)
    thresholds : float or sequence of float

    Returns
    -------
    DataFrame
        Columns ``image`` (0 .. N-1), ``threshold``, ``fraction`` (of the H*W
        pixels with ``heatmap > threshold``, in [0, 1]); N * len(thresholds)
        rows, thresholds in the given order, images within each.
    """
    if isinstance(heatmaps, torch.Tensor):
        heatmaps = heatmaps.detach().cpu().numpy()
    heatmaps = np.asarray(heatmaps)
    if heatmaps.ndim != 3 or heatmaps.shape[0] == 0:
        raise ValueError(f"heatmaps must be shape (N, H, W) with N >= 1, got "
                         f"{heatmaps.shape}")
    maps = as_maps(heatmaps, heatmaps.shape, "heatmaps")
    values = _thresholds(thresholds)
    n = maps.shape[0]
    rows = [pd.DataFrame({"image": np.arange(n), "threshold": t,
                          "fraction": (maps > t).mean(axis=(1, 2))}) for t in values]
    return pd.concat(rows, ignore_index=True)


# --------------------------------------------------------------------------- experiment


def _check_pairs(pairs: Any, n: int) -> pd.DataFrame:
    if not isinstance(pairs, pd.DataFrame):
        raise ValueError(f"pairs must be a DataFrame with columns i, j, label (from "
                         f"faceexp.verify.protocol.verification_pairs), got {type(pairs).__name__}")
    missing = [c for c in ("i", "j", "label") if c not in pairs.columns]
    if missing:
        raise ValueError(f"pairs: missing column(s) {missing}; expected i, j, label "
                         "(and pose_pair for the per-pose breakdown)")
    if pairs.empty:
        raise ValueError("pairs: no pairs to score")
    index = pairs[["i", "j"]].to_numpy()
    if not np.issubdtype(index.dtype, np.integer) or index.min() < 0 or index.max() >= n:
        raise ValueError(f"pairs: columns i and j must be integer image indices in [0, {n})")
    labels = pairs["label"].to_numpy()
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("pairs: label must be 1 (genuine) or 0 (impostor)")
    return pairs


def _pair_scores(embeddings: np.ndarray, pairs: pd.DataFrame) -> np.ndarray:
    return np.asarray(protocol.cosine_scores(embeddings, pairs), dtype=np.float64)


def _eer_rows(scores: np.ndarray, pairs: pd.DataFrame, fractions: np.ndarray,
              threshold: Any, method: str, n_boot: int, seed: int) -> list[dict]:
    """One row per pose pair (:func:`faceexp.verify.metrics.eer_by_group`) with the mean
    removed fraction of the images its pairs use, and the identity-bootstrap
    interval of :func:`faceexp.verify.intervals.eer_interval` where the pairs name
    their identities and ``n_boot`` > 0."""
    from faceexp.verify.intervals import eer_interval

    groups = pairs["pose_pair"].to_numpy() if "pose_pair" in pairs.columns else None
    table = eer_by_group(scores, pairs["label"].to_numpy(), groups)
    masks = group_masks(groups, len(pairs))
    intervals = {}
    if n_boot and {"identity_i", "identity_j"} <= set(pairs.columns):
        ci = eer_interval(scores, pairs, by=None if groups is None else "pose_pair",
                                      n_boot=n_boot, seed=seed)
        intervals = {r.group: (r.ci_low, r.ci_high) for r in ci.itertuples()}
    rows = []
    for row in table.itertuples():
        used = np.unique(pairs.loc[masks[row.group], ["i", "j"]].to_numpy())
        low, high = intervals.get(row.group, (np.nan, np.nan))
        rows.append({"threshold": threshold, "method": method, "pose_pair": row.group,
                     "eer": row.eer, "ci_low": low, "ci_high": high,
                     "n_genuine": row.n_genuine, "n_impostor": row.n_impostor,
                     "removed_fraction": float(fractions[used].mean())})
    return rows


def genuine_partners(pairs: pd.DataFrame, n: int) -> list[np.ndarray]:
    """For every image 0 .. n-1, the images it forms a genuine pair with.

    Taken from the ``"overall"`` pairs when ``pairs`` has a ``pose_pair`` column (the
    protocol over all images), else from every genuine pair; both orders count.
    """
    genuine = pairs[pairs["label"] == 1]
    if "pose_pair" in genuine.columns and (genuine["pose_pair"] == "overall").any():
        genuine = genuine[genuine["pose_pair"] == "overall"]
    i, j = genuine["i"].to_numpy(), genuine["j"].to_numpy()
    first, second = np.concatenate([i, j]), np.concatenate([j, i])
    keep = first != second
    first, second = first[keep], second[keep]
    return [np.unique(second[first == k]) for k in range(n)]


def _partner_similarity(removed: np.ndarray, clean: np.ndarray, partners: list) -> np.ndarray:
    """Mean cosine of each removed image's descriptor to its partners' clean ones (NaN
    for an image without a genuine partner)."""
    from faceexp.core.similarity import cosine_rows

    return np.array([float(cosine_rows(np.repeat(removed[k:k + 1], len(p), axis=0),
                                       clean[p]).mean()) if len(p) else np.nan
                     for k, p in enumerate(partners)])


def removal_experiment(embed: Callable, images: Any, heatmaps: Any, frame: Any = None,
                       pairs: Any = None, *, thresholds: Any = DEFAULT_THRESHOLDS,
                       methods: Sequence[str] = METHODS, segments: Any = None,
                       n_segments: int = 75, seed: int = 0, fill: Any = IMAGENET_MEAN,
                       match: str = "closest", flip_average: bool = True,
                       batch_size: int | None = None,
                       layer: str = "gap", n_boot: int = 1000, similarities: bool = False,
                       progress: bool = True):
    """EER after removing each image's most significant pixels, and random baselines.

    Paper IV-E (Fig. 9): for each threshold and method, pixels are removed
    from *every* image, every image is embedded again (descriptor = mean of
    the image's and its mirror's embedding, as the protocol), the pairs are
    scored by cosine similarity and the EER is computed over all pairs and per
    pose pair.

    Methods:

    * ``"significant"``: the pixels with ``heatmap > threshold``;
    * ``"random-pixels"``: as many single pixels, at random (the paper's
      baseline, :func:`remove_random_pixels`);
    * ``"random-superpixels"``: whole random superpixels covering about as many
      pixels (:func:`remove_random_superpixels`, ``match`` rule).

    The random removals of an image are nested across thresholds (one seeded
    permutation per image, cut at each count).

    Parameters
    ----------
    embed : callable
        ``embed(batch (B, 3, H, W) float32 in [0, 1]) -> dict layer -> (B, D)``
        (e.g. :class:`faceexp.models.Embedder`) or an (B, D) tensor/array.
        Always called with exactly ``batch_size`` images (the last batch is
        padded by repeating its last image), so a compiled model never
        recompiles; with ``flip_average`` twice per batch (the images, then
        their mirrors), not once with ``2 * batch_size``, so the graph the
        explainer compiled for ``batch_size`` is reused.
    images : torch.Tensor or ndarray, shape (N, 3, H, W)
        Float images in [0, 1]; batches are built on their device.
    heatmaps : array_like, shape (N, H, W)
        Each image's heatmap (e.g. ``Explanation.heatmap("gap")``).
    frame : DataFrame, optional
        One row per image (in the order of ``images``, columns ``identity`` and
        optionally ``pose``); when ``pairs`` is None the pairs are built from it
        with :func:`faceexp.verify.protocol.verification_pairs_by_pose` (frames with a
        ``pose`` column) or :func:`faceexp.verify.protocol.verification_pairs`.
    pairs : DataFrame, optional
        Columns ``i``, ``j`` (image positions), ``label`` (1 genuine, 0
        impostor) and optionally ``pose_pair``. One EER is computed per
        ``pose_pair`` value, as given (pairs of
        :func:`~faceexp.verify.protocol.verification_pairs_by_pose` carry the six
        pose pairs and ``"overall"``, the protocol over all images); without
        that column all pairs form one ``"overall"`` group.
    thresholds : sequence of float
        Default 0.9, 0.8, ..., 0.1 (paper).
    methods : sequence of str
        Subset of ``METHODS``.
    segments : array_like of int, shape (N, H, W) or (H, W), optional
        Superpixels for ``"random-superpixels"`` (the explanations' segments);
        None: SLIC with ``n_segments`` (the explainer's default options).
    n_segments : int
        SLIC superpixels when ``segments`` is None.
    seed : int
        Seed of the random removals.
    fill : 3 floats, one float, "mean" or "black"
        Pixel-space value of removed pixels; default ``IMAGENET_MEAN``.
    match : {"closest", "at-least"}
        Area rule of ``"random-superpixels"``.
    flip_average : bool
        Average each descriptor with its mirror image's (paper, default True).
    batch_size : int, optional
        Images per ``embed`` call.
        None: the explainer's choice (:func:`faceexp.explain.explainer.resolve_batch_size`).
    layer : str
        Layer of a dict-returning ``embed`` used as descriptor (ignored when
        ``embed`` returns one array).
    n_boot : int, default 1000
        Resamples of the identity bootstrap of every EER's 95% interval
        (:func:`faceexp.verify.intervals.eer_interval`; needs ``identity_i`` and
        ``identity_j`` columns in the pairs, as the protocol's pairs have; the
        resampling is seeded by ``seed``). 0: no intervals (NaN).
    similarities : bool, default False
        Also return, per image, threshold and method, the mean cosine
        similarity of the image's descriptor after removal to the *clean*
        descriptors of its genuine partners (:func:`genuine_partners`): the
        per-image quantity a paired comparison of significant against random
        removal needs (:func:`faceexp.core.bootstrap.paired_difference`).
    progress : bool
        Show a progress bar over the images.

    Returns
    -------
    DataFrame, or (DataFrame, DataFrame) with ``similarities``
        One row per (threshold, method, pose_pair): columns ``threshold``
        (float, or ``"none"`` for the no-removal rows), ``method``
        (``METHODS`` or ``"none"``), ``pose_pair`` (each value of
        ``pairs.pose_pair`` in order of appearance, or ``"overall"``), ``eer``
        (a fraction, as :func:`faceexp.verify.metrics.equal_error_rate` with bob's
        rule; NaN if a group lacks genuine or impostor pairs), ``ci_low``,
        ``ci_high`` (its 95% identity-bootstrap interval), ``n_genuine``,
        ``n_impostor``, ``removed_fraction`` (mean fraction of pixels removed
        over the images in that group's pairs). The no-removal rows come
        first, then thresholds in the given order, methods within.
        The second table: ``image`` (position), ``threshold``, ``method``,
        ``similarity`` (NaN for an image without a genuine partner).
    """
    from tqdm import tqdm

    check_embed(embed)
    tensor = as_images(images)
    n, _, height, width = tensor.shape
    maps = as_maps(heatmaps, (n, height, width), "heatmaps")
    if frame is not None:
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"frame must be a DataFrame with one row per image, got "
                             f"{type(frame).__name__}")
        if len(frame) != n:
            raise ValueError(f"frame: has {len(frame)} rows but there are {n} images; it must "
                             "describe the images in order")
    if pairs is None:
        if frame is None:
            raise ValueError("pairs: give the pairs (faceexp.verify.protocol.verification_pairs) or "
                             "the frame to build them from")
        pairs = (protocol.verification_pairs_by_pose(frame) if "pose" in frame.columns
                 else protocol.verification_pairs(frame))
    pairs = _check_pairs(pairs, n)
    values = _thresholds(thresholds)
    methods = check_choices(methods, METHODS, "methods")
    seed = checks.seed(seed)
    match = _match(match)
    batch_size = resolve_batch_size(embed, batch_size)
    fill_t = fill_tensor(fill, tensor)
    if "random-superpixels" in methods:
        segments = segments_or_slic(segments, tensor, n_segments)

    jobs = [(NO_REMOVAL, NO_REMOVAL)] + [(t, m) for t in values for m in methods]
    # Images of consecutive jobs share batches: with n not a multiple of batch_size
    # only the very last batch is padded (not the last one of every job).
    stream = BatchedEmbed(embed, batch_size=batch_size, flip_average=flip_average,
                          layers=[layer], finite=True).stream()
    bar = tqdm(total=len(jobs) * n, disable=not progress, desc="removal", unit="img")
    n_boot = 0 if n_boot == 0 else checks.positive_int(n_boot, "n_boot")
    partners = genuine_partners(pairs, n) if similarities else None
    rows, similarity_rows = [], []
    done = 0                                  # jobs whose EERs are computed
    fractions = {}
    clean = None

    def score_ready():
        nonlocal done, rows, clean
        while done < len(jobs) and stream.ready >= n:
            descriptors = stream.pop(n)[layer].to("cpu", torch.float64).numpy()
            scores = _pair_scores(descriptors, pairs)
            threshold, method = jobs[done]
            rows += _eer_rows(scores, pairs, fractions.pop(done), threshold, method, n_boot, seed)
            if partners is not None:
                if clean is None:                 # job 0 removes nothing
                    clean = descriptors
                similarity_rows.append(pd.DataFrame({
                    "image": np.arange(n), "threshold": [threshold] * n, "method": method,
                    "similarity": _partner_similarity(descriptors, clean, partners)}))
            done += 1

    try:
        for j, (threshold, method) in enumerate(jobs):
            fractions[j] = np.empty(n)
            for start in range(0, n, batch_size):
                stop = min(n, start + batch_size)
                batch = tensor[start:stop]
                if method == NO_REMOVAL:
                    mask = np.zeros((stop - start, height, width), dtype=bool)
                else:
                    mask = maps[start:stop] > threshold
                    if method != "significant":
                        mask = random_masks(method, mask.sum(axis=(1, 2)), (height, width),
                                             seed, start=start, segments=segments, match=match)
                    batch = apply_masks(batch, mask, fill_t)
                fractions[j][start:stop] = mask.mean(axis=(1, 2))
                stream.add(batch)
                bar.update(stop - start)
                score_ready()
        stream.finish()
        score_ready()
    finally:
        bar.close()
    result = pd.DataFrame(rows, columns=["threshold", "method", "pose_pair", "eer", "ci_low",
                                         "ci_high", "n_genuine", "n_impostor",
                                         "removed_fraction"])
    if partners is None:
        return result
    return result, pd.concat(similarity_rows, ignore_index=True)


def significant_vs_random(similarities: pd.DataFrame, *, baselines: Sequence[str] = (
        "random-superpixels", "random-pixels"), n_boot: int = 2000, seed=0) -> pd.DataFrame:
    """Paired comparison, at each threshold, of significant against random removal.

    Per image, the genuine-pair similarity after removing as many random pixels
    (the mean over the baseline's seeds) minus after removing the pixels above
    the threshold: > 0 when the heatmap's pixels matter more to the pair than
    random ones. The mean difference over images and its bootstrap interval are
    :func:`faceexp.core.bootstrap.paired_difference`'s (images resampled, paired).

    Parameters
    ----------
    similarities : DataFrame
        The second table of :func:`removal_experiment` (``similarities=True``):
        columns ``image``, ``threshold``, ``method``, ``similarity``, and
        optionally ``seed`` (several random seeds stacked). Images without a
        genuine partner (NaN) are left out.
    baselines : sequence of str
        Random methods to compare with (those present are used).
    n_boot, seed
        As :func:`faceexp.core.bootstrap.paired_difference`.

    Returns
    -------
    DataFrame
        One row per (baseline, threshold): ``baseline``, ``threshold``,
        ``significant`` and ``random`` (mean similarities), ``difference``
        (random - significant), ``ci_low``, ``ci_high``, ``fraction_greater``
        (images where significant removal lowered the similarity more), ``n``
        (images), ``seeds`` (random seeds averaged).
    """
    from faceexp.core.bootstrap import paired_difference

    needed = {"image", "threshold", "method", "similarity"}
    if not isinstance(similarities, pd.DataFrame) or not needed <= set(similarities.columns):
        raise ValueError(f"similarities must be removal_experiment's per-image table with "
                         f"columns {sorted(needed)}")
    table = similarities[similarities["method"] != NO_REMOVAL]
    if "seed" not in table.columns:
        table = table.assign(seed=0)
    significant = table[table["method"] == "significant"]
    rows = []
    for baseline in baselines:
        random = table[table["method"] == baseline]
        if random.empty or significant.empty:
            continue
        random_mean = random.groupby(["threshold", "image"])["similarity"].mean()
        seeds = int(random["seed"].nunique())
        for threshold, sig in significant.groupby("threshold", sort=False):
            sig = sig.groupby("image")["similarity"].mean()
            if threshold not in random_mean.index.get_level_values(0):
                continue
            both = pd.concat([sig.rename("sig"), random_mean.loc[threshold].rename("rnd")],
                             axis=1).dropna()
            row = {"baseline": baseline, "threshold": threshold, "significant": np.nan,
                   "random": np.nan, "difference": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                   "fraction_greater": np.nan, "n": len(both), "seeds": seeds}
            if len(both):
                diff = paired_difference(both["rnd"].to_numpy(), both["sig"].to_numpy(),
                                                     n_boot=n_boot, seed=seed).iloc[0]
                row.update(significant=diff["mean_b"], random=diff["mean_a"],
                           difference=diff["difference"], ci_low=diff["ci_low"],
                           ci_high=diff["ci_high"], fraction_greater=diff["fraction_greater"])
            rows.append(row)
    return pd.DataFrame(rows, columns=["baseline", "threshold", "significant", "random",
                                       "difference", "ci_low", "ci_high", "fraction_greater",
                                       "n", "seeds"])
