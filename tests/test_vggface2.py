"""VGGFace2 as released, end to end on a small tree of pasted ORL faces (tests/vggface2_tree.py):
finding the released files, the pose list's images and poses, boxes in every reader, the CLI."""
from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from faceexp.cli import main
from faceexp.data.boxes import BOX_COLUMNS
from faceexp.data.layouts import ORL_NAME, resolve_dataset
from faceexp.data.skips import SkippedFileWarning, SkipReport
from faceexp.explain.explanation_sets import explain_set, result_path
from faceexp.data.preprocessing import preprocess, preprocessed_images

from vggface2_tree import build_vggface2_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """8 training identities x 10 images, 6 test identities x 31 images, 300x300 JPEGs."""
    return build_vggface2_tree(tmp_path_factory.mktemp("vgg") / "vggface2")


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory):
    """3 training identities x 3 images, 1 test identity x 31 images: for the recognisers."""
    return build_vggface2_tree(tmp_path_factory.mktemp("small") / "vggface2", n_train=3,
                               n_test=1, train_images=3)


def _boxes(frame) -> list:
    return [tuple(int(v) for v in row) for row in frame[list(BOX_COLUMNS)].to_numpy()]


def _one_line_error(capsys, command) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"faceexp {command}: error: ") and "\n" not in err, err
    return err


# --------------------------------------------------------------------------- #
# resolve_dataset
# --------------------------------------------------------------------------- #
def test_resolve_dataset_finds_everything_from_the_root(tree):
    dataset = resolve_dataset(tree.root)
    assert dataset.name == "VGGFace2"
    assert dataset.train_root == tree.root.resolve() / "train"
    assert dataset.test_root == tree.root.resolve() / "test"
    assert dataset.boxes_file == tree.box_files["train"].resolve()
    assert dataset.test_boxes_file == tree.box_files["test"].resolve()
    assert dataset.pose_list == tree.pose_list.resolve()
    assert dataset.has_test_set
    train = dataset.frame("train")
    assert len(train) == 80 and train["identity"].nunique() == 8
    assert _boxes(train) == [tree.boxes[("train", i)] for i in train["image"]]
    test = dataset.frame("test")
    assert len(test) == 6 * 31 and set(test["identity"]) == set(tree.test_ids)
    assert _boxes(test) == [tree.boxes[("test", i)] for i in test["image"]]
    assert resolve_dataset(None).name == ORL_NAME


def test_resolve_dataset_from_the_train_and_test_folders(tree):
    train = resolve_dataset(tree.root / "train")
    assert train.name == "VGGFace2 (train/ only)"
    assert (train.train_root, train.test_root) == (tree.root.resolve() / "train", None)
    assert train.boxes_file == tree.box_files["train"].resolve()  # found one level up
    assert train.pose_list is None and not train.has_test_set
    frame = train.frame("train")
    assert _boxes(frame) == [tree.boxes[("train", i)] for i in frame["image"]]
    with pytest.raises(ValueError, match="no test/ folder"):
        train.frame("test")
    test = resolve_dataset(tree.root / "test")
    assert test.name == "VGGFace2 (test/ only)"
    assert test.boxes_file == tree.box_files["test"].resolve()
    assert test.pose_list == tree.pose_list.resolve() and len(test.held_out_frame()) == 180


@pytest.mark.parametrize("box_folder, list_folder",
                         [("", ""), ("bb_landmark", "meta"), ("downloads", "vggface2_meta")])
def test_released_files_are_found_wherever_they_were_extracted(tmp_path, box_folder,
                                                               list_folder):
    tree = build_vggface2_tree(tmp_path / "v", n_train=1, n_test=1, train_images=2,
                               box_folder=box_folder, list_folder=list_folder)
    dataset = resolve_dataset(tree.root)
    assert dataset.boxes_file == tree.box_files["train"].resolve()
    assert dataset.test_boxes_file == tree.box_files["test"].resolve()
    assert dataset.pose_list == tree.pose_list.resolve()


