"""One frame for every recogniser's heatmaps: the canonical face crop.

Each recogniser aligns a face its own way (SFace: five-point ArcFace warp to
112x112; FaceNet: MTCNN box plus margin, 160x160; dlib: its own chip, 150x150),
so their heatmaps live in different frames and cannot be compared pixel for
pixel. :func:`in_canonical_frame` wraps a recogniser so that it takes the
**canonical crop** instead and maps it into its own geometry with one fixed
warp inside its embedding function; every perturbed sample of an explanation
goes through the same warp, so the heatmaps of all recognisers land in the
canonical frame.

The canonical frame (:data:`CANONICAL_SIZE`, 144x144): the face warped by a
similarity transform (least squares on MTCNN's five landmarks) so that the
landmarks land on the ArcFace 112x112 template shifted by 16 pixels right and
down (:data:`CANONICAL_TEMPLATE`): eyes at y = 67.6, nose tip at (72.0, 87.7),
mouth corners at y = 108.3, the face centred horizontally at x = 72. Pixels
outside the photo repeat its border.

Each recogniser's own crop, seen in the canonical frame (:data:`OWN_TO_CANONICAL`,
an affine map from the recogniser's pixel (x, y) to the canonical pixel):

- ``sface``: exact, the central 112x112 (shift by 16);
- ``facenet-casia``: the box (20.2, 12.6)-(123.2, 132.5), stretched to 160x160;
- ``dlib``: a similarity of scale 0.650 (chip pixel to canonical pixel),
  rotation -0.001 rad, offset (22.2, 37.5).

The last two are medians over the 400 ORL faces of each recogniser's own crop
(MTCNN box + 44 px margin clipped to the photo; dlib's 5-point shape predictor
and ``get_face_chip``) expressed in canonical coordinates: a geometric
calibration, made once (:func:`calibrate`), not tuned on any verification score.
The canonical path's EERs are printed beside the native ones in chapter 2.

The paper's CNNs were trained on whole photos resized to 113x113, not on aligned
faces: they have no canonical form and keep their own frame.
"""
from __future__ import annotations

import numpy as np
import torch

from faceexp.recognisers.alignment import ARCFACE_TEMPLATE_112, warp_to_template
from faceexp.recognisers.base import Recogniser

#: (height, width) of the canonical crop.
CANONICAL_SIZE = (144, 144)
#: Where the five landmarks land in the canonical crop (x, y).
CANONICAL_TEMPLATE = ARCFACE_TEMPLATE_112 + 16.0


def _box_affine(x1, y1, x2, y2, size):
    """Own pixel -> canonical pixel for a crop of the canonical box (x1, y1)-(x2, y2)
    (pixel-edge coordinates) resized to ``size`` (height, width)."""
    sx, sy = (x2 - x1) / size[1], (y2 - y1) / size[0]
    return np.array([[sx, 0.0, x1 + 0.5 * sx - 0.5], [0.0, sy, y1 + 0.5 * sy - 0.5]])


def _similarity_affine(scale, rotation, tx, ty):
    c, s = scale * np.cos(rotation), scale * np.sin(rotation)
    return np.array([[c, -s, tx], [s, c, ty]])


#: Affine map (2x3) from each recogniser's own pixel (x, y, 1) to the canonical pixel.
OWN_TO_CANONICAL = {
    "sface": np.array([[1.0, 0.0, 16.0], [0.0, 1.0, 16.0]]),
    "facenet-casia": _box_affine(20.22, 12.61, 123.19, 132.53, (160, 160)),
    "dlib": _similarity_affine(0.6499, -0.00096, 22.24, 37.50),
}


def sampling_grid(own_to_canonical, own_size, canonical_size=CANONICAL_SIZE) -> torch.Tensor:
    """The ``grid_sample`` grid that reads a recogniser's own crop out of the canonical one.

    Returns
    -------
    torch.Tensor, float32, shape (1, h, w, 2)
        Normalised (x, y) in [-1, 1] (``align_corners=False``) of the canonical
        pixel each own pixel samples.
    """
    h, w = own_size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    affine = np.asarray(own_to_canonical, dtype=np.float64)
    xc = affine[0, 0] * xs + affine[0, 1] * ys + affine[0, 2]
    yc = affine[1, 0] * xs + affine[1, 1] * ys + affine[1, 2]
    H, W = canonical_size
    grid = np.stack([(2 * xc + 1) / W - 1, (2 * yc + 1) / H - 1], axis=-1)
    return torch.from_numpy(grid.astype(np.float32))[None]


