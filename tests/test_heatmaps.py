"""Tests of faceexp.evaluate.heatmaps: values worked out by hand or by scikit-image."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skimage.metrics import peak_signal_noise_ratio as sk_psnr

from faceexp.evaluate.heatmaps import (
    average_faces,
    average_heatmaps,
    averages_by_key,
    heatmap_psnr,
    overlay,
    psnr_between,
    psnr_examples,
    psnr_histograms,
    psnr_pairs,
)


# --------------------------------------------------------------------------- #
# PSNR
# --------------------------------------------------------------------------- #
def test_psnr_constant_offset_is_20_db():
    # MSE = 0.1**2 = 0.01 -> 10 log10(1 / 0.01) = 20 dB.
    a = np.full((5, 7), 0.3)
    assert heatmap_psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-9)
    assert heatmap_psnr(a + 0.1, a) == pytest.approx(20.0, abs=1e-9)


def test_psnr_by_hand_one_pixel():
    # 4 pixels, one differs by 0.5: MSE = 0.25 / 4 = 1/16 -> 10 log10(16) dB.
    a = np.zeros((2, 2))
    b = a.copy()
    b[1, 0] = 0.5
    assert heatmap_psnr(a, b) == pytest.approx(10 * np.log10(16.0), abs=1e-12)
    # data_range 2 -> 10 log10(4 * 16)
    assert heatmap_psnr(a, b, data_range=2.0) == pytest.approx(10 * np.log10(64.0))


def test_psnr_identical_is_inf():
    a = np.random.default_rng(0).random((4, 4))
    assert heatmap_psnr(a, a.copy()) == float("inf")


def test_psnr_matches_skimage():
    rng = np.random.default_rng(1)
    for _ in range(5):
        a = rng.random((13, 11)).astype(np.float32)
        b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
        expected = sk_psnr(a, b, data_range=1.0)
        assert heatmap_psnr(a, b) == pytest.approx(expected, rel=1e-6)


def test_psnr_pairs_matches_single_and_skimage():
    rng = np.random.default_rng(2)
    a = rng.random((6, 9, 8))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    b[3] = a[3]
    got = psnr_pairs(a, b)
    assert got.shape == (6,)
    assert got[3] == np.inf
    for k in (0, 1, 2, 4, 5):
        assert got[k] == pytest.approx(sk_psnr(a[k], b[k], data_range=1.0), rel=1e-9)


def test_psnr_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        heatmap_psnr(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="data_range"):
        heatmap_psnr(np.zeros((2, 2)), np.zeros((2, 2)), data_range=0)
    with pytest.raises(ValueError, match="NaN"):
        heatmap_psnr(np.zeros((2, 2)), np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        psnr_pairs(np.zeros(3), np.zeros(3))


# --------------------------------------------------------------------------- #
# Averages
# --------------------------------------------------------------------------- #
def _toy_maps():
    # Three 2x3 maps; map k has a single 1 at column k of row 0.
    maps = np.zeros((3, 2, 3))
    for k in range(3):
        maps[k, 0, k] = 1.0
    return maps


def test_average_heatmaps_by_group_by_hand():
    maps = _toy_maps()
    groups = pd.DataFrame({"pose": ["frontal", "profile", "frontal"], "net": ["a", "a", "b"]},
                          index=[10, 11, 12])  # index ignored
    out = average_heatmaps(maps, groups, by="pose")
    assert list(out["pose"]) == ["frontal", "profile"]
    assert list(out["count"]) == [2, 1]
    np.testing.assert_allclose(out.loc[0, "heatmap"], [[0.5, 0, 0.5], [0, 0, 0]])
    np.testing.assert_allclose(out.loc[1, "heatmap"], [[0, 1, 0], [0, 0, 0]])
    both = average_heatmaps(maps, groups, by=["pose", "net"])
    assert len(both) == 3 and list(both.columns) == ["pose", "net", "count", "heatmap"]
    everything = average_heatmaps(maps)
    assert list(everything["count"]) == [3]
    np.testing.assert_allclose(everything.loc[0, "heatmap"], [[1 / 3] * 3, [0] * 3])


def test_averages_by_key():
    maps = _toy_maps()
    groups = {"pose": ["frontal", "profile", "frontal"], "net": ["a", "a", "b"]}
    both = averages_by_key(average_heatmaps(maps, groups, by=["pose", "net"]))
    assert sorted(both) == [("frontal", "a"), ("frontal", "b"), ("profile", "a")]
    np.testing.assert_allclose(both[("frontal", "b")], maps[2])
    one = averages_by_key(average_heatmaps(maps, groups, by="pose"))
    np.testing.assert_allclose(one["profile"], maps[1])
    with pytest.raises(ValueError, match="uniquely"):
        averages_by_key(average_heatmaps(maps, groups, by=["pose", "net"]), by="pose")


def test_average_heatmaps_mirrors_right_looking_faces():
    maps = _toy_maps()
    # Map 0 looks right: its 1 at column 0 moves to column 2 before averaging.
    out = average_heatmaps(maps, {"pose": ["p", "p", "p"]}, by="pose",
                           looks=["right", "left", None])
    np.testing.assert_allclose(out.loc[0, "heatmap"], [[0, 1 / 3, 2 / 3], [0, 0, 0]])
    # looks given as a column name; the input is not modified.
    groups = pd.DataFrame({"looks": ["unknown", "right", "left"]})
    out = average_heatmaps(maps, groups, looks="looks")
    np.testing.assert_allclose(out.loc[0, "heatmap"], [[1 / 3, 1 / 3, 1 / 3], [0, 0, 0]])
    np.testing.assert_array_equal(maps, _toy_maps())


def test_average_heatmaps_missing_labels_form_a_group():
    maps = _toy_maps()
    out = average_heatmaps(maps, {"pose": ["a", None, np.nan]}, by="pose")
    assert list(out["count"]) == [1, 2]
    np.testing.assert_allclose(out.loc[1, "heatmap"], [[0, 0.5, 0.5], [0, 0, 0]])


def test_average_heatmaps_bad_input():
    maps = _toy_maps()
    with pytest.raises(ValueError, match="absent from groups"):
        average_heatmaps(maps, {"pose": ["a"] * 3}, by="network")
    with pytest.raises(ValueError, match="2 rows for 3 maps"):
        average_heatmaps(maps, {"pose": ["a", "b"]}, by="pose")
    with pytest.raises(ValueError, match="looks"):
        average_heatmaps(maps, looks=["left", "up", "left"])
    with pytest.raises(ValueError, match="looks has 2"):
        average_heatmaps(maps, looks=["left", "left"])
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        average_heatmaps(maps[0])


def test_average_faces_layouts_and_mirroring():
    rng = np.random.default_rng(3)
    hwc = rng.random((4, 5, 6, 3))
    looks = ["right", "left", "left", "right"]
    groups = {"g": ["x", "x", "y", "y"]}
    out = average_faces(hwc, groups, by="g", looks=looks)
    expected_x = (hwc[0, :, ::-1] + hwc[1]) / 2
    expected_y = (hwc[2] + hwc[3, :, ::-1]) / 2
    np.testing.assert_allclose(out.loc[0, "image"], expected_x, rtol=1e-6)
    np.testing.assert_allclose(out.loc[1, "image"], expected_y, rtol=1e-6)
    # Channel-first input gives the same (H, W, 3) result.
    chw = np.moveaxis(hwc, -1, 1)
    out2 = average_faces(chw, groups, by="g", looks=looks)
    assert out2.loc[0, "image"].shape == (5, 6, 3)
    np.testing.assert_allclose(out2.loc[0, "image"], expected_x, rtol=1e-6)
    # Grey images.
    grey = hwc[..., 0]
    out3 = average_faces(grey, looks=looks)
    np.testing.assert_allclose(
        out3.loc[0, "image"],
        (grey[0, :, ::-1] + grey[1] + grey[2] + grey[3, :, ::-1]) / 4, rtol=1e-6)


def test_average_faces_ambiguous_layout():
    images = np.zeros((2, 3, 4, 3))
    with pytest.raises(ValueError, match="channel_axis"):
        average_faces(images)
    out = average_faces(images, channel_axis=-1)
    assert out.loc[0, "image"].shape == (3, 4, 3)
    assert average_faces(images, channel_axis=1).loc[0, "image"].shape == (4, 3, 3)


# --------------------------------------------------------------------------- #
# PSNR between systems, histograms, examples
# --------------------------------------------------------------------------- #
def test_psnr_between_keeps_frame_columns():
    a = np.full((3, 4, 4), 0.5)
    b = a.copy()
    b[0] += 0.1          # 20 dB
    b[1] += 0.01         # 40 dB
    frame = pd.DataFrame({"pose": ["frontal", "profile", "frontal"]}, index=[7, 8, 9])
    out = psnr_between(a, b, frame)
    assert list(out.index) == [7, 8, 9]
    np.testing.assert_allclose(out["psnr"].to_numpy()[:2], [20.0, 40.0])
    assert out["psnr"].iloc[2] == np.inf
    assert "psnr" not in frame.columns
    with pytest.raises(ValueError, match="2 rows for 3"):
        psnr_between(a, b, frame.iloc[:2])


def _toy_psnr_table():
    return pd.DataFrame({
        "pose": ["F", "F", "F", "F", "P", "P", "P"],
        "psnr": [10.0, 20.0, 14.0, 32.0, 15.0, 25.0, 23.0],
        "name": list("abcdefg"),
    }, index=list("ABCDEFG"))


def test_psnr_histograms_by_hand():
    df = _toy_psnr_table()
    out = psnr_histograms(df, by="pose", bins=[10, 20, 30, 40])
    assert list(out.columns) == ["pose", "bin_left", "bin_right", "count"]
    f = out[out["pose"] == "F"]["count"].tolist()
    p = out[out["pose"] == "P"]["count"].tolist()
    assert f == [2, 1, 1]          # 10, 14 | 20 | 32
    assert p == [1, 2, 0]          # 15 | 25, 23
    # Default bins: 2 equal bins over the overall [10, 32] -> edge 21.
    out = psnr_histograms(df, by="pose", bins=2)
    np.testing.assert_allclose(out["bin_left"].unique(), [10.0, 21.0])
    assert out[out["pose"] == "F"]["count"].tolist() == [3, 1]
    assert out[out["pose"] == "P"]["count"].tolist() == [1, 2]
    # Infinite PSNR lands in the last bin; no grouping gives one histogram.
    df.loc["A", "psnr"] = np.inf
    out = psnr_histograms(df, by=None, bins=[10, 20, 40])
    assert out["count"].tolist() == [2, 5]


def test_psnr_histograms_bad_input():
    df = _toy_psnr_table()
    with pytest.raises(ValueError, match="no column 'score'"):
        psnr_histograms(df, column="score")
    with pytest.raises(ValueError, match="increasing"):
        psnr_histograms(df, bins=[3, 2, 1])
    with pytest.raises(ValueError, match="absent"):
        psnr_histograms(df, by="network")


def test_psnr_examples_selects_max_average_min():
    df = _toy_psnr_table()
    out = psnr_examples(df, by="pose")
    assert out["example"].tolist() == ["max", "average", "min"] * 2
    # F: mean 19 -> closest is 20 (b); max 32 (d), min 10 (a).
    # P: mean 21 -> closest is 23 (g); max 25 (f), min 15 (e).
    assert out["name"].tolist() == ["d", "b", "a", "f", "g", "e"]
    assert list(out.index) == ["D", "B", "A", "F", "G", "E"]
    assert out["position"].tolist() == [3, 1, 0, 5, 6, 4]
    np.testing.assert_allclose(out["group_mean"].to_numpy(), [19.0] * 3 + [21.0] * 3)
    one = psnr_examples(df.iloc[:1], by=None)
    assert one["name"].tolist() == ["a", "a", "a"]


# --------------------------------------------------------------------------- #
# Overlay
# --------------------------------------------------------------------------- #
def test_overlay_known_colours():
    image = np.full((2, 2, 3), 0.2)
    heat = np.array([[0.0, 1.0], [1.0, 0.0]])
    # gray(0) = black, gray(1) = white, exactly.
    out = overlay(image, heat, alpha=0.25, cmap="gray")
    assert out.dtype == np.float32 and out.shape == (2, 2, 3)
    np.testing.assert_allclose(out[0, 0], [0.15] * 3, atol=1e-6)
    np.testing.assert_allclose(out[0, 1], [0.4] * 3, atol=1e-6)
    # jet(0) = (0, 0, 0.5), jet(1) = (0.5, 0, 0).
    out = overlay(image, heat, alpha=0.5)
    np.testing.assert_allclose(out[0, 0], [0.1, 0.1, 0.35], atol=1e-6)
    np.testing.assert_allclose(out[0, 1], [0.35, 0.1, 0.1], atol=1e-6)
    # alpha 0 returns the image; grey images are repeated to RGB.
    np.testing.assert_allclose(overlay(image[..., 0], heat, alpha=0.0), image, atol=1e-6)


def test_overlay_bad_input():
    image = np.zeros((2, 2, 3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        overlay(image, np.full((2, 2), 2.0))
    with pytest.raises(ValueError, match="shape"):
        overlay(image, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, np.zeros((2, 2)), alpha=1.5)
    with pytest.raises(ValueError, match="colormap"):
        overlay(image, np.zeros((2, 2)), cmap="no-such-map")
