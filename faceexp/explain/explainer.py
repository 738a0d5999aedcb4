"""LIME adapted to biometric verification (Alonso-Fernandez et al., section II).

The image is cut into superpixels; ``n_samples`` perturbed copies are made by
blacking out random subsets of them; every copy goes through an embedding
function, and a *target* turns each copy's output into one number per layer:

* :class:`~faceexp.explain.targets.Cosine` (``"cosine"``, the paper): cosine
  similarity between the copy's embedding and the unperturbed image's own
  embedding, or, with ``explain(..., reference=)`` another image or an
  embedding, that reference's (pair mode: what makes a *pair* match);
* :class:`~faceexp.explain.targets.ClassProbability` (``"softmax"``): the probability
  of one class (the original LIME, for identities seen in training), the class
  given per image by ``explain(..., class_index=)``;
* or any callable ``target(activations, reference) -> (N,)``.

A weighted linear model of the targets on the binary superpixel on/off vectors
(intercept included, weights from a kernel on the distance to the unperturbed
image) gives one coefficient per superpixel; the coefficients (by default only
their positive part, as the paper's MATLAB code) are painted onto their
superpixels, smoothed with a Gaussian and scaled to [0, 1].

The target is composed into one explainer (as captum's ``Lime`` composes its
similarity and perturbation functions), so the modes share the sampling, the
batched scoring and the fit; the embed callable and the options go to the
constructor, the image, reference, class and seed to :meth:`Explainer.explain`,
so one explainer serves every image, pair and class. All layers of an
embedding callable come from one forward pass per batch
(:class:`faceexp.core.batching.BatchedEmbed`) and are fitted by one least-squares
solve. The steps are public functions of :mod:`faceexp.explain.lime_steps` that can be
called one by one (superpixels, draw_samples, perturb, kernel_weights,
fit_linear, paint). ``n_samples="auto"`` scores the samples in rounds and stops when the
map's estimated agreement with the infinite-sample map reaches a target
(:mod:`faceexp.explain.convergence`).

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
superpixels    SLIC-zero (``slic_zero=True``):  quickshift (``segmentation_fn``);
               MATLAB ``superpixels``' default; here ``slic_zero=False`` (plain
               the text says SLIC, 75 of them   SLIC) or a ``segments=`` map
painting       ``max(b, 0)`` (MATLAB code,      ``get_image_and_mask``: positive
               ``positive_only=True``); raw b   only by default, as MATLAB
               (text): ``positive_only=False``
============== ================================ =================================

The defaults follow the code the paper ran (its reference [11], the MATLAB
LIME): Bernoulli sampling with the text's p_off = 0.6, the MATLAB kernel,
weighted least squares, black fill, SLIC-zero superpixels and positive
coefficients painted. Every other choice of the table is an option.
"""
from __future__ import annotations

import numbers
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from faceexp.core import checks
from faceexp.core.batching import SINGLE_LAYER, BatchedEmbed, resolve_batch_size
from faceexp.core.limits import check_memory, explanation_memory
from faceexp.explain.convergence import (AUTO, DEFAULT_MAX_SAMPLES, DEFAULT_ROUND_SAMPLES,
                                        DEFAULT_TOLERANCE, check_auto_options,
                                        sample_until_agreement)
from faceexp.explain.explanation import Explanation, ExplanationWarning
from faceexp.explain.lime_steps import (BLUR_SIGMA_FRACTION, KERNEL_WIDTHS, KERNELS, SAMPLINGS,
                                        as_image, blurred, draw_samples, resolve_fill, fit_linear,
                                        kernel_weights, paint, perturb, relabel_segments,
                                        superpixels)
from faceexp.explain.targets import (ClassProbability, Cosine, as_target, check_class_index,
                             needs_class_index, target_name)

__all__ = ["explain", "Explainer", "Explanation", "Cosine", "ClassProbability",
           "resolve_batch_size", "needs_class_index", "target_name", "blurred",
           "BLUR_SIGMA_FRACTION"]


# --------------------------------------------------------------------------- explainer


