"""Probes with a known answer, built in the canonical crop.

Two constructions, both seeded and deterministic, on float (H, W, 3) faces in
[0, 1] (the canonical 144x144 crop: the same pixels for every recogniser,
:mod:`faceexp.recognisers.canonical`):

- **patch swap** (Huber et al.'s Patch-LFW protocol at ORL's scale,
  :func:`patch_swap`): ``n_patches`` squares of ``patch_size`` pixels, at
  random positions inside the face box of the five landmarks, are copied from
  an aligned image of another identity (the *donor*) into the probe, at the
  same positions. The ground truth is the pasted area.
- **region swap** (Williford et al.'s Inpainting Game idea,
  :func:`region_swap`): one landmark-defined region (``"eyes"``, ``"nose"``
  or ``"mouth"``, :func:`region_mask`) is replaced by the donor's same region
  with OpenCV's Poisson seamless cloning (``cv2.seamlessClone``), so no seam
  gives it away; the ground truth is the region. Pixels outside it are the
  probe's, exactly.

The pair explained is (modified probe, *mate*: another clean image of the
probe's person). :func:`keep_by_drop` keeps a constructed probe only where the
recogniser's similarity to the mate drops by at least ``min_drop`` (a swap the
network does not notice has no answer).

In the canonical crop the five landmarks sit on
:data:`faceexp.recognisers.canonical.CANONICAL_TEMPLATE` (the crop is the
least-squares warp onto it), so the regions are drawn from the template.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from faceexp.core import checks
from faceexp.recognisers.canonical import CANONICAL_SIZE, CANONICAL_TEMPLATE

__all__ = ["TASKS", "SWAP_REGIONS", "KnownAnswer", "face_box", "region_mask", "patch_swap",
           "region_swap", "construct_probes", "keep_by_drop", "DEFAULT_MIN_DROP"]

#: The two constructions.
TASKS = ("patch", "region")
#: Regions of the region swap.
SWAP_REGIONS = ("eyes", "nose", "mouth")
#: Default similarity drop (cosine) a swap must cause to be kept.
DEFAULT_MIN_DROP = 0.05


@dataclass
class KnownAnswer:
    """One constructed probe and its answer.

    Attributes
    ----------
    task : {"patch", "region"}
    probe : ndarray, float32, shape (H, W, 3)
        The modified probe.
    clean : ndarray, float32, shape (H, W, 3)
        The probe before the swap.
    mate : ndarray, float32, shape (H, W, 3)
        A clean image of the probe's person (the pair's other face).
    donor : ndarray, float32, shape (H, W, 3)
        The non-mate whose pixels were pasted.
    mask : ndarray, bool, shape (H, W)
        The ground truth: the pixels that came from the donor.
    identity, donor_identity : str
    region : str or None
        The swapped region (region swap).
    index : int
        Position of the probe in the construction (its generator's index).
    info : dict
        Paths or indices of the three faces.
    """

    task: str
    probe: np.ndarray
    clean: np.ndarray
    mate: np.ndarray
    donor: np.ndarray
    mask: np.ndarray
    identity: str
    donor_identity: str
    region: str | None = None
    index: int = 0
    info: dict = field(default_factory=dict)


def _face(image: Any, name: str) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must be a float (H, W, 3) image in [0, 1], got "
                         f"{array.dtype} {array.shape}")
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ValueError(f"{name}: values must be finite and lie in [0, 1]")
    return array.astype(np.float32)


def _landmarks(landmarks: Any) -> np.ndarray:
    points = np.asarray(CANONICAL_TEMPLATE if landmarks is None else landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"landmarks must be (5, 2) (x, y) of left eye, right eye, nose, left "
                         f"and right mouth corner, got {points.shape}")
    return points


def face_box(landmarks: Any = None, shape: tuple[int, int] = CANONICAL_SIZE
             ) -> tuple[int, int, int, int]:
    """The face box ``(x1, y1, x2, y2)`` (pixel edges) where patches are pasted: the
    landmarks' box grown by half the eye distance sideways, 0.6 of it above the eyes
    and 0.4 below the mouth, clipped to ``shape`` (H, W)."""
    points = _landmarks(landmarks)
    eyes = float(np.linalg.norm(points[1] - points[0]))
    x1 = points[:, 0].min() - 0.5 * eyes
    x2 = points[:, 0].max() + 0.5 * eyes
    y1 = points[:2, 1].min() - 0.6 * eyes
    y2 = points[3:, 1].max() + 0.4 * eyes
    height, width = shape
    return (int(max(0, np.floor(x1))), int(max(0, np.floor(y1))),
            int(min(width, np.ceil(x2))), int(min(height, np.ceil(y2))))


def region_mask(region: str, landmarks: Any = None,
                shape: tuple[int, int] = CANONICAL_SIZE) -> np.ndarray:
    """(H, W) bool mask of one face region, an ellipse placed by the five landmarks.

    With d the eye distance: ``"eyes"`` centred between the eyes, semi-axes
    0.8 d x 0.3 d; ``"nose"`` on the nose tip's x at 0.6 of the way from the
    eye line to the tip, semi-axes 0.3 d x (0.6 of that way + 0.1 d);
    ``"mouth"`` centred between the mouth corners, semi-axes (half their
    distance + 0.2 d) x 0.3 d.
    """
    if region not in SWAP_REGIONS:
        raise ValueError(f"region must be one of {SWAP_REGIONS}, got {region!r}")
    points = _landmarks(landmarks)
    eyes = float(np.linalg.norm(points[1] - points[0]))
    eye_centre = points[:2].mean(0)
    if region == "eyes":
        centre, axes = eye_centre, (0.8 * eyes, 0.3 * eyes)
    elif region == "nose":
        way = points[2, 1] - eye_centre[1]
        centre = np.array([points[2, 0], eye_centre[1] + 0.6 * way])
        axes = (0.3 * eyes, 0.6 * way + 0.1 * eyes)
    else:
        centre = points[3:].mean(0)
        axes = (0.5 * float(np.linalg.norm(points[4] - points[3])) + 0.2 * eyes, 0.3 * eyes)
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    return ((xs - centre[0]) / axes[0]) ** 2 + ((ys - centre[1]) / axes[1]) ** 2 <= 1.0


def patch_swap(probe: Any, donor: Any, *, n_patches: int = 8, patch_size: int = 20,
               seed: int = 0, index: int = 0, landmarks: Any = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``n_patches`` squares of the donor into the probe at the same positions.

    Positions: top-left corners uniform over the face box (:func:`face_box`) so
    that every square lies inside it, drawn from ``np.random.default_rng([seed,
    index])``; squares may overlap.

    Parameters
    ----------
    probe, donor : array_like, float in [0, 1], shape (H, W, 3)
    n_patches, patch_size : int
    seed, index : int
        The probe's generator.
    landmarks : array_like (5, 2), optional
        Default the canonical template.

    Returns
    -------
    (modified (H, W, 3) float32, mask (H, W) bool)
        ``modified`` equals ``donor`` inside ``mask`` and ``probe`` outside.
    """
    probe, donor = _face(probe, "probe"), _face(donor, "donor")
    if probe.shape != donor.shape:
        raise ValueError(f"donor must have the probe's shape {probe.shape}, got {donor.shape}")
    n_patches = checks.positive_int(n_patches, "n_patches")
    patch_size = checks.positive_int(patch_size, "patch_size")
    x1, y1, x2, y2 = face_box(landmarks, probe.shape[:2])
    if x2 - x1 < patch_size or y2 - y1 < patch_size:
        raise ValueError(f"patch_size {patch_size} does not fit the face box "
                         f"{(x1, y1, x2, y2)}; pass a smaller patch_size")
    rng = np.random.default_rng([checks.seed(seed), int(index)])
    xs = rng.integers(x1, x2 - patch_size + 1, n_patches)
    ys = rng.integers(y1, y2 - patch_size + 1, n_patches)
    mask = np.zeros(probe.shape[:2], dtype=bool)
    for x, y in zip(xs, ys):
        mask[y:y + patch_size, x:x + patch_size] = True
    return np.where(mask[..., None], donor, probe).astype(np.float32), mask


def region_swap(probe: Any, donor: Any, region: str, *, landmarks: Any = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Replace one region of the probe by the donor's, blended by Poisson seamless cloning.

    ``cv2.seamlessClone(donor, probe, mask, centre, cv2.NORMAL_CLONE)`` with the
    centre of the mask's bounding box, so the donor's region lands where it was;
    pixels outside the mask are then reset to the probe's exactly (the clone
    works in 8 bits).

    Parameters
    ----------
    probe, donor : array_like, float in [0, 1], shape (H, W, 3)
        Aligned the same way (both canonical crops).
    region : {"eyes", "nose", "mouth"}
    landmarks : array_like (5, 2), optional
        Default the canonical template.

    Returns
    -------
    (modified (H, W, 3) float32, mask (H, W) bool)
    """
    import cv2

    probe, donor = _face(probe, "probe"), _face(donor, "donor")
    if probe.shape != donor.shape:
        raise ValueError(f"donor must have the probe's shape {probe.shape}, got {donor.shape}")
    mask = region_mask(region, landmarks, probe.shape[:2])
    if mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any():
        raise ValueError(f"region {region!r} touches the image border; seamless cloning needs "
                         "a margin (pass landmarks inside the image)")
    mask_u8 = mask.astype(np.uint8) * 255
    x, y, w, h = cv2.boundingRect(mask_u8)
    to_u8 = lambda image: np.ascontiguousarray(np.round(image * 255.0).astype(np.uint8))  # noqa: E731
    cloned = cv2.seamlessClone(to_u8(donor), to_u8(probe), mask_u8, (x + w // 2, y + h // 2),
                               cv2.NORMAL_CLONE)
    modified = np.where(mask[..., None], cloned.astype(np.float32) / np.float32(255), probe)
    return modified.astype(np.float32), mask


def construct_probes(faces: Any, identities: Sequence[str], *, task: str, n_probes: int,
                     seed: int = 0, n_patches: int = 8, patch_size: int = 20,
                     regions: Sequence[str] = SWAP_REGIONS, names: Sequence[str] | None = None,
                     landmarks: Any = None) -> list[KnownAnswer]:
    """Constructed probes from aligned faces of several identities.

    Probe ``k`` draws, from ``np.random.default_rng([seed, k])``: an identity
    with two or more faces (identities taken in a seeded random order, one probe
    per identity, round after round), its probe and mate (two distinct faces), a
    donor face of another identity and, for the region swap, a region from
    ``regions``.

    Parameters
    ----------
    faces : array_like, float in [0, 1], shape (N, H, W, 3)
        Aligned faces (canonical crops).
    identities : sequence of str, length N
    task : {"patch", "region"}
    n_probes : int
    seed : int
    n_patches, patch_size : int
        Patch swap (:func:`patch_swap`).
    regions : sequence of str
        Region swap: the regions drawn from.
    names : sequence of str, optional
        Names (paths) of the faces, recorded in ``info``.
    landmarks : array_like (5, 2), optional
        Where the five landmarks sit in every face; default the canonical template.

    Returns
    -------
    list of KnownAnswer, length ``n_probes``
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    faces = np.asarray(faces)
    identities = [str(i) for i in identities]
    if faces.ndim != 4 or len(identities) != len(faces):
        raise ValueError(f"faces must be (N, H, W, 3) with one identity each; got "
                         f"{faces.shape} and {len(identities)} identities")
    regions = list(regions)
    if task == "region" and (not regions or any(r not in SWAP_REGIONS for r in regions)):
        raise ValueError(f"regions must be a non-empty subset of {SWAP_REGIONS}, got {regions}")
    n_probes = checks.positive_int(n_probes, "n_probes")
    seed = checks.seed(seed)
    names = [f"#{k}" for k in range(len(faces))] if names is None else [str(n) for n in names]
    by_identity: dict[str, list[int]] = {}
    for k, identity in enumerate(identities):
        by_identity.setdefault(identity, []).append(k)
    eligible = [i for i, ks in by_identity.items() if len(ks) >= 2]
    if not eligible or len(by_identity) < 2:
        raise ValueError("faces: need an identity with two faces (probe and mate) and another "
                         "identity (donor)")
    order = [eligible[j] for j in np.random.default_rng(seed).permutation(len(eligible))]
    result = []
    for k in range(n_probes):
        rng = np.random.default_rng([seed, k])
        identity = order[k % len(order)]
        probe_k, mate_k = rng.choice(by_identity[identity], 2, replace=False)
        others = [j for j, i in enumerate(identities) if i != identity]
        donor_k = int(others[rng.integers(len(others))])
        probe, donor = _face(faces[probe_k], "faces"), _face(faces[donor_k], "faces")
        region = None
        if task == "patch":
            modified, mask = patch_swap(probe, donor, n_patches=n_patches,
                                        patch_size=patch_size, seed=seed, index=k,
                                        landmarks=landmarks)
        else:
            region = regions[int(rng.integers(len(regions)))]
            modified, mask = region_swap(probe, donor, region, landmarks=landmarks)
        result.append(KnownAnswer(
            task=task, probe=modified, clean=probe, mate=_face(faces[mate_k], "faces"),
            donor=donor, mask=mask, identity=identity, donor_identity=identities[donor_k],
            region=region, index=k,
            info={"probe": names[probe_k], "mate": names[mate_k], "donor": names[donor_k]}))
    return result


def keep_by_drop(items: Sequence[KnownAnswer], similarity: Callable, *,
                 min_drop: float = DEFAULT_MIN_DROP) -> tuple[list[KnownAnswer], np.ndarray]:
    """Keep the probes whose swap lowers the similarity to the mate by ``min_drop`` or more.

    Parameters
    ----------
    items : sequence of KnownAnswer
    similarity : callable
        ``(a (N, H, W, 3), b (N, H, W, 3)) -> (N,)`` similarity of each pair
        (e.g. the cosine of their embeddings).
    min_drop : float
        ``similarity(clean, mate) - similarity(probe, mate) >= min_drop``.

    Returns
    -------
    (kept items, drops (len(items),) float64)
    """
    min_drop = checks.finite_real(min_drop, "min_drop")
    if not items:
        return [], np.zeros(0)
    mates = np.stack([item.mate for item in items])
    before = np.asarray(similarity(np.stack([item.clean for item in items]), mates), float)
    after = np.asarray(similarity(np.stack([item.probe for item in items]), mates), float)
    drops = (before - after).reshape(-1)
    if drops.shape != (len(items),):
        raise ValueError(f"similarity returned {drops.shape} values for {len(items)} pairs")
    return [item for item, drop in zip(items, drops) if drop >= min_drop], drops
