"""faceexp.report.verdicts: the paper's claims, verdicts from numbers, paragraphs and the claims table."""
from __future__ import annotations

import math

import pytest

from faceexp.report.verdicts import (CLAIMS, NOT_RUN, OUTCOMES, Claim, Verdict, claims_table, verdict,
                              verdict_paragraph)


def test_the_five_claims_name_their_section_and_number():
    assert sorted(CLAIMS) == ["a", "b", "c", "d", "e"]
    assert CLAIMS["c"].section.startswith("IV-B") and "3.44" in CLAIMS["c"].paper
    assert "35-50" in CLAIMS["e"].statement and "IV-E" in CLAIMS["e"].section
    assert "forehead" in CLAIMS["d"].statement and "nose" in CLAIMS["b"].statement
    assert all(c.rule in ("sign", "contains") and c.quantity for c in CLAIMS.values())
    assert CLAIMS["c"].expected == -1.0 and CLAIMS["c"].unit == "%"


@pytest.mark.parametrize("ours, low, high, outcome, words", [
    (0.12, 0.08, 0.16, "agrees", "lies above 0, the direction the paper reports"),
    (-0.12, -0.16, -0.08, "differs", "lies below 0: the opposite of the paper's direction"),
    (0.01, -0.03, 0.05, "cannot be tested here", "contains 0"),
])
def test_sign_rule(ours, low, high, outcome, words):
    v = verdict("e", ours, low, high)
    assert v.outcome == outcome and words in v.reason
    assert v.claim is CLAIMS["e"] and (v.ours, v.low, v.high) == (ours, low, high)


def test_sign_rule_for_an_effect_expected_below_zero():
    # claim (c): fusion should lower the EER (relative change < 0)
    assert verdict("c", -0.08, -0.12, -0.03).outcome == "agrees"
    assert verdict("c", 0.05, 0.01, 0.09).outcome == "differs"
    assert "[-12.0 %, -3.0 %]" in verdict("c", -0.08, -0.12, -0.03).reason


@pytest.mark.parametrize("expected, outcome, words", [
    (5.61, "agrees", "meets our 95% interval"),
    ((5.0, 5.2), "agrees", "meets"),             # ranges that overlap
    (3.0, "differs", "lies above the paper's value 3.000"),
    ((6.5, 7.0), "differs", "lies below the paper's value [6.500, 7.000]"),
])
def test_contains_rule(expected, outcome, words):
    v = verdict("e", 5.5, 5.1, 6.0, rule="contains", expected=expected)
    assert v.outcome == outcome and words in v.reason


def test_cannot_be_tested_here_with_a_reason():
    v = verdict("b", untestable="ORL has no profile faces")
    assert v.outcome == "cannot be tested here" and v.reason == "ORL has no profile faces"
    assert math.isnan(v.ours)
    nan = verdict("b", float("nan"), float("nan"), float("nan"))
    assert nan.outcome == OUTCOMES[2] and "NaN" in nan.reason
    # a reason wins over numbers
    assert verdict("b", 0.5, 0.4, 0.6, untestable="no landmarks").outcome == OUTCOMES[2]


def test_bad_verdict_calls():
    with pytest.raises(ValueError, match="claim must be a Claim or one of the ids"):
        verdict("f", 1.0, 0.0, 2.0)
    with pytest.raises(ValueError, match="low and high"):
        verdict("a", 1.0)
    with pytest.raises(ValueError, match="must lie within its interval"):
        verdict("a", 3.0, 0.0, 2.0)
    with pytest.raises(ValueError, match="rule must be one of"):
        verdict("a", 1.0, 0.0, 2.0, rule="roughly")
    with pytest.raises(ValueError, match=r"expected must be \+1 or -1"):
        verdict("a", 1.0, 0.0, 2.0, expected=0.5)


def test_paragraph_states_paper_ours_and_verdict():
    text = verdict_paragraph("e", 0.123, 0.08, 0.16)
    assert text.startswith("**Claim (e)** (paper, Sec. IV-E, V): ")
    assert "*Paper:* Threshold 0.8 removes 1.6-1.8 %" in text
    assert "*Ours:* 0.123 [0.080, 0.160] (95% interval; Per image, the cosine similarity of the probe" in text
    assert text.endswith("**Verdict: agrees**: our 95% interval [0.080, 0.160] lies above 0, "
                         "the direction the paper reports.")
    fused = verdict("c", -0.08, -0.12, -0.03, recogniser="FaceNet")
    assert "**Claim (c)** (FaceNet)" in verdict_paragraph(fused)
    assert "*Ours:* -8.0 % [-12.0 %, -3.0 %]" in verdict_paragraph(fused)
    untested = verdict_paragraph("d", untestable="only one layer was explained")
    assert "*Ours:* n/a (" in untested
    assert untested.endswith("**Verdict: cannot be tested here**: only one layer was explained.")
    with pytest.raises(ValueError, match="a Verdict carries its numbers"):
        verdict_paragraph(fused, 1.0)


def test_claims_table_one_row_per_claim_and_one_column_per_recogniser():
    single = claims_table([verdict("e", 0.12, 0.08, 0.16), verdict("b", untestable="no landmarks")])
    assert list(single.columns) == ["claim", "paper", "ours (95% interval)", "verdict"]
    assert len(single) == 5 and single["claim"].str[:3].tolist() == ["(a)", "(b)", "(c)", "(d)", "(e)"]
    assert single.loc[4, "verdict"] == "agrees" and single.loc[4, "ours (95% interval)"] == \
        "0.120 [0.080, 0.160]"
    assert single.loc[1, "verdict"] == "cannot be tested here"
    assert single.loc[0, "verdict"] == NOT_RUN
    both = claims_table({"MB2": [verdict("c", -0.08, -0.12, -0.03)],
                         "R50": [verdict("c", 0.01, -0.02, 0.04)]})
    assert list(both.columns) == ["claim", "paper", "ours (95% interval): MB2", "verdict: MB2",
                                  "ours (95% interval): R50", "verdict: R50"]
    assert both.loc[2, "verdict: MB2"] == "agrees"
    assert both.loc[2, "verdict: R50"] == "cannot be tested here"
    with pytest.raises(ValueError, match=r"two verdicts for claim \(e\)"):
        claims_table([verdict("e", 0.1, 0.0, 0.2), verdict("e", 0.1, 0.0, 0.2)])
    with pytest.raises(ValueError, match="must hold Verdict objects"):
        claims_table(["agrees"])


def test_a_claim_of_ones_own():
    mine = Claim(id="f", section="IV-C", statement="Fusion helps profiles most.", paper="-10.3 %",
                 quantity="relative change on P-P", rule="contains", expected=(-0.11, -0.095),
                 unit="%")
    v = verdict(mine, -0.05, -0.08, -0.02)
    assert isinstance(v, Verdict) and v.outcome == "differs"
    assert "lies above the paper's value [-11.0 %, -9.5 %]" in v.reason
    table = claims_table([v])
    assert len(table) == 6 and table.loc[5, "verdict"] == "differs"
