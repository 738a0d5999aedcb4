"""The sampling study: explainer settings compared by faithfulness and stability across seeds.

:func:`sampling_study` explains every image under every explainer setting
(``p_off``, MATLAB-style sampling, ...) with several seeds and the same
superpixels, and measures each heatmap's faithfulness with the deletion
curves of :mod:`faceexp.evaluate.faithfulness` and each setting's stability as the
agreement (Pearson correlation, PSNR) of one image's heatmaps across seeds.
:func:`summarise_sampling_study` reduces the result to one row per setting.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from faceexp.core import checks
from faceexp.data.preprocessing import IMAGENET_MEAN
from faceexp.core.batching import resolve_batch_size
from faceexp.explain.explainer import Explainer
from faceexp.evaluate.faithfulness import DEFAULT_STEPS, ORDERS, removal_steps, deletion_auc, deletion_curves
from faceexp.evaluate.heatmaps import psnr_pairs
from faceexp.evaluate.masking import check_embed

__all__ = [
    "DEFAULT_SETTINGS",
    "sampling_study",
    "summarise_sampling_study",
]

#: Explainer settings compared by :func:`sampling_study` by default.
DEFAULT_SETTINGS = ({"p_off": 0.2}, {"p_off": 0.4}, {"p_off": 0.6}, {"p_off": 0.8},
                    {"sampling": "matlab"})
#: Measures of :func:`sampling_study` per (setting, image, seed) and per (setting, image).
_PER_RUN = ("faithfulness", "faithfulness_random", "auc_morf")
_PER_IMAGE = ("stability", "stability_psnr")
#: Explainer arguments that :func:`sampling_study` sets itself.
_STUDY_RESERVED = ("seed", "segments", "reference", "progress", "n_samples", "n_segments",
                   "batch_size", "embed", "image")


def _setting_label(setting: Mapping) -> str:
    return ", ".join(f"{key}={value}" for key, value in setting.items())


def _stability(maps: np.ndarray) -> tuple[float, float]:
    """Mean over pairs of the (S, H, W) maps of their Pearson correlation and PSNR (dB).

    A constant map's correlation is NaN (``np.corrcoef``, clipped to [-1, 1]);
    identical maps have PSNR inf (data range 1, heatmaps in [0, 1]). With
    fewer than two maps both are NaN.
    """
    first, second = np.triu_indices(len(maps), k=1)
    if not first.size:
        return float("nan"), float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        pearson = np.corrcoef(maps.reshape(len(maps), -1))[first, second]
    return float(np.mean(pearson)), float(np.mean(psnr_pairs(maps[first], maps[second])))


def _as_study_images(images: Any) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.asarray(images) if not isinstance(images, (list, tuple)) else np.stack(
        [np.asarray(x) for x in images])
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise ValueError(f"images must be (N, H, W, 3) images (the explainer's layout), got "
                         f"shape {images.shape}")
    if not np.issubdtype(images.dtype, np.floating) or not np.isfinite(images).all() or \
            images.min() < 0 or images.max() > 1:
        raise ValueError("images must be float values in [0, 1]")
    return images.astype(np.float32)


def _pick_heatmap(explanation: Any, layer: str) -> np.ndarray:
    if layer in explanation.layers:
        return explanation.heatmap(layer)
    if len(explanation.layers) == 1:
        return explanation.heatmaps[0]
    raise ValueError(f"layer: the explanation has layers {explanation.layers}, not {layer!r}")


def sampling_study(embed: Callable, images: Any, *, settings: Sequence[Mapping] = DEFAULT_SETTINGS,
                   seeds: Sequence[int] = (0, 1, 2), n_samples: int = 1000,
                   n_segments: int = 75, deletion_steps: Any = DEFAULT_STEPS,
                   layer: str = "gap", fill: Any = IMAGENET_MEAN,
                   batch_size: int | None = None,
                   explain_options: Mapping | None = None,
                   progress: bool = True) -> pd.DataFrame:
    """Compare explainer sampling settings by faithfulness and stability.

    Every image is explained under every setting with every seed, always with
    the same superpixels (the SLIC map of the image's first explanation is
    passed as ``segments=`` to all others), so only the sampling differs. For
    each heatmap, deletion curves (MoRF and LeRF,
    :func:`faceexp.evaluate.faithfulness.deletion_curves`) give the faithfulness
    gaps; the random-superpixel curve of an image and seed does not depend
    on the heatmap and is computed once, with the deletion seed equal to the
    explanation seed. Stability of a setting on an
    image is the mean over pairs of seeds of the Pearson correlation (and of
    the PSNR) between the heatmaps.

    Parameters
    ----------
    embed : callable
        As for :func:`faceexp.explain.explainer.explain` and
        :func:`faceexp.evaluate.faithfulness.deletion_curves`.
    images : array_like, shape (N, H, W, 3)
        Float images in [0, 1].
    settings : sequence of dict
        Explainer options per setting, e.g. ``{"p_off": 0.6}`` or
        ``{"sampling": "matlab"}``.
    seeds : sequence of int
        Explanation seeds (at least 2 for a stability value; with one it is NaN).
    n_samples, n_segments : int
        Explainer samples and SLIC superpixels (paper 1000 and 75).
    deletion_steps : sequence of float or int
        ``steps`` of :func:`faceexp.evaluate.faithfulness.deletion_curves`.
    layer : str
        Layer explained and used by the deletion curves (a single-array
        ``embed`` has one layer and ignores it).
    fill : 3 floats, one float, "mean" or "black"
        Fill of the deletion curves (the explainer's own fill is an explainer
        option).
    batch_size : int, optional
        Images per ``embed`` call, in the explainer and the deletion curves.
        None: the explainer's choice (:func:`faceexp.explain.explainer.resolve_batch_size`).
    explain_options : dict, optional
        More explainer options shared by all settings (``sigma``, ``kernel``,
        ``fill``, ...); a setting overrides them.
    progress : bool
        Show progress bars.

    Returns
    -------
    DataFrame
        One row per (setting, image, seed): ``setting`` (label such as
        ``"p_off=0.6"``), ``image``, ``seed``, ``auc_morf``, ``auc_lerf``,
        ``auc_random``, ``faithfulness`` (= auc_lerf - auc_morf),
        ``faithfulness_random`` (= auc_random - auc_morf), ``r2`` (the
        explainer's weighted R^2),
        and per (setting, image), repeated on its seed rows, ``stability``
        (mean pairwise Pearson correlation across seeds) and
        ``stability_psnr`` (mean pairwise PSNR in dB).
    """
    from tqdm import tqdm

    check_embed(embed)
    pixels = _as_study_images(images)
    n = pixels.shape[0]
    settings = list(settings)
    if not settings or not all(isinstance(s, Mapping) for s in settings):
        raise ValueError("settings must be a non-empty sequence of dicts of explainer "
                         "options, e.g. ({'p_off': 0.6}, {'sampling': 'matlab'})")
    shared = dict(explain_options or {})
    for options in [shared] + settings:
        reserved = sorted(set(options) & set(_STUDY_RESERVED))
        if reserved:
            raise ValueError(f"settings: {reserved} are set by sampling_study itself; pass "
                             "them as its own arguments")
    labels = [_setting_label(s) for s in settings]
    if len(set(labels)) != len(labels):
        raise ValueError(f"settings: duplicate settings {labels}")
    seeds = [checks.seed(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct non-negative ints, got {seeds!r}")
    steps = removal_steps(deletion_steps)
    batch_size = resolve_batch_size(embed, batch_size)
    explainers = [Explainer(embed, n_samples=n_samples, n_segments=n_segments,
                            batch_size=batch_size, **{**shared, **dict(s)}) for s in settings]

    heatmaps = np.empty((len(settings), len(seeds), n) + pixels.shape[1:3])
    r2 = np.empty((len(settings), len(seeds), n))
    segments = np.empty((n,) + pixels.shape[1:3], dtype=np.int64)
    combos = list(itertools.product(range(n), range(len(settings)), range(len(seeds))))
    for i, a, b in tqdm(combos, disable=not progress, desc="explain", unit="explanation"):
        explanation = explainers[a].explain(pixels[i], seed=seeds[b],
                                            segments=None if (a, b) == (0, 0) else segments[i])
        if (a, b) == (0, 0):
            segments[i] = explanation.segments
        heatmaps[a, b, i] = _pick_heatmap(explanation, layer)
        layer_index = (explanation.layers.index(layer) if layer in explanation.layers else 0)
        r2[a, b, i] = explanation.r2[layer_index]

    chw = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))
    stacked = chw.repeat(len(settings) * len(seeds), 1, 1, 1)
    curves = deletion_curves(embed, stacked, heatmaps.reshape((-1,) + pixels.shape[1:3]),
                             steps=steps, orders=ORDERS[:2], seed=0, fill=fill,
                             batch_size=batch_size, layer=layer, progress=progress)
    aucs = deletion_auc(curves).pivot(index="image", columns="order", values="auc")
    random_auc = np.empty((len(seeds), n))
    for b, seed in enumerate(seeds):
        random_curves = deletion_curves(embed, chw, np.zeros(segments.shape), steps=steps,
                                        orders=("random-superpixels",), segments=segments,
                                        seed=seed, fill=fill, batch_size=batch_size,
                                        layer=layer, progress=progress)
        random_auc[b] = deletion_auc(random_curves)["auc"].to_numpy()

    rows = []
    for a, label in enumerate(labels):
        for i in range(n):
            pearson, psnr = _stability(heatmaps[a, :, i])
            for b, seed in enumerate(seeds):
                flat = (a * len(seeds) + b) * n + i          # position in ``stacked``
                morf = float(aucs.loc[flat, "most-relevant-first"])
                lerf = float(aucs.loc[flat, "least-relevant-first"])
                rows.append({"setting": label, "image": i, "seed": seed, "auc_morf": morf,
                             "auc_lerf": lerf, "auc_random": float(random_auc[b, i]),
                             "faithfulness": lerf - morf,
                             "faithfulness_random": float(random_auc[b, i]) - morf,
                             "r2": float(r2[a, b, i]), "stability": pearson,
                             "stability_psnr": psnr})
    return pd.DataFrame(rows)


def summarise_sampling_study(study: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation of faithfulness and stability per setting.

    Parameters
    ----------
    study : DataFrame
        The result of :func:`sampling_study`.

    Returns
    -------
    DataFrame
        One row per setting (in order of appearance): ``setting``,
        ``n_images``, ``n_seeds``, and for each measure ``<measure>`` (the
        mean) and ``<measure>_sd`` (sample standard deviation, ddof=1; NaN
        from a single value): ``faithfulness``, ``faithfulness_random`` and
        ``auc_morf`` over every (image, seed), ``stability`` and
        ``stability_psnr`` over images (one value per image). Higher
        faithfulness and stability are better.
    """
    needed = ("setting", "image", "seed") + _PER_RUN + _PER_IMAGE
    if not isinstance(study, pd.DataFrame) or not set(needed) <= set(study):
        raise ValueError(f"study must be the DataFrame of sampling_study with columns "
                         f"{list(needed)}")
    if study.empty:
        raise ValueError("study: no rows")
    rows = []
    for setting, part in study.groupby("setting", sort=False):
        row = {"setting": setting, "n_images": int(part["image"].nunique()),
               "n_seeds": int(part["seed"].nunique())}
        per_image = part.drop_duplicates("image")
        for columns, source in ((_PER_RUN, part), (_PER_IMAGE, per_image)):
            for column in columns:
                row[column] = float(source[column].mean())
                row[f"{column}_sd"] = float(source[column].std(ddof=1))
        rows.append(row)
    return pd.DataFrame(rows)
