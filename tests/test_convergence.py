"""Sampling until the map converges (faceexp.explain.convergence, Explainer(n_samples="auto")):
answers known by construction, by hand, by scipy and by the explainer saved before the change."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from faceexp.explain.convergence import (rank_correlation, sample_until_agreement,
                                         spearman_brown, split_half_agreement)
from faceexp.explain.explainer import Explainer
from faceexp.explain.explanation import Explanation
from faceexp.explain.lime_steps import draw_samples, fit_linear, kernel_weights

#: Saved by the explainer as it was before n_samples="auto" existed (same toy embed, image,
#: options and seed as below): integer n_samples must still give these arrays bit for bit.
EXPECTED = Path(__file__).with_name("convergence_expected.npz")
SIZE = 32
CASES = {"paper": {}, "matlab": {"sampling": "matlab", "kernel": "lime", "ridge": 1.0},
         "raw": {"positive_only": False, "p_off": 0.5, "sigma": 0.0}}
_P = torch.from_numpy(np.random.default_rng(5).standard_normal((3 * SIZE * SIZE, 8))
                      .astype(np.float32))


def _toy_image() -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    noise = np.random.default_rng(3).random((SIZE, SIZE, 3))
    image = gaussian_filter(noise, sigma=(3, 3, 0))
    image -= image.min()
    return (image / image.max()).astype(np.float32)


def _toy_embed(batch: torch.Tensor) -> torch.Tensor:
    return torch.tanh(batch.reshape(len(batch), -1) @ _P / 20.0) + 0.1


# ------------------------------------------------------------ constructed linear data

S = 40
BETA = np.random.default_rng(0).standard_normal(S)      # the true map: its ranks are known


def _linear(n: int, noise: float, seed: int):
    """Samples, a linear target of them plus Gaussian noise, kernel weights."""
    z = draw_samples(n, S, rng=seed)
    y = z @ BETA + noise * np.random.default_rng(1000 + seed).standard_normal(n)
    return z, y[:, None], kernel_weights(z)


def test_spearman_brown_by_hand():
    assert spearman_brown(0.5) == pytest.approx(2 * 0.5 / 1.5)
    assert spearman_brown(0.5, 3) == pytest.approx(1.5 / 2.0)
    assert spearman_brown(-0.2) == 0.0 and spearman_brown(1.0) == 1.0


def testrank_correlation_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 25)), rng.standard_normal((3, 25))
    a[2, :5] = 0.0                         # ties get average ranks, as scipy's
    b[0] = a[0] + 0.3 * b[0]
    expected = [spearmanr(x, y)[0] for x, y in zip(a, b)]
    np.testing.assert_allclose(rank_correlation(a, b), expected, rtol=1e-12)
    zero = np.zeros((1, 5))
    assert rank_correlation(zero, zero)[0] == 1.0
    assert rank_correlation(zero, a[:1, :5])[0] == 0.0


def test_split_half_estimate_tracks_the_true_agreement_and_grows_with_samples():
    """Linear target + noise: the WLS map's true agreement is Spearman(fit, BETA). Over
    20 replicates the estimate is within 0.03 of it on average, and it grows with n."""
    means = []
    for n in (200, 400, 800):
        estimated, true = [], []
        for rep in range(20):
            z, y, w = _linear(n, 2.0, rep)
            true.append(spearmanr(fit_linear(z, y, w)[0][0], BETA)[0])
            estimated.append(split_half_agreement(z, y, w, rng=rep)[0][0])
        assert abs(np.mean(estimated) - np.mean(true)) < 0.03, (n, estimated, true)
        means.append(np.mean(estimated))
    assert means[0] < means[1] < means[2]
    # less noise: higher agreement at the same n
    z, y, w = _linear(200, 0.5, 0)
    assert split_half_agreement(z, y, w)[0][0] > means[0]


def _linear_batches(n: int, noise: float, batch: int = 50):
    """The explainer's scoring protocol on constructed data: (rows, layers, targets, None)."""
    z, y, w = _linear(n, noise, 7)
    for last in range(batch, n + batch, batch):
        yield min(last, n), ["linear"], y.T, None


def test_auto_rule_stops_earlier_for_less_noise():
    z, _, w = _linear(1000, 0.0, 7)
    used = {}
    for noise in (0.5, 3.0):
        n, layers, targets, _, record = sample_until_agreement(
            _linear_batches(1000, noise), z, w, tolerance=0.05, round_samples=100, ridge=0.0,
            seed=0)
        assert layers == ["linear"] and targets.shape == (1, n) and record["samples_used"] == n
        assert n == record["history"][-1][0]
        used[noise] = (n, record)
    low, high = used[0.5], used[3.0]
    assert low[0] < high[0]
    assert low[1]["converged"] and low[1]["agreement"][0] >= 0.95
    # it stopped at the first two checks in a row at the target (DEFAULT_CONFIRM = 2)
    at = [a >= 0.95 for _, a in low[1]["history"]]
    assert at[-2:] == [True, True] and low[1]["confirm"] == 2
    assert not any(a and b for a, b in zip(at[:-2], at[1:-1]))


