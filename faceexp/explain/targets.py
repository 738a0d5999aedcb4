"""What an explanation explains: the number each perturbed sample is reduced to.

A target maps one layer's activations of the perturbed samples, ``(N, D)``, and
the reference activations, ``(D,)``, to one value per sample, ``(N,)``. The
explainer fits its linear model to these values. As in captum, the target is
a small object handed to the explainer, and what varies per image (the
reference, the class) goes to ``Explainer.explain``:

* :class:`Cosine` (the paper): cosine similarity of each sample's embedding to
  the reference embedding, the unperturbed image's own or, in pair mode,
  another face's.
* :class:`ClassProbability` (the original LIME, for identities seen in
  training): the probability of one class, read from a softmax layer; the
  class is ``explain(..., class_index=)`` or the unperturbed image's top class.
* any callable ``target(activations, reference) -> (N,)``.

The strings ``"cosine"`` and ``"softmax"`` stand for ``Cosine()`` and
``ClassProbability()``.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from faceexp.core.similarity import cosine_to

__all__ = ["Cosine", "ClassProbability", "as_target", "target_name", "needs_class_index",
           "TARGET_NAMES"]

#: The shorthands accepted for targets.
TARGET_NAMES = ("cosine", "softmax")


@dataclass(frozen=True)
class Cosine:
    """Cosine similarity of each sample's activations to the reference activations
    (:func:`faceexp.core.similarity.cosine_to`; a zero vector scores 0)."""

    name = "cosine"

    def __call__(self, activations: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return cosine_to(activations, reference)


@dataclass(frozen=True)
class ClassProbability:
    """Column ``class_index`` of a probability layer (the original LIME's target).

    Parameters
    ----------
    layer : str, default "softmax"
        The layer holding the probabilities when this target is given alone
        (in a dict ``layer -> target`` the key names the layer). "softmax" is
        the name :class:`faceexp.models.Embedder` uses.
    class_index : int, optional
        Set by the explainer for each image (:meth:`for_class`); None until then.
    """

    layer: str = "softmax"
    class_index: int | None = None
    name = "softmax"

    def for_class(self, class_index: int | None, reference: torch.Tensor) -> "ClassProbability":
        """This target for one class: ``class_index``, or the top class of ``reference``.

        Raises ValueError when ``class_index`` is negative or not below the
        number of classes (a negative index is not taken to count from the end).
        """
        classes = int(reference.shape[0])
        if class_index is None:
            class_index = int(torch.argmax(reference))
        elif not 0 <= class_index < classes:
            raise ValueError(f"class_index must be in [0, {classes}) for a layer with {classes} "
                             f"classes, got {class_index}")
        return ClassProbability(layer=self.layer, class_index=int(class_index))

    def __call__(self, activations: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        if self.class_index is None:
            return self.for_class(None, reference)(activations, reference)
        return activations[:, self.class_index].double()


def as_target(target: Any, name: str = "target") -> Callable:
    """A target object from a target, a shorthand string or a callable.

    Raises ValueError naming ``name`` for anything else.
    """
    if isinstance(target, str):
        if target == "cosine":
            return Cosine()
        if target == "softmax":
            return ClassProbability()
        raise ValueError(f"{name} must be one of {TARGET_NAMES}, Cosine(), ClassProbability() "
                         f"or a callable(activations, reference) -> (N,), got {target!r}")
    if not callable(target):
        raise ValueError(f"{name} must be one of {TARGET_NAMES}, a target object or a "
                         f"callable, got {target!r}")
    return target


def target_name(target: Any) -> Any:
    """The target as recorded in ``Explanation.options``: "cosine", "softmax",
    "callable", or a dict of those by layer."""
    if isinstance(target, Mapping):
        return {layer: target_name(kind) for layer, kind in target.items()}
    if isinstance(target, str):
        return target
    return getattr(target, "name", None) if isinstance(target, (Cosine, ClassProbability)) \
        else "callable"


def needs_class_index(target: Any) -> bool:
    """Whether ``target`` (a target, string, or dict layer -> target) explains a
    class probability for at least one layer."""
    if isinstance(target, Mapping):
        return any(needs_class_index(kind) for kind in target.values())
    return isinstance(target, ClassProbability) or (isinstance(target, str)
                                                     and target == "softmax")


def check_class_index(class_index: Any) -> int | None:
    """``class_index`` as an int (or None); ValueError for anything else."""
    if class_index is None:
        return None
    if isinstance(class_index, bool) or not isinstance(class_index, numbers.Integral):
        raise ValueError(f"class_index must be an int or None, got {class_index!r}")
    if class_index < 0:
        raise ValueError(f"class_index must be >= 0, got {class_index} (a negative index does "
                         "not count from the end)")
    return int(class_index)
