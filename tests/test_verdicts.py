"""faceexp.report.verdicts and faceexp.report.competence: the four-outcome rule on constructed
intervals, n_needed worked by hand, paragraphs, the claims table and the competence gate."""
from __future__ import annotations

import math

import pytest

from faceexp.report.competence import COMPETENCE_THRESHOLD, competence_gate, competence_gates
from faceexp.report.verdicts import (CLAIM_E_SIMILARITY, CLAIMS, NOT_COMPETENT, NOT_RUN, OUTCOMES,
                                     Claim, Verdict, claims_table, n_needed, not_competent,
                                     verdict, verdict_paragraph)


def test_the_five_claims_state_their_smallest_effect_from_the_paper():
    assert sorted(CLAIMS) == ["a", "b", "c", "d", "e"]
    assert OUTCOMES == ("agrees", "differs", "undecided", "cannot be tested")
    # the paper's numbers: 2 dB (IV-A), -8.0 % fusion gain (Table I), +35 % EER rise (IV-E)
    assert (CLAIMS["a"].smallest_effect, CLAIMS["a"].direction, CLAIMS["a"].unit) == (2.0, 1, "dB")
    assert (CLAIMS["c"].smallest_effect, CLAIMS["c"].direction) == (0.08, -1)
    assert "3.44" in CLAIMS["c"].paper and "-8.0 %" in CLAIMS["c"].basis
    assert (CLAIMS["e"].smallest_effect, CLAIMS["e"].n_unit) == (0.35, "identities")
    assert "35-50" in CLAIMS["e"].statement and "5.17" in CLAIMS["e"].basis
    # no number in the paper: stated once, justified
    assert CLAIMS["b"].smallest_effect == CLAIMS["d"].smallest_effect == 0.1
    assert "flat map" in CLAIMS["b"].basis
    assert CLAIM_E_SIMILARITY.id == "e" and CLAIM_E_SIMILARITY.smallest_effect == 0.02
    assert all(c.basis and c.quantity for c in CLAIMS.values())


# claim (e): direction +1, smallest effect 0.35 (a +35 % EER rise)
@pytest.mark.parametrize("ours, low, high, outcome, words", [
    (0.50, 0.40, 0.60, "agrees", "lies above 35.0 %, the smallest effect that counts"),
    (-0.10, -0.20, -0.05, "differs", "the opposite of the paper's direction"),
    (0.15, 0.05, 0.25, "differs", "in the paper's direction but smaller than the smallest effect"),
    (0.05, -0.05, 0.15, "differs", "no effect of the size the paper states"),
    (0.30, 0.10, 0.50, "undecided", "contains 35.0 %"),
])
def test_four_outcome_rule_on_claim_e(ours, low, high, outcome, words):
    v = verdict("e", ours, low, high, n=20)
    assert v.outcome == outcome and words in v.reason
    assert (v.ours, v.low, v.high, v.n) == (ours, low, high, 20)


def test_boundaries_belong_to_undecided():
    # the closed interval touching the smallest effect is undecided, from either side
    assert verdict("e", 0.45, 0.35, 0.55, n=10).outcome == "undecided"
    assert verdict("e", 0.30, 0.25, 0.35, n=10).outcome == "undecided"
    assert verdict("e", 0.45, 0.3500001, 0.55, n=10).outcome == "agrees"
    assert verdict("e", 0.30, 0.25, 0.3499999, n=10).outcome == "differs"
    # a sign claim of size 0 (a Claim of one's own): an interval starting at 0 decides nothing
    sign = Claim(id="f", section="x", statement="s", paper="p", quantity="q", smallest_effect=0.0)
    assert verdict(sign, 0.1, 0.0, 0.2, n=5).outcome == "undecided"
    assert verdict(sign, 0.1, 0.01, 0.2, n=5).outcome == "agrees"


def test_a_claim_whose_effect_is_negative_reads_the_interval_downwards():
    # claim (c): fusion must lower the EER by at least 8 %: agrees needs high < -0.08
    assert verdict("c", -0.15, -0.20, -0.10, n=30).outcome == "agrees"
    mild = verdict("c", -0.05, -0.07, -0.03, n=30)
    assert mild.outcome == "differs" and "lies above -8.0 %" in mild.reason
    assert "in the paper's direction but smaller" in mild.reason
    worse = verdict("c", 0.05, 0.01, 0.09, n=30)
    assert worse.outcome == "differs" and "opposite" in worse.reason
    open_ = verdict("c", -0.06, -0.12, 0.00, n=30)
    assert open_.outcome == "undecided" and "contains -8.0 %" in open_.reason
    # by hand: half-width 0.06, distance |0.06 - 0.08| = 0.02 -> 30 * (0.06/0.02)^2 = 270
    assert open_.n_needed == 270 and "about 270 identities would decide it" in open_.reason


