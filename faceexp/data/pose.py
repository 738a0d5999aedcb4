"""Head-pose labels: VGGFace2's pose templates, and poses estimated with MTCNN.

The paper's cross-pose experiments use VGGFace2-Pose: 368 test identities x
(10 frontal + 10 three-quarter + 10 profile) images, listed in VGGFace2's
``test_posetemp_imglist.txt`` (:func:`read_pose_template_list`, which lives in
:mod:`faceexp.data` beside the other released files and is re-exported here;
:meth:`faceexp.data.Dataset.held_out_frame` gives those images with the list's
poses). For other data (ORL offline, a user's photos) the pose is estimated
from MTCNN's five landmarks (:func:`estimate_pose`), inside each image's face
box when the frame has one.

The yaw proxy
-------------
With the eyes at ``e_l``, ``e_r`` and the nose tip at ``n`` (image pixels),

    proxy = (n_x - (e_l,x + e_r,x) / 2) / |e_r - e_l|

Model the eyes as two points ``±e/2`` apart and the nose tip a depth
``d`` in front of them; turning the head by a yaw ``θ`` moves the projected
nose to ``d sin θ`` from the eye midpoint and shrinks the eye distance to
``e cos θ``, so ``proxy = (d / e) tan θ``. With the nose tip about
:data:`NOSE_DEPTH_RATIO` ``= 0.6`` inter-eye distances in front of the eyes,
``proxy ≈ 0.6 tan θ``. The sign says where the face points *in the image*:
negative when the nose lies left of the eye midpoint ("looks left"),
positive when it lies right ("looks right"). Mirroring an image negates it.

Pose bins (``|proxy|``): frontal up to :data:`FRONTAL_MAX` (22°, midway
between a frontal 0° and a three-quarter 45° view), three-quarter up to
:data:`THREE_QUARTER_MAX` (55°), profile beyond. The upper edge sits below the
67.5° midway to a 90° profile because at large yaw the far eye is hidden and
MTCNN's landmark regressor, trained mostly on near-frontal faces, places it
too far out, which shrinks the proxy. These edges are a geometric model, not
a calibration: no VGGFace2 image can be had offline; when you have
VGGFace2-Pose, compare :func:`estimate_pose` with
:func:`read_pose_template_list` and pass your own ``thresholds``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from faceexp.data.layouts import POSES, TEMPLATE_LIST_BLOCK, read_pose_template_list
from faceexp.data.skips import SkipReport, record_skip
from faceexp.data.boxes import frame_boxes
from faceexp.data.preprocessing import BOX_MARGIN, crop_box, load_image, to_rgb

__all__ = [
    "POSES",
    "POSE_CODES",
    "UNKNOWN",
    "NOSE_DEPTH_RATIO",
    "FRONTAL_MAX_DEGREES",
    "THREE_QUARTER_MAX_DEGREES",
    "FRONTAL_MAX",
    "THREE_QUARTER_MAX",
    "TEMPLATE_LIST_BLOCK",
    "read_pose_template_list",
    "POSE_CROP_SIZE",
    "mtcnn_min_side",
    "mtcnn_size_problem",
    "yaw_proxy",
    "pose_from_yaw_proxy",
    "looks_from_yaw_proxy",
    "estimate_pose",
    "look_left",
    "look_left_batch",
]

#: Short codes used in tables and plots.
POSE_CODES = {"frontal": "F", "three-quarter": "3/4", "profile": "P"}
#: Pose / gaze direction of an image in which no face was found.
UNKNOWN = "unknown"
#: Depth of the nose tip in front of the eyes, in inter-eye distances.
NOSE_DEPTH_RATIO = 0.6
#: Yaw (degrees) at the frontal / three-quarter bin edge.
FRONTAL_MAX_DEGREES = 22.0
#: Yaw (degrees) at the three-quarter / profile bin edge.
THREE_QUARTER_MAX_DEGREES = 55.0
#: Largest ``|yaw proxy|`` called frontal: 0.6 tan 22° ≈ 0.242.
FRONTAL_MAX = NOSE_DEPTH_RATIO * math.tan(math.radians(FRONTAL_MAX_DEGREES))
#: Largest ``|yaw proxy|`` called three-quarter: 0.6 tan 55° ≈ 0.857.
THREE_QUARTER_MAX = NOSE_DEPTH_RATIO * math.tan(math.radians(THREE_QUARTER_MAX_DEGREES))
#: Side of the square a box crop is resized to for MTCNN (uniform scaling keeps the proxy).
POSE_CROP_SIZE = 224
_LOOKS = ("left", "right", UNKNOWN)


# --------------------------------------------------------------------------- #
# Yaw proxy and bins
# --------------------------------------------------------------------------- #
def yaw_proxy(landmarks) -> np.ndarray:
    """Signed yaw proxy from MTCNN's five landmarks.

    Parameters
    ----------
    landmarks : array_like, shape (..., 5, 2)
        ``(x, y)`` pixels in MTCNN's order: the two eyes, the nose tip, the
        two mouth corners (only the first three are used).

    Returns
    -------
    numpy.ndarray, shape (...)
        ``(nose_x - eye_midpoint_x) / inter-eye distance``; negative when
        the nose lies left of the eye midpoint in the image. NaN where the
        eyes coincide.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim < 2 or points.shape[-2:] != (5, 2):
        raise ValueError(f"landmarks must have shape (..., 5, 2), got {points.shape}")
    eye_a, eye_b, nose = points[..., 0, :], points[..., 1, :], points[..., 2, :]
    distance = np.linalg.norm(eye_b - eye_a, axis=-1)
    offset = nose[..., 0] - (eye_a[..., 0] + eye_b[..., 0]) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(distance > 0, offset / np.where(distance > 0, distance, 1), np.nan)


