"""Explanations with known answers: construction, scoring, CorrRISE, signed maps, fills."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from faceexp.evaluate.compare import EXPLAINERS, FaceModel, run_explainer, similarity_curves
from faceexp.evaluate.known_answers import (
    SWAP_REGIONS, change_auc, construct_probes, face_box, fill_agreement, fill_aucs,
    fill_curves, fill_ranking, keep_by_drop, known_answer_table, map_scores, mass_ratio,
    pair_maps, patch_swap, pixel_auc, pointing_game, random_map, region_mask, region_swap,
    score_probes, summarise_scores)
from faceexp.evaluate.masking import apply_fill, inpainted
from faceexp.explain.corrrise import corrrise, rise_masks
from faceexp.explain.explainer import Explainer
from faceexp.explain.signed_maps import signed_maps


def _faces(n=2, size=144, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((size, size, 3)).astype(np.float32) for _ in range(n)]


# --------------------------------------------------------------------------- construction


def test_patch_swap_mask_is_the_pasted_area():
    probe, donor = _faces()
    modified, mask = patch_swap(probe, donor, n_patches=5, patch_size=12, seed=3, index=1)
    assert mask.dtype == bool and mask.any()
    np.testing.assert_array_equal(modified[~mask], probe[~mask])     # outside: the probe
    np.testing.assert_array_equal(modified[mask], donor[mask])       # inside: the donor
    # every patch inside the face box; at most 5 * 144 pixels, a union of squares
    x1, y1, x2, y2 = face_box()
    ys, xs = np.nonzero(mask)
    assert xs.min() >= x1 and xs.max() < x2 and ys.min() >= y1 and ys.max() < y2
    assert 144 <= mask.sum() <= 5 * 144
    again, mask_again = patch_swap(probe, donor, n_patches=5, patch_size=12, seed=3, index=1)
    np.testing.assert_array_equal(mask, mask_again)                  # seeded, deterministic
    np.testing.assert_array_equal(modified, again)


def test_region_swap_changes_only_the_region_and_keeps_positions():
    base = np.full((144, 144, 3), 0.5, dtype=np.float32)
    for region, (y, x) in {"eyes": (66, 60), "nose": (80, 73), "mouth": (108, 70)}.items():
        donor = base.copy()
        donor[y - 1:y + 2, x - 1:x + 2] = 1.0                        # a bright dot in the region
        modified, mask = region_swap(base, donor, region)
        np.testing.assert_array_equal(mask, region_mask(region))
        assert mask[y, x]
        np.testing.assert_array_equal(modified[~mask], base[~mask])  # outside: exactly the probe
        # Poisson cloning carries the donor's gradients: the dot lands where it was
        brightest = np.unravel_index(np.argmax(modified[..., 0]), mask.shape)
        assert brightest == (y - 1, x - 1)


def test_region_masks_sit_on_the_landmarks():
    from faceexp.recognisers.canonical import CANONICAL_TEMPLATE

    eyes, nose, mouth = (region_mask(r) for r in SWAP_REGIONS)
    for (x, y) in CANONICAL_TEMPLATE[:2]:
        assert eyes[int(round(y)), int(round(x))]
    assert nose[int(round(CANONICAL_TEMPLATE[2, 1])) - 4, int(round(CANONICAL_TEMPLATE[2, 0]))]
    centre = CANONICAL_TEMPLATE[3:].mean(0)
    assert mouth[int(round(centre[1])), int(round(centre[0]))]
    assert not (eyes & mouth).any()


def test_construct_probes_and_keep_rule():
    faces = np.stack(_faces(6, seed=1))
    identities = ["a", "a", "b", "b", "c", "c"]
    items = construct_probes(faces, identities, task="patch", n_probes=4, seed=0,
                             n_patches=3, patch_size=10)
    assert len(items) == 4
    for item in items:
        assert item.identity != item.donor_identity
        assert not np.array_equal(item.clean, item.mate)             # distinct images
        np.testing.assert_array_equal(item.probe[item.mask], item.donor[item.mask])
    regions = construct_probes(faces, identities, task="region", n_probes=3, seed=0)
    assert all(r.region in SWAP_REGIONS for r in regions)

    # similarity = minus the mean absolute difference: the drop is worked out by hand
    def similarity(a, b):
        return -np.abs(a - b).mean(axis=(1, 2, 3))

    kept, drops = keep_by_drop(items, similarity, min_drop=0.0)
    expected = [similarity(i.clean[None], i.mate[None])[0] - similarity(i.probe[None], i.mate[None])[0]
                for i in items]
    np.testing.assert_allclose(drops, expected)
    assert len(kept) == int(np.sum(np.asarray(expected) >= 0))
    kept_none, _ = keep_by_drop(items, similarity, min_drop=1.0)    # no swap drops by 1
    assert kept_none == []


# --------------------------------------------------------------------------- scoring


def _mask():
    mask = np.zeros((20, 20), dtype=bool)
    mask[5:10, 8:14] = True
    return mask


def test_map_equal_to_mask_scores_one_and_complement_zero():
    mask = _mask()
    scores = map_scores(mask.astype(float), mask)
    assert scores["auc"] == 1.0 and scores["pointing"] == 1.0
    assert scores["mass_ratio"] == pytest.approx(1 / mask.mean())   # all mass inside
    complement = (~mask).astype(float)
    assert pixel_auc(complement, mask) == 0.0
    assert pointing_game(complement, mask) == 0.0
    assert mass_ratio(complement, mask) == 0.0
    # a constant map: AUC 0.5, pointing the mask's area share, mass ratio 1
    assert pixel_auc(np.ones((20, 20)), mask) == 0.5
    assert pointing_game(np.ones((20, 20)), mask) == pytest.approx(mask.mean())
    assert mass_ratio(np.ones((20, 20)), mask) == pytest.approx(1.0)


def test_auc_matches_a_hand_count():
    mask = np.array([[True, False], [False, True]])
    heatmap = np.array([[0.9, 0.8], [0.1, 0.5]])
    # positives 0.9, 0.5; negatives 0.8, 0.1: pairs won 0.9>0.8, 0.9>0.1, 0.5>0.1 -> 3/4
    assert pixel_auc(heatmap, mask) == pytest.approx(0.75)


def test_random_maps_auc_interval_contains_half():
    mask = _mask()
    rows = [{"recogniser": "r", "explainer": "random", "task": "patch", "map": "similarity",
             "auc": pixel_auc(random_map(mask.shape, rng=k), mask), "auc_control": 0.5,
             "pointing": 0.0, "mass_ratio": np.nan} for k in range(40)]
    table = summarise_scores(pd.DataFrame(rows), n_boot=500)
    assert table.loc[0, "auc_low"] < 0.5 < table.loc[0, "auc_high"]
    assert table.loc[0, "kept"] == 40
    # random superpixel maps too
    segments = np.arange(400).reshape(20, 20) // 10
    aucs = [pixel_auc(random_map(mask.shape, segments=segments, rng=k), mask) for k in range(40)]
    low, high = np.percentile(aucs, [2.5, 97.5])
    assert low < 0.5 < high


def test_map_repeating_the_clean_map_has_delta_zero():
    rng = np.random.default_rng(0)
    mask = _mask()
    rows = []
    for k in range(6):
        clean = rng.random((20, 20))
        scores = map_scores(clean, mask)
        rows.append({"recogniser": "r", "explainer": "repeat", "task": "patch",
                     "map": "dissimilarity", **scores, "auc_control": pixel_auc(clean, mask),
                     "change_auc": 0.5})
        assert change_auc(clean, clean, mask) == 0.5                 # no change: 0.5
    table = summarise_scores(pd.DataFrame(rows), n_boot=200)
    assert table.loc[0, "delta"] == 0.0
    assert table.loc[0, "delta_low"] == 0.0 and table.loc[0, "delta_high"] == 0.0
    # and a map that adds the mask to the clean map changes exactly there
    assert change_auc(clean + mask, clean, mask) == 1.0


# --------------------------------------------------------------------------- CorrRISE


def _region_score(sign):
    def score(batch):
        return sign * batch[:, :, 10:20, 18:28].mean(dim=(1, 2, 3))
    return score


def test_corrrise_finds_the_one_region_the_score_reads():
    face = np.full((32, 32, 3), 0.8, dtype=np.float32)
    truth = np.zeros((32, 32), dtype=bool)
    truth[10:20, 18:28] = True
    maps = corrrise(_region_score(+1.0), face, n_masks=400, grid=4, seed=0, batch_size=64)
    assert maps.similarity.shape == (32, 32) and maps.scores.shape == (400,)
    assert pixel_auc(maps.similarity, truth) > 0.9
    assert pointing_game(maps.similarity, truth) == 1.0
    assert maps.dissimilarity[truth].max() == 0.0                    # nothing there lowers it
    flipped = corrrise(_region_score(-1.0), face, n_masks=400, grid=4, seed=0, batch_size=64)
    assert pixel_auc(flipped.dissimilarity, truth) > 0.9
    np.testing.assert_allclose(flipped.correlation, -maps.correlation, atol=1e-9)
    # seeded: the same maps again; a different batch size draws the same masks
    again = corrrise(_region_score(+1.0), face, n_masks=400, grid=4, seed=0, batch_size=64)
    np.testing.assert_array_equal(again.correlation, maps.correlation)


def test_corrrise_correlation_equals_numpy_corrcoef():
    face = np.full((16, 16, 3), 0.5, dtype=np.float32)
    weights = torch.linspace(-1, 1, 16 * 16).reshape(16, 16)

    def score(batch):
        return (batch[:, 0] * weights).sum(dim=(1, 2)) + batch[:, 1, 0, 0] ** 2

    maps = corrrise(score, face, n_masks=50, grid=3, seed=2, batch_size=7)
    masks = rise_masks(50, (16, 16), grid=3, rng=np.random.default_rng(2)).numpy()
    # the masks drawn in batches of 7 are not one draw of 50: recompute them batch-wise
    rng = np.random.default_rng(2)
    masks = np.concatenate([rise_masks(min(7, 50 - s), (16, 16), grid=3, rng=rng).numpy()
                            for s in range(0, 50, 7)])
    pixel = masks[:, 4, 9]
    expected = np.corrcoef(pixel, maps.scores)[0, 1]
    assert maps.correlation[4, 9] == pytest.approx(expected, abs=1e-9)
    assert masks.min() >= 0 and masks.max() <= 1


def test_corrrise_is_registered_for_chapter_10():
    assert "corrrise" in EXPLAINERS and EXPLAINERS["corrrise"].gradients is False


# --------------------------------------------------------------------------- signed LIME maps


class _Toy:
    """Embedding: 4 block means of the red channel (rows 0-7 / 8-15 x cols 0-7 / 8-15)."""

    compiled = False

    def __call__(self, batch):
        batch = torch.as_tensor(batch, dtype=torch.float32)
        red = batch[:, 0]
        return torch.stack([red[:, :8, :8].mean((1, 2)), red[:, :8, 8:].mean((1, 2)),
                            red[:, 8:, :8].mean((1, 2)), red[:, 8:, 8:].mean((1, 2))], 1) + 0.1


def test_signed_maps_split_one_fit_by_sign():
    face = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    segments = np.arange(16)[:, None] // 8 * 2 + np.arange(16)[None, :] // 8
    reference = np.array([1.0, -1.0, 0.5, 0.0], dtype=np.float32)
    explanation = Explainer(_Toy(), n_samples=64, sigma=0).explain(face, reference=reference,
                                                                  seed=0, segments=segments)
    maps = signed_maps(explanation)
    b = explanation.coefficients[0]
    for label in range(4):
        inside = segments == label
        if b[label] == b.max():
            assert maps["similarity"][inside].min() == 1.0
        if b[label] == b.min():
            assert maps["dissimilarity"][inside].min() == 1.0
        if b[label] <= 0:
            assert maps["similarity"][inside].max() == 0.0
        if b[label] >= 0:
            assert maps["dissimilarity"][inside].max() == 0.0
    # the similarity map is the explainer's own max(b, 0) heatmap
    np.testing.assert_allclose(maps["similarity"], explanation.heatmaps[0])


def test_pair_maps_lime_matches_the_registry():
    model = FaceModel(_Toy(), name="toy", batch_size=16)
    face = np.random.default_rng(1).random((16, 16, 3)).astype(np.float32)
    mate = torch.tensor([0.3, 0.2, 0.9, 0.1])
    segments = np.arange(16)[:, None] // 4 * 4 + np.arange(16)[None, :] // 4
    maps = pair_maps("faceexp-lime-paper", model, face, mate, seed=0, budget=60,
                     segments=segments)
    registry = run_explainer("faceexp-lime-paper", model, face, mate, seed=0, budget=60,
                             segments=segments).heatmap
    np.testing.assert_allclose(maps["similarity"], registry)
    occlusion = pair_maps("captum-occlusion", model, face, mate, seed=0, budget=20)
    signed = run_explainer("captum-occlusion", model, face, mate, seed=0, budget=20).heatmap
    np.testing.assert_allclose(occlusion["similarity"] - occlusion["dissimilarity"], signed)


def test_score_probes_rows_and_table():
    model = FaceModel(_Toy(), name="toy", batch_size=16)
    faces = np.stack(_faces(4, size=16, seed=3))
    from faceexp.recognisers.canonical import CANONICAL_TEMPLATE

    items = construct_probes(faces, ["a", "a", "b", "b"], task="patch", n_probes=2, seed=0,
                             n_patches=1, patch_size=4, landmarks=CANONICAL_TEMPLATE / 9)
    per_probe = score_probes(model, items, "corrrise", seed=0, budget=40)
    assert len(per_probe) == 4                                       # 2 probes x 2 maps
    assert set(per_probe["map"]) == {"similarity", "dissimilarity"}
    table = known_answer_table(per_probe, {("toy", "patch"): 2}, n_boot=100)
    assert list(table["kept"]) == [2, 2] and list(table["n"]) == [2, 2]
    row = table.iloc[0]
    assert row["delta"] == pytest.approx(row["auc"] - row["auc_control"])


# --------------------------------------------------------------------------- fills


def test_inpainting_changes_only_the_masked_pixels():
    rng = np.random.default_rng(0)
    image = rng.random((24, 24, 3)).astype(np.float32)
    mask = np.zeros((24, 24), dtype=bool)
    mask[8:14, 5:12] = True
    out = inpainted(image, mask)
    np.testing.assert_array_equal(out[~mask], image[~mask])
    assert not np.allclose(out[mask], image[mask])
    # a uniform image inpaints to its own colour (within 2 of 255 levels: Telea rounds)
    flat = np.full((24, 24, 3), 0.4, dtype=np.float32)
    np.testing.assert_allclose(inpainted(flat, mask)[mask], 0.4, atol=2.5 / 255)
    # through apply_fill, batched
    batch = torch.from_numpy(np.stack([image, flat]).transpose(0, 3, 1, 2).copy())
    filled = apply_fill(batch, np.stack([mask, mask]), "inpaint").numpy().transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(filled[0], out)
    blurred = apply_fill(batch, np.stack([mask, mask]), "blur").numpy().transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(blurred[0][~mask], image[~mask])
    black = apply_fill(batch, np.stack([mask, mask]), "black").numpy().transpose(0, 2, 3, 1)
    assert black[0][mask].max() == 0.0


def test_fill_curves_equal_similarity_curves_for_black():
    toy = _Toy()
    rng = np.random.default_rng(0)
    images = rng.random((2, 3, 16, 16)).astype(np.float32)
    heatmaps = rng.random((2, 16, 16))
    references = rng.random((2, 4))
    for mode in ("deletion", "insertion"):
        ours = fill_curves(toy, images, heatmaps, references, mode=mode, fill="black",
                           batch_size=5)
        theirs = similarity_curves(toy, images, heatmaps, {"pair": references}, mode=mode,
                                   batch_size=7)
        np.testing.assert_allclose(ours["similarity"].to_numpy(),
                                   theirs["similarity"].to_numpy(), atol=1e-6)


def test_fill_ranking_and_kendall_tau():
    aucs = pd.DataFrame([
        {"explainer": e, "fill": f, "mode": "deletion", "image": 0, "auc": v}
        for f, values in {"black": (0.1, 0.2, 0.3), "blur": (0.1, 0.2, 0.3),
                          "inpaint": (0.3, 0.2, 0.1)}.items()
        for e, v in zip(("a", "b", "c"), values)])
    ranking = fill_ranking(aucs, mode="deletion")
    assert list(ranking.loc[["a", "b", "c"], "black"]) == [1.0, 2.0, 3.0]  # lower AUC first
    agreement = fill_agreement(ranking).set_index(["fill_a", "fill_b"])
    assert agreement.loc[("black", "blur"), "tau"] == pytest.approx(1.0)
    assert agreement.loc[("black", "inpaint"), "tau"] == pytest.approx(-1.0)
    insertion = fill_ranking(aucs.assign(mode="insertion"), mode="insertion")
    assert list(insertion.loc[["a", "b", "c"], "black"]) == [3.0, 2.0, 1.0]


def test_fill_aucs_table():
    toy = _Toy()
    rng = np.random.default_rng(1)
    images = rng.random((2, 3, 16, 16)).astype(np.float32)
    maps = {"m1": rng.random((2, 16, 16)), "m2": rng.random((2, 16, 16))}
    table = fill_aucs(toy, images, maps, rng.random((2, 4)), steps=(0.0, 0.25, 0.5))
    assert len(table) == 2 * 3 * 2 * 2                               # maps x fills x modes x images
    assert set(table["fill"]) == {"black", "blur", "inpaint"}


# --------------------------------------------------------------------------- Quantus adapter


def test_pair_classifier_logits_are_the_pair_score():
    from faceexp.evaluate.known_answers.quantus_adapter import MATCH, NON_MATCH, PairClassifier

    stub = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2, bias=False))
    with torch.no_grad():
        stub[1].weight.zero_()
        stub[1].weight[0, 0] = 1.0                                   # e0 = red pixel (0, 0)
        stub[1].weight[1, 16] = 1.0                                  # e1 = green pixel (0, 0)
    classifier = PairClassifier(stub, [1.0, 0.0], threshold=0.5, scale=4.0)
    x = torch.zeros(2, 3, 4, 4)
    x[0, 0, 0, 0] = 1.0                                              # embedding (1, 0): s = 1
    x[1, 1, 0, 0] = 1.0                                              # embedding (0, 1): s = 0
    logits = classifier(x)
    np.testing.assert_allclose(logits.detach().numpy(), [[2.0, -2.0], [-2.0, 2.0]])
    assert logits.argmax(1).tolist() == [MATCH, NON_MATCH]
    assert len(list(classifier.parameters())) == 1                   # the stub's weight
    # a black-box callable works too, without parameters
    box = PairClassifier(lambda b: stub(b).detach().numpy(), [1.0, 0.0], threshold=0.5, scale=4.0)
    np.testing.assert_allclose(box(x).detach().numpy(), logits.detach().numpy())
    with pytest.raises(ValueError, match="reference"):
        PairClassifier(stub, np.zeros((2, 2)))


def test_quantus_localisation_agrees_with_ours():
    quantus = pytest.importorskip("quantus")
    from faceexp.evaluate.known_answers.quantus_adapter import PairClassifier

    rng = np.random.default_rng(0)
    mask = np.zeros((1, 1, 16, 16), dtype=bool)
    mask[0, 0, 4:9, 6:12] = True
    heatmap = rng.random((1, 1, 16, 16)) + 0.5 * mask
    x = rng.random((1, 3, 16, 16)).astype(np.float32)
    model = PairClassifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(768, 4)),
                           rng.random(4))
    kwargs = dict(model=model, x_batch=x, y_batch=np.array([0]), a_batch=heatmap,
                  s_batch=mask.astype(float), device="cpu")
    theirs = quantus.AUC(disable_warnings=True, normalise=False, abs=False)(**kwargs)[0]
    assert theirs == pytest.approx(pixel_auc(heatmap[0, 0], mask[0, 0]), abs=1e-9)
    pointing = quantus.PointingGame(disable_warnings=True, normalise=False, abs=False)(**kwargs)[0]
    assert float(pointing) == pointing_game(heatmap[0, 0], mask[0, 0])


# --------------------------------------------------------------------------- the chapter's readings


def test_readings_follow_the_table():
    from faceexp.study.known_answers import fills_reading, known_answers_reading
    from faceexp.evaluate.known_answers.benchmark import KnownAnswers

    base = {"recogniser": "r", "task": "patch", "map": "dissimilarity", "n": 6, "kept": 5,
            "auc_high": 0.9, "delta_high": 0.3}
    table = pd.DataFrame([
        dict(base, explainer="finds", auc=0.45, auc_low=0.40, delta=0.1, delta_low=0.05),
        dict(base, explainer="misses", auc=0.70, auc_low=0.60, delta=0.0, delta_low=-0.02)])
    text = known_answers_reading(table)
    assert "5 of 6 probes kept" in text
    finds, rest = text.split("No change beyond the control")
    assert "finds (delta 0.10 [0.05, 0.30])" in finds and "misses" not in finds
    assert "misses (delta 0.00 [-0.02, 0.30])" in rest
    assert "the other way: finds, misses" in rest          # raw AUC says the opposite for both
    ranking = pd.DataFrame({"black": [1.0, 2.0], "inpaint": [2.0, 1.0]},
                           index=pd.Index(["faceexp-lime-paper", "corrrise"], name="explainer"))
    result = KnownAnswers(table, pd.DataFrame(), {}, {}, {}, None, ranking,
                          fill_agreement(ranking), {})
    sentence = fills_reading({"r": result})
    assert "black vs inpaint: tau -1.00" in sentence
    assert "ranks 1 with the black fill and inpaint 2" in sentence and "does favour it" in sentence


def test_recommendation_check_reads_chapter_10_against_the_known_answers():
    import pandas as pd

    from faceexp.study.known_answers import recommendation_check

    rows = []
    for explainer, delta, low in (("faceexp-lime-paper", 0.19, 0.18), ("captum-occlusion", 0.23, 0.17),
                                  ("corrrise", 0.05, -0.01)):
        rows.append({"recogniser": "facenet-casia", "explainer": explainer, "task": "patch",
                     "map": "dissimilarity", "delta": delta, "delta_low": low, "delta_high": delta + 0.05})
    table = pd.DataFrame(rows)
    agree = recommendation_check(table, {"facenet-casia": {"explainer": "captum-occlusion"}})
    assert "captum-occlusion's (delta 0.23 [0.17, 0.28]): they agree" in agree
    disagree = recommendation_check(table, {"facenet-casia": {"explainer": "faceexp-lime-paper"}})
    assert disagree.endswith("they disagree.")
    none = recommendation_check(table, {"facenet-casia": {"explainer": None, "runner_up": "lime"}})
    assert "no clear winner" in none and "captum-occlusion's" in none
    assert "not in this chapter's benchmark" in recommendation_check(table, {"sface": {"explainer": "lime"}})
    assert "run it first" in recommendation_check(table, None)
