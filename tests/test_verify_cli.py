"""Tests of ``faceexp verify`` on a tiny folder tree of ORL faces with a corrupt file and a faceless image."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from faceexp import data as data
from faceexp.cli import main


@pytest.fixture
def tiny_tree(tmp_path):
    """root/s1, s2, s3 with ORL images 1-3 each, plus a corrupt file and a flat grey image in s1."""
    root = tmp_path / "faces"
    orl = data.orl_root()
    for identity in ("s1", "s2", "s3"):
        (root / identity).mkdir(parents=True)
        for j in (1, 2, 3):
            shutil.copy(orl / identity / f"{j}.pgm", root / identity / f"{j}.pgm")
    (root / "s1" / "9_corrupt.pgm").write_bytes(b"P5\n92 112\n255\n" + b"\x00" * 50)
    Image.fromarray(np.full((112, 92), 128, np.uint8)).save(root / "s1" / "8_flat.png")
    return root


@pytest.mark.slow
def test_verify_json_skips_and_lists_unusable_images(tiny_tree, capsys):
    code = main(["verify", str(tiny_tree), "--model", "sface", "--json", "--resamples", "50"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "sface"
    assert sorted(f["image"] for f in result["failed"]) == ["s1/8_flat.png", "s1/9_corrupt.pgm"]
    assert any("no face found" in f["error"] for f in result["failed"])
    assert any("cannot be decoded" in f["error"] for f in result["failed"])
    # 9 faces of 3 people, all pairs: 3 x 3 genuine, 3 x 3 x 3 impostor
    assert (result["images"], result["identities"]) == (9, 3)
    assert (result["genuine"], result["impostor"]) == (9, 27)
    assert result["eer"] == 0.0  # three people, SFace separates them
    low, high = result["ci95"]
    assert 0.0 <= low <= result["eer"] <= high <= 1.0
    assert isinstance(result["threshold"], float)


@pytest.mark.slow
def test_verify_text_report_names_the_skipped_images(tiny_tree, capsys):
    code = main(["verify", str(tiny_tree), "--model", "sface", "--resamples", "20", "--pairs", "paper"])
    out = capsys.readouterr().out
    assert code == 0
    assert "EER:" in out and "95% CI" in out and "skipped 2 image(s)" in out
    assert "s1/9_corrupt.pgm" in out and "s1/8_flat.png" in out


def test_verify_refuses_a_checkpoint_for_a_pretrained_recogniser(tiny_tree, capsys):
    code = main(["verify", str(tiny_tree), "--model", "dlib", "--checkpoint", "x.pt"])
    assert code == 2
    assert "--checkpoint is for mobilenetv2/resnet50" in capsys.readouterr().err


def test_verify_missing_root_is_an_error(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nowhere"), "--model", "sface"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_verify_choices_follow_the_package():
    from faceexp import recognisers
    from faceexp.cli import verify
    from faceexp.verify.verification import PAIR_RULES

    assert verify._MODELS == tuple(recognisers.available())
    assert verify._PAIR_RULES == PAIR_RULES


def test_align_images_reads_inside_the_boxes(tiny_tree):
    """A box outside the image is a failure naming the file and the box; the paper's CNNs
    get exactly the box's crop (as in training), MTCNN only refusing faceless images."""
    from faceexp.data.preprocessing import preprocessed_image
    from faceexp.recognisers.paper_cnns import PaperCNN
    from faceexp.verify.verification import align_images

    paths = [str(tiny_tree / "s1" / "1.pgm"), str(tiny_tree / "s2" / "1.pgm"),
             str(tiny_tree / "s1" / "8_flat.png")]
    boxes = [(4, 6, 84, 100), (500, 500, 10, 10), None]
    paper = object.__new__(PaperCNN)  # its alignment only: no network is needed
    first, outside, flat = align_images(paper, paths, boxes)
    np.testing.assert_array_equal(first, preprocessed_image(paths[0], box=boxes[0]))
    assert isinstance(outside, ValueError) and "outside" in str(outside)
    assert "2/1.pgm" in str(outside)
    assert isinstance(flat, ValueError) and "8_flat.png" in str(flat)
    with pytest.raises(ValueError, match="outside"):
        align_images(paper, paths[:2], boxes[:2], errors="raise")
    with pytest.raises(ValueError, match="one per image"):
        align_images(paper, paths, boxes[:2])


@pytest.mark.slow
def test_verify_frame_uses_the_frames_boxes(tiny_tree):
    from faceexp import recognisers
    from faceexp.data.boxes import attach_boxes
    from faceexp.verify.verification import verify_frame

    frame = data.scan_identity_folders(tiny_tree)
    frame = frame[frame["image"].str.match(r"s\d/\d\.pgm")].reset_index(drop=True)
    boxes = {image.rsplit(".", 1)[0]: (2, 4, 88, 104) for image in frame["image"]}
    boxes["s3/3"] = (200, 200, 10, 10)
    result = verify_frame(attach_boxes(frame, boxes), recognisers.load("sface"),
                          n_resamples=20)
    assert result.boxes == 9 and result.images == 8
    assert [f["image"] for f in result.failed] == ["s3/3.pgm"]
    assert "outside" in result.failed[0]["error"]
    assert result.to_dict()["boxes"] == 9
