"""The result of an explanation, and its one file format.

:class:`Explanation` holds everything one run of the explainer produced (the
heatmaps of every layer, the superpixels, the linear models, the samples and
their targets, the options and the seed). :meth:`Explanation.save` writes it to
a compressed ``.npz`` atomically and :meth:`Explanation.load` reads it back:
the CLI, the artifacts cache and users' scripts all use this one format.
Every file also records what made it (:attr:`Explanation.provenance`: faceexp's
version, and where the caller knows them the model with a hash of its weights and
the source image's content hash; :mod:`faceexp.explain.provenance`), and
:meth:`Explanation.load` checks the file's format tag, array shapes and layer
count before anything uses them. :func:`stack_heatmaps` turns a list of
explanations of same-size images into arrays for statistics.

Files of the first format (``faceexp-explanation-1``, before provenance was
recorded) still load; their ``provenance`` reads as None.
"""
from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from faceexp.core.files import atomic_write
from faceexp.core.version import __version__

__all__ = ["Explanation", "ExplanationWarning", "stack_heatmaps", "read_provenance", "FORMAT",
           "FORMATS"]

class ExplanationWarning(UserWarning):
    """An explanation was computed but may mean nothing (an under-determined fit, an
    embedding that does not react to the perturbation); the message says why."""


#: Version of the ``.npz`` layout written by :meth:`Explanation.save` (2: with provenance).
FORMAT = "faceexp-explanation-2"
#: The layouts :meth:`Explanation.load` reads (1: before provenance was recorded).
FORMATS = ("faceexp-explanation-1", FORMAT)


def _made_here() -> dict:
    """The provenance of an explanation computed by this process: faceexp's version."""
    return {"faceexp_version": __version__}


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
        Every option used (JSON-serialisable). With ``n_samples="auto"`` also
        ``options["convergence"]``: ``samples_used``, ``agreement`` (estimated
        Spearman agreement with the infinite-sample map per layer), ``history``,
        ``converged``, ``tolerance``, ``max_samples``, ``round_samples``; see
        :attr:`samples_used` and :attr:`stability`.
    seed : int
        Seed of the sampling; ``explain(..., seed=seed)`` reproduces it.
    provenance : dict or None
        What made it (JSON-serialisable): ``faceexp_version`` of the code that
        computed it, and what callers add: ``model`` (name, weights hash,
        checkpoint; :func:`faceexp.explain.provenance.describe_model`), ``image``
        (path, content hash ``sha256``, box; :func:`faceexp.explain.provenance.image_record`),
        and for :func:`faceexp.explain.explanation_sets.explain_set` the run's
        ``settings`` and their hash. None: unknown (a file of the first format).
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
    provenance: dict | None = field(default_factory=_made_here)

    _ARRAYS = ("heatmaps", "segments", "coefficients", "intercepts", "targets", "samples",
               "weights", "r2")

    def __repr__(self) -> str:
        return (f"Explanation(layers={self.layers}, heatmaps={self.heatmaps.shape}, "
                f"superpixels={self.coefficients.shape[1]}, n_samples={self.samples.shape[0]}, "
                f"r2={np.round(self.r2, 3).tolist()}, seed={self.seed})")

    @property
    def samples_used(self) -> int:
        """The number of perturbed samples fitted (row 0 included)."""
        return int(self.samples.shape[0])

    @property
    def stability(self) -> np.ndarray | None:
        """(L,) estimated Spearman agreement of each layer's coefficients with the
        infinite-sample map, as the ``n_samples="auto"`` rule measured it when it stopped
        (NaN where too few samples); None for a fixed sample count (then
        :func:`faceexp.explain.convergence.estimate_agreement` computes it)."""
        record = self.options.get("convergence")
        if not isinstance(record, dict) or "agreement" not in record:
            return None
        return np.array([np.nan if a is None else a for a in record["agreement"]], dtype=float)

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

        Returns
        -------
        Path
            The file written (format :data:`FORMAT`, with :attr:`provenance`).
        """
        clash = set(extra) & (set(self._ARRAYS) | {"layers", "options", "seed", "format",
                                                    "provenance"})
        if clash:
            raise ValueError(f"extra: names {sorted(clash)} are used by the explanation")
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        arrays = {name: getattr(self, name) for name in self._ARRAYS}
        texts = {}
        for name in ("options", "provenance"):
            try:
                texts[name] = json.dumps(getattr(self, name), sort_keys=name == "provenance")
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name} must be JSON-serialisable to be saved: "
                                 f"{' '.join(str(exc).split())}") from None
        # Written to a temporary file in the same folder, then renamed: a killed
        # run never leaves a half-written explanation behind.
        atomic_write(path, lambda file: np.savez_compressed(
            file, **arrays, layers=np.array(self.layers, dtype=str),
            options=np.array(texts["options"]), seed=np.array(str(self.seed)),
            provenance=np.array(texts["provenance"]),
            format=np.array(FORMAT), **{k: np.asarray(v) for k, v in extra.items()}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Explanation":
        """Read an explanation written by :meth:`save`, checked.

        Raises
        ------
        FileNotFoundError
            When ``path`` is not a file.
        ValueError
            One line naming the file when it is not an explanation of a format
            this faceexp reads (:data:`FORMATS`), or when its arrays do not fit
            together (shapes, layer count, superpixel count).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: no such file {path}")
        with _opened(path) as data:
            _check_format(path, data)
            missing = [k for k in cls._ARRAYS + ("layers", "options", "seed") if k not in data]
            if missing:
                raise ValueError(f"{path} is not a whole saved Explanation (missing {missing}): "
                                 "explain the image again to write it anew")
            try:
                arrays = {name: data[name] for name in cls._ARRAYS}
                layers = [str(x) for x in np.atleast_1d(data["layers"])]
                options = json.loads(str(data["options"]))
                seed = int(str(data["seed"]))
                provenance = (json.loads(str(data["provenance"])) if "provenance" in data
                              else None)
            except (ValueError, TypeError, OSError, EOFError) as exc:
                raise ValueError(f"{path}: an Explanation file whose fields cannot be read "
                                 f"({_one_line(exc)}): explain the image again") from None
        _check_arrays(path, arrays, layers)
        if not isinstance(options, dict) or not (provenance is None or isinstance(provenance,
                                                                                  dict)):
            raise ValueError(f"{path}: options and provenance must be JSON objects: explain "
                             "the image again")
        return cls(**arrays, layers=layers, options=options, seed=seed, provenance=provenance)


