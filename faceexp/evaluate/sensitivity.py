"""How much each choice of the explainer moves its heatmaps, against the seed-to-seed floor.

:func:`sensitivity_study` explains every image with the default explainer
(the paper's MATLAB LIME: SLIC-zero, 75 superpixels, ``p_off`` 0.6, black
fill, max(β, 0) painted) with two seeds, and once with each alternative
choice (one option changed at a time). The PSNR between an alternative's
heatmap (seed ``s1``) and the default's (seed ``s0``) is set against the
PSNR between the default's two seeds (the floor: what chance alone changes);
a choice whose PSNR to the default is clearly below the floor changes the
heatmaps. Each heatmap's faithfulness is its deletion-AUC gap (least- minus
most-relevant-first, :mod:`faceexp.evaluate.faithfulness`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from faceexp.explain.explainer import Explainer
from faceexp.evaluate.faithfulness import deletion_auc, deletion_curves
from faceexp.evaluate.heatmaps import psnr_pairs

#: Alternatives to the default explainer, one option changed at a time.
DEFAULT_CHOICES = (
    ("raw β painted (positive_only=False)", {"positive_only": False}),
    ("plain SLIC (slic_zero=False)", {"slic_zero": False}),
    ("1000 samples", {"n_samples": 1000}),
    ("mean fill (fill='mean')", {"fill": "mean"}),
    ("blurred fill (fill='blur')", {"fill": "blur"}),
    ("p_off=0.2", {"p_off": 0.2}),
    ("MATLAB sampling (sampling='matlab')", {"sampling": "matlab"}),
)


def sensitivity_study(embed: Callable, images, *, choices: Sequence = DEFAULT_CHOICES,
                      seeds=(0, 1), n_samples: int = 150, n_segments: int = 75,
                      layer: str = "gap", batch_size: int | None = None,
                      progress: bool = True) -> pd.DataFrame:
    """Each explainer choice's effect on the heatmaps and their faithfulness.

    Parameters
    ----------
    embed : callable
        As for :class:`faceexp.explain.explainer.Explainer`.
    images : array_like, shape (N, H, W, 3)
        Float images in [0, 1].
    choices : sequence of (label, options)
        Explainer options that differ from the default (``n_samples`` included).
    seeds : (int, int)
        The default is explained with both; each alternative with the second.
    n_samples, n_segments : int
        The default's samples and superpixels.
    layer : str
        The embedding layer explained.

    Returns
    -------
    pandas.DataFrame
        One row per (setting, image): ``setting`` ("default" or a choice's
        label), ``image``, ``psnr_to_default`` (dB; for "default" the seed
        floor), ``faithfulness`` (deletion-AUC gap), ``r2``.
    """
    from tqdm import tqdm

    pixels = np.asarray(images, dtype=np.float32)
    if pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3) floats in [0, 1], got shape {pixels.shape}")
    s0, s1 = (int(s) for s in seeds)
    if s0 == s1:
        raise ValueError(f"seeds must be two different ints, got {seeds!r}")
    settings = [("default", {}, s0), ("default (second seed)", {}, s1)] + \
        [(label, dict(options), s1) for label, options in choices]
    maps = np.zeros((len(settings), len(pixels)) + pixels.shape[1:3])
    r2 = np.zeros((len(settings), len(pixels)))
    for a, (label, options, seed) in enumerate(tqdm(settings, desc="sensitivity", disable=not progress)):
        opts = {"n_samples": n_samples, "n_segments": n_segments, **options}
        explainer = Explainer(embed, layers=[layer], batch_size=batch_size, **opts)
        for i, image in enumerate(pixels):
            result = explainer.explain(image, seed=seed)
            maps[a, i] = result.heatmaps[0]
            r2[a, i] = result.r2[0]
    chw = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))
    stacked = chw.repeat(len(settings), 1, 1, 1)
    curves = deletion_curves(embed, stacked, maps.reshape((-1,) + pixels.shape[1:3]),
                             orders=("most-relevant-first", "least-relevant-first"), seed=0,
                             batch_size=batch_size, layer=layer, progress=progress)
    aucs = deletion_auc(curves).pivot(index="image", columns="order", values="auc")
    gap = (aucs["least-relevant-first"] - aucs["most-relevant-first"]).to_numpy()
    gap = gap.reshape(len(settings), len(pixels))
    rows = []
    for a, (label, _, _) in enumerate(settings):
        if a == 1:
            continue
        versus = maps[1] if a == 0 else maps[0]
        psnr = psnr_pairs(maps[a], versus)
        for i in range(len(pixels)):
            rows.append({"setting": label, "image": i, "psnr_to_default": float(psnr[i]),
                         "faithfulness": float(gap[a, i]), "r2": float(r2[a, i])})
    return pd.DataFrame(rows)


def summarise_sensitivity(study: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """One row per setting: mean PSNR to the default and faithfulness with 95% intervals
    over images, and the PSNR's reading against the default's seed floor
    (:func:`faceexp.evaluate.seed_floor.relative_to_floor`, paired by image)."""
    from faceexp.core.bootstrap import mean_interval
    from faceexp.evaluate.seed_floor import relative_to_floor

    floor = study[study["setting"] == "default"].sort_values("image")
    rows = []
    for label, part in study.groupby("setting", sort=False):
        part = part.sort_values("image")
        psnr = mean_interval(part["psnr_to_default"].replace(np.inf, np.nan).to_numpy(),
                                  seed=seed).iloc[0]
        faith = mean_interval(part["faithfulness"].to_numpy(), seed=seed).iloc[0]
        row = {"setting": label, "PSNR to default (dB)": psnr["mean"],
               "PSNR low": psnr["ci_low"], "PSNR high": psnr["ci_high"],
               "faithfulness": faith["mean"], "faithfulness low": faith["ci_low"],
               "faithfulness high": faith["ci_high"], "images": len(part)}
        if label != "default" and len(part) < 3:
            row["against the seed floor"] = f"too few images ({len(part)}) to tell"
        elif label != "default":
            against = relative_to_floor(part["psnr_to_default"].to_numpy(),
                                             floor["psnr_to_default"].to_numpy(), seed=seed).iloc[0]
            row["against the seed floor"] = ("moves the heatmaps more than a new seed"
                                             if against["reading"] == "lower than the seed floor"
                                             else against["reading"])
        else:
            row["against the seed floor"] = "(the floor: two seeds of the default)"
        rows.append(row)
    return pd.DataFrame(rows).set_index("setting")
