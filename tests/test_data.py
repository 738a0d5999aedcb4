"""Tests for faceexp.data: image trees, splits, boxes, preprocessing, the dataset."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from faceexp import data as data
from faceexp.data import preprocessing as fpre
from faceexp.data.boxes import BOX_COLUMNS, attach_boxes, frame_boxes, load_bounding_boxes
from faceexp.data.skips import SkippedFileWarning, SkipReport
from faceexp.data.layouts import find_dataset_file, resolve_dataset
from faceexp.data.folders import load_orl, orl_root, scan_identity_folders
from faceexp.data.splits import split_identities, validation_holdout
from faceexp.data.preprocessing import (
    INPUT_SIZE,
    FaceDataset,
    crop_box,
    load_image,
    preprocess,
    preprocessed_images,
)


def noise_image(width, height, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    return Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode=mode)


def truncated_jpeg(path):
    buffer = io.BytesIO()
    noise_image(40, 30).save(buffer, format="JPEG", quality=90)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


# --------------------------------------------------------------------------- #
# constants, ORL
# --------------------------------------------------------------------------- #
def test_constants():
    assert fpre.IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert fpre.IMAGENET_STD == (0.229, 0.224, 0.225)
    assert (fpre.INPUT_SIZE, fpre.RESIZE_SHORTER) == (113, 129)


@pytest.fixture(scope="module")
def orl():
    return load_orl()


def test_orl_has_40_people_with_10_pgm_images(orl):
    assert orl_root().name == "ORL_faces"
    assert list(orl.columns) == ["path", "identity", "image"]
    assert len(orl) == 400
    assert orl["identity"].nunique() == 40
    assert (orl.groupby("identity").size() == 10).all()
    assert orl["path"].str.endswith(".pgm").all()  # s10/target.jpg is left out
    # natural order: s1, s2, ..., s10; 1.pgm ... 10.pgm
    assert orl["identity"].drop_duplicates().tolist()[:3] == ["s1", "s2", "s3"]
    assert orl["image"].iloc[:10].tolist() == [f"s1/{k}.pgm" for k in range(1, 11)]
    assert orl.index.equals(pd.RangeIndex(400))


def test_preprocessed_orl_face(orl):
    image = load_image(orl["path"].iloc[0])
    assert image.mode == "L" and image.size == (92, 112)
    x = preprocess(image)
    assert x.shape == (3, INPUT_SIZE, INPUT_SIZE) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(x[0], x[1])
    np.testing.assert_array_equal(x[0], x[2])
    # 92x112 -> 129x157 (int(129*112/92) = 157) -> central 113x113, offsets (8, 22)
    expected = image.resize((129, 157), Image.Resampling.BILINEAR).crop((8, 22, 121, 135))
    np.testing.assert_array_equal(x[0], np.asarray(expected, dtype=np.float32) / 255)


# --------------------------------------------------------------------------- #
# scanning
# --------------------------------------------------------------------------- #
def test_scan_vggface2_layout(make_identity_tree):
    root = make_identity_tree(n_identities=2, n_images=3)
    (root / "n000001" / "notes.txt").write_text("not an image")
    (root / "n000001" / ".hidden.png").write_bytes(b"")
    (root / "n000002" / "0004_01.JPG").write_bytes((root / "n000002" / "0001_01.png").read_bytes())
    report = SkipReport(warn=False)
    frame = scan_identity_folders(root, report=report)
    assert frame["image"].tolist() == [
        "n000001/0001_01.png", "n000001/0002_01.png", "n000001/0003_01.png",
        "n000002/0001_01.png", "n000002/0002_01.png", "n000002/0003_01.png",
        "n000002/0004_01.JPG",
    ]
    assert frame["identity"].tolist() == ["n000001"] * 3 + ["n000002"] * 4
    assert frame["path"].tolist() == [str(root.resolve() / i) for i in frame["image"]]
    assert report.paths == [str(root.resolve() / "n000001" / "notes.txt")]
    with pytest.raises(ValueError, match="n000001"):  # no .jpg file in n000001
        scan_identity_folders(root, extensions=("jpg",))


def test_scan_natural_order(tmp_path):
    for identity in ("s10", "s2", "s1"):
        for name in ("10.pgm", "2.pgm", "1.pgm"):
            (tmp_path / identity).mkdir(exist_ok=True)
            noise_image(4, 4, mode="L").save(tmp_path / identity / name)
    frame = scan_identity_folders(tmp_path)
    assert frame["image"].tolist()[:4] == ["s1/1.pgm", "s1/2.pgm", "s1/10.pgm", "s2/1.pgm"]
    assert frame["identity"].drop_duplicates().tolist() == ["s1", "s2", "s10"]


def test_scan_errors(make_identity_tree, tmp_path):
    root = make_identity_tree()
    (root / "n000009").mkdir()
    with pytest.raises(ValueError, match="n000009"):
        scan_identity_folders(root)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        scan_identity_folders(tmp_path / "nowhere")
    (tmp_path / "flat").mkdir()
    noise_image(4, 4).save(tmp_path / "flat" / "a.png")
    with pytest.raises(ValueError, match="no identity folders"):
        scan_identity_folders(tmp_path / "flat")


# --------------------------------------------------------------------------- #
# splits
# --------------------------------------------------------------------------- #
def test_split_identities(orl):
    train, test = split_identities(orl["identity"], test_fraction=0.3, seed=0)
    assert len(test) == 12 and len(train) == 28
    assert not set(train) & set(test)
    assert set(train) | set(test) == set(orl["identity"])
    assert train == sorted(train, key=data.natural_sort_key)
    assert test == sorted(test, key=data.natural_sort_key)
    # deterministic, independent of input order, and seed-dependent
    shuffled = orl["identity"].sample(frac=1.0, random_state=3)
    assert split_identities(shuffled, test_fraction=0.3, seed=0) == (train, test)
    assert split_identities(orl["identity"], test_fraction=0.3, seed=1)[1] != test


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.2])
def test_split_identities_bad_fraction(fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        split_identities(["a", "b", "c"], test_fraction=fraction)


def test_split_identities_empty_side():
    with pytest.raises(ValueError, match="no test"):
        split_identities(["a", "b"], test_fraction=0.1)
    with pytest.raises(ValueError, match="no training"):
        split_identities(["a", "b"], test_fraction=0.9)


def test_validation_holdout_orl(orl):
    held = validation_holdout(orl, fraction=0.02, seed=0)
    assert held.dtype == bool and held.index.equals(orl.index)
    assert held.sum() == 40
    assert (held.groupby(orl["identity"]).sum() == 1).all()
    assert held.equals(validation_holdout(orl, fraction=0.02, seed=0))
    assert not held.equals(validation_holdout(orl, fraction=0.02, seed=1))


def test_validation_holdout_counts():
    # 150 images: floor(0.02 * 150) = 3; 20 images: max(1, floor(0.4)) = 1
    frame = pd.DataFrame({"identity": ["a"] * 150 + ["b"] * 20}, index=np.arange(170) * 7)
    held = validation_holdout(frame, fraction=0.02)
    assert held.index.equals(frame.index)
    assert held[frame["identity"] == "a"].sum() == 3
    assert held[frame["identity"] == "b"].sum() == 1
    none = validation_holdout(frame, fraction=0.0, min_per_identity=0)
    assert not none.any()


def test_validation_holdout_single_image_identity():
    frame = pd.DataFrame({"identity": ["a", "a", "lonely"]})
    with pytest.raises(ValueError, match="lonely"):
        validation_holdout(frame)
    with pytest.raises(ValueError, match="fraction"):
        validation_holdout(frame, fraction=1.0)
    with pytest.raises(ValueError, match="identity"):
        validation_holdout(pd.DataFrame({"who": ["a"]}))


# --------------------------------------------------------------------------- #
# bounding boxes
# --------------------------------------------------------------------------- #
def test_load_bounding_boxes(tmp_path):
    path = tmp_path / "loose_bb_test.csv"
    path.write_text(
        'NAME_ID,X,Y,W,H\n"n000001/0001_01",60,-5,79,109\nn000002/0002_01, 3, 4, 50, 40\n'
    )
    assert load_bounding_boxes(path) == {
        "n000001/0001_01": (60, -5, 79, 109),
        "n000002/0002_01": (3, 4, 50, 40),
    }


def test_load_bounding_boxes_errors(tmp_path):
    path = tmp_path / "bb.csv"
    path.write_text("NAME_ID,X,Y,W,H\nn000001/0001_01,1,2,3,4\nn000001/0002_01,1,2,wide,4\n")
    with pytest.raises(ValueError, match=r"line 3.*column W"):
        load_bounding_boxes(path)
    path.write_text("NAME_ID,X,Y,W\nn000001/0001_01,1,2,3\n")
    with pytest.raises(ValueError, match=r"\['H'\]"):
        load_bounding_boxes(path)
    path.write_text("NAME_ID,X,Y,W,H\nn000001/0001_01,1,2,0,4\n")
    with pytest.raises(ValueError, match="line 2.*positive"):
        load_bounding_boxes(path)
    path.write_text("NAME_ID,X,Y,W,H\na/1,1,2,3,4\na/1,1,2,3,4\n")
    with pytest.raises(ValueError, match="repeats"):
        load_bounding_boxes(path)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_bounding_boxes(tmp_path / "missing.csv")


def test_load_bounding_boxes_reports_an_unparsable_file_on_one_line(tmp_path):
    path = tmp_path / "loose_bb_test.csv"
    path.write_text('NAME_ID,X,Y,W,H\n"n000001/0001_01,1,2,3,4\n')
    with pytest.raises(ValueError, match="loose_bb_test.csv' is not a readable CSV") as error:
        load_bounding_boxes(path)
    assert "\n" not in str(error.value)


def _boxed_tree(make_identity_tree):
    root = make_identity_tree(n_identities=2, n_images=2, size=(200, 100))
    boxes = {
        "n000001/0001_01": (30, 10, 90, 70), "n000001/0002_01": (0, 0, 200, 100),
        "n000002/0001_01": (-5, -5, 60, 60), "n000002/0002_01": (150, 20, 40, 40),
    }
    return scan_identity_folders(root), boxes


def test_attach_boxes_puts_the_boxes_in_the_frame(make_identity_tree, tmp_path):
    frame, boxes = _boxed_tree(make_identity_tree)
    framed = attach_boxes(frame, boxes)
    assert list(framed.columns) == ["path", "identity", "image", *BOX_COLUMNS]
    assert framed[list(BOX_COLUMNS)].dtypes.eq(np.int64).all()
    expected = [boxes[i[:-4]] for i in frame["image"]]
    assert frame_boxes(framed) == expected == frame_boxes(frame, boxes)
    assert frame_boxes(frame) is None
    csv = tmp_path / "loose_bb_train.csv"
    csv.write_text("NAME_ID,X,Y,W,H\n" + "".join(f"{k},{x},{y},{w},{h}\n"
                                               for k, (x, y, w, h) in boxes.items()))
    assert attach_boxes(frame, csv).equals(framed)
    # a missing value means "no box": that row is read whole
    partial = framed.astype({"box_w": float})
    partial.loc[1, "box_w"] = np.nan
    assert frame_boxes(partial) == [expected[0], None, *expected[2:]]
    with pytest.raises(ValueError, match=r"loose_bb_train.csv' has no entry for 1 image.*"
                                         r"n000002/0002_01.png"):
        attach_boxes(frame, {k: v for k, v in boxes.items() if k != "n000002/0002_01"},
                     source=csv)
    with pytest.raises(ValueError, match=r"lacks \['box_h'\]"):
        frame_boxes(framed.drop(columns="box_h"))
    with pytest.raises(ValueError, match="'image' column"):
        frame_boxes(frame.drop(columns="image"), boxes)


def test_frames_with_boxes_are_cropped_by_every_reader(make_identity_tree):
    frame, boxes = _boxed_tree(make_identity_tree)
    framed = attach_boxes(frame, boxes)
    by_columns, by_mapping = FaceDataset(framed), FaceDataset(frame, boxes=boxes)
    for i, name in enumerate(frame["image"]):
        expected = preprocess(Image.open(frame["path"][i]), box=boxes[name[:-4]])
        np.testing.assert_array_equal(by_columns[i][0].numpy(), expected)
        np.testing.assert_array_equal(by_mapping[i][0].numpy(), expected)
    images = preprocessed_images(framed)
    np.testing.assert_array_equal(images[0], by_columns[0][0].numpy().transpose(1, 2, 0))
    whole = framed.astype({"box_x": float})
    whole.loc[0, "box_x"] = np.nan
    np.testing.assert_array_equal(preprocessed_images(whole)[0],
                                  preprocess(Image.open(frame["path"][0])).transpose(1, 2, 0))
    # the mapping wins over the columns
    other = {k: (0, 0, 50, 50) for k in boxes}
    np.testing.assert_array_equal(FaceDataset(framed, boxes=other)[0][0].numpy(),
                                  preprocess(Image.open(frame["path"][0]), box=(0, 0, 50, 50)))
    with pytest.raises(ValueError, match="resize-crop"):
        FaceDataset(framed, mode="aligned")


def test_crop_box_grows_the_box_by_a_margin():
    image = noise_image(200, 100)
    pixels = np.asarray(image)
    box = (30, 10, 90, 70)
    np.testing.assert_array_equal(np.asarray(crop_box(image, box)), pixels[10:80, 30:120])
    # margin 0.2: 18 px left and right, 14 px top (clipped at 0) and bottom
    np.testing.assert_array_equal(np.asarray(crop_box(image, box, margin=0.2)),
                                  pixels[0:94, 12:138])
    # square: side round(90 * 1.4) = 126 centred on (75, 45): x 12..138, y -18..108, black outside
    square = np.asarray(crop_box(image, box, margin=0.2, square=True))
    assert square.shape == (126, 126, 3)
    np.testing.assert_array_equal(square[18:118], pixels[0:100, 12:138])
    assert not square[:18].any() and not square[118:].any()
    assert crop_box(noise_image(20, 10, mode="L"), (0, 0, 5, 5)).mode == "RGB"
    with pytest.raises(ValueError, match="margin"):
        crop_box(image, box, margin=-0.1)
    with pytest.raises(ValueError, match=r"face\.jpg.*outside"):
        crop_box(image, (300, 10, 20, 20), margin=0.5, name="face.jpg")


def test_resolve_dataset_plain_roots_and_orl(make_identity_tree, tmp_path):
    orl = resolve_dataset(None)
    assert orl.name == data.ORL_NAME and not orl.has_test_set
    assert len(orl.frame("train")) == 400
    with pytest.raises(ValueError, match="no test/ folder"):
        orl.frame("test")
    root = make_identity_tree("photos")
    plain = resolve_dataset(root)
    assert (plain.name, plain.train_root, plain.test_root) == ("photos", root.resolve(), None)
    assert plain.boxes_file is None and plain.pose_list is None
    assert plain.frame("train").equals(scan_identity_folders(root))
    with pytest.raises(ValueError, match="split must be one of"):
        plain.frame("val")
    # a root with train/ and test/ is VGGFace2 when its identities are named like VGGFace2's
    for split in ("train", "test"):
        make_identity_tree(f"released/{split}")
    with pytest.warns(UserWarning, match="loose_bb_train.csv and loose_bb_test.csv not found"):
        assert resolve_dataset(tmp_path / "released").name == "VGGFace2"
    for folder in (tmp_path / "released").glob("*/n*"):
        folder.rename(folder.with_name(f"person{folder.name[-1]}"))
    released = resolve_dataset(tmp_path / "released")
    assert released.name == "released" and released.test_root == root.parent / "released/test"


def test_find_dataset_file_looks_in_a_bounded_set_of_folders(tmp_path):
    for folder in ("meta/bb_landmark", "downloads", "train/n000001/deep"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "train/n000001/deep/a.csv").write_text("x")
    assert find_dataset_file(tmp_path, "a.csv") is None  # never inside the image folders
    (tmp_path / "downloads/a.csv").write_text("x")
    assert find_dataset_file(tmp_path, "a.csv") == tmp_path / "downloads/a.csv"
    assert find_dataset_file(tmp_path, "a.csv", subfolders=False) is None
    (tmp_path / "meta/bb_landmark/a.csv").write_text("x")
    assert find_dataset_file(tmp_path, "a.csv") == tmp_path / "meta/bb_landmark/a.csv"
    (tmp_path / "a.csv").write_text("x")
    assert find_dataset_file(tmp_path, "a.csv") == tmp_path / "a.csv"


# --------------------------------------------------------------------------- #
# preprocessing
# --------------------------------------------------------------------------- #
def test_preprocess_box_matches_manual_and_torchvision():
    image = noise_image(200, 100)
    x = preprocess(image, box=(30, 10, 90, 70))
    # by hand: crop 90x70 -> shorter side 129: (int(129 * 90 / 70), 129) = (165, 129)
    # -> centre crop offsets ((165 - 113) / 2, (129 - 113) / 2) = (26, 8)
    manual = (
        image.crop((30, 10, 120, 80))
        .resize((165, 129), Image.Resampling.BILINEAR)
        .crop((26, 8, 139, 121))
    )
    expected = np.asarray(manual, dtype=np.float32).transpose(2, 0, 1) / 255
    np.testing.assert_array_equal(x, expected)
    # the same through torchvision's Resize(129) + CenterCrop(113)
    crop = image.crop((30, 10, 120, 80))
    tv = TF.center_crop(TF.resize(crop, 129, interpolation=TF.InterpolationMode.BILINEAR), 113)
    np.testing.assert_array_equal(x, TF.to_tensor(tv).numpy())


def test_preprocess_box_is_clipped_to_image():
    image = noise_image(200, 100, seed=1)
    clipped = preprocess(image, box=(-20, -10, 100, 60))  # -> (0, 0, 80, 50)
    np.testing.assert_array_equal(clipped, preprocess(image.crop((0, 0, 80, 50))))


def test_preprocess_grey_flip_and_constant():
    grey = noise_image(150, 140, seed=2, mode="L")
    x = preprocess(grey)
    assert x.shape == (3, 113, 113)
    np.testing.assert_array_equal(x[0], x[1])
    np.testing.assert_array_equal(x[1], x[2])
    np.testing.assert_array_equal(preprocess(grey, flip=True), x[..., ::-1])
    # a constant colour survives resizing exactly
    flat = Image.new("RGB", (60, 50), (255, 0, 51))
    y = preprocess(flat)
    np.testing.assert_array_equal(y[:, 0, 0], np.float32([1.0, 0.0, 0.2]))
    assert (y == y[:, :1, :1]).all()
    # RGBA and palette images become RGB
    assert preprocess(flat.convert("RGBA")).shape == (3, 113, 113)
    assert preprocess(flat.convert("P")).shape == (3, 113, 113)


def test_preprocess_aligned():
    exact = noise_image(113, 113, seed=3)
    x = preprocess(exact, mode="aligned")
    np.testing.assert_array_equal(x, np.asarray(exact, dtype=np.float32).transpose(2, 0, 1) / 255)
    larger = noise_image(120, 130, seed=4)
    # offsets round((120-113)/2) = round(3.5) = 4, round((130-113)/2) = round(8.5) = 8
    expected = np.asarray(larger.crop((4, 8, 117, 121)), dtype=np.float32).transpose(2, 0, 1) / 255
    np.testing.assert_array_equal(preprocess(larger, mode="aligned"), expected)
    np.testing.assert_array_equal(expected, TF.to_tensor(TF.center_crop(larger, 113)).numpy())


def test_preprocess_errors():
    image = noise_image(100, 80)
    with pytest.raises(ValueError, match="small.jpg"):
        preprocess(image, mode="aligned", name="small.jpg")
    with pytest.raises(ValueError, match=r"face\.jpg.*outside"):
        preprocess(image, box=(150, 10, 20, 20), name="face.jpg")
    with pytest.raises(ValueError, match=r"face\.jpg.*empty"):
        preprocess(image, box=(10, 10, 0, 20), name="face.jpg")
    with pytest.raises(ValueError, match="mode"):
        preprocess(image, mode="stretch")
    with pytest.raises(ValueError, match="box"):
        preprocess(noise_image(113, 113), box=(0, 0, 50, 50), mode="aligned")
    with pytest.raises(ValueError, match="PIL"):
        preprocess(np.zeros((113, 113, 3), np.uint8))


# --------------------------------------------------------------------------- #
# decoding and skip reports
# --------------------------------------------------------------------------- #
def test_load_image_skips_bad_files(tmp_path):
    good = tmp_path / "good.png"
    noise_image(10, 8).save(good)
    image = load_image(good)
    assert image.size == (10, 8) and image.mode == "RGB"
    bad = truncated_jpeg(tmp_path / "cut.jpg")
    text = tmp_path / "text.jpg"
    text.write_text("hello, I am not a JPEG")
    report = SkipReport()
    with pytest.warns(SkippedFileWarning, match="cut.jpg"):
        assert load_image(bad, report=report) is None
    with pytest.warns(SkippedFileWarning, match="text.jpg"):
        assert load_image(text, report=report) is None
    assert report.paths == [str(bad), str(text)]
    with pytest.warns(SkippedFileWarning, match="text.jpg"):  # no report: a warning
        assert load_image(text) is None
    with pytest.raises(FileNotFoundError, match="absent.png"):
        load_image(tmp_path / "absent.png")


def test_skip_report_frame_and_csv(tmp_path):
    report = SkipReport(warn=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warn=False must not warn
        report.add("a/1.jpg", "truncated")
        report.add("b/2.jpg", "not an image")
    assert len(report) == 2
    frame = report.to_frame()
    assert frame.to_dict("list") == {"path": ["a/1.jpg", "b/2.jpg"], "reason": ["truncated", "not an image"]}
    written = pd.read_csv(report.write(tmp_path / "out" / "skipped.csv"))
    pd.testing.assert_frame_equal(written, frame)


# --------------------------------------------------------------------------- #
# dataset
# --------------------------------------------------------------------------- #
@pytest.fixture
def tree_with_bad_files(make_identity_tree):
    root = make_identity_tree(n_identities=3, n_images=4)
    truncated_jpeg(root / "n000002" / "0009_01.jpg")
    (root / "n000003" / "0009_01.jpg").write_text("not an image")
    return root


def test_dataset_drops_unreadable_images(tree_with_bad_files):
    frame = scan_identity_folders(tree_with_bad_files)
    assert len(frame) == 14
    with pytest.warns(SkippedFileWarning):
        dataset = FaceDataset(frame)
    assert dataset.preloaded and len(dataset) == 12 and len(dataset.report) == 2
    assert {p.rsplit("/", 2)[-2] for p in dataset.report.paths} == {"n000002", "n000003"}
    assert dataset.frame.index.equals(pd.RangeIndex(12))
    assert dataset.classes == ["n000001", "n000002", "n000003"]
    assert dataset.class_to_index == {"n000001": 0, "n000002": 1, "n000003": 2}
    assert dataset.targets.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    image, label = dataset[5]
    assert isinstance(image, torch.Tensor) and image.dtype == torch.float32
    assert tuple(image.shape) == (3, 113, 113) and label == 1
    expected = preprocess(Image.open(dataset.frame["path"][5]))
    np.testing.assert_array_equal(image.numpy(), expected)
    with pytest.raises(IndexError):
        dataset[12]


def test_dataset_lazy_raises_on_unreadable(tree_with_bad_files):
    frame = scan_identity_folders(tree_with_bad_files)
    dataset = FaceDataset(frame, preload=False)
    assert not dataset.preloaded and len(dataset) == 14
    np.testing.assert_array_equal(dataset[0][0].numpy(), preprocess(Image.open(frame["path"][0])))
    bad = frame.index[frame["image"] == "n000003/0009_01.jpg"][0]
    with pytest.warns(SkippedFileWarning), pytest.raises(RuntimeError, match="0009_01.jpg"):
        dataset[bad]


def test_dataset_training_flips_are_deterministic(make_identity_tree):
    frame = scan_identity_folders(make_identity_tree(n_identities=2, n_images=10))
    plain = FaceDataset(frame)
    a = FaceDataset(frame, train=True, seed=5)
    b = FaceDataset(frame, train=True, seed=5, preload=False)
    flips = np.array([a.is_flipped(i) for i in range(len(a))])
    assert 0 < flips.sum() < len(a)
    for i in range(len(a)):
        expected = plain[i][0].flip(-1) if flips[i] else plain[i][0]
        assert torch.equal(a[i][0], expected)
        assert torch.equal(b[i][0], expected)  # lazy decoding, same flips
    a.set_epoch(1)
    flips_1 = np.array([a.is_flipped(i) for i in range(len(a))])
    assert (flips_1 != flips).any()
    other_seed = FaceDataset(frame, train=True, seed=6)
    assert (np.array([other_seed.is_flipped(i) for i in range(len(a))]) != flips).any()
    assert not any(plain.is_flipped(i) for i in range(len(plain)))
    # DataLoader workers see the epoch set in the main process
    loader = torch.utils.data.DataLoader(a, batch_size=5, num_workers=2)
    batches = torch.cat([x for x, _ in loader])
    assert torch.equal(batches, torch.stack([a[i][0] for i in range(len(a))]))


def test_dataset_boxes_labels_and_modes(make_identity_tree, tmp_path):
    root = make_identity_tree(n_identities=2, n_images=2, size=(200, 100))
    frame = scan_identity_folders(root)
    boxes = {
        "n000001/0001_01": (30, 10, 90, 70), "n000001/0002_01": (0, 0, 200, 100),
        "n000002/0001_01": (-5, -5, 60, 60), "n000002/0002_01": (150, 20, 40, 40),
    }
    dataset = FaceDataset(frame, boxes=boxes, labels={"n000001": 7, "n000002": 3, "n000099": 0})
    assert dataset.targets.tolist() == [7, 7, 3, 3]
    assert dataset.classes == ["n000099", "n000002", "n000001"]
    for i, name in enumerate(frame["image"]):
        expected = preprocess(Image.open(frame["path"][i]), box=boxes[name[:-4]])
        np.testing.assert_array_equal(dataset[i][0].numpy(), expected)
    with pytest.raises(ValueError, match="n000002/0002_01.png"):
        FaceDataset(frame, boxes={k: v for k, v in boxes.items() if k != "n000002/0002_01"})
    with pytest.raises(ValueError, match="n000002"):
        FaceDataset(frame, labels={"n000001": 0})
    # aligned mode: 200x100 images are smaller than 113 high -> reported and dropped
    report = SkipReport(warn=False)
    dropped = FaceDataset(frame, mode="aligned", report=report)
    assert len(dropped) == 0 and len(report) == 4 and "113" in report.to_frame()["reason"][0]
    with pytest.raises(ValueError, match="mode"):
        FaceDataset(frame, mode="warp")