def test_explicit_files_override_the_found_ones(tree, tmp_path):
    boxes = tmp_path / "mine.csv"
    shutil.copy(tree.box_files["test"], boxes)
    dataset = resolve_dataset(tree.root, test_boxes=boxes, pose_list=tree.pose_list)
    assert dataset.test_boxes_file == boxes.resolve()
    given = resolve_dataset(tree.root, boxes={"n000001/0001_01": (1, 2, 3, 4)})
    assert given.boxes_file is None and given.boxes == {"n000001/0001_01": (1, 2, 3, 4)}
    with pytest.raises(FileNotFoundError, match="pose_list.*nothing.txt"):
        resolve_dataset(tree.root, pose_list=tmp_path / "nothing.txt")
    with pytest.raises(ValueError, match="need a data_root"):
        resolve_dataset(None, boxes=boxes)


def test_held_out_frame_is_exactly_the_listed_images_with_the_lists_poses(tree):
    frame = resolve_dataset(tree.root).held_out_frame()
    assert list(frame.columns) == ["path", "identity", "image", "pose", "template", *BOX_COLUMNS]
    assert list(zip(frame["image"], frame["pose"])) == tree.listed
    assert len(frame) == 6 * 30 and not frame["image"].str.endswith("0031_01.jpg").any()
    assert (frame.groupby(["identity", "pose"]).size() == 10).all()
    assert _boxes(frame) == [tree.boxes[("test", i)] for i in frame["image"]]
    assert frame["path"].tolist() == [str(tree.root.resolve() / "test" / i)
                                      for i in frame["image"]]


def test_missing_listed_images_are_counted_and_left_out(tmp_path):
    tree = build_vggface2_tree(tmp_path / "v", n_train=1, n_test=2, train_images=2)
    gone = [tree.listed[3][0], tree.listed[40][0]]
    for image in gone:
        (tree.root / "test" / image).unlink()
    dataset = resolve_dataset(tree.root)
    report = SkipReport(warn=False)
    with pytest.warns(SkippedFileWarning, match="2 of the 60 images listed"):
        frame = dataset.held_out_frame(report=report)
    assert len(frame) == 58 and not frame["image"].isin(gone).any()
    assert len(report) == 2
    with pytest.raises(ValueError, match="2 of the 60 images listed.*do not exist"):
        dataset.held_out_frame(missing="raise")
    elsewhere = resolve_dataset(tree.root / "train", pose_list=tree.pose_list)
    with pytest.raises(ValueError, match="none of the 60 images listed"):
        elsewhere.held_out_frame()


def test_malformed_files_and_empty_roots_are_named(tree, tmp_path):
    bad = tmp_path / "loose_bb_train.csv"
    bad.write_text("NAME_ID,X,Y,W,H\nn000001/0001_01,1,2,3,4\nn000001/0002_01,1,2,wide,4\n")
    with pytest.raises(ValueError, match=r"loose_bb_train.csv: line 3 .*column W is 'wide'"):
        resolve_dataset(tree.root, boxes=bad).frame("train")
    short = tmp_path / "short.csv"
    short.write_text("NAME_ID,X,Y,W,H\nn000001/0001_01,1,2,3,4\n")
    with pytest.raises(ValueError, match=r"short.csv' has no entry for 79 image"):
        resolve_dataset(tree.root, boxes=short).frame("train")
    pose_list = tmp_path / "list.txt"
    pose_list.write_text("n000009/0001_01.jpg\n")
    with pytest.raises(ValueError, match=r"list.txt: identity 'n000009' has 1 lines"):
        resolve_dataset(tree.root, pose_list=pose_list).held_out_frame()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty' holds no identity folders"):
        resolve_dataset(tmp_path / "empty")
    (tmp_path / "released" / "train").mkdir(parents=True)
    (tmp_path / "released" / "meta").mkdir()
    with pytest.raises(ValueError, match="train' holds no identity folders"):
        resolve_dataset(tmp_path / "released")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        resolve_dataset(tmp_path / "nowhere")


