"""A softmax identification head on a recogniser's frozen embeddings (claim (a)).

The real recognisers (SFace, FaceNet-CASIA) end in an embedding, not in a softmax over
training identities, so the paper's GAP-vs-softmax comparison has no softmax to explain.
:func:`fit_identification_head` gives them one: a multinomial logistic regression
(scikit-learn's ``LogisticRegression``) fitted on the L2-normalised embeddings of the
training identities' images, the recogniser itself frozen. :class:`HeadEmbed` wraps the
recogniser's embed callable so that the explainer can read the head's class
probabilities as a layer named ``"softmax"`` (:class:`faceexp.explain.ClassProbability`)
beside the embedding's cosine.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["IdentificationHead", "fit_identification_head", "head_accuracy", "HeadEmbed"]


def _unit_rows(embeddings, name: str) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be a finite (N, D) array with N >= 1, got shape {x.shape}")
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


@dataclass(frozen=True)
class IdentificationHead:
    """A fitted head: ``model`` (sklearn ``LogisticRegression``) on unit-length embeddings.

    Attributes
    ----------
    model : sklearn.linear_model.LogisticRegression
    classes : list
        The training identities, in the order of the probability columns.
    n_train : int
        Images it was fitted on.
    """

    model: object
    classes: list
    n_train: int

    def probabilities(self, embeddings) -> np.ndarray:
        """Class probabilities ``(N, C)`` of embeddings ``(N, D)`` (rows sum to 1)."""
        return self.model.predict_proba(_unit_rows(embeddings, "embeddings"))

    def class_index(self, identities) -> np.ndarray:
        """Column of each identity ``(N,)``; ValueError naming an identity it was not fitted on."""
        lookup = {c: i for i, c in enumerate(self.classes)}
        missing = sorted({str(u) for u in identities if u not in lookup})
        if missing:
            raise ValueError(f"identities {missing[:5]} are not among the head's training "
                             "identities; a softmax head explains only identities it was fitted on")
        return np.array([lookup[u] for u in identities], dtype=np.int64)

    @property
    def fingerprint(self) -> str:
        """Hash of the fitted weights (16 hex digits), for cache keys."""
        h = hashlib.sha256(np.ascontiguousarray(self.model.coef_).tobytes())
        h.update(np.ascontiguousarray(self.model.intercept_).tobytes())
        h.update(repr(self.classes).encode())
        return h.hexdigest()[:16]


def fit_identification_head(embeddings, identities, *, C: float = 10.0, max_iter: int = 2000,
                            seed: int = 0) -> IdentificationHead:
    """Fit a multinomial logistic regression on frozen embeddings of training identities.

    Parameters
    ----------
    embeddings : array_like, shape (N, D)
        A recogniser's embeddings of the training images; L2-normalised here (the
        recogniser compares them by cosine, so only their direction carries identity).
    identities : array_like, shape (N,)
        Identity of each row; at least 2 identities.
    C : float, default 10.0
        Inverse L2 regularisation strength of ``LogisticRegression`` (weak: unit-length
        embeddings of distinct people are far apart, and the head should be confident
        on its training identities as a trained softmax is).
    max_iter : int, default 2000
    seed : int, default 0
        ``random_state`` of the solver.

    Returns
    -------
    IdentificationHead
    """
    from sklearn.linear_model import LogisticRegression

    x = _unit_rows(embeddings, "embeddings")
    y = np.asarray(identities, dtype=object).ravel()
    if y.shape != (len(x),):
        raise ValueError(f"identities must have one label per embedding row ({len(x)}), got {y.shape}")
    classes = list(pd.unique(y))
    if len(classes) < 2:
        raise ValueError("identities must hold at least 2 identities to fit a softmax head")
    if not (isinstance(C, (int, float)) and C > 0):
        raise ValueError(f"C must be a positive number, got {C!r}")
    codes = pd.Categorical(y, categories=classes).codes
    model = LogisticRegression(C=float(C), max_iter=int(max_iter), random_state=seed)
    model.fit(x, codes)
    return IdentificationHead(model=model, classes=classes, n_train=len(x))


def head_accuracy(head: IdentificationHead, embeddings, identities, *, n_boot: int = 2000,
                  seed=0) -> dict:
    """Top-1 accuracy of ``head`` on held-out images of its training identities.

    Parameters
    ----------
    embeddings : array_like, shape (N, D)
    identities : array_like, shape (N,)
        Identities the head was fitted on.
    n_boot, seed
        The 95% percentile bootstrap over images
        (:func:`faceexp.core.bootstrap.mean_interval` of the per-image 0/1 hits).

    Returns
    -------
    dict
        ``accuracy``, ``ci_low``, ``ci_high`` (fractions), ``exact_low``, ``exact_high``
        (the exact Clopper-Pearson 95% interval of scipy's ``binomtest``: the bootstrap
        interval collapses to one point when every image, or none, is recognised),
        ``n`` (images), ``classes``.
    """
    from faceexp.core.bootstrap import mean_interval

    truth = head.class_index(list(np.asarray(identities, dtype=object).ravel()))
    predicted = np.argmax(head.probabilities(embeddings), axis=1)
    if len(predicted) != len(truth):
        raise ValueError(f"identities has {len(truth)} labels for {len(predicted)} embeddings")
    hits = (predicted == truth).astype(np.float64)
    ci = mean_interval(hits, n_boot=n_boot, seed=seed).iloc[0]
    from scipy.stats import binomtest

    exact = binomtest(int(hits.sum()), len(hits)).proportion_ci(0.95, method="exact")
    return {"accuracy": float(ci["mean"]), "ci_low": float(ci["ci_low"]),
            "ci_high": float(ci["ci_high"]), "exact_low": float(exact.low),
            "exact_high": float(exact.high), "n": int(len(hits)), "classes": len(head.classes)}


class HeadEmbed:
    """An embed callable with the head's probabilities added as layer ``"softmax"``.

    Parameters
    ----------
    embed : callable
        ``(N, 3, H, W)`` in [0, 1] -> dict layer -> ``(N, D)`` (e.g. a recogniser
        subject's embedder); must give ``embedding_layer``.
    head : IdentificationHead
    embedding_layer : str, default "embedding"
    layers : sequence of str, optional
        Layers returned (default ``[embedding_layer, "softmax"]``).

    Calling it returns ``{layer: torch.Tensor (N, D_layer)}``; ``"softmax"`` is ``(N, C)``
    float64, the head's ``predict_proba`` of the embedding.
    """

    compiled = False

    def __init__(self, embed, head: IdentificationHead, *, embedding_layer: str = "embedding",
                 layers=None):
        if not callable(embed):
            raise ValueError(f"embed must be a callable, got {type(embed).__name__}")
        self.embed, self.head, self.embedding_layer = embed, head, embedding_layer
        self.layers = [embedding_layer, "softmax"] if layers is None else list(layers)
        self.preferred_batch_size = getattr(embed, "preferred_batch_size", None)

    def __call__(self, batch):
        import torch

        out = self.embed(batch)
        if not isinstance(out, dict):
            out = {self.embedding_layer: out}
        if self.embedding_layer not in out:
            raise ValueError(f"embed gave layers {list(out)}, not {self.embedding_layer!r}")
        emb = out[self.embedding_layer]
        emb_np = emb.detach().cpu().numpy() if isinstance(emb, torch.Tensor) else np.asarray(emb)
        result = {}
        for layer in self.layers:
            if layer == "softmax":
                result[layer] = torch.from_numpy(self.head.probabilities(emb_np))
            else:
                result[layer] = out[layer] if isinstance(out[layer], torch.Tensor) \
                    else torch.as_tensor(np.asarray(out[layer]))
        return result
