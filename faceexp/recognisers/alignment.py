"""Face alignment for the real recognisers: MTCNN detection, five-point similarity warps, margin crops.

Every recogniser's ``align`` goes through :func:`detect_faces` (MTCNN from
``facenet_pytorch``, whose P/R/O-net weights ship in its wheel) and then puts
the face into its own geometry (dlib refines the box with its own 5-point
shape predictor and cuts a ``get_face_chip``; the paper's CNNs resize the
whole frame):

- :func:`warp_to_template`: a similarity transform (rotation, uniform scale,
  translation) fitted by least squares from MTCNN's five landmarks to a
  template, e.g. :data:`ARCFACE_TEMPLATE_112` (SFace);
- :func:`crop_with_margin`: the MTCNN box grown by a margin, clipped to the
  image and resized (FaceNet, as davidsandberg's ``align_dataset_mtcnn``).

In warps, pixels outside the image (MTCNN boxes often extend past ORL's
92x112 frame) are filled by replicating the border.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from PIL import Image

#: The standard five-point ArcFace template for 112x112 crops (insightface's
#: ``arcface_dst``): left eye, right eye, nose tip, left and right mouth corner,
#: as (x, y) pixels. "Left" is the image's left (the person's right eye).
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)

_MTCNN = {}
_MTCNN_LOCK = threading.Lock()


def image_name(image) -> str:
    """How an image is named in error messages: its path, or its type and shape."""
    if isinstance(image, (str, Path)):
        return repr(str(image))
    shape = getattr(image, "shape", None) or getattr(image, "size", None)
    return f"{type(image).__name__} of shape {tuple(shape)}" if shape is not None else type(image).__name__


def to_rgb_uint8(image, *, name: str | None = None) -> np.ndarray:
    """Any supported image as an RGB ``uint8`` array of shape (H, W, 3).

    Files and PIL images are read by faceexp's one decoder
    (:func:`faceexp.data.preprocessing.load_image` and
    :func:`~faceexp.data.preprocessing.to_rgb`): as a viewer shows them, EXIF
    orientation applied, 16-bit images scaled to 8 bits.

    Parameters
    ----------
    image : str, path-like, PIL.Image.Image or numpy.ndarray
        A file path (JPEG, PNG, PGM/PPM, BMP, WebP, GIF, TIFF), a PIL image of
        any mode, or an array (H, W) / (H, W, 1) / (H, W, 3): ``uint8``, or
        float in [0, 1]; arrays have sides of 8 pixels or more.
    name : str, optional
        Used in error messages; default from :func:`image_name`.

    Raises
    ------
    FileNotFoundError
        If a path does not exist or is a dangling symbolic link.
    ValueError
        If the file cannot be used (not a regular file, over the pixel cap,
        undecodable: the message names it and says why), or the array has
        another shape, dtype or value range.
    """
    from faceexp.data.preprocessing import load_image, to_rgb
    from faceexp.data.skips import SkipReport

    name = image_name(image) if name is None else name
    if isinstance(image, (str, Path)):
        report = SkipReport(warn=False)
        loaded = load_image(image, report=report)
        if loaded is None:
            raise ValueError(f"image {name}: {next(iter(report))[1]}")
        image = loaded
    decoded = isinstance(image, Image.Image)
    if decoded:
        image = np.asarray(to_rgb(image))
    if hasattr(image, "detach"):  # a torch tensor
        image = image.detach().cpu().numpy()
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    # a decoded image of any size goes on (detect_faces names MTCNN's minimum)
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < (1 if decoded else 8):
        raise ValueError(
            f"image {name} must be (H, W) grey or (H, W, 3) RGB with sides >= 8, got shape {array.shape}; "
            "a (3, H, W) tensor needs .permute(1, 2, 0)"
        )
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ValueError(f"float image {name} must have finite values in [0, 1]; pass uint8 for 0-255 data")
        return np.ascontiguousarray(np.round(array * 255.0).astype(np.uint8))
    raise ValueError(f"image {name} must be uint8 or float in [0, 1], got dtype {array.dtype}")


def _mtcnn(min_face_size: int):
    with _MTCNN_LOCK:
        if min_face_size not in _MTCNN:
            import torch
            from facenet_pytorch import MTCNN

            _MTCNN[min_face_size] = MTCNN(device=torch.device("cpu"), min_face_size=int(min_face_size))
        return _MTCNN[min_face_size]


def _largest(boxes, points, name: str, min_face_size: int):
    if boxes is None or len(boxes) == 0:
        raise ValueError(
            f"no face found in image {name} (MTCNN, min_face_size={min_face_size}): "
            "pass an image with a visible face of at least that many pixels"
        )
    boxes = np.asarray(boxes, dtype=np.float64)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    k = int(np.argmax(areas))
    return boxes[k], np.asarray(points[k], dtype=np.float64)


def detect_faces(rgbs, names=None, *, min_face_size: int = 20, batch_size: int = 32) -> list:
    """The largest face MTCNN finds in each of several RGB uint8 images.

    Images of equal size are detected together (MTCNN batches only those).

    Parameters
    ----------
    rgbs : sequence of numpy.ndarray, uint8, shape (H, W, 3)
    names : sequence of str, optional
        Name each image in its error.
    min_face_size : int, default 20
        MTCNN's smallest face, in pixels.
    batch_size : int, default 32
        Images per MTCNN call.

    Returns
    -------
    list
        Per image, either ``(box, landmarks)``: ``box`` (4,) ``(x1, y1, x2,
        y2)`` pixels (may extend past the image) and ``landmarks`` (5, 2)
        ``(x, y)`` of the left eye, right eye, nose, left and right mouth
        corner (image left/right); or a ``ValueError`` naming the image when
        no face was found, or when the image is smaller than MTCNN can search
        (:func:`faceexp.data.pose.mtcnn_size_problem`: sides under 20 pixels for
        ``min_face_size=20``; the message names the size and the minimum).
    """
    import torch

    from faceexp.data.pose import mtcnn_size_problem

    names = [f"#{k}" for k in range(len(rgbs))] if names is None else list(names)
    mtcnn = _mtcnn(int(min_face_size))
    by_shape = {}
    results = [None] * len(rgbs)
    for k, rgb in enumerate(rgbs):
        problem = mtcnn_size_problem(rgb.shape[1], rgb.shape[0], min_face_size)
        if problem is not None:  # MTCNN would fail inside, and with it the whole batch
            results[k] = ValueError(f"image {names[k]} is {problem}")
            continue
        by_shape.setdefault(rgb.shape, []).append(k)
    for indices in by_shape.values():
        for start in range(0, len(indices), int(batch_size)):
            chunk = indices[start: start + int(batch_size)]
            with torch.no_grad():
                boxes, _, points = mtcnn.detect(np.stack([rgbs[k] for k in chunk]), landmarks=True)
            for k, b, p in zip(chunk, boxes, points):
                try:
                    results[k] = _largest(b, p, names[k], min_face_size)
                except ValueError as exc:
                    results[k] = exc
    return results


def detect_face(rgb: np.ndarray, *, name: str = "image", min_face_size: int = 20):
    """The largest face MTCNN finds in one RGB uint8 image: ``(box, landmarks)``.

    See :func:`detect_faces`.

    Raises
    ------
    ValueError
        If MTCNN finds no face; the message names the image.
    """
    (result,) = detect_faces([rgb], [name], min_face_size=min_face_size)
    if isinstance(result, ValueError):
        raise result
    return result


def warp_to_template(rgb: np.ndarray, landmarks, template, size) -> np.ndarray:
    """Warp an image so its landmarks land on a template (similarity transform).

    Parameters
    ----------
    rgb : numpy.ndarray, uint8, shape (H, W, 3)
    landmarks : array_like, shape (K, 2)
        ``(x, y)`` in ``rgb``.
    template : array_like, shape (K, 2)
        Target ``(x, y)`` in the output.
    size : (height, width)
        Output size.

    Returns
    -------
    numpy.ndarray, float32, shape (height, width, 3), values in [0, 1]
        Bilinear interpolation; outside the image the border is replicated.
    """
    from skimage.transform import SimilarityTransform, warp

    src, dst = np.asarray(landmarks, float), np.asarray(template, float)
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        transform = SimilarityTransform.from_estimate(src, dst)
    else:  # pragma: no cover
        transform = SimilarityTransform()
        transform = transform if transform.estimate(src, dst) else None
    if not transform:
        raise ValueError("landmarks are degenerate: no similarity transform maps them to the template")
    out = warp(
        rgb.astype(np.float32) / np.float32(255),
        transform.inverse,
        output_shape=tuple(int(s) for s in size),
        order=1,
        mode="edge",
        preserve_range=True,
    )
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def crop_with_margin(rgb: np.ndarray, box, *, margin: float, size, outside: str = "clip") -> np.ndarray:
    """Crop a box grown by ``margin`` pixels in all (margin/2 per side) and resize.

    Parameters
    ----------
    rgb : numpy.ndarray, uint8, shape (H, W, 3)
    box : (x1, y1, x2, y2)
        Pixels, e.g. MTCNN's box.
    margin : float
        Pixels added to the width and to the height.
    size : (height, width)
        Output size.
    outside : {"clip", "replicate"}
        ``"clip"`` (default): the grown box is clipped to the image and the
        crop stretched to ``size``, exactly as davidsandberg/facenet's
        ``align_dataset_mtcnn`` (FaceNet-CASIA reaches 0.34% EER on ORL this
        way, 0.44% with ``"replicate"``). ``"replicate"``: the box keeps its
        shape and pixels past the image repeat the border.

    Returns
    -------
    numpy.ndarray, float32, shape (height, width, 3), values in [0, 1]
        Resized with Pillow's bilinear filter.
    """
    if outside not in ("clip", "replicate"):
        raise ValueError(f"outside must be 'clip' or 'replicate', got {outside!r}")
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    if outside == "clip":  # integer truncation as davidsandberg's np.int32 box
        left, top = int(max(x1 - margin / 2, 0)), int(max(y1 - margin / 2, 0))
        right, bottom = int(min(x2 + margin / 2, width)), int(min(y2 + margin / 2, height))
    else:
        left, top = int(np.floor(x1 - margin / 2)), int(np.floor(y1 - margin / 2))
        right, bottom = int(np.ceil(x2 + margin / 2)), int(np.ceil(y2 + margin / 2))
    if right <= left or bottom <= top:
        raise ValueError(f"face box {tuple(box)} grown by {margin} px lies outside the {width}x{height} image")
    pad = [max(0, -top), max(0, bottom - height), max(0, -left), max(0, right - width)]
    if any(pad):
        rgb = np.pad(rgb, ((pad[0], pad[1]), (pad[2], pad[3]), (0, 0)), mode="edge")
    crop = rgb[top + pad[0]: bottom + pad[0], left + pad[2]: right + pad[2]]
    out_h, out_w = (int(s) for s in size)
    resized = Image.fromarray(np.ascontiguousarray(crop)).resize((out_w, out_h), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / np.float32(255)
