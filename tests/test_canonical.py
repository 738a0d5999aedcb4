"""The canonical face crop shared by every recogniser's heatmaps, and the book's subjects."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from faceexp import recognisers
from faceexp import data as data
from faceexp.recognisers import canonical
from faceexp.study.subjects import RecogniserSubject, canonical_crops


@pytest.fixture(scope="module")
def orl_six():
    root = data.orl_root()
    return [str(root / f"s{k}" / f"{j}.pgm") for k in (1, 2, 3) for j in (1, 2)]


@pytest.fixture(scope="module")
def sface_pair():
    return recognisers.load("sface"), recognisers.load("sface", frame="canonical")


def test_identity_grid_reads_the_image_back():
    grid = canonical.sampling_grid(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (20, 30), (20, 30))
    image = torch.rand(1, 3, 20, 30)
    out = torch.nn.functional.grid_sample(image, grid, align_corners=False)
    assert torch.allclose(out, image, atol=1e-4)


def test_sface_own_crop_is_the_central_112_of_the_canonical_crop(sface_pair):
    _, canon = sface_pair
    batch = torch.rand(2, 3, 144, 144)
    assert torch.allclose(canon.to_own(batch), batch[:, :, 16:128, 16:128], atol=1e-4)


def test_canonical_template_is_the_arcface_template_shifted_by_16():
    from faceexp.recognisers.alignment import ARCFACE_TEMPLATE_112

    assert np.allclose(canonical.CANONICAL_TEMPLATE - ARCFACE_TEMPLATE_112, 16.0)
    assert canonical.CANONICAL_SIZE == (144, 144)


def test_canonical_sface_embeds_as_its_own_alignment(sface_pair, orl_six):
    own, canon = sface_pair
    a = own(np.stack([own.align(p) for p in orl_six[:2]]).transpose(0, 3, 1, 2))
    b = canon(np.stack([canon.align(p) for p in orl_six[:2]]).transpose(0, 3, 1, 2))
    cos = torch.nn.functional.cosine_similarity(a, b)
    assert cos.min() > 0.98, cos


@pytest.mark.parametrize("name", ["facenet-casia", "dlib"])
def test_canonical_recogniser_keeps_genuine_above_impostor(name, orl_six):
    rec = recognisers.load(name, frame="canonical")
    assert rec.input_size == (144, 144) and repr(rec).startswith(f"<recogniser {name!r} in the canonical")
    faces = np.stack([rec.align(p) for p in orl_six]).transpose(0, 3, 1, 2)
    emb = torch.nn.functional.normalize(rec(faces), dim=1)
    sim = (emb @ emb.T).numpy()
    genuine = [sim[0, 1], sim[2, 3], sim[4, 5]]
    impostor = [sim[0, 2], sim[0, 4], sim[2, 4], sim[1, 3], sim[3, 5]]
    assert min(genuine) > max(impostor), (genuine, impostor)


def test_paper_cnns_have_no_canonical_frame():
    with pytest.raises(ValueError, match="no canonical frame"):
        recognisers.load("mobilenetv2", frame="canonical", checkpoint="x.pt")
    with pytest.raises(ValueError, match="frame must be"):
        recognisers.load("sface", frame="other")


def test_calibration_recovers_the_stored_geometry(orl_six):
    found = canonical.calibrate(orl_six)
    assert found["n"] == 6
    box = np.array(found["facenet-casia"])
    stored = canonical.OWN_TO_CANONICAL["facenet-casia"]
    x1, y1 = stored[0, 2] + 0.5 - 0.5 * stored[0, 0], stored[1, 2] + 0.5 - 0.5 * stored[1, 1]
    x2, y2 = x1 + 160 * stored[0, 0], y1 + 160 * stored[1, 1]
    # six faces against the median of 400: the same box within a few pixels
    assert np.abs(box - [x1, y1, x2, y2]).max() < 12, (box, (x1, y1, x2, y2))
    scale, rotation, tx, ty = found["dlib"]
    assert abs(scale - 0.65) < 0.05 and abs(rotation) < 0.1 and abs(tx - 22.2) < 8 and abs(ty - 37.5) < 8


def test_black_box_subject_has_only_its_embedding(tmp_path):
    subject = RecogniserSubject("dlib", tmp_path)
    assert subject.sweep_layers == ["embedding"] and not subject.has_layers
    with pytest.raises(ValueError, match="black box"):
        subject.embedder(["embedding", "block8"])
    with pytest.raises(ValueError, match="recognisers must be"):
        RecogniserSubject("mobilenetv2", tmp_path)


def test_canonical_crops_are_cached_and_list_photos_without_a_face(tmp_path, orl_six):
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.fromarray(np.full((112, 92), 128, np.uint8)).save(blank)
    frame = pd.DataFrame({"path": orl_six[:2] + [str(blank)], "identity": ["s1", "s1", "x"]})
    images, keep, failed = canonical_crops(frame, tmp_path / "artifacts")
    assert images.shape == (2, 144, 144, 3) and list(keep) == [0, 1]
    assert list(failed["path"]) == [str(blank)] and "no face" in failed["reason"].iloc[0]
    files = list((tmp_path / "artifacts" / "aligned").glob("*.npz"))
    assert len(files) == 1
    again = canonical_crops(frame, tmp_path / "artifacts")
    assert np.array_equal(again[0], images) and list(again[2]["path"]) == [str(blank)]


def test_facenet_subject_explains_layers_in_one_pass(tmp_path, orl_six):
    subject = RecogniserSubject("facenet-casia", tmp_path)
    embed = subject.embedder(["conv2d_4b", "block8", "embedding"])
    images, _, _ = subject.images(pd.DataFrame({"path": orl_six[:2], "identity": ["s1", "s1"]}))
    out = embed(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
    assert list(out) == ["conv2d_4b", "block8", "embedding"]
    assert out["embedding"].shape == (2, 512) and out["block8"].shape == (2, 1792)
    whole = subject.recogniser(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
    cos = torch.nn.functional.cosine_similarity(out["embedding"], whole)
    assert cos.min() > 0.999
