"""faceexp.core.bootstrap, faceexp.verify.intervals, faceexp.evaluate.seed_floor: identity bootstrap, fold-chosen fusion, paired and noise-floor comparisons."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from faceexp.verify.metrics import eer_by_group, equal_error_rate
from faceexp.evaluate.seed_floor import FLOOR_READINGS, noise_floor, relative_to_floor
from faceexp.verify.intervals import bootstrap_eer, eer_interval, kfold_fusion
from faceexp.core.bootstrap import mean_interval, paired_difference


def _toy_pairs(seed=1, n_people=6):
    """Every genuine pair within a person and every impostor pair between two people, once."""
    rng = np.random.default_rng(seed)
    rows = []
    people = [f"id{u}" for u in range(n_people)]
    for u, person in enumerate(people):
        for score in rng.normal(2 + 0.3 * u, 1, 4):
            rows.append((person, person, 1, score))
        for other in people[u + 1:]:
            for score in rng.normal(0, 1, 3):
                rows.append((person, other, 0, score))
    return pd.DataFrame(rows, columns=["identity_i", "identity_j", "label", "score"])


# --------------------------------------------------------------------------- bootstrap_eer


def test_identity_bootstrap_equals_scipy_bootstrap_over_identities():
    pairs = _toy_pairs()
    scores, labels = pairs["score"].to_numpy(), pairs["label"].to_numpy()
    low, high, eers = bootstrap_eer(scores, labels, pairs["identity_i"], pairs["identity_j"],
                                    n_boot=200, seed=np.random.default_rng(5))
    names = np.unique(np.concatenate([pairs["identity_i"], pairs["identity_j"]]))
    code = {name: k for k, name in enumerate(names)}
    ci = pairs["identity_i"].map(code).to_numpy()
    cj = pairs["identity_j"].map(code).to_numpy()

    def statistic(drawn):
        counts = np.bincount(drawn.astype(int), minlength=len(names))
        weight = np.where(ci == cj, counts[ci], counts[ci] * counts[cj])
        return equal_error_rate(np.repeat(scores[labels == 0], weight[labels == 0]),
                                np.repeat(scores[labels == 1], weight[labels == 1])).eer

    reference = scipy.stats.bootstrap((np.arange(len(names)),), statistic, n_resamples=200,
                                      method="percentile", vectorized=False,
                                      rng=np.random.default_rng(5))
    assert (low, high) == pytest.approx(tuple(reference.confidence_interval), abs=1e-12)
    point = equal_error_rate(scores[labels == 0], scores[labels == 1]).eer
    assert eers.shape == (200,) and low < point < high


def test_identity_bootstrap_equals_building_each_resampled_data_set():
    """Second implementation: draw people, then list the comparisons of the drawn copies."""
    pairs = _toy_pairs(seed=3, n_people=5)
    _, _, eers = bootstrap_eer(pairs["score"], pairs["label"], pairs["identity_i"],
                               pairs["identity_j"], n_boot=20, seed=7)
    names = np.unique(pairs[["identity_i", "identity_j"]].to_numpy().ravel())
    draws = np.random.default_rng(7).integers(0, len(names), size=(20, len(names)))
    for b, draw in enumerate(draws):
        copies = [names[k] for k in draw]
        genuine, impostor = [], []
        for x, person in enumerate(copies):
            mine = pairs[(pairs.identity_i == person) & (pairs.identity_j == person)]
            genuine += list(mine["score"])
            for other in copies[x + 1:]:
                if other != person:
                    between = pairs[((pairs.identity_i == person) & (pairs.identity_j == other))
                                    | ((pairs.identity_i == other) & (pairs.identity_j == person))]
                    impostor += list(between["score"])
        expected = equal_error_rate(impostor, genuine).eer if genuine and impostor else np.nan
        assert eers[b] == pytest.approx(expected, nan_ok=True)


def test_first_identity_rule_keeps_each_pair_once_per_draw_of_its_first_person():
    """identity_j=None (verify_frame's interval): second implementation, pair by pair."""
    pairs = _toy_pairs()
    low, high, eers = bootstrap_eer(pairs["score"], pairs["label"], pairs["identity_i"],
                                    n_boot=100, seed=4)
    scores, genuine = pairs["score"].to_numpy(), pairs["label"].to_numpy() == 1
    names, first = np.unique(pairs["identity_i"].to_numpy(), return_inverse=True)
    expected = np.full(100, np.nan)
    for b, draw in enumerate(np.random.default_rng(4).integers(0, len(names), size=(100, len(names)))):
        kept = np.bincount(draw, minlength=len(names))[first]
        neg, pos = np.repeat(scores[~genuine], kept[~genuine]), np.repeat(scores[genuine], kept[genuine])
        if neg.size and pos.size:
            expected[b] = equal_error_rate(neg, pos).eer
    np.testing.assert_array_equal(eers, expected)
    assert (low, high) == tuple(np.nanpercentile(expected, [2.5, 97.5]))


def test_identical_identities_collapse_to_the_point_estimate():
    # Every person has the same genuine scores 0.2, 0.6, 0.9 and every pair of people the
    # same impostor scores 0.1, 0.5, 0.7: any resample holds the same score distributions,
    # so every resampled EER is the EER, 1/3 by hand (threshold 0.55: FNMR 1/3, FMR 1/3).
    rows = []
    people = ["a", "b", "c", "d"]
    for u, person in enumerate(people):
        rows += [(person, person, 1, s) for s in (0.2, 0.6, 0.9)]
        for other in people[u + 1:]:
            rows += [(person, other, 0, s) for s in (0.1, 0.5, 0.7)]
    pairs = pd.DataFrame(rows, columns=["identity_i", "identity_j", "label", "score"])
    table = eer_interval(pairs["score"], pairs, n_boot=50, seed=0)
    row = table.iloc[0]
    assert row["eer"] == pytest.approx(1 / 3)
    assert row["ci_low"] == pytest.approx(1 / 3) and row["ci_high"] == pytest.approx(1 / 3)
    assert (row["genuine"], row["impostor"], row["identities"]) == (12, 18, 4)


def test_bootstrap_checks_its_input():
    pairs = _toy_pairs()
    args = (pairs["score"], pairs["label"], pairs["identity_i"], pairs["identity_j"])
    assert bootstrap_eer(*args, n_boot=30, seed=3)[:2] == bootstrap_eer(*args, n_boot=30, seed=3)[:2]
    with pytest.raises(ValueError, match="both genuine"):
        bootstrap_eer(pairs["score"], np.ones(len(pairs)), pairs["identity_i"])
    with pytest.raises(ValueError, match=r"identity_j must have one value per pair"):
        bootstrap_eer(*args[:3], pairs["identity_j"][:-1])
    with pytest.raises(ValueError, match="n_boot must be an int >= 1"):
        bootstrap_eer(*args, n_boot=0)
    with pytest.raises(ValueError, match="level must lie strictly between 0 and 1"):
        bootstrap_eer(*args, level=95)


# --------------------------------------------------------------------------- eer_interval


def test_eer_interval_per_group_matches_eer_by_group_and_counts():
    pairs = _toy_pairs()
    pairs["pose_pair"] = np.where(np.arange(len(pairs)) % 2, "F-F", "F-P")
    table = eer_interval(pairs["score"], pairs, by="pose_pair", n_boot=100, seed=0)
    reference = eer_by_group(pairs["score"], pairs["label"], pairs["pose_pair"])
    assert list(table["group"]) == list(reference["group"]) == ["F-P", "F-F", "overall"]
    np.testing.assert_allclose(table["eer"], reference["eer"])
    assert list(table["genuine"]) == list(reference["n_genuine"])
    assert list(table["impostor"]) == list(reference["n_impostor"])
    assert (table["ci_low"] <= table["eer"]).all() and (table["eer"] <= table["ci_high"]).all()
    # a group's interval is bootstrap_eer on its own pairs with the same seed
    f_f = pairs[pairs["pose_pair"] == "F-F"]
    low, high, _ = bootstrap_eer(f_f["score"], f_f["label"], f_f["identity_i"], f_f["identity_j"],
                                 n_boot=100, seed=0)
    assert tuple(table.loc[table["group"] == "F-F", ["ci_low", "ci_high"]].iloc[0]) == (low, high)
    # a dict of systems gives a system column, and the same rows per system
    both = eer_interval({"A": pairs["score"], "B": -pairs["score"]}, pairs, by="pose_pair",
                        n_boot=100, seed=0)
    assert list(both["system"]) == ["A"] * 3 + ["B"] * 3
    pd.testing.assert_frame_equal(both.iloc[:3].drop(columns="system").reset_index(drop=True),
                                  table)


def test_eer_interval_group_without_impostors_is_nan():
    pairs = _toy_pairs()
    pairs["pose_pair"] = np.where(pairs["label"] == 1, "only-genuine", "mixed")
    pairs.loc[pairs.index[:2], "pose_pair"] = "mixed"
    table = eer_interval(pairs["score"], pairs, by="pose_pair", n_boot=20).set_index("group")
    assert np.isnan(table.loc["only-genuine", ["eer", "ci_low", "ci_high"]].astype(float)).all()
    assert table.loc["only-genuine", "impostor"] == 0
    with pytest.raises(ValueError, match="pairs needs the columns"):
        eer_interval(pairs["score"], pairs.drop(columns="identity_j"))
    with pytest.raises(ValueError, match="by must be a column of pairs"):
        eer_interval(pairs["score"], pairs, by="pose")


# --------------------------------------------------------------------------- kfold_fusion


def _complementary_pairs():
    """Two folds where each system is right in one fold and inverted in the other.

    People p, q (fold 0): B separates (genuine 0.7, 0.9 > impostor 0.3, 0.1: EER 0), A is
    inverted (genuine 0.4, 0.2 < impostor 0.8, 0.5: EER 1), the mean (a = 0.5) ties a genuine
    with an impostor at 0.55 (EER 1/4). People r, s (fold 1): the same with A and B swapped.
    """
    fold_0 = [("p", "p", 1, 0.4, 0.7), ("q", "q", 1, 0.2, 0.9),
              ("p", "q", 0, 0.8, 0.3), ("p", "q", 0, 0.5, 0.1)]
    fold_1 = [(u.replace("p", "r").replace("q", "s"), v.replace("p", "r").replace("q", "s"),
               label, b, a) for u, v, label, a, b in fold_0]
    return pd.DataFrame(fold_0 + fold_1, columns=["identity_i", "identity_j", "label", "a", "b"])


def test_kfold_choice_differs_from_the_oracle():
    pairs = _complementary_pairs()
    table = kfold_fusion(pairs["a"], pairs["b"], pairs, folds={"p": 0, "q": 0, "r": 1, "s": 1},
                         weights=[0, 0.5, 1], n_boot=200, seed=0)
    folds = table[table["line"] == "fold"].set_index("fold")
    # fold 0's weight is chosen on r, s, where A alone is perfect (a = 1); fold 1's on p, q (a = 0)
    assert folds.loc[0, "a"] == 1.0 and folds.loc[1, "a"] == 0.0
    # ... and each is the inverted system on its test fold: EER 1
    assert folds.loc[0, "eer"] == 1.0 and folds.loc[1, "eer"] == 1.0
    kfold = table[table["line"] == "k-fold"].iloc[0]
    oracle = table[table["line"] == "oracle"].iloc[0]
    assert kfold["eer"] == 1.0 and (kfold["ci_low"], kfold["ci_high"]) == (1.0, 1.0)
    # the oracle, tuned on all pairs: a = 0.5 gives genuine 0.55 x 4, impostors 0.55, 0.3
    # (twice): EER 1/4, where either system alone gives 1/2
    assert oracle["a"] == 0.5 and oracle["eer"] == pytest.approx(0.25)
    assert oracle["eer_first"] == pytest.approx(0.5) and oracle["eer_second"] == pytest.approx(0.5)
    assert oracle["change"] == pytest.approx(-0.5)
    assert kfold["eer_first"] == pytest.approx(0.5) and kfold["change"] == pytest.approx(1.0)
    assert (kfold["genuine"], kfold["impostor"], kfold["identities"]) == (4, 4, 4)
    assert table.attrs["folds"] == {"p": 0, "q": 0, "r": 1, "s": 1}


def test_kfold_seeded_split_and_held_out_rule():
    pairs = _toy_pairs(n_people=8)
    other = pairs["score"] + np.random.default_rng(0).normal(0, 0.5, len(pairs))
    table = kfold_fusion(pairs["score"], other, pairs, k=4, n_boot=50, seed=2)
    again = kfold_fusion(pairs["score"], other, pairs, k=4, n_boot=50, seed=2)
    pd.testing.assert_frame_equal(table, again)
    folds = table.attrs["folds"]
    assert sorted(np.bincount(list(folds.values()))) == [2, 2, 2, 2]
    # k-fold pairs: both people in one fold: every genuine pair, and the impostor pairs
    # within a fold (one per fold of two people, 3 scores each)
    kfold = table[table["line"] == "k-fold"].iloc[0]
    assert kfold["genuine"] == (pairs["label"] == 1).sum() and kfold["impostor"] == 4 * 3
    oracle = table[table["line"] == "oracle"].iloc[0]
    assert oracle["impostor"] == (pairs["label"] == 0).sum()
    assert list(table["line"]) == ["fold"] * 4 + ["k-fold", "oracle"]
    with pytest.raises(ValueError, match="including 0 and 1"):
        kfold_fusion(pairs["score"], other, pairs, weights=[0.2, 0.8])
    with pytest.raises(ValueError, match="k must be at most the number of identities"):
        kfold_fusion(pairs["score"], other, pairs, k=9)
    with pytest.raises(ValueError, match="folds has no fold for the identities"):
        kfold_fusion(pairs["score"], other, pairs, folds={"id0": 0})


# --------------------------------------------------------------------------- per-image measures


def test_mean_and_paired_difference_equal_scipy_bootstrap():
    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 1.0, 30)
    b = a - rng.normal(0.3, 0.2, 30)
    table = paired_difference(a, b, n_boot=500, seed=np.random.default_rng(9))
    reference = scipy.stats.bootstrap((a, b), lambda x, y: np.mean(x - y), paired=True,
                                      vectorized=False, n_resamples=500, method="percentile",
                                      rng=np.random.default_rng(9))
    row = table.iloc[0]
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(reference.confidence_interval),
                                                            abs=1e-12)
    assert row["difference"] == pytest.approx(np.mean(a - b))
    assert row["fraction_greater"] == np.mean(a > b) and row["n"] == 30
    single = mean_interval(a - b, n_boot=500, seed=np.random.default_rng(9)).iloc[0]
    assert (single["ci_low"], single["ci_high"]) == (row["ci_low"], row["ci_high"])


