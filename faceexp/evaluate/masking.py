"""Masking primitives shared by pixel removal, deletion curves and the explainer comparison.

Images in, images with chosen pixels set to a fill out: input checks (images,
maps, fills, counts), the random masks of the removal baselines (one generator per
image, ``np.random.default_rng([seed, k])``, so batch sizes do not matter and larger
counts remove supersets), and SLIC segments when none are given.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from faceexp.core import checks
from faceexp.data.preprocessing import IMAGENET_MEAN


#: SLIC options used when no segments are given (the explainer's defaults).
SLIC_COMPACTNESS = 10.0


def as_images(images: Any, name: str = "images") -> torch.Tensor:
    """(N, 3, H, W) float in [0, 1] (tensor or array) -> float32 tensor (input's device)."""
    if isinstance(images, np.ndarray):
        if not np.issubdtype(images.dtype, np.floating):
            raise ValueError(f"{name} must be float values in [0, 1], got dtype "
                             f"{images.dtype} (divide uint8 images by 255)")
        images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    elif not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be an (N, 3, H, W) torch tensor or numpy array, got "
                         f"{type(images).__name__}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be float values in [0, 1], got dtype {images.dtype} "
                         "(divide uint8 images by 255)")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise ValueError(f"{name} must be shape (N, 3, H, W) with N >= 1, got "
                         f"{tuple(images.shape)} (one (H, W, 3) image is "
                         "image.transpose(2, 0, 1)[None])")
    images = images.detach().to(torch.float32)
    if not bool(torch.isfinite(images).all()) or float(images.min()) < 0 or \
            float(images.max()) > 1:
        raise ValueError(f"{name}: values must be finite and lie in [0, 1]")
    return images


def as_maps(maps: Any, shape: tuple, name: str, *, integer: bool = False) -> np.ndarray:
    """(N, H, W) array (or (H, W) for every image when ``integer``) -> numpy."""
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().numpy()
    maps = np.asarray(maps)
    if integer and maps.shape == shape[1:]:
        maps = np.broadcast_to(maps, shape)
    if maps.shape != shape:
        extra = " or one (H, W) map for all images" if integer else ""
        raise ValueError(f"{name} must be shape {shape} (one (H, W) map per image){extra}, "
                         f"got {maps.shape}")
    if integer:
        if not np.issubdtype(maps.dtype, np.integer):
            raise ValueError(f"{name} must be integer superpixel labels, got dtype "
                             f"{maps.dtype}")
        return maps
    if not (np.issubdtype(maps.dtype, np.floating) or np.issubdtype(maps.dtype, np.integer)):
        raise ValueError(f"{name} must be real values, got dtype {maps.dtype}")
    maps = maps.astype(np.float64)
    if not np.isfinite(maps).all():
        raise ValueError(f"{name}: values must be finite (no NaN or infinity)")
    return maps


def fill_values(fill: Any) -> tuple[float, float, float]:
    """"mean", "black", one number or 3 numbers in [0, 1] -> an RGB triple."""
    if isinstance(fill, str):
        if fill == "mean":
            return tuple(float(v) for v in IMAGENET_MEAN)
        if fill == "black":
            return (0.0, 0.0, 0.0)
        raise ValueError(f"fill must be 'mean' (IMAGENET_MEAN), 'black', a number or 3 numbers "
                         f"in [0, 1], got {fill!r}")
    values = np.asarray(fill, dtype=object).reshape(-1)
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"fill must be a number or 3 numbers in [0, 1], got {fill!r}") \
            from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3 or not all(math.isfinite(v) and 0 <= v <= 1 for v in values):
        raise ValueError(f"fill must be a number or 3 numbers (RGB) in [0, 1], got {fill!r}")
    return values


