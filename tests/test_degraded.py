"""The degraded protocol (ours, not the paper's): seeded occlusions, its pairs, the
strength's choice and fusion on constructed scores."""
import numpy as np
import pandas as pd
import pytest

from faceexp.data.degradation import FAMILIES, degrade, downscale, occlude, occlusion_boxes
from faceexp.verify import degraded as fdeg
from faceexp.verify.metrics import equal_error_rate


def crops(n=6, size=20, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3)).astype(np.float32)


KEYS = [f"s{k}/1.pgm" for k in range(6)]


def test_occlusion_is_seeded_and_deterministic():
    images = crops()
    a = occlude(images, KEYS, 0.25, seed=3)
    b = occlude(images, KEYS, 0.25, seed=3)
    assert a.tobytes() == b.tobytes()                       # same seed: identical bytes
    c = occlude(images, KEYS, 0.25, seed=4)
    assert a.tobytes() != c.tobytes()                       # another seed: other squares
    # an image's square depends on its key, not on the other images
    alone = occlude(images[2:3], KEYS[2:3], 0.25, seed=3)
    assert alone.tobytes() == a[2:3].tobytes()
    assert images.tobytes() == crops().tobytes()            # the input is not modified


def test_occlusion_covers_the_stated_share():
    images = np.ones((6, 20, 20, 3), np.float32)
    out = occlude(images, KEYS, 0.25, seed=0)
    # side round(sqrt(0.25 * 400)) = 10: 100 of 400 pixels black in every image
    assert ((out == 0).all(axis=3).sum(axis=(1, 2)) == 100).all()
    boxes = occlusion_boxes(KEYS, (20, 20), 0.25, seed=0)
    assert (boxes[:, 2] == 10).all() and (boxes[:, :2] >= 0).all() and (boxes[:, :2] <= 10).all()
    top, left = boxes[0, :2]
    assert (out[0, top:top + 10, left:left + 10] == 0).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_strength_zero_is_the_identity(family):
    images = crops()
    assert degrade(images, KEYS, 0.0, family=family, seed=7).tobytes() == images.tobytes()
    with pytest.raises(ValueError, match="strength"):
        degrade(images, KEYS, 1.0, family=family)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_is_seeded_and_deterministic(family):
    images = crops(size=40)
    a = degrade(images, KEYS, 0.5, family=family, seed=1)
    assert a.tobytes() == degrade(images, KEYS, 0.5, family=family, seed=1).tobytes()
    assert a.tobytes() != degrade(images, KEYS, 0.5, family=family, seed=2).tobytes()
    assert a.shape == images.shape and a.dtype == images.dtype
    assert not np.array_equal(a, images)


def test_downscale_by_hand():
    # a constant image stays constant whatever the phase (borders are replicated)
    flat = np.full((2, 40, 40, 3), 0.3, np.float32)
    np.testing.assert_allclose(downscale(flat, KEYS[:2], 0.75, seed=0), 0.3, atol=1e-6)
    # detail finer than the low-resolution pixel is lost: a 1-pixel checkerboard seen at a
    # quarter of its side is about its mean, 0.5, away from the borders
    board = (np.indices((40, 40)).sum(axis=0) % 2).astype(np.float32)[None, :, :, None]
    low = downscale(np.repeat(board, 3, axis=3), KEYS[:1], 0.75, seed=0)
    np.testing.assert_allclose(low[0, 8:32, 8:32], 0.5, atol=0.02)
    # a stronger downscale loses more of a random image
    ramp = crops(n=1, size=40)
    err = [np.abs(downscale(ramp, KEYS[:1], s, seed=0) - ramp).mean() for s in (0.25, 0.5, 0.75)]
    assert err[0] < err[1] < err[2]


