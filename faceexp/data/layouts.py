"""Data sets as released: where a root's images, face boxes and pose list lie (VGGFace2, ORL)."""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from faceexp.data.boxes import attach_boxes, load_bounding_boxes
from faceexp.data.folders import load_orl, natural_sort_key, scan_identity_folders
from faceexp.data.skips import SkippedFileWarning, SkipReport

__all__ = [
    "POSES",
    "TEMPLATE_LIST_BLOCK",
    "read_pose_template_list",
    "ORL_NAME",
    "VGGFACE2_FILES",
    "find_dataset_file",
    "Dataset",
    "resolve_dataset",
]

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
    boxes, held_out_boxes : dict or None
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
    def held_out_boxes(self) -> dict | None:
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
        return self.held_out_boxes, self.test_boxes_file

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

    def held_out_frame(self, *, missing: str = "drop", report: SkipReport | None = None
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
        test images are exactly the listed ones (:meth:`Dataset.held_out_frame`).

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
