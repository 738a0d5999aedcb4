"""The paper's preprocessing of face images, and the torch dataset that serves them.

The paper (Alonso-Fernandez et al., Sec. III-B): a VGGFace2 image's loose box is
resized so that its shorter side has 129 pixels and the central 113x113 crop is taken
(``preprocess(..., mode="resize-crop")``); MS1M crops are already aligned at 113x113
(``mode="aligned"``); training adds random horizontal flips (:class:`FaceDataset`).

Conventions: a preprocessed image is ``float32`` of shape ``(3, 113, 113)`` with values
in ``[0, 1]`` and is *not* normalised; the ImageNet normalisation
(:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`) happens inside the model.

Decoding: :func:`load_image` is the one decoder of every image file faceexp reads (here,
the recognisers' alignment, the pose estimate), reading it as a viewer shows it (EXIF
orientation, 16-bit to 8-bit) after checks that cost no decoding (a regular file, a pixel
cap from the header; :mod:`faceexp.data.decoding`); :func:`to_rgb` makes any image 8-bit
RGB. A file that cannot be used is recorded in a :class:`faceexp.data.SkipReport`, never
a crash.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import torch
from PIL import Image

from faceexp.data.decoding import UnreadableImage, as_viewed, open_image
from faceexp.data.skips import SkipReport, record_skip
from faceexp.data.boxes import frame_boxes
from faceexp.data.folders import natural_sort_key

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INPUT_SIZE",
    "RESIZE_SHORTER",
    "PRELOAD_LIMIT",
    "BOX_MARGIN",
    "load_image",
    "to_rgb",
    "crop_box",
    "preprocess",
    "FaceDataset",
    "preprocessed_images",
    "preprocessed_image",
]

#: ImageNet channel means (RGB) in pixel space [0, 1]; applied inside the model.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
#: ImageNet channel standard deviations (RGB); applied inside the model.
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Side of the square network input (paper: 113x113x3).
INPUT_SIZE = 113
#: Shorter side a VGGFace2 box is resized to before the central crop.
RESIZE_SHORTER = 129
#: ``FaceDataset(preload=None)`` keeps decoded images in memory up to this many.
PRELOAD_LIMIT = 20000
#: A face box is grown by this fraction of its width (height) on the left and right (top
#: and bottom) before MTCNN looks inside it (:func:`faceexp.data.pose.estimate_pose`, the
#: recognisers' alignment): MTCNN misses faces cut at the chin or forehead, and alignment
#: warps then draw real pixels. The paper's CNNs read the box itself (:func:`preprocess`).
BOX_MARGIN = 0.25

_MODES = ("resize-crop", "aligned")

# --------------------------------------------------------------------------- #
# Decoding and preprocessing
# --------------------------------------------------------------------------- #
def load_image(path, *, report: SkipReport | None = None, max_pixels: int | None = None
               ) -> Image.Image | None:
    """Open and fully decode an image file as a viewer shows it: the one decoder of faceexp.

    Every reader of image files goes through it (the paper's crop, :class:`FaceDataset`,
    the recognisers' alignment, :func:`faceexp.data.pose.estimate_pose`). Before the file
    is opened it must be a regular file (a FIFO, socket, device or directory is refused
    without being opened: a FIFO never blocks); before it is decoded its header's size is
    held against the pixel cap; after, the EXIF orientation is applied and images of more
    than 8 bits per sample become 8-bit by their bit depth
    (:func:`faceexp.data.decoding.open_image`).

    Parameters
    ----------
    path : str or path-like
        The image file: JPEG, PNG, PGM/PPM, BMP, WebP, GIF (the first frame) or TIFF
        (:data:`faceexp.data.decoding.IMAGE_FORMATS`).
    report : SkipReport, optional
        Receives the file when it cannot be used; without one a
        :class:`SkippedFileWarning` is issued.
    max_pixels : int, optional
        Largest width x height decoded; default the environment variable
        ``FACEEXP_MAX_PIXELS``, else 40 megapixels
        (:func:`faceexp.data.decoding.pixel_cap`).

    Returns
    -------
    PIL.Image.Image or None
        Decoded, upright, 8 bits per sample, in the file's own mode (``"L"`` for
        PGM and 16-bit grey PNG, ``"RGB"`` for JPEG...); or None when the file is
        not a regular file, is over the pixel cap, is not an image of those formats,
        or is truncated or corrupt (it is then recorded as skipped with the reason).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or is a dangling symbolic link.
    ValueError
        If ``max_pixels`` or ``FACEEXP_MAX_PIXELS`` is not a positive whole number.
    """
    try:
        return open_image(path, max_pixels=max_pixels)
    except UnreadableImage as exc:
        record_skip(report, path, exc.reason)
        return None


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image as an 8-bit RGB image, as a viewer shows it.

    The EXIF orientation of an image opened but not read by :func:`load_image` is
    applied; 16-bit and float images are scaled to 8 bits
    (:func:`faceexp.data.decoding.as_viewed`); grey gives three equal channels,
    palette and alpha images their colours (alpha dropped).

    Raises
    ------
    ValueError
        A float image with values outside [0, 255] (or not finite).
    """
    image = as_viewed(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def _centre_crop(image: Image.Image, size: int) -> Image.Image:
    # Same offsets as torchvision.transforms.functional.center_crop.
    width, height = image.size
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def _check_box(box, image_size, name) -> tuple[int, int, int, int]:
    """Clip an (x, y, w, h) box to the image; return (left, top, right, bottom)."""
    try:
        x, y, w, h = (int(round(float(v))) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: box must be four numbers (x, y, w, h), got {box!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"{name}: box {box!r} is empty: width and height must be positive")
    width, height = image_size
    left, top = max(x, 0), max(y, 0)
    right, bottom = min(x + w, width), min(y + h, height)
    if right <= left or bottom <= top:
        raise ValueError(
            f"{name}: box {box!r} (x, y, w, h) lies outside the {width}x{height} image"
        )
    return left, top, right, bottom


def crop_box(image: Image.Image, box, *, margin: float = 0.0, square: bool = False,
             name=None) -> Image.Image:
    """The region of a face box, grown by a margin: what a face detector or a network sees.

    Parameters
    ----------
    image : PIL.Image.Image
        Any mode; the result is RGB.
    box : (x, y, w, h)
        Pixels (VGGFace2's loose box); it may extend past the image but must
        overlap it.
    margin : float, default 0
        Fraction of the box's width added on the left and on the right, and
        of its height on the top and on the bottom (``0.25``: a box 1.5 times
        as wide and as high).
    square : bool, default False
        False: the grown box is clipped to the image (as :func:`preprocess`
        clips a box). True: a square of side ``max(w, h) * (1 + 2 * margin)``
        centred on the box, with black where it leaves the image, so that
        crops can be resized to one size without distorting the face.
    name : str, optional
        Named in errors.

    Returns
    -------
    PIL.Image.Image
        RGB. ``crop_box(image, box)`` is the crop :func:`preprocess` resizes.

    Raises
    ------
    ValueError
        The box is not four numbers, is empty, lies outside the image, or
        ``margin`` is negative.
    """
    name = "image" if name is None else str(name)
    if not (isinstance(margin, (int, float)) and np.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a number >= 0 (a fraction of the box size), got "
                         f"{margin!r}")
    image = to_rgb(image)
    left, top, right, bottom = _check_box(box, image.size, name)
    if margin == 0 and not square:
        return image.crop((left, top, right, bottom))
    x, y, w, h = (float(v) for v in box)
    if square:
        side = int(round(max(w, h) * (1 + 2 * margin)))
        left = int(round(x + w / 2 - side / 2))
        top = int(round(y + h / 2 - side / 2))
        return image.crop((left, top, left + side, top + side))  # black outside the image
    width, height = image.size
    left = max(int(np.floor(x - margin * w)), 0)
    top = max(int(np.floor(y - margin * h)), 0)
    right = min(int(np.ceil(x + w + margin * w)), width)
    bottom = min(int(np.ceil(y + h + margin * h)), height)
    return image.crop((left, top, right, bottom))


def _preprocess_uint8(image, *, box=None, mode="resize-crop", name=None) -> np.ndarray:
    """:func:`preprocess` without the flip and the scaling: uint8 (3, 113, 113)."""
    if not isinstance(image, Image.Image):
        raise ValueError(f"image must be a PIL image, got {type(image).__name__}")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    name = "image" if name is None else str(name)
    image = to_rgb(image)
    if mode == "resize-crop":
        if box is not None:
            image = crop_box(image, box, name=name)
        width, height = image.size
        # Shorter side -> 129; the longer side truncated like torchvision's Resize(129).
        if width <= height:
            size = (RESIZE_SHORTER, int(RESIZE_SHORTER * height / width))
        else:
            size = (int(RESIZE_SHORTER * width / height), RESIZE_SHORTER)
        if size != image.size:
            image = image.resize(size, Image.Resampling.BILINEAR)
    else:
        if box is not None:
            raise ValueError(
                f"{name}: a box is only used with mode='resize-crop'; aligned images are not cropped"
            )
        width, height = image.size
        if width < INPUT_SIZE or height < INPUT_SIZE:
            raise ValueError(
                f"{name}: aligned image is {width}x{height}, smaller than {INPUT_SIZE}x{INPUT_SIZE}: "
                "use mode='resize-crop' for images that are not aligned crops"
            )
    if image.size != (INPUT_SIZE, INPUT_SIZE):
        image = _centre_crop(image, INPUT_SIZE)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))