def test_paired_difference_by_threshold_and_its_answers():
    # image k: significant removal drops the similarity by 0.3 + k/100, random by 0.1 + k/100:
    # every image's difference is 0.2, so the interval is [0.2, 0.2]
    drops = np.arange(10) / 100
    significant = pd.DataFrame({0.8: 0.3 + drops, 0.5: 0.5 + drops})
    random = pd.DataFrame({0.8: 0.1 + drops, 0.5: 0.5 + drops})
    table = paired_difference(significant, random, n_boot=100)
    assert list(table.index) == [0.8, 0.5]
    assert table.loc[0.8, ["difference", "ci_low", "ci_high"]].tolist() == pytest.approx([0.2] * 3)
    assert table.loc[0.8, "fraction_greater"] == 1.0
    assert table.loc[0.5, ["difference", "ci_low", "ci_high"]].tolist() == pytest.approx([0] * 3)
    assert table.loc[0.5, "fraction_greater"] == 0.0
    with pytest.raises(ValueError, match="a and b must be the same images"):
        paired_difference(significant, random.iloc[:5])
    with pytest.raises(ValueError, match="a and b must be finite"):
        paired_difference([1.0, np.nan], [0.0, 0.0])


def test_mean_interval_leaves_out_nan_per_column():
    values = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 4.0]])
    table = mean_interval(values, n_boot=200, seed=1)
    assert table["mean"].tolist() == pytest.approx([3.0, 3.0])
    assert table["n"].tolist() == [3, 2] and table["n_excluded"].tolist() == [0, 1]
    assert table.loc[1, "ci_low"] >= 2.0 and table.loc[1, "ci_high"] <= 4.0
    assert mean_interval([7.0, 7.0, 7.0])[["mean", "ci_low", "ci_high"]].iloc[0].tolist() == [7.0] * 3


