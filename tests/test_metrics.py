"""Tests of faceexp.verify.metrics (EER, DET/ROC, fusion) and the ``faceexp eer`` command.

Reference values come from hand counts and from bob.measure 6.1.1, pyeer 0.5.6
and scikit-learn. pyeer is used through ``pyeer.eer_stats`` (``pyeer.eer_info``
imports ``pkg_resources``, which recent setuptools no longer ship).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest

from faceexp.verify import metrics
from faceexp.verify.fusion import best_fusion, fuse_scores, fusion_sweep
from faceexp.verify.metrics import EER, det_curve, equal_error_rate, roc_curve


def bob_eer(negatives, positives):
    import bob.measure

    return bob.measure.eer(negatives, positives), bob.measure.eer_threshold(negatives, positives)


def pyeer_eer(negatives, positives):
    from pyeer.eer_stats import calculate_roc, get_eer_values

    thresholds, fmr, fnmr = calculate_roc(np.asarray(positives), np.asarray(negatives))
    index, _, _, eer = get_eer_values(fmr, fnmr)
    return eer, thresholds[index]


def continuous_sets():
    """Overlapping normal genuine/impostor scores, sizes 50..5000, mostly unequal."""
    rng = np.random.default_rng(20240601)
    sizes = [(50, 50), (50, 73), (200, 1000), (1000, 137), (5000, 700), (333, 5000), (2500, 2500), (4999, 61)]
    for n_neg, n_pos in sizes:
        negatives = rng.normal(0.0, 1.0, n_neg)
        positives = rng.normal(rng.uniform(0.5, 2.5), rng.uniform(0.5, 1.5), n_pos)
        yield negatives, positives


# --------------------------------------------------------------------------
# equal_error_rate against the reference libraries


def test_eer_matches_bob_measure_on_continuous_scores():
    for negatives, positives in continuous_sets():
        result = equal_error_rate(negatives, positives)
        eer, threshold = bob_eer(negatives, positives)
        assert result.eer == pytest.approx(eer, abs=1e-9)
        assert result.threshold == pytest.approx(threshold, abs=1e-9)


def test_eer_matches_pyeer_on_continuous_scores():
    for negatives, positives in continuous_sets():
        result = equal_error_rate(negatives, positives, convention="pyeer")
        eer, threshold = pyeer_eer(negatives, positives)
        assert result.eer == pytest.approx(eer, abs=1e-9)
        assert result.threshold == pytest.approx(threshold, abs=1e-9)


def test_both_libraries_agree_when_the_classes_have_the_same_size():
    rng = np.random.default_rng(3)
    for n in (50, 400, 3000):
        negatives, positives = rng.normal(0, 1, n), rng.normal(1.2, 1, n)
        bob_value, _ = bob_eer(negatives, positives)
        pyeer_value, _ = pyeer_eer(negatives, positives)
        assert bob_value == pytest.approx(pyeer_value, abs=1e-12)
        assert equal_error_rate(negatives, positives).eer == pytest.approx(
            equal_error_rate(negatives, positives, convention="pyeer").eer, abs=1e-12
        )


def test_libraries_differ_on_unequal_sizes_even_without_ties():
    # Thresholds at .35/.4/.5: FMR 2/5, 2/5, 1/5; FNMR 0, 1/3, 1/3.
    # The crossing lies between t=.4 (FMR-FNMR=+1/15) and t=.5 (-2/15).
    negatives = np.array([0.1, 0.2, 0.3, 0.4, 0.6])
    positives = np.array([0.35, 0.5, 0.7])
    bob = equal_error_rate(negatives, positives)
    assert bob.eer == pytest.approx((2 / 5 + 1 / 3) / 2)  # smaller |FMR-FNMR|: t=.4
    assert bob.threshold == pytest.approx(0.375)  # midpoint of .35 and .4
    assert (bob.fmr, bob.fnmr) == pytest.approx((2 / 5, 1 / 3))
    pyeer = equal_error_rate(negatives, positives, convention="pyeer")
    assert pyeer.eer == pytest.approx((1 / 5 + 1 / 3) / 2)  # smaller FMR+FNMR: t=.5
    assert pyeer.threshold == 0.5
    assert bob_eer(negatives, positives) == pytest.approx((bob.eer, bob.threshold))
    assert pyeer_eer(negatives, positives) == pytest.approx((pyeer.eer, pyeer.threshold))


def test_tied_integer_scores_recorded_for_both_libraries():
    # Thresholds 0,1,2,3,(none): FMR 1, 1/2, 1/4, 1/4, 0; FNMR 0, 0, 0, 1/2, 1.
    # FMR-FNMR: +1/4 at t=2, -1/4 at t=3 (the tie at score 3 moves FNMR by 1/2).
    negatives = np.array([0.0, 0.0, 1.0, 3.0])
    positives = np.array([2.0, 2.0, 3.0, 3.0])
    bob_value, bob_threshold = bob_eer(negatives, positives)
    pyeer_value, pyeer_threshold = pyeer_eer(negatives, positives)
    # bob: |FMR-FNMR| ties at 1/4, the higher threshold wins -> (1/4 + 1/2) / 2
    assert (bob_value, bob_threshold) == pytest.approx((0.375, 2.5))
    # pyeer: smaller FMR+FNMR -> t=2, (1/4 + 0) / 2
    assert (pyeer_value, pyeer_threshold) == pytest.approx((0.125, 2.0))
    assert equal_error_rate(negatives, positives) == EER(eer=0.375, threshold=2.5, fmr=0.25, fnmr=0.5)
    assert equal_error_rate(negatives, positives, convention="pyeer") == EER(
        eer=0.125, threshold=2.0, fmr=0.25, fnmr=0.0
    )


def test_eer_matches_both_libraries_on_many_small_tied_sets():
    rng = np.random.default_rng(11)
    never_cross = 0
    for trial in range(60):
        n_neg, n_pos = rng.integers(2, 40, size=2)
        negatives = rng.integers(0, 6, n_neg).astype(float)
        positives = rng.integers(2, 8, n_pos).astype(float)
        bob = equal_error_rate(negatives, positives)
        pyeer = equal_error_rate(negatives, positives, convention="pyeer")
        assert (bob.eer, bob.threshold) == pytest.approx(bob_eer(negatives, positives), abs=1e-12), trial
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reference = pyeer_eer(negatives, positives)
        if caught:  # pyeer found no crossing (see the next test): it gives 1
            never_cross += 1
            assert reference[0] == 1
            continue
        assert (pyeer.eer, pyeer.threshold) == pytest.approx(reference, abs=1e-12), trial
    assert never_cross < 10


def test_eer_on_large_tied_scores_uses_the_fast_path_correctly():
    # > 4096 scores: the crossing is bracketed from a subsample first.
    rng = np.random.default_rng(5)
    negatives = np.round(rng.normal(0, 1, 30000), 2)
    positives = np.round(rng.normal(1, 1, 9000), 2)
    assert equal_error_rate(negatives, positives).eer == pytest.approx(bob_eer(negatives, positives)[0], abs=1e-12)
    assert equal_error_rate(negatives, positives, convention="pyeer").eer == pytest.approx(
        pyeer_eer(negatives, positives)[0], abs=1e-12
    )


def test_rates_follow_the_threshold_rule():
    negatives, positives = next(continuous_sets())
    result = equal_error_rate(negatives, positives)
    assert result.fmr == np.mean(negatives >= result.threshold)
    assert result.fnmr == np.mean(positives < result.threshold)
    assert result.eer == (result.fmr + result.fnmr) / 2


def test_separable_scores_give_zero_and_identical_distributions_one_half():
    assert equal_error_rate([0.1, 0.2, 0.3], [0.5, 0.9]).eer == 0.0
    assert equal_error_rate([0.1, 0.2, 0.3], [0.5, 0.9], convention="pyeer").eer == 0.0
    rng = np.random.default_rng(0)
    same = equal_error_rate(rng.normal(size=20000), rng.normal(size=20000))
    assert same.eer == pytest.approx(0.5, abs=0.02)


def test_curves_that_never_cross_at_a_score():
    # Thresholds 0, 1: (FMR, FNMR) = (1, 0), (1, 1/2): FMR > FNMR at every
    # score. pyeer warns and gives 1; here "accept nothing" (0, 1) is a point
    # too: pyeer's rule takes it (FMR + FNMR 1 < 1.5), EER 1/2.
    negatives, positives = np.array([1.0, 1.0]), np.array([0.0, 1.0])
    with pytest.warns(RuntimeWarning, match="do not intersect"):
        assert pyeer_eer(negatives, positives)[0] == 1
    result = equal_error_rate(negatives, positives, convention="pyeer")
    assert (result.eer, result.fmr, result.fnmr) == (0.5, 0.0, 1.0)
    assert result.threshold > 1.0
    # bob: smallest |FAR - FRR| is 1/2 at threshold 0.5 -> (1 + 1/2) / 2
    assert equal_error_rate(negatives, positives) == EER(eer=0.75, threshold=0.5, fmr=1.0, fnmr=0.5)
    assert bob_eer(negatives, positives) == pytest.approx((0.75, 0.5))


def test_sklearn_roc_drop_intermediate_misses_the_crossing():
    from sklearn.metrics import roc_curve as sk_roc_curve

    negatives = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6])
    positives = np.array([0.25, 0.65, 0.7, 0.8])
    labels = np.r_[np.zeros(negatives.size), np.ones(positives.size)]
    scores = np.r_[negatives, positives]

    def eer_of(fpr, tpr):  # bob's rule on a list of points, counts kept exact
        fa = np.rint(fpr * negatives.size).astype(int)
        fr = np.rint((1 - tpr) * positives.size).astype(int)
        gap = np.abs(fa * positives.size - fr * negatives.size)
        k = np.flatnonzero(gap == gap.min())[0]  # sklearn lists thresholds high to low
        return (fa[k] / negatives.size + fr[k] / positives.size) / 2

    expected = (2 / 7 + 1 / 4) / 2  # t=0.55: FMR 2/7, FNMR 1/4
    assert equal_error_rate(negatives, positives).eer == pytest.approx(expected)
    fpr, tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    assert eer_of(fpr, tpr) == pytest.approx(expected)
    fpr, tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=True)
    assert eer_of(fpr, tpr) == pytest.approx(0.125)  # the crossing points were dropped


@pytest.mark.parametrize(
    "negatives, positives, message",
    [
        ([], [1.0], "negatives is empty"),
        ([0.0], [], "positives is empty"),
        ([0.0, np.nan], [1.0], "negatives holds 1 NaN"),
        ([0.0], [1.0, np.inf], "positives holds 1 NaN or infinite"),
        ([[0.0, 1.0]], [1.0], r"negatives must be 1-D"),
        (["a"], [1.0], "negatives must be an array of numbers"),
    ],
)
def test_eer_rejects_bad_scores(negatives, positives, message):
    with pytest.raises(ValueError, match=message):
        equal_error_rate(negatives, positives)


def test_eer_rejects_unknown_convention():
    with pytest.raises(ValueError, match="convention must be one of"):
        equal_error_rate([0.0], [1.0], convention="sklearn")


# --------------------------------------------------------------------------
# curves


def test_det_curve_by_hand():
    curve = det_curve([0.1, 0.4, 0.4], [0.4, 0.8])
    assert list(curve.columns) == ["threshold", "fmr", "fnmr"]
    np.testing.assert_array_equal(curve["threshold"], [0.1, 0.4, 0.8, np.inf])
    np.testing.assert_allclose(curve["fmr"], [1, 2 / 3, 0, 0])
    np.testing.assert_allclose(curve["fnmr"], [0, 0, 1 / 2, 1])


def test_roc_curve_has_every_point_sklearn_keeps_without_dropping():
    from sklearn.metrics import roc_curve as sk_roc_curve

    rng = np.random.default_rng(2)
    negatives, positives = np.round(rng.normal(0, 1, 300), 1), np.round(rng.normal(1, 1, 200), 1)
    ours = roc_curve(negatives, positives)
    assert list(ours.columns) == ["threshold", "fmr", "tmr"]
    fpr, tpr, thresholds = sk_roc_curve(
        np.r_[np.zeros(300), np.ones(200)], np.r_[negatives, positives], drop_intermediate=False
    )
    # sklearn: thresholds high to low, starting with inf (accept nothing)
    np.testing.assert_allclose(ours["threshold"].to_numpy()[::-1][1:], thresholds[1:])
    np.testing.assert_allclose(ours["fmr"].to_numpy()[::-1], fpr)
    np.testing.assert_allclose(ours["tmr"].to_numpy()[::-1], tpr)


# --------------------------------------------------------------------------
# fusion


def test_fuse_scores_formula_and_validation():
    np.testing.assert_allclose(fuse_scores([1.0, 0.0], [0.0, 1.0], 0.58), [0.58, 0.42])
    np.testing.assert_array_equal(fuse_scores([1.0, 2.0], [5.0, 6.0], 1), [1.0, 2.0])
    np.testing.assert_array_equal(fuse_scores([1.0, 2.0], [5.0, 6.0], 0), [5.0, 6.0])
    with pytest.raises(ValueError, match=r"a must be a number in \[0, 1\]"):
        fuse_scores([1.0], [1.0], 1.5)
    with pytest.raises(ValueError, match="same shape"):
        fuse_scores([1.0], [1.0, 2.0], 0.5)


def test_fusion_of_identical_systems_gives_the_same_eer_for_every_weight():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 800)
    scores = rng.normal(size=800) + labels
    sweep = fusion_sweep(scores, scores.copy(), labels)
    assert list(sweep.columns) == ["a", "group", "eer"]
    assert len(sweep) == 101 and set(sweep["group"]) == {"overall"}
    reference = equal_error_rate(scores[labels == 0], scores[labels == 1]).eer
    np.testing.assert_allclose(sweep["eer"], reference, rtol=0, atol=1e-12)


def make_fusion_example(coefficient, n=400, seed=0):
    """s1 = x + e, s2 = x - c*e: the fused noise (a - c(1-a)) e vanishes at a = c / (1 + c)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n // 2)
    noise = rng.uniform(-100, 100, n)
    return labels + noise, labels - coefficient * noise, labels


