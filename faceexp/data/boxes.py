"""Face boxes: VGGFace2's loose-box CSVs, and the box columns a frame carries."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

__all__ = [
    "BOX_COLUMNS",
    "load_bounding_boxes",
    "frame_boxes",
    "attach_boxes",
]

_BOX_COLUMNS = ("NAME_ID", "X", "Y", "W", "H")
#: Columns of a frame that carry each image's face box ``(x, y, w, h)`` in pixels.
BOX_COLUMNS = ("box_x", "box_y", "box_w", "box_h")


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
