"""Tests for faceexp.data.pose: VGGFace2's pose list, the yaw proxy, MTCNN on ORL, mirroring."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageOps

from faceexp.cli import main as cli_main
from faceexp.data.skips import SkipReport
from faceexp.data.folders import load_orl
from faceexp.data.pose import (FRONTAL_MAX, POSE_CODES, THREE_QUARTER_MAX, estimate_pose,
    look_left, look_left_batch, looks_from_yaw_proxy, pose_from_yaw_proxy, yaw_proxy)
from faceexp.data.layouts import POSES, read_pose_template_list


def test_pose_names():
    assert POSES == ("frontal", "three-quarter", "profile")
    assert POSE_CODES == {"frontal": "F", "three-quarter": "3/4", "profile": "P"}


# --------------------------------------------------------------------------- #
# VGGFace2 pose template list
# --------------------------------------------------------------------------- #
def write_list(path, identities, per_identity=30):
    lines = [f"{i}/{k:04d}_01.jpg" for i in identities for k in range(1, per_identity + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_pose_template_list(tmp_path):
    path = write_list(tmp_path / "test_posetemp_imglist.txt", ["n000001", "n000009"])
    frame = read_pose_template_list(path, root=tmp_path / "test")
    assert list(frame.columns) == ["image", "identity", "pose", "template", "path"]
    assert len(frame) == 60
    first = frame[frame["identity"] == "n000001"]
    assert first["pose"].tolist() == ["frontal"] * 10 + ["three-quarter"] * 10 + ["profile"] * 10
    assert first["template"].tolist() == [t for t in range(6) for _ in range(5)]
    assert frame.loc[40, "image"] == "n000009/0011_01.jpg"
    assert frame.loc[40, "pose"] == "three-quarter" and frame.loc[40, "template"] == 2
    assert frame.loc[40, "path"] == str((tmp_path / "test" / "n000009/0011_01.jpg").absolute())
    assert (frame.groupby(["identity", "pose"]).size() == 10).all()


def test_read_pose_template_list_errors(tmp_path):
    path = write_list(tmp_path / "list.txt", ["n000001"])
    with open(path, "a") as handle:
        handle.write("\n".join(f"n000002/{k:04d}_01.jpg" for k in range(29)) + "\n")
    with pytest.raises(ValueError, match="n000002.*29 lines"):
        read_pose_template_list(path)
    path.write_text("n000001/0001_01.jpg\n\nbroken-line.jpg\n")
    with pytest.raises(ValueError, match="line 3"):
        read_pose_template_list(path)
    with pytest.raises(FileNotFoundError, match="nothing.txt"):
        read_pose_template_list(tmp_path / "nothing.txt")


# --------------------------------------------------------------------------- #
# yaw proxy, bins, looks
# --------------------------------------------------------------------------- #
def landmarks(eye_a, eye_b, nose):
    return np.array([eye_a, eye_b, nose, (0, 0), (0, 0)], dtype=float)


def test_yaw_proxy_by_hand():
    # eyes 30 px apart at x = 30, 60 (midpoint 45); nose at x = 51 -> 6 / 30 = 0.2
    assert yaw_proxy(landmarks((30, 40), (60, 40), (51, 55))) == pytest.approx(0.2)
    # tilted eyes (30,40)-(60,80): distance 50, midpoint x 45; nose x 35 -> -10 / 50
    batch = np.stack([landmarks((30, 40), (60, 80), (35, 70)), landmarks((30, 40), (60, 40), (45, 60))])
    np.testing.assert_allclose(yaw_proxy(batch), [-0.2, 0.0])
    assert np.isnan(yaw_proxy(landmarks((30, 40), (30, 40), (35, 70))))
    with pytest.raises(ValueError, match=r"\(\.\.\., 5, 2\)"):
        yaw_proxy(np.zeros((3, 2)))


def test_pose_bins():
    # 0.6 tan 22deg and 0.6 tan 55deg
    assert FRONTAL_MAX == pytest.approx(0.2424, abs=1e-4)
    assert THREE_QUARTER_MAX == pytest.approx(0.8569, abs=1e-4)
    proxy = [0.0, -FRONTAL_MAX, FRONTAL_MAX + 1e-6, -0.5, THREE_QUARTER_MAX, -0.9, 3.0, np.nan]
    assert pose_from_yaw_proxy(proxy).tolist() == [
        "frontal", "frontal", "three-quarter", "three-quarter", "three-quarter",
        "profile", "profile", "unknown",
    ]
    assert pose_from_yaw_proxy([0.15, 0.25], thresholds=(0.1, 0.2)).tolist() == ["three-quarter", "profile"]
    for bad in [(0.3, 0.2), (0, 0.5), (0.1,), "ab"]:
        with pytest.raises(ValueError, match="thresholds"):
            pose_from_yaw_proxy([0.1], thresholds=bad)


def test_looks():
    assert looks_from_yaw_proxy([-0.3, 0.0, 0.1, np.nan]).tolist() == ["left", "left", "right", "unknown"]


# --------------------------------------------------------------------------- #
# mirroring
# --------------------------------------------------------------------------- #
def test_look_left():
    heatmap = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(look_left(heatmap, "right"), [[2, 1, 0], [5, 4, 3]])
    same = look_left(heatmap, "left")
    np.testing.assert_array_equal(same, heatmap)
    assert same is not heatmap and not np.shares_memory(same, heatmap)
    np.testing.assert_array_equal(look_left(heatmap, None), heatmap)
    image_hw3 = np.arange(12).reshape(2, 2, 3)
    np.testing.assert_array_equal(look_left(image_hw3, "right", axis=-2), image_hw3[:, ::-1, :])
    chw = torch.arange(12.0).reshape(3, 2, 2)
    assert torch.equal(look_left(chw, "right"), chw[..., [1, 0]])
    with pytest.raises(ValueError, match="looks"):
        look_left(heatmap, "up")


def test_look_left_batch():
    maps = np.arange(12.0).reshape(3, 2, 2)
    out = look_left_batch(maps, ["left", "right", float("nan")])
    np.testing.assert_array_equal(out[0], maps[0])
    np.testing.assert_array_equal(out[1], maps[1][:, ::-1])
    np.testing.assert_array_equal(out[2], maps[2])
    images = np.arange(24).reshape(2, 2, 2, 3)  # (N, H, W, 3)
    out = look_left_batch(images, pd.Series(["right", "left"]), axis=1)
    np.testing.assert_array_equal(out[0], images[0][:, ::-1])
    tensor = torch.arange(8.0).reshape(2, 1, 2, 2)
    out = look_left_batch(tensor, ["right", "unknown"])
    assert torch.equal(out[0], tensor[0].flip(-1)) and torch.equal(out[1], tensor[1])
    with pytest.raises(ValueError, match="one per image"):
        look_left_batch(maps, ["left"])


# --------------------------------------------------------------------------- #
# MTCNN
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def orl():
    return load_orl()


@pytest.fixture(scope="module")
def orl_poses(orl):
    return estimate_pose(orl, progress=False)


def test_orl_poses(orl, orl_poses):
    assert list(orl_poses.columns) == ["path", "yaw_proxy", "yaw_degrees", "pose", "looks", "detected"]
    assert orl_poses.index.equals(orl.index)
    assert orl_poses["path"].tolist() == orl["path"].tolist()
    assert orl_poses["detected"].all()
    counts = orl_poses["pose"].value_counts()
    assert counts.sum() == 400
    # ORL is frontal to slightly turned: measured 391 frontal, 9 three-quarter here
    assert counts.get("profile", 0) == 0 and counts.get("unknown", 0) == 0
    assert counts["frontal"] >= 370
    assert orl_poses["yaw_proxy"].abs().max() < 0.4
    right = orl_poses["yaw_proxy"] > 0
    assert (orl_poses.loc[right, "looks"] == "right").all()
    assert (orl_poses.loc[~right, "looks"] == "left").all()
    np.testing.assert_allclose(
        np.tan(np.radians(orl_poses["yaw_degrees"])) * 0.6, orl_poses["yaw_proxy"], atol=1e-9
    )


def test_mirrored_faces_negate_the_proxy(orl_poses, tmp_path):
    turned = orl_poses["yaw_proxy"].abs().nlargest(6).index
    paths = []
    for i in turned:
        path = tmp_path / f"mirror_{i}.png"
        ImageOps.mirror(Image.open(orl_poses.loc[i, "path"])).save(path)
        paths.append(path)
    mirrored = estimate_pose(paths, progress=False)
    original = orl_poses.loc[turned, "yaw_proxy"].to_numpy()
    assert mirrored["detected"].all() and np.abs(original).min() > 0.2
    error = np.abs(mirrored["yaw_proxy"].to_numpy() + original)
    assert error.mean() < 0.05 and error.max() < 0.12
    assert (mirrored["looks"].to_numpy() != orl_poses.loc[turned, "looks"].to_numpy()).all()


def test_undetected_and_unreadable_images_are_reported(orl, tmp_path):
    Image.new("L", (92, 112), 128).save(tmp_path / "blank.png")
    (tmp_path / "text.jpg").write_text("not an image")
    paths = [orl["path"][0], tmp_path / "blank.png", tmp_path / "text.jpg"]
    report = SkipReport(warn=False)
    poses = estimate_pose(paths, progress=False, report=report, batch_size=2)
    assert poses["detected"].tolist() == [True, False, False]
    assert poses["pose"].tolist()[1:] == ["unknown", "unknown"]
    assert poses["looks"].tolist()[1:] == ["unknown", "unknown"]
    assert poses["yaw_proxy"].isna().tolist() == [False, True, True]
    assert report.paths == [str(tmp_path / "text.jpg"), str(tmp_path / "blank.png")]
    with pytest.raises(FileNotFoundError, match="gone.png"):
        estimate_pose([tmp_path / "gone.png"], progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        estimate_pose(paths, batch_size=0)


def test_face_boxes_are_used_past_the_first_chunk(orl, monkeypatch):
    """Images are decoded in chunks of max(16 * batch_size, 512): the second chunk's face
    boxes are the frame's, not MTCNN's answer for the last batch (an IndexError before)."""
    import facenet_pytorch

    points = np.array([[[30.0, 40.0], [60.0, 40.0], [50.0, 60.0], [35.0, 80.0], [60.0, 80.0]]])
    seen = []

    class FakeMTCNN:
        def __init__(self, **options):
            pass

        def eval(self):
            return self

        def detect(self, images, landmarks=True):
            seen.extend(image.size for image in images)
            return [np.array([[0.0, 0.0, 10.0, 10.0]])] * len(images), None, [points] * len(images)

    monkeypatch.setattr(facenet_pytorch, "MTCNN", FakeMTCNN)
    n = 513
    frame = pd.DataFrame({"path": [orl["path"][0]] * n, "image": ["s1/1.pgm"] * n,
                          "box_x": 10, "box_y": 10, "box_w": 50, "box_h": 60})
    poses = estimate_pose(frame, batch_size=1, progress=False)
    assert seen == [(224, 224)] * n  # every image read through its box
    assert poses["detected"].all()
    np.testing.assert_allclose(poses["yaw_proxy"], yaw_proxy(points[0]))


def test_too_small_images_are_listed_and_the_run_goes_on(orl, tmp_path):
    """A 16x16 image among faces: MTCNN cannot search it (its pyramid is empty below
    min_face_size pixels, and facenet_pytorch failed the whole batch); it is listed."""
    Image.fromarray(np.asarray(Image.open(orl["path"][0]))[:16, :16]).save(tmp_path / "tiny.png")
    Image.fromarray(np.asarray(Image.open(orl["path"][1]))[:19, :30]).save(tmp_path / "thin.png")
    paths = [orl["path"][0], tmp_path / "tiny.png", orl["path"][1], tmp_path / "thin.png"]
    report = SkipReport(warn=False)
    poses = estimate_pose(paths, progress=False, report=report)
    assert poses["detected"].tolist() == [True, False, True, False]
    reasons = dict(report)
    assert reasons[str(tmp_path / "tiny.png")].startswith("16x16 pixels, smaller than the 20x20")
    assert reasons[str(tmp_path / "thin.png")].startswith("30x19 pixels, smaller than the 20x20")
    # a larger min_face_size needs a larger image: the ORL faces (92x112) pass 90, not 100
    report = SkipReport(warn=False)
    poses = estimate_pose(paths[:1], progress=False, report=report, min_face_size=100)
    assert "92x112 pixels, smaller than the 100x100" in dict(report)[str(paths[0])]
    with pytest.raises(ValueError, match="min_face_size"):
        estimate_pose(paths, min_face_size=0)


def test_a_face_box_decides_which_face_is_measured(orl_poses, tmp_path):
    """A turned face in its box, and its mirror twice as large beside it: without the box
    MTCNN measures the larger mirror (opposite sign), with it the boxed face."""
    turned = orl_poses["yaw_proxy"].idxmin()
    face = Image.open(orl_poses.loc[turned, "path"]).convert("RGB")
    canvas = Image.fromarray(np.random.default_rng(0).integers(60, 200, (240, 330, 3), np.uint8))
    canvas.paste(face, (10, 60))
    canvas.paste(ImageOps.mirror(face).resize((184, 224)), (140, 8))
    canvas.save(tmp_path / "two.png")
    frame = pd.DataFrame({"path": [str(tmp_path / "two.png")], "image": ["x/two.png"]})
    whole = estimate_pose(frame, progress=False)
    boxed = estimate_pose(frame, boxes={"x/two": (10, 60, 92, 112)}, progress=False)
    columns = estimate_pose(frame.assign(box_x=10, box_y=60, box_w=92, box_h=112),
                            progress=False)
    original = orl_poses.loc[turned, "yaw_proxy"]
    assert original < -0.2 and whole["yaw_proxy"].iloc[0] > 0.15
    assert abs(boxed["yaw_proxy"].iloc[0] - original) < 0.1  # measured 0.05
    assert boxed["yaw_proxy"].iloc[0] == columns["yaw_proxy"].iloc[0]
    with pytest.raises(ValueError, match="frame"):
        estimate_pose([tmp_path / "two.png"], boxes={"x/two": (0, 0, 5, 5)})


def test_cli_pose(orl, tmp_path, capsys):
    root = tmp_path / "faces"
    for identity in ("s1", "s2"):
        (root / identity).mkdir(parents=True)
        for k in (1, 2):
            Image.open(orl_poses_path(orl, identity, k)).save(root / identity / f"{k}.png")
    out = tmp_path / "poses.csv"
    assert cli_main(["pose", str(root), "--out", str(out), "--no-progress"]) == 0
    table = pd.read_csv(out)
    assert table["image"].tolist() == ["s1/1.png", "s1/2.png", "s2/1.png", "s2/2.png"]
    assert table["detected"].all()
    printed = capsys.readouterr().out
    assert "4 images" in printed and "frontal" in printed
    assert math.isclose(sum(int(line.split()[-1]) for line in printed.splitlines()[1:5]), 4)
    assert cli_main(["pose", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err


def orl_poses_path(orl, identity, k):
    return orl.loc[orl["image"] == f"{identity}/{k}.pgm", "path"].iloc[0]