@pytest.mark.parametrize("coefficient, best_a", [(1.0, 0.5), (3.0, 0.75)])
def test_best_fusion_finds_the_known_weight(coefficient, best_a):
    s1, s2, labels = make_fusion_example(coefficient)
    sweep = fusion_sweep(s1, s2, labels)
    best = best_fusion(sweep)
    assert best["a"] == best_a
    assert best["eer"]["overall"] == 0.0  # the noise cancels: perfectly separable
    assert best["relative_change"]["overall"] == -1.0
    assert best["eer_1"]["overall"] == equal_error_rate(s1[labels == 0], s1[labels == 1]).eer
    assert best["eer_2"]["overall"] == equal_error_rate(s2[labels == 0], s2[labels == 1]).eer


def test_fusion_sweep_groups_and_overall():
    s1, s2, labels = make_fusion_example(1.0, n=400)
    groups = np.where(np.arange(400) % 2 == 0, "even", "odd")
    sweep = fusion_sweep(s1, s2, labels, groups=groups, weights=[0.0, 0.5, 1.0])
    assert list(pd.unique(sweep["group"])) == ["even", "odd", "overall"]
    assert len(sweep) == 9
    at_one = sweep[sweep["a"] == 1.0].set_index("group")["eer"]
    even = groups == "even"
    assert at_one["even"] == equal_error_rate(s1[even & (labels == 0)], s1[even & (labels == 1)]).eer
    assert at_one["overall"] == equal_error_rate(s1[labels == 0], s1[labels == 1]).eer


