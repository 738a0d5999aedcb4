"""The artifacts cache: keys change with inputs, explanations are stored per image and reused."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from faceexp import artifacts as fart
from faceexp import data as fdata
from faceexp import models as fmodels


def test_make_key_is_stable_and_sensitive():
    assert fart.make_key(a=1, b=[1, 2]) == fart.make_key(b=[1, 2], a=1)
    assert fart.make_key(a=1) != fart.make_key(a=2)
    assert fart.source_hash("data") != fart.source_hash("data", "models")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "mb2.pt"
    model = fmodels.build_model("mobilenetv2", 3, weights=None, seed=0)
    fmodels.save_checkpoint(path, model, arch="mobilenetv2", num_classes=3)
    return path


def test_explain_images_caches_per_image(checkpoint, tmp_path, monkeypatch):
    frame = fdata.load_orl().head(2)
    options = dict(n_samples=12, n_segments=10, batch_size=12)
    first = fart.explain_images(checkpoint, frame, tmp_path, layers=["gap"], progress=False,
                                **options)
    assert first.heatmaps.shape == (2, 1, 113, 113)
    assert first.images.shape == (2, 113, 113, 3)
    assert first.heatmaps.min() >= 0 and first.heatmaps.max() <= 1
    assert len(list((tmp_path / "explain").glob("*/*.npz"))) == 2

    # A second call reads from disk: building an embedder would be an error now.
    def refuse(*args, **kwargs):
        raise AssertionError("recomputed instead of reading the cache")

    monkeypatch.setattr(fmodels, "load_embedder", refuse)
    again = fart.explain_images(checkpoint, frame, tmp_path, layers=["gap"], progress=False,
                                **options)
    np.testing.assert_array_equal(first.heatmaps, again.heatmaps)
    # Other options are another key: a recomputation (which the patched loader refuses).
    with pytest.raises(AssertionError, match="recomputed"):
        fart.explain_images(checkpoint, frame, tmp_path, layers=["gap"], progress=False,
                            **dict(options, n_samples=13))


def test_explain_images_skips_a_bad_image_and_keeps_the_rest(checkpoint, tmp_path, monkeypatch):
    frame = fdata.load_orl().head(3)
    import faceexp.explainer as fexplain_module

    real = fexplain_module.Explainer.explain
    calls = {"n": 0}

    def flaky(self, image, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ValueError("embed returned NaN for layer 'gap'")
        return real(self, image, **kw)

    monkeypatch.setattr(fexplain_module.Explainer, "explain", flaky)
    with pytest.warns(UserWarning, match="could not explain"):
        result = fart.explain_images(checkpoint, frame, tmp_path, layers=["gap"], progress=False,
                                     n_samples=12, n_segments=10, batch_size=12)
    assert len(result.frame) == 2 and len(result.failed) == 1
    assert result.failed["path"].iloc[0] == frame["path"].iloc[1]
