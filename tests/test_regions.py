"""faceexp.evaluate.regions: face regions from five landmarks, heatmap mass per region, tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from faceexp.evaluate.regions import (GEOMETRY, REGIONS, region_contrast, region_masks, region_ratios,
                             region_table)
from faceexp.core.bootstrap import mean_interval

SHAPE = (113, 113)
#: A frontal face in a 113x113 crop: eyes 36 px apart, nose tip 20 px below them, mouth 40.
FRONTAL = np.array([[38.0, 45.0], [74.0, 45.0], [56.0, 65.0], [42.0, 85.0], [70.0, 85.0]])


def _partition(masks) -> np.ndarray:
    return sum(masks[name].astype(int) for name in REGIONS)


def test_masks_partition_the_crop_and_sit_where_the_geometry_says():
    masks = region_masks(FRONTAL, SHAPE)
    assert list(masks) == list(REGIONS)
    assert all(mask.shape == SHAPE and mask.dtype == bool for mask in masks.values())
    np.testing.assert_array_equal(_partition(masks), 1)        # every pixel exactly once
    # landmarks (x, y) = pixel (row y, column x)
    assert masks["eyes"][45, 38] and masks["eyes"][45, 74]
    assert masks["nose"][65, 56]                                # the nose tip
    assert masks["mouth"][85, 42] and masks["mouth"][85, 56]
    assert masks["inter-eye"][45, 56]                           # between the eyes
    assert masks["forehead"][25, 56]                            # above the brows
    assert masks["cheeks"][75, 30] and masks["cheeks"][75, 82]  # beside the nose, under the eyes
    assert masks["outside"][0, 0] and masks["outside"][112, 112] and masks["outside"][56, 5]
    # the eye ellipse: semi-axis 0.3 x 36 = 10.8 px along the eye line
    assert masks["eyes"][45, 38 + 10] and not masks["eyes"][45, 38 + 11]
    # the face oval, centred on column 56: from 0.85 x 40 = 34 px above the eyes (row 11) to
    # 1.6 x 40 = 64 px below (row 109)
    column = masks["outside"][:, 56]
    assert not column[45 - 33] and column[45 - 35] and not column[45 + 63] and column[45 + 65]
    assert masks["forehead"][45 - 33, 56] and masks["cheeks"][45 + 63, 56]


def test_masks_follow_the_face_rotation_and_either_eye_order():
    masks = region_masks(FRONTAL, SHAPE)
    # the same face rotated by 90 degrees about the crop centre (x, y) -> (112 - y, x)
    rotated = np.stack([112 - FRONTAL[:, 1], FRONTAL[:, 0]], axis=1)
    turned = region_masks(rotated, SHAPE)
    for name in REGIONS:
        np.testing.assert_array_equal(turned[name], np.rot90(masks[name], k=-1))
    swapped = region_masks(FRONTAL[[1, 0, 2, 4, 3]], SHAPE)
    for name in REGIONS:
        # eye order swaps the u axis only; the geometry is symmetric about the nose axis
        np.testing.assert_array_equal(swapped[name], masks[name])


def test_masks_for_a_stack_and_geometry_overrides():
    shifted = FRONTAL + [3.0, -2.0]
    stack = region_masks(np.stack([FRONTAL, shifted]), SHAPE)
    assert stack["nose"].shape == (2,) + SHAPE
    np.testing.assert_array_equal(stack["nose"][1], region_masks(shifted, SHAPE)["nose"])
    wider = region_masks(FRONTAL, SHAPE, geometry={"eye_half_width": 0.4})
    assert wider["eyes"].sum() > region_masks(FRONTAL, SHAPE)["eyes"].sum()
    np.testing.assert_array_equal(_partition(wider), 1)
    assert set(GEOMETRY) >= {"eye_half_width", "forehead", "chin"}
    with pytest.raises(ValueError, match="geometry: unknown key"):
        region_masks(FRONTAL, SHAPE, geometry={"ears": 1.0})
    with pytest.raises(ValueError, match=r"landmarks must have shape \(5, 2\) or \(N, 5, 2\)"):
        region_masks(FRONTAL[:3], SHAPE)
    with pytest.raises(ValueError, match="the two eyes coincide"):
        region_masks(np.array([FRONTAL[0], FRONTAL[0], *FRONTAL[2:]]), SHAPE)
    upside = FRONTAL.copy()
    upside[2, 1] = 30.0                        # nose above the eyes, mouth below
    with pytest.raises(ValueError, match="must lie below the eye line"):
        region_masks(upside, SHAPE)


def test_all_mass_on_one_region_and_a_uniform_map():
    masks = region_masks(FRONTAL, SHAPE)
    area = {name: masks[name].mean() for name in REGIONS}
    on_nose = masks["nose"].astype(float) * 0.7
    uniform = np.full(SHAPE, 0.3)
    ratios = region_ratios(np.stack([on_nose, uniform]), masks)
    assert list(ratios.columns) == list(REGIONS)
    assert ratios.loc[0, "nose"] == pytest.approx(1 / area["nose"])
    assert all(ratios.loc[0, name] == 0 for name in REGIONS if name != "nose")
    assert ratios.loc[1].tolist() == pytest.approx([1.0] * len(REGIONS))
    # ratios weighted by the area shares sum to 1 (masks partition the crop)
    weighted = sum(ratios.loc[0, name] * area[name] for name in REGIONS)
    assert weighted == pytest.approx(1.0)


def test_ratios_by_hand_with_per_image_masks_and_empty_maps():
    # 2x2 maps: region "top" is the first row, "bottom" the second (area share 1/2 each)
    top = np.array([[True, True], [False, False]])
    masks = {"top": np.stack([top, top, top]), "bottom": np.stack([~top, ~top, ~top])}
    maps = np.array([[[1.0, 1.0], [1.0, 0.0]],    # top 2/3 of the mass, bottom 1/3
                     [[0.0, 0.0], [0.5, 0.5]],    # all in the bottom
                     np.zeros((2, 2))])           # no information
    frame = pd.DataFrame({"layer": ["early", "late", "late"]})
    ratios = region_ratios(maps, masks, frame)
    assert ratios.loc[0, ["top", "bottom"]].tolist() == pytest.approx([4 / 3, 2 / 3])
    assert ratios.loc[1, ["top", "bottom"]].tolist() == pytest.approx([0.0, 2.0])
    assert ratios.loc[2, ["top", "bottom"]].isna().all() and ratios.attrs["n_empty"] == 1
    assert list(ratios["layer"]) == ["early", "late", "late"]
    with pytest.raises(ValueError, match="non-negative"):
        region_ratios(-maps, masks)
    with pytest.raises(ValueError, match=r"masks\['top'\] has shape"):
        region_ratios(maps, {"top": top[:1]})


def test_region_table_and_contrast():
    top = np.array([[True, True], [False, False]])
    masks = {"top": top, "bottom": ~top}
    maps = np.array([[[1.0, 1.0], [1.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]],
                     [[0.0, 0.0], [0.5, 0.5]], np.zeros((2, 2))])
    frame = pd.DataFrame({"layer": ["early", "early", "late", "late"]})
    ratios = region_ratios(maps, masks, frame)
    table = region_table(ratios, by="layer", n_boot=100, seed=0)
    assert list(table.columns) == ["layer", "region", "ratio", "ci_low", "ci_high", "n", "n_excluded"]
    early_top = table[(table.layer == "early") & (table.region == "top")].iloc[0]
    # two identical images: the interval collapses to their ratio 4/3
    assert early_top[["ratio", "ci_low", "ci_high"]].tolist() == pytest.approx([4 / 3] * 3)
    late = table[table.layer == "late"].set_index("region")
    assert late.loc["bottom", "ratio"] == pytest.approx(2.0)
    assert late.loc["bottom", "n"] == 1 and late.loc["bottom", "n_excluded"] == 1
    overall = region_table(ratios, n_boot=100, seed=0).set_index("region")
    assert overall.loc["top", "ratio"] == pytest.approx((4 / 3 + 4 / 3 + 0) / 3)
    contrast = region_contrast(ratios, "top", "bottom")
    assert contrast.iloc[:3].tolist() == pytest.approx([2 / 3, 2 / 3, -2.0])
    assert np.isnan(contrast.iloc[3])
    summary = mean_interval(contrast.to_numpy(), n_boot=100).iloc[0]
    assert summary["mean"] == pytest.approx((2 / 3 + 2 / 3 - 2) / 3) and summary["n_excluded"] == 1
    with pytest.raises(ValueError, match="share the regions"):
        region_contrast(ratios, ["top"], ["top", "bottom"])
    with pytest.raises(ValueError, match="by names columns"):
        region_table(ratios, by="recogniser")