def read_provenance(path: str | Path) -> dict | None:
    """The :attr:`Explanation.provenance` of a saved file, without reading its arrays.

    Returns None for a file of the first format (no provenance recorded);
    ValueError (one line naming the file) when it is not an explanation file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {path}")
    with _opened(path) as data:
        _check_format(path, data)
        if "provenance" not in data:
            return None
        try:
            record = json.loads(str(data["provenance"]))
        except (ValueError, TypeError, OSError, EOFError) as exc:
            raise ValueError(f"{path}: its provenance cannot be read ({_one_line(exc)})") \
                from None
    if not (record is None or isinstance(record, dict)):
        raise ValueError(f"{path}: its provenance is not a JSON object")
    return record


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _opened(path: Path):
    """``np.load(path)`` as an npz archive; one-line ValueError naming the file otherwise."""
    import zipfile

    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not an Explanation file (a .npz written by "
                         f"Explanation.save): {_one_line(exc)}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is a single .npy array, not an Explanation file (a .npz "
                         "written by Explanation.save)")
    return data


def _check_format(path: Path, data) -> None:
    """The file's format tag is one this faceexp reads."""
    if "format" not in data:
        raise ValueError(f"{path} has no format tag: not a file written by Explanation.save")
    try:
        tag = str(data["format"])
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: its format tag cannot be read ({_one_line(exc)})") from None
    if tag not in FORMATS:
        newer = tag.startswith("faceexp-explanation-")
        raise ValueError(f"{path} has format tag {tag[:60]!r}; this faceexp ({__version__}) "
                         f"reads {list(FORMATS)}"
                         + (": upgrade faceexp to read it" if newer else
                            ": not a file written by Explanation.save"))


def _check_arrays(path: Path, arrays: dict, layers: list[str]) -> None:
    """Shapes and layer count agree: (L, H, W), (H, W), (L, S), (L,), (L, n), (n, S), (n,), (L,)."""
    def bad(what: str):
        return ValueError(f"{path}: {what}; the file is damaged or was not written by "
                          "Explanation.save: explain the image again")

    heatmaps, segments = arrays["heatmaps"], arrays["segments"]
    if heatmaps.ndim != 3 or 0 in heatmaps.shape:
        raise bad(f"heatmaps must have shape (layers, H, W), got {heatmaps.shape}")
    n_layers, height, width = heatmaps.shape
    if len(layers) != n_layers:
        raise bad(f"it names {len(layers)} layer(s) {layers[:5]} but holds {n_layers} heatmap(s)")
    if segments.shape != (height, width) or not np.issubdtype(segments.dtype, np.integer):
        raise bad(f"segments must be integers of shape {(height, width)} (the heatmaps' H, W), "
                  f"got {segments.dtype} {segments.shape}")
    coefficients, samples = arrays["coefficients"], arrays["samples"]
    if coefficients.ndim != 2 or coefficients.shape[0] != n_layers:
        raise bad(f"coefficients must have shape ({n_layers}, superpixels), got "
                  f"{coefficients.shape}")
    n_superpixels = coefficients.shape[1]
    if samples.ndim != 2 or samples.shape[1] != n_superpixels or samples.shape[0] < 1:
        raise bad(f"samples must have shape (n_samples, {n_superpixels}), got {samples.shape}")
    n_samples = samples.shape[0]
    if segments.size and (segments.min() < 0 or segments.max() >= n_superpixels):
        raise bad(f"segments must be labels 0 .. {n_superpixels - 1}, got "
                  f"{segments.min()} .. {segments.max()}")
    expected = {"intercepts": (n_layers,), "targets": (n_layers, n_samples),
                "weights": (n_samples,), "r2": (n_layers,)}
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise bad(f"{name} must have shape {shape}, got {arrays[name].shape}")


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
