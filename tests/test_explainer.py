"""LIME for verification (faceexp.explain.explainer): answers worked out by hand, by sklearn and by lime."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from faceexp.explain.explainer import Explainer, explain
from faceexp.explain.explanation import Explanation
from faceexp.explain.explanation import ExplanationWarning
from faceexp.explain.lime_steps import fit_linear, kernel_weights

SIZE = 64
BLOCK = 8                       # grid superpixels of 8x8 pixels: 64 of them
SQUARE = (slice(16, 48), slice(24, 48))   # rows 16:48, cols 24:48: whole grid blocks


def _smooth_image(size: int = SIZE, seed: int = 0) -> np.ndarray:
    """A smooth colour image in [0, 1] (SLIC finds proper superpixels on it)."""
    from scipy.ndimage import gaussian_filter

    noise = np.random.default_rng(seed).random((size, size, 3))
    image = gaussian_filter(noise, sigma=(4, 4, 0))
    image -= image.min()
    return (image / image.max()).astype(np.float32)


def _grid(size: int = SIZE, block: int = BLOCK) -> np.ndarray:
    rows, cols = np.indices((size, size))
    return (rows // block) * (size // block) + cols // block


def _square_embed(batch: torch.Tensor) -> torch.Tensor:
    """Looks only at SQUARE: its pixels, plus a constant vector (never all zero)."""
    pixels = batch[:, :, SQUARE[0], SQUARE[1]].reshape(len(batch), -1)
    return torch.cat([pixels, torch.ones(len(batch), 16)], dim=1)


def _cos(a, b) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _naive_perturbed(image, segments, row, fill):
    """One perturbed image the slow way: every off superpixel painted with fill."""
    out = image.copy()
    for s in np.flatnonzero(~row):
        out[segments == s] = fill
    return out


class _Recorder:
    """An embed callable that records every batch (and its size) it sees."""

    def __init__(self, fn):
        self.fn = fn
        self.batches = []

    def __call__(self, batch):
        self.batches.append(batch.clone())
        return self.fn(batch)


# --------------------------------------------------------------------------- the answer


def test_square_embedding_grid_only_square_superpixels_matter():
    image = _smooth_image()
    segments = _grid()
    exp = explain(image, _square_embed, segments=segments, n_samples=400, seed=0)
    inside = np.unique(segments[SQUARE])
    outside = np.setdiff1d(np.arange(segments.max() + 1), inside)
    coefficients = exp.coefficients[0]
    assert exp.layers == ["embedding"] and exp.coefficients.shape == (1, 64)
    # every superpixel in the square matters, and ranks above every one outside
    assert set(np.argsort(coefficients)[-len(inside):]) == set(inside)
    assert coefficients[inside].min() > 0.01
    # outside: ~0 (not exactly: the kernel weights depend on every superpixel removed,
    # and the target is not linear in the inside ones)
    assert np.abs(coefficients[outside]).max() < 0.1 * coefficients[inside].max()
    assert np.abs(coefficients[outside]).mean() < 0.1 * coefficients[inside].mean()
    # the heatmap peaks inside the square and is scaled to [0, 1]
    heatmap = exp.heatmap()
    assert heatmap.min() == 0.0 and heatmap.max() == 1.0
    peak = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    assert 16 <= peak[0] < 48 and 24 <= peak[1] < 48
    assert heatmap[SQUARE].mean() > 3 * np.delete(heatmap.ravel(),
                                                  np.flatnonzero(_square_mask())).mean()


def _square_mask() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), bool)
    mask[SQUARE] = True
    return mask


@pytest.mark.parametrize("slic_zero", [False, None])
def test_square_embedding_slic_superpixels(slic_zero):
    """Plain SLIC (``slic_zero=False``) and the default, SLIC-zero (MATLAB's ``superpixels``)."""
    from faceexp.explain.lime_steps import superpixels

    image = _smooth_image()
    options = {} if slic_zero is None else {"slic_zero": slic_zero}
    exp = explain(image, _square_embed, n_segments=30, n_samples=400, seed=1, **options)
    segments = exp.segments
    assert exp.options["slic_zero"] is (slic_zero is None)
    assert np.array_equal(segments, superpixels(image, 30, slic_zero=slic_zero is None))
    labels = np.arange(segments.max() + 1)
    assert exp.options["n_superpixels"] == len(labels) >= 10
    assert np.array_equal(np.unique(segments), labels)        # relabelled 0..S-1
    mask = _square_mask()
    touching = [s for s in labels if mask[segments == s].any()]
    outside = [s for s in labels if not mask[segments == s].any()]
    coefficients = exp.coefficients[0]
    inside_fraction = np.array([mask[segments == s].mean() for s in labels])
    inside_pixels = np.array([mask[segments == s].sum() for s in labels])
    if slic_zero is False:
        assert inside_fraction[np.argmax(coefficients)] > 0.9
    else:
        # SLIC-zero's superpixels straddle the square's edge more (measured: 25 superpixels,
        # none of the five most important fully inside); the top one still lies mostly inside
        # and holds 102 of the square's pixels, and the five most important all touch it.
        assert inside_fraction[np.argmax(coefficients)] > 0.5
        assert set(np.argsort(coefficients)[-5:]) <= set(touching)
        assert not np.array_equal(segments, superpixels(image, 30, slic_zero=False))
    # a superpixel at least 10% inside the square outranks every one fully outside
    assert coefficients[inside_fraction >= 0.1].min() > coefficients[outside].max()
    assert np.abs(coefficients[outside]).max() < 0.1 * coefficients.max()
    # the more of it lies inside, the more it matters
    from scipy.stats import spearmanr

    assert spearmanr(coefficients[touching], inside_pixels[touching])[0] > 0.8


# --------------------------------------------------------------------------- sampling


def test_same_seed_identical_different_seed_different():
    image = _smooth_image()
    a = explain(image, _square_embed, n_samples=120, n_segments=20, seed=3)
    b = explain(image, _square_embed, n_samples=120, n_segments=20, seed=3)
    c = explain(image, _square_embed, n_samples=120, n_segments=20, seed=4)
    assert np.array_equal(a.heatmaps, b.heatmaps)
    assert np.array_equal(a.targets, b.targets) and np.array_equal(a.samples, b.samples)
    assert a.seed == 3 and a.options == b.options
    assert not np.array_equal(a.samples, c.samples)
    assert not np.array_equal(a.heatmaps, c.heatmaps)
    fresh = explain(image, _square_embed, n_samples=20, n_segments=20)
    again = explain(image, _square_embed, n_samples=20, n_segments=20, seed=fresh.seed)
    assert np.array_equal(fresh.samples, again.samples)      # a fresh seed is recorded


def test_sampling_schemes_row_zero_and_drop_rates():
    image = _smooth_image()
    constant = lambda b: torch.ones(len(b), 4) + b.mean(dim=(1, 2, 3))[:, None]   # noqa: E731
    grid = _grid()
    bern = explain(image, constant, segments=grid, n_samples=800, p_off=0.6, seed=0, sigma=0)
    mat = explain(image, constant, segments=grid, n_samples=800, sampling="matlab", seed=0)
    for exp in (bern, mat):
        assert exp.samples.dtype == bool and exp.samples.shape == (800, 64)
        assert exp.samples[0].all()
    off_bern = 1 - bern.samples[1:].mean(axis=1)
    off_mat = 1 - mat.samples[1:].mean(axis=1)
    # Bernoulli(0.6): every sample's off-fraction is near 0.6 (sd 0.06 for 64 superpixels)
    assert abs(off_bern.mean() - 0.6) < 0.01 and off_bern.std() < 0.08
    # MATLAB: per-sample rate ~ U[0, 0.8]: mean 0.4, sd 0.8/sqrt(12) = 0.23, none above ~0.95
    assert abs(off_mat.mean() - 0.4) < 0.03 and 0.19 < off_mat.std() < 0.26
    assert off_mat.max() < 0.97


def test_kernel_weights_by_hand():
    samples = np.ones((4, 8), bool)
    samples[1, :2] = False              # 2 of 8 removed
    samples[2, :] = False               # all removed
    samples[3, :6] = False              # 6 of 8 removed
    removed = np.array([0, 2, 8, 6]) / 8
    np.testing.assert_allclose(kernel_weights(samples, kernel="matlab", width=0.35),
                               np.exp(-removed ** 2 / 0.35 ** 2))
    from sklearn.metrics import pairwise_distances

    distance = pairwise_distances(samples.astype(float), np.ones((1, 8)), metric="cosine").ravel()
    np.testing.assert_allclose(kernel_weights(samples, kernel="lime", width=0.25),
                               np.sqrt(np.exp(-distance ** 2 / 0.25 ** 2)), atol=1e-12)
    assert distance[2] == pytest.approx(1.0)


# --------------------------------------------------------------------------- masks, batches


@pytest.mark.parametrize("fill, value", [("black", (0.0, 0.0, 0.0)),
                                         ("mean", (0.485, 0.456, 0.406)),
                                         ((0.2, 0.5, 1.0), (0.2, 0.5, 1.0))])
def test_masks_equal_naive_loop(fill, value):
    rng = np.random.default_rng(0)
    image = rng.random((6, 5, 3)).astype(np.float32)
    segments = np.array([[0, 0, 1, 1, 1]] * 3 + [[2, 2, 3, 3, 4]] * 3) * 7   # relabelled
    recorder = _Recorder(lambda b: b.reshape(len(b), -1) + 1.0)
    exp = explain(image, recorder, segments=segments, n_samples=9, batch_size=4, fill=fill,
                  seed=0, sigma=0)
    assert np.array_equal(np.unique(exp.segments), np.arange(5))
    seen = torch.cat(recorder.batches)[:9].permute(0, 2, 3, 1).numpy()
    fill_value = np.array(value, np.float32)
    for i, row in enumerate(exp.samples):
        assert np.array_equal(seen[i], _naive_perturbed(image, exp.segments, row, fill_value))
    assert exp.options["fill_value"] == pytest.approx(list(value))


def test_blur_fill_paints_the_blurred_image_checked_with_scikit_image():
    """fill="blur": an off superpixel shows the image blurred by a Gaussian of sigma
    0.045 x the longer side, per pixel; scikit-image's gaussian gives the same fill."""
    from skimage.filters import gaussian

    rng = np.random.default_rng(0)
    image = rng.random((40, 30, 3)).astype(np.float32)
    segments = np.repeat(np.arange(4), 10)[:, None] * np.ones((1, 30), dtype=int)
    recorder = _Recorder(lambda b: b.reshape(len(b), -1) + 1.0)
    exp = explain(image, recorder, segments=segments, n_samples=12, batch_size=4, fill="blur",
                  seed=0, sigma=0)
    fill = gaussian(image, sigma=0.045 * 40, mode="reflect", channel_axis=-1,
                    preserve_range=True)
    seen = torch.cat(recorder.batches)[:12].permute(0, 2, 3, 1).numpy()
    for i, row in enumerate(exp.samples):
        np.testing.assert_allclose(seen[i], _naive_perturbed(image, exp.segments, row, 0) +
                                   np.where(row[exp.segments][..., None], 0, fill), atol=1e-5)
    assert exp.options["fill"] == "blur" and (~exp.samples).any()


def test_padding_every_batch_has_batch_size_rows():
    image = _smooth_image(16)
    segments = _grid(16, 4)
    recorder = _Recorder(_square_embed_small)
    exp = explain(image, recorder, segments=segments, n_samples=11, batch_size=4, seed=0)
    assert [len(b) for b in recorder.batches] == [4, 4, 4]
    # the padded row repeats the last real sample and is discarded
    assert torch.equal(recorder.batches[-1][3], recorder.batches[-1][2])
    assert exp.targets.shape == (1, 11)
    seen = torch.cat(recorder.batches)[:11]
    embeddings = _square_embed_small(seen).numpy()
    expected = [_cos(e, embeddings[0]) for e in embeddings]
    np.testing.assert_allclose(exp.targets[0], expected, atol=1e-6)


def _square_embed_small(batch):
    return torch.cat([batch[:, :, 4:12, 4:12].reshape(len(batch), -1),
                      torch.ones(len(batch), 3)], dim=1)


# --------------------------------------------------------------------------- targets


def test_pair_mode_reference_embedding_and_image():
    image = _smooth_image()
    other = _smooth_image(seed=5)
    segments = _grid()
    with torch.inference_mode():
        own = _square_embed(torch.from_numpy(image).permute(2, 0, 1)[None])[0].numpy()
        ref = _square_embed(torch.from_numpy(other).permute(2, 0, 1)[None])[0].numpy()
    by_vector = explain(image, _square_embed, reference=ref, segments=segments, n_samples=60,
                        seed=0)
    assert by_vector.targets[0, 0] == pytest.approx(_cos(own, ref), abs=1e-6)
    assert by_vector.options["reference"] == "embedding"
    as_dict = explain(image, _square_embed, reference={"embedding": torch.from_numpy(ref)},
                      segments=segments, n_samples=60, seed=0)
    np.testing.assert_allclose(as_dict.targets, by_vector.targets, atol=1e-12)
    # a reference image rides in the same batches (row 0) and gives the same targets
    recorder = _Recorder(_square_embed)
    by_image = explain(image, recorder, reference=other, segments=segments, n_samples=60,
                       batch_size=25, seed=0)
    assert [len(b) for b in recorder.batches] == [25, 25, 25]   # 61 rows, padded
    assert np.array_equal(recorder.batches[0][0].permute(1, 2, 0).numpy(), other)
    assert np.array_equal(recorder.batches[0][1].permute(1, 2, 0).numpy(), image)
    assert by_image.options["reference"] == "image"
    np.testing.assert_allclose(by_image.targets, by_vector.targets, atol=1e-6)
    # self mode: the unperturbed sample has similarity 1
    own_mode = explain(image, _square_embed, segments=segments, n_samples=60, seed=0)
    assert own_mode.targets[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert np.array_equal(own_mode.samples, by_vector.samples)


def test_callable_target_receives_reference():
    image = _smooth_image()
    calls = []

    def distance(activations, reference):
        calls.append(reference.shape)
        return -torch.linalg.vector_norm(activations - reference, dim=1)

    exp = explain(image, _square_embed, target=distance, segments=_grid(), n_samples=50, seed=0)
    assert exp.targets[0, 0] == 0.0 and (exp.targets[0, 1:] <= 0).all()
    assert calls[0] == (24 * 32 * 3 + 16,) and exp.options["target"] == "callable"


# --------------------------------------------------------------------------- fit


@pytest.mark.parametrize("ridge", [0.0, 2.5])
def test_fit_equals_sklearn(ridge):
    from sklearn.linear_model import LinearRegression, Ridge
    from sklearn.metrics import r2_score

    image = _smooth_image()

    def two_layers(batch):
        x = _square_embed(batch)
        return {"a": x, "b": torch.sqrt(x + 0.1)}

    exp = explain(image, two_layers, segments=_grid(), n_samples=300, ridge=ridge,
                  kernel="matlab", sampling="matlab", seed=2)
    assert exp.layers == ["a", "b"] and exp.r2.shape == (2,)
    for i in range(2):
        model = LinearRegression() if ridge == 0 else Ridge(alpha=ridge)
        model.fit(exp.samples.astype(float), exp.targets[i], sample_weight=exp.weights)
        np.testing.assert_allclose(exp.coefficients[i], model.coef_, atol=1e-6)
        assert exp.intercepts[i] == pytest.approx(model.intercept_, abs=1e-6)
        predicted = model.predict(exp.samples.astype(float))
        assert exp.r2[i] == pytest.approx(r2_score(exp.targets[i], predicted,
                                                   sample_weight=exp.weights), abs=1e-6)


def test_wls_solver_on_random_data_and_constant_target():
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    samples = rng.random((200, 7)) > 0.4
    targets = np.stack([samples @ rng.normal(size=7) + rng.normal(0, 0.1, 200),
                        np.full(200, 0.25)], axis=1)
    weights = rng.random(200) + 0.1
    coefficients, intercepts, r2 = fit_linear(samples, targets, weights, ridge=0.0)
    model = LinearRegression().fit(samples, targets[:, 0], sample_weight=weights)
    np.testing.assert_allclose(coefficients[0], model.coef_, atol=1e-10)
    np.testing.assert_allclose(coefficients[1], 0, atol=1e-12)
    assert intercepts[1] == pytest.approx(0.25) and r2[1] == 1.0


def test_fit_is_the_same_to_the_bit_whatever_blas_threads_the_caller_set():
    """A torchrun shard runs with OMP_NUM_THREADS=1 and a one-process run with every core;
    their explanations must agree bit for bit. LAPACK's solve with 2 threads differed from
    1 thread by ~5e-16 on the 2-core build machine; the fit now always uses one."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    samples = rng.random((1000, 76)) < 0.5
    targets, weights = rng.random((1000, 18)), rng.random(1000)
    fits = []
    for threads in (1, 2, 4):
        with threadpool_limits(threads, user_api="blas"):
            fits.append(fit_linear(samples, targets, weights, ridge=0.0))
    for fit in fits[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(fits[0], fit))


def test_painting_and_smoothing_by_hand():
    image = _smooth_image()
    segments = _grid()
    # raw coefficients (the paper's text): positive_only=False
    rough = explain(image, _square_embed, segments=segments, n_samples=100, seed=0, sigma=0,
                    positive_only=False)
    painted = rough.coefficients[0][segments]
    assert painted.min() < 0          # so that painting max(b, 0) makes a difference below
    expected = (painted - painted.min()) / (painted.max() - painted.min())
    np.testing.assert_allclose(rough.heatmap(), expected, atol=1e-12)
    # sigma=4 is MATLAB's imgaussfilt: kernel 2*ceil(2*sigma)+1 = 17 taps, replicated border
    smooth = explain(image, _square_embed, segments=segments, n_samples=100, seed=0, sigma=4,
                     positive_only=False)
    taps = np.exp(-np.arange(-8, 9) ** 2 / (2 * 16.0))
    taps /= taps.sum()
    padded = np.pad(painted, 8, mode="edge")
    rows = np.stack([np.convolve(r, taps, mode="valid") for r in padded])
    both = np.stack([np.convolve(c, taps, mode="valid") for c in rows.T]).T
    expected = (both - both.min()) / (both.max() - both.min())
    np.testing.assert_allclose(smooth.heatmap(), expected, atol=1e-10)
    # the default paints max(b, 0), as the MATLAB LIME the paper ran
    positive = explain(image, _square_embed, segments=segments, n_samples=100, seed=0, sigma=0)
    assert positive.options["positive_only"] is True
    clipped = np.maximum(painted, 0)
    np.testing.assert_allclose(positive.heatmap(), clipped / clipped.max(), atol=1e-12)
    assert not np.allclose(positive.heatmap(), rough.heatmap())
    explicit = explain(image, _square_embed, segments=segments, n_samples=100, seed=0, sigma=0,
                       positive_only=True)
    np.testing.assert_array_equal(explicit.heatmaps, positive.heatmaps)


def test_explainer_warns_when_no_coefficient_is_positive():
    image = _smooth_image()

    def negative_only(activations, reference):
        """The share of black pixels: removing any superpixel raises it (coefficients < 0)."""
        return (activations[:, 1:] == 0).double().mean(dim=1)

    def black_share(batch):
        return torch.cat([torch.ones(len(batch), 1), batch.reshape(len(batch), -1)], dim=1)

    with pytest.warns(ExplanationWarning, match="no superpixel has a positive coefficient"):
        exp = explain(image, black_share, target=negative_only, segments=_grid(), n_samples=200,
                      seed=0)
    assert (exp.coefficients[0] <= 0).all()
    assert np.array_equal(exp.heatmaps, np.zeros((1, SIZE, SIZE)))
    raw = explain(image, black_share, target=negative_only, segments=_grid(), n_samples=200,
                  seed=0, positive_only=False)
    assert raw.heatmaps.max() == 1.0


def test_all_negative_coefficients_paint_an_all_zero_map():
    """max(b, 0) of coefficients that are all <= 0 is constant: the map is all 0 (MATLAB's too)."""
    from faceexp.explain.lime_steps import paint

    segments = np.array([[0, 0, 1], [2, 2, 1]])
    coefficients = np.array([[-0.5, -0.1, 0.0], [-0.5, 0.3, 0.1]])
    heatmaps = paint(coefficients, segments, sigma=0)
    np.testing.assert_array_equal(heatmaps[0], np.zeros((2, 3)))
    # second map: max(b, 0) = (0, 0.3, 0.1), scaled by 0.3
    np.testing.assert_allclose(heatmaps[1], [[0, 0, 1], [1 / 3, 1 / 3, 1]])
    raw = paint(coefficients, segments, sigma=0, positive_only=False)
    # raw b = (-0.5, -0.1, 0) for the first: min-max scaled over [-0.5, 0]
    np.testing.assert_allclose(raw[0], [[0, 0, 0.8], [1, 1, 0.8]])


def test_constant_embedding_gives_zero_heatmap():
    image = _smooth_image()
    # 64 grid superpixels need at least 65 samples; the constant target is said too.
    with pytest.warns(ExplanationWarning, match="under-determined"), \
            pytest.warns(ExplanationWarning, match="does not react to the perturbation"):
        exp = explain(image, lambda b: torch.ones(len(b), 5), segments=_grid(), n_samples=30,
                      seed=0)
    assert np.array_equal(exp.heatmaps, np.zeros((1, SIZE, SIZE)))
    np.testing.assert_allclose(exp.targets, 1.0, atol=1e-6)


def test_all_zero_embedding_is_refused():
    image = _smooth_image()
    with pytest.raises(ValueError, match=r"all-zero embedding for the image's layer\(s\) \['embedding'\]"):
        explain(image, lambda b: torch.zeros(len(b), 5), segments=_grid(), n_samples=100)
    with pytest.raises(ValueError, match="all-zero embedding for the reference's layer"):
        explain(image, _square_embed, reference=np.zeros(2320), segments=_grid(),
                n_samples=100)


# --------------------------------------------------------------------------- layers


def test_multi_layer_one_call_per_batch_equals_single_layer_runs():
    image = _smooth_image()
    calls = []

    def three(batch):
        calls.append(len(batch))
        x = _square_embed(batch)
        return {"a": x, "b": x ** 2, "c": batch.reshape(len(batch), 3, -1).mean(-1).numpy() + 1,
                "unused": torch.zeros(len(batch), 2)}

    options = dict(segments=_grid(), n_samples=130, batch_size=50, seed=7)
    together = explain(image, three, layers=["a", "b", "c"], **options)
    assert calls == [50, 50, 50]
    assert together.heatmaps.shape == (3, SIZE, SIZE) and together.layers == ["a", "b", "c"]
    for i, layer in enumerate(["a", "b", "c"]):
        alone = explain(image, three, layers=[layer], **options)
        np.testing.assert_allclose(together.coefficients[i], alone.coefficients[0], atol=1e-10)
        np.testing.assert_allclose(together.heatmaps[i], alone.heatmaps[0], atol=1e-8)
        assert together.r2[i] == pytest.approx(alone.r2[0], abs=1e-10)
        assert np.array_equal(together.heatmap(layer), together.heatmaps[i])
    with pytest.warns(ExplanationWarning, match=r"all-zero embedding .*\['unused'\]"):
        everything = explain(image, three, **options)
    assert everything.layers == ["a", "b", "c", "unused"]


def test_explain_many_equals_explain_and_save_load(tmp_path):
    images = [_smooth_image(seed=s) for s in range(3)]
    explainer = Explainer(_square_embed, n_samples=40, n_segments=20)
    many = explainer.explain_many(images, seeds=10, progress=False)
    for i, exp in enumerate(many):
        single = explainer.explain(images[i], seed=10 + i)
        assert exp.seed == 10 + i and np.array_equal(exp.heatmaps, single.heatmaps)
    path = many[0].save(tmp_path / "e.npz", image=images[0])
    loaded = Explanation.load(path)
    for name in ("heatmaps", "segments", "coefficients", "intercepts", "targets", "samples",
                 "weights", "r2"):
        assert np.array_equal(getattr(loaded, name), getattr(many[0], name))
    assert loaded.layers == many[0].layers and loaded.options == many[0].options
    assert loaded.seed == 10
    assert np.array_equal(np.load(path)["image"], images[0])


# --------------------------------------------------------------------------- vs lime


def _tiny_classifier() -> nn.Module:
    """A small fixed CNN classifier (5 classes), weights from a seeded generator."""
    generator = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                        nn.Flatten(), nn.Linear(128, 5)).eval()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return net


@pytest.fixture(scope="module")
def lime_setup():
    from skimage import data
    from skimage.segmentation import slic
    from skimage.transform import resize

    net = _tiny_classifier()

    def probabilities(batch):
        with torch.inference_mode():
            return torch.softmax(net(batch.float()), dim=1)

    image = resize(data.chelsea(), (SIZE, SIZE)).astype(np.float32)
    segments = slic(image, n_segments=20, compactness=10, start_label=0)
    return net, probabilities, image, segments


def _lime_run(probabilities, image, segments, n_samples, random_state, record=None):
    from lime import lime_image

    def classifier_fn(images):
        if record is not None:
            record.append(images.copy())
        batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        return probabilities(batch).numpy()

    explainer = lime_image.LimeImageExplainer(random_state=random_state)
    result = explainer.explain_instance(image, classifier_fn, top_labels=1, hide_color=0,
                                        num_samples=n_samples, batch_size=50,
                                        segmentation_fn=lambda x: segments)
    label = result.top_labels[0]
    coefficients = np.zeros(segments.max() + 1)
    for feature, value in result.local_exp[label]:
        coefficients[feature] = value
    return result, int(label), coefficients


def test_softmax_mode_agrees_with_lime_package(lime_setup):
    _, probabilities, image, segments = lime_setup
    _, label, lime_coefficients = _lime_run(probabilities, image, segments, 300, 0)
    exp = explain(image, lambda b: {"softmax": probabilities(b), "gap": b.mean(dim=(2, 3))},
                  target="softmax", segments=segments, n_samples=300, p_off=0.5,
                  kernel="lime", ridge=1.0, sigma=0, seed=0)
    assert exp.layers == ["softmax"] and exp.options["class_index"] == label
    painted_ours = exp.coefficients[0][segments].ravel()
    painted_lime = lime_coefficients[segments].ravel()
    # measured 0.91-0.95 over seeds (two lime runs with different seeds: 0.95)
    assert np.corrcoef(painted_ours, painted_lime)[0, 1] > 0.85


def test_per_layer_targets_equal_separate_runs(lime_setup):
    """A dict target (GAP cosine + softmax probability) is one pass giving exactly the
    two single-target explanations of the same seed."""
    _, probabilities, image, segments = lime_setup
    calls = []

    def both(batch):
        calls.append(len(batch))
        return {"softmax": probabilities(batch), "gap": batch.mean(dim=(2, 3)) + 0.1}

    options = dict(segments=segments, n_samples=120, batch_size=40, seed=3)
    joint = explain(image, both, target={"gap": "cosine", "softmax": "softmax"}, **options)
    assert calls == [40, 40, 40] and joint.layers == ["gap", "softmax"]
    gap = explain(image, both, layers=["gap"], **options)
    soft = explain(image, both, target="softmax", **options)
    np.testing.assert_allclose(joint.coefficients[0], gap.coefficients[0], atol=1e-10)
    np.testing.assert_allclose(joint.coefficients[1], soft.coefficients[0], atol=1e-10)
    np.testing.assert_allclose(joint.heatmaps, np.concatenate([gap.heatmaps, soft.heatmaps]),
                               atol=1e-8)
    assert joint.options["class_index"] == soft.options["class_index"]
    assert joint.options["target"] == {"gap": "cosine", "softmax": "softmax"}
    # the class is read from the softmax layer, also when it is not called "softmax"
    renamed = explain(image, lambda b: {"p": probabilities(b), "gap": b.mean(dim=(2, 3)) + 0.1},
                      target={"gap": "cosine", "p": "softmax"}, **options)
    assert renamed.options["class_index"] == soft.options["class_index"]
    np.testing.assert_allclose(renamed.coefficients[1], soft.coefficients[0], atol=1e-10)
    with pytest.raises(ValueError, match="target: the dict names layers"):
        Explainer(both, target={"gap": "cosine"}, layers=["gap", "softmax"])
    with pytest.raises(ValueError, match=r"target\['gap'\] must be one of .*, got 'cos'"):
        Explainer(both, target={"gap": "cos"})
    with pytest.raises(ValueError, match="reference: only used with target='cosine'"):
        explain(image, both, target={"gap": "cosine", "softmax": "softmax"},
                reference=image, **options)


def test_batch_size_default_comes_from_the_embed_callable():
    image = _smooth_image(16)
    segments = _grid(16, 4)
    recorder = _Recorder(_square_embed_small)
    explain(image, recorder, segments=segments, n_samples=11, seed=0)
    assert [len(b) for b in recorder.batches] == [50]     # no preference: 50, padded
    recorder.batches.clear()
    recorder.preferred_batch_size = 3
    exp = explain(image, recorder, segments=segments, n_samples=11, seed=0)
    assert [len(b) for b in recorder.batches] == [3, 3, 3, 3]
    assert exp.options["batch_size"] == 3
    recorder.batches.clear()
    explain(image, recorder, segments=segments, n_samples=11, seed=0, batch_size=6)
    assert [len(b) for b in recorder.batches] == [6, 6]        # given: it wins


def test_kernel_and_fit_equal_lime_on_lime_samples(lime_setup):
    """Same samples (recovered from lime's images): same coefficients, intercept, R^2."""
    _, probabilities, image, segments = lime_setup
    record = []
    result, label, lime_coefficients = _lime_run(probabilities, image, segments, 100, 1, record)
    images = np.concatenate(record)
    n_superpixels = segments.max() + 1
    assert not any((image[segments == s] == 0).all() for s in range(n_superpixels))
    samples = np.stack([[not (im[segments == s] == 0).all() for s in range(n_superpixels)]
                        for im in images])
    targets = probabilities(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()[:, [label]]
    weights = kernel_weights(samples, kernel="lime", width=0.25)
    coefficients, intercepts, r2 = fit_linear(samples, targets, weights, ridge=1.0)
    np.testing.assert_allclose(coefficients[0], lime_coefficients, atol=1e-6)
    assert intercepts[0] == pytest.approx(result.intercept[label], abs=1e-6)
    assert r2[0] == pytest.approx(result.score, abs=1e-6)


# --------------------------------------------------------------------------- bad input


def _nan_embed(batch):
    out = batch.reshape(len(batch), -1).clone()
    out[:, 0] = float("nan")
    return {"good": batch.reshape(len(batch), -1) + 1, "bad": out}


@pytest.mark.parametrize("image, match", [
    (np.zeros((8, 8)), "image must be an \\(H, W, 3\\)"),
    (np.zeros((8, 8, 4)), "image must be an \\(H, W, 3\\)"),
    (np.zeros((8, 8, 3), np.int32), "image: dtype int32"),
    (np.full((8, 8, 3), 1.5), "image: float values must lie in \\[0, 1\\]"),
    (np.full((8, 8, 3), -0.1), "image: float values must lie in \\[0, 1\\]"),
])
def test_bad_images(image, match):
    with pytest.raises(ValueError, match=match):
        explain(image, _square_embed, n_samples=10)


@pytest.mark.parametrize("options, match", [
    (dict(n_samples=1), "n_samples must be an int >= 2"),
    (dict(n_segments=1), "n_segments must be an int >= 2"),
    (dict(p_off=0.0), "p_off must be a probability"),
    (dict(p_off=1.0), "p_off must be a probability"),
    (dict(sampling="uniform"), "sampling must be one of .*, got 'uniform'"),
    (dict(kernel="rbf"), "kernel must be one of .*, got 'rbf'"),
    (dict(target="euclid"), "target must be one of .*, got 'euclid'"),
    (dict(fill="white"), "fill must be 'black', 'mean', 'blur' or an RGB triple in \\[0, 1\\], got 'white'"),
    (dict(fill=(0.5, 0.5)), "fill must be 'black', 'mean' or 3 floats"),
    (dict(fill=(0.5, 0.5, 2.0)), "fill must be 'black', 'mean' or 3 floats"),
    (dict(batch_size=0), "batch_size must be an int >= 1"),
    (dict(ridge=-1.0), "ridge must be a number >= 0"),
    (dict(sigma=-1.0), "sigma must be a number >= 0"),
    (dict(kernel_width=0.0), "kernel_width must be a positive number"),
    (dict(layers=["a", "a"]), "layers: duplicate"),
])
def test_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        Explainer(_square_embed, **options)


def test_bad_calls():
    image = _smooth_image()
    grid = _grid()
    with pytest.raises(ValueError, match="embed must be a callable"):
        Explainer("not a function")
    with pytest.raises(ValueError, match="segments: found 1 superpixel"):
        explain(image, _square_embed, segments=np.zeros((SIZE, SIZE), int), n_samples=10)
    with pytest.raises(ValueError, match="segments must be an integer map of shape"):
        explain(image, _square_embed, segments=np.zeros((4, 4), int), n_samples=10)
    with pytest.raises(ValueError, match=r"layers must be among the layers the embed callable "
                                         r"returns, \['embedding'\], got unknown layer\(s\) "
                                         r"\['gapp'\]"):
        explain(image, _square_embed, layers=["gapp"], segments=grid, n_samples=10)
    with pytest.raises(ValueError, match="reference: layer 'embedding' has dimension 2320 but "
                                         "the reference vector has 5; expected D=2320"):
        explain(image, _square_embed, reference=np.ones(5), segments=grid, n_samples=10)
    with pytest.raises(ValueError, match="reference: image of shape"):
        explain(image, _square_embed, reference=np.zeros((8, 8, 3)), segments=grid,
                n_samples=10)
    with pytest.raises(ValueError, match="reference: a single \\(D,\\) vector is ambiguous"):
        explain(image, _nan_embed, reference=np.ones(5), segments=grid, n_samples=10)
    with pytest.raises(ValueError, match="reference: only used with target='cosine'"):
        explain(image, _square_embed, target="softmax", reference=np.ones(5), segments=grid)
    with pytest.raises(ValueError, match="embed: layer 'bad' returned NaN or infinite"):
        explain(image, _nan_embed, segments=grid, n_samples=10)
    with pytest.raises(ValueError, match="embed output 'embedding' must have shape \\(5, D\\) "
                                         "for a batch of 5 images, got \\(3, 4\\)"):
        explain(image, lambda b: torch.ones(3, 4), segments=grid, n_samples=10, batch_size=5)
    with pytest.raises(ValueError, match="embed must return an \\(N, D\\) tensor"):
        explain(image, lambda b: [1, 2], segments=grid, n_samples=10)
    with pytest.raises(ValueError, match="target: the class probabilities are read from layer "
                                         "'softmax', which the embed callable does not return"):
        explain(image, lambda b: {"gap": b.mean(dim=(2, 3))}, target="softmax", segments=grid,
                n_samples=10)
    with pytest.raises(ValueError, match=r"class_index must be in \[0, 3\)"):
        explain(image, lambda b: {"softmax": torch.ones(len(b), 3) / 3}, target="softmax",
                class_index=9, segments=grid, n_samples=10)
    with pytest.raises(ValueError, match="class_index: only used with target='softmax'"):
        explain(image, _square_embed, class_index=3, segments=grid, n_samples=10)
    with pytest.raises(ValueError, match="class_index must be >= 0"):
        explain(image, lambda b: {"softmax": torch.ones(len(b), 3) / 3}, target="softmax",
                class_index=-1, segments=grid, n_samples=10)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        explain(image, _square_embed, segments=grid, n_samples=10, seed=-1)
    exp = explain(image, _nan_embed, layers=["good"], segments=grid, n_samples=10, seed=0)
    with pytest.raises(ValueError, match="layer must be one of .*, got 'bad'"):
        exp.heatmap("bad")
    with pytest.raises(FileNotFoundError, match="no such file"):
        Explanation.load("/nonexistent/explanation.npz")


# --------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_on_an_orl_face(tmp_path, capsys):
    from faceexp.data.folders import orl_root

    face = orl_root() / "s1" / "1.pgm"
    out = tmp_path / "exp.npz"
    png = tmp_path / "exp.png"
    done = subprocess.run(
        [sys.executable, "-m", "faceexp", "explain", str(face), "--model", "mobilenetv2",
         "--layers", "gap,softmax", "--samples", "20", "--batch-size", "10", "--segments", "30", "--seed", "0",
         "--out", str(out), "--png", str(png)],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "ImageNet" in done.stderr            # says it explains an uninitialised-head net
    data = np.load(out)
    assert list(data["layers"]) == ["gap", "softmax"]
    assert data["heatmaps"].shape == (2, 113, 113)
    assert data["segments"].shape == (113, 113)
    n_superpixels = int(data["segments"].max()) + 1
    assert data["coefficients"].shape == (2, n_superpixels)
    assert data["targets"].shape == (2, 20) and data["samples"].shape == (20, n_superpixels)
    assert data["image"].shape == (113, 113, 3)
    assert png.stat().st_size > 1000
    loaded = Explanation.load(out)
    assert loaded.options["n_samples"] == 20 and loaded.seed == 0
    from faceexp.cli import main

    code = main(["explain", str(face), "--model", "mobilenetv2", "--layers", "nosuchlayer",
                 "--samples", "4", "--out", str(tmp_path / "x.npz"), "--quiet"])
    assert code == 2 and "unknown layer 'nosuchlayer'" in capsys.readouterr().err
    code = main(["explain", str(tmp_path / "missing.png"), "--model", "mobilenetv2",
                 "--out", str(tmp_path / "x.npz"), "--quiet"])
    assert code == 2 and "missing.png' does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