def test_n_needed_worked_by_hand():
    # 20 images, interval [0.10, 0.50] around 0.30 (half-width 0.20), claim (e) at 0.35:
    # distance 0.05 -> 20 * (0.20 / 0.05)^2 = 320
    v = verdict("e", 0.30, 0.10, 0.50, n=20)
    assert v.half_width == pytest.approx(0.20) and v.n_needed == 320
    assert n_needed(20, 0.2, 0.05) == 320
    assert n_needed(10, 0.1, 0.3) == 11          # never fewer than n + 1
    assert n_needed(7, 0.3, 0.2) == math.ceil(7 * 2.25) == 16
    assert n_needed(10, 0.1, 0.0) is None       # an effect on the boundary: no n decides it
    at_boundary = verdict("e", 0.35, 0.2, 0.5, n=10)
    assert at_boundary.n_needed is None and "no number of units" in at_boundary.reason
    assert verdict("e", 0.30, 0.10, 0.50).n_needed is None      # no n given


def test_cannot_be_tested_only_with_a_reason_and_missing_values_are_undecided():
    v = verdict("d", untestable="a black box: no layers")
    assert v.outcome == "cannot be tested" and v.reason == "a black box: no layers"
    assert math.isnan(v.ours)
    nan = verdict("b", float("nan"), n=2, missing="2 crops with landmarks")
    assert nan.outcome == "undecided"
    assert nan.reason == "2 crops with landmarks; more images would be needed (2 so far)"
    assert verdict("b", 0.5, 0.4, 0.6, untestable="no landmarks").outcome == "cannot be tested"


def test_bad_verdict_calls():
    with pytest.raises(ValueError, match="claim must be a Claim or one of the ids"):
        verdict("f", 1.0, 0.0, 2.0)
    with pytest.raises(ValueError, match="low and high"):
        verdict("a", 1.0)
    with pytest.raises(ValueError, match="must lie within its interval"):
        verdict("a", 3.0, 0.0, 2.0)
    with pytest.raises(ValueError, match="smallest_effect must be a number >= 0"):
        verdict("a", 1.0, 0.0, 2.0, smallest_effect=-1)
    with pytest.raises(ValueError, match="n must be a count"):
        verdict("a", 1.0, 0.0, 2.0, n=2.5)
    with pytest.raises(ValueError, match="untestable must be a sentence"):
        verdict("a", untestable=" ")


def test_smallest_effect_override():
    assert verdict("a", 1.5, 1.2, 1.8, n=9).outcome == "differs"             # below 2 dB
    assert verdict("a", 1.5, 1.2, 1.8, n=9, smallest_effect=1.0).outcome == "agrees"


def test_paragraph_states_paper_ours_n_and_verdict():
    text = verdict_paragraph("e", 0.42, 0.38, 0.46, n=12)
    assert text.startswith("**Claim (e)** (paper, Sec. IV-E, V): ")
    assert "*Ours:* 42.0 % [38.0 %, 46.0 %], n = 12 identities (95% interval; Relative EER" in text
    assert "**Verdict: agrees**: our 95% interval [38.0 %, 46.0 %] lies above 35.0 %" in text
    untested = verdict_paragraph("d", untestable="only one layer was explained")
    assert "*Ours:* n/a (" in untested
    assert untested.endswith("**Verdict: cannot be tested**: only one layer was explained.")
    with pytest.raises(ValueError, match="a Verdict carries its numbers"):
        verdict_paragraph(verdict("e", 0.42, 0.38, 0.46), 1.0)


