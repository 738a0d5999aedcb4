"""faceexp.evaluate.compare.recommendation_rule (chapter 10's rule) and .randomisation (the spread
of the explained similarity under the randomised network), on constructed per-face scores."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from faceexp.evaluate.compare.randomisation import (DEGENERATE_SPREAD, explained_spread,
                                                    randomisation_summary)
from faceexp.evaluate.compare.recommendation_rule import (
    PRIMARY, decide, explainer_gates, primary_scores, recommend, recommendation_text,
    write_recommendation)


def _per_face(recogniser: str, gains: dict, **extra) -> pd.DataFrame:
    """Per-face rows: insertion AUC = 0.5 + gain over a baseline of 0.5 (so the gain is exact)."""
    rows = []
    for explainer, values in gains.items():
        for face, g in enumerate(values):
            row = {"recogniser": recogniser, "explainer": explainer, "face": face,
                   "white_box": True, "insertion_auc_pair": 0.5 + g,
                   "insertion_baseline_pair": 0.5, "seed_rank_corr": 1.0,
                   "randomisation_rank_corr": 0.1, "note": np.nan}
            row.update({k: v[explainer] for k, v in extra.items() if explainer in v})
            rows.append(row)
    return pd.DataFrame(rows)


ALTERNATING = np.array([0.05, -0.05] * 6)


def test_primary_measure_is_the_insertion_gain_on_pairs():
    frame = pd.DataFrame({"insertion_auc_pair": [0.7, 0.4], "insertion_baseline_pair": [0.5, 0.5]})
    assert primary_scores(frame).tolist() == pytest.approx([0.2, -0.1])
    assert primary_scores(frame).name == PRIMARY
    with pytest.raises(ValueError, match="missing"):
        primary_scores(frame.drop(columns="insertion_baseline_pair"))


def test_a_clear_lead_gives_the_winner_and_the_halves_agree():
    # A beats B by exactly 0.2 on every face: the paired interval is [0.2, 0.2]
    b = 0.1 + ALTERNATING
    per_face = _per_face("net", {"A": b + 0.2, "B": b, "C": b - 0.05})
    (r,) = recommend(per_face)
    assert (r["explainer"], r["runner_up"], r["faces"]) == ("A", "B", 12)
    assert r["lead"] == pytest.approx(0.2) and r["ci_low"] == pytest.approx(0.2)
    assert r["ci_high"] == pytest.approx(0.2)
    assert r["halves_agree"] is True and [h["faces"] for h in r["halves"]] == [6, 6]
    assert [h["explainer"] for h in r["halves"]] == ["A", "A"]
    assert list(r["ranking"]) == ["A", "B", "C"]
    assert r["ranking"]["A"] == pytest.approx(0.3)
    assert "use **A**: it leads B by 0.200 [0.200, 0.200]" in recommendation_text([r])
    assert "The two halves of the faces (6 and 6 faces) agree: use A; use A." \
        in recommendation_text([r])


def test_a_lead_whose_interval_contains_zero_gives_no_winner():
    # A - B = +0.05, -0.05 alternating, plus 0.001: mean lead 0.001, interval around it
    b = np.full(12, 0.2)
    per_face = _per_face("net", {"A": b + ALTERNATING + 0.001, "B": b})
    (r,) = recommend(per_face)
    assert r["explainer"] is None and (r["best"], r["runner_up"]) == ("A", "B")
    assert r["lead"] == pytest.approx(0.001)
    assert r["ci_low"] < 0 < r["ci_high"]
    text = recommendation_text([r])
    assert "no clear winner between A and B: A leads B by 0.001" in text
    assert "an interval that contains 0" in text


def test_halves_that_pick_different_winners_disagree():
    # the rule's split: a seeded permutation, the first 6 of it vs the rest
    order = np.random.default_rng(0).permutation(12)
    first = np.zeros(12, bool)
    first[order[:6]] = True
    a = np.where(first, 0.5, 0.1)
    b = np.where(first, 0.1, 0.5)
    # each half has a clear winner (constant lead of 0.4), the two differ;
    # over all faces the lead is 0 -> no winner
    (r,) = recommend(_per_face("net", {"A": a, "B": b}), split_seed=0)
    assert [h["explainer"] for h in r["halves"]] == ["A", "B"]
    assert r["halves_agree"] is False and r["explainer"] is None
    assert "disagree" in recommendation_text([r])
    # both halves without a winner on the same pair (in either order): agree
    tie = 0.2 + ALTERNATING
    (r,) = recommend(_per_face("net", {"A": tie, "B": tie[::-1].copy(), "C": tie - 0.3}))
    assert r["explainer"] is None and r["halves_agree"] is True
    assert {r["halves"][0]["best"], r["halves"][0]["runner_up"]} == {"A", "B"}


def test_gates_leave_out_with_their_numbers_and_degenerate_checks_are_not_held_against():
    b = 0.1 + ALTERNATING
    gains = {"A": b + 0.2, "B": b, "C": b + 0.5}
    # C has the best gain, but its map survives randomisation
    per_face = _per_face("net", gains, randomisation_rank_corr={"C": 0.9})
    (r,) = recommend(per_face)
    assert r["explainer"] == "A"
    assert r["gates"] == {"C": "fails the randomisation check: its map keeps a rank correlation "
                               "of 0.90 (at least 0.5) with the map on the randomised network"}
    # the same check, degenerate (the randomised network's similarity barely moves): not applied
    degenerate = _per_face("net", gains, randomisation_rank_corr={"C": 0.9},
                           randomisation_degenerate={"A": False, "B": False, "C": True})
    (r,) = recommend(degenerate)
    assert r["explainer"] == "C" and r["gates"] == {}
    unstable = _per_face("net", gains, seed_rank_corr={"C": 0.3})
    assert "unstable across seeds" in explainer_gates(unstable)["C"]
    blocked = pd.concat([_per_face("net", gains),
                         pd.DataFrame([{"recogniser": "net", "explainer": "grad-cam",
                                        "white_box": False, "note": "n/a (black box)"}])])
    assert explainer_gates(blocked)["grad-cam"] == "cannot run: n/a (black box)"
    assert recommend(blocked)[0]["explainer"] == "C"


def test_a_leader_that_does_not_beat_a_random_map_is_not_recommended():
    b = -0.3 + ALTERNATING                         # every map worse than random
    (r,) = recommend(_per_face("net", {"A": b + 0.2, "B": b}))
    assert r["best"] == "A" and r["ci_low"] > 0 and r["explainer"] is None
    assert r["best_high"] < 0
    assert "does not exclude a random map" in recommendation_text([r])


def test_few_faces_give_the_ranking_but_no_recommendation():
    b = 0.1 + ALTERNATING[:4]
    (r,) = recommend(_per_face("net", {"A": b + 0.2, "B": b}))
    assert r["faces"] == 4 and r["best"] == "A" and r["ci_low"] == pytest.approx(0.2)
    assert r["explainer"] is None and r["min_faces"] == 6
    assert "no recommendation on fewer than 6 faces: A leads B by 0.200" \
        in recommendation_text([r])
    (solo,) = recommend(_per_face("net", {"A": b + 0.2}))
    assert "no recommendation: A is the only explainer that passed the gates (insertion gain " \
           "0.300 [" in recommendation_text([solo])
    assert recommendation_text([solo]).endswith("on fewer than 6 faces. The two halves of the "
                                                "faces (2 and 2 faces) agree: no winner; no "
                                                "winner.")


def test_decide_on_few_faces_and_one_explainer():
    one = decide(pd.DataFrame({"A": [0.2, 0.3, 0.25]}), min_faces=3)
    assert one["explainer"] == "A" and one["runner_up"] is None and one["faces"] == 3
    # the same on fewer than MIN_DECISION_FACES (6) faces: ranked, not recommended
    few = decide(pd.DataFrame({"A": [0.2, 0.3, 0.25]}))
    assert few["explainer"] is None and few["best"] == "A"
    assert few["best_gain"] == pytest.approx(0.25)
    clear = pd.DataFrame({"A": [0.5, 0.6, 0.55], "B": [0.1, 0.2, 0.15]})
    assert decide(clear)["explainer"] is None and decide(clear, min_faces=3)["explainer"] == "A"
    assert decide(clear)["lead"] == pytest.approx(0.4)
    assert decide(pd.DataFrame({"A": [0.2], "B": [0.1]}))["best"] is None    # one face
    # a face with a NaN is left out for every explainer
    assert decide(pd.DataFrame({"A": [0.2, np.nan, 0.3], "B": [0.1, 0.1, 0.1]}))["faces"] == 2


def test_recommendation_json(tmp_path):
    b = 0.1 + ALTERNATING
    records = recommend(pd.concat([_per_face("facenet-casia", {"A": b + 0.2, "B": b}),
                                   _per_face("sface", {"A": b, "B": b + ALTERNATING})]))
    path = write_recommendation(records, tmp_path)
    doc = json.loads(path.read_text())
    assert path.name == "recommendation.json" and list(doc) == ["facenet-casia", "sface"]
    assert list(doc["facenet-casia"])[:7] == ["explainer", "runner_up", "lead", "ci_low",
                                              "ci_high", "faces", "halves_agree"]
    assert doc["facenet-casia"]["explainer"] == "A" and doc["sface"]["explainer"] is None


# ------------------------------------------------------------------ the randomisation spread


def _halves_embed(offset: float):
    """Embedding (left-half mean + offset, right-half mean + offset) of channel 0."""
    def embed(batch):
        batch = torch.as_tensor(batch)
        w = batch.shape[-1] // 2
        return torch.stack([batch[:, 0, :, :w].mean(dim=(1, 2)) + offset,
                            batch[:, 0, :, w:].mean(dim=(1, 2)) + offset], dim=1)
    return embed


def test_explained_spread_by_hand():
    face = np.ones((8, 8, 3), np.float32)
    segments = np.zeros((8, 8), np.int64)
    segments[:, 4:] = 1
    # reference (self) embeds to (2, 2); a perturbation with one half black to (1, 2):
    # cosine 6 / sqrt(5 * 8); both on or both off: cosine 1
    out = explained_spread(_halves_embed(1.0), face, None, segments, n_samples=64, seed=0)
    assert out["range"] == pytest.approx(1 - 6 / math.sqrt(40), rel=1e-5)
    assert 0 < out["spread"] <= out["range"] / 2 + 1e-9 and out["n_samples"] == 64
    # nearly one embedding for every image: cosine moves by ~1e-7, far below the threshold
    flat = explained_spread(_halves_embed(1000.0), face, None, segments, n_samples=64, seed=0)
    assert flat["spread"] < 1e-5 < DEGENERATE_SPREAD
    # a partner as reference: its own embedding under the same network
    partner = np.zeros((8, 8, 3), np.float32)
    partner[:, :4] = 1                               # embeds to (2, 1)
    pair = explained_spread(_halves_embed(1.0), face, partner, segments, n_samples=64, seed=0)
    # sims: (2,2)->6/sqrt(40), (1,2)->4/sqrt(25)=0.8, (2,1)->1, (1,1)->3/sqrt(10)
    assert pair["range"] == pytest.approx(1 - 0.8, rel=1e-5)
    with pytest.raises(ValueError, match="segments must be integer labels"):
        explained_spread(_halves_embed(1.0), face, None, segments[:4])
    with pytest.raises(ValueError, match="p_off"):
        explained_spread(_halves_embed(1.0), face, None, segments, p_off=1.0)


def test_randomisation_summary_flags_a_degenerate_check():
    frame = pd.DataFrame({"explainer": ["lime"] * 3 + ["occ"] * 3, "image": [0, 1, 2] * 2,
                          "stages": 2, "rank_corr": [0.1, 0.2, 0.3, 0.7, 0.8, 0.9],
                          "spread": [1e-3, 2e-3, 0.5] * 2, "trained_spread": 0.05})
    table = randomisation_summary(frame)
    assert table["rank_corr"].tolist() == pytest.approx([0.2, 0.8])
    assert table["spread"].tolist() == pytest.approx([2e-3, 2e-3])          # the median
    assert table["degenerate"].tolist() == [True, True] and table["faces"].tolist() == [3, 3]
    assert randomisation_summary(frame, threshold=1e-3)["degenerate"].tolist() == [False, False]
    with pytest.raises(ValueError, match="missing"):
        randomisation_summary(frame.drop(columns="spread"))


def test_randomisation_reading_says_when_the_check_is_degenerate():
    from faceexp.evaluate.compare.randomisation import randomisation_reading

    frame = pd.DataFrame({"recogniser": "facenet-casia", "explainer": ["lime"] * 4,
                          "image": [0, 1, 0, 1], "stages": [1, 1, 8, 8],
                          "rank_corr": [0.5, 0.4, 0.1, 0.2], "spread": [0.2, 0.1, 1e-3, 3e-3],
                          "trained_spread": 0.05})
    text = randomisation_reading(randomisation_summary(frame))
    assert text.startswith("**facenet-casia**: with 8 stages re-initialised, the explained "
                           "similarity moves with a standard deviation of 0.002")
    assert "(median over 2 faces; 0.05 on the trained network)" in text
    assert "below 0.01: the check is **degenerate**" in text
    fine = randomisation_reading(randomisation_summary(frame.assign(spread=0.3)))
    assert "at least 0.01" in fine and "degenerate" not in fine


def test_rule_text_says_what_was_run():
    from faceexp.evaluate.compare.recommendation_rule import rule_text

    b = 0.1 + ALTERNATING
    records = recommend(_per_face("sface", {"A": b + 0.2, "B": b}))
    text = rule_text(records, budget=300)
    assert text.startswith("Faces explained per recogniser at a budget of 300 images through the "
                           "network per map: sface 12 (halves of 6 and 6).")
    assert "the insertion gain on genuine pairs" in text and "below 0.5" in text
    assert "95% paired bootstrap interval over faces above 0" in text
    one = recommend(_per_face("sface", {"A": [0.3], "B": [0.1]}))
    assert recommendation_text(one) == ("**sface** (1 face): too few faces for an interval over "
                                        "faces: no recommendation. The two halves of the faces "
                                        "(1 and 0 faces) cannot be compared (a half has fewer "
                                        "than 2 faces).")


class _TinyNet(torch.nn.Module):
    """A 1x1 conv and a linear head on the top-left 4 x 4 block of a 8 x 8 face."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1, bias=False)
        self.head = torch.nn.Linear(48, 8, bias=False)
        torch.manual_seed(0)
        torch.nn.init.normal_(self.conv.weight)
        torch.nn.init.normal_(self.head.weight)

    def forward(self, x):
        return self.head(self.conv(x)[:, :, :4, :4].reshape(len(x), -1))