# --------------------------------------------------------------------------- #
# Boxes in every reader
# --------------------------------------------------------------------------- #
def test_preprocessed_crops_are_the_pasted_faces(tree):
    dataset = resolve_dataset(tree.root)
    train = dataset.frame("train")
    test = dataset.held_out_frame().groupby("pose").head(4)  # every variant of the faces
    for split, frame in (("train", train), ("test", test)):
        crops = preprocessed_images(frame)
        faces = np.stack([preprocess(tree.face(split, i)).transpose(1, 2, 0)
                          for i in frame["image"]])
        error = np.abs(crops - faces)
        assert error.mean() < 0.01 and error.max() < 0.15, (split, error.mean(), error.max())
    # without the boxes the network would see the noisy canvas
    canvas = preprocessed_images(train.drop(columns=list(BOX_COLUMNS)).iloc[:5])
    faces = np.stack([preprocess(tree.face("train", i)).transpose(1, 2, 0)
                      for i in train["image"].iloc[:5]])
    assert np.abs(canvas - faces).mean() > 0.15


def test_explain_set_reads_each_image_through_its_box(tree, tmp_path):
    import torch

    frame = resolve_dataset(tree.root).held_out_frame().iloc[:2]

    def embed(batch):
        return torch.as_tensor(batch).float().mean(dim=(2, 3))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = explain_set(frame, embed, tmp_path / "out", progress=False, n_samples=10,
                             n_segments=8)
    assert (result["status"] == "done").all()
    for image in frame["image"]:
        saved = np.load(result_path(tmp_path / "out", image))["image"]
        face = preprocess(tree.face("test", image)).transpose(1, 2, 0)
        assert np.abs(saved - face).mean() < 0.01