def test_fusion_sweep_uses_an_existing_overall_group_as_is_and_nan_for_one_class():
    rng = np.random.default_rng(1)
    labels = np.r_[np.zeros(50, int), np.ones(50, int), np.ones(10, int)]
    s1 = rng.normal(size=110) + labels
    s2 = rng.normal(size=110) + labels
    groups = np.array(["overall"] * 100 + ["F-F"] * 10, dtype=object)  # F-F: genuine only
    sweep = fusion_sweep(s1, s2, labels, groups=groups, weights=[1.0])
    eers = sweep.set_index("group")["eer"]
    assert list(eers.index) == ["F-F", "overall"]
    assert np.isnan(eers["F-F"])
    assert eers["overall"] == equal_error_rate(s1[:50], s1[50:100]).eer


def test_best_fusion_relative_change_is_against_the_better_single_system_per_group():
    sweep = pd.DataFrame(
        {
            "a": [0.0, 0.0, 0.5, 0.5, 1.0, 1.0],
            "group": ["g", "overall"] * 3,
            "eer": [0.040, 0.050, 0.030, 0.040, 0.050, 0.045],
        }
    )
    best = best_fusion(sweep)
    assert best["a"] == 0.5
    assert best["relative_change"]["g"] == pytest.approx((0.030 - 0.040) / 0.040)  # a=0 is better in g
    assert best["relative_change"]["overall"] == pytest.approx((0.040 - 0.045) / 0.045)  # a=1 better
    assert best["eer"] == {"g": 0.030, "overall": 0.040}