def _to_float(array_uint8: np.ndarray, flip: bool) -> np.ndarray:
    if flip:
        array_uint8 = array_uint8[..., ::-1]
    return np.ascontiguousarray(array_uint8, dtype=np.float32) / np.float32(255)


def preprocess(
    image: Image.Image,
    *,
    box=None,
    mode: str = "resize-crop",
    flip: bool = False,
    name=None,
) -> np.ndarray:
    """The paper's preprocessing of one face image to the network input.

    ``mode="resize-crop"`` (VGGFace2): crop ``box`` if given (clipped to the
    image), resize so the shorter side is 129 pixels (Pillow's bilinear
    filter, which widens its support when shrinking, i.e. antialiased; the
    longer side is ``int(129 * long / short)``, as torchvision's
    ``Resize(129)``), then take the central 113x113 crop (offsets
    ``round((side - 113) / 2)``, as torchvision's ``center_crop``).

    ``mode="aligned"`` (MS1M): the image is already an aligned crop; it is
    not resized; an image larger than 113x113 is centre-cropped to 113.

    Grey, palette and RGBA images become 3-channel RGB (alpha dropped; a
    grey image gives three identical channels). No normalisation: the model
    subtracts :data:`IMAGENET_MEAN` and divides by :data:`IMAGENET_STD`.

    Parameters
    ----------
    image : PIL.Image.Image
        Any mode.
    box : (x, y, w, h), optional
        Face box in pixels (VGGFace2's loose box); only with
        ``mode="resize-crop"``.
    mode : {"resize-crop", "aligned"}
    flip : bool, default False
        Mirror the result horizontally (``result[..., ::-1]``).
    name : str, optional
        File name used in error messages.

    Returns
    -------
    numpy.ndarray
        ``float32``, shape ``(3, 113, 113)``, values ``k / 255`` in ``[0, 1]``.

    Raises
    ------
    ValueError
        If ``mode`` is unknown, the box is empty or outside the image, a box
        is given with ``mode="aligned"``, or an aligned image is smaller
        than 113 on a side (the message names ``name``).
    """
    return _to_float(_preprocess_uint8(image, box=box, mode=mode, name=name), bool(flip))