# --------------------------------------------------------------------------- #
# The command line on the tree
# --------------------------------------------------------------------------- #
def test_pose_prints_the_lists_poses(tree, tmp_path, capsys):
    out = tmp_path / "poses.csv"
    assert main(["pose", str(tree.root), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "poses from the list" in printed and "MTCNN not run" in printed
    assert "frontal             60" in printed and "profile             60" in printed
    table = pd.read_csv(out)
    assert list(zip(table["image"], table["pose"])) == tree.listed
    assert _boxes(table) == [tree.boxes[("test", i)] for i in table["image"]]
    again = tmp_path / "again.csv"
    assert main(["pose", str(tree.root / "test"), "--pose-list", str(tree.pose_list),
                 "--out", str(again), "--no-progress"]) == 0
    assert pd.read_csv(again)["pose"].tolist() == table["pose"].tolist()


def test_pose_estimate_compares_mtcnn_with_the_list(small_tree, tmp_path, capsys):
    out = tmp_path / "poses.csv"
    assert main(["pose", str(small_tree.root), "--estimate", "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "30 images, 30 faces detected" in printed and "inside their face boxes" in printed
    table = pd.read_csv(out)
    assert table["list_pose"].tolist() == [pose for _, pose in small_tree.listed]
    # the list calls 20 of these ORL faces turned; MTCNN sees them as they are: frontal
    agree = (table["pose"] == table["list_pose"]).mean()
    assert f"MTCNN agrees with the list on {100 * agree:.1f}%" in printed
    assert (table["pose"] == "frontal").sum() >= 25


def test_the_commands_read_the_test_images_of_a_released_root(tree, tmp_path):
    from argparse import Namespace

    from faceexp.cli.common import dataset_images

    def read(root, boxes=None, pose_list=None):
        return dataset_images(Namespace(root=root, boxes=boxes, pose_list=pose_list))

    dataset, frame, source = read(tree.root)
    assert list(zip(frame["image"], frame["pose"])) == tree.listed
    assert source.startswith("VGGFace2 (") and "test_posetemp_imglist.txt" in source
    assert "loose_bb_test.csv" in source
    _, frame, source = read(tree.root / "train")
    assert len(frame) == 80 and "loose_bb_train.csv" in source and "pose" not in frame
    mine = shutil.copy(tree.box_files["test"], tmp_path / "mine.csv")
    dataset, _, source = read(tree.root, boxes=mine)  # --boxes: those of the folder read
    assert dataset.test_boxes_file == mine.resolve() and "mine.csv" in source
    _, frame, source = read(None)
    assert len(frame) == 400 and source == ORL_NAME


def test_explain_with_boxes_explains_the_pasted_face(tree, tmp_path, capsys):
    image = tree.listed[0][0]
    path = tree.root / "test" / image
    out = tmp_path / "face.npz"
    code = main(["explain", str(path), "--boxes", str(tree.box_files["test"]),
                 "--model", "mobilenetv2", "--backend", "torch", "--samples", "8",
                 "--segments", "4", "--batch-size", "4", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    saved = np.load(out)
    assert tuple(saved["box"]) == tree.boxes[("test", image)]
    face = preprocess(tree.face("test", image)).transpose(1, 2, 0)
    assert np.abs(saved["image"] - face).mean() < 0.01
    box = ",".join(str(v) for v in tree.boxes[("test", image)])
    code = main(["explain", str(path), "--box", box, "--samples", "20", "--segments", "10",
                 "--out", str(tmp_path / "sface.npz"), "--quiet"])  # sface aligns in the box
    assert code == 0, capsys.readouterr().err
    assert np.load(tmp_path / "sface.npz")["image"].shape == (112, 112, 3)


def test_verify_reads_the_faces_through_their_boxes(small_tree, capsys):
    train = small_tree.root / "train"
    code = main(["verify", str(train), "--model", "sface", "--json", "--resamples", "20"])
    assert code == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    assert (result["images"], result["identities"], result["boxes"]) == (9, 3, 9)
    assert result["failed"] == [] and "loose_bb_train.csv" in result["dataset"]
    assert result["eer"] < 0.2
    code = main(["verify", str(train), "--boxes", str(small_tree.box_files["train"]),
                 "--model", "sface", "--resamples", "20"])
    assert code == 0
    assert "9 image(s) read inside their face box" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["explain", "verify", "pose", "explain-set"])
def test_a_malformed_box_file_is_one_line_naming_it(small_tree, tmp_path, capsys, command):
    bad = tmp_path / "broken_bb.csv"
    bad.write_text('NAME_ID,X,Y,W,H\n"n000001/0001_01",1,2\n"unclosed,1,2,3,4\n')
    root = str(small_tree.root)
    argv = {"explain": ["explain", str(small_tree.root / "train/n000001/0001_01.jpg"),
                        "--out", str(tmp_path / "e.npz")],
            "verify": ["verify", root],
            "pose": ["pose", root, "--out", str(tmp_path / "p.csv")],
            "explain-set": ["explain-set", root, "--out", str(tmp_path / "set")]}[command]
    assert main([*argv, "--boxes", str(bad)]) == 2
    assert "broken_bb.csv" in _one_line_error(capsys, command)


def test_box_options_are_checked(small_tree, tmp_path, capsys):
    image = str(small_tree.root / "train/n000001/0001_01.jpg")
    assert main(["explain", image, "--box", "1,2,3", "--out", str(tmp_path / "e.npz")]) == 2
    assert "--box must be four numbers" in _one_line_error(capsys, "explain")
    assert main(["explain", image, "--boxes", str(small_tree.box_files["test"]),
                 "--out", str(tmp_path / "e.npz")]) == 2
    assert "has no box for" in _one_line_error(capsys, "explain")
    assert main(["pose", "--boxes", str(small_tree.box_files["test"])]) == 2
    assert "need ROOT" in _one_line_error(capsys, "pose")
    Image.new("L", (30, 30)).save(tmp_path / "tiny.png")
    assert main(["explain", str(tmp_path / "tiny.png"), "--box", "50,50,10,10",
                 "--out", str(tmp_path / "e.npz")]) == 2
    assert "outside" in _one_line_error(capsys, "explain")
