"""LIME adapted to biometric verification (Alonso-Fernandez et al., section II).

The image is cut into superpixels; ``n_samples`` perturbed copies are made by
blacking out random subsets of them; every copy goes through an embedding
function, and a *target* turns each copy's output into one number per layer:

* ``target="cosine"`` (the paper): cosine similarity between the copy's
  embedding and the unperturbed image's own embedding;
* ``target="cosine"`` with ``reference=`` another image or an embedding: cosine
  similarity to that reference (pair mode: what makes a *pair* match);
* ``target="softmax"``: the probability of one class (the original LIME, for
  identities seen in training);
* or any callable ``target(activations, reference) -> (N,)``.

A weighted linear model of the targets on the binary superpixel on/off vectors
(intercept included, weights from a kernel on the distance to the unperturbed
image) gives one coefficient per superpixel; the coefficients are painted onto
their superpixels, smoothed with a Gaussian and scaled to [0, 1].

The target is composed into one explainer (as captum's ``Lime`` composes its
similarity and perturbation functions), so the three modes share the sampling,
the batched scoring and the fit. All layers of an embedding callable come from
one forward pass per batch and are fitted by one least-squares solve.

The explainer knows nothing about networks: ``embed`` is any callable mapping a
float32 batch ``(N, 3, H, W)`` in [0, 1] to ``(N, D)`` (tensor or numpy array)
or to a dict of such arrays by layer name, e.g. :class:`faceexp.models.Embedder`.

Two reference implementations differ in details; both are offered:

============== ================================ =================================
option         paper text / MATLAB LIME [11]     ``lime`` package (lime_image)
============== ================================ =================================
sampling       ``"bernoulli"``, p_off=0.6 (text)  keep w.p. 0.5: ``p_off=0.5``
               ``"matlab"``: per-sample drop
               probability ~ U[0, 0.8] (code)
kernel         ``"matlab"``: d = fraction         ``"lime"``: d = cosine distance
               removed, w = exp(-d^2/0.35^2)      of the binary vectors,
                                                  w = sqrt(exp(-d^2/0.25^2))
fit            weighted least squares             Ridge(alpha=1): ``ridge=1.0``
fill           black (``fill="black"``)           ``hide_color=0``: black
============== ================================ =================================
"""
from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

__all__ = ["explain", "Explainer", "Explanation"]

#: ImageNet normalisation mean in pixel space (= ``faceexp.data.IMAGENET_MEAN``):
#: the value that becomes 0 once the model normalises its input.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_SAMPLINGS = ("bernoulli", "matlab")
_KERNELS = ("matlab", "lime")
_TARGETS = ("cosine", "softmax")
_FILLS = ("black", "mean")
#: Default kernel widths: the MATLAB LIME's 0.35 and lime's 0.25.
_KERNEL_WIDTHS = {"matlab": 0.35, "lime": 0.25}
#: The MATLAB LIME draws each sample's drop probability uniformly in [0, 0.8].
_MATLAB_MAX_P_OFF = 0.8
#: Name of the only "layer" of an embed callable that returns one array.
_SINGLE_LAYER = "embedding"


# --------------------------------------------------------------------------- result


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
            raise ValueError(f"layer: unknown layer {layer!r}; available: {self.layers}")
        return self.heatmaps[self.layers.index(layer)]

    def save(self, path: str | Path, **extra: np.ndarray) -> Path:
        """Write the explanation to a compressed ``.npz`` file.

        Parameters
        ----------
        path : str or Path
            Output file (``.npz`` is appended by numpy if missing).
        **extra : array_like
            More arrays to store beside it (e.g. ``image=``); :meth:`load`
            ignores them.
        """
        clash = set(extra) & (set(self._ARRAYS) | {"layers", "options", "seed"})
        if clash:
            raise ValueError(f"extra: names {sorted(clash)} are used by the explanation")
        path = Path(path)
        arrays = {name: getattr(self, name) for name in self._ARRAYS}
        np.savez_compressed(
            path, **arrays, layers=np.array(self.layers, dtype=str),
            options=np.array(json.dumps(self.options)), seed=np.array(str(self.seed)),
            **{k: np.asarray(v) for k, v in extra.items()})
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

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


# --------------------------------------------------------------------------- targets


