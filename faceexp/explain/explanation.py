"""The result of an explanation, and its one file format.

:class:`Explanation` holds everything one run of the explainer produced (the
heatmaps of every layer, the superpixels, the linear models, the samples and
their targets, the options and the seed). :meth:`Explanation.save` writes it to
a compressed ``.npz`` atomically and :meth:`Explanation.load` reads it back:
the CLI, the artifacts cache and users' scripts all use this one format.
:func:`stack_heatmaps` turns a list of explanations of same-size images into
arrays for statistics.
"""
from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from faceexp.core.files import atomic_write

__all__ = ["Explanation", "ExplanationWarning", "stack_heatmaps"]

class ExplanationWarning(UserWarning):
    """An explanation was computed but may mean nothing (an under-determined fit, an
    embedding that does not react to the perturbation); the message says why."""


#: Version of the ``.npz`` layout written by :meth:`Explanation.save`.
FORMAT = "faceexp-explanation-1"


@dataclass(eq=False, repr=False)
class Explanation:
    """The result of one explanation.

    Attributes
    ----------
    heatmaps : ndarray, shape (L, H, W), float64 in [0, 1]
        One heatmap per layer: coefficients painted on their superpixels,
        smoothed, min-max scaled (a constant map becomes all zeros).
    layers : list of str, length L
        Layer names, in the order of ``heatmaps``.
    segments : ndarray, shape (H, W), int
        Superpixel label of every pixel, 0 .. S-1.
    coefficients : ndarray, shape (L, S)
        Raw coefficient of every superpixel in every layer's linear model.
    intercepts : ndarray, shape (L,)
        Intercept of every layer's linear model.
    targets : ndarray, shape (L, n_samples)
        The fitted target (e.g. cosine similarity) of every perturbed sample.
    samples : ndarray, shape (n_samples, S), bool
        Which superpixels each sample kept (True = kept); row 0 keeps all.
    weights : ndarray, shape (n_samples,)
        Kernel weight of every sample in the fit.
    r2 : ndarray, shape (L,)
        Weighted coefficient of determination of every layer's fit (as
        ``sklearn.metrics.r2_score`` with ``sample_weight``).
    options : dict
        Every option used (JSON-serialisable).
    seed : int
        Seed of the sampling; ``explain(..., seed=seed)`` reproduces it.
    """

    heatmaps: np.ndarray
    layers: list[str]
    segments: np.ndarray
    coefficients: np.ndarray
    intercepts: np.ndarray
    targets: np.ndarray
    samples: np.ndarray
    weights: np.ndarray
    r2: np.ndarray
    options: dict = field(default_factory=dict)
    seed: int = 0

    _ARRAYS = ("heatmaps", "segments", "coefficients", "intercepts", "targets", "samples",
               "weights", "r2")

    def __repr__(self) -> str:
        return (f"Explanation(layers={self.layers}, heatmaps={self.heatmaps.shape}, "
                f"superpixels={self.coefficients.shape[1]}, n_samples={self.samples.shape[0]}, "
                f"r2={np.round(self.r2, 3).tolist()}, seed={self.seed})")

    def heatmap(self, layer: str | int | None = None) -> np.ndarray:
        """The (H, W) heatmap of one layer (by name or index).

        ``layer=None`` is accepted only when there is a single layer.
        """
        if layer is None:
            if len(self.layers) != 1:
                raise ValueError(f"layer: this explanation has {len(self.layers)} layers "
                                 f"{self.layers}; name one")
            return self.heatmaps[0]
        if isinstance(layer, numbers.Integral) and not isinstance(layer, bool):
            if not -len(self.layers) <= layer < len(self.layers):
                raise ValueError(f"layer: index {layer} out of range for "
                                 f"{len(self.layers)} layers")
            return self.heatmaps[layer]
        if layer not in self.layers:
            raise ValueError(f"layer must be one of {self.layers}, got {layer!r}")
        return self.heatmaps[self.layers.index(layer)]

    def save(self, path: str | Path, **extra: np.ndarray) -> Path:
        """Write the explanation to a compressed ``.npz`` file, atomically.

        Parameters
        ----------
        path : str or Path
            Output file (``.npz`` is appended if missing; parent folders are
            created).
        **extra : array_like
            More arrays to store beside it (e.g. ``image=``); :meth:`load`
            ignores them.
        """
        clash = set(extra) & (set(self._ARRAYS) | {"layers", "options", "seed", "format"})
        if clash:
            raise ValueError(f"extra: names {sorted(clash)} are used by the explanation")
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        arrays = {name: getattr(self, name) for name in self._ARRAYS}
        # Written to a temporary file in the same folder, then renamed: a killed
        # run never leaves a half-written explanation behind.
        atomic_write(path, lambda file: np.savez_compressed(
            file, **arrays, layers=np.array(self.layers, dtype=str),
            options=np.array(json.dumps(self.options)), seed=np.array(str(self.seed)),
            format=np.array(FORMAT), **{k: np.asarray(v) for k, v in extra.items()}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Explanation":
        """Read an explanation written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: no such file {path}")
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in cls._ARRAYS + ("layers", "options", "seed") if k not in data]
            if missing:
                raise ValueError(f"path: {path} is not a saved Explanation (missing {missing})")
            arrays = {name: data[name] for name in cls._ARRAYS}
            return cls(**arrays, layers=[str(x) for x in data["layers"]],
                       options=json.loads(str(data["options"])), seed=int(str(data["seed"])))


def stack_heatmaps(explanations: Sequence[Explanation]) -> dict[str, np.ndarray]:
    """The arrays of several explanations of same-size images, stacked.

    Returns
    -------
    dict with ``heatmaps`` (N, L, H, W) float32, ``segments`` (N, H, W) int32,
    ``r2`` (N, L) float32; ValueError when the explanations differ in layers
    or image size.
    """
    explanations = list(explanations)
    if not explanations:
        raise ValueError("explanations must hold at least one Explanation")
    layers, shape = explanations[0].layers, explanations[0].heatmaps.shape
    for k, item in enumerate(explanations):
        if item.layers != layers or item.heatmaps.shape != shape:
            raise ValueError(f"explanations[{k}] has layers {item.layers} and heatmaps "
                             f"{item.heatmaps.shape}, but explanations[0] has {layers} and "
                             f"{shape}: stack explanations of one kind")
    return {"heatmaps": np.stack([x.heatmaps for x in explanations]).astype(np.float32),
            "segments": np.stack([x.segments for x in explanations]).astype(np.int32),
            "r2": np.stack([np.asarray(x.r2) for x in explanations]).astype(np.float32)}