def test_compare_explainers_records_the_spread_beside_each_rank_correlation():
    from faceexp.evaluate import compare as fc
    from faceexp.explain.lime_steps import superpixels

    rng = np.random.default_rng(0)
    faces = rng.uniform(0.2, 0.8, size=(2, 8, 8, 3)).astype(np.float32)
    model = fc.FaceModel(module=_TinyNet(), cam_layer="conv", name="tiny")
    result = fc.compare_explainers(model, faces, explainers=["captum-saliency"], reference="self",
                                   seeds=(0,), budget=4, n_segments=4, steps=(0.0, 0.5),
                                   cascade=[1])
    rand = result.randomisation
    assert {"spread", "trained_spread", "degenerate"} <= set(rand)
    # the trained network's spread is explained_spread on the face's own superpixels
    segments = superpixels(faces[1], 4, slic_zero=fc.SLIC_ZERO)
    expected = explained_spread(model.embed, faces[1], None, segments, seed=[0, 1])["spread"]
    assert rand.loc[rand["image"] == 1, "trained_spread"].iloc[0] == pytest.approx(expected)
    assert (rand["degenerate"] == (rand["spread"] < DEGENERATE_SPREAD)).all()
    assert result.per_face["randomisation_spread"].tolist() == pytest.approx(
        rand["spread"].tolist())
    assert "randomisation_spread" in fc.headline_table(result)