def _cosine_rows(activations: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of ``activations`` (N, D) with ``reference`` (D,).

    One matrix-vector product and one norm reduction: nothing of size (N, D) is
    allocated, so huge flattened layers cost two reads. A zero vector has
    similarity 0 with everything (as ``sklearn.metrics.pairwise.cosine_similarity``).
    Non-finite activations give non-finite similarities (the caller rejects them).
    """
    if not activations.is_floating_point() or activations.dtype in (torch.float16,
                                                                   torch.bfloat16):
        activations = activations.float()
    reference = reference.to(device=activations.device, dtype=activations.dtype)
    dots = activations @ reference
    denominators = torch.linalg.vector_norm(activations, dim=1) * torch.linalg.vector_norm(
        reference)
    return torch.where(denominators == 0, torch.zeros_like(dots), dots / denominators)


class _CosineTarget:
    """Cosine similarity to the reference activations of each layer."""

    name = "cosine"

    def __call__(self, activations: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return _cosine_rows(activations, reference)


class _ClassProbabilityTarget:
    """Column ``class_index`` of the layer (the softmax probability, original LIME).

    ``class_index=None``: the top class of the unperturbed image.
    """

    name = "softmax"

    def __init__(self, class_index: int | None):
        self.class_index = class_index

    def resolve(self, reference: torch.Tensor) -> int:
        if self.class_index is None:
            return int(torch.argmax(reference))
        if not -reference.shape[0] <= self.class_index < reference.shape[0]:
            raise ValueError(f"class_index: {self.class_index} is out of range for a layer "
                             f"with {reference.shape[0]} classes")
        return int(self.class_index) % reference.shape[0]

    def __call__(self, activations: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return activations[:, self.resolve(reference)].double()


def _check_target(kind: Any, name: str) -> None:
    if isinstance(kind, str):
        if kind not in _TARGETS:
            raise ValueError(f"{name}: unknown target {kind!r}; use one of {_TARGETS} "
                             "or a callable(activations, reference) -> (N,)")
    elif not callable(kind):
        raise ValueError(f"{name}: expected one of {_TARGETS} or a callable, got {kind!r}")


def _target_name(target: Any) -> Any:
    """The target as recorded in ``Explanation.options`` (callables as "callable")."""
    if isinstance(target, Mapping):
        return {name: _target_name(kind) for name, kind in target.items()}
    return target if isinstance(target, str) else "callable"


def needs_class_index(target: Any) -> bool:
    """Whether ``target`` (a string, callable or dict layer -> target) explains a
    class probability ("softmax") for at least one layer."""
    if isinstance(target, Mapping):
        return any(isinstance(kind, str) and kind == "softmax" for kind in target.values())
    return isinstance(target, str) and target == "softmax"


# --------------------------------------------------------------------------- pieces


def _check_image(image: Any, name: str = "image") -> np.ndarray:
    """(H, W, 3) uint8 or float in [0, 1] -> float32 (H, W, 3) in [0, 1]."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name}: expected an (H, W, 3) RGB image, got shape {image.shape} "
                         "(use skimage.color.gray2rgb for a grey image; torch batches are "
                         "(N, 3, H, W), one image here is (H, W, 3))")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"{name}: image of shape {image.shape} is too small")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255)
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"{name}: dtype {image.dtype} not accepted; give uint8 (0..255) or "
                         "float values in [0, 1]")
    image = image.astype(np.float32)
    if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        raise ValueError(f"{name}: float values must lie in [0, 1] (got min {np.nanmin(image):g}, "
                         f"max {np.nanmax(image):g}, or NaN); divide uint8 data by 255")
    return image


def _relabel(segments: Any, shape: tuple[int, int]) -> np.ndarray:
    """Validate a user segment map and relabel it to 0 .. S-1 (sorted label order)."""
    segments = np.asarray(segments)
    if segments.shape != shape:
        raise ValueError(f"segments: expected an integer map of shape {shape} (the image's), "
                         f"got {segments.shape}")
    if not np.issubdtype(segments.dtype, np.integer):
        raise ValueError(f"segments: expected integer labels, got dtype {segments.dtype}")
    _, labels = np.unique(segments, return_inverse=True)
    return labels.reshape(shape).astype(np.int64)


def _slic_segments(image: np.ndarray, n_segments: int, compactness: float,
                   slic_zero: bool) -> np.ndarray:
    """SLIC superpixels (skimage) of an (H, W, 3) float image, labels 0 .. S-1.

    ``compactness=10`` in Lab space is skimage's and MATLAB ``superpixels``'
    default; ``start_label=0`` makes the labels index the coefficient vector.
    """
    from skimage.segmentation import slic

    labels = slic(image, n_segments=n_segments, compactness=compactness, start_label=0,
                  channel_axis=-1, slic_zero=slic_zero)
    return _relabel(labels, image.shape[:2])


def _draw_samples(rng: np.random.Generator, n_samples: int, n_superpixels: int,
                  sampling: str, p_off: float) -> np.ndarray:
    """(n_samples, S) bool on/off matrix; row 0 is the unperturbed image (all on).

    ``"bernoulli"``: each superpixel off independently with probability ``p_off``.
    ``"matlab"``: per sample a drop probability ~ U[0, 0.8], then each superpixel
    off with that probability.
    """
    if sampling == "bernoulli":
        off_probability = np.full((n_samples, 1), p_off)
    else:
        off_probability = rng.uniform(0.0, _MATLAB_MAX_P_OFF, size=(n_samples, 1))
    samples = rng.random((n_samples, n_superpixels)) >= off_probability
    samples[0] = True
    return samples