def test_noise_floor_by_hand_and_uninformative_maps():
    # maps differing by 0.1 everywhere: 20 dB; by 0.01: 40 dB
    base = np.full((4, 5, 5), 0.5)
    base[:, 0, 0] = 0.0                      # not constant
    other = base.copy()
    other[0] += 0.1
    other[1] += 0.01
    other[0, 0, 0] = other[1, 0, 0] = 0.0    # keep the differing pixel count known
    other[2, 0, 0] = 0.0                     # image 2: identical maps (inf)
    base[3] = 0.0                            # image 3: a constant (all-zero) map
    floor = noise_floor(base, other, n_boot=100).iloc[0]
    expected = [10 * np.log10(1 / (0.1 ** 2 * 24 / 25)), 10 * np.log10(1 / (0.01 ** 2 * 24 / 25))]
    assert floor["psnr"] == pytest.approx(np.mean(expected))
    assert (floor["n"], floor["n_constant"], floor["n_identical"]) == (2, 1, 1)
    # two images: a resample holds image 0 twice (or image 1 twice) with probability 1/4 each,
    # more than the 2.5% in each tail, so the interval's ends are the two images' PSNRs
    assert (floor["ci_low"], floor["ci_high"]) == pytest.approx(tuple(expected))


def test_relative_to_floor_readings():
    floor = np.array([30.0, 31.0, 29.0, 30.0, 30.0])
    lower = relative_to_floor(floor - 5, floor, n_boot=100).iloc[0]
    assert lower["difference"] == pytest.approx(5.0) and lower["ci_low"] == pytest.approx(5.0)
    assert lower["reading"] == FLOOR_READINGS[0]
    same = relative_to_floor(floor + np.array([1, -1, 1, -1, 0.0]), floor, n_boot=200).iloc[0]
    assert same["ci_low"] < 0 < same["ci_high"] and same["reading"] == FLOOR_READINGS[1]
    higher = relative_to_floor(floor + 2, floor, n_boot=100).iloc[0]
    assert higher["reading"] == FLOOR_READINGS[2]
    # identical maps (inf) leave the image out of both, counted
    withinf = relative_to_floor(np.append(floor - 5, 20.0), np.append(floor, np.inf), n_boot=50)
    assert withinf.iloc[0]["n_excluded"] == 1 and withinf.iloc[0]["n_between"] == 5
    unpaired = relative_to_floor(floor - 5, np.array([30.0, 30.0]), paired=False, n_boot=50).iloc[0]
    assert unpaired["difference"] == pytest.approx(5.0) and unpaired["reading"] == FLOOR_READINGS[0]
    with pytest.raises(ValueError, match="paired=True needs one floor value per image"):
        relative_to_floor(floor, floor[:2])