def _check_thresholds(thresholds) -> tuple[float, float]:
    try:
        low, high = (float(t) for t in thresholds)
    except (TypeError, ValueError):
        raise ValueError(
            f"thresholds must be two numbers (frontal_max, three_quarter_max), got {thresholds!r}"
        ) from None
    if not 0 < low < high:
        raise ValueError(f"thresholds must satisfy 0 < frontal_max < three_quarter_max, got {thresholds!r}")
    return low, high


def pose_from_yaw_proxy(proxy, *, thresholds=(FRONTAL_MAX, THREE_QUARTER_MAX)) -> np.ndarray:
    """Bin yaw proxies into :data:`POSES`.

    Parameters
    ----------
    proxy : array_like, shape (n,)
        From :func:`yaw_proxy`; NaN for undetected faces.
    thresholds : (float, float)
        ``|proxy| <= thresholds[0]`` is frontal, ``<= thresholds[1]``
        three-quarter, larger is profile.

    Returns
    -------
    numpy.ndarray of str (object), shape (n,)
        Pose names; :data:`UNKNOWN` where ``proxy`` is NaN.
    """
    low, high = _check_thresholds(thresholds)
    proxy = np.abs(np.asarray(proxy, dtype=np.float64))
    codes = np.digitize(proxy, [low, high], right=True)
    poses = np.asarray(POSES, dtype=object)[np.minimum(codes, 2)]
    poses[np.isnan(proxy)] = UNKNOWN
    return poses


def looks_from_yaw_proxy(proxy) -> np.ndarray:
    """Where each face points in the image: ``"left"``, ``"right"`` or ``"unknown"``.

    ``"left"`` when the nose lies left of the eye midpoint (``proxy <= 0``,
    a perfectly frontal face counts as left), ``"right"`` when ``proxy > 0``,
    :data:`UNKNOWN` for NaN. Defined in the image frame, not the person's.
    """
    proxy = np.asarray(proxy, dtype=np.float64)
    looks = np.where(proxy > 0, "right", "left").astype(object)
    looks[np.isnan(proxy)] = UNKNOWN
    return looks


# --------------------------------------------------------------------------- #
# MTCNN
# --------------------------------------------------------------------------- #
def mtcnn_min_side(min_face_size: int = 20) -> int:
    """The smallest image side in which MTCNN searches for faces of ``min_face_size`` pixels.

    facenet_pytorch's MTCNN scales the image by ``12 / min_face_size`` for the first
    level of its pyramid and adds levels while the shorter side stays at 12 pixels or
    more; an image whose shorter side is smaller has no level, and MTCNN fails inside
    (``torch.cat(): expected a non-empty list of Tensors``). The same float arithmetic
    is repeated here: 20 for the default ``min_face_size`` of 20.

    Raises
    ------
    ValueError
        If ``min_face_size`` is not a positive integer.
    """
    if isinstance(min_face_size, bool) or not isinstance(min_face_size, (int, np.integer)) \
            or min_face_size < 1:
        raise ValueError(f"min_face_size must be a positive integer (pixels), got {min_face_size!r}")
    scale = 12.0 / int(min_face_size)
    side = max(1, int(min_face_size) - 2)
    while side * scale < 12:
        side += 1
    return side