def _kernel_weights(samples: np.ndarray, kernel: str, width: float) -> np.ndarray:
    """Sample weights from the distance of each binary vector to the all-on vector.

    ``"matlab"``: d = fraction of superpixels removed, w = exp(-d^2 / width^2).
    ``"lime"``: d = cosine distance to the all-ones vector (1 for the all-off
    vector), w = sqrt(exp(-d^2 / width^2)).
    """
    kept = samples.sum(axis=1).astype(np.float64)
    n_superpixels = samples.shape[1]
    if kernel == "matlab":
        distance = 1.0 - kept / n_superpixels
        return np.exp(-distance ** 2 / width ** 2)
    distance = 1.0 - np.sqrt(kept / n_superpixels)   # 1 - k / (sqrt(k) * sqrt(S))
    return np.sqrt(np.exp(-distance ** 2 / width ** 2))


def _weighted_least_squares(samples: np.ndarray, targets: np.ndarray, weights: np.ndarray,
                            ridge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit every column of ``targets`` with one weighted (ridge) least-squares solve.

    Minimises ``sum_i w_i (y_i - b0 - x_i . b)^2 + ridge * |b|^2`` (the intercept
    is not penalised), like sklearn's ``LinearRegression``/``Ridge`` with
    ``sample_weight``: the design is centred by its weighted means, scaled by
    sqrt(w), augmented with sqrt(ridge) * I, and solved by ``lstsq`` with an
    (n, L) right-hand side (the minimum-norm solution if under-determined).

    Parameters
    ----------
    samples : (n, S) bool
    targets : (n, L) float
    weights : (n,) float, positive
    ridge : float >= 0

    Returns
    -------
    coefficients : (L, S)
    intercepts : (L,)
    r2 : (L,) weighted R^2 (as sklearn's ``r2_score`` with ``sample_weight``; 1.0
        for a constant target, which the fit reproduces exactly).
    """
    x = samples.astype(np.float64)
    y = np.asarray(targets, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    total = w.sum()
    x_mean = w @ x / total
    constant = np.ptp(y, axis=0) == 0
    y_mean = np.where(constant, y[0], w @ y / total)   # exact for a constant target
    root = np.sqrt(w)[:, None]
    design = (x - x_mean) * root
    rhs = (y - y_mean) * root
    if ridge > 0:
        n_features = x.shape[1]
        design = np.vstack([design, math.sqrt(ridge) * np.eye(n_features)])
        rhs = np.vstack([rhs, np.zeros((n_features, y.shape[1]))])
    beta = np.linalg.lstsq(design, rhs, rcond=None)[0]            # (S, L)
    intercepts = y_mean - x_mean @ beta
    residual = y - (x @ beta + intercepts)
    numerator = w @ residual ** 2
    denominator = w @ (y - y_mean) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(denominator > 0, 1.0 - numerator / denominator,
                      np.where(numerator == 0, 1.0, 0.0))
    r2[constant] = 1.0
    return beta.T.copy(), intercepts, r2


def _paint(coefficients: np.ndarray, segments: np.ndarray, sigma: float,
           positive_only: bool) -> np.ndarray:
    """(L, S) coefficients -> (L, H, W) heatmaps in [0, 1].

    Paint every superpixel with its coefficient (``max(b, 0)`` if
    ``positive_only``, as the MATLAB LIME), smooth with a Gaussian of ``sigma``
    pixels the way MATLAB's ``imgaussfilt`` does (kernel radius ceil(2 sigma),
    replicated border), then min-max scale each map; a constant map becomes 0.
    """
    from scipy.ndimage import gaussian_filter

    painted = coefficients[:, segments].astype(np.float64)         # (L, H, W)
    if positive_only:
        painted = np.maximum(painted, 0.0)
    heatmaps = np.empty_like(painted)
    for i, layer_map in enumerate(painted):
        if sigma > 0:
            layer_map = gaussian_filter(layer_map, sigma, mode="nearest",
                                        radius=max(1, math.ceil(2 * sigma)))
        low, high = layer_map.min(), layer_map.max()
        heatmaps[i] = (layer_map - low) / (high - low) if high > low else 0.0
    return heatmaps


def _as_layers(output: Any, rows: int, layers: Sequence[str] | None) -> dict[str, torch.Tensor]:
    """Normalise an embed callable's output to {layer: (rows, D) tensor}."""
    if isinstance(output, Mapping):
        items = dict(output)
    elif isinstance(output, (torch.Tensor, np.ndarray)):
        items = {_SINGLE_LAYER: output}
    else:
        raise ValueError("embed: must return an (N, D) tensor or array, or a dict of them by "
                         f"layer name; got {type(output).__name__}")
    if not items:
        raise ValueError("embed: returned an empty dict; it must return at least one layer")
    names = list(items) if layers is None else layers
    result = {}
    for name in names:
        if name not in items:
            continue  # reported by the caller, which knows the available names
        value = items[name]
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"embed: layer {name!r} is a {type(value).__name__}, expected a "
                             "tensor or numpy array")
        if value.ndim < 2 or value.shape[0] != rows:
            raise ValueError(f"embed: layer {name!r} has shape {tuple(value.shape)} for a batch "
                             f"of {rows} images; expected ({rows}, D), one row per image")
        result[name] = value.reshape(rows, -1)
    return result