class CanonicalRecogniser(Recogniser):
    """A recogniser that takes canonical crops (see the module docstring).

    ``rec.align(image)`` gives the canonical crop, float32 (144, 144, 3);
    ``rec(batch)`` warps a batch (N, 3, 144, 144) into the inner recogniser's
    geometry (bilinear, border replicated) and embeds it; ``rec.inner`` is the
    recogniser itself, ``rec.to_own(batch)`` the warp alone.
    """

    input_size = CANONICAL_SIZE

    def __init__(self, inner: Recogniser):
        if inner.name not in OWN_TO_CANONICAL:
            raise ValueError(
                f"{inner.name} has no canonical form: the paper's CNNs were trained on whole photos "
                f"resized to 113x113; use one of {sorted(OWN_TO_CANONICAL)}")
        self.inner = inner
        self.name = inner.name
        self.embedding_dim = inner.embedding_dim
        self.preferred_batch_size = inner.preferred_batch_size
        self.source = dict(inner.source, frame="canonical 144x144")
        self.layers = getattr(inner, "layers", ())
        self._grid = sampling_grid(OWN_TO_CANONICAL[inner.name], inner.input_size)

    def _place(self, rgb, box, landmarks):
        return warp_to_template(rgb, landmarks, CANONICAL_TEMPLATE, CANONICAL_SIZE)

    def to_own(self, batch: torch.Tensor) -> torch.Tensor:
        """Canonical crops (N, 3, 144, 144) -> the inner recogniser's crops (N, 3, h, w)."""
        grid = self._grid.to(batch.device).expand(len(batch), -1, -1, -1)
        out = torch.nn.functional.grid_sample(batch.float(), grid, mode="bilinear",
                                              padding_mode="border", align_corners=False)
        return out.clamp_(0.0, 1.0)

    def _embed(self, batch):
        return self.inner._embed(self.to_own(batch))

    def embedder(self, layers=None, **options):
        """The inner recogniser's multi-layer embedder (FaceNet), fed canonical crops.

        Returns a callable (N, 3, 144, 144) in [0, 1] -> dict layer -> (N, C).
        """
        if not hasattr(self.inner, "embedder"):
            raise ValueError(f"{self.name} is a black box: it has no layers to choose from")
        inner = self.inner.embedder(layers, **options)
        return _WarpedEmbed(inner, self)

    def __repr__(self) -> str:
        return f"<recogniser {self.name!r} in the canonical frame: input {self.input_size}, {self.embedding_dim}-d>"


class _WarpedEmbed:
    """An embed callable behind the canonical warp (keeps the inner one's attributes)."""

    def __init__(self, inner, canonical: CanonicalRecogniser):
        self.inner, self.canonical = inner, canonical
        self.preferred_batch_size = getattr(inner, "preferred_batch_size", canonical.preferred_batch_size)
        self.compiled = False
        self.layers = getattr(inner, "layers", None)

    def __call__(self, batch):
        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(np.ascontiguousarray(batch))
        return self.inner(self.canonical.to_own(batch.float()))


def in_canonical_frame(rec: Recogniser) -> CanonicalRecogniser:
    """``rec`` taking canonical crops (see the module docstring)."""
    if isinstance(rec, CanonicalRecogniser):
        return rec
    return CanonicalRecogniser(rec)


def calibrate(images, *, margin: float = 44.0) -> dict:
    """Re-derive :data:`OWN_TO_CANONICAL` for FaceNet and dlib from photos.

    For each photo, each recogniser's own crop is located in the photo (FaceNet:
    MTCNN's box plus ``margin`` clipped to the photo; dlib: its chip, found by
    cutting a chip from an image of pixel coordinates) and mapped into the
    canonical frame by the photo's canonical similarity transform; the medians
    over photos are returned.

    Parameters
    ----------
    images : sequence of paths or arrays
        Faces, e.g. ORL's 400.

    Returns
    -------
    dict
        ``"facenet-casia"``: median box (x1, y1, x2, y2); ``"dlib"``: median
        (scale, rotation, tx, ty) of chip pixel -> canonical pixel; ``"n"``.
    """
    import dlib
    from skimage.transform import SimilarityTransform

    from faceexp.recognisers.alignment import detect_faces, to_rgb_uint8
    from faceexp.recognisers.dlib_resnet import SHAPE_FILE, model_file

    predictor = dlib.shape_predictor(str(model_file(SHAPE_FILE)))
    rgbs = [to_rgb_uint8(image) for image in images]
    boxes, chips = [], []
    for rgb, found in zip(rgbs, detect_faces(rgbs)):
        if isinstance(found, ValueError):
            continue
        box, landmarks = found
        to_canonical = SimilarityTransform.from_estimate(landmarks, CANONICAL_TEMPLATE)
        height, width = rgb.shape[:2]
        x1, y1 = int(max(box[0] - margin / 2, 0)), int(max(box[1] - margin / 2, 0))
        x2, y2 = int(min(box[2] + margin / 2, width)), int(min(box[3] + margin / 2, height))
        boxes.append(to_canonical(np.array([[x1, y1], [x2, y2]], float)).ravel())
        if max(height, width) > 255:
            continue  # the coordinate image below holds pixel indices in uint8
        shape = predictor(rgb, dlib.rectangle(*(int(round(v)) for v in box)))
        ys, xs = np.mgrid[0:height, 0:width]
        coordinates = np.stack([xs, ys, np.zeros_like(xs)], -1).astype(np.uint8)
        chip = np.asarray(dlib.get_face_chip(coordinates, shape, size=150, padding=0.25), float)
        cy, cx = np.mgrid[0:150, 0:150]
        inside = ((chip[..., 0] > 0) & (chip[..., 0] < width - 1)
                  & (chip[..., 1] > 0) & (chip[..., 1] < height - 1))
        fit = SimilarityTransform.from_estimate(np.stack([cx[inside], cy[inside]], 1).astype(float),
                                                to_canonical(chip[inside][:, :2]))
        chips.append([fit.scale, fit.rotation, *fit.translation])
    if not boxes:
        raise ValueError("calibrate: MTCNN found no face in any image")
    return {"facenet-casia": tuple(np.median(boxes, axis=0)),
            "dlib": tuple(np.median(chips, axis=0)) if chips else None, "n": len(boxes)}