def test_paper_table_one_percentages_use_the_better_network_per_column():
    # Table I (EER %): the printed changes are reproduced, within the rounding
    # of the printed EERs, by the per-column minimum as baseline, and not by MB2.
    mb2 = np.array([3.69, 2.91, 4.27, 3.33, 4.52, 3.75, 3.75])
    r50 = np.array([3.93, 3.01, 4.34, 3.51, 4.54, 3.69, 3.84])
    combined = np.array([3.53, 2.70, 3.83, 3.13, 4.08, 3.37, 3.44])
    printed = np.array([-4.1, -7.2, -10.3, -6.0, -9.6, -8.6, -8.0])

    def reachable(baseline):  # is each printed % reachable from the rounded EERs?
        lowest = 100 * ((combined - 0.005) - (baseline + 0.005)) / (baseline + 0.005)
        highest = 100 * ((combined + 0.005) - (baseline - 0.005)) / (baseline - 0.005)
        return (printed >= lowest - 0.05) & (printed <= highest + 0.05)

    assert reachable(np.minimum(mb2, r50)).all()
    assert not reachable(mb2).all()  # 3/4-P: -10.1% with MB2 as baseline
    assert not reachable((mb2 + r50) / 2).all()


def test_best_fusion_validation():
    sweep = pd.DataFrame({"a": [0.5], "group": ["overall"], "eer": [0.1]})
    with pytest.raises(ValueError, match="must include a = 0"):
        best_fusion(sweep)
    with pytest.raises(ValueError, match="by must be one of"):
        best_fusion(sweep, by="F-F")
    with pytest.raises(ValueError, match="columns a, group, eer"):
        best_fusion(pd.DataFrame({"x": [1]}))