def test_claims_table_one_row_per_claim_with_n_per_subject():
    single = claims_table([verdict("e", 0.42, 0.38, 0.46, n=12),
                           verdict("b", untestable="no landmarks")])
    assert list(single.columns) == ["claim", "paper", "ours (95% interval)", "n", "verdict"]
    assert single["claim"].str[:3].tolist() == ["(a)", "(b)", "(c)", "(d)", "(e)"]
    assert single.loc[4, "verdict"] == "agrees" and single.loc[4, "n"] == 12
    assert single.loc[4, "ours (95% interval)"] == "42.0 % [38.0 %, 46.0 %]"
    assert single.loc[1, "verdict"] == "cannot be tested" and single.loc[0, "verdict"] == NOT_RUN
    both = claims_table({"MB2": [verdict("c", -0.15, -0.2, -0.1, n=30)],
                         "R50": [verdict("c", 0.01, -0.02, 0.04, n=30)]})
    assert list(both.columns) == ["claim", "paper", "ours (95% interval): MB2", "n: MB2",
                                  "verdict: MB2", "ours (95% interval): R50", "n: R50",
                                  "verdict: R50"]
    assert both.loc[2, "verdict: MB2"] == "agrees" and both.loc[2, "verdict: R50"] == "differs"
    with pytest.raises(ValueError, match=r"two verdicts for claim \(e\)"):
        claims_table([verdict("e", 0.1, 0.0, 0.2), verdict("e", 0.1, 0.0, 0.2)])
    with pytest.raises(ValueError, match="must hold Verdict objects"):
        claims_table(["agrees"])


def test_competence_gate_passes_only_when_the_upper_end_is_below_the_threshold():
    assert COMPETENCE_THRESHOLD == 0.10
    passes, reason = competence_gate(0.02, 0.01, 0.04, 12)
    assert passes and reason.startswith("verification EER 2.0 % [1.0 %, 4.0 %] over 12 test "
                                        "identities: passes")
    fails, reason = competence_gate(0.231, 0.18, 0.284, 12)
    assert not fails
    assert reason == ("verification EER 23.1 % [18.0 %, 28.4 %] over 12 test identities; the "
                      "competence gate asks the interval's upper end below 10 %: left out of "
                      "the claims")
    # a point estimate below the threshold is not enough: the interval decides
    assert competence_gate(0.06, 0.03, 0.11, 12)[0] is False
    assert competence_gate(0.06, 0.03, 0.10, 12)[0] is False          # strictly below
    assert competence_gate(0.06, 0.03, 0.11, 12, threshold=0.15)[0] is True
    assert competence_gate(float("nan"), float("nan"), float("nan"), 0)[0] is False
    with pytest.raises(ValueError, match="as a fraction in"):
        competence_gate(23.1, 18.0, 28.4, 12)
    with pytest.raises(ValueError, match="must lie within its interval"):
        competence_gate(0.2, 0.01, 0.04, 12)
    gates = competence_gates({"sface": (0.0, 0.0, 0.0, 12),
                              "resnet50": {"eer": 0.3, "ci_low": 0.2, "ci_high": 0.4, "n": 12}})
    assert list(gates) == ["resnet50"] and "30.0 %" in gates["resnet50"]


def test_not_competent_is_outside_the_four_outcomes():
    v = not_competent("b", "resnet50", "verification EER 30 %")
    assert isinstance(v, Verdict) and v.outcome == NOT_COMPETENT
    assert NOT_COMPETENT not in OUTCOMES and v.recogniser == "resnet50"


def test_gate_records_applies_the_gate_to_written_records():
    from faceexp.report.competence import gate_records

    records = [{"claim": "b", "subject": "resnet50", "value": 0.3, "ci_low": 0.2, "ci_high": 0.4,
                "n": 60, "verdict": "undecided", "reason": "r", "n_needed": 100},
               {"claim": "c", "subject": "mobilenetv2+resnet50", "value": -0.1, "ci_low": -0.2,
                "ci_high": 0.0, "n": 12, "verdict": "undecided", "reason": "r"},
               {"claim": "b", "subject": "sface", "value": 0.3, "ci_low": 0.2, "ci_high": 0.4,
                "n": 60, "verdict": "agrees", "reason": "r"}]
    r50, fused, sface = gate_records(records, {"resnet50": "EER 30 %"})
    assert r50["verdict"] == NOT_COMPETENT and r50["reason"] == "EER 30 %"
    assert r50["value"] is None and r50["n"] is None and "n_needed" not in r50
    assert fused["verdict"] == NOT_COMPETENT and fused["reason"] == "resnet50: EER 30 %"
    assert sface == records[2] and records[0]["verdict"] == "undecided"     # inputs untouched