def mtcnn_size_problem(width: int, height: int, min_face_size: int = 20) -> str | None:
    """Why a ``width`` x ``height`` image is too small for MTCNN (:func:`mtcnn_min_side`),
    or None when it is not; the reason names the minimum."""
    side = mtcnn_min_side(min_face_size)
    if min(int(width), int(height)) >= side:
        return None
    return (f"{width}x{height} pixels, smaller than the {side}x{side} MTCNN needs to search "
            f"for a face (min_face_size={min_face_size}): pass a larger image")


def _paths_of(frame_or_paths) -> tuple[list[str], pd.Index]:
    if isinstance(frame_or_paths, pd.DataFrame):
        if "path" not in frame_or_paths.columns:
            raise ValueError("frame_or_paths: a DataFrame needs a 'path' column (scan_identity_folders)")
        return frame_or_paths["path"].astype(str).tolist(), frame_or_paths.index
    if isinstance(frame_or_paths, (str, Path)):
        raise ValueError("frame_or_paths must be a DataFrame or a list of paths, not one path")
    paths = [str(p) for p in frame_or_paths]
    return paths, pd.RangeIndex(len(paths))


def estimate_pose(
    frame_or_paths,
    *,
    device="cpu",
    batch_size: int = 32,
    thresholds: Sequence[float] = (FRONTAL_MAX, THREE_QUARTER_MAX),
    min_face_size: int = 20,
    num_threads: int | None = 1,
    progress: bool = True,
    report: SkipReport | None = None,
    boxes=None,
    box_margin: float = BOX_MARGIN,
) -> pd.DataFrame:
    """Estimate each image's head pose with MTCNN's five landmarks.

    MTCNN (``facenet_pytorch``; its P/R/O-net weights ship in the wheel,
    nothing is downloaded) finds the faces; the largest face of an image is
    used. Its landmarks give the signed yaw proxy (see the module docstring),
    binned with ``thresholds``. Images are batched by size (MTCNN needs
    equal sizes within a batch) and decoded in chunks, so memory stays
    bounded. An image with no face found, that cannot be decoded
    (:func:`faceexp.data.preprocessing.load_image`: a FIFO, over the pixel cap...) or
    that is smaller than MTCNN can search (:func:`mtcnn_size_problem`: 20x20 pixels
    for ``min_face_size=20``) gets ``detected=False``, pose and looks
    :data:`UNKNOWN`, NaN proxy, and is recorded in ``report`` with the reason (or
    warned about); it never stops the run.

    Face boxes: when the frame has box columns
    (:data:`faceexp.data.BOX_COLUMNS`) or ``boxes`` is given, MTCNN looks
    only at each image's box, grown by ``box_margin`` on every side (MTCNN
    misses faces cut at the forehead or chin, and the largest face of a
    crowded photo may be someone else's) as a square
    (:func:`faceexp.data.preprocessing.crop_box`, black outside the image) resized
    to :data:`POSE_CROP_SIZE` pixels: all crops have one size, so they are
    batched, and a uniform scaling leaves the yaw proxy unchanged.

    Parameters
    ----------
    frame_or_paths : pandas.DataFrame or sequence of path
        A frame with a ``path`` column (e.g. :func:`faceexp.data.load_orl`)
        or image paths.
    device : str or torch.device, default "cpu"
    batch_size : int, default 32
        Images per MTCNN call.
    thresholds : (float, float), default (:data:`FRONTAL_MAX`, :data:`THREE_QUARTER_MAX`)
        Bin edges on ``|proxy|``.
    min_face_size : int, default 20
        MTCNN's smallest face, in pixels.
    num_threads : int or None, default 1
        torch's CPU threads while detecting, restored afterwards. MTCNN
        runs thousands of tiny operations (one resize per candidate box),
        for which one thread is fastest: on a busy 2-core machine ORL took
        6.5 s per 128 images with 1 thread and 23 s with 2. None keeps
        torch's setting.
    progress : bool, default True
        Show a progress bar.
    report : faceexp.data.SkipReport, optional
        Receives unreadable images and images without a face.
    boxes : mapping of str to (x, y, w, h), optional
        VGGFace2's boxes (:func:`faceexp.data.load_bounding_boxes`), looked
        up by the frame's ``image`` column; default the frame's box columns.
        Only with a frame.
    box_margin : float, default :data:`faceexp.data.preprocessing.BOX_MARGIN` (0.25)
        Fraction of the box's size added on each side.

    Returns
    -------
    pandas.DataFrame
        Indexed like the input frame (``0..n-1`` for paths), columns
        ``path``, ``yaw_proxy`` (float, signed), ``yaw_degrees`` (float,
        ``atan(proxy / 0.6)``, the geometric model's yaw), ``pose``
        (:data:`POSES` or ``"unknown"``), ``looks`` (``"left"``,
        ``"right"`` or ``"unknown"``), ``detected`` (bool).

    Raises
    ------
    ValueError
        If ``batch_size`` < 1, ``thresholds`` are not increasing positive
        numbers, ``min_face_size`` is not a positive integer, a frame lacks
        ``path``, ``boxes`` come with paths instead of a
        frame, or an image has no box in ``boxes``.
    FileNotFoundError
        If an image file does not exist.
    """
    paths, index = _paths_of(frame_or_paths)
    if isinstance(frame_or_paths, pd.DataFrame):
        box_list = frame_boxes(frame_or_paths, boxes)
    elif boxes is not None:
        raise ValueError("boxes are looked up by image name: pass a frame with 'path' and "
                         "'image' columns, not a list of paths")
    else:
        box_list = None
    if not (isinstance(box_margin, (int, float)) and box_margin >= 0):
        raise ValueError(f"box_margin must be a number >= 0, got {box_margin!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if num_threads is not None and (
        isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1
    ):
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    thresholds = _check_thresholds(thresholds)
    mtcnn_min_side(min_face_size)
    missing = next((p for p in paths if not Path(p).exists()), None)
    if missing is not None:
        raise FileNotFoundError(f"image file {missing!r} does not exist")

    import torch
    from facenet_pytorch import MTCNN

    mtcnn = MTCNN(device=torch.device(device), min_face_size=int(min_face_size))
    mtcnn.eval()
    proxy = np.full(len(paths), np.nan)
    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        _detect_all(mtcnn, paths, proxy, batch_size=int(batch_size), progress=progress,
                    report=report, boxes=box_list, box_margin=float(box_margin),
                    min_face_size=int(min_face_size))
    finally:
        torch.set_num_threads(threads)
    detected = ~np.isnan(proxy)
    return pd.DataFrame(
        {
            "path": paths,
            "yaw_proxy": proxy,
            "yaw_degrees": np.degrees(np.arctan(proxy / NOSE_DEPTH_RATIO)),
            "pose": pose_from_yaw_proxy(proxy, thresholds=thresholds),
            "looks": looks_from_yaw_proxy(proxy),
            "detected": detected,
        },
        index=index,
    )