def test_fusion_sweep_validation():
    with pytest.raises(ValueError, match="labels must be 1"):
        fusion_sweep([0.1, 0.2], [0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="same shape"):
        fusion_sweep([0.1, 0.2], [0.1], [0, 1])
    with pytest.raises(ValueError, match=r"weights must lie in \[0, 1\]"):
        fusion_sweep([0.1, 0.2], [0.1, 0.2], [0, 1], weights=[1.5])
    with pytest.raises(ValueError, match="both genuine"):
        fusion_sweep([0.1, 0.2], [0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="scores1 holds 1 NaN"):
        fusion_sweep([np.nan, 0.2], [0.1, 0.2], [0, 1])


def test_fusion_sweep_is_fast_enough_for_table_one():
    # 101 weights x 7 groups x 100k scores (about VGGFace2-Pose's overall set).
    rng = np.random.default_rng(0)
    n = 100_000
    labels = (rng.random(n) < 0.6).astype(int)
    groups = np.array(metrics.OVERALL, dtype=object).repeat(n)
    groups[: 6 * 8000] = np.repeat(["F-F", "3/4-3/4", "P-P", "F-3/4", "F-P", "3/4-P"], 8000)
    s1 = rng.normal(size=n) + 2 * labels
    s2 = 0.5 * s1 + rng.normal(size=n)
    start = time.perf_counter()
    sweep = fusion_sweep(s1, s2, labels, groups=groups)
    elapsed = time.perf_counter() - start
    assert len(sweep) == 101 * 7
    assert elapsed < 30, f"fusion_sweep took {elapsed:.1f} s"


# --------------------------------------------------------------------------
# faceexp eer


def write(tmp_path, text, name="scores.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_cli_eer_prints_eer_and_threshold(tmp_path, capsys):
    from faceexp.cli import main

    negatives, positives = [0.1, 0.2, 0.3, 0.4, 0.6], [0.35, 0.5, 0.7]
    rows = [f"{s},0" for s in negatives] + [f"{s},1" for s in positives]
    path = write(tmp_path, "score,label\n" + "\n".join(rows) + "\n")
    assert main(["eer", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = equal_error_rate(negatives, positives)
    assert out == {"eer": expected.eer, "threshold": expected.threshold, "genuine": 3, "impostor": 5}
    assert out["eer"] == pytest.approx((2 / 5 + 1 / 3) / 2)
    assert main(["eer", str(path)]) == 0
    text = capsys.readouterr().out
    assert "EER: 0.366667" in text and "threshold: 0.375" in text


def test_cli_eer_ignores_extra_columns_and_accepts_float_labels(tmp_path, capsys):
    from faceexp.cli import main

    path = write(tmp_path, "pose_pair,label,score\nF-F,0.0,0.1\nF-F,1.0,0.9\n")
    assert main(["eer", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["eer"] == 0.0


@pytest.mark.parametrize(
    "text, message",
    [
        ("score\n0.1\n", "missing column 'label'"),
        ("score,label\n0.1,0\nabc,1\n", "line 3: score 'abc' is not a number"),
        ("score,label\n0.1,0\nnan,1\n", "line 3: score 'nan' is not a finite number"),
        ("score,label\n0.1,0\n0.2,2\n", "line 3: label '2' must be 1"),
        ("score,label\n0.1,1\n0.2,1\n", "no impostor"),
        ("score,label\n0.1,0\n", "no genuine"),
        ("", "empty file"),
    ],
)
def test_cli_eer_bad_files_exit_2_with_one_line(tmp_path, capsys, text, message):
    from faceexp.cli import main

    path = write(tmp_path, text)
    assert main(["eer", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("faceexp eer: error:") and err.count("\n") == 1


def test_cli_eer_missing_file(tmp_path, capsys):
    from faceexp.cli import main

    assert main(["eer", str(tmp_path / "nope.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_eer_in_a_subprocess(tmp_path):
    path = write(tmp_path, "score,label\n0.1,0\n0.2,0\n0.8,1\n0.9,1\n")
    done = subprocess.run(
        [sys.executable, "-m", "faceexp", "eer", str(path), "--json"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"eer": 0.0, "threshold": 0.5, "genuine": 2, "impostor": 2}
    bad = write(tmp_path, "score,label\nx,0\n", name="bad.csv")
    done = subprocess.run(
        [sys.executable, "-m", "faceexp", "eer", str(bad)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "line 2" in done.stderr
