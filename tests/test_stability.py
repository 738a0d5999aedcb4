"""Tests of faceexp.evaluate.stability: the sampling study on tiny images and a summary by hand."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from faceexp.evaluate.stability import sampling_study, summarise_sampling_study


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
    from faceexp.explain import explainer as fexplain

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


def test_stability_of_maps_by_hand():
    from faceexp.evaluate.stability import _stability

    a = np.array([[0.0, 0.5], [1.0, 0.5]])
    # a, 1 - a (correlation -1; a - (1 - a) = 2a - 1 = -1, 0, 1, 0: MSE 0.5) and a again
    # (correlation 1, MSE 0): pairs (0, 1), (0, 2), (1, 2).
    pearson, psnr = _stability(np.stack([a, 1 - a, a]))
    assert pearson == pytest.approx((-1 + 1 - 1) / 3)
    assert psnr == np.inf
    pearson, psnr = _stability(np.stack([a, 1 - a]))
    assert pearson == pytest.approx(-1.0) and psnr == pytest.approx(10 * np.log10(2.0))
    # A constant map has no correlation; one map has no pair.
    assert math.isnan(_stability(np.stack([a, np.full((2, 2), 0.5)]))[0])
    assert all(math.isnan(v) for v in _stability(a[None]))
