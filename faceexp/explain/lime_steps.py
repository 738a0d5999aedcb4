"""The steps of LIME for verification, one public function each.

:class:`faceexp.explain.explainer.Explainer` runs them in this order; the tests and the
sensitivity analyses call them one by one:

1. :func:`superpixels`: SLIC-zero segments of the image (MATLAB's default);
2. :func:`draw_samples`: which superpixels each perturbed sample keeps;
3. :func:`perturb`: the perturbed images (removed superpixels take ``fill``);
4. (the embed callable and the target score every sample: the explainer's job);
5. :func:`kernel_weights`: each sample's weight from its distance to the image;
6. :func:`fit_linear`: the weighted (ridge) least-squares fit of the targets;
7. :func:`paint`: coefficients (``max(b, 0)``, as the MATLAB LIME) painted on
   their superpixels, smoothed, scaled.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

__all__ = ["superpixels", "draw_samples", "perturb", "kernel_weights", "fit_linear", "paint",
           "as_image", "relabel_segments", "blurred", "resolve_fill", "FILLS", "IMAGENET_MEAN_PIXEL", "SAMPLINGS", "KERNELS",
           "KERNEL_WIDTHS", "BLUR_SIGMA_FRACTION"]

SAMPLINGS = ("bernoulli", "matlab")
KERNELS = ("matlab", "lime")
#: Default kernel widths: the MATLAB LIME's 0.35 and lime's 0.25.
KERNEL_WIDTHS = {"matlab": 0.35, "lime": 0.25}
#: The MATLAB LIME draws each sample's drop probability uniformly in [0, 0.8].
_MATLAB_MAX_P_OFF = 0.8


def as_image(image: Any, name: str = "image") -> np.ndarray:
    """An (H, W, 3) uint8 or float image in [0, 1] as float32 (H, W, 3) in [0, 1];
    ValueError naming ``name`` otherwise."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be an (H, W, 3) RGB image, got shape {image.shape} "
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


def relabel_segments(segments: Any, shape: tuple[int, int]) -> np.ndarray:
    """Validate a user segment map and relabel it to 0 .. S-1 (sorted label order)."""
    segments = np.asarray(segments)
    if segments.shape != shape:
        raise ValueError(f"segments must be an integer map of shape {shape} (the image's), "
                         f"got {segments.shape}")
    if not np.issubdtype(segments.dtype, np.integer):
        raise ValueError(f"segments must be integer labels, got dtype {segments.dtype}")
    _, labels = np.unique(segments, return_inverse=True)
    return labels.reshape(shape).astype(np.int64)


def superpixels(image: np.ndarray, n_segments: int = 75, *, compactness: float = 10.0,
                slic_zero: bool = True) -> np.ndarray:
    """SLIC superpixels (skimage) of an (H, W, 3) float image: (H, W) int labels 0 .. S-1.

    ``slic_zero=True`` (default) runs SLIC-zero (SLICO: the compactness is
    adapted per superpixel after the first iteration), because the paper's
    MATLAB LIME calls MATLAB's ``superpixels``, whose default method is
    ``"slic0"``; ``slic_zero=False`` is plain SLIC with a fixed compactness.
    ``compactness=10`` in Lab space is skimage's and MATLAB ``superpixels``'
    default (SLIC-zero's starting value); ``start_label=0`` makes the labels
    index the coefficient vector.
    """
    from skimage.segmentation import slic

    labels = slic(image, n_segments=n_segments, compactness=compactness, start_label=0,
                  channel_axis=-1, slic_zero=slic_zero)
    return relabel_segments(labels, image.shape[:2])


def draw_samples(n_samples: int, n_superpixels: int, *, sampling: str = "bernoulli",
                 p_off: float = 0.6, rng: Any = None) -> np.ndarray:
    """(n_samples, S) bool on/off matrix; row 0 is the unperturbed image (all on).

    ``rng`` is a seed or ``np.random.Generator`` (``np.random.default_rng(rng)``).

    ``"bernoulli"``: each superpixel off independently with probability ``p_off``.
    ``"matlab"``: per sample a drop probability ~ U[0, 0.8], then each superpixel
    off with that probability.

    With ``"bernoulli"`` the first k rows of ``n_samples`` rows are the k rows drawn
    with the same seed (what ``n_samples="auto"`` relies on). Antithetic (u, 1 - u) and
    Latin-hypercube stratified rows were measured against it (issue 23: same Spearman with
    a reference at equal sample counts, within the noise, on SFace and MobileNetV2) and are
    not offered.
    """
    rng = np.random.default_rng(rng)
    if sampling == "bernoulli":
        off_probability = np.full((n_samples, 1), p_off)
    else:
        off_probability = rng.uniform(0.0, _MATLAB_MAX_P_OFF, size=(n_samples, 1))
    samples = rng.random((n_samples, n_superpixels)) >= off_probability
    samples[0] = True
    return samples