def test_gallery_probe_pairs_by_hand():
    frame = pd.DataFrame({"identity": ["a", "a", "a", "a", "b", "b"],
                          "pose": ["frontal", "three-quarter", "frontal", "frontal",
                                   "frontal", "frontal"]})
    roles = fdeg.gallery_probe_roles(frame)
    assert list(roles) == ["gallery", "probe", "gallery", "probe", "gallery", "probe"]
    pairs = fdeg.gallery_probe_pairs(frame)
    assert len(pairs) == 3 * 3                              # 3 gallery x 3 probes
    genuine = pairs[pairs["label"] == 1]
    assert sorted(zip(genuine["i"], genuine["j"])) == [(0, 1), (0, 3), (2, 1), (2, 3), (4, 5)]
    # the 3/4 probe against a frontal gallery image is "F-3/4"
    assert set(pairs.loc[pairs["j"] == 1, "pose_pair"]) == {"F-3/4"}
    assert (pairs.loc[pairs["j"] != 1, "pose_pair"] == "F-F").all()


def test_pair_cosines_compare_clean_gallery_with_degraded_probe():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0]])
    probes = np.array([[0.0, 2.0], [1.0, 1.0]])
    pairs = pd.DataFrame({"i": [0, 1], "j": [1, 0]})
    np.testing.assert_allclose(fdeg.pair_cosines(gallery, probes, pairs),
                               [1 / np.sqrt(2), 1.0])


def test_choose_strength_by_hand():
    table = pd.DataFrame({"strength": [0.1, 0.1, 0.3, 0.3, 0.5, 0.5],
                          "system": ["x", "y"] * 3,
                          "eer": [0.0, 0.01, 0.03, 0.08, 0.2, 0.3]})
    # 0.1: x at 0 is infinitely far; 0.3: worst |log(0.08/0.055)| = 0.37; 0.5: log(0.3/0.055) = 1.7
    assert fdeg.choose_strength(table, target=0.055) == 0.3


def scored_pairs(n_ids=30, per=6, seed=0, noise=(0.8, 0.8)):
    """Two systems that each see half of a hidden score: their mean is far better."""
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"p{k}" for k in range(n_ids)], per)
    i, j = np.triu_indices(len(ids), 1)
    label = (ids[i] == ids[j]).astype(int)
    truth = np.where(label == 1, 1.0, -1.0)
    s1 = truth + noise[0] * rng.standard_normal(len(i))
    s2 = truth + noise[1] * rng.standard_normal(len(i))
    return s1, s2, pd.DataFrame({"label": label, "identity_i": ids[i], "identity_j": ids[j]})


def test_fusion_gain_on_independent_errors():
    s1, s2, pairs = scored_pairs()
    gain = fdeg.fusion_gain(s1, s2, pairs, k=3, seed=0, n_boot=200, names=("one", "two"))
    # equal noise, independent: the chosen weights sit near 0.5
    assert all(0.35 <= a <= 0.65 for a in gain["weights"].values())
    assert gain["difference"] < 0 and gain["ci_high"] < 0           # fusion helps, decided
    assert gain["difference"] == pytest.approx(gain["fused"] - gain["best_eer"])
    assert gain["best_eer"] <= gain["other_eer"]


def test_fusion_gain_picks_the_only_informative_system():
    s1, s2, pairs = scored_pairs(noise=(0.3, 50.0))               # the second is noise
    gain = fdeg.fusion_gain(s1, s2, pairs, k=3, seed=0, n_boot=100, names=("one", "two"))
    assert gain["best"] == "one"
    assert all(a >= 0.95 for a in gain["weights"].values())         # a = 1: the first alone
    tested_eer = gain["best_eer"]
    assert gain["fused"] == pytest.approx(tested_eer, abs=0.02)
    # the best single system's EER by a second route
    fold = fdeg.fusion_gain(s1, s2, pairs, k=3, seed=0, n_boot=10)
    assert fold["best_eer"] == pytest.approx(tested_eer)
    whole = equal_error_rate(s1[pairs["label"] == 0], s1[pairs["label"] == 1]).eer
    assert whole < 0.01 and tested_eer < 0.02
