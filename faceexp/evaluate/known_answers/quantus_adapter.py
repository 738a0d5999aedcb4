"""A verification pair as the two-output classifier Quantus expects.

Quantus (Hedström et al. 2023) scores explanations of classifiers: ``model(x)``
-> logits (N, K) and a class ``y`` per image. A verification explanation
explains the similarity of a probe to its mate instead, so :class:`PairClassifier`
wraps an embedding and the mate's embedding as a torch module with two logits,
``scale * (s - threshold)`` for *match* (class 0) and its negative for
*non-match* (class 1), where ``s`` is the cosine similarity of each image's
embedding to the mate's: the softmax of *match* is
``sigmoid(2 * scale * (s - threshold))``, increasing in ``s``, so any Quantus
metric that perturbs the probe and reads class 0 reads the pair score. The
wrapped module's parameters are the classifier's, so Quantus's randomisation
metrics (MPRT) re-initialise the recogniser.

Quantus is not a dependency: ``pip install --no-deps quantus==0.6.0 cachetools``
beside the project's pins (its own requirements would add ``opencv-python``, a
second ``cv2`` beside grad-cam's ``opencv-python-headless``).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from faceexp.core import checks
from faceexp.core.similarity import cosine_to

__all__ = ["PairClassifier", "MATCH", "NON_MATCH"]

#: The classes of :class:`PairClassifier`.
MATCH, NON_MATCH = 0, 1


class _Callable(torch.nn.Module):
    """A black-box embed callable as a module (no parameters)."""

    def __init__(self, embed: Callable):
        super().__init__()
        self.embed = embed

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.embed(batch)
        return out if isinstance(out, torch.Tensor) else torch.as_tensor(np.asarray(out))


class PairClassifier(torch.nn.Module):
    """Verification against one mate as a two-class classifier (see the module docstring).

    Parameters
    ----------
    embed : torch.nn.Module or callable
        ``(N, 3, H, W)`` in [0, 1] -> ``(N, D)`` embeddings (FaceNet's
        ``rec.model``, a FaceModel's ``embed``, ...).
    reference : array_like, shape (D,)
        The mate's embedding.
    threshold : float
        The similarity where match and non-match are equally likely (e.g. the
        recogniser's EER threshold).
    scale : float > 0
        Logit per unit of similarity.

    Forward: ``(N, 3, H, W)`` -> ``(N, 2)`` logits ``[match, non-match]``.
    """

    def __init__(self, embed: Any, reference: Any, *, threshold: float = 0.0,
                 scale: float = 10.0):
        super().__init__()
        if not (isinstance(embed, torch.nn.Module) or callable(embed)):
            raise ValueError("embed must be a torch module or a callable mapping (N, 3, H, W) "
                             "batches to (N, D) embeddings")
        self.embed = embed if isinstance(embed, torch.nn.Module) else _Callable(embed)
        vector = torch.as_tensor(np.asarray(reference.detach().cpu() if isinstance(
            reference, torch.Tensor) else reference, dtype=np.float32))
        if vector.ndim != 1:
            raise ValueError(f"reference must be one (D,) embedding (the mate's), got shape "
                             f"{tuple(vector.shape)}")
        self.register_buffer("reference", vector)
        self.threshold = checks.finite_real(threshold, "threshold")
        self.scale = checks.finite_real(scale, "scale")
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")

    def similarity(self, batch: torch.Tensor) -> torch.Tensor:
        """(N,) cosine similarity of each image to the mate."""
        out = self.embed(torch.as_tensor(batch, dtype=torch.float32))
        if isinstance(out, dict):
            if len(out) != 1:
                raise ValueError(f"embed returns layers {list(out)}; give it one layer")
            out = next(iter(out.values()))
        return cosine_to(out.reshape(len(out), -1).float(), self.reference.to(out.device))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        margin = self.scale * (self.similarity(batch) - self.threshold)
        return torch.stack([margin, -margin], dim=1)
