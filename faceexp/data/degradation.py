"""Seeded degradations of face crops for a harder verification protocol (ours, not the paper's).

ORL is too easy for the real recognisers (SFace verifies its test pairs without error),
so :mod:`faceexp.verify.degraded` degrades the probe images, with one of two families
(the protocol uses one, :data:`DEGRADATION_FAMILY`):

* **downscale** (:func:`downscale`): the crop is brought down to ``(1 - strength)`` of its
  side (OpenCV's area interpolation) and back up (bilinear), on a sampling grid shifted
  by a random sub-pixel phase: a low-resolution capture of the face, whose pixel grid
  falls anywhere on it.
* **occlusion** (:func:`occlude`): a black square covering ``strength`` of the crop's
  area, at a position drawn uniformly at random (wholly inside the crop).

The draw of an image depends only on ``seed`` and the image's key (its path), so a
probe is degraded the same way whichever other images are degraded with it; strengths
are relative to the crop, so each subject's own crop is degraded alike. ``strength = 0``
returns the images unchanged. Written here rather than taken from a library:
albumentations' and torchvision's random transforms draw from a global generator, not
per image from a key.

Why downscale: on the training identities' pairs (never scored), occlusion that put
SFace's EER at 3.3% put FaceNet-CASIA's at 14.3% (area 0.2), a four-fold gap that leaves
no strength with both between 2% and 15%; downscaling to 20/144 of the side gave 6.7% and
18.3%, a gap of 2.7 (measured 2026-12-07, without the phase shift).
"""
from __future__ import annotations

import zlib

import numpy as np

__all__ = ["DEGRADATION_FAMILY", "FAMILIES", "degrade", "downscale", "occlusion_boxes",
           "occlude"]

#: The families offered, and the one family the protocol uses (see the module docstring).
FAMILIES = ("downscale", "occlusion")
DEGRADATION_FAMILY = "downscale"


def _strength(strength) -> float:
    try:
        value = float(strength)
    except (TypeError, ValueError):
        raise ValueError(f"strength must be a fraction in [0, 1), got {strength!r}") from None
    if not 0.0 <= value < 1.0:
        raise ValueError(f"strength must be a fraction in [0, 1), got {value}")
    return value


def _rng(seed, key) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(str(key).encode())])


def _checked(images, keys):
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be (N, H, W, C) or (N, H, W), got shape {images.shape}")
    keys = list(keys)
    if len(keys) != len(images):
        raise ValueError(f"keys must give one key per image ({len(images)}), got {len(keys)}")
    return images, keys


def downscale(images, keys, strength: float, *, seed: int = 0) -> np.ndarray:
    """Images seen at ``(1 - strength)`` of their resolution, on a seeded sampling grid.

    Each image is shifted by a phase ``(dx, dy)`` of up to one low-resolution pixel,
    uniform in ``[0, f)`` crop pixels with ``f = side / small side``, drawn from
    ``numpy.random.default_rng([seed, crc32(key)])``; resized to ``round((1 - strength) *
    H) x round((1 - strength) * W)`` pixels with area interpolation, back to ``H x W``
    bilinearly, and shifted back (borders replicated).

    Parameters
    ----------
    images : array_like, shape (N, H, W, C) or (N, H, W)
        Float crops (e.g. float32 in [0, 1]).
    keys : sequence of str, length N
        One key per image (its path).
    strength : float in [0, 1)
        Share of the resolution lost; 0 returns a copy.
    seed : int, default 0

    Returns
    -------
    numpy.ndarray, same shape and dtype as ``images``
    """
    import cv2

    images, keys = _checked(images, keys)
    strength = _strength(strength)
    out = images.copy()
    if strength == 0:
        return out
    h, w = images.shape[1:3]
    small = (max(int(round((1 - strength) * w)), 1), max(int(round((1 - strength) * h)), 1))
    fx, fy = w / small[0], h / small[1]
    for k, key in enumerate(keys):
        rng = _rng(seed, key)
        dx, dy = rng.uniform(0, fx), rng.uniform(0, fy)
        image = np.asarray(images[k], dtype=np.float32)
        there = np.float32([[1, 0, dx], [0, 1, dy]])
        back = np.float32([[1, 0, -dx], [0, 1, -dy]])
        shifted = cv2.warpAffine(image, there, (w, h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
        low = cv2.resize(shifted, small, interpolation=cv2.INTER_AREA)
        up = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
        restored = cv2.warpAffine(up, back, (w, h), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        out[k] = restored.reshape(out[k].shape).astype(out.dtype)
    return out


def degrade(images, keys, strength: float, *, family: str = DEGRADATION_FAMILY,
            seed: int = 0) -> np.ndarray:
    """:func:`downscale` or :func:`occlude` by ``family`` (one of :data:`FAMILIES`)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return (downscale if family == "downscale" else occlude)(images, keys, strength, seed=seed)


def occlusion_boxes(keys, shape, strength: float, *, seed: int = 0) -> np.ndarray:
    """Where each image's square goes: ``(N, 4)`` int rows ``top, left, side, side``.

    Parameters
    ----------
    keys : sequence of str, length N
        One key per image (e.g. its path); the draw of an image is
        ``numpy.random.default_rng([seed, crc32(key)])``.
    shape : (H, W)
        The crop's size in pixels.
    strength : float in [0, 1)
        Share of the crop's area covered: the square's side is
        ``round(sqrt(strength * H * W))``, at most ``min(H, W)``.
    seed : int, default 0
    """
    strength = _strength(strength)
    h, w = (int(v) for v in shape)
    if h < 1 or w < 1:
        raise ValueError(f"shape must be (H, W) with H, W >= 1, got {shape}")
    side = min(int(round(np.sqrt(strength * h * w))), h, w)
    rows = []
    for key in keys:
        rng = _rng(seed, key)
        top = int(rng.integers(0, h - side + 1))
        left = int(rng.integers(0, w - side + 1))
        rows.append((top, left, side, side))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


def occlude(images, keys, strength: float, *, seed: int = 0, fill: float = 0.0) -> np.ndarray:
    """Images with a seeded square of each blacked out (see the module docstring).

    Parameters
    ----------
    images : array_like, shape (N, H, W, C) or (N, H, W)
        Crops (any dtype; e.g. float32 in [0, 1]).
    keys : sequence of str, length N
        One key per image (its path): the same key and seed give the same square.
    strength : float in [0, 1)
        Share of each crop's area covered; 0 returns a copy of ``images``.
    seed : int, default 0
    fill : float, default 0.0
        The value written into the square (0: black).

    Returns
    -------
    numpy.ndarray
        A degraded copy, same shape and dtype as ``images``.
    """
    images, keys = _checked(images, keys)
    out = images.copy()
    boxes = occlusion_boxes(keys, images.shape[1:3], strength, seed=seed)
    for k, (top, left, side, _) in enumerate(boxes):
        if side:
            out[k, top:top + side, left:left + side] = fill
    return out