def _detect_all(mtcnn, paths, proxy, *, batch_size, progress, report, boxes=None,
                box_margin=BOX_MARGIN, min_face_size=20) -> None:
    """Fill ``proxy[i]`` with the yaw proxy of the largest face in ``paths[i]`` (in ``boxes[i]``)."""
    from PIL import Image
    from tqdm import tqdm

    chunk = max(int(batch_size) * 16, 512)
    with tqdm(total=len(paths), desc="estimating pose", unit="img", disable=not progress) as bar:
        for start in range(0, len(paths), chunk):
            groups: dict[tuple[int, int], list[tuple[int, object]]] = {}
            for i in range(start, min(start + chunk, len(paths))):
                image = load_image(paths[i], report=report)
                if image is None:
                    bar.update(1)
                    continue
                box = None if boxes is None else boxes[i]
                if box is None:
                    image = to_rgb(image)
                else:
                    try:
                        image = crop_box(image, box, margin=box_margin, square=True,
                                         name=paths[i])
                    except ValueError as exc:
                        record_skip(report, paths[i], str(exc))
                        bar.update(1)
                        continue
                    image = image.resize((POSE_CROP_SIZE, POSE_CROP_SIZE),
                                         Image.Resampling.BILINEAR)
                problem = mtcnn_size_problem(*image.size, min_face_size)
                if problem is not None:  # in a batch, MTCNN would stop the whole run
                    record_skip(report, paths[i], problem)
                    bar.update(1)
                    continue
                groups.setdefault(image.size, []).append((i, image))
            for members in groups.values():
                for b in range(0, len(members), batch_size):
                    batch = members[b:b + batch_size]
                    # (not ``boxes``: that name holds the face boxes of every chunk)
                    found, _, points = mtcnn.detect([im for _, im in batch], landmarks=True)
                    for (i, _), box, point in zip(batch, found, points):
                        if box is None or point is None or len(box) == 0:
                            record_skip(report, paths[i], "no face detected")
                            continue
                        box = np.asarray(box, dtype=np.float64)
                        area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
                        largest = int(np.argmax(area))
                        proxy[i] = yaw_proxy(np.asarray(point, dtype=np.float64)[largest])
                    bar.update(len(batch))