def _seed_or_fresh(seed: Any, name: str = "seed") -> int:
    if seed is None:
        return int(np.random.default_rng().integers(0, 2 ** 63 - 1))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"{name}: expected a non-negative int or None, got {seed!r}")
    return int(seed)


def _positive_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def _real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


DEFAULT_BATCH_SIZE = 50


def resolve_batch_size(embed: Callable, batch_size: int | None = None) -> int:
    """``batch_size`` if given (checked), else ``embed.preferred_batch_size`` if the
    callable has one (:class:`faceexp.models.Embedder` does), else 50."""
    if batch_size is None:
        batch_size = getattr(embed, "preferred_batch_size", None) or DEFAULT_BATCH_SIZE
    return _positive_int(batch_size, "batch_size", 1)


# --------------------------------------------------------------------------- explainer


class Explainer:
    """LIME for verification: explain which superpixels an embedding depends on.

    The embedding function and every option go to the constructor; images go to
    :meth:`explain` / :meth:`explain_many`, which reuse the same ``embed`` (so a
    compiled model is compiled once: batches always have ``batch_size`` rows).

    Parameters
    ----------
    embed : callable
        Maps a float32 tensor (N, 3, H, W) in [0, 1] to an (N, D) tensor or
        numpy array, or to a dict ``layer -> (N, D)`` (extra trailing dims are
        flattened). It must apply any normalisation itself.
    layers : sequence of str, optional
        Layers of a dict-returning ``embed`` to explain; default all it returns
        (``target="cosine"``), ``[softmax_layer]`` (``target="softmax"``) or the
        keys of a dict ``target``. A
        single-array ``embed`` has the one layer ``"embedding"``.
    target : {"cosine", "softmax"}, callable, or dict layer -> one of those
        ``"cosine"``: cosine similarity of each perturbed sample's activations to
        the reference's (the image's own, or ``reference=`` of :meth:`explain`).
        ``"softmax"``: column ``class_index`` of the layer (original LIME).
        A callable ``target(activations (N, D), reference (D,)) -> (N,)`` gets
        the reference activations (the unperturbed image's, or ``reference=``).
        A dict gives each layer its own target, all from the same forward
        passes and samples, e.g. ``{"gap": "cosine", "softmax": "softmax"}``
        (paper IV-A's two heatmaps at the cost of one); its keys are the
        explained layers.
    class_index : int, optional
        Class whose probability is explained with ``target="softmax"``;
        default the top class of the unperturbed image (read from
        ``softmax_layer`` if it is explained, else from the first layer).
    softmax_layer : str
        Layer holding the probabilities for ``target="softmax"`` (default
        ``"softmax"``, the name :class:`faceexp.models.Embedder` uses).
    n_samples : int
        Perturbed samples, including the unperturbed one (row 0). Paper: 1000.
    n_segments : int
        Requested SLIC superpixels (paper 75); SLIC returns about that many.
    compactness : float
        SLIC compactness in Lab space (10: skimage's and MATLAB's default).
    slic_zero : bool
        SLIC-zero (adaptive compactness, MATLAB ``superpixels``' default method).
    sampling : {"bernoulli", "matlab"}
        ``"bernoulli"`` (paper text): each superpixel blacked out independently
        with probability ``p_off``. ``"matlab"`` (the MATLAB LIME): per sample a
        drop probability ~ U[0, 0.8], then each superpixel with it.
    p_off : float in (0, 1)
        Drop probability of ``"bernoulli"`` sampling (paper 0.6; lime 0.5).
    fill : "black", "mean" or 3 floats in [0, 1]
        Pixel-space value of removed superpixels: 0, the ImageNet mean
        (0.485, 0.456, 0.406), which is 0 after normalisation, or an RGB value.
    kernel : {"matlab", "lime"}
        Sample weighting, see the module docstring.
    kernel_width : float, optional
        Kernel width; default 0.35 (``"matlab"``) or 0.25 (``"lime"``).
    ridge : float >= 0
        L2 penalty on the coefficients (not the intercept); 0 = weighted least
        squares (paper), 1 = lime's ``Ridge(alpha=1)``.
    sigma : float >= 0
        Gaussian smoothing of the painted coefficients in pixels (paper 4; 0 = none).
    positive_only : bool
        Paint ``max(coefficient, 0)`` (the MATLAB LIME) instead of the raw
        coefficients (default, the paper's text).
    batch_size : int, optional
        Rows per ``embed`` call; the last batch is padded by repeating a row
        (padding rows are discarded), so ``embed`` always sees this many.
        None: ``embed.preferred_batch_size`` where ``embed`` has one (a
        :class:`faceexp.models.Embedder`: the batch measured fastest for its
        architecture and device, see :func:`faceexp.models.default_batch_size`),
        else 50.
    device : str or torch.device, optional
        Where the perturbed batches are built (default CPU).
    """

    def __init__(self, embed: Callable, *, layers: Sequence[str] | None = None,
                 target: str | Callable = "cosine", class_index: int | None = None,
                 softmax_layer: str = "softmax", n_samples: int = 1000, n_segments: int = 75,
                 compactness: float = 10.0, slic_zero: bool = False,
                 sampling: str = "bernoulli", p_off: float = 0.6,
                 fill: str | Sequence[float] = "black", kernel: str = "matlab",
                 kernel_width: float | None = None, ridge: float = 0.0, sigma: float = 4.0,
                 positive_only: bool = False, batch_size: int | None = None,
                 device: str | torch.device | None = None):
        if not callable(embed):
            raise ValueError(f"embed: expected a callable mapping (N, 3, H, W) batches to "
                             f"embeddings, got {type(embed).__name__}")
        if isinstance(target, Mapping):
            if not target:
                raise ValueError("target: an empty dict; give layer -> 'cosine', 'softmax' or "
                                 "a callable")
            for name, kind in target.items():
                _check_target(kind, f"target[{name!r}]")
            target = {str(name): kind for name, kind in target.items()}
            if layers is None:
                layers = list(target)
            elif set(layers if not isinstance(layers, str) else [layers]) != set(target):
                raise ValueError(f"target: the dict names layers {list(target)} but layers= "
                                 f"is {layers}; they must be the same (or leave layers out)")
        else:
            _check_target(target, "target")
        if class_index is not None:
            if not needs_class_index(target):
                raise ValueError("class_index: only used with target='softmax'")
            if isinstance(class_index, bool) or not isinstance(class_index, numbers.Integral):
                raise ValueError(f"class_index: expected an int or None, got {class_index!r}")
            class_index = int(class_index)
        if layers is not None:
            if isinstance(layers, str):
                layers = [layers]
            layers = list(layers)
            if not layers or not all(isinstance(x, str) for x in layers):
                raise ValueError(f"layers: expected a non-empty list of layer names, got {layers!r}")
            if len(set(layers)) != len(layers):
                raise ValueError(f"layers: duplicate names in {layers}")
        if not isinstance(softmax_layer, str):
            raise ValueError(f"softmax_layer: expected a layer name, got {softmax_layer!r}")
        n_samples = _positive_int(n_samples, "n_samples", 2)
        n_segments = _positive_int(n_segments, "n_segments", 2)
        compactness = _real(compactness, "compactness")
        if compactness <= 0:
            raise ValueError(f"compactness: expected a positive number, got {compactness}")
        if sampling not in _SAMPLINGS:
            raise ValueError(f"sampling: unknown sampling {sampling!r}; use one of {_SAMPLINGS}")
        p_off = _real(p_off, "p_off")
        if not 0 < p_off < 1:
            raise ValueError(f"p_off: expected a probability strictly between 0 and 1, got {p_off}")
        if kernel not in _KERNELS:
            raise ValueError(f"kernel: unknown kernel {kernel!r}; use one of {_KERNELS}")
        kernel_width = _KERNEL_WIDTHS[kernel] if kernel_width is None else _real(
            kernel_width, "kernel_width")
        if kernel_width <= 0:
            raise ValueError(f"kernel_width: expected a positive number, got {kernel_width}")
        ridge = _real(ridge, "ridge")
        if ridge < 0:
            raise ValueError(f"ridge: expected a number >= 0, got {ridge}")
        sigma = _real(sigma, "sigma")
        if sigma < 0:
            raise ValueError(f"sigma: expected a number >= 0 (0 = no smoothing), got {sigma}")
        batch_size = resolve_batch_size(embed, batch_size)
        if isinstance(fill, str):
            if fill not in _FILLS:
                raise ValueError(f"fill: unknown fill {fill!r}; use 'black', 'mean' or an RGB "
                                 "triple in [0, 1]")
            fill_value = (0.0, 0.0, 0.0) if fill == "black" else _IMAGENET_MEAN
        else:
            try:
                fill_value = tuple(float(v) for v in fill)
            except (TypeError, ValueError):
                raise ValueError(f"fill: expected 'black', 'mean' or 3 floats in [0, 1], got "
                                 f"{fill!r}") from None
            if len(fill_value) != 3 or not all(0 <= v <= 1 for v in fill_value):
                raise ValueError(f"fill: expected 'black', 'mean' or 3 floats in [0, 1], got "
                                 f"{fill!r}")
        try:
            device = torch.device("cpu" if device is None else device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device: not a torch device: {device!r}") from None

        self.embed = embed
        self.layers = layers
        self.target = target
        self.class_index = class_index
        self.softmax_layer = softmax_layer
        self.n_samples = n_samples
        self.n_segments = n_segments
        self.compactness = compactness
        self.slic_zero = bool(slic_zero)
        self.sampling = sampling
        self.p_off = p_off
        self.fill = fill if isinstance(fill, str) else "rgb"
        self.fill_value = tuple(float(v) for v in fill_value)
        self.kernel = kernel
        self.kernel_width = float(kernel_width)
        self.ridge = ridge
        self.sigma = sigma
        self.positive_only = bool(positive_only)
        self.batch_size = batch_size
        self.device = device

    # ----------------------------------------------------------------- public

    def explain(self, image: Any, *, reference: Any = None, seed: int | None = None,
                segments: Any = None, progress: bool = False) -> Explanation:
        """Explain one image.

        Parameters
        ----------
        image : array_like, shape (H, W, 3)
            uint8 (divided by 255) or float in [0, 1].
        reference : optional
            ``target="cosine"`` only. None: the image's own unperturbed embedding
            (the paper). An image (H, W, 3) of the same size: its embedding, from
            the same forward passes (pair mode). A (D,) vector (one layer) or a
            dict ``layer -> (D,)``: used as given.
        seed : int, optional
            Seed of the sampling (``np.random.default_rng``); None draws a fresh
            one, recorded in ``Explanation.seed``.
        segments : array_like of int, shape (H, W), optional
            Superpixel map to use instead of SLIC (relabelled to 0 .. S-1).
        progress : bool
            Show a progress bar over the batches.

        Returns
        -------
        Explanation
        """
        image = _check_image(image)
        seed = _seed_or_fresh(seed)
        reference_kind, reference_image, reference_vectors = self._check_reference(
            reference, image.shape)
        if segments is None:
            segments = _slic_segments(image, self.n_segments, self.compactness, self.slic_zero)
            segments_source = "slic"
        else:
            segments = _relabel(segments, image.shape[:2])
            segments_source = "given"
        n_superpixels = int(segments.max()) + 1
        if n_superpixels < 2:
            raise ValueError(f"segments: found {n_superpixels} superpixel; at least 2 are "
                             "needed (raise n_segments or give a finer segments map)")

        rng = np.random.default_rng(seed)
        samples = _draw_samples(rng, self.n_samples, n_superpixels, self.sampling, self.p_off)
        weights = _kernel_weights(samples, self.kernel, self.kernel_width)
        layers, targets, class_index = self._score(image, segments, samples, reference_image,
                                                   reference_vectors, progress)
        coefficients, intercepts, r2 = _weighted_least_squares(samples, targets.T, weights,
                                                               self.ridge)
        heatmaps = _paint(coefficients, segments, self.sigma, self.positive_only)
        options = self._options(n_superpixels, segments_source, reference_kind, class_index)
        return Explanation(heatmaps=heatmaps, layers=layers, segments=segments,
                           coefficients=coefficients, intercepts=intercepts, targets=targets,
                           samples=samples, weights=weights, r2=r2, options=options, seed=seed)

    def explain_many(self, images: Sequence[Any], *, references: Sequence[Any] | None = None,
                     seeds: int | Sequence[int] | None = None, segments: Any = None,
                     progress: bool = True) -> list[Explanation]:
        """Explain several images with the same ``embed`` (compiled once).

        Parameters
        ----------
        images : sequence of (H, W, 3) arrays, or an (N, H, W, 3) array
        references : sequence of length N, optional
            Per-image ``reference`` (see :meth:`explain`); entries may be None.
        seeds : int or sequence of int, optional
            An int s gives image i the seed s + i (so result i equals
            ``explain(images[i], seed=s + i)``); None draws fresh seeds.
        segments : optional
            One (H, W) map for every image, or a sequence of per-image maps.
        progress : bool
            Show a progress bar over the images.

        Returns
        -------
        list of Explanation
        """
        from tqdm import tqdm

        images = list(images)
        n = len(images)
        if references is None:
            references = [None] * n
        elif len(references) != n:
            raise ValueError(f"references: expected {n} entries (one per image), got "
                             f"{len(references)}")
        if seeds is None:
            seeds = [None] * n
        elif isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
            base = _seed_or_fresh(seeds, "seeds")
            seeds = [base + i for i in range(n)]
        elif len(seeds) != n:
            raise ValueError(f"seeds: expected an int or {n} seeds (one per image), got "
                             f"{len(seeds)}")
        if segments is None or (isinstance(segments, np.ndarray) and segments.ndim == 2):
            segments = [segments] * n
        elif len(segments) != n:
            raise ValueError(f"segments: expected one (H, W) map or {n} maps, got "
                             f"{len(segments)}")
        return [self.explain(image, reference=ref, seed=s, segments=seg)
                for image, ref, s, seg in tqdm(zip(images, references, seeds, segments),
                                               total=n, disable=not progress,
                                               desc="explain", unit="image")]

    # ----------------------------------------------------------------- internals

    def _target_functions(self, layers: list[str]) -> dict[str, Callable]:
        """layer -> target function (one shared class-probability target)."""
        kinds = self.target if isinstance(self.target, Mapping) else dict.fromkeys(
            layers, self.target)
        probability = _ClassProbabilityTarget(self.class_index)
        return {x: _CosineTarget() if kinds[x] == "cosine" else
                probability if kinds[x] == "softmax" else kinds[x] for x in layers}

    def _check_reference(self, reference: Any, image_shape: tuple):
        """-> (kind, reference image (H, W, 3) or None, {layer: (D,) tensor} or None)."""
        if reference is None:
            return "self", None, None
        kinds = self.target.values() if isinstance(self.target, Mapping) else [self.target]
        if any(kind != "cosine" for kind in kinds):
            raise ValueError("reference: only used with target='cosine' (the softmax target "
                             "explains a class, not a pair)")
        if isinstance(reference, Mapping):
            vectors = {}
            for name, value in reference.items():
                value = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor)
                                        else value)
                if value.ndim != 1:
                    raise ValueError(f"reference: layer {name!r} has shape "
                                     f"{tuple(value.shape)}; expected a (D,) vector")
                vectors[str(name)] = value.detach()
            return "embedding", None, vectors
        value = reference if isinstance(reference, torch.Tensor) else np.asarray(reference)
        if value.ndim == 3:
            reference_image = _check_image(value, "reference")
            if reference_image.shape != image_shape:
                raise ValueError(f"reference: image of shape {reference_image.shape} must have "
                                 f"the explained image's shape {image_shape}")
            return "image", reference_image, None
        if value.ndim == 1:
            return "embedding", None, {None: torch.as_tensor(value).detach()}
        raise ValueError(f"reference: expected an (H, W, 3) image, a (D,) embedding or a dict "
                         f"layer -> (D,), got shape {tuple(value.shape)}")

    def _resolve_layers(self, output: Any) -> list[str]:
        if isinstance(output, Mapping):
            available = [str(k) for k in output]
        else:
            available = [_SINGLE_LAYER]
        if self.layers is not None:
            missing = [x for x in self.layers if x not in available]
            if missing:
                raise ValueError(f"layers: unknown layer(s) {missing}; the embed callable "
                                 f"returns {available}")
            return list(self.layers)
        if self.target == "softmax" and isinstance(output, Mapping):
            if self.softmax_layer not in available:
                raise ValueError(f"softmax_layer: the embed callable returns no layer "
                                 f"{self.softmax_layer!r}; available: {available} (pass "
                                 "softmax_layer= or layers=)")
            return [self.softmax_layer]
        return available

    def _reference_vectors(self, given: dict | None, layers: list[str],
                           activations: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Check a given reference embedding against the layers' dimensions."""
        if None in given:
            if len(layers) != 1:
                raise ValueError(f"reference: a single (D,) vector is ambiguous for the "
                                 f"{len(layers)} layers {layers}; give a dict layer -> (D,)")
            given = {layers[0]: given[None]}
        missing = [x for x in layers if x not in given]
        if missing:
            raise ValueError(f"reference: no vector for layer(s) {missing}; the dict must cover "
                             f"{layers}")
        result = {}
        for name in layers:
            expected = activations[name].shape[1]
            vector = given[name].reshape(-1)
            if vector.shape[0] != expected:
                raise ValueError(f"reference: layer {name!r} has dimension {expected} but the "
                                 f"reference vector has {vector.shape[0]}; expected D={expected}")
            result[name] = vector.to(activations[name].device)
        return result

    def _score(self, image: np.ndarray, segments: np.ndarray, samples: np.ndarray,
               reference_image: np.ndarray | None, reference_vectors: dict | None,
               progress: bool) -> tuple[list[str], np.ndarray, int | None]:
        """Embed every perturbed sample and reduce it to one target per layer.

        Returns the layer names, targets (L, n_samples) float64 and the resolved
        class index (softmax target) or None.
        """
        from tqdm import tqdm

        device = self.device
        batch_size = self.batch_size
        height, width = segments.shape
        n_samples, n_superpixels = samples.shape
        target_fns: dict[str, Callable] = {}
        extra = 0 if reference_image is None else 1        # reference image rides in row 0
        total = n_samples + extra
        n_batches = -(-total // batch_size)

        with torch.inference_mode():
            pixels = torch.from_numpy(image).to(device).permute(2, 0, 1).contiguous()
            fill = torch.tensor(self.fill_value, dtype=torch.float32, device=device).view(3, 1, 1)
            one_hot = torch.zeros(n_superpixels, height * width, dtype=torch.float32,
                                  device=device)
            flat = torch.from_numpy(segments.reshape(-1)).to(device)
            one_hot[flat, torch.arange(height * width, device=device)] = 1.0
            on_off = torch.from_numpy(samples).to(device=device, dtype=torch.float32)
            if extra:
                reference_pixels = torch.from_numpy(reference_image).to(device).permute(
                    2, 0, 1).unsqueeze(0)

            layers: list[str] = []
            references: dict[str, torch.Tensor] = {}
            targets = None
            class_index = None
            for b in tqdm(range(n_batches), disable=not progress, desc="explain", unit="batch"):
                row0, row1 = b * batch_size, min(total, (b + 1) * batch_size)
                first, last = max(row0 - extra, 0), row1 - extra     # sample indices
                masks = (on_off[first:last] @ one_hot).view(-1, 1, height, width)
                batch = pixels * masks + fill * (1.0 - masks)
                if row0 < extra:
                    batch = torch.cat([reference_pixels, batch])
                real = batch.shape[0]
                if real < batch_size:
                    batch = torch.cat([batch, batch[-1:].expand(batch_size - real, -1, -1, -1)])
                output = self.embed(batch)

                if b == 0:
                    layers = self._resolve_layers(output)
                activations = _as_layers(output, batch_size, layers)
                del output
                if b == 0:
                    # Row 0 is the reference image (pair mode) or the unperturbed image.
                    if reference_vectors is not None:
                        references = self._reference_vectors(reference_vectors, layers,
                                                             activations)
                    else:
                        references = {x: activations[x][0].clone() for x in layers}
                    target_fns = self._target_functions(layers)
                    probability = [x for x in layers
                                   if isinstance(target_fns[x], _ClassProbabilityTarget)]
                    if probability:
                        source = self.softmax_layer if self.softmax_layer in layers \
                            else probability[0]
                        class_index = target_fns[source].resolve(references[source])
                        resolved = _ClassProbabilityTarget(class_index)
                        target_fns.update(dict.fromkeys(probability, resolved))
                    targets = torch.empty(len(layers), n_samples, dtype=torch.float64)
                skip = 1 if row0 < extra else 0      # the reference image's row
                for i, name in enumerate(layers):
                    values = target_fns[name](activations[name][skip:real], references[name])
                    values = torch.as_tensor(values).reshape(-1)
                    if values.shape[0] != last - first:
                        raise ValueError(f"target: returned {values.shape[0]} values for "
                                         f"{last - first} samples of layer {name!r}")
                    values = values.to("cpu", torch.float64)
                    if not torch.isfinite(values).all():
                        raise ValueError(f"embed: layer {name!r} returned NaN or infinite "
                                         "values (or the target of them is not finite)")
                    targets[i, first:last] = values
                del activations
        return layers, targets.numpy(), class_index

    def _options(self, n_superpixels: int, segments_source: str, reference_kind: str,
                 class_index: int | None) -> dict:
        return {
            "n_samples": self.n_samples, "n_segments": self.n_segments,
            "n_superpixels": n_superpixels, "segments": segments_source,
            "compactness": self.compactness, "slic_zero": self.slic_zero,
            "sampling": self.sampling, "p_off": self.p_off,
            "fill": self.fill, "fill_value": list(self.fill_value),
            "kernel": self.kernel, "kernel_width": self.kernel_width, "ridge": self.ridge,
            "sigma": self.sigma, "positive_only": self.positive_only,
            "batch_size": self.batch_size, "device": str(self.device),
            "target": _target_name(self.target),
            "reference": reference_kind, "class_index": class_index,
            "softmax_layer": self.softmax_layer if needs_class_index(self.target) else None,
            "layers": self.layers,
        }


def explain(image: Any, embed: Callable, *, reference: Any = None, seed: int | None = None,
            segments: Any = None, progress: bool = False, **options: Any) -> Explanation:
    """Explain one image: ``Explainer(embed, **options).explain(image, ...)``.

    See :class:`Explainer` for ``options`` (``layers``, ``target``, ``n_samples``,
    ``n_segments``, ``sampling``, ``p_off``, ``fill``, ``kernel``, ``ridge``,
    ``sigma``, ``batch_size``, ``device``, ...) and :meth:`Explainer.explain`
    for ``reference``, ``seed``, ``segments`` and ``progress``.

    Examples
    --------
    >>> exp = explain(face, embedder, layers=["gap"], seed=0)   # doctest: +SKIP
    >>> exp.heatmap("gap").shape                                # doctest: +SKIP
    (113, 113)
    """
    return Explainer(embed, **options).explain(image, reference=reference, seed=seed,
                                               segments=segments, progress=progress)
