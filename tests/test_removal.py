"""Tests of faceexp.evaluate.removal: tiny images with answers worked out by hand."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from faceexp.data.preprocessing import IMAGENET_MEAN
from faceexp.evaluate.removal import (
    removal_experiment,
    remove_random_pixels,
    remove_random_superpixels,
    remove_significant,
    removed_fraction,
)

MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)


def _images(n, h, w, value=0.8):
    return np.full((n, 3, h, w), value, dtype=np.float32)


def _quadrants(h=4, w=4):
    """(h, w) labels 0 1 / 2 3 of four equal quadrants."""
    rows = (np.arange(h) >= h // 2).astype(int)[:, None]
    cols = (np.arange(w) >= w // 2).astype(int)[None, :]
    return 2 * rows + cols


# --------------------------------------------------------------------------- #
# remove_significant
# --------------------------------------------------------------------------- #
def test_remove_significant_removes_exactly_pixels_above_threshold():
    heat = np.array([[0.9, 0.5, 0.1],
                     [0.51, 0.2, 0.5],
                     [1.0, 0.0, 0.49]])
    images = _images(1, 3, 3)
    out, mask = remove_significant(images, heat[None], 0.5)
    # > 0.5 strictly: 0.9, 0.51, 1.0 -> 3 pixels; the two 0.5 stay.
    expected = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(mask[0], expected)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    for c in range(3):
        np.testing.assert_allclose(out[0, c][expected], MEAN[c])
        np.testing.assert_allclose(out[0, c][~expected], 0.8)
    # The input is not modified.
    assert (images == np.float32(0.8)).all()


def test_remove_significant_torch_in_torch_out_and_fill():
    images = torch.full((2, 3, 2, 2), 0.5)
    heat = np.array([[[0.95, 0.85], [0.1, 0.2]], [[0.0, 0.0], [0.0, 0.99]]])
    out, mask = remove_significant(images, heat, 0.8, fill="black")
    assert isinstance(out, torch.Tensor)
    assert mask.sum() == 3 and mask.dtype == bool
    assert out[0, :, 0, 0].tolist() == [0, 0, 0] and out[0, :, 1, 0].tolist() == [0.5] * 3
    assert out[1, :, 1, 1].tolist() == [0, 0, 0]
    _, none = remove_significant(images, heat, 1.0)
    assert not none.any()


def test_remove_significant_rejects_bad_input():
    images = _images(2, 3, 3)
    with pytest.raises(ValueError, match="heatmaps"):
        remove_significant(images, np.zeros((2, 3, 4)), 0.5)
    with pytest.raises(ValueError, match="images"):
        remove_significant(images[0], np.zeros((3, 3)), 0.5)
    with pytest.raises(ValueError, match="images"):
        remove_significant(images * 2, np.zeros((2, 3, 3)), 0.5)
    with pytest.raises(ValueError, match="fill"):
        remove_significant(images, np.zeros((2, 3, 3)), 0.5, fill=(0.1, 0.2))
    with pytest.raises(ValueError, match="threshold"):
        remove_significant(images, np.zeros((2, 3, 3)), float("nan"))


# --------------------------------------------------------------------------- #
# random pixels
# --------------------------------------------------------------------------- #
def test_remove_random_pixels_counts_seed_and_nesting():
    images = _images(3, 5, 6)
    counts = np.array([0, 7, 30])
    out, mask = remove_random_pixels(images, counts, seed=3)
    assert mask.sum(axis=(1, 2)).tolist() == [0, 7, 30]
    for c in range(3):
        np.testing.assert_allclose(out[:, c][mask], MEAN[c])
        np.testing.assert_allclose(out[:, c][~mask], 0.8)
    _, again = remove_random_pixels(images, counts, seed=3)
    np.testing.assert_array_equal(mask, again)
    _, other = remove_random_pixels(images, counts, seed=4)
    assert not np.array_equal(mask[1], other[1])
    # A larger count with the same seed removes a superset.
    _, more = remove_random_pixels(images, np.array([5, 12, 30]), seed=3)
    assert (more[1] >= mask[1]).all() and more[1].sum() == 12
    # Images get different random pixels.
    _, same_count = remove_random_pixels(_images(2, 5, 6), np.array([10, 10]), seed=0)
    assert not np.array_equal(same_count[0], same_count[1])


def test_remove_random_pixels_rejects_bad_counts():
    images = _images(2, 2, 2)
    with pytest.raises(ValueError, match="counts"):
        remove_random_pixels(images, np.array([1, 5]), seed=0)       # > H*W
    with pytest.raises(ValueError, match="counts"):
        remove_random_pixels(images, np.array([1]), seed=0)
    with pytest.raises(ValueError, match="counts"):
        remove_random_pixels(images, np.array([1.5, 1.0]), seed=0)
    with pytest.raises(ValueError, match="seed"):
        remove_random_pixels(images, np.array([1, 1]), seed=-1)


# --------------------------------------------------------------------------- #
# random superpixels
# --------------------------------------------------------------------------- #
def test_remove_random_superpixels_equal_areas_by_hand():
    # Four quadrants of 4 pixels: possible areas 0, 4, 8, 12, 16.
    images = _images(1, 4, 4)
    segments = _quadrants()
    expected = {0: 0, 1: 0, 2: 4, 4: 4, 5: 4, 6: 8, 7: 8, 16: 16}
    for count, area in expected.items():
        _, mask = remove_random_superpixels(images, segments, np.array([count]), seed=1)
        assert mask.sum() == area, count
        # Whole superpixels only.
        for label in range(4):
            inside = mask[0][segments == label]
            assert inside.all() or not inside.any()
    _, at_least = remove_random_superpixels(images, segments, np.array([5]), seed=1,
                                            match="at-least")
    assert at_least.sum() == 8


def test_remove_random_superpixels_last_superpixel_rule():
    # A 1x10 image with superpixels of 1 and 9 pixels; 3 pixels asked for.
    # closest: order (1, 9): prefixes 1 | 10 -> 1 is closer; order (9, 1): 0 | 9 -> 0.
    # at-least: order (1, 9) -> 10; order (9, 1) -> 9.
    images = _images(1, 1, 10)
    segments = np.array([[5] + [8] * 9])
    closest = {remove_random_superpixels(images, segments, np.array([3]), seed=s)[1].sum()
               for s in range(20)}
    at_least = {remove_random_superpixels(images, segments, np.array([3]), seed=s,
                                          match="at-least")[1].sum() for s in range(20)}
    assert closest == {0, 1}
    assert at_least == {9, 10}


def test_remove_random_superpixels_seeded_nested_and_filled():
    rng = np.random.default_rng(0)
    images = rng.random((2, 3, 6, 6)).astype(np.float32)
    segments = np.arange(36).reshape(6, 6) // 3          # 12 superpixels of 3 pixels
    counts = np.array([9, 15])
    out, mask = remove_random_superpixels(images, np.stack([segments] * 2), counts, seed=5)
    assert mask.sum(axis=(1, 2)).tolist() == [9, 15]
    _, again = remove_random_superpixels(images, segments, counts, seed=5)
    np.testing.assert_array_equal(mask, again)
    _, other = remove_random_superpixels(images, segments, counts, seed=6)
    assert not np.array_equal(mask, other)
    _, more = remove_random_superpixels(images, segments, np.array([21, 15]), seed=5)
    assert (more[0] >= mask[0]).all()
    for c in range(3):
        np.testing.assert_allclose(out[:, c][mask], MEAN[c])
        np.testing.assert_array_equal(out[:, c][~mask], images[:, c][~mask])
    with pytest.raises(ValueError, match="segments"):
        remove_random_superpixels(images, segments.astype(float), counts, seed=0)
    with pytest.raises(ValueError, match="match"):
        remove_random_superpixels(images, segments, counts, seed=0, match="nearest")


# --------------------------------------------------------------------------- #
# removed_fraction
# --------------------------------------------------------------------------- #
def test_removed_fraction_by_hand():
    heat = np.array([[[0.9, 0.5], [0.1, 0.7]],
                     [[0.0, 0.0], [0.0, 1.0]]])
    table = removed_fraction(heat, (0.8, 0.4))
    assert list(table.columns) == ["image", "threshold", "fraction"]
    assert table["image"].tolist() == [0, 1, 0, 1]
    assert table["threshold"].tolist() == [0.8, 0.8, 0.4, 0.4]
    np.testing.assert_allclose(table["fraction"], [0.25, 0.25, 0.75, 0.25])
    with pytest.raises(ValueError, match="thresholds"):
        removed_fraction(heat, (0.5, 0.5))


# --------------------------------------------------------------------------- #
# removal_experiment
# --------------------------------------------------------------------------- #
def _toy_identities():
    """16 images of 8x8: identity p (0..3) is a bright band in rows 2p, 2p+1.

    Background = the fill, so the toy embedding (channel 0 minus the fill, plus
    a constant 1) is (band, 1): genuine cosine 1, impostor 1/(1 + 16 * 0.515^2).
    Per identity: two frontal then two profile images.
    """
    n_id = 4
    images = np.empty((4 * n_id, 3, 8, 8), dtype=np.float32)
    images[:] = MEAN[None, :, None, None]
    heat = np.full((4 * n_id, 8, 8), 0.3)
    rows = []
    for p in range(n_id):
        for k, pose in enumerate(["frontal", "frontal", "profile", "profile"]):
            index = 4 * p + k
            images[index, 0, 2 * p:2 * p + 2, :] = 1.0
            heat[index, 2 * p:2 * p + 2, :] = 1.0
            rows.append({"identity": f"id{p}", "pose": pose})
    frame = pd.DataFrame(rows)
    segments = np.repeat(np.arange(4), 2)[:, None] * np.ones((1, 8), dtype=int)   # bands
    return images, heat, frame, segments


class BandEmbed:
    def __init__(self):
        self.sizes = []

    def __call__(self, batch):
        self.sizes.append(batch.shape[0])
        values = batch[:, 0].reshape(batch.shape[0], -1) - IMAGENET_MEAN[0]
        return {"gap": torch.cat([values, torch.ones(batch.shape[0], 1)], dim=1)}


def test_removal_experiment_toy_rows_and_eers():
    from faceexp.verify.protocol import verification_pairs_by_pose

    images, heat, frame, segments = _toy_identities()
    embed = BandEmbed()
    pairs = verification_pairs_by_pose(frame)
    table = removal_experiment(embed, images, heat, frame, pairs, thresholds=(0.5, 0.2),
                               segments=segments, batch_size=5, progress=False)
    assert list(table.columns) == ["threshold", "method", "pose_pair", "eer", "ci_low",
                                   "ci_high", "n_genuine", "n_impostor", "removed_fraction"]
    # Pose pairs with comparisons: F-F, P-P, F-P and overall (no three-quarter images).
    # 1 baseline + 2 thresholds x 3 methods, each with 4 pose pairs.
    assert len(table) == 7 * 4
    assert table["pose_pair"].tolist()[:4] == ["F-F", "P-P", "F-P", "overall"]
    # By hand (4 users, impostors against the 3 others): F-F and P-P: 1 genuine and
    # 3 impostor pairs per user; F-P: 2 x 2 genuine, 3 impostor; overall: C(4, 2) = 6
    # genuine, 3 impostor.
    assert table["n_genuine"].tolist()[:4] == [4, 4, 16, 24]
    assert table["n_impostor"].tolist()[:4] == [12, 12, 12, 12]
    # The 7 jobs x 16 images share batches: ceil(112 / 5) = 23 batches, only the last padded;
    # flip_average: each batch and its mirror go through one forward pass of 10 images
    assert set(embed.sizes) == {10} and len(embed.sizes) == 23

    def row(threshold, method, pose_pair="overall"):
        hit = table[(table.threshold == threshold) & (table.method == method)
                    & (table.pose_pair == pose_pair)]
        assert len(hit) == 1
        return hit.iloc[0]

    # No removal: genuine 1 > impostor 0.19 -> EER 0.
    assert row("none", "none")["eer"] == 0.0
    assert row("none", "none")["removed_fraction"] == 0.0
    # Threshold 0.5 removes the band (16 of 64 pixels): every embedding is (0, ..., 0, 1),
    # every score ties at 1 -> EER 0.5, in every pose pair.
    for pose_pair in ("overall", "F-F", "P-P", "F-P"):
        assert row(0.5, "significant", pose_pair)["eer"] == pytest.approx(0.5)
    for method in ("significant", "random-pixels", "random-superpixels"):
        assert row(0.5, method)["removed_fraction"] == pytest.approx(0.25)
        # Threshold 0.2 removes everything whatever the method.
        assert row(0.2, method)["removed_fraction"] == pytest.approx(1.0)
        assert row(0.2, method)["eer"] == pytest.approx(0.5)

    # Without pairs, the frame's pose pairs are built by the protocol: same table.
    again = removal_experiment(BandEmbed(), images, heat, frame, thresholds=(0.5, 0.2),
                               segments=segments, batch_size=5, progress=False)
    pd.testing.assert_frame_equal(again, table)


def test_removal_experiment_same_table_whatever_the_batch():
    """Batches shared across jobs (5, 7: not dividing 16) give the table of one batch per
    job (16) and of one padded batch per job (50)."""
    images, heat, frame, segments = _toy_identities()
    tables = [removal_experiment(BandEmbed(), images, heat, frame, thresholds=(0.5, 0.2),
                                 segments=segments, batch_size=b, progress=False)
              for b in (16, 5, 7, 50)]
    for table in tables[1:]:
        pd.testing.assert_frame_equal(table, tables[0])


def test_removal_experiment_without_pose_pairs_is_one_overall_group():
    images, heat, frame, segments = _toy_identities()
    pairs = pd.DataFrame({"i": [0, 0, 4], "j": [1, 4, 5], "label": [1, 0, 1]})
    table = removal_experiment(BandEmbed(), images, heat, pairs=pairs, thresholds=(0.5,),
                               methods=("significant",), batch_size=16, progress=False)
    assert table["pose_pair"].tolist() == ["overall", "overall"]
    assert table["n_genuine"].tolist() == [2, 2] and table["n_impostor"].tolist() == [1, 1]
    # Images 0, 1, 4, 5 each lose 16 of 64 pixels.
    assert table["removed_fraction"].tolist() == [0.0, 0.25]


def test_removal_experiment_validation():
    images, heat, frame, segments = _toy_identities()
    pairs = pd.DataFrame({"i": [0, 0], "j": [1, 4], "label": [1, 0]})
    with pytest.raises(ValueError, match="frame"):
        removal_experiment(BandEmbed(), images, heat, frame.iloc[:3], pairs, progress=False)
    with pytest.raises(ValueError, match="pairs"):
        removal_experiment(BandEmbed(), images, heat, frame, pairs.drop(columns="label"),
                           progress=False)
    with pytest.raises(ValueError, match="pairs"):
        removal_experiment(BandEmbed(), images, heat, progress=False)
    with pytest.raises(ValueError, match="methods"):
        removal_experiment(BandEmbed(), images, heat, frame, pairs, methods=("blur",),
                           progress=False)
    bad = pairs.copy()
    bad.loc[0, "j"] = 99
    with pytest.raises(ValueError, match="pairs"):
        removal_experiment(BandEmbed(), images, heat, frame, bad, progress=False)


def test_removal_experiment_intervals_and_genuine_similarity_by_hand():
    """Identity-bootstrap intervals of degenerate EERs are points (every resample of
    perfectly separated scores has EER 0, of all-tied scores 0.5), and the per-image
    genuine similarity is worked out by hand: clean, a partner's descriptor is the same
    (band, 1) vector (cosine 1); with the band removed an image's descriptor is
    (0, ..., 0, 1), whose cosine to the clean (0.515 x 16, 1) is 1 / sqrt(1 + 16 * 0.515^2)."""
    from faceexp.verify.protocol import verification_pairs_by_pose
    from faceexp.evaluate.removal import genuine_partners

    images, heat, frame, segments = _toy_identities()
    pairs = verification_pairs_by_pose(frame)
    table, sims = removal_experiment(BandEmbed(), images, heat, frame, pairs,
                                     thresholds=(0.5,), methods=("significant",),
                                     segments=segments, batch_size=16, n_boot=200,
                                     similarities=True, progress=False)
    none = table[table.method == "none"]
    assert (none["ci_low"] == 0).all() and (none["ci_high"] == 0).all()
    removed = table[table.method == "significant"]
    np.testing.assert_allclose(removed[["ci_low", "ci_high"]].to_numpy(), 0.5)
    assert list(sims.columns) == ["image", "threshold", "method", "similarity"]
    np.testing.assert_allclose(sims[sims.method == "none"]["similarity"], 1.0, atol=1e-9)
    band = 1.0 - IMAGENET_MEAN[0]
    np.testing.assert_allclose(sims[sims.method == "significant"]["similarity"],
                               1 / np.sqrt(1 + 16 * band ** 2), atol=1e-6)
    # each image's partners: the other three images of its identity
    partners = genuine_partners(pairs, len(frame))
    assert [p.tolist() for p in partners[:4]] == [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]
    # n_boot=0: no intervals
    plain = removal_experiment(BandEmbed(), images, heat, frame, pairs, thresholds=(0.5,),
                               methods=("significant",), segments=segments, n_boot=0,
                               progress=False)
    assert plain["ci_low"].isna().all()


def test_significant_vs_random_pairs_images_and_averages_seeds_by_hand():
    """Three images at one threshold: significant removal leaves similarities 0.2, 0.5,
    0.9; random removal (two seeds) 0.6/0.8, 0.5/0.7, 0.7/0.9 -> means 0.7, 0.6, 0.8.
    Differences random - significant: 0.5, 0.1, -0.1: mean 0.5/3, 2 of 3 greater. An
    image with no partner (NaN) is left out."""
    from faceexp.evaluate.removal import significant_vs_random
    from faceexp.core.bootstrap import paired_difference

    rows = []
    for image, sig, r0, r1 in ((0, 0.2, 0.6, 0.8), (1, 0.5, 0.5, 0.7), (2, 0.9, 0.7, 0.9),
                               (3, np.nan, np.nan, np.nan)):
        rows += [dict(seed=0, image=image, threshold=0.5, method="significant", similarity=sig),
                 dict(seed=0, image=image, threshold=0.5, method="random-superpixels",
                      similarity=r0),
                 dict(seed=1, image=image, threshold=0.5, method="random-superpixels",
                      similarity=r1),
                 dict(seed=0, image=image, threshold="none", method="none", similarity=1.0)]
    table = significant_vs_random(pd.DataFrame(rows), seed=3)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["baseline"] == "random-superpixels" and row["n"] == 3 and row["seeds"] == 2
    assert row["difference"] == pytest.approx(0.5 / 3)
    assert row["significant"] == pytest.approx(1.6 / 3) and row["random"] == pytest.approx(0.7)
    assert row["fraction_greater"] == pytest.approx(2 / 3)
    expected = paired_difference(np.array([0.7, 0.6, 0.8]), np.array([0.2, 0.5, 0.9]), seed=3)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        (expected["ci_low"].iloc[0], expected["ci_high"].iloc[0]))
    with pytest.raises(ValueError, match="per-image table"):
        significant_vs_random(pd.DataFrame({"image": [0]}))


# --------------------------------------------------------------------------- claim (e) as stated


def test_threshold_for_fraction_by_hand():
    from faceexp.evaluate.eer_rise import threshold_for_fraction

    maps = np.zeros((2, 10, 10))      # float64: 0.6 is not above the threshold 0.6
    maps[0].flat[:3] = 0.9          # image 0: 3 pixels at 0.9, 1 pixel at 0.6
    maps[0].flat[3] = 0.6
    maps[1].flat[:1] = 0.95         # image 1: 1 pixel at 0.95
    # mean removed fraction: > 0.5..0.59: (4 + 1) / 200 = 2.5%; > 0.6..0.89: 4 / 200 = 2%;
    # > 0.9..0.94: 1 / 200; 2% is met exactly from 0.60 to 0.89: the highest of them
    t, fraction = threshold_for_fraction(maps, 0.02)
    assert t == pytest.approx(0.89) and fraction == pytest.approx(0.02)
    t, fraction = threshold_for_fraction(maps, 0.025)
    assert t == pytest.approx(0.59) and fraction == pytest.approx(0.025)


def _coded_faces(n_ids=6, per=4, noise=0.25, seed=0):
    """Images whose top row carries the identity (a code plus noise); the rest is noise
    that the embedding below does not read. The heatmap marks the top row."""
    rng = np.random.default_rng(seed)
    codes = rng.random((n_ids, 3, 1, 8))
    images = rng.random((n_ids * per, 3, 8, 8)).astype(np.float32)
    ids = np.repeat(np.arange(n_ids), per)
    images[:, :, :1, :] = np.clip(codes[ids] + noise * rng.standard_normal((len(ids), 3, 1, 8)),
                                  0, 1)
    maps = np.zeros((len(ids), 8, 8), np.float32)
    maps[:, 0, :] = 1.0
    frame = pd.DataFrame({"identity": [f"p{k}" for k in ids]})
    return images, maps, frame


def _top_row(batch):
    x = torch.as_tensor(batch)
    return (x[:, :, 0, :] - 0.5).reshape(len(x), -1)


def test_eer_rise_significant_against_random():
    from faceexp.evaluate.eer_rise import eer_rise
    from faceexp.verify.metrics import equal_error_rate
    from faceexp.verify.protocol import verification_pairs

    images, maps, frame = _coded_faces()
    pairs = verification_pairs(frame, all_impostors=True)
    table = eer_rise(_top_row, images, maps, pairs, target=0.125, random_seeds=2, n_boot=200,
                     progress=False).set_index("method")
    sig = table.loc["significant"]
    assert sig["threshold"] >= 0.5 and sig["removed_fraction"] == pytest.approx(8 / 64)
    # the clean EER by a second route: numpy cosines of the flip-averaged top rows
    x = images[:, :, 0, :]
    d = ((x + x[:, :, ::-1]) / 2 - 0.5).reshape(len(x), -1)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    s = np.einsum("pd,pd->p", d[pairs["i"]], d[pairs["j"]])
    g = pairs["label"].to_numpy() == 1
    before = equal_error_rate(s[~g], s[g]).eer
    assert 0 < before < 0.5 and sig["eer_before"] == pytest.approx(before)
    # the marked row removed: every face embeds alike, every score ties, EER 1/2
    assert sig["eer_after"] == pytest.approx(0.5)
    assert sig["rise"] == pytest.approx(0.5 / before - 1)
    rnd = table.loc["random-pixels"]
    assert rnd["rise"] < sig["rise"]
    diff = table.loc["significant - random-pixels"]
    assert diff["rise"] == pytest.approx(sig["rise"] - rnd["rise"])
    assert diff["ci_low"] > 0 and sig["ci_low"] > 0
    assert sig["genuine"] == g.sum() and sig["identities"] == 6


def test_eer_rise_leaves_out_a_subject_without_pairs_and_says_so():
    import warnings
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd
    import pytest

    from faceexp.study.removal import eer_rise_analysis

    frame = pd.DataFrame({"identity": ["a", "b", "c"], "path": ["a1", "b1", "c1"]})
    hs = SimpleNamespace(frame=frame, images=np.zeros((3, 8, 8, 3), np.float32),
                         embedding=np.zeros((3, 8, 8)), segments=np.zeros((3, 8, 8), int))
    subject = SimpleNamespace(embedding_layer="gap", embedder=lambda layers: None)
    study = SimpleNamespace(subject=lambda name: subject)
    degraded = SimpleNamespace(label="degraded (ours)", strength=0.5, family="downscale", seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="no subject's explained images give genuine"):
            eer_rise_analysis(study, {"resnet50": hs}, degraded=degraded)
    said = " ".join(str(w.message) for w in caught)
    assert "resnet50: no person has two of its explained images" in said
    assert "resnet50: no genuine or no impostor pair among its 3 explained images on ORL pairs" in said
