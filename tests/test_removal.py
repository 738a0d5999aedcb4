"""Tests of faceexp.removal: tiny images with answers worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from faceexp.data import IMAGENET_MEAN
from faceexp.removal import (
    deletion_auc,
    deletion_curves,
    faithfulness_gap,
    removal_experiment,
    remove_random_pixels,
    remove_random_superpixels,
    remove_significant,
    removed_fraction,
    sampling_study,
    summarise_sampling_study,
)

MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)


def _images(n, h, w, value=0.8):
    return np.full((n, 3, h, w), value, dtype=np.float32)


def _quadrants(h=4, w=4):
    """(h, w) labels 0 1 / 2 3 of four equal quadrants."""
    rows = (np.arange(h) >= h // 2).astype(int)[:, None]
    cols = (np.arange(w) >= w // 2).astype(int)[None, :]
    return 2 * rows + cols


class RecordingEmbed:
    """Toy embed: channel 0 of the top-left 2x2 square; records the batch sizes."""

    def __init__(self):
        self.sizes = []

    def __call__(self, batch):
        self.sizes.append(batch.shape[0])
        return {"gap": batch[:, 0, :2, :2].reshape(batch.shape[0], 4)}


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
# deletion curves
# --------------------------------------------------------------------------- #
def _square_case():
    """4x4 image of ones, heatmap marking the top-left 2x2 square, black fill.

    The embedding is that square's channel 0: removing m of its 4 pixels
    leaves m zeros, so the cosine to (1, 1, 1, 1) is sqrt(4 - m) / 2 (and 0
    for the zero vector).
    """
    images = np.ones((1, 3, 4, 4), dtype=np.float32)
    heat = np.zeros((1, 4, 4))
    heat[0, :2, :2] = [[1.0, 0.9], [0.8, 0.7]]
    return images, heat


def test_deletion_curves_morf_falls_faster_than_lerf_by_hand():
    images, heat = _square_case()
    embed = RecordingEmbed()
    steps = [0, 1 / 16, 2 / 16, 3 / 16, 4 / 16, 8 / 16]
    curves = deletion_curves(embed, images, heat, steps=steps,
                             orders=("most-relevant-first", "least-relevant-first"),
                             fill=0.0, batch_size=4, progress=False)
    assert list(curves.columns) == ["image", "order", "fraction", "n_removed", "similarity"]
    morf = curves[curves.order == "most-relevant-first"]["similarity"].to_numpy()
    lerf = curves[curves.order == "least-relevant-first"]["similarity"].to_numpy()
    expected_morf = [1, math.sqrt(3) / 2, math.sqrt(2) / 2, 0.5, 0.0, 0.0]
    np.testing.assert_allclose(morf, expected_morf, atol=1e-6)
    np.testing.assert_allclose(lerf, np.ones(6), atol=1e-6)      # 12 outside pixels go first
    assert curves["n_removed"].tolist()[:6] == [0, 1, 2, 3, 4, 8]
    # Fixed batch size: every call saw 4 images (1 reference + 10 jobs -> 1 + 3 calls).
    assert embed.sizes == [4, 4, 4, 4]

    aucs = deletion_auc(curves)
    x = np.array(steps)
    by_hand = sum((expected_morf[k] + expected_morf[k + 1]) / 2 * (x[k + 1] - x[k])
                  for k in range(5))
    auc = dict(zip(aucs["order"], aucs["auc"]))
    assert auc["most-relevant-first"] == pytest.approx(by_hand, abs=1e-6)
    assert auc["least-relevant-first"] == pytest.approx(0.5, abs=1e-6)
    gap = faithfulness_gap(aucs)
    assert gap["gap"].iloc[0] == pytest.approx(0.5 - by_hand, abs=1e-6)


def test_deletion_curves_ties_are_broken_in_raster_order():
    images, _ = _square_case()
    flat = np.zeros((1, 4, 4))                       # every pixel tied
    curves = deletion_curves(RecordingEmbed(), images, flat, steps=[0, 0.125, 0.25],
                             orders=("most-relevant-first", "least-relevant-first"),
                             fill=0.0, batch_size=3, progress=False)
    # Raster order removes (0,0), (0,1) [square] then (0,2), (0,3) [outside]:
    # 2 and then still 2 square pixels gone, in both directions.
    np.testing.assert_allclose(curves["similarity"], [1, math.sqrt(2) / 2, math.sqrt(2) / 2] * 2,
                               atol=1e-6)


def test_deletion_curves_random_superpixels_remove_whole_quadrants():
    images, heat = _square_case()
    seen = set()
    for seed in range(12):
        curves = deletion_curves(RecordingEmbed(), images, heat, steps=[0, 0.25, 0.5],
                                 orders=("random-superpixels",), segments=_quadrants(),
                                 seed=seed, fill=0.0, batch_size=2, progress=False)
        sims = curves["similarity"].to_numpy()
        # One (two) whole quadrant(s) gone: either the square (similarity 0) or not (1).
        assert set(np.round(sims, 6)) <= {0.0, 1.0}
        assert sims[2] <= sims[1]
        seen.add(sims[1])
    assert seen == {0.0, 1.0}


def test_deletion_steps_validation_and_int_steps():
    images, heat = _square_case()
    curves = deletion_curves(RecordingEmbed(), images, heat, steps=4,
                             orders=("least-relevant-first",), fill=0.0, progress=False)
    np.testing.assert_allclose(curves["fraction"], [0, 0.25, 0.5, 0.75, 1.0])
    with pytest.raises(ValueError, match="steps"):
        deletion_curves(RecordingEmbed(), images, heat, steps=[0.5, 0.1], progress=False)
    with pytest.raises(ValueError, match="orders"):
        deletion_curves(RecordingEmbed(), images, heat, orders=("morf",), progress=False)
    with pytest.raises(ValueError, match="layer"):
        deletion_curves(RecordingEmbed(), images, heat, layer="block3", progress=False)


def test_deletion_auc_trapezoid_by_hand():
    curves = pd.DataFrame({"image": [0, 0, 0, 1, 1], "order": ["a"] * 5,
                           "fraction": [0.5, 0.0, 1.0, 0.0, 0.2],
                           "similarity": [0.5, 1.0, 0.0, 1.0, 0.6]})
    aucs = deletion_auc(curves)
    # image 0 sorted: (0, 1), (0.5, 0.5), (1, 0) -> 0.5*0.75 + 0.5*0.25 = 0.5
    # image 1: 0.2 * (1 + 0.6) / 2 = 0.16
    np.testing.assert_allclose(aucs["auc"], [0.5, 0.16])
    with pytest.raises(ValueError, match="curves"):
        deletion_auc(curves.drop(columns="similarity"))


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
    from faceexp.protocol import verification_pairs_by_pose

    images, heat, frame, segments = _toy_identities()
    embed = BandEmbed()
    pairs = verification_pairs_by_pose(frame)
    table = removal_experiment(embed, images, heat, frame, pairs, thresholds=(0.5, 0.2),
                               segments=segments, batch_size=5, progress=False)
    assert list(table.columns) == ["threshold", "method", "pose_pair", "eer", "n_genuine",
                                   "n_impostor", "removed_fraction"]
    # Pose pairs with comparisons: F-F, P-P, F-P and overall (no three-quarter images).
    # 1 baseline + 2 thresholds x 3 methods, each with 4 pose pairs.
    assert len(table) == 7 * 4
    assert table["pose_pair"].tolist()[:4] == ["F-F", "P-P", "F-P", "overall"]
    # By hand (4 users, impostors against the 3 others): F-F and P-P: 1 genuine and
    # 3 impostor pairs per user; F-P: 2 x 2 genuine, 3 impostor; overall: C(4, 2) = 6
    # genuine, 3 impostor.
    assert table["n_genuine"].tolist()[:4] == [4, 4, 16, 24]
    assert table["n_impostor"].tolist()[:4] == [12, 12, 12, 12]
    # Every embed call saw exactly batch_size images, twice (image and mirror) per batch;
    # the 7 jobs x 16 images share batches: ceil(112 / 5) = 23 batches, only the last padded.
    assert set(embed.sizes) == {5} and len(embed.sizes) == 23 * 2

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


# --------------------------------------------------------------------------- #
# sampling study
# --------------------------------------------------------------------------- #
def test_sampling_study_shape_and_consistency():
    rng = np.random.default_rng(0)
    # Blocks of 4x4 pixels of random colours: SLIC finds several superpixels.
    blocks = rng.random((2, 3, 3, 3))
    images = blocks.repeat(4, axis=1).repeat(4, axis=2).astype(np.float32)

    def embed(batch):
        return batch[:, :, 2:10, 2:10].reshape(batch.shape[0], -1)

    settings = ({"p_off": 0.3}, {"sampling": "matlab"})
    study = sampling_study(embed, images, settings=settings, seeds=(0, 1), n_samples=24,
                           n_segments=6, deletion_steps=[0, 0.2, 0.4], batch_size=8,
                           progress=False)
    assert len(study) == 2 * 2 * 2
    assert study["setting"].unique().tolist() == ["p_off=0.3", "sampling=matlab"]
    np.testing.assert_allclose(study["faithfulness"], study["auc_lerf"] - study["auc_morf"])
    np.testing.assert_allclose(study["faithfulness_random"],
                               study["auc_random"] - study["auc_morf"])
    # The random-superpixel baseline does not depend on the setting.
    by_setting = study.pivot_table(index=["image", "seed"], columns="setting",
                                   values="auc_random")
    np.testing.assert_allclose(by_setting.iloc[:, 0], by_setting.iloc[:, 1])
    assert study["stability"].between(-1, 1).all()
    # Stability is per (setting, image): the same on both seed rows.
    assert (study.groupby(["setting", "image"])["stability"].nunique() == 1).all()
    with pytest.raises(ValueError, match="settings"):
        sampling_study(embed, images, settings=({"seed": 3},), progress=False)


def test_sampling_study_uses_the_same_segments_for_one_image(monkeypatch):
    from faceexp import explainer as fexplain

    calls = []
    original = fexplain.Explainer.explain

    def spy(self, image, *, seed=None, segments=None, **kwargs):
        result = original(self, image, seed=seed, segments=segments, **kwargs)
        calls.append((float(image[0, 0, 0]), segments, result.segments.copy()))
        return result

    monkeypatch.setattr(fexplain.Explainer, "explain", spy)
    rng = np.random.default_rng(1)
    images = rng.random((2, 3, 3, 3)).repeat(4, axis=1).repeat(4, axis=2).astype(np.float32)
    sampling_study(lambda b: b.reshape(b.shape[0], -1), images,
                   settings=({"p_off": 0.5}, {"p_off": 0.7}), seeds=(0, 1, 2), n_samples=12,
                   n_segments=6, deletion_steps=[0, 0.5], batch_size=12, progress=False)
    assert len(calls) == 2 * 2 * 3
    for key in {c[0] for c in calls}:
        mine = [c for c in calls if c[0] == key]
        assert mine[0][1] is None                   # the first explanation runs SLIC
        for _, given, used in mine[1:]:
            np.testing.assert_array_equal(given, mine[0][2])
            np.testing.assert_array_equal(used, mine[0][2])


def test_summarise_sampling_study_by_hand():
    study = pd.DataFrame({
        "setting": ["a"] * 4 + ["b"] * 2,
        "image": [0, 0, 1, 1, 0, 0],
        "seed": [0, 1, 0, 1, 0, 1],
        "faithfulness": [0.1, 0.3, 0.2, 0.4, 0.0, 0.2],
        "faithfulness_random": [0.0] * 6,
        "auc_morf": [0.2] * 6,
        "stability": [0.5, 0.5, 0.9, 0.9, 0.7, 0.7],
        "stability_psnr": [20.0, 20.0, 30.0, 30.0, 25.0, 25.0],
    })
    summary = summarise_sampling_study(study)
    assert summary["setting"].tolist() == ["a", "b"]
    a = summary.iloc[0]
    assert a["n_images"] == 2 and a["n_seeds"] == 2
    assert a["faithfulness"] == pytest.approx(0.25)
    assert a["faithfulness_sd"] == pytest.approx(np.std([0.1, 0.3, 0.2, 0.4], ddof=1))
    # Stability over images (0.5, 0.9), not over rows.
    assert a["stability"] == pytest.approx(0.7)
    assert a["stability_sd"] == pytest.approx(np.std([0.5, 0.9], ddof=1))
    assert a["stability_psnr"] == pytest.approx(25.0)
    assert summary.iloc[1]["faithfulness"] == pytest.approx(0.1)
    assert math.isnan(summary.iloc[1]["stability_sd"])
    with pytest.raises(ValueError, match="study"):
        summarise_sampling_study(study.drop(columns="stability"))
