"""The randomisation check's own sanity: how much the explained similarity moves under the randomised model.

The model-randomisation check (Adebayo et al. 2018; :func:`~faceexp.evaluate.compare.model.randomise_stages`)
compares a map on the trained network with the map on the network with its top stages
re-initialised. When the randomised network maps every face to nearly the same
embedding (cosine near 1 between any two faces), the explained similarity moves by
about 1e-3 under any perturbation, and any map of it is fitted to tiny changes: a low
rank correlation then says nothing about the explainer. :func:`explained_spread`
measures that movement (the standard deviation of the explained similarity over
random superpixel perturbations of the face, the kind of images a perturbation
explainer sees), and :func:`randomisation_summary` puts it beside each rank
correlation with a ``degenerate`` flag when it is below :data:`DEGENERATE_SPREAD`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from faceexp.core import checks
from faceexp.core.similarity import cosine_to
from faceexp.evaluate.masking import apply_masks, fill_tensor

__all__ = ["DEGENERATE_SPREAD", "SPREAD_SAMPLES", "explained_spread", "randomisation_summary",
           "randomisation_reading"]

#: Below this standard deviation of the explained similarity (cosine units) over random
#: superpixel perturbations, a map of the randomised model is fitted to noise-sized
#: changes and the check is "degenerate": a hundredth of the cosine's unit, about ten
#: times the 1e-3 movement seen when every face maps to one embedding.
DEGENERATE_SPREAD = 1e-2
#: Perturbed images per face for :func:`explained_spread`.
SPREAD_SAMPLES = 16


def explained_spread(embed: Any, face: Any, reference: Any, segments: Any, *,
                     n_samples: int = SPREAD_SAMPLES, p_off: float = 0.5, fill: Any = "black",
                     seed: Any = 0) -> dict:
    """Spread of the explained similarity over random superpixel perturbations of one face.

    Parameters
    ----------
    embed : callable
        ``(B, 3, H, W)`` float tensor in [0, 1] -> ``(B, D)`` embeddings (e.g. a
        :class:`~faceexp.evaluate.compare.model.FaceModel`'s ``embed``, trained or randomised).
    face : array_like, shape (H, W, 3)
        The face in [0, 1].
    reference : array_like, shape (H, W, 3), or None
        The image whose embedding (under the same ``embed``) the similarity is
        to: the genuine partner for a pair explanation, None for the face itself.
    segments : array_like of int, shape (H, W)
        The face's superpixels.
    n_samples : int, default :data:`SPREAD_SAMPLES`
        Perturbed images; each superpixel is set to ``fill`` with probability ``p_off``.
    p_off : float, default 0.5
    fill : "black", "mean", a number or 3 numbers in [0, 1]
    seed : int or numpy.random.Generator

    Returns
    -------
    dict
        ``spread`` (standard deviation of the similarities, ddof 0), ``range``
        (max - min), ``mean`` (their mean), ``n_samples``.
    """
    n_samples = checks.positive_int(n_samples, "n_samples", 2)
    if not 0 < float(p_off) < 1:
        raise ValueError(f"p_off must lie strictly between 0 and 1, got {p_off!r}")
    face = np.asarray(face, dtype=np.float32)
    if face.ndim != 3 or face.shape[2] != 3:
        raise ValueError(f"face must be one (H, W, 3) image, got shape {face.shape}")
    segments = np.asarray(segments)
    if segments.shape != face.shape[:2] or not np.issubdtype(segments.dtype, np.integer):
        raise ValueError(f"segments must be integer labels of shape {face.shape[:2]}, got "
                         f"{segments.dtype} {segments.shape}")
    labels = np.unique(segments, return_inverse=True)[1].reshape(segments.shape)
    rng = np.random.default_rng(seed)
    off = rng.random((n_samples, int(labels.max()) + 1)) < float(p_off)
    masks = off[:, labels]                                              # (S, H, W)
    tensor = torch.from_numpy(np.ascontiguousarray(face.transpose(2, 0, 1)))[None]
    batch = apply_masks(tensor.expand(n_samples, -1, -1, -1), masks, fill_tensor(fill, tensor))
    ref_image = tensor if reference is None else torch.from_numpy(np.ascontiguousarray(
        np.asarray(reference, dtype=np.float32).transpose(2, 0, 1)))[None]
    if ref_image.shape != tensor.shape:
        raise ValueError(f"reference must have the face's shape {face.shape}")
    ref = torch.as_tensor(embed(ref_image)).detach().float().cpu()[0]
    sims = cosine_to(torch.as_tensor(embed(batch)).detach().float().cpu(), ref).double().numpy()
    return {"spread": float(sims.std()), "range": float(np.ptp(sims)), "mean": float(sims.mean()),
            "n_samples": n_samples}


def randomisation_summary(randomisation: pd.DataFrame, *,
                          threshold: float = DEGENERATE_SPREAD) -> pd.DataFrame:
    """Each rank correlation of the randomisation check beside the spread of what was explained.

    Parameters
    ----------
    randomisation : DataFrame
        :attr:`~faceexp.evaluate.compare.Comparison.randomisation` (or several, with a
        ``recogniser`` column): ``explainer``, ``image``, ``stages``, ``rank_corr``,
        ``spread`` (the randomised model's :func:`explained_spread`) and, where
        measured, ``trained_spread``.
    threshold : float, default :data:`DEGENERATE_SPREAD`

    Returns
    -------
    DataFrame
        One row per (recogniser, explainer, stages): ``rank_corr`` (mean over
        faces), ``spread`` (median over faces), ``trained_spread`` (median),
        ``faces``, ``degenerate`` (True when the median spread is below
        ``threshold``: the rank correlation then says nothing about the explainer).
    """
    columns = ["recogniser", "explainer", "stages", "rank_corr", "spread", "trained_spread",
               "faces", "degenerate"]
    if randomisation.empty and not len(randomisation.columns):
        return pd.DataFrame(columns=columns)            # no comparison ran the check
    needed = {"explainer", "image", "stages", "rank_corr", "spread"}
    if not needed <= set(randomisation):
        raise ValueError(f"randomisation must be Comparison.randomisation with the spread "
                         f"columns; missing {sorted(needed - set(randomisation))}")
    if not float(threshold) > 0:
        raise ValueError(f"threshold must be a positive spread (cosine units), got {threshold!r}")
    data = randomisation.copy()
    if "recogniser" not in data:
        data["recogniser"] = ""
    if "trained_spread" not in data:
        data["trained_spread"] = np.nan
    rows = []
    for (recogniser, explainer, stages), part in data.groupby(
            ["recogniser", "explainer", "stages"], sort=False):
        spread = float(part["spread"].median())
        rows.append({"recogniser": recogniser, "explainer": explainer, "stages": stages,
                     "rank_corr": float(part["rank_corr"].mean()), "spread": spread,
                     "trained_spread": float(part["trained_spread"].median()),
                     "faces": int(part["image"].nunique()),
                     "degenerate": bool(np.isfinite(spread) and spread < float(threshold))})
    return pd.DataFrame(rows, columns=columns)


def randomisation_reading(summary: pd.DataFrame, *, threshold: float = DEGENERATE_SPREAD) -> str:
    """A Markdown paragraph on :func:`randomisation_summary`'s table at each recogniser's
    deepest randomisation: the spread of the explained similarity there (and on the
    trained network) and whether the check is degenerate; every number generated."""
    if summary.empty:
        return "The randomisation check was not run (no recogniser with a PyTorch module)."
    parts = []
    for recogniser, part in summary.groupby("recogniser", sort=False):
        deepest = part[part["stages"] == part["stages"].max()]
        spread, trained = deepest["spread"].median(), deepest["trained_spread"].median()
        name = f"**{recogniser}**" if recogniser else "The network"
        depth = int(deepest["stages"].iloc[0])
        stages = f"{depth} stage{'s' if depth != 1 else ''}"
        text = (f"{name}: with {stages} re-initialised, the "
                f"explained similarity moves with a standard deviation of {spread:.2g} over random "
                f"superpixel perturbations (median over {int(deepest['faces'].max())} "
                f"face{'s' if deepest['faces'].max() != 1 else ''}"
                + (f"; {trained:.2g} on the trained network" if np.isfinite(trained) else "")
                + "). ")
        if deepest["degenerate"].all():
            text += (f"That is below {threshold:g}: the check is **degenerate**, every map of the "
                     "randomised network is fitted to noise-sized changes, and its rank "
                     "correlations say nothing about the explainers.")
        else:
            text += (f"That is at least {threshold:g}: the randomised network's similarity moves "
                     "enough for its rank correlations to be read.")
        parts.append(text)
    return "\n\n".join(parts)