def test_auto_rule_waits_for_a_second_check_at_the_target():
    # The same noisy linear stream and split seed under confirm=1 and confirm=2: the
    # estimates are the same check by check, confirm=1 stops at the first one at the target,
    # confirm=2 goes on to the first two in a row (at least one round later).
    z, y, w = _linear(1000, 3.0, 7)
    runs = {}
    for confirm in (1, 2):
        n, _, _, _, record = sample_until_agreement(
            _linear_batches(1000, 3.0), z, w, tolerance=0.05, round_samples=100, ridge=0.0,
            seed=0, confirm=confirm)
        runs[confirm] = (n, [a for _, a in record["history"]])
    n1, h1 = runs[1]
    n2, h2 = runs[2]
    assert h1[-1] >= 0.95 and all(a < 0.95 for a in h1[:-1])      # first crossing
    assert n2 >= n1 + 100 and h2[:len(h1)] == h1                     # same estimates, later stop
    assert h2[-1] >= 0.95 and h2[-2] >= 0.95
    with pytest.raises(ValueError, match="confirm"):
        sample_until_agreement(_linear_batches(300, 3.0), z[:300], w[:300], tolerance=0.05,
                               round_samples=100, ridge=0.0, seed=0, confirm=0)


# ------------------------------------------------------------ the explainer


def test_integer_n_samples_is_bit_identical_to_before():
    expected = np.load(EXPECTED)
    for name, options in CASES.items():
        e = Explainer(_toy_embed, n_samples=150, n_segments=20, batch_size=32,
                      **options).explain(_toy_image(), seed=11)
        for key in ("heatmaps", "coefficients", "intercepts", "targets", "samples", "weights",
                    "r2"):
            np.testing.assert_array_equal(getattr(e, key), expected[f"{name}_{key}"],
                                          err_msg=f"{name}: {key}")
        assert "convergence" not in e.options and e.stability is None


def test_auto_stops_within_max_records_and_equals_the_integer_run(tmp_path):
    explainer = Explainer(_toy_embed, n_samples="auto", tolerance=0.05, max_samples=600,
                          round_samples=50, n_segments=20, batch_size=32)
    e = explainer.explain(_toy_image(), seed=11)
    record = e.options["convergence"]
    n = e.samples_used
    assert record["samples_used"] == n <= 600 and e.targets.shape[1] == n
    assert record["converged"] and e.stability[0] >= 0.95 and e.options["n_samples"] == "auto"
    checks = [rows for rows, _ in record["history"]]
    assert checks == sorted(checks) and checks[-1] == n and n % 32 == 0    # whole batches
    # Bernoulli samples are a prefix of the same seed's stream: the same map as n_samples=n
    fixed = Explainer(_toy_embed, n_samples=n, n_segments=20, batch_size=32).explain(
        _toy_image(), seed=11)
    np.testing.assert_array_equal(e.coefficients, fixed.coefficients)
    np.testing.assert_array_equal(e.heatmaps, fixed.heatmaps)
    # recorded in the file, and read back
    loaded = Explanation.load(e.save(tmp_path / "auto"))
    assert loaded.samples_used == n and loaded.stability[0] == pytest.approx(e.stability[0])
    # a tight target the maximum cannot reach: stops at the maximum, not converged
    tight = Explainer(_toy_embed, n_samples="auto", tolerance=0.001, max_samples=130,
                      n_segments=20, batch_size=32).explain(_toy_image(), seed=11)
    assert tight.samples_used == 130 and not tight.options["convergence"]["converged"]


@pytest.mark.parametrize("options, name", [
    ({"n_samples": "fast"}, "n_samples"), ({"n_samples": 1.5}, "n_samples"),
    ({"n_samples": "auto", "tolerance": 0.0}, "tolerance"),
    ({"n_samples": "auto", "tolerance": 1.0}, "tolerance"),
    ({"n_samples": "auto", "tolerance": -0.1}, "tolerance"),
    ({"tolerance": "0.1"}, "tolerance"),
    ({"n_samples": "auto", "max_samples": 2}, "max_samples"),
    ({"n_samples": "auto", "round_samples": 0}, "round_samples")])
def test_bad_sample_options_name_the_parameter(options, name):
    with pytest.raises(ValueError, match=rf"^{name} must") as info:
        Explainer(_toy_embed, **options)
    assert "\n" not in str(info.value)


def test_bernoulli_rows_are_a_prefix_of_the_seeds_stream():
    """What n_samples="auto" relies on: the first k of n rows are the k rows of the seed."""
    full = draw_samples(1001, 30, rng=3)
    for k in (2, 77, 500):
        np.testing.assert_array_equal(draw_samples(k, 30, rng=3), full[:k])
    assert full[0].all() and abs(1 - full[1:].mean() - 0.6) < 0.01


def test_estimate_agreement_of_an_explanation_and_the_recorded_settings():
    from faceexp.explain.convergence import estimate_agreement
    from faceexp.explain.provenance import run_settings

    e = Explainer(_toy_embed, n_samples=300, n_segments=20, batch_size=32).explain(
        _toy_image(), seed=2)
    direct = split_half_agreement(e.samples, e.targets.T, e.weights, rng=4)[0]
    np.testing.assert_array_equal(estimate_agreement(e, rng=4), direct)
    assert 0 < direct[0] <= 1
    fixed = run_settings(Explainer(_toy_embed, n_samples=300), {}, seed=0)
    assert fixed["n_samples"] == 300 and "tolerance" not in fixed    # as before: old manifests match
    auto = run_settings(Explainer(_toy_embed, n_samples="auto", tolerance=0.2, max_samples=800),
                        {}, seed=0)
    assert (auto["n_samples"], auto["tolerance"], auto["max_samples"],
            auto["round_samples"]) == ("auto", 0.2, 800, 100)
