"""Similarity and dissimilarity maps of one faceexp explanation (one fit, two maps).

The explainer fits one linear model of the pair score on the superpixels kept
(:class:`faceexp.explain.explanation.Explanation` stores the raw ``coefficients``
(L, S) and the ``segments`` (H, W)). A positive coefficient b: keeping the
superpixel raises the similarity, so it makes the pair **similar**; the paper's
heatmap ``max(b, 0)`` is this similarity map. A negative one: keeping it lowers
the similarity, so it makes the pair **dissimilar**; the dissimilarity map is
``max(-b, 0)``. Both are painted as the explainer paints
(:func:`faceexp.explain.lime_steps.paint`: smoothed with the explanation's
``sigma``, min-max scaled to [0, 1]), so the similarity map equals the
explanation's own heatmap when it was made with ``positive_only=True``.
"""
from __future__ import annotations

import numbers

import numpy as np

from faceexp.explain.lime_steps import paint

__all__ = ["signed_maps", "MAP_KINDS"]

#: The two maps of a verification explanation.
MAP_KINDS = ("similarity", "dissimilarity")


def signed_maps(explanation, layer: str | int | None = None, *,
                sigma: float | None = None) -> dict[str, np.ndarray]:
    """The similarity and the dissimilarity map of one layer of an explanation.

    Parameters
    ----------
    explanation : faceexp.explain.Explanation
        Its ``coefficients`` (L, S), ``segments`` (H, W) and ``options["sigma"]``.
    layer : str or int, optional
        Layer name or index; None when there is one layer.
    sigma : float, optional
        Smoothing in pixels; default the explanation's own (``options["sigma"]``,
        4 when absent).

    Returns
    -------
    dict
        ``"similarity"``: ``max(b, 0)`` painted, (H, W) float64 in [0, 1];
        ``"dissimilarity"``: ``max(-b, 0)`` painted, (H, W) float64 in [0, 1]
        (all zeros when no coefficient has that sign).
    """
    layers = list(explanation.layers)
    if layer is None:
        if len(layers) != 1:
            raise ValueError(f"layer: this explanation has {len(layers)} layers {layers}; "
                             "name one")
        index = 0
    elif isinstance(layer, numbers.Integral) and not isinstance(layer, bool):
        if not 0 <= int(layer) < len(layers):
            raise ValueError(f"layer index {layer} out of range for layers {layers}")
        index = int(layer)
    elif layer in layers:
        index = layers.index(layer)
    else:
        raise ValueError(f"layer {layer!r} is not one of this explanation's layers {layers}")
    sigma = float(explanation.options.get("sigma", 4.0)) if sigma is None else float(sigma)
    coefficients = np.asarray(explanation.coefficients, dtype=np.float64)[index:index + 1]
    segments = np.asarray(explanation.segments)
    return {"similarity": paint(coefficients, segments, sigma=sigma, positive_only=True)[0],
            "dissimilarity": paint(-coefficients, segments, sigma=sigma, positive_only=True)[0]}
