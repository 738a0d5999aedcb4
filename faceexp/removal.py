"""Eliminating the most significant pixels (paper IV-E) and deletion curves.

The paper validates its heatmaps by removing, from every image, the pixels
whose heatmap value exceeds a threshold (0.9, 0.8, ..., 0.1), setting them to
the normalisation mean of the input layer (:data:`faceexp.data.IMAGENET_MEAN`
in pixel space, 0 once the model normalises the image), and re-running the
verification protocol: if the heatmaps point at what the network uses, the
EER rises faster than when the same number of pixels is removed at random.

Two random baselines are offered, because *how* random pixels are removed
matters as much as how many:

* ``"random-pixels"`` (the paper's): the same number of scattered single
  pixels. A CNN has never seen such salt-and-pepper images; on ImageNet
  MobileNetV2 with ORL faces, blanking a random 10 % of single pixels dropped
  the cosine similarity to the clean image to about 0.63, while one
  contiguous 10 % region dropped it only to about 0.8-0.9. Against this
  baseline almost any contiguous heatmap region looks "more important than
  random".
* ``"random-superpixels"``: whole superpixels of the image's own SLIC map
  (the explainer's segments), drawn at random until the removed area is as
  close as possible to the same number of pixels. Heatmap regions are
  contiguous too (painted superpixels, smoothed), so this is the fair
  baseline.

Beyond the paper, :func:`deletion_curves` measures faithfulness per image
(the standard deletion / "pixel flipping" curve): the cosine similarity of
the degraded image's embedding to the clean image's as a growing fraction
of pixels is removed most-relevant-first (MoRF), least-relevant-first (LeRF)
or in random superpixel order. :func:`deletion_auc` integrates the curves
and :func:`faithfulness_gap` gives AUC(LeRF) - AUC(MoRF) (or AUC(random) -
AUC(MoRF)): the larger, the more faithful the heatmap. :func:`sampling_study`
uses it, with the stability of heatmaps across seeds, to compare the
explainer's sampling settings.

Randomness: the random removals of image ``k`` come from
``np.random.default_rng([seed, k])`` (``k`` = the image's position in the
input), so they do not depend on batch sizes, and the same seed removes
nested sets as the count grows (a random permutation is cut at the count).
"""
from __future__ import annotations

import itertools
import math
import numbers
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from faceexp import protocol
from faceexp.data import IMAGENET_MEAN
from faceexp.explainer import Explainer, resolve_batch_size
from faceexp.metrics import OVERALL, equal_error_rate

__all__ = [
    "METHODS",
    "ORDERS",
    "DEFAULT_THRESHOLDS",
    "DEFAULT_STEPS",
    "DEFAULT_SETTINGS",
    "NO_REMOVAL",
    "remove_significant",
    "remove_random_pixels",
    "remove_random_superpixels",
    "removed_fraction",
    "removal_experiment",
    "deletion_curves",
    "deletion_auc",
    "faithfulness_gap",
    "sampling_study",
    "summarise_sampling_study",
]

#: Removal methods of :func:`removal_experiment`.
METHODS = ("significant", "random-pixels", "random-superpixels")
#: Deletion orders of :func:`deletion_curves`.
ORDERS = ("most-relevant-first", "least-relevant-first", "random-superpixels")
#: The paper's thresholds (Fig. 9, 10): 0.9, 0.8, ..., 0.1.
DEFAULT_THRESHOLDS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
#: Default deletion fractions: 0, 0.05, ..., 0.5 of the pixels.
DEFAULT_STEPS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
#: Explainer settings compared by :func:`sampling_study` by default.
DEFAULT_SETTINGS = ({"p_off": 0.2}, {"p_off": 0.4}, {"p_off": 0.6}, {"p_off": 0.8},
                    {"sampling": "matlab"})
#: ``threshold`` and ``method`` of the no-removal rows of :func:`removal_experiment`.
NO_REMOVAL = "none"
#: SLIC options used when no segments are given (the explainer's defaults).
_SLIC_COMPACTNESS = 10.0
#: Measures of :func:`sampling_study` per (setting, image, seed) and per (setting, image).
_PER_RUN = ("faithfulness", "faithfulness_random", "auc_morf")
_PER_IMAGE = ("stability", "stability_psnr")
#: Explainer arguments that :func:`sampling_study` sets itself.
_STUDY_RESERVED = ("seed", "segments", "reference", "progress", "n_samples", "n_segments",
                   "batch_size", "embed", "image")


# --------------------------------------------------------------------------- validation


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


def _seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
    return int(seed)


def _as_images(images: Any, name: str = "images") -> torch.Tensor:
    """(N, 3, H, W) float in [0, 1] (tensor or array) -> float32 tensor (input's device)."""
    if isinstance(images, np.ndarray):
        if not np.issubdtype(images.dtype, np.floating):
            raise ValueError(f"{name}: expected float values in [0, 1], got dtype "
                             f"{images.dtype} (divide uint8 images by 255)")
        images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    elif not isinstance(images, torch.Tensor):
        raise ValueError(f"{name}: expected an (N, 3, H, W) torch tensor or numpy array, got "
                         f"{type(images).__name__}")
    if not images.is_floating_point():
        raise ValueError(f"{name}: expected float values in [0, 1], got dtype {images.dtype} "
                         "(divide uint8 images by 255)")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise ValueError(f"{name}: expected shape (N, 3, H, W) with N >= 1, got "
                         f"{tuple(images.shape)} (one (H, W, 3) image is "
                         "image.transpose(2, 0, 1)[None])")
    images = images.detach().to(torch.float32)
    if not bool(torch.isfinite(images).all()) or float(images.min()) < 0 or \
            float(images.max()) > 1:
        raise ValueError(f"{name}: values must be finite and lie in [0, 1]")
    return images


def _as_maps(maps: Any, shape: tuple, name: str, *, integer: bool = False) -> np.ndarray:
    """(N, H, W) array (or (H, W) for every image when ``integer``) -> numpy."""
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().numpy()
    maps = np.asarray(maps)
    if integer and maps.shape == shape[1:]:
        maps = np.broadcast_to(maps, shape)
    if maps.shape != shape:
        extra = " or one (H, W) map for all images" if integer else ""
        raise ValueError(f"{name}: expected shape {shape} (one (H, W) map per image){extra}, "
                         f"got {maps.shape}")
    if integer:
        if not np.issubdtype(maps.dtype, np.integer):
            raise ValueError(f"{name}: expected integer superpixel labels, got dtype "
                             f"{maps.dtype}")
        return maps
    if not (np.issubdtype(maps.dtype, np.floating) or np.issubdtype(maps.dtype, np.integer)):
        raise ValueError(f"{name}: expected real values, got dtype {maps.dtype}")
    maps = maps.astype(np.float64)
    if not np.isfinite(maps).all():
        raise ValueError(f"{name}: values must be finite (no NaN or infinity)")
    return maps