def kernel_weights(samples: np.ndarray, *, kernel: str = "matlab",
                   width: float | None = None) -> np.ndarray:
    """(n,) sample weights from the distance of each binary vector to the all-on vector.

    ``width`` None: 0.35 for ``"matlab"``, 0.25 for ``"lime"``.

    ``"matlab"``: d = fraction of superpixels removed, w = exp(-d^2 / width^2).
    ``"lime"``: d = cosine distance to the all-ones vector (1 for the all-off
    vector), w = sqrt(exp(-d^2 / width^2)).
    """
    width = KERNEL_WIDTHS[kernel] if width is None else width
    kept = samples.sum(axis=1).astype(np.float64)
    n_superpixels = samples.shape[1]
    if kernel == "matlab":
        distance = 1.0 - kept / n_superpixels
        return np.exp(-distance ** 2 / width ** 2)
    distance = 1.0 - np.sqrt(kept / n_superpixels)   # 1 - k / (sqrt(k) * sqrt(S))
    return np.sqrt(np.exp(-distance ** 2 / width ** 2))


def fit_linear(samples: np.ndarray, targets: np.ndarray, weights: np.ndarray, *,
               ridge: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    # One BLAS thread: LAPACK's solve splits its sums between threads, so 1 and 2 threads
    # differ in the last bits, and a torchrun shard (OMP_NUM_THREADS=1) must give what a
    # one-process run gives, bit for bit. The solve is small ((1000, 76) at the paper's
    # settings): one thread costs nothing measurable.
    with _blas().limit(limits=1, user_api="blas"):
        return _fit_linear(samples, targets, weights, ridge)


@functools.cache
def _blas():
    """threadpoolctl's view of the BLAS libraries loaded (made once: it scans them)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _fit_linear(samples, targets, weights, ridge):
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


def paint(coefficients: np.ndarray, segments: np.ndarray, *, sigma: float = 4.0,
          positive_only: bool = True) -> np.ndarray:
    """(L, S) coefficients -> (L, H, W) heatmaps in [0, 1].

    Paint every superpixel with its coefficient, by default ``max(b, 0)``
    (``positive_only=True``): the paper's MATLAB LIME paints only positive
    coefficients, so superpixels whose removal *raises* the target share the
    heatmap's 0 with the ones that do not matter. ``positive_only=False``
    paints the raw coefficients (the paper's text: "the pixels of each
    superpixel are set to the value of the associated coefficient"). Then
    smooth with a Gaussian of ``sigma`` pixels the way MATLAB's
    ``imgaussfilt`` does (kernel radius ceil(2 sigma), replicated border) and
    min-max scale each map; a constant map (e.g. every coefficient <= 0 with
    ``positive_only``) becomes all 0.
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



def perturb(image: torch.Tensor, segments: torch.Tensor, samples: torch.Tensor,
            fill: torch.Tensor) -> torch.Tensor:
    """Perturbed copies of one image: superpixels that a sample switches off take ``fill``.

    Parameters
    ----------
    image : (3, H, W) float tensor in [0, 1]
    segments : (H * W,) long tensor, the superpixel label of every pixel (row-major)
    samples : (n, S) bool tensor (True = kept)
    fill : (3, 1, 1) float tensor, the value of removed pixels

    Returns
    -------
    (n, 3, H, W) float tensor, on the inputs' device.
    """
    height, width = image.shape[1:]
    kept = samples[:, segments].view(-1, 1, height, width)
    return torch.where(kept, image, fill)


#: ImageNet normalisation mean in pixel space (= ``faceexp.data.preprocessing.IMAGENET_MEAN``):
#: the value that becomes 0 once the model normalises its input.
IMAGENET_MEAN_PIXEL = (0.485, 0.456, 0.406)
FILLS = ("black", "mean", "blur")


def resolve_fill(fill: Any) -> tuple[float, float, float]:
    """The explainer's ``fill`` option as an RGB triple in [0, 1]: ``"black"`` and
    ``"blur"`` (0, 0, 0: the blurred image replaces it), ``"mean"`` the ImageNet mean,
    or 3 floats in [0, 1]; one-line ValueError naming ``fill`` otherwise."""
    if isinstance(fill, str):
        if fill not in FILLS:
            raise ValueError(f"fill must be 'black', 'mean', 'blur' or an RGB triple in "
                             f"[0, 1], got {fill!r}")
        return IMAGENET_MEAN_PIXEL if fill == "mean" else (0.0, 0.0, 0.0)
    try:
        value = tuple(float(v) for v in fill)
    except (TypeError, ValueError):
        raise ValueError(f"fill must be 'black', 'mean' or 3 floats in [0, 1], got "
                         f"{fill!r}") from None
    if len(value) != 3 or not all(0 <= v <= 1 for v in value):
        raise ValueError(f"fill must be 'black', 'mean' or 3 floats in [0, 1], got {fill!r}")
    return value


#: ``fill="blur"``: Gaussian sigma as a fraction of the image's longer side (Fong &
#: Vedaldi's blur perturbation used sigma 10 px on 224 px images).
BLUR_SIGMA_FRACTION = 0.045


def blurred(image: np.ndarray, sigma_fraction: float = BLUR_SIGMA_FRACTION) -> np.ndarray:
    """The fill of ``fill="blur"``: ``image`` (H, W, 3) float in [0, 1] smoothed by a
    Gaussian of sigma ``sigma_fraction * max(H, W)`` pixels per channel (edges
    reflected), float32 (H, W, 3)."""
    from scipy.ndimage import gaussian_filter

    sigma = sigma_fraction * max(image.shape[:2])
    return gaussian_filter(np.asarray(image, dtype=np.float32), sigma=(sigma, sigma, 0),
                           mode="reflect").astype(np.float32)
