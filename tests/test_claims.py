"""faceexp.report.claims and faceexp.evaluate.sensitivity on constructed inputs whose verdicts are known."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from faceexp.report import claims
from faceexp.evaluate import regions
from faceexp.recognisers.canonical import CANONICAL_SIZE, CANONICAL_TEMPLATE
from faceexp.evaluate.sensitivity import summarise_sensitivity


class _Set:
    """The parts of a HeatmapSet the claims read."""

    def __init__(self, maps: dict, n: int, embedding_layer="embedding"):
        self.maps = maps
        self.layers = list(maps)
        self.images = np.zeros((n, *CANONICAL_SIZE, 3), np.float32)
        self.frame = pd.DataFrame({"path": [f"p{k}" for k in range(n)], "identity": ["a"] * n,
                                   "pose": ["frontal"] * n})
        self.embedding_layer = embedding_layer

    def layer(self, name):
        return self.maps[name]

    @property
    def embedding(self):
        return self.maps[self.embedding_layer]


def _on(region: str, n: int, rng) -> np.ndarray:
    mask = regions.region_masks(CANONICAL_TEMPLATE, CANONICAL_SIZE)[region]
    return np.stack([mask * rng.uniform(0.5, 1.0) for _ in range(n)]).astype(np.float32)


def _study(kind="recogniser", has_layers=True):
    subject = SimpleNamespace(kind=kind, embedding_layer="embedding", has_layers=has_layers)
    return SimpleNamespace(subject=lambda name: subject)


def test_claim_b_agrees_when_the_mass_is_on_the_nose_and_differs_on_the_mouth():
    rng = np.random.default_rng(0)
    nose = _Set({"embedding": _on("nose", 8, rng)}, 8)
    mouth = _Set({"embedding": _on("mouth", 8, rng)}, 8)
    result = SimpleNamespace(heatmaps={"nose-net": nose, "mouth-net": mouth})
    verdicts = {v.recogniser: v for v in claims.claim_b(result, _study())}
    assert verdicts["nose-net"].outcome == "agrees" and verdicts["nose-net"].low > 0.1
    assert verdicts["mouth-net"].outcome == "differs" and verdicts["mouth-net"].high < 0
    assert verdicts["nose-net"].n == 8 and verdicts["mouth-net"].n == 8
    # all mass on the nose: ratio 1/area share there, the contrast is its half (two regions)
    share = regions.region_masks(CANONICAL_TEMPLATE, CANONICAL_SIZE)["nose"].mean()
    assert verdicts["nose-net"].ours == pytest.approx((1 / share) / 2 - 0, rel=1e-6)


def test_claim_d_reads_the_shift_from_forehead_to_nose_with_depth():
    rng = np.random.default_rng(1)
    moving = _Set({"conv1": _on("forehead", 6, rng), "embedding": _on("nose", 6, rng)}, 6)
    (v,) = claims.claim_d({"net": moving}, _study())
    assert v.claim.id == "d" and v.outcome == "agrees" and v.low > 0.1 and v.n == 6
    (black,) = claims.claim_d({"box": moving}, _study(has_layers=False))
    assert black.outcome == "cannot be tested" and "black box" in black.reason


def test_claim_a_says_why_when_the_softmax_maps_are_constant():
    gap = np.random.default_rng(2).uniform(size=(4, 10, 10))
    result = SimpleNamespace(maps={"resnet50": (gap, np.zeros((4, 10, 10)))})
    (v,) = claims.claim_a(result)
    # lack of data is never "cannot be tested": undecided, with n
    assert v.outcome == "undecided" and "0 of 4 images" in v.reason and v.n == 0


def test_verdict_records_are_plain_json():
    import json

    rng = np.random.default_rng(0)
    result = SimpleNamespace(heatmaps={"n": _Set({"embedding": _on("nose", 5, rng)}, 5)})
    records = claims.as_records(claims.claim_b(result, _study()))
    text = json.dumps(records)
    (record,) = json.loads(text)
    assert list(record)[:8] == ["claim", "subject", "value", "ci_low", "ci_high", "n", "verdict",
                                "reason"]
    assert record["claim"] == "b" and record["subject"] == "n" and record["verdict"] == "agrees"
    assert record["n"] == 5 and record["smallest_effect"] == 0.1
    assert record["ci_low"] <= record["value"] <= record["ci_high"]


def test_sensitivity_summary_reads_each_choice_against_the_seed_floor():
    floor = [30.0, 31.0, 29.0, 30.5, 30.2, 29.8]
    rows = [{"setting": "default", "image": i, "psnr_to_default": p, "faithfulness": 0.1, "r2": 0.5}
            for i, p in enumerate(floor)]
    rows += [{"setting": "far", "image": i, "psnr_to_default": p - 10, "faithfulness": 0.2, "r2": 0.5}
             for i, p in enumerate(floor)]
    rows += [{"setting": "near", "image": i, "psnr_to_default": p + (0.3 if i % 2 else -0.3),
              "faithfulness": 0.1, "r2": 0.5} for i, p in enumerate(floor)]
    summary = summarise_sensitivity(pd.DataFrame(rows))
    assert summary.loc["far", "against the seed floor"] == "moves the heatmaps more than a new seed"
    assert summary.loc["near", "against the seed floor"] == "not distinguishable from the seed floor"
    assert summary.loc["far", "PSNR to default (dB)"] == pytest.approx(np.mean(floor) - 10)
    from faceexp.report.text import sensitivity_reading

    text = sensitivity_reading(summary)
    assert "more than a new seed does: far." in text and "Most faithful on these images: far" in text


def test_claim_e_compares_significant_with_random_removal_per_image():
    """Two thresholds, images 0-3: after significant removal the pair similarity is 0.4,
    after random superpixels 0.7 (two seeds 0.6/0.8): +0.3 per image -> agrees; a second
    network where significant removal keeps 0.9 -> -0.2 -> differs; image 3 has no
    partner (NaN) and is left out."""
    rows = []
    for network, sig in (("net-a", 0.4), ("net-b", 0.9)):
        for t in (0.8, 0.5):
            for image in range(4):
                value = np.nan if image == 3 else sig
                rows.append(dict(network=network, seed=0, image=image, threshold=t,
                                 method="significant", similarity=value))
                for seed, r in ((0, 0.6), (1, 0.8)):
                    rows.append(dict(network=network, seed=seed, image=image, threshold=t,
                                     method="random-superpixels",
                                     similarity=np.nan if image == 3 else r))
    result = SimpleNamespace(similarities=pd.DataFrame(rows))
    a, b = claims.claim_e(result)
    assert a.ours == pytest.approx(0.3) and a.outcome == "agrees" and a.n == 3
    assert b.ours == pytest.approx(-0.2) and b.outcome == "differs"
    assert a.recogniser == "net-a" and b.recogniser == "net-b"
    assert a.extra["measure"] == "paired similarity" and a.claim.smallest_effect == 0.02
    gated = claims.claim_e(result, gate={"net-b": "verification EER 30.0 %"})
    assert gated[0].outcome == "agrees" and gated[1].outcome == "not competent"
    assert gated[1].reason == "verification EER 30.0 %"


def test_records_of_a_gated_subject_and_a_fusion():
    from faceexp.report import verdicts

    mine = [verdicts.verdict("c", -0.15, -0.2, -0.1, n=40, recogniser="sface + facenet-casia"),
            verdicts.verdict("c", -0.06, -0.12, 0.0, n=40, recogniser="mobilenetv2 + resnet50"),
            verdicts.verdict("b", 0.3, 0.2, 0.4, n=60, recogniser="resnet50")]
    gate = {"resnet50": "verification EER 30.0 % [25.0 %, 35.0 %] over 12 test identities"}
    fused, paper, r50 = claims.as_records(mine, gate=gate)
    assert fused["subject"] == "sface+facenet-casia" and fused["verdict"] == "agrees"
    assert fused["smallest_effect"] == -0.08 and "n_needed" not in fused
    # a fusion with a gated member is left out, naming the member
    assert paper["subject"] == "mobilenetv2+resnet50" and paper["verdict"] == "not competent"
    assert paper["reason"].startswith("resnet50: verification EER 30.0 %")
    assert paper["value"] is None and paper["n"] is None
    assert r50["verdict"] == "not competent" and r50["reason"] == gate["resnet50"]
    (undecided,) = claims.as_records(mine[1:2])
    # half-width 0.06, distance 0.02: 40 * 9 = 360
    assert undecided["verdict"] == "undecided" and undecided["n_needed"] == 360
    assert undecided["half_width"] == pytest.approx(0.06)
    assert claims.subject_name(" a +b ") == "a+b"


def test_claim_e_rise_reads_the_paper_size_and_calls_a_zero_eer_a_ceiling():
    import numpy as np
    import pandas as pd

    from faceexp.report import claims

    rise = pd.DataFrame([
        {"network": "sface", "protocol": "ORL pairs", "method": "significant", "rise": np.nan,
         "ci_low": np.nan, "ci_high": np.nan, "identities": 12},
        {"network": "sface", "protocol": "degraded", "method": "significant", "rise": 0.5,
         "ci_low": 0.4, "ci_high": 0.6, "identities": 12},
        {"network": "sface", "protocol": "degraded", "method": "random-pixels", "rise": 0.1,
         "ci_low": 0.0, "ci_high": 0.2, "identities": 12},
        {"network": "facenet-casia", "protocol": "degraded", "method": "significant", "rise": 0.2,
         "ci_low": 0.1, "ci_high": 0.3, "identities": 12}])
    out = claims.claim_e_rise(rise)
    assert [v.outcome for v in out] == ["cannot be tested", "agrees", "differs"]  # +40% > 35% > +30%
    assert "ceiling" in out[0].reason and out[1].extra["protocol"] == "degraded"
    records = claims.as_records(out)
    assert [r["measure"] for r in records] == [claims.RISE_MEASURE] * 3