def _fill_values(fill: Any) -> tuple[float, float, float]:
    """"mean", "black", one number or 3 numbers in [0, 1] -> an RGB triple."""
    if isinstance(fill, str):
        if fill == "mean":
            return tuple(float(v) for v in IMAGENET_MEAN)
        if fill == "black":
            return (0.0, 0.0, 0.0)
        raise ValueError(f"fill: unknown fill {fill!r}; use 'mean' (IMAGENET_MEAN), 'black', a "
                         "number or 3 numbers in [0, 1]")
    values = np.asarray(fill, dtype=object).reshape(-1)
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"fill: expected a number or 3 numbers in [0, 1], got {fill!r}") \
            from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3 or not all(math.isfinite(v) and 0 <= v <= 1 for v in values):
        raise ValueError(f"fill: expected a number or 3 numbers (RGB) in [0, 1], got {fill!r}")
    return values


def _fill_tensor(fill: Any, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(_fill_values(fill), dtype=like.dtype, device=like.device).view(3, 1, 1)


def _as_counts(counts: Any, n: int, n_pixels: int) -> np.ndarray:
    if isinstance(counts, torch.Tensor):
        counts = counts.detach().cpu().numpy()
    counts = np.asarray(counts)
    if counts.shape != (n,):
        raise ValueError(f"counts: expected shape ({n},) (one count per image), got "
                         f"{counts.shape}")
    if counts.dtype == bool or not (np.issubdtype(counts.dtype, np.integer) or (
            np.issubdtype(counts.dtype, np.floating) and np.isfinite(counts).all()
            and (counts == np.round(counts)).all())):
        raise ValueError("counts: expected whole numbers of pixels")
    counts = counts.astype(np.int64)
    if counts.size and (counts.min() < 0 or counts.max() > n_pixels):
        raise ValueError(f"counts: every count must lie in [0, {n_pixels}] (H * W), got "
                         f"{counts.min()} .. {counts.max()}")
    return counts


def _threshold(value: Any, name: str = "threshold") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def _thresholds(thresholds: Any) -> list[float]:
    if isinstance(thresholds, numbers.Real):
        thresholds = [thresholds]
    values = [_threshold(t, "thresholds") for t in thresholds]
    if not values:
        raise ValueError("thresholds: expected at least one threshold, e.g. (0.9, 0.8, ..., 0.1)")
    if len(set(values)) != len(values):
        raise ValueError(f"thresholds: duplicate values in {values}")
    return values


def _choices(values: Any, allowed: Sequence[str], name: str) -> list[str]:
    if isinstance(values, str):
        values = [values]
    values = list(values)
    unknown = [v for v in values if v not in allowed]
    if not values or unknown:
        raise ValueError(f"{name}: expected a non-empty subset of {allowed}, got {values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name}: duplicate entries in {values}")
    return values


def _steps(steps: Any) -> np.ndarray:
    if isinstance(steps, numbers.Integral) and not isinstance(steps, bool):
        n = _int(steps, "steps", 1)
        return np.linspace(0.0, 1.0, n + 1)
    try:
        values = np.asarray([float(s) for s in steps], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"steps: expected fractions in [0, 1] or an int number of steps, got "
                         f"{steps!r}") from None
    if values.size < 2 or not np.isfinite(values).all() or values.min() < 0 or \
            values.max() > 1 or (np.diff(values) <= 0).any():
        raise ValueError(f"steps: expected at least two strictly increasing fractions in "
                         f"[0, 1] (e.g. 0, 0.05, ..., 0.5), got {steps!r}")
    return values


# --------------------------------------------------------------------------- masks


def _image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index``: independent of batching and of other images."""
    return np.random.default_rng([seed, int(index)])


def _label_index(segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) labels -> (areas (S,), label index 0 .. S-1 of every pixel (H*W,))."""
    _, inverse, areas = np.unique(segments.reshape(-1), return_inverse=True,
                                  return_counts=True)
    return areas, inverse.reshape(-1)


def _random_pixel_mask(n_pixels: int, count: int, seed: int, index: int) -> np.ndarray:
    mask = np.zeros(n_pixels, dtype=bool)
    mask[_image_rng(seed, index).permutation(n_pixels)[:count]] = True
    return mask


def _superpixel_permutation(n_labels: int, seed: int, index: int) -> np.ndarray:
    return _image_rng(seed, index).permutation(n_labels)


def _random_superpixel_mask(segments: np.ndarray, count: int, seed: int, index: int,
                            match: str) -> np.ndarray:
    """Flat (H*W,) mask of whole random superpixels covering about ``count`` pixels."""
    areas, inverse = _label_index(segments)
    order = _superpixel_permutation(areas.size, seed, index)
    covered = np.cumsum(areas[order])
    if count == 0:
        taken = 0
    else:
        crossing = int(np.searchsorted(covered, count))   # first prefix with area >= count
        taken = crossing + 1
        if match == "closest":
            before = covered[crossing - 1] if crossing > 0 else 0
            if count - before < covered[crossing] - count:
                taken = crossing
    removed = np.zeros(areas.size, dtype=bool)
    removed[order[:taken]] = True
    return removed[inverse]


def _apply(images: torch.Tensor, masks: np.ndarray, fill: torch.Tensor) -> torch.Tensor:
    """Set the pixels of ``masks`` (B, H, W) bool to ``fill`` (3, 1, 1) in (B, 3, H, W)."""
    masks_t = torch.from_numpy(np.ascontiguousarray(masks)).to(images.device)
    return torch.where(masks_t[:, None], fill, images)


def _like_input(result: torch.Tensor, original: Any):
    if isinstance(original, np.ndarray):
        return result.cpu().numpy()
    return result


# --------------------------------------------------------------------------- removal


def remove_significant(images: Any, heatmaps: Any, threshold: float, *,
                       fill: Any = IMAGENET_MEAN):
    """Remove from every image the pixels whose heatmap value exceeds a threshold.

    Paper IV-E: the removed pixels are set to the normalisation mean of the
    input layer (``IMAGENET_MEAN`` in pixel space), which is 0 after the model
    normalises the image.

    Parameters
    ----------
    images : torch.Tensor or ndarray, shape (N, 3, H, W)
        Float images in [0, 1].
    heatmaps : array_like, shape (N, H, W)
        One heatmap per image (the explainer's are in [0, 1]).
    threshold : float
        Pixels with ``heatmap > threshold`` (strictly) are removed.
    fill : 3 floats, one float, "mean" or "black"
        Pixel-space value of removed pixels; default ``IMAGENET_MEAN``.

    Returns
    -------
    images_out : same type as ``images`` (and device), shape (N, 3, H, W)
    removed_mask : ndarray of bool, shape (N, H, W)
        True where a pixel was removed.
    """
    tensor = _as_images(images)
    n, _, height, width = tensor.shape
    maps = _as_maps(heatmaps, (n, height, width), "heatmaps")
    threshold = _threshold(threshold)
    fill_t = _fill_tensor(fill, tensor)
    mask = maps > threshold
    return _like_input(_apply(tensor, mask, fill_t), images), mask


def remove_random_pixels(images: Any, counts: Any, *, seed: int, fill: Any = IMAGENET_MEAN):
    """Remove a seeded random set of single pixels from every image (the paper's baseline).

    Image ``k`` loses exactly ``counts[k]`` pixels, the first ``counts[k]`` of a
    random permutation of its pixels drawn from
    ``np.random.default_rng([seed, k])``: the same seed gives the same pixels,
    and a larger count removes a superset.

    Parameters
    ----------
    images : torch.Tensor or ndarray, shape (N, 3, H, W)
        Float images in [0, 1].
    counts : array_like of int, shape (N,)
        Pixels to remove from each image, 0 .. H*W (e.g. the number above a
        threshold: ``removed_mask.sum(axis=(1, 2))`` of :func:`remove_significant`).
    seed : int
        Non-negative seed.
    fill : 3 floats, one float, "mean" or "black"
        Pixel-space value of removed pixels; default ``IMAGENET_MEAN``.

    Returns
    -------
    images_out : same type as ``images``, shape (N, 3, H, W)
    removed_mask : ndarray of bool, shape (N, H, W)
    """
    tensor = _as_images(images)
    n, _, height, width = tensor.shape
    counts = _as_counts(counts, n, height * width)
    seed = _seed(seed)
    fill_t = _fill_tensor(fill, tensor)
    mask = np.stack([_random_pixel_mask(height * width, int(c), seed, k)
                     for k, c in enumerate(counts)]).reshape(n, height, width)
    return _like_input(_apply(tensor, mask, fill_t), images), mask


def remove_random_superpixels(images: Any, segments: Any, counts: Any, *, seed: int,
                              fill: Any = IMAGENET_MEAN, match: str = "closest"):
    """Remove whole random superpixels, about ``counts[k]`` pixels from image ``k``.

    The superpixels of image ``k`` are put in a random order (a permutation
    from ``np.random.default_rng([seed, k])``) and removed whole, in that
    order, until the removed area reaches ``counts[k]``. The last superpixel
    (the one that makes the area reach or pass the count) is handled by
    ``match``:

    * ``"closest"`` (default): it is kept out if that leaves the area closer to
      ``counts[k]`` than putting it in (strictly closer; on a tie it goes in),
      so the removed area is the prefix area nearest to the count, and the
      error is at most half that superpixel's area;
    * ``"at-least"``: it is always removed (area >= count).

    Removed sets are nested: with the same seed a larger count removes a
    superset. A count of 0 removes nothing.

    Parameters
    ----------
    images : torch.Tensor or ndarray, shape (N, 3, H, W)
        Float images in [0, 1].
    segments : array_like of int, shape (N, H, W) or (H, W)
        Superpixel labels of each image (e.g. ``Explanation.segments``; any
        integers); one (H, W) map is used for every image.
    counts : array_like of int, shape (N,)
        Target number of pixels per image, 0 .. H*W.
    seed : int
        Non-negative seed.
    fill : 3 floats, one float, "mean" or "black"
        Pixel-space value of removed pixels; default ``IMAGENET_MEAN``.
    match : {"closest", "at-least"}
        How the last superpixel is handled, see above.

    Returns
    -------
    images_out : same type as ``images``, shape (N, 3, H, W)
    removed_mask : ndarray of bool, shape (N, H, W)
    """
    tensor = _as_images(images)
    n, _, height, width = tensor.shape
    segments = _as_maps(segments, (n, height, width), "segments", integer=True)
    counts = _as_counts(counts, n, height * width)
    seed = _seed(seed)
    match = _match(match)
    fill_t = _fill_tensor(fill, tensor)
    mask = np.stack([_random_superpixel_mask(segments[k], int(c), seed, k, match)
                     for k, c in enumerate(counts)]).reshape(n, height, width)
    return _like_input(_apply(tensor, mask, fill_t), images), mask


def _match(match: Any) -> str:
    if match not in ("closest", "at-least"):
        raise ValueError(f"match: expected 'closest' or 'at-least', got {match!r}")
    return match


def removed_fraction(heatmaps: Any, thresholds: Any = DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """Fraction of each image's pixels above each threshold (paper Fig. 10).

    Parameters
    ----------
    heatmaps : array_like, shape (N, H, W)
    thresholds : float or sequence of float

    Returns
    -------
    DataFrame
        Columns ``image`` (0 .. N-1), ``threshold``, ``fraction`` (of the H*W
        pixels with ``heatmap > threshold``, in [0, 1]); N * len(thresholds)
        rows, thresholds in the given order, images within each.
    """
    if isinstance(heatmaps, torch.Tensor):
        heatmaps = heatmaps.detach().cpu().numpy()
    heatmaps = np.asarray(heatmaps)
    if heatmaps.ndim != 3 or heatmaps.shape[0] == 0:
        raise ValueError(f"heatmaps: expected shape (N, H, W) with N >= 1, got "
                         f"{heatmaps.shape}")
    maps = _as_maps(heatmaps, heatmaps.shape, "heatmaps")
    values = _thresholds(thresholds)
    n = maps.shape[0]
    rows = [pd.DataFrame({"image": np.arange(n), "threshold": t,
                          "fraction": (maps > t).mean(axis=(1, 2))}) for t in values]
    return pd.concat(rows, ignore_index=True)


# --------------------------------------------------------------------------- embedding


def _layer_values(output: Any, layer: str, rows: int) -> np.ndarray:
    """One layer of an embed callable's output as (rows, D) float64."""
    if isinstance(output, Mapping):
        if layer not in output:
            raise ValueError(f"layer: the embed callable returns no layer {layer!r}; "
                             f"available: {list(output)}")
        output = output[layer]
    if isinstance(output, torch.Tensor):
        output = output.detach().to("cpu", torch.float64).numpy()
    elif isinstance(output, np.ndarray):
        output = output.astype(np.float64)
    else:
        raise ValueError("embed: must return an (N, D) tensor or array, or a dict of them by "
                         f"layer name; got {type(output).__name__}")
    if output.ndim < 2 or output.shape[0] != rows:
        raise ValueError(f"embed: layer {layer!r} has shape {output.shape} for a batch of "
                         f"{rows} images; expected ({rows}, D)")
    output = output.reshape(rows, -1)
    if not np.isfinite(output).all():
        raise ValueError(f"embed: layer {layer!r} returned NaN or infinite values")
    return output


def _embed_batch(embed: Callable, batch: torch.Tensor, layer: str, batch_size: int,
                 flip_average: bool) -> np.ndarray:
    """Embed up to ``batch_size`` images, padded to exactly ``batch_size`` rows.

    Padding repeats the last image; padded rows are dropped. With
    ``flip_average`` the descriptor is the mean of the image's and its
    horizontal mirror's (paper III-B).
    """
    real = batch.shape[0]
    if real < batch_size:
        batch = torch.cat([batch, batch[-1:].expand(batch_size - real, -1, -1, -1)])
    with torch.no_grad():
        values = _layer_values(embed(batch), layer, batch_size)
        if flip_average:
            values = (values + _layer_values(embed(torch.flip(batch, dims=(3,))), layer,
                                             batch_size)) / 2.0
    return values[:real]


class _EmbedStream:
    """Embeds images handed over in pieces of any size, always ``batch_size`` at a time.

    ``add`` queues images and runs every full batch; ``finish`` runs the rest
    as one padded batch (:func:`_embed_batch`). Embeddings come out in the
    order the images went in: ``ready`` counts those not yet taken and
    ``pop(k)`` takes the next ``k`` (k, D). At most ``batch_size - 1`` images
    wait at any time.
    """

    def __init__(self, embed: Callable, layer: str, batch_size: int, flip_average: bool):
        self.embed, self.layer = embed, layer
        self.batch_size, self.flip_average = batch_size, flip_average
        self._waiting: list[torch.Tensor] = []
        self._n_waiting = 0
        self._out: list[np.ndarray] = []
        self.ready = 0

    def _run(self, batch: torch.Tensor) -> None:
        values = _embed_batch(self.embed, batch, self.layer, self.batch_size,
                              self.flip_average)
        self._out.append(values)
        self.ready += len(values)

    def add(self, images: torch.Tensor) -> None:
        self._waiting.append(images)
        self._n_waiting += len(images)
        if self._n_waiting < self.batch_size:
            return
        queued = torch.cat(self._waiting)
        full = len(queued) - len(queued) % self.batch_size
        for start in range(0, full, self.batch_size):
            self._run(queued[start:start + self.batch_size])
        self._waiting = [queued[full:]] if full < len(queued) else []
        self._n_waiting = len(queued) - full

    def finish(self) -> None:
        if self._n_waiting:
            self._run(torch.cat(self._waiting))
            self._waiting, self._n_waiting = [], 0

    def pop(self, k: int) -> np.ndarray:
        values = np.concatenate(self._out) if len(self._out) > 1 else self._out[0]
        taken, rest = values[:k], values[k:]
        self._out = [rest] if len(rest) else []
        self.ready -= len(taken)
        return taken


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of (n, D) arrays; 0 where a vector is zero."""
    dots = np.einsum("ij,ij->i", a, b)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def _check_embed(embed: Any) -> None:
    if not callable(embed):
        raise ValueError(f"embed: expected a callable mapping (N, 3, H, W) batches in [0, 1] "
                         f"to embeddings, got {type(embed).__name__}")


def _slic_maps(images: torch.Tensor, n_segments: int) -> np.ndarray:
    """SLIC maps of (N, 3, H, W) images with the explainer's default options."""
    from skimage.segmentation import slic

    pixels = images.cpu().numpy().transpose(0, 2, 3, 1)
    return np.stack([slic(image, n_segments=n_segments, compactness=_SLIC_COMPACTNESS,
                          start_label=0, channel_axis=-1) for image in pixels])


def _segments_or_slic(segments: Any, images: torch.Tensor, n_segments: int) -> np.ndarray:
    n, _, height, width = images.shape
    if segments is None:
        return _slic_maps(images, _int(n_segments, "n_segments", 2))
    return _as_maps(segments, (n, height, width), "segments", integer=True)


# --------------------------------------------------------------------------- experiment


def _check_pairs(pairs: Any, n: int) -> pd.DataFrame:
    if not isinstance(pairs, pd.DataFrame):
        raise ValueError(f"pairs: expected a DataFrame with columns i, j, label (from "
                         f"faceexp.protocol.verification_pairs), got {type(pairs).__name__}")
    missing = [c for c in ("i", "j", "label") if c not in pairs.columns]
    if missing:
        raise ValueError(f"pairs: missing column(s) {missing}; expected i, j, label "
                         "(and pose_pair for the per-pose breakdown)")
    if pairs.empty:
        raise ValueError("pairs: no pairs to score")
    index = pairs[["i", "j"]].to_numpy()
    if not np.issubdtype(index.dtype, np.integer) or index.min() < 0 or index.max() >= n:
        raise ValueError(f"pairs: columns i and j must be integer image indices in [0, {n})")
    labels = pairs["label"].to_numpy()
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("pairs: label must be 1 (genuine) or 0 (impostor)")
    return pairs


def _scores(embeddings: np.ndarray, pairs: pd.DataFrame) -> np.ndarray:
    return np.asarray(protocol.cosine_scores(embeddings, pairs), dtype=np.float64)


def _eer_rows(scores: np.ndarray, pairs: pd.DataFrame, groups: list, fractions: np.ndarray,
              threshold: Any, method: str) -> list[dict]:
    labels = pairs["label"].to_numpy() == 1
    rows = []
    for group in groups:
        if "pose_pair" in pairs.columns:
            keep = (pairs["pose_pair"] == group).to_numpy()
        else:
            keep = np.ones(len(pairs), dtype=bool)
        genuine = scores[keep & labels]
        impostor = scores[keep & ~labels]
        eer = (equal_error_rate(impostor, genuine).eer
               if genuine.size and impostor.size else float("nan"))
        used = np.unique(pairs.loc[keep, ["i", "j"]].to_numpy())
        rows.append({"threshold": threshold, "method": method, "pose_pair": group,
                     "eer": eer, "n_genuine": int(genuine.size),
                     "n_impostor": int(impostor.size),
                     "removed_fraction": float(fractions[used].mean())})
    return rows


def removal_experiment(embed: Callable, images: Any, heatmaps: Any, frame: Any = None,
                       pairs: Any = None, *, thresholds: Any = DEFAULT_THRESHOLDS,
                       methods: Sequence[str] = METHODS, segments: Any = None,
                       n_segments: int = 75, seed: int = 0, fill: Any = IMAGENET_MEAN,
                       match: str = "closest", flip_average: bool = True,
                       batch_size: int | None = None,
                       layer: str = "gap", progress: bool = True) -> pd.DataFrame:
    """EER after removing each image's most significant pixels, and random baselines.

    Paper IV-E (Fig. 9): for each threshold and method, pixels are removed
    from *every* image, every image is embedded again (descriptor = mean of
    the image's and its mirror's embedding, as the protocol), the pairs are
    scored by cosine similarity and the EER is computed over all pairs and per
    pose pair.

    Methods:

    * ``"significant"``: the pixels with ``heatmap > threshold``;
    * ``"random-pixels"``: as many single pixels, at random (the paper's
      baseline, :func:`remove_random_pixels`);
    * ``"random-superpixels"``: whole random superpixels covering about as many
      pixels (:func:`remove_random_superpixels`, ``match`` rule).

    The random removals of an image are nested across thresholds (one seeded
    permutation per image, cut at each count).

    Parameters
    ----------
    embed : callable
        ``embed(batch (B, 3, H, W) float32 in [0, 1]) -> dict layer -> (B, D)``
        (e.g. :class:`faceexp.models.Embedder`) or an (B, D) tensor/array.
        Always called with exactly ``batch_size`` images (the last batch is
        padded by repeating its last image), so a compiled model never
        recompiles; with ``flip_average`` twice per batch (the images, then
        their mirrors), not once with ``2 * batch_size``, so the graph the
        explainer compiled for ``batch_size`` is reused.
    images : torch.Tensor or ndarray, shape (N, 3, H, W)
        Float images in [0, 1]; batches are built on their device.
    heatmaps : array_like, shape (N, H, W)
        Each image's heatmap (e.g. ``Explanation.heatmap("gap")``).
    frame : DataFrame, optional
        One row per image (in the order of ``images``, columns ``identity`` and
        optionally ``pose``); when ``pairs`` is None the pairs are built from it
        with :func:`faceexp.protocol.verification_pairs_by_pose` (frames with a
        ``pose`` column) or :func:`faceexp.protocol.verification_pairs`.
    pairs : DataFrame, optional
        Columns ``i``, ``j`` (image positions), ``label`` (1 genuine, 0
        impostor) and optionally ``pose_pair``. One EER is computed per
        ``pose_pair`` value, as given (pairs of
        :func:`~faceexp.protocol.verification_pairs_by_pose` carry the six
        pose pairs and ``"overall"``, the protocol over all images); without
        that column all pairs form one ``"overall"`` group.
    thresholds : sequence of float
        Default 0.9, 0.8, ..., 0.1 (paper).
    methods : sequence of str
        Subset of ``METHODS``.
    segments : array_like of int, shape (N, H, W) or (H, W), optional
        Superpixels for ``"random-superpixels"`` (the explanations' segments);
        None: SLIC with ``n_segments`` (the explainer's default options).
    n_segments : int
        SLIC superpixels when ``segments`` is None.
    seed : int
        Seed of the random removals.
    fill : 3 floats, one float, "mean" or "black"
        Pixel-space value of removed pixels; default ``IMAGENET_MEAN``.
    match : {"closest", "at-least"}
        Area rule of ``"random-superpixels"``.
    flip_average : bool
        Average each descriptor with its mirror image's (paper, default True).
    batch_size : int, optional
        Images per ``embed`` call.
        None: the explainer's choice (:func:`faceexp.explainer.resolve_batch_size`).
    layer : str
        Layer of a dict-returning ``embed`` used as descriptor (ignored when
        ``embed`` returns one array).
    progress : bool
        Show a progress bar over the images.

    Returns
    -------
    DataFrame
        One row per (threshold, method, pose_pair): columns ``threshold``
        (float, or ``"none"`` for the no-removal rows), ``method``
        (``METHODS`` or ``"none"``), ``pose_pair`` (each value of
        ``pairs.pose_pair`` in order of appearance, or ``"overall"``), ``eer``
        (a fraction, as :func:`faceexp.metrics.equal_error_rate` with bob's
        rule; NaN if a group lacks genuine or impostor pairs),
        ``n_genuine``, ``n_impostor``, ``removed_fraction`` (mean fraction of
        pixels removed over the images in that group's pairs). The no-removal
        rows come first, then thresholds in the given order, methods within.
    """
    from tqdm import tqdm

    _check_embed(embed)
    tensor = _as_images(images)
    n, _, height, width = tensor.shape
    maps = _as_maps(heatmaps, (n, height, width), "heatmaps")
    if frame is not None:
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"frame: expected a DataFrame with one row per image, got "
                             f"{type(frame).__name__}")
        if len(frame) != n:
            raise ValueError(f"frame: has {len(frame)} rows but there are {n} images; it must "
                             "describe the images in order")
    if pairs is None:
        if frame is None:
            raise ValueError("pairs: give the pairs (faceexp.protocol.verification_pairs) or "
                             "the frame to build them from")
        pairs = (protocol.verification_pairs_by_pose(frame) if "pose" in frame.columns
                 else protocol.verification_pairs(frame))
    pairs = _check_pairs(pairs, n)
    values = _thresholds(thresholds)
    methods = _choices(methods, METHODS, "methods")
    seed = _seed(seed)
    match = _match(match)
    batch_size = resolve_batch_size(embed, batch_size)
    fill_t = _fill_tensor(fill, tensor)
    if "random-superpixels" in methods:
        segments = _segments_or_slic(segments, tensor, n_segments)
    groups = list(pd.unique(pairs["pose_pair"])) if "pose_pair" in pairs.columns else [OVERALL]

    jobs = [(NO_REMOVAL, NO_REMOVAL)] + [(t, m) for t in values for m in methods]
    # Images of consecutive jobs share batches: with n not a multiple of batch_size
    # only the very last batch is padded (not the last one of every job).
    stream = _EmbedStream(embed, layer, batch_size, flip_average)
    bar = tqdm(total=len(jobs) * n, disable=not progress, desc="removal", unit="img")
    rows = []
    done = 0                                  # jobs whose EERs are computed
    fractions = {}

    def score_ready():
        nonlocal done, rows
        while done < len(jobs) and stream.ready >= n:
            scores = _scores(stream.pop(n), pairs)
            threshold, method = jobs[done]
            rows += _eer_rows(scores, pairs, groups, fractions.pop(done), threshold, method)
            done += 1

    try:
        for j, (threshold, method) in enumerate(jobs):
            fractions[j] = np.empty(n)
            for start in range(0, n, batch_size):
                stop = min(n, start + batch_size)
                batch = tensor[start:stop]
                if method == NO_REMOVAL:
                    mask = np.zeros((stop - start, height, width), dtype=bool)
                else:
                    mask = maps[start:stop] > threshold
                    if method != "significant":
                        counts = mask.sum(axis=(1, 2))
                        if method == "random-pixels":
                            flat = [_random_pixel_mask(height * width, int(c), seed, start + k)
                                    for k, c in enumerate(counts)]
                        else:
                            flat = [_random_superpixel_mask(segments[start + k], int(c), seed,
                                                            start + k, match)
                                    for k, c in enumerate(counts)]
                        mask = np.stack(flat).reshape(stop - start, height, width)
                    batch = _apply(batch, mask, fill_t)
                fractions[j][start:stop] = mask.mean(axis=(1, 2))
                stream.add(batch)
                bar.update(stop - start)
                score_ready()
        stream.finish()
        score_ready()
    finally:
        bar.close()
    result = pd.DataFrame(rows, columns=["threshold", "method", "pose_pair", "eer",
                                         "n_genuine", "n_impostor", "removed_fraction"])
    return result


# --------------------------------------------------------------------------- deletion


def _deletion_order(heatmap: np.ndarray, segments: np.ndarray | None, order: str, seed: int,
                    index: int) -> np.ndarray:
    """Flat pixel indices in removal order.

    Heatmap ties are broken by raster position (row-major, earliest first) in
    both directions. ``"random-superpixels"``: superpixels in a random order
    from ``default_rng([seed, index])`` (the same permutation as
    :func:`remove_random_superpixels`), each superpixel's pixels in raster
    order.
    """
    flat = heatmap.reshape(-1)
    if order == "most-relevant-first":
        return np.argsort(-flat, kind="stable")
    if order == "least-relevant-first":
        return np.argsort(flat, kind="stable")
    areas, inverse = _label_index(segments)
    rank = np.empty(areas.size, dtype=np.int64)
    rank[_superpixel_permutation(areas.size, seed, index)] = np.arange(areas.size)
    return np.argsort(rank[inverse], kind="stable")


def deletion_curves(embed: Callable, images: Any, heatmaps: Any, *, steps: Any = DEFAULT_STEPS,
                    orders: Sequence[str] = ORDERS, segments: Any = None, n_segments: int = 75,
                    seed: int = 0, fill: Any = IMAGENET_MEAN, batch_size: int | None = None,
                    layer: str = "gap", flip_average: bool = False,
                    progress: bool = True) -> pd.DataFrame:
    """Similarity to the clean image as pixels are removed in heatmap order.

    For each image and order, the first ``floor(fraction * H * W + 0.5)`` pixels of
    the order are set to ``fill`` and the cosine similarity between the
    degraded image's embedding and the unmodified image's is recorded.

    Orders:

    * ``"most-relevant-first"`` (MoRF): decreasing heatmap value;
    * ``"least-relevant-first"`` (LeRF): increasing heatmap value;
    * ``"random-superpixels"``: whole superpixels in random order (a baseline
      with the same contiguity as heatmap regions); the superpixel that a
      step's pixel count ends in is removed partly, in raster order, so every
      order removes exactly the same number of pixels at each step.

    Heatmap ties are broken by raster position (row-major, earliest first) in
    both MoRF and LeRF, so the result is deterministic.

    Parameters
    ----------
    embed : callable
        As in :func:`removal_experiment` (always called with ``batch_size``
        images).
    images : torch.Tensor or ndarray, shape (N, 3, H, W)
        Float images in [0, 1].
    heatmaps : array_like, shape (N, H, W)
    steps : sequence of float or int
        Strictly increasing fractions of the pixels in [0, 1] (default 0, 0.05,
        ..., 0.5), or an int ``n`` for the ``n + 1`` fractions 0, 1/n, ..., 1.
    orders : sequence of str
        Subset of ``ORDERS``.
    segments : array_like of int, shape (N, H, W) or (H, W), optional
        Superpixels for ``"random-superpixels"``; None: SLIC with
        ``n_segments`` (the explainer's default options).
    n_segments : int
        SLIC superpixels when ``segments`` is None.
    seed : int
        Seed of the random superpixel order (image ``k`` uses
        ``default_rng([seed, k])``).
    fill : 3 floats, one float, "mean" or "black"
        Pixel-space value of removed pixels; default ``IMAGENET_MEAN``.
    batch_size : int, optional
        Images per ``embed`` call (the last batch is padded).
        None: the explainer's choice (:func:`faceexp.explainer.resolve_batch_size`).
    layer : str
        Layer of a dict-returning ``embed``.
    flip_average : bool
        Use the mean of the image's and its mirror's embedding (default False:
        the explainer compares plain embeddings).
    progress : bool
        Show a progress bar over the batches.

    Returns
    -------
    DataFrame
        Columns ``image`` (0 .. N-1), ``order``, ``fraction`` (as requested),
        ``n_removed`` (pixels), ``similarity`` (cosine; 0 if a vector is
        zero; at fraction 0 the clean image's similarity with itself). Rows by
        image, then order, then fraction.
    """
    from tqdm import tqdm

    _check_embed(embed)
    tensor = _as_images(images)
    n, _, height, width = tensor.shape
    n_pixels = height * width
    maps = _as_maps(heatmaps, (n, height, width), "heatmaps")
    fractions = _steps(steps)
    orders = _choices(orders, ORDERS, "orders")
    seed = _seed(seed)
    batch_size = resolve_batch_size(embed, batch_size)
    fill_t = _fill_tensor(fill, tensor)
    if "random-superpixels" in orders:
        segments = _segments_or_slic(segments, tensor, n_segments)
    counts = np.floor(fractions * n_pixels + 0.5).astype(np.int64)

    jobs = [(k, order, step) for k in range(n) for order in orders
            for step in range(len(fractions)) if counts[step] > 0]
    n_batches = -(-n // batch_size) + -(-len(jobs) // batch_size)
    bar = tqdm(total=n_batches, disable=not progress, desc="deletion", unit="batch")
    try:
        references = []
        for start in range(0, n, batch_size):
            references.append(_embed_batch(embed, tensor[start:start + batch_size], layer,
                                           batch_size, flip_average))
            bar.update(1)
        references = np.concatenate(references)
        similarity = {}
        cached: tuple = (None, None, None)
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start:start + batch_size]
            masks = np.zeros((len(chunk), n_pixels), dtype=bool)
            for row, (k, order, step) in enumerate(chunk):
                if cached[:2] != (k, order):
                    cached = (k, order, _deletion_order(
                        maps[k], None if segments is None else segments[k], order, seed, k))
                masks[row, cached[2][:counts[step]]] = True
            index = torch.tensor([k for k, _, _ in chunk], device=tensor.device)
            batch = _apply(tensor[index], masks.reshape(-1, height, width), fill_t)
            values = _embed_batch(embed, batch, layer, batch_size, flip_average)
            sims = _cosine(values, references[[k for k, _, _ in chunk]])
            for (k, order, step), value in zip(chunk, sims):
                similarity[k, order, step] = float(value)
            bar.update(1)
    finally:
        bar.close()
    self_similarity = _cosine(references, references)
    rows = [{"image": k, "order": order, "fraction": float(fractions[step]),
             "n_removed": int(counts[step]),
             "similarity": similarity.get((k, order, step), float(self_similarity[k]))}
            for k in range(n) for order in orders for step in range(len(fractions))]
    return pd.DataFrame(rows, columns=["image", "order", "fraction", "n_removed", "similarity"])


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def deletion_auc(curves: pd.DataFrame) -> pd.DataFrame:
    """Area under each deletion curve (trapezoid rule over the fraction axis).

    The area is not rescaled: a curve at similarity 1 from fraction 0 to 0.5
    has area 0.5. Lower MoRF area = faster fall = more faithful heatmap.

    Parameters
    ----------
    curves : DataFrame
        Columns ``image``, ``order``, ``fraction``, ``similarity`` (from
        :func:`deletion_curves`); one curve per (image, order).

    Returns
    -------
    DataFrame
        Columns ``image``, ``order``, ``auc``, one row per curve (in order of
        first appearance).
    """
    _check_curves(curves)
    rows = []
    for (image, order), curve in curves.groupby(["image", "order"], sort=False):
        curve = curve.sort_values("fraction")
        x = curve["fraction"].to_numpy(dtype=np.float64)
        if np.unique(x).size != x.size:
            raise ValueError(f"curves: image {image!r}, order {order!r} has repeated "
                             "fractions; give one curve per (image, order)")
        if x.size < 2:
            raise ValueError(f"curves: image {image!r}, order {order!r} has {x.size} point; "
                             "at least 2 are needed for an area")
        rows.append({"image": image, "order": order,
                     "auc": _trapezoid(curve["similarity"].to_numpy(dtype=np.float64), x)})
    return pd.DataFrame(rows, columns=["image", "order", "auc"])


def _check_curves(curves: Any) -> None:
    if not isinstance(curves, pd.DataFrame):
        raise ValueError(f"curves: expected the DataFrame of deletion_curves, got "
                         f"{type(curves).__name__}")
    missing = [c for c in ("image", "order", "fraction", "similarity") if c not in curves]
    if missing:
        raise ValueError(f"curves: missing column(s) {missing}; expected image, order, "
                         "fraction, similarity (from deletion_curves)")
    if curves.empty:
        raise ValueError("curves: no rows")


def faithfulness_gap(aucs: pd.DataFrame, *,
                     baseline: str = "least-relevant-first") -> pd.DataFrame:
    """Per-image faithfulness: AUC(baseline) - AUC(most-relevant-first).

    Parameters
    ----------
    aucs : DataFrame
        Columns ``image``, ``order``, ``auc`` (from :func:`deletion_auc`), with
        the ``"most-relevant-first"`` and ``baseline`` orders for every image.
    baseline : {"least-relevant-first", "random-superpixels"}
        The order MoRF is compared with.

    Returns
    -------
    DataFrame
        Columns ``image``, ``gap`` (higher = removing the heatmap's top pixels
        hurts the embedding more than the baseline order = more faithful).
    """
    if baseline not in ORDERS[1:]:
        raise ValueError(f"baseline: expected one of {ORDERS[1:]}, got {baseline!r}")
    if not isinstance(aucs, pd.DataFrame) or not {"image", "order", "auc"} <= set(aucs):
        raise ValueError("aucs: expected the DataFrame of deletion_auc (image, order, auc)")
    table = aucs.pivot_table(index="image", columns="order", values="auc", sort=False)
    missing = [o for o in ("most-relevant-first", baseline)
               if o not in table or table[o].isna().any()]
    if missing:
        raise ValueError(f"aucs: order(s) {missing} missing for some images; run "
                         f"deletion_curves with orders including them")
    gap = table[baseline] - table["most-relevant-first"]
    return pd.DataFrame({"image": table.index.to_numpy(), "gap": gap.to_numpy()})


# --------------------------------------------------------------------------- sampling study


def _setting_label(setting: Mapping) -> str:
    return ", ".join(f"{key}={value}" for key, value in setting.items())


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps; NaN if either is constant."""
    a = a.reshape(-1) - a.mean()
    b = b.reshape(-1) - b.mean()
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    if denominator == 0:
        return float("nan")
    return min(1.0, max(-1.0, float(a @ b) / denominator))   # rounding can pass +-1


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two maps in [0, 1] (data range 1); inf when identical."""
    mse = float(np.mean((a - b) ** 2))
    return 10.0 * math.log10(1.0 / mse) if mse > 0 else float("inf")


def _as_study_images(images: Any) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    images = np.asarray(images) if not isinstance(images, (list, tuple)) else np.stack(
        [np.asarray(x) for x in images])
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise ValueError(f"images: expected (N, H, W, 3) images (the explainer's layout), got "
                         f"shape {images.shape}")
    if not np.issubdtype(images.dtype, np.floating) or not np.isfinite(images).all() or \
            images.min() < 0 or images.max() > 1:
        raise ValueError("images: expected float values in [0, 1]")
    return images.astype(np.float32)


def _pick_heatmap(explanation: Any, layer: str) -> np.ndarray:
    if layer in explanation.layers:
        return explanation.heatmap(layer)
    if len(explanation.layers) == 1:
        return explanation.heatmaps[0]
    raise ValueError(f"layer: the explanation has layers {explanation.layers}, not {layer!r}")


def sampling_study(embed: Callable, images: Any, *, settings: Sequence[Mapping] = DEFAULT_SETTINGS,
                   seeds: Sequence[int] = (0, 1, 2), n_samples: int = 1000,
                   n_segments: int = 75, deletion_steps: Any = DEFAULT_STEPS,
                   layer: str = "gap", fill: Any = IMAGENET_MEAN,
                   batch_size: int | None = None,
                   explain_options: Mapping | None = None,
                   progress: bool = True) -> pd.DataFrame:
    """Compare explainer sampling settings by faithfulness and stability.

    Every image is explained under every setting with every seed, always with
    the same superpixels (the SLIC map of the image's first explanation is
    passed as ``segments=`` to all others), so only the sampling differs. For
    each heatmap, deletion curves (:func:`deletion_curves`, MoRF and LeRF)
    give the faithfulness gaps; the random-superpixel curve of an image and
    seed does not depend on the heatmap and is computed once, with the
    deletion seed equal to the explanation seed. Stability of a setting on an
    image is the mean over pairs of seeds of the Pearson correlation (and of
    the PSNR) between the heatmaps.

    Parameters
    ----------
    embed : callable
        As for :func:`faceexp.explainer.explain` and :func:`deletion_curves`.
    images : array_like, shape (N, H, W, 3)
        Float images in [0, 1].
    settings : sequence of dict
        Explainer options per setting, e.g. ``{"p_off": 0.6}`` or
        ``{"sampling": "matlab"}``.
    seeds : sequence of int
        Explanation seeds (at least 2 for a stability value; with one it is NaN).
    n_samples, n_segments : int
        Explainer samples and SLIC superpixels (paper 1000 and 75).
    deletion_steps : sequence of float or int
        ``steps`` of :func:`deletion_curves`.
    layer : str
        Layer explained and used by the deletion curves (a single-array
        ``embed`` has one layer and ignores it).
    fill : 3 floats, one float, "mean" or "black"
        Fill of the deletion curves (the explainer's own fill is an explainer
        option).
    batch_size : int, optional
        Images per ``embed`` call, in the explainer and the deletion curves.
        None: the explainer's choice (:func:`faceexp.explainer.resolve_batch_size`).
    explain_options : dict, optional
        More explainer options shared by all settings (``sigma``, ``kernel``,
        ``fill``, ...); a setting overrides them.
    progress : bool
        Show progress bars.

    Returns
    -------
    DataFrame
        One row per (setting, image, seed): ``setting`` (label such as
        ``"p_off=0.6"``), ``image``, ``seed``, ``auc_morf``, ``auc_lerf``,
        ``auc_random``, ``faithfulness`` (= auc_lerf - auc_morf),
        ``faithfulness_random`` (= auc_random - auc_morf), ``r2`` (the
        explainer's weighted R^2),
        and per (setting, image), repeated on its seed rows, ``stability``
        (mean pairwise Pearson correlation across seeds) and
        ``stability_psnr`` (mean pairwise PSNR in dB).
    """
    from tqdm import tqdm

    _check_embed(embed)
    pixels = _as_study_images(images)
    n = pixels.shape[0]
    settings = list(settings)
    if not settings or not all(isinstance(s, Mapping) for s in settings):
        raise ValueError("settings: expected a non-empty sequence of dicts of explainer "
                         "options, e.g. ({'p_off': 0.6}, {'sampling': 'matlab'})")
    shared = dict(explain_options or {})
    for options in [shared] + settings:
        reserved = sorted(set(options) & set(_STUDY_RESERVED))
        if reserved:
            raise ValueError(f"settings: {reserved} are set by sampling_study itself; pass "
                             "them as its own arguments")
    labels = [_setting_label(s) for s in settings]
    if len(set(labels)) != len(labels):
        raise ValueError(f"settings: duplicate settings {labels}")
    seeds = [_seed(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: expected distinct non-negative ints, got {seeds!r}")
    steps = _steps(deletion_steps)
    batch_size = resolve_batch_size(embed, batch_size)
    explainers = [Explainer(embed, n_samples=n_samples, n_segments=n_segments,
                            batch_size=batch_size, **{**shared, **dict(s)}) for s in settings]

    heatmaps = np.empty((len(settings), len(seeds), n) + pixels.shape[1:3])
    r2 = np.empty((len(settings), len(seeds), n))
    segments = np.empty((n,) + pixels.shape[1:3], dtype=np.int64)
    combos = list(itertools.product(range(n), range(len(settings)), range(len(seeds))))
    for i, a, b in tqdm(combos, disable=not progress, desc="explain", unit="explanation"):
        explanation = explainers[a].explain(pixels[i], seed=seeds[b],
                                            segments=None if (a, b) == (0, 0) else segments[i])
        if (a, b) == (0, 0):
            segments[i] = explanation.segments
        heatmaps[a, b, i] = _pick_heatmap(explanation, layer)
        layer_index = (explanation.layers.index(layer) if layer in explanation.layers else 0)
        r2[a, b, i] = explanation.r2[layer_index]

    chw = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))
    stacked = chw.repeat(len(settings) * len(seeds), 1, 1, 1)
    curves = deletion_curves(embed, stacked, heatmaps.reshape((-1,) + pixels.shape[1:3]),
                             steps=steps, orders=ORDERS[:2], seed=0, fill=fill,
                             batch_size=batch_size, layer=layer, progress=progress)
    aucs = deletion_auc(curves).pivot(index="image", columns="order", values="auc")
    random_auc = np.empty((len(seeds), n))
    for b, seed in enumerate(seeds):
        random_curves = deletion_curves(embed, chw, np.zeros(segments.shape), steps=steps,
                                        orders=("random-superpixels",), segments=segments,
                                        seed=seed, fill=fill, batch_size=batch_size,
                                        layer=layer, progress=progress)
        random_auc[b] = deletion_auc(random_curves)["auc"].to_numpy()

    rows = []
    for a, label in enumerate(labels):
        for i in range(n):
            maps = heatmaps[a, :, i]
            couples = list(itertools.combinations(range(len(seeds)), 2))
            pearson = (float(np.mean([_pearson(maps[p], maps[q]) for p, q in couples]))
                       if couples else float("nan"))
            psnr = (float(np.mean([_psnr(maps[p], maps[q]) for p, q in couples]))
                    if couples else float("nan"))
            for b, seed in enumerate(seeds):
                flat = (a * len(seeds) + b) * n + i          # position in ``stacked``
                morf = float(aucs.loc[flat, "most-relevant-first"])
                lerf = float(aucs.loc[flat, "least-relevant-first"])
                rows.append({"setting": label, "image": i, "seed": seed, "auc_morf": morf,
                             "auc_lerf": lerf, "auc_random": float(random_auc[b, i]),
                             "faithfulness": lerf - morf,
                             "faithfulness_random": float(random_auc[b, i]) - morf,
                             "r2": float(r2[a, b, i]), "stability": pearson,
                             "stability_psnr": psnr})
    return pd.DataFrame(rows)


def summarise_sampling_study(study: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation of faithfulness and stability per setting.

    Parameters
    ----------
    study : DataFrame
        The result of :func:`sampling_study`.

    Returns
    -------
    DataFrame
        One row per setting (in order of appearance): ``setting``,
        ``n_images``, ``n_seeds``, and for each measure ``<measure>`` (the
        mean) and ``<measure>_sd`` (sample standard deviation, ddof=1; NaN
        from a single value): ``faithfulness``, ``faithfulness_random`` and
        ``auc_morf`` over every (image, seed), ``stability`` and
        ``stability_psnr`` over images (one value per image). Higher
        faithfulness and stability are better.
    """
    needed = ("setting", "image", "seed") + _PER_RUN + _PER_IMAGE
    if not isinstance(study, pd.DataFrame) or not set(needed) <= set(study):
        raise ValueError(f"study: expected the DataFrame of sampling_study with columns "
                         f"{list(needed)}")
    if study.empty:
        raise ValueError("study: no rows")
    rows = []
    for setting, part in study.groupby("setting", sort=False):
        row = {"setting": setting, "n_images": int(part["image"].nunique()),
               "n_seeds": int(part["seed"].nunique())}
        per_image = part.drop_duplicates("image")
        for columns, source in ((_PER_RUN, part), (_PER_IMAGE, per_image)):
            for column in columns:
                row[column] = float(source[column].mean())
                row[f"{column}_sd"] = float(source[column].std(ddof=1))
        rows.append(row)
    return pd.DataFrame(rows)