# --------------------------------------------------------------------------- #
# Dataset
# --------------------------------------------------------------------------- #
class FaceDataset(torch.utils.data.Dataset):
    """Preprocessed face images with integer identity labels.

    Item ``i`` is ``(image, label)``: ``image`` a ``torch.float32`` tensor
    of shape ``(3, 113, 113)`` in ``[0, 1]`` (see :func:`preprocess`),
    ``label`` an ``int``. In training mode the image is mirrored
    horizontally with probability 1/2, decided by ``(seed, epoch, i)`` alone
    (no global random state): call :meth:`set_epoch` at the start of each
    epoch, so a resumed run sees the same flips. With a ``DataLoader`` whose
    workers are re-created each epoch (``persistent_workers=False``, the
    default) workers see the epoch set in the main process.

    Decoding: with preloading, every image is decoded and preprocessed once
    at construction (a progress bar above 200 images) and kept as ``uint8``
    (38 kB per image); unreadable files and images that fail preprocessing
    (box outside the image, aligned image too small) are recorded in
    :attr:`report` and dropped, so indices stay valid. Without preloading
    nothing is decoded at construction; an unreadable image met in
    ``__getitem__`` is recorded and raises ``RuntimeError`` naming the file
    (run once with preloading, or filter the frame, to find such files).

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns ``path`` and ``identity`` (and ``image`` when ``boxes`` is
        given), e.g. from :func:`scan_identity_folders`. A frame with the
        box columns ``box_x, box_y, box_w, box_h``
        (:func:`faceexp.data.attach_boxes`, :meth:`faceexp.data.Dataset.frame`)
        is cropped to them when ``boxes`` is None.
    labels : mapping of identity to int, optional
        Class index of each identity (e.g. the training set's mapping, to
        label a validation frame alike). Default: the frame's identities in
        natural order -> ``0 .. K-1``.
    boxes : mapping of str to (x, y, w, h), optional
        From :func:`load_bounding_boxes`; looked up by the ``image`` column
        without its extension (``n000001/0001_01``) or with it. Takes
        precedence over the frame's box columns.
    mode : {"resize-crop", "aligned"}
        See :func:`preprocess`.
    train : bool, default False
        Random horizontal flips.
    seed : int, default 0
        Seed of the flips.
    report : SkipReport, optional
        Receives skipped files; a new one is made when None
        (:attr:`report`).
    preload : bool, optional
        Decode everything at construction; None means when the frame has at
        most :data:`PRELOAD_LIMIT` rows.
    progress : bool, default True
        Progress bar while preloading more than 200 images.

    Attributes
    ----------
    frame : pandas.DataFrame
        The kept rows (index reset) with an added ``label`` column.
    classes : list
        ``classes[k]`` is the identity of class ``k``.
    class_to_index : dict
        Identity -> class index.
    targets : numpy.ndarray of int64, shape (n,)
        The label of each item.
    report : SkipReport
    epoch : int

    Raises
    ------
    ValueError
        Missing columns, an identity absent from ``labels``, a row whose box
        is missing from ``boxes`` (names the image), an unknown ``mode``.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        labels: Mapping | None = None,
        boxes: Mapping | None = None,
        mode: str = "resize-crop",
        train: bool = False,
        seed: int = 0,
        report: SkipReport | None = None,
        preload: bool | None = None,
        progress: bool = True,
    ):
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
        needed = ["path", "identity"] + (["image"] if boxes is not None else [])
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(
                f"frame lacks column(s) {missing}; scan_identity_folders gives path, identity, image"
            )
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        frame = frame.reset_index(drop=True)
        box_list = frame_boxes(frame, boxes)
        if box_list is not None and mode != "resize-crop" and any(b is not None for b in box_list):
            raise ValueError("boxes are only used with mode='resize-crop'")

        if labels is None:
            ids = sorted(frame["identity"].unique(), key=natural_sort_key)
            labels = {identity: k for k, identity in enumerate(ids)}
        else:
            labels = dict(labels)
            absent = [i for i in frame["identity"].unique() if i not in labels]
            if absent:
                raise ValueError(
                    f"labels has no class for identity {absent[0]!r}"
                    + (f" (and {len(absent) - 1} more)" if len(absent) > 1 else "")
                    + ": pass a mapping that covers every identity of the frame"
                )
        self.class_to_index = {k: int(v) for k, v in labels.items()}
        self.classes = [k for k, _ in sorted(self.class_to_index.items(), key=lambda kv: kv[1])]

        self.mode = mode
        self.train = bool(train)
        self.seed = int(seed)
        self.epoch = 0
        self.report = SkipReport() if report is None else report
        self._boxes = box_list
        self._frame = frame
        self._cache = None
        if preload is None:
            preload = len(frame) <= PRELOAD_LIMIT
        if preload:
            self._preload(progress=progress)
        self.frame = self._frame.assign(
            label=self._frame["identity"].map(self.class_to_index).astype(np.int64)
        )
        self.targets = self.frame["label"].to_numpy(dtype=np.int64)
        self._paths = self.frame["path"].astype(str).tolist()

    def _preload(self, *, progress: bool) -> None:
        from tqdm import tqdm

        n = len(self._frame)
        cache = np.empty((n, 3, INPUT_SIZE, INPUT_SIZE), dtype=np.uint8)
        keep = np.zeros(n, dtype=bool)
        paths = self._frame["path"].astype(str).tolist()
        bar = tqdm(paths, desc="decoding images", unit="img", disable=not progress or n <= 200)
        for i, path in enumerate(bar):
            image = load_image(path, report=self.report)
            if image is None:
                continue
            box = None if self._boxes is None else self._boxes[i]
            try:
                cache[i] = _preprocess_uint8(image, box=box, mode=self.mode, name=path)
            except ValueError as exc:
                self.report.add(path, str(exc))
                continue
            keep[i] = True
        if not keep.all():
            cache = cache[keep]
            self._frame = self._frame[keep].reset_index(drop=True)
            if self._boxes is not None:
                self._boxes = [b for b, k in zip(self._boxes, keep) if k]
        self._cache = cache

    @property
    def preloaded(self) -> bool:
        """Whether the images are held in memory."""
        return self._cache is not None

    def set_epoch(self, epoch: int) -> None:
        """Select the flips of ``epoch`` (training mode)."""
        self.epoch = int(epoch)

    def is_flipped(self, index: int) -> bool:
        """Whether item ``index`` is mirrored in the current epoch."""
        if not self.train:
            return False
        state = np.random.SeedSequence([self.seed, self.epoch, int(index)]).generate_state(1)[0]
        return bool(state & 1)

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index: int):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        index = int(index) % n
        if self._cache is not None:
            array = self._cache[index]
        else:
            path = self._paths[index]
            image = load_image(path, report=self.report)
            if image is None:
                raise RuntimeError(
                    f"cannot decode image {path!r} (see the dataset's report); drop it from the "
                    "frame or construct the dataset with preload=True to skip such files"
                )
            box = None if self._boxes is None else self._boxes[index]
            try:
                array = _preprocess_uint8(image, box=box, mode=self.mode, name=path)
            except ValueError as exc:
                raise RuntimeError(str(exc)) from exc
        tensor = torch.from_numpy(_to_float(array, self.is_flipped(index)))
        return tensor, int(self.targets[index])

    def __repr__(self) -> str:
        return (
            f"FaceDataset({len(self)} images, {len(self.classes)} classes, mode={self.mode!r}, "
            f"train={self.train}, preloaded={self.preloaded}, skipped={len(self.report)})"
        )


def preprocessed_images(frame: pd.DataFrame, *, mode: str = "resize-crop", boxes=None
                        ) -> np.ndarray:
    """The frame's images as the networks see them, after :func:`preprocess`.

    Parameters
    ----------
    frame : pandas.DataFrame
        Images with a ``path`` column (and ``image`` when ``boxes`` is given);
        its box columns (:data:`faceexp.data.BOX_COLUMNS`), when present, crop
        each image as ``boxes`` would.
    mode, boxes
        As in :class:`FaceDataset`.

    Returns
    -------
    numpy.ndarray, shape (N, 113, 113, 3), float32 in [0, 1]
        One row per row of ``frame``; ValueError naming the files when an
        image cannot be read.
    """
    dataset = FaceDataset(frame, mode=mode, boxes=boxes, train=False, progress=False)
    if len(dataset) != len(frame):
        bad = dataset.report.to_frame()
        raise ValueError(f"{len(frame) - len(dataset)} image(s) could not be read: "
                         f"{bad.to_dict('records')}")
    return np.stack([dataset[i][0].numpy().transpose(1, 2, 0) for i in range(len(dataset))])


def preprocessed_image(path, *, box=None, mode: str = "resize-crop", max_pixels: int | None = None
                       ) -> np.ndarray:
    """One image file as the networks see it: (113, 113, 3) float32 in [0, 1].

    ValueError naming the file (and why: unreadable, truncated, not an image, a folder,
    a FIFO, over the pixel cap) when it cannot be decoded; ``box`` and ``mode`` as in
    :func:`preprocess`; ``max_pixels`` as in :func:`load_image`. The paper's crop reads
    an image of any size (upsampled to a shorter side of 129), an aligned one of 113 or more.
    """
    report = SkipReport(warn=False)
    image = load_image(path, report=report, max_pixels=max_pixels)
    if image is None:
        reason = next(iter(report))[1] if len(report) else "cannot be decoded"
        raise ValueError(f"image file {str(path)!r}: {reason}")
    return preprocess(image, box=box, mode=mode, name=str(path)).transpose(1, 2, 0).copy()
