"""Tests of faceexp.evaluate.faithfulness: deletion curves on tiny images, worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from faceexp.evaluate.faithfulness import deletion_auc, deletion_curves, faithfulness_gap


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


def test_insertion_curves_restore_pixels_in_order_by_hand():
    """Insertion on the square case: with m of the square's 4 pixels restored (the rest
    black) the embedding has m ones, so the cosine to (1, 1, 1, 1) is sqrt(m) / 2, and 0
    for none; LeRF restores the 12 outside pixels first, so it stays at 0 until the end."""
    images, heat = _square_case()
    steps = [0, 1 / 16, 2 / 16, 4 / 16, 1]
    curves = deletion_curves(RecordingEmbed(), images, heat, steps=steps, mode="insertion",
                             orders=("most-relevant-first", "least-relevant-first"),
                             fill=0.0, batch_size=4, progress=False)
    morf = curves[curves.order == "most-relevant-first"]["similarity"].to_numpy()
    lerf = curves[curves.order == "least-relevant-first"]["similarity"].to_numpy()
    np.testing.assert_allclose(morf, [0, 0.5, math.sqrt(2) / 2, 1, 1], atol=1e-6)
    np.testing.assert_allclose(lerf, [0, 0, 0, 0, 1], atol=1e-6)
    assert curves["n_removed"].tolist()[:5] == [16, 15, 14, 12, 0]
    # default insertion steps run from nothing restored to everything
    default = deletion_curves(RecordingEmbed(), images, heat, mode="insertion",
                              orders=("most-relevant-first",), fill=0.0, progress=False)
    assert default["fraction"].tolist() == pytest.approx([0.1 * k for k in range(11)])


def test_curves_against_a_reference_embedding_by_hand():
    """Scored against r = (1, 0, 0, 0) (a 'partner'): the clean image's cosine is
    1 / 2; deleting the top pixel (the one r weighs) leaves (0, 1, 1, 1): cosine 0."""
    images, heat = _square_case()
    curves = deletion_curves(RecordingEmbed(), images, heat, steps=[0, 1 / 16],
                             orders=("most-relevant-first",), fill=0.0, batch_size=4,
                             references=np.array([[1.0, 0, 0, 0]]), progress=False)
    np.testing.assert_allclose(curves["similarity"], [0.5, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="one embedding per image"):
        deletion_curves(RecordingEmbed(), images, heat, references=np.ones((2, 4)),
                        progress=False)
    with pytest.raises(ValueError, match="mode must be one of"):
        deletion_curves(RecordingEmbed(), images, heat, mode="erase", progress=False)


def test_deletion_auc_keeps_modes_and_references_apart():
    images, heat = _square_case()
    parts = []
    for mode in ("deletion", "insertion"):
        c = deletion_curves(RecordingEmbed(), images, heat, steps=[0, 0.5, 1], mode=mode,
                            orders=("most-relevant-first",), fill=0.0, progress=False)
        parts.append(c.assign(mode=mode, reference="self"))
    auc = deletion_auc(pd.concat(parts, ignore_index=True))
    assert list(auc.columns) == ["mode", "reference", "image", "order", "auc"]
    # deletion: 1 at 0, 0 from half on -> 0.25; insertion: 0, 1, 1 -> 0.75
    np.testing.assert_allclose(auc.set_index("mode")["auc"], [0.25, 0.75], atol=1e-6)


def test_reference_images_are_embedded_like_the_probe():
    """References given as images give the curves of their embeddings."""
    images, heat = _square_case()
    partner = np.zeros_like(images)
    partner[0, 0, 0, 0] = 1.0                      # embedding (1, 0, 0, 0)
    by_image = deletion_curves(RecordingEmbed(), images, heat, steps=[0, 1 / 16],
                               orders=("most-relevant-first",), fill=0.0, batch_size=4,
                               references=partner, progress=False)
    np.testing.assert_allclose(by_image["similarity"], [0.5, 0.0], atol=1e-6)
