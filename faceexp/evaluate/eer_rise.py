"""Claim (e) as the paper states it: the relative EER rise when about 2% of the pixels,
those above a heatmap threshold, are removed, against removing as many random pixels.

The paper (IV-E): "at a threshold of 0.8, where only 1.6-1.8% of pixels are removed on
average, the overall EER increases [from 3.75/3.84%] to 5.61/5.17% ... an EER increase
of about 35-50%". :func:`threshold_for_fraction` picks the threshold that removes about
``target`` of the pixels on average; :func:`eer_rise` removes them from every image,
re-embeds, and compares the EER with the clean one, beside as many pixels removed at
random (:mod:`faceexp.evaluate.removal`'s masks and fill), with identity-bootstrap
intervals in which every EER is recomputed on the same resampled people.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import torch

from faceexp.core.batching import BatchedEmbed
from faceexp.data.preprocessing import IMAGENET_MEAN
from faceexp.evaluate.removal import (remove_random_pixels, remove_random_superpixels,
                                      remove_significant)
from faceexp.verify import protocol
from faceexp.verify.intervals import bootstrap_eer
from faceexp.verify.metrics import check_labels, group_eer

__all__ = ["TARGET_FRACTION", "THRESHOLD_GRID", "threshold_for_fraction", "eer_rise"]

#: Share of the pixels the paper's threshold 0.8 removed (1.6-1.8%, "less than 2%").
TARGET_FRACTION = 0.02
#: Thresholds :func:`threshold_for_fraction` chooses from: 0.50, 0.51, ..., 0.99.
THRESHOLD_GRID = np.round(np.arange(0.50, 0.995, 0.01), 2)


def threshold_for_fraction(heatmaps, target: float = TARGET_FRACTION, *,
                           grid=THRESHOLD_GRID) -> tuple[float, float]:
    """The threshold of ``grid`` whose mean removed fraction (pixels with ``map >
    threshold``, averaged over images) is nearest ``target``; ties to the higher threshold.

    Parameters
    ----------
    heatmaps : array_like, shape (N, H, W)
    target : float in (0, 1)

    Returns
    -------
    threshold, mean_fraction : float, float
    """
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.ndim != 3 or not len(maps):
        raise ValueError(f"heatmaps must be (N, H, W) with N >= 1, got shape {maps.shape}")
    if not 0 < target < 1:
        raise ValueError(f"target must be a fraction of the pixels in (0, 1), got {target}")
    grid = np.sort(np.asarray(grid, dtype=np.float64))[::-1]
    fractions = np.array([(maps > t).mean() for t in grid])
    k = int(np.argmin(np.abs(fractions - target)))
    return float(grid[k]), float(fractions[k])


def _embed_all(embed, images: torch.Tensor, layer, batch_size, progress, desc) -> np.ndarray:
    runner = BatchedEmbed(embed, batch_size=batch_size, flip_average=True,
                          layers=None if layer is None else [layer])
    out = runner(images, progress=progress, desc=desc)
    if isinstance(out, dict):
        out = out[layer] if layer is not None else next(iter(out.values()))
    return out.numpy() if isinstance(out, torch.Tensor) else np.asarray(out)


def _rise(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(before > 0, (after - before) / before, np.nan)


def eer_rise(embed: Callable, images, heatmaps, pairs: pd.DataFrame, *, target=TARGET_FRACTION,
             threshold: float | None = None, segments=None, random_seeds: int = 3, seed: int = 0,
             fill=IMAGENET_MEAN, layer: str | None = None, batch_size: int | None = None,
             n_boot: int = 1000, level: float = 0.95, progress=True) -> pd.DataFrame:
    """Relative EER rise after removing about ``target`` of the pixels: the most significant
    ones, and as many at random.

    Parameters
    ----------
    embed : callable
        ``(B, 3, H, W)`` in [0, 1] -> ``(B, D)`` or dict layer -> ``(B, D)``; descriptors
        are flip-averaged, as the protocol's.
    images : array_like, shape (N, 3, H, W)
        The images as they are verified (e.g. with occluded probes).
    heatmaps : array_like, shape (N, H, W)
        One map per image, in [0, 1].
    pairs : pandas.DataFrame
        ``i``, ``j`` (positions in ``images``), ``label``, ``identity_i``, ``identity_j``.
    target : float
        Share of pixels removed on average (:func:`threshold_for_fraction`); ignored when
        ``threshold`` is given.
    segments : array_like, shape (N, H, W), optional
        Superpixels of each image: adds the fair ``"random-superpixels"`` baseline.
    random_seeds : int
        Draws of each random baseline; its EER is their mean (per resample too).
    seed, fill, layer, batch_size, n_boot, level
        Seed of the random draws and the bootstrap (the same identity resamples for
        every EER); pixel value of removed pixels (the paper's: the normalisation mean);
        the layer of a dict output; rows per forward; resamples; coverage.

    Returns
    -------
    pandas.DataFrame
        One row per method: ``"significant"``, ``"random-pixels"`` (the paper's
        baseline), ``"random-superpixels"`` (with ``segments``), then
        ``"significant - random-pixels"`` (and ``- random-superpixels``): ``threshold``,
        ``removed_fraction`` (mean share of pixels removed), ``eer_before``, ``eer_after``
        (fractions), ``rise`` (relative rise, ``(after - before) / before``, a fraction;
        NaN when the EER before removal is 0), ``ci_low``, ``ci_high`` (its paired
        percentile interval over resampled identities), ``genuine``, ``impostor``,
        ``identities``, ``n_boot_used`` (resamples with a clean EER above 0).
    """
    images = torch.as_tensor(np.asarray(images, dtype=np.float32))
    maps = np.asarray(heatmaps, dtype=np.float32)
    if images.ndim != 4 or maps.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"heatmaps must be (N, H, W) for images (N, 3, H, W) {tuple(images.shape)},"
                         f" got {maps.shape}")
    missing = [c for c in ("i", "j", "label", "identity_i", "identity_j") if c not in pairs]
    if missing:
        raise ValueError(f"pairs needs the columns {missing} (faceexp.verify.protocol.verification_pairs)")
    genuine = check_labels(pairs["label"].to_numpy(), len(pairs))
    if genuine.all() or not genuine.any():
        raise ValueError("pairs must hold genuine and impostor pairs")
    if threshold is None:
        threshold, _ = threshold_for_fraction(maps, target)
    removed, mask = remove_significant(images, maps, threshold, fill=fill)
    counts = mask.sum(axis=(1, 2))
    sets = {"none": images, "significant": removed}
    draws = {"random-pixels": []}
    if segments is not None:
        draws["random-superpixels"] = []
    for r in range(max(int(random_seeds), 1)):
        draws["random-pixels"].append(remove_random_pixels(images, counts, seed=seed + r,
                                                           fill=fill)[0])
        if segments is not None:
            draws["random-superpixels"].append(remove_random_superpixels(
                images, segments, counts, seed=seed + r, fill=fill)[0])
    scores = {}
    for name, batch in sets.items():
        scores[name] = [protocol.cosine_scores(_embed_all(embed, batch, layer, batch_size,
                                                          progress, f"embed ({name})"), pairs)]
    for name, batches in draws.items():
        scores[name] = [protocol.cosine_scores(_embed_all(embed, b, layer, batch_size, progress,
                                                          f"embed ({name} {k})"), pairs)
                        for k, b in enumerate(batches)]
    ids_i, ids_j = pairs["identity_i"].to_numpy(), pairs["identity_j"].to_numpy()
    labels = genuine.astype(np.int64)

    def point(values):
        return float(np.mean([group_eer(s[~genuine], s[genuine], "bob") for s in values]))

    def boot(values):
        return np.mean([bootstrap_eer(s, labels, ids_i, ids_j, n_boot=n_boot, level=level,
                                      seed=int(seed))[2] for s in values], axis=0)

    before, before_boot = point(scores["none"]), boot(scores["none"])
    tail = (1 - level) / 2 * 100
    base = {"threshold": threshold, "removed_fraction": float(mask.mean()),
            "eer_before": before, "genuine": int(genuine.sum()),
            "impostor": int((~genuine).sum()),
            "identities": int(len(set(ids_i) | set(ids_j)))}
    rows, rises = [], {}
    for name in ["significant", *draws]:
        after = point(scores[name])
        rises[name] = (_rise(np.array(after), np.array(before)), _rise(boot(scores[name]), before_boot))
        rows.append({"method": name, **base, "eer_after": after, "rise": float(rises[name][0])})
    for name in draws:
        rows.append({"method": f"significant - {name}", **base, "eer_after": np.nan,
                     "rise": float(rises["significant"][0] - rises[name][0])})
        rises[f"significant - {name}"] = (None, rises["significant"][1] - rises[name][1])
    for row in rows:
        values = rises[row["method"]][1]
        finite = values[np.isfinite(values)]
        row["n_boot_used"] = int(finite.size)
        row["ci_low"], row["ci_high"] = (np.percentile(finite, [tail, 100 - tail]).tolist()
                                         if finite.size else (np.nan, np.nan))
    columns = ["method", "threshold", "removed_fraction", "eer_before", "eer_after", "rise",
               "ci_low", "ci_high", "genuine", "impostor", "identities", "n_boot_used"]
    return pd.DataFrame(rows)[columns]