def fill_tensor(fill: Any, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(fill_values(fill), dtype=like.dtype, device=like.device).view(3, 1, 1)


def as_counts(counts: Any, n: int, n_pixels: int) -> np.ndarray:
    if isinstance(counts, torch.Tensor):
        counts = counts.detach().cpu().numpy()
    counts = np.asarray(counts)
    if counts.shape != (n,):
        raise ValueError(f"counts must be shape ({n},) (one count per image), got "
                         f"{counts.shape}")
    if counts.dtype == bool or not (np.issubdtype(counts.dtype, np.integer) or (
            np.issubdtype(counts.dtype, np.floating) and np.isfinite(counts).all()
            and (counts == np.round(counts)).all())):
        raise ValueError("counts must be whole numbers of pixels")
    counts = counts.astype(np.int64)
    if counts.size and (counts.min() < 0 or counts.max() > n_pixels):
        raise ValueError(f"counts: every count must lie in [0, {n_pixels}] (H * W), got "
                         f"{counts.min()} .. {counts.max()}")
    return counts


def check_choices(values: Any, allowed: Sequence[str], name: str) -> list[str]:
    if isinstance(values, str):
        values = [values]
    values = list(values)
    unknown = [v for v in values if v not in allowed]
    if not values or unknown:
        raise ValueError(f"{name} must be a non-empty subset of {allowed}, got {values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name}: duplicate entries in {values}")
    return values


def check_embed(embed: Any) -> None:
    if not callable(embed):
        raise ValueError(f"embed must be a callable mapping (N, 3, H, W) batches in [0, 1] "
                         f"to embeddings, got {type(embed).__name__}")


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index``: independent of batching and of other images."""
    return np.random.default_rng([seed, int(index)])


def label_index(segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) labels -> (areas (S,), label index 0 .. S-1 of every pixel (H*W,))."""
    _, inverse, areas = np.unique(segments.reshape(-1), return_inverse=True,
                                  return_counts=True)
    return areas, inverse.reshape(-1)


def random_pixel_mask(n_pixels: int, count: int, seed: int, index: int) -> np.ndarray:
    mask = np.zeros(n_pixels, dtype=bool)
    mask[image_rng(seed, index).permutation(n_pixels)[:count]] = True
    return mask


def superpixel_permutation(n_labels: int, seed: int, index: int) -> np.ndarray:
    return image_rng(seed, index).permutation(n_labels)


def random_superpixel_mask(segments: np.ndarray, count: int, seed: int, index: int,
                            match: str) -> np.ndarray:
    """Flat (H*W,) mask of whole random superpixels covering about ``count`` pixels."""
    areas, inverse = label_index(segments)
    order = superpixel_permutation(areas.size, seed, index)
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


def random_masks(method: str, counts: np.ndarray, shape: tuple[int, int], seed: int, *,
                  start: int = 0, segments: np.ndarray | None = None,
                  match: str = "closest") -> np.ndarray:
    """(B, H, W) masks of ``"random-pixels"`` or ``"random-superpixels"`` removal.

    Row ``k`` removes about ``counts[k]`` pixels of image ``start + k``, drawn
    from that image's generator (:func:`image_rng`); ``"random-superpixels"``
    takes its superpixels from ``segments[start + k]`` (all images' (N, H, W)
    labels).
    """
    height, width = shape
    if method == "random-pixels":
        flat = [random_pixel_mask(height * width, int(c), seed, start + k)
                for k, c in enumerate(counts)]
    else:
        flat = [random_superpixel_mask(segments[start + k], int(c), seed, start + k, match)
                for k, c in enumerate(counts)]
    return np.stack(flat).reshape(len(counts), height, width)


def apply_masks(images: torch.Tensor, masks: np.ndarray, fill: torch.Tensor) -> torch.Tensor:
    """Set the pixels of ``masks`` (B, H, W) bool to ``fill`` (3, 1, 1) in (B, 3, H, W)."""
    masks_t = torch.from_numpy(np.ascontiguousarray(masks)).to(images.device)
    return torch.where(masks_t[:, None], fill, images)


def like_input(result: torch.Tensor, original: Any):
    if isinstance(original, np.ndarray):
        return result.cpu().numpy()
    return result


def slic_maps(images: torch.Tensor, n_segments: int) -> np.ndarray:
    """SLIC maps of (N, 3, H, W) images with the explainer's default options
    (:func:`faceexp.explain.lime_steps.superpixels`)."""
    from faceexp.explain.lime_steps import superpixels

    pixels = images.cpu().numpy().transpose(0, 2, 3, 1)
    return np.stack([superpixels(image, n_segments, compactness=SLIC_COMPACTNESS)
                     for image in pixels])


def segments_or_slic(segments: Any, images: torch.Tensor, n_segments: int) -> np.ndarray:
    n, _, height, width = images.shape
    if segments is None:
        return slic_maps(images, checks.positive_int(n_segments, "n_segments", 2))
    return as_maps(segments, (n, height, width), "segments", integer=True)


#: Fills that depend on the image (and, for "inpaint", on the mask), beside the constant
#: fills of :func:`fill_values`: ``"blur"`` (the image blurred as faceexp's explainer's
#: ``fill="blur"``) and ``"inpaint"`` (OpenCV's Telea inpainting from the kept pixels,
#: an in-distribution fill as ROAD argues for).
IMAGE_FILLS = ("blur", "inpaint")
#: Radius (pixels) of the neighbourhood each inpainted pixel is estimated from.
INPAINT_RADIUS = 3


def inpainted(image: np.ndarray, mask: np.ndarray, *, radius: int = INPAINT_RADIUS
              ) -> np.ndarray:
    """``image`` (H, W, 3) float in [0, 1] with the pixels of ``mask`` (H, W) bool
    filled by ``cv2.inpaint`` (Telea, 8 bits), float32 (H, W, 3); pixels outside
    the mask are returned unchanged. A mask of every pixel leaves nothing to inpaint
    from: those images come back black."""
    import cv2

    mask = np.asarray(mask, dtype=bool)
    out = np.asarray(image, dtype=np.float32).copy()
    if mask.all():
        out[:] = 0.0
        return out
    if not mask.any():
        return out
    pixels = np.ascontiguousarray(np.round(out * 255.0).astype(np.uint8))
    filled = cv2.inpaint(pixels, mask.astype(np.uint8) * 255, float(radius), cv2.INPAINT_TELEA)
    out[mask] = filled[mask].astype(np.float32) / np.float32(255)
    return out


def apply_fill(images: torch.Tensor, masks: np.ndarray, fill: Any) -> torch.Tensor:
    """Set the pixels of ``masks`` (B, H, W) bool in ``images`` (B, 3, H, W) to ``fill``.

    ``fill``: a constant of :func:`fill_values` (``"black"``, ``"mean"``, numbers)
    as :func:`apply_masks`, or one of :data:`IMAGE_FILLS`: ``"blur"`` takes the
    blurred image's pixels (:func:`faceexp.explain.explainer.blurred`),
    ``"inpaint"`` inpaints them from the kept pixels (:func:`inpainted`). Pixels
    outside the masks are unchanged.
    """
    if not (isinstance(fill, str) and fill in IMAGE_FILLS):
        return apply_masks(images, masks, fill_tensor(fill, images))
    pixels = images.detach().cpu().numpy().transpose(0, 2, 3, 1)
    if fill == "blur":
        from faceexp.explain.explainer import blurred

        filled = np.stack([np.where(m[..., None], blurred(p), p) for p, m in zip(pixels, masks)])
    else:
        filled = np.stack([inpainted(p, m) for p, m in zip(pixels, masks)])
    return torch.from_numpy(np.ascontiguousarray(filled.transpose(0, 3, 1, 2),
                                                 dtype=np.float32)).to(images.device)