# --------------------------------------------------------------------------- #
# Mirroring to a common direction
# --------------------------------------------------------------------------- #
def _is_tensor(value) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _looks_value(value, where: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNKNOWN
    if value not in _LOOKS:
        raise ValueError(f"{where} must be 'left', 'right' or 'unknown' (or None/NaN), got {value!r}")
    return value


def look_left(image, looks, *, axis: int = -1):
    """Mirror an image whose face looks right, so that every face looks left.

    Used to average heatmaps over three-quarter and profile faces (paper,
    Fig. 3: "the person always looks to the left side").

    Parameters
    ----------
    image : numpy.ndarray or torch.Tensor
        Any layout; ``axis`` is its width axis. The default ``-1`` fits
        heatmaps ``(H, W)`` and images ``(C, H, W)``; pass ``axis=-2`` (or
        1) for ``(H, W, 3)`` images.
    looks : {"left", "right", "unknown"} or None
        From :func:`estimate_pose`; only ``"right"`` is mirrored.
    axis : int, default -1
        The width axis.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        A new array (never a view of ``image``), mirrored along ``axis``
        when ``looks == "right"``.
    """
    looks = _looks_value(looks, "looks")
    if _is_tensor(image):
        return image.flip(axis) if looks == "right" else image.clone()
    image = np.asarray(image)
    if not -image.ndim <= axis < image.ndim:
        raise ValueError(f"axis {axis} is out of range for an image of shape {image.shape}")
    return np.flip(image, axis=axis).copy() if looks == "right" else image.copy()


def look_left_batch(images, looks, *, axis: int = -1):
    """:func:`look_left` for a batch: mirror the images whose face looks right.

    Parameters
    ----------
    images : numpy.ndarray or torch.Tensor, shape (N, ...)
        A batch of heatmaps ``(N, H, W)`` or images ``(N, C, H, W)``.
    looks : sequence of str, length N
        ``"left"``, ``"right"`` or ``"unknown"`` (None/NaN count as unknown),
        e.g. ``estimate_pose(...)["looks"]``.
    axis : int, default -1
        Width axis *of one image* (``-2`` or ``1`` for ``(N, H, W, 3)``).

    Returns
    -------
    numpy.ndarray or torch.Tensor, shape (N, ...)
        A new array; rows with ``looks == "right"`` mirrored.
    """
    looks = [_looks_value(v, f"looks[{i}]") for i, v in enumerate(list(looks))]
    n = images.shape[0] if hasattr(images, "shape") else len(images)
    if len(looks) != n:
        raise ValueError(f"looks has {len(looks)} entries for {n} images; give one per image")
    ndim = images.ndim if hasattr(images, "ndim") else np.ndim(images)
    if not -(ndim - 1) <= axis < ndim - 1:
        raise ValueError(f"axis {axis} is out of range for images of shape (N, ...) with {ndim} dims")
    batch_axis = axis + 1 if axis >= 0 else axis
    mask = np.asarray([v == "right" for v in looks], dtype=bool)
    if _is_tensor(images):
        out = images.clone()
        if mask.any():
            import torch

            rows = torch.as_tensor(np.flatnonzero(mask), device=images.device)
            out[rows] = out[rows].flip(batch_axis)
        return out
    out = np.array(images, copy=True)
    if mask.any():
        out[mask] = np.flip(out[mask], axis=batch_axis)
    return out
