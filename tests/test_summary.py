"""faceexp.report.summary: constructed results in, the expected sentences out."""
from __future__ import annotations

import pytest

from faceexp.report.summary import (claim_records, chapter_sentences, findings_markdown, measurement,
                                    normalise_record, verdict_sentence)

RECORDS = [
    {"claim": "a", "subject": "sface", "value": 1.2, "ci_low": 0.4, "ci_high": 2.0, "n": 24,
     "verdict": "agrees", "reason": "the interval lies above 0"},
    {"claim": "c", "subject": "sface", "value": 0.0018, "ci_low": 0.0, "ci_high": 0.0034, "n": 12,
     "verdict": "differs", "reason": "ours is lower than the paper's range"},
    {"claim": "b", "subject": "resnet50", "value": -0.1, "ci_low": -0.3, "ci_high": 0.1, "n": 8,
     "verdict": "undecided", "reason": "the interval contains 0."},
    {"claim": "e", "subject": "sface", "value": None, "ci_low": None, "ci_high": None, "n": None,
     "verdict": "cannot be tested", "reason": "ORL has no profile faces"},
]


def test_measurement_prints_value_interval_unit_and_n():
    assert measurement(0.0018, 0.0, 0.0034, 24, unit="%", digits=2) == "0.18% [0.00, 0.34], n = 24"
    assert measurement(1.2, 0.4, 2.0, 24, unit="dB") == "1.20 [0.40, 2.00] dB, n = 24"
    assert measurement(None, n=3) == "–, n = 3"


def test_verdict_sentences_by_hand():
    units = {"a": "dB", "c": "%"}
    assert verdict_sentence(RECORDS[0], unit=units["a"]) == (
        "Claim (a) for sface agrees with the paper: 1.20 [0.40, 2.00] dB, n = 24 (95% interval).")
    assert verdict_sentence(RECORDS[1], unit="%", digits=2) == (
        "Claim (c) for sface differs from the paper: 0.18% [0.00, 0.34], n = 12 (95% interval).")
    assert verdict_sentence(RECORDS[2]) == (
        "Claim (b) for resnet50 is undecided at -0.100 [-0.300, 0.100], n = 8 (95% interval): "
        "the interval contains 0.")
    assert verdict_sentence(RECORDS[3]) == "Claim (e) for sface cannot be tested: ORL has no profile faces."


def test_old_record_keys_are_read():
    old = {"claim": "a", "recogniser": "mobilenetv2", "ours": 2.5, "low": 1.0, "high": 4.0,
           "outcome": "cannot be tested here", "reason": "no softmax", "level": 0.95}
    assert normalise_record(old) == {"claim": "a", "subject": "mobilenetv2", "value": 2.5, "ci_low": 1.0,
                                     "ci_high": 4.0, "n": None, "verdict": "cannot be tested",
                                     "reason": "no softmax"}
    assert normalise_record({"claim": "b", "outcome": "agrees", "ours": float("nan")})["value"] is None
    with pytest.raises(ValueError, match="verdict must be one of"):
        normalise_record({"claim": "a", "verdict": "maybe"})


def test_one_record_per_claim_and_subject_sorted_by_claim():
    later = dict(RECORDS[0], value=1.5)
    rows = claim_records(RECORDS + [later])
    assert [(r["claim"], r["subject"]) for r in rows] == [("a", "sface"), ("b", "resnet50"), ("c", "sface"),
                                                         ("e", "sface")]
    assert rows[0]["value"] == 1.5


def test_findings_markdown_found_then_undecided_then_chapters():
    text = findings_markdown(RECORDS, units={"a": "dB", "c": "%"}, digits=2,
                             chapters={"Training": {"EER of sface": {"value": 0.0042, "ci_low": 0.0,
                                                                      "ci_high": 0.0047, "n": 225, "unit": "%"},
                                                    "weights": "ImageNet"}})
    assert text == (
        "**What the book found.** Of 4 verdicts (claim and subject): 1 agrees, 1 differs, 1 undecided, "
        "1 cannot be tested.\n\n- Claim (a) for sface agrees with the paper: 1.2 [0.4, 2.0] dB, n = 24 (95% interval).\n"
        "- Claim (c) for sface differs from the paper: 0.18% [0.00, 0.34], n = 12 (95% interval).\n\n"
        "**What it could not decide, and why.**\n\n- Claim (b) for resnet50 is undecided at -0.10 [-0.30, 0.10], "
        "n = 8 (95% interval): the interval contains 0.\n- Claim (e) for sface cannot be tested: "
        "ORL has no profile faces.\n\n"
        "**Training.** EER of sface: 0.42% [0.00, 0.47], n = 225. weights: ImageNet.\n")
    assert findings_markdown([]) == "**What the book found.** No chapter has recorded a verdict yet.\n"
    assert chapter_sentences({"images": 24}) == ["images: 24."]


def test_split_sentence_gives_the_validation_share_by_hand():
    import pandas as pd

    from faceexp.report.summary import split_sentence

    splits = pd.DataFrame({"identities": [28, 28, 12], "images": [252, 28, 120]}, index=["train", "val", "test"])
    # 28 / (252 + 28) = 10.0%
    assert split_sentence(splits) == (
        "The networks are trained on 252 images of 28 identities; 28 more images of those identities "
        "(10.0% of their 280) are held out for validation, and verification uses 120 images of 12 "
        "identities never trained on.")
    with pytest.raises(ValueError, match="identities and images"):
        split_sentence(pd.DataFrame({"n": [1]}))


def test_a_subject_the_competence_gate_left_out_is_said_so_and_extras_can_be_kept():
    gated = {"claim": "b", "subject": "dlib", "value": None, "ci_low": None, "ci_high": None, "n": None,
             "verdict": "not competent", "reason": "EER 31% on these pairs", "n_needed": None, "statement": "s"}
    assert verdict_sentence(gated) == ("Claim (b) for dlib is not judged, the subject failed the competence "
                                       "check: EER 31% on these pairs.")
    kept = claim_records([gated], keep_extra=True)[0]
    assert list(kept)[:8] == ["claim", "subject", "value", "ci_low", "ci_high", "n", "verdict", "reason"]
    assert kept["statement"] == "s" and "statement" not in claim_records([gated])[0]
    old = {"claim": "a", "recogniser": "mb2", "ours": 1.0, "low": 0.0, "high": 2.0, "outcome": "agrees"}
    assert set(claim_records([old], keep_extra=True)[0]) == {"claim", "subject", "value", "ci_low", "ci_high",
                                                              "n", "verdict", "reason"}


def test_a_subject_that_failed_the_competence_gate_is_named_once():
    gate = "verification EER 19.8% [11.7, 28.2] over 12 test identities; the gate asks below 10%"
    records = RECORDS[:1] + [
        {"claim": c, "subject": "mobilenetv2", "value": None, "ci_low": None, "ci_high": None,
         "n": None, "verdict": "not competent", "reason": gate + "."} for c in ("b", "a", "d")]
    text = findings_markdown(records, units={"a": "dB"})
    assert text.count(gate) == 1
    assert ("**What it could not decide, and why.** Every claim tested was decided.\n\n"
            "**Left out of the claims.** mobilenetv2 is not judged on claims (a), (b), (d), having "
            "failed the competence check: " + gate + ".\n") in text