class Explainer:
    """LIME for verification: explain which superpixels an embedding depends on.

    The embedding function, the target and every option go to the constructor;
    the image, the reference, the class and the seed go to :meth:`explain` /
    :meth:`explain_many`, so one explainer serves every image, pair and class
    (and a compiled model is compiled once: batches always have
    ``batch_size`` rows).

    Parameters
    ----------
    embed : callable
        Maps a float32 tensor (N, 3, H, W) in [0, 1] to an (N, D) tensor or
        numpy array, or to a dict ``layer -> (N, D)`` (extra trailing dims are
        flattened). It must apply any normalisation itself.
    layers : sequence of str, optional
        Layers of a dict-returning ``embed`` to explain; default all it returns
        (cosine or callable target), the target's layer (a
        :class:`~faceexp.explain.targets.ClassProbability` alone) or the keys of a dict
        ``target``. A single-array ``embed`` has the one layer ``"embedding"``.
    target : target, str, callable, or dict layer -> one of those
        :class:`~faceexp.explain.targets.Cosine` (``"cosine"``, default): cosine
        similarity of each perturbed sample's activations to the reference's
        (the image's own, or ``reference=`` of :meth:`explain`).
        :class:`~faceexp.explain.targets.ClassProbability` (``"softmax"``): the
        probability of ``class_index`` (of :meth:`explain`) in its layer
        (default "softmax"). A callable ``target(activations (N, D),
        reference (D,)) -> (N,)``. A dict gives each layer its own target, all
        from the same forward passes and samples, e.g. ``{"gap": "cosine",
        "softmax": "softmax"}`` (paper IV-A's two heatmaps at the cost of one);
        its keys are the explained layers.
    n_samples : int or "auto"
        Perturbed samples, including the unperturbed one (row 0). Paper: 1000. Checked
        against the memory it implies (:func:`faceexp.core.limits.explanation_memory`,
        limit ``$FACEEXP_MAX_MEMORY_GB``) before anything is drawn. ``"auto"``: the
        first rows of ``max_samples`` drawn samples, scored in rounds until the
        estimated Spearman agreement of every layer's coefficients with the
        infinite-sample map reaches ``1 - tolerance``
        (:mod:`faceexp.explain.convergence`); with ``"bernoulli"`` sampling the map
        equals ``n_samples=<samples used>`` with the same seed.
        ``Explanation.options["convergence"]`` records the samples used and the
        estimate.
    tolerance : float in (0, 1), default 0.1
        ``"auto"``: stop at an estimated agreement of 1 - tolerance (0.9).
    max_samples : int, default 1000
        ``"auto"``: at most this many samples (the paper's 1000).
    round_samples : int, default 100
        ``"auto"``: estimate the agreement every this many samples (at the end of
        the batch that reaches them), from ``2 (S + 1) + 1`` samples on.
    n_segments : int
        Requested SLIC superpixels (paper 75); SLIC returns about that many.
    compactness : float
        SLIC compactness in Lab space (10: skimage's and MATLAB's default).
    slic_zero : bool, default True
        SLIC-zero (adaptive compactness), the default method of MATLAB's
        ``superpixels``, which the paper's MATLAB LIME calls; False: plain
        SLIC with the fixed ``compactness``.
    sampling : {"bernoulli", "matlab"}
        ``"bernoulli"`` (paper text): each superpixel blacked out independently
        with probability ``p_off``. ``"matlab"`` (the MATLAB LIME): per sample a
        drop probability ~ U[0, 0.8], then each superpixel with it.
    p_off : float in (0, 1)
        Drop probability of ``"bernoulli"`` sampling (paper 0.6; lime 0.5).
    fill : "black", "mean", "blur" or 3 floats in [0, 1]
        Pixel-space value of removed superpixels: 0, the ImageNet mean
        (0.485, 0.456, 0.406), which is 0 after normalisation, the image itself
        blurred (Gaussian, sigma ``BLUR_SIGMA_FRACTION`` of the longer side:
        the superpixel keeps its colour and loses its detail), or an RGB value.
    kernel : {"matlab", "lime"}
        Sample weighting, see the module docstring.
    kernel_width : float, optional
        Kernel width; default 0.35 (``"matlab"``) or 0.25 (``"lime"``).
    ridge : float >= 0
        L2 penalty on the coefficients (not the intercept); 0 = weighted least
        squares (paper), 1 = lime's ``Ridge(alpha=1)``.
    sigma : float >= 0
        Gaussian smoothing of the painted coefficients in pixels (paper 4; 0 = none).
    positive_only : bool, default True
        Paint ``max(coefficient, 0)``, as the MATLAB LIME the paper ran does
        (superpixels whose removal raises the target are painted like those
        that do not matter); False: the raw coefficients (the paper's text,
        "set to the value of the associated coefficient"). See
        :func:`faceexp.explain.lime_steps.paint`.
    batch_size : int, optional
        Rows per ``embed`` call; a short last batch is padded
        (:class:`faceexp.core.batching.BatchedEmbed`), so a compiled ``embed`` always
        sees one shape. None: ``embed.preferred_batch_size`` where ``embed``
        has one (a :class:`faceexp.models.Embedder`: the batch measured fastest
        for its architecture and device, see
        :func:`faceexp.models.default_batch_size`), else 50.
    device : str or torch.device, optional
        Where the perturbed batches are built; default ``embed.device`` where
        ``embed`` has one, else the CPU.
    """

    def __init__(self, embed: Callable, *, layers: Sequence[str] | None = None,
                 target: Any = "cosine", n_samples: int | str = 1000,
                 tolerance: float = DEFAULT_TOLERANCE, max_samples: int = DEFAULT_MAX_SAMPLES,
                 round_samples: int = DEFAULT_ROUND_SAMPLES, n_segments: int = 75,
                 compactness: float = 10.0, slic_zero: bool = True,
                 sampling: str = "bernoulli", p_off: float = 0.6,
                 fill: str | Sequence[float] = "black", kernel: str = "matlab",
                 kernel_width: float | None = None, ridge: float = 0.0, sigma: float = 4.0,
                 positive_only: bool = True, batch_size: int | None = None,
                 device: str | torch.device | None = None):
        if not callable(embed):
            raise ValueError(f"embed must be a callable mapping (N, 3, H, W) batches to "
                             f"embeddings, got {type(embed).__name__}")
        if layers is not None:
            if isinstance(layers, str):
                layers = [layers]
            layers = list(layers)
            if not layers or not all(isinstance(x, str) for x in layers):
                raise ValueError(f"layers must be a non-empty list of layer names, got {layers!r}")
            if len(set(layers)) != len(layers):
                raise ValueError(f"layers: duplicate names in {layers}")
        if isinstance(target, Mapping):
            if not target:
                raise ValueError("target: an empty dict; give layer -> 'cosine', 'softmax', a "
                                 "target object or a callable")
            target = {str(name): as_target(kind, f"target[{name!r}]")
                      for name, kind in target.items()}
            if layers is None:
                layers = list(target)
            elif set(layers) != set(target):
                raise ValueError(f"target: the dict names layers {list(target)} but layers= "
                                 f"is {layers}; they must be the same (or leave layers out)")
        else:
            target = as_target(target)
        n_samples, tolerance, max_samples, round_samples = check_auto_options(
            n_samples, tolerance, max_samples, round_samples)
        n_segments = checks.positive_int(n_segments, "n_segments", 2)
        n_drawn = max_samples if n_samples == AUTO else n_samples
        # Sized before anything is drawn: a mistyped n_samples is one line, not a MemoryError.
        check_memory(explanation_memory(n_drawn, n_segments,
                                        len(layers) if layers is not None else 1),
                     f"n_samples={n_drawn}", lower="n_samples (or n_segments)")
        compactness = checks.finite_real(compactness, "compactness")
        if compactness <= 0:
            raise ValueError(f"compactness must be a positive number, got {compactness}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        p_off = checks.finite_real(p_off, "p_off")
        if not 0 < p_off < 1:
            raise ValueError(f"p_off must be a probability strictly between 0 and 1, got {p_off}")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        kernel_width = KERNEL_WIDTHS[kernel] if kernel_width is None else checks.finite_real(
            kernel_width, "kernel_width")
        if kernel_width <= 0:
            raise ValueError(f"kernel_width must be a positive number, got {kernel_width}")
        ridge = checks.finite_real(ridge, "ridge")
        if ridge < 0:
            raise ValueError(f"ridge must be a number >= 0, got {ridge}")
        sigma = checks.finite_real(sigma, "sigma")
        if sigma < 0:
            raise ValueError(f"sigma must be a number >= 0 (0 = no smoothing), got {sigma}")
        batch_size = resolve_batch_size(embed, batch_size)
        fill_value = resolve_fill(fill)
        if device is None:
            device = getattr(embed, "device", None) or "cpu"
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device: not a torch device: {device!r}") from None

        self.embed = embed
        self.layers = layers
        self.target = target
        self.n_samples = n_samples
        self.tolerance, self.max_samples, self.round_samples = tolerance, max_samples, round_samples
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
        self._runner = BatchedEmbed(embed, batch_size=batch_size)

    # ----------------------------------------------------------------- public

    def explain(self, image: Any, *, reference: Any = None, class_index: int | None = None,
                seed: int | None = None, segments: Any = None,
                progress: bool = False) -> Explanation:
        """Explain one image.

        Parameters
        ----------
        image : array_like, shape (H, W, 3)
            uint8 (divided by 255) or float in [0, 1].
        reference : optional
            Cosine (or callable) targets only. None: the image's own unperturbed
            embedding (the paper). An image (H, W, 3) of the same size: its
            embedding, from the same forward passes (pair mode). A (D,) vector
            (one layer) or a dict ``layer -> (D,)``: used as given.
        class_index : int >= 0, optional
            ClassProbability ("softmax") targets only: the class whose
            probability is explained; None: the unperturbed image's top class.
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
        image = as_image(image)
        seed = checks.seed(seed, fresh=True)
        class_index = check_class_index(class_index)
        if class_index is not None and not needs_class_index(self.target):
            raise ValueError("class_index: only used with target='softmax' "
                             "(a ClassProbability target)")
        reference_kind, reference_image, reference_vectors = self._check_reference(
            reference, image.shape)
        if segments is None:
            segments = superpixels(image, self.n_segments, compactness=self.compactness,
                                   slic_zero=self.slic_zero)
            segments_source = "slic"
        else:
            segments = relabel_segments(segments, image.shape[:2])
            segments_source = "given"
        n_superpixels = int(segments.max()) + 1
        if n_superpixels < 2:
            raise ValueError(f"segments: found {n_superpixels} superpixel; at least 2 are "
                             "needed (raise n_segments or give a finer segments map)")

        auto = self.n_samples == AUTO
        n_drawn = self.max_samples if auto else self.n_samples
        if n_drawn < n_superpixels + 1:
            warnings.warn(
                f"n_samples={n_drawn} is fewer than the {n_superpixels + 1} unknowns of "
                f"the linear fit ({n_superpixels} superpixels and an intercept): the fit is "
                "under-determined and its R2 means nothing; raise n_samples (the paper uses "
                "1000 for 75 superpixels) or lower n_segments", ExplanationWarning, stacklevel=2)
        samples = draw_samples(n_drawn, n_superpixels, sampling=self.sampling,
                               p_off=self.p_off, rng=seed)
        weights = kernel_weights(samples, kernel=self.kernel, width=self.kernel_width)
        batches = self._scores(image, segments, samples, reference_image, reference_vectors,
                               class_index, progress)
        record = None
        if auto:
            used, layers, targets, class_index, record = sample_until_agreement(
                batches, samples, weights, tolerance=self.tolerance,
                round_samples=self.round_samples, ridge=self.ridge, seed=seed)
            batches.close()
            samples, weights = samples[:used], weights[:used]
        else:
            for _, layers, targets, class_index in batches:
                pass
        coefficients, intercepts, r2 = fit_linear(samples, targets.T, weights, ridge=self.ridge)
        for name, values, layer_coefficients in zip(layers, targets, coefficients):
            if np.ptp(values) == 0:
                warnings.warn(
                    f"layer {name!r}: every perturbed sample gave the same target "
                    f"({values[0]:.6g}), so the embedding does not react to the perturbation "
                    "and the heatmap is all zeros", ExplanationWarning, stacklevel=2)
            elif self.positive_only and np.all(layer_coefficients <= 0):
                warnings.warn(
                    f"layer {name!r}: no superpixel has a positive coefficient, so painting "
                    "max(coefficient, 0) gives an all-zero heatmap (pass positive_only=False to "
                    "see the raw coefficients)", ExplanationWarning, stacklevel=2)
        heatmaps = paint(coefficients, segments, sigma=self.sigma,
                         positive_only=self.positive_only)
        options = self._options(n_superpixels, segments_source, reference_kind, class_index,
                                layers)
        if record is not None:
            options["convergence"] = record
        return Explanation(heatmaps=heatmaps, layers=layers, segments=segments,
                           coefficients=coefficients, intercepts=intercepts, targets=targets,
                           samples=samples, weights=weights, r2=r2, options=options, seed=seed)

    def explain_many(self, images: Sequence[Any], *, references: Sequence[Any] | None = None,
                     class_indices: Sequence[int | None] | None = None,
                     seeds: int | Sequence[int] | None = None, segments: Any = None,
                     progress: bool = True) -> list[Explanation]:
        """Explain several images with the same ``embed`` (compiled once).

        Parameters
        ----------
        images : sequence of (H, W, 3) arrays, or an (N, H, W, 3) array
        references : sequence of length N, optional
            Per-image ``reference`` (see :meth:`explain`); entries may be None.
        class_indices : sequence of length N, optional
            Per-image ``class_index`` (see :meth:`explain`); entries may be None.
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

        def per_image(values, name):
            if values is None:
                return [None] * n
            if len(values) != n:
                raise ValueError(f"{name} must be {n} entries (one per image), got "
                                 f"{len(values)}")
            return list(values)

        references = per_image(references, "references")
        class_indices = per_image(class_indices, "class_indices")
        if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
            base = checks.seed(seeds, "seeds", fresh=True)
            seeds = [base + i for i in range(n)]
        else:
            seeds = per_image(seeds, "seeds")
        if segments is None or (isinstance(segments, np.ndarray) and segments.ndim == 2):
            segments = [segments] * n
        elif len(segments) != n:
            raise ValueError(f"segments must be one (H, W) map or {n} maps, got "
                             f"{len(segments)}")
        return [self.explain(image, reference=ref, class_index=cls, seed=s, segments=seg)
                for image, ref, cls, s, seg in tqdm(
                    zip(images, references, class_indices, seeds, segments), total=n,
                    disable=not progress, desc="explain", unit="image")]

    # ----------------------------------------------------------------- internals

    def _targets(self, layers: list[str]) -> dict[str, Callable]:
        """layer -> target object."""
        if isinstance(self.target, Mapping):
            return {name: self.target[name] for name in layers}
        return dict.fromkeys(layers, self.target)

    def _check_reference(self, reference: Any, image_shape: tuple):
        """-> (kind, reference image (H, W, 3) or None, {layer: (D,) tensor} or None)."""
        if reference is None:
            return "self", None, None
        if needs_class_index(self.target):
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
            reference_image = as_image(value, "reference")
            if reference_image.shape != image_shape:
                raise ValueError(f"reference: image of shape {reference_image.shape} must have "
                                 f"the explained image's shape {image_shape}")
            return "image", reference_image, None
        if value.ndim == 1:
            return "embedding", None, {None: torch.as_tensor(value).detach()}
        raise ValueError(f"reference must be an (H, W, 3) image, a (D,) embedding or a dict "
                         f"layer -> (D,), got shape {tuple(value.shape)}")

    def _resolve_layers(self, available: list[str]) -> list[str]:
        if self.layers is not None:
            missing = [x for x in self.layers if x not in available]
            if missing:
                raise ValueError(f"layers must be among the layers the embed callable returns, "
                                 f"{available}, got unknown layer(s) {missing}")
            return list(self.layers)
        if isinstance(self.target, ClassProbability) and available != [SINGLE_LAYER]:
            if self.target.layer not in available:
                raise ValueError(f"target: the class probabilities are read from layer "
                                 f"{self.target.layer!r}, which the embed callable does not "
                                 f"return; it returns {available} (pass "
                                 "ClassProbability(layer=...) or layers=)")
            return [self.target.layer]
        return available

    def _reference_vectors(self, given: dict, layers: list[str],
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

    def _scores(self, image: np.ndarray, segments: np.ndarray, samples: np.ndarray,
                reference_image: np.ndarray | None, reference_vectors: dict | None,
                class_index: int | None, progress: bool):
        """Embed the perturbed samples batch by batch and reduce each to one target per layer.

        Yields, after every batch, the samples scored so far, the layer names, the
        targets (L, n_samples) float64 array (filled up to the samples scored) and the
        resolved class index (ClassProbability targets) or None.
        """
        from tqdm import tqdm

        device = self.device
        batch_size = self._runner.batch_size
        n_samples = samples.shape[0]
        extra = 0 if reference_image is None else 1        # reference image rides in row 0
        total = n_samples + extra
        n_batches = -(-total // batch_size)

        bar = tqdm(total=n_batches, disable=not progress, desc="explain", unit="batch")
        with torch.inference_mode():
            pixels = torch.from_numpy(image).to(device).permute(2, 0, 1).contiguous()
            if self.fill == "blur":
                fill = torch.from_numpy(blurred(image)).to(device).permute(2, 0, 1)
            else:
                fill = torch.tensor(self.fill_value, dtype=torch.float32,
                                    device=device).view(3, 1, 1)
            labels = torch.from_numpy(segments.reshape(-1)).to(device)
            on_off = torch.from_numpy(samples).to(device)
            if extra:
                reference_pixels = torch.from_numpy(reference_image).to(device).permute(
                    2, 0, 1).unsqueeze(0)

        layers: list[str] = []
        references: dict[str, torch.Tensor] = {}
        targets = torch.empty(0)
        target_fns: dict[str, Callable] = {}
        for b in range(n_batches):
            with torch.inference_mode():
                row0, row1 = b * batch_size, min(total, (b + 1) * batch_size)
                first, last = max(row0 - extra, 0), row1 - extra     # sample indices
                batch = perturb(pixels, labels, on_off[first:last], fill)
                if row0 < extra:
                    batch = torch.cat([reference_pixels, batch])
                activations = self._runner.run(batch)
                if b == 0:
                    layers = self._resolve_layers(list(activations))
                    # Row 0 is the reference image (pair mode) or the unperturbed image.
                    if reference_vectors is not None:
                        references = self._reference_vectors(reference_vectors, layers,
                                                             activations)
                    else:
                        references = {x: activations[x][0].clone() for x in layers}
                    target_fns = self._targets(layers)
                    zero = [name for name in layers if isinstance(target_fns[name], Cosine)
                            and not torch.any(references[name] != 0)]
                    if zero:
                        which = "image's" if reference_vectors is None and not extra \
                            else "reference's"
                        message = (f"embed returned an all-zero embedding for the {which} "
                                   f"layer(s) {zero}: cosine similarity to it is 0 for every "
                                   "sample, so nothing can be explained there (check the "
                                   "model and the input)")
                        if len(zero) == len(layers):
                            raise ValueError(message)
                        warnings.warn(message, ExplanationWarning, stacklevel=4)
                    probability = [x for x in layers
                                   if isinstance(target_fns[x], ClassProbability)]
                    if probability:
                        resolved = target_fns[probability[0]].for_class(
                            class_index, references[probability[0]])
                        class_index = resolved.class_index
                        target_fns.update(dict.fromkeys(probability, resolved))
                    targets = torch.empty(len(layers), n_samples, dtype=torch.float64)
                skip = 1 if row0 < extra else 0      # the reference image's row
                for i, name in enumerate(layers):
                    values = target_fns[name](activations[name][skip:], references[name])
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
            bar.update()
            try:
                yield last, layers, targets.numpy(), class_index
            except GeneratorExit:            # n_samples="auto" stopped early
                bar.close()
                raise
        bar.close()

    def _options(self, n_superpixels: int, segments_source: str, reference_kind: str,
                 class_index: int | None, layers: list[str]) -> dict:
        probability = [x for x, kind in self._targets(layers).items()
                       if isinstance(kind, ClassProbability)]
        return {
            "n_samples": self.n_samples, "n_segments": self.n_segments,
            "n_superpixels": n_superpixels, "segments": segments_source,
            "compactness": self.compactness, "slic_zero": self.slic_zero,
            "sampling": self.sampling, "p_off": self.p_off,
            "fill": self.fill, "fill_value": list(self.fill_value),
            "kernel": self.kernel, "kernel_width": self.kernel_width, "ridge": self.ridge,
            "sigma": self.sigma, "positive_only": self.positive_only,
            "batch_size": self.batch_size, "device": str(self.device),
            "target": target_name(self.target),
            "reference": reference_kind, "class_index": class_index,
            "softmax_layer": probability[0] if probability else None,
            "layers": self.layers,
        }


def explain(image: Any, embed: Callable, *, reference: Any = None,
            class_index: int | None = None, seed: int | None = None, segments: Any = None,
            progress: bool = False, **options: Any) -> Explanation:
    """Explain one image: ``Explainer(embed, **options).explain(image, ...)``.

    See :class:`Explainer` for ``options`` (``layers``, ``target``, ``n_samples``,
    ``n_segments``, ``sampling``, ``p_off``, ``fill``, ``kernel``, ``ridge``,
    ``sigma``, ``batch_size``, ``device``, ...) and :meth:`Explainer.explain`
    for ``reference``, ``class_index``, ``seed``, ``segments`` and ``progress``.

    Examples
    --------
    >>> exp = explain(face, embedder, layers=["gap"], seed=0)   # doctest: +SKIP
    >>> exp.heatmap("gap").shape                                # doctest: +SKIP
    (113, 113)
    """
    return Explainer(embed, **options).explain(image, reference=reference,
                                               class_index=class_index, seed=seed,
                                               segments=segments, progress=progress)
