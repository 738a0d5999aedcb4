"""A small data set in VGGFace2's released layout, built from ORL faces: for tests of the VGGFace2 path.

:func:`build_vggface2_tree` writes, under ``root``::

    train/n000001/0001_01.jpg ...        8 identities x 10 images (ORL s1-s8)
    test/n000009/0001_01.jpg ...         6 identities x 31 images (ORL s9-s14)
    meta/identity_meta.csv, train_list.txt, test_list.txt
    meta/bb_landmark/loose_bb_train.csv  NAME_ID,X,Y,W,H (where each face was pasted)
    meta/bb_landmark/loose_bb_test.csv
    meta/test_posetemp_imglist.txt       30 lines per test identity

Each image is a 92x112 ORL face pasted at a seeded random offset into a 300x300
RGB canvas of noise, saved as JPEG (quality 95); its loose box is the pasted
rectangle. ORL has 10 images per person and VGGFace2-Pose lists 30, so each test
identity's files 1-10 are its ORL images, 11-20 the same mirrored and 21-30 with
their contrast lowered; file 31 is a copy of file 1 that the pose list leaves out.
The list names the 30 in a seeded order and labels them by position (10 frontal,
10 three-quarter, 10 profile, as VGGFace2's list): the labels are the list's, MTCNN
would call nearly all of these ORL faces frontal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

#: Size of an ORL face (width, height) and of the canvas it is pasted into.
FACE_SIZE = (92, 112)
CANVAS = 300
VARIANTS = ("original", "mirrored", "low-contrast")


@dataclass
class VGGFace2Tree:
    """What :func:`build_vggface2_tree` wrote, with the answers the tests check."""

    root: Path
    train_ids: list
    test_ids: list
    #: ``(split, "n000001/0001_01.jpg") -> (x, y, w, h)``: where the face was pasted.
    boxes: dict = field(default_factory=dict)
    #: ``(split, image) -> (ORL path, variant)``.
    sources: dict = field(default_factory=dict)
    #: The pose list's lines in order, as ``(image, pose)``.
    listed: list = field(default_factory=list)
    box_files: dict = field(default_factory=dict)
    pose_list: Path | None = None

    def face(self, split: str, image: str) -> Image.Image:
        """The 92x112 RGB face that was pasted for ``image`` (before JPEG)."""
        path, variant = self.sources[(split, image)]
        return _variant(Image.open(path), variant)


def _variant(face: Image.Image, variant: str) -> Image.Image:
    face = face.convert("RGB")
    if variant == "mirrored":
        return ImageOps.mirror(face)
    if variant == "low-contrast":
        array = np.asarray(face, dtype=np.float64) * 0.8 + 25
        return Image.fromarray(np.clip(np.round(array), 0, 255).astype(np.uint8))
    return face


def build_vggface2_tree(root, *, n_train: int = 8, n_test: int = 6, train_images: int = 10,
                        seed: int = 0, box_folder: str = "meta/bb_landmark",
                        list_folder: str = "meta", quality: int = 95) -> VGGFace2Tree:
    """Write a VGGFace2-layout tree of pasted ORL faces under ``root`` and say what it holds.

    Parameters
    ----------
    root : path
        Created; must not hold an earlier tree.
    n_train, n_test : int
        Identities (``n_train + n_test <= 40``): training identities take ORL
        s1.., test identities the next ones, named ``n`` + 6 digits in one sequence.
    train_images : int
        Images per training identity (ORL's first ones, at most 10).
    seed : int
        Seed of the canvases' noise, the offsets and the pose list's order.
    box_folder, list_folder : str
        Where, relative to ``root``, the loose_bb CSVs and the pose list go
        (``""``: the root itself), to test that they are found anywhere a
        user may have extracted them.
    quality : int
        JPEG quality.
    """
    from faceexp.data.folders import load_orl

    if n_train + n_test > 40:
        raise ValueError("ORL has 40 people: n_train + n_test must be at most 40")
    root = Path(root)
    rng = np.random.default_rng(seed)
    orl = load_orl()
    people = [f"s{k}" for k in range(1, n_train + n_test + 1)]
    names = [f"n{k:06d}" for k in range(1, n_train + n_test + 1)]
    tree = VGGFace2Tree(root=root, train_ids=names[:n_train], test_ids=names[n_train:])

    def orl_path(person, k):
        return orl.loc[orl["image"] == f"{person}/{k}.pgm", "path"].iloc[0]

    def paste(split, identity, number, source, variant):
        image = f"{identity}/{number:04d}_01.jpg"
        canvas = rng.integers(0, 256, size=(CANVAS, CANVAS, 3), dtype=np.uint8)
        x = int(rng.integers(0, CANVAS - FACE_SIZE[0] + 1))
        y = int(rng.integers(0, CANVAS - FACE_SIZE[1] + 1))
        picture = Image.fromarray(canvas)
        picture.paste(_variant(Image.open(source), variant), (x, y))
        path = root / split / image
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.save(path, quality=quality)
        tree.boxes[(split, image)] = (x, y, *FACE_SIZE)
        tree.sources[(split, image)] = (source, variant)
        return image

    lists = {"train": [], "test": []}
    for person, identity in zip(people[:n_train], tree.train_ids):
        for k in range(1, min(int(train_images), 10) + 1):
            lists["train"].append(paste("train", identity, k, orl_path(person, k), "original"))
    for person, identity in zip(people[n_train:], tree.test_ids):
        files = []
        for number in range(1, 31):
            k, variant = (number - 1) % 10 + 1, VARIANTS[(number - 1) // 10]
            files.append(paste("test", identity, number, orl_path(person, k), variant))
        lists["test"].extend(files)
        lists["test"].append(paste("test", identity, 31, orl_path(person, 1), "original"))
        order = rng.permutation(30)
        poses = ["frontal"] * 10 + ["three-quarter"] * 10 + ["profile"] * 10
        tree.listed.extend((files[i], pose) for i, pose in zip(order, poses))

    meta = root / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    rows = [f"{identity}, \"ORL {person}\", {train_images if i < n_train else 31}, "
            f"{int(i < n_train)}, m"
            for i, (person, identity) in enumerate(zip(people, names))]
    (meta / "identity_meta.csv").write_text(
        "Class_ID, Name, Sample_Num, Flag, Gender\n" + "\n".join(rows) + "\n")
    for split in ("train", "test"):
        (meta / f"{split}_list.txt").write_text("\n".join(lists[split]) + "\n")
        folder = root / box_folder
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"loose_bb_{split}.csv"
        lines = ["NAME_ID,X,Y,W,H"] + [
            f'"{image.rsplit(".", 1)[0]}",{x},{y},{w},{h}'
            for image in lists[split] for (x, y, w, h) in [tree.boxes[(split, image)]]]
        path.write_text("\n".join(lines) + "\n")
        tree.box_files[split] = path
    folder = root / list_folder
    folder.mkdir(parents=True, exist_ok=True)
    tree.pose_list = folder / "test_posetemp_imglist.txt"
    tree.pose_list.write_text("\n".join(image for image, _ in tree.listed) + "\n")
    return tree
