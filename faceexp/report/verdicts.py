"""The paper's claims (a)-(e) and verdicts on them written from our numbers and intervals.

:data:`CLAIMS` holds the five claims of Alonso-Fernandez et al. that the book
tests, each with the section it comes from, the paper's wording, the number
or text the paper prints, what we measure to test it and the rule that turns
our measurement into a verdict. :func:`verdict` applies the rule,
:func:`verdict_paragraph` writes the Markdown paragraph a chapter ends with,
and :func:`claims_table` the table the results page opens with. No verdict is
typed by hand: it follows from the value and interval passed in, so it cannot
disagree with the figures they came from.

Outcomes (:data:`OUTCOMES`) and rules:

* ``"sign"``: the claim is the direction of an effect (``expected`` +1:
  ours should be > 0; -1: < 0). **agrees** when our interval lies entirely on
  the expected side of 0, **differs** when it lies entirely on the other side,
  **cannot be tested here** when it contains 0 (the data cannot tell the
  direction; the reason says so and names the interval).
* ``"contains"``: the claim is a value (``expected`` a number, or a
  ``(low, high)`` range the paper gives). **agrees** when the paper's value
  or range meets our interval, **differs** otherwise (the reason says whether
  ours is lower or higher).
* Either rule: **cannot be tested here** when no value could be computed
  (pass ``untestable="why"``, e.g. "ORL has no profile faces"), or the value
  is NaN.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import pandas as pd

__all__ = ["Claim", "Verdict", "CLAIMS", "OUTCOMES", "RULES", "verdict", "verdict_paragraph",
           "claims_table"]

#: The three verdicts.
OUTCOMES = ("agrees", "differs", "cannot be tested here")
#: The rules of :func:`verdict`.
RULES = ("sign", "contains")
#: What :func:`claims_table` writes for a claim no verdict was given for.
NOT_RUN = "not run"


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and how the book tests it.

    Attributes
    ----------
    id : str
        "a" .. "e".
    section : str
        Where the paper makes it ("IV-A", "IV-B, V", ...).
    statement : str
        The claim in the paper's words (quoted where it has a sentence for it).
    paper : str
        The number or text the paper prints as its evidence.
    quantity : str
        What "ours" is: the measured value the rule is applied to.
    rule : {"sign", "contains"}
        See the module docstring.
    expected : float or (float, float)
        ``"sign"``: +1 or -1; ``"contains"``: the paper's value or range, in
        the unit of ``quantity``.
    unit : str
        ``"%"``: ours is a fraction printed in percent; ``"dB"``, ``""``
        (a ratio or a plain number): printed as is.
    """

    id: str
    section: str
    statement: str
    paper: str
    quantity: str
    rule: str = "sign"
    expected: float | tuple = 1.0
    unit: str = ""


@dataclass(frozen=True)
class Verdict:
    """What :func:`verdict` found for one claim (and recogniser)."""

    claim: Claim
    outcome: str
    reason: str
    ours: float = math.nan
    low: float = math.nan
    high: float = math.nan
    level: float = 0.95
    recogniser: str | None = None
    extra: dict = field(default_factory=dict)


#: The paper's claims (a)-(e), from its Sections IV-A to IV-E and its conclusions (V).
CLAIMS = {claim.id: claim for claim in (
    Claim(
        id="a", section="IV-A, V",
        statement="GAP embeddings are a valid source for heatmap computation without relying on "
                  "softmax information: \"on average, the relevant regions in the GAP and softmax "
                  "heatmaps are the same\".",
        paper="Average GAP and softmax heatmaps alike (Fig. 2); average PSNR between them per data "
              "set and network (Fig. 2), over 2 dB lower on the validation set than on the "
              "training set, slightly higher for ResNet50.",
        quantity="PSNR between an image's GAP and softmax heatmaps minus the PSNR between its GAP "
                 "heatmap and another image's softmax heatmap (dB, mean over images): > 0 when "
                 "the two heatmaps of one image mark the same regions beyond chance.",
        rule="sign", expected=1.0, unit="dB"),
    Claim(
        id="b", section="IV-A, IV-B, V",
        statement="\"The nose and inter-eye regions receive the highest attention\"; \"the eyes and "
                  "mouth also receive attention, though to a lesser extent\".",
        paper="Read from the average heatmaps (Fig. 2, 3); most face regions score above 0.4; no "
              "number per region.",
        quantity="Mean region ratio (heatmap mass share / area share) of nose and inter-eye minus "
                 "that of eyes and mouth, per image (faceexp.evaluate.regions.region_contrast): > 0 when "
                 "nose and inter-eye get more attention per pixel.",
        rule="sign", expected=1.0, unit=""),
    Claim(
        id="c", section="IV-B, IV-C, V",
        statement="The two networks' heatmaps differ for a portion of the images, more so away from "
                  "the frontal view, so the networks are complementary: \"the fusion enhances "
                  "performance across all pose cases\".",
        paper="Overall EER 3.75 % (MB2), 3.84 % (R50), fused 3.44 % at a = 0.58: -8.0 % against the "
              "better network (Table I; a tuned on the test pairs); about -10 % for P-P and F-P.",
        quantity="Relative change of the fused EER against the better single network, with the "
                 "fusion weight chosen on held-out identities (faceexp.verify.intervals.kfold_fusion, "
                 "'change' of the k-fold line): < 0 when fusion helps.",
        rule="sign", expected=-1.0, unit="%"),
    Claim(
        id="d", section="IV-D, V",
        statement="\"In the initial layers, the emphasis is primarily on the forehead and cheek "
                  "skin\"; the late layers \"prioritize ... the nose and its surrounding areas, "
                  "including the inter-eye region\".",
        paper="Read from the average heatmaps per layer (Fig. 7); no number per region or layer.",
        quantity="Per image, the region contrast (forehead and cheeks minus nose and inter-eye) at "
                 "an early layer minus the same contrast at the last layer "
                 "(faceexp.core.bootstrap.paired_difference): > 0 when attention moves from "
                 "forehead and cheeks to the nose with depth.",
        rule="sign", expected=1.0, unit=""),
    Claim(
        id="e", section="IV-E, V",
        statement="\"Eliminating the most significant pixels leads to a quicker decrease in the "
                  "EER [in accuracy] compared to randomly removing the same number of pixels\"; "
                  "\"by removing less than 2% of the pixels, the EER increases by 35-50%\".",
        paper="Threshold 0.8 removes 1.6-1.8 % of the pixels; overall EER 3.75 -> 5.61 % (MB2), "
              "3.84 -> 5.17 % (R50), +35-50 % (Fig. 9, 10).",
        quantity="Per image, the cosine similarity of the probe to a clean genuine partner "
                 "after removing as many pixels in random superpixels (mean of the random seeds) "
                 "minus after removing the pixels above each threshold, averaged over the "
                 "thresholds (faceexp.evaluate.removal.removal_experiment, faceexp.report.claims.claim_e): > 0 "
                 "when the significant pixels matter more to the pair than random ones.",
        rule="sign", expected=1.0, unit=""),
)}


# --------------------------------------------------------------------------
# the rule


def _claim(claim) -> Claim:
    if isinstance(claim, Claim):
        return claim
    if isinstance(claim, str) and claim in CLAIMS:
        return CLAIMS[claim]
    raise ValueError(f"claim must be a Claim or one of the ids {sorted(CLAIMS)}, got {claim!r}")


def _number(value, name: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number (or None), got {value!r}")
    value = float(value)
    if math.isinf(value):
        raise ValueError(f"{name} must be finite or NaN, got {value}")
    return value


def _expected(rule: str, expected):
    if rule == "sign":
        if expected not in (1, -1):
            raise ValueError(f"expected must be +1 or -1 for rule 'sign' (the direction of the "
                             f"effect), got {expected!r}")
        return float(expected)
    if isinstance(expected, tuple | list):
        if len(expected) != 2:
            raise ValueError(f"expected must be a number or a (low, high) range for rule 'contains', "
                             f"got {expected!r}")
        low, high = (_number(v, "expected") for v in expected)
        if not low <= high:
            raise ValueError(f"expected range must have low <= high, got {expected!r}")
        return (low, high)
    value = _number(expected, "expected")
    return (value, value)


def _format(value: float, unit: str, digits: int) -> str:
    """A value in its unit: a ``"%"`` fraction in percent with two decimals fewer (at least 1)."""
    if math.isnan(value):
        return "n/a"
    if unit == "%":
        return f"{100 * value:.{max(digits - 2, 1)}f} %"
    return f"{value:.{digits}f}" + (f" {unit}" if unit else "")


def _interval_text(v: Verdict, digits: int) -> str:
    unit = v.claim.unit
    if math.isnan(v.low) or math.isnan(v.high):
        return _format(v.ours, unit, digits)
    return (f"{_format(v.ours, unit, digits)} "
            f"[{_format(v.low, unit, digits)}, {_format(v.high, unit, digits)}]")


def verdict(claim, ours=None, low=None, high=None, *, level: float = 0.95,
            untestable: str | None = None, rule: str | None = None, expected=None,
            recogniser: str | None = None) -> Verdict:
    """The verdict on one claim from our value and its interval.

    Parameters
    ----------
    claim : Claim or str
        A :class:`Claim` or an id of :data:`CLAIMS` ("a" .. "e").
    ours : float, optional
        Our value of the claim's ``quantity`` (EERs and relative changes as
        fractions). None or NaN: cannot be tested (give ``untestable``).
    low, high : float, optional
        Its interval (e.g. the ``ci_low``, ``ci_high`` of
        :func:`faceexp.core.bootstrap.paired_difference`); needed by the rules,
        with ``low <= ours <= high``.
    level : float, default 0.95
        The interval's coverage (written into the text).
    untestable : str, optional
        Why the claim cannot be tested on this data; the verdict is then
        "cannot be tested here" with this reason, whatever the numbers.
    rule, expected : optional
        Override the claim's rule and expected direction or value.
    recogniser : str, optional
        Whose value this is (a column of :func:`claims_table`).

    Returns
    -------
    Verdict
        ``outcome`` one of :data:`OUTCOMES`, ``reason`` a sentence.

    Raises
    ------
    ValueError
        Unknown claim or rule, a missing or inverted interval for a value,
        or ``ours`` outside its interval.
    """
    claim = _claim(claim)
    rule = claim.rule if rule is None else rule
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    expected = _expected(rule, claim.expected if expected is None else expected)
    ours, low, high = _number(ours, "ours"), _number(low, "low"), _number(high, "high")
    level = float(level)
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    common = dict(claim=claim, ours=ours, low=low, high=high, level=level, recogniser=recogniser,
                  extra={"rule": rule, "expected": expected})
    if untestable is not None:
        if not isinstance(untestable, str) or not untestable.strip():
            raise ValueError("untestable must be a sentence saying why the claim cannot be tested")
        return Verdict(outcome=OUTCOMES[2], reason=untestable.strip(), **common)
    if math.isnan(ours):
        return Verdict(outcome=OUTCOMES[2], reason="no value could be computed (NaN): e.g. a group "
                       "without genuine or impostor pairs, or no image with an informative heatmap",
                       **common)
    if math.isnan(low) or math.isnan(high):
        raise ValueError("low and high (the interval of ours) are needed for a verdict; pass the "
                         "ci_low and ci_high of the faceexp function that computed ours")
    if not low <= ours <= high:
        raise ValueError(f"ours ({ours}) must lie within its interval [{low}, {high}]")
    percent = f"{round(100 * level)}%"
    interval = f"[{_format(low, claim.unit, 3)}, {_format(high, claim.unit, 3)}]"
    if rule == "sign":
        side = "above" if expected > 0 else "below"
        if (low > 0 and expected > 0) or (high < 0 and expected < 0):
            return Verdict(outcome=OUTCOMES[0], reason=f"our {percent} interval {interval} lies "
                           f"{side} 0, the direction the paper reports", **common)
        if (low > 0) or (high < 0):
            other = "above" if low > 0 else "below"
            return Verdict(outcome=OUTCOMES[1], reason=f"our {percent} interval {interval} lies "
                           f"{other} 0: the opposite of the paper's direction", **common)
        return Verdict(outcome=OUTCOMES[2], reason=f"our {percent} interval {interval} contains 0: "
                       "this data cannot tell the direction of the effect (too few images or "
                       "pairs, or no effect)", **common)
    paper_low, paper_high = expected
    paper = (_format(paper_low, claim.unit, 3) if paper_low == paper_high else
             f"[{_format(paper_low, claim.unit, 3)}, {_format(paper_high, claim.unit, 3)}]")
    if paper_low <= high and low <= paper_high:
        return Verdict(outcome=OUTCOMES[0], reason=f"the paper's value {paper} meets our "
                       f"{percent} interval {interval}", **common)
    where = "below" if high < paper_low else "above"
    return Verdict(outcome=OUTCOMES[1], reason=f"our {percent} interval {interval} lies {where} "
                   f"the paper's value {paper}", **common)


def verdict_paragraph(claim, ours=None, low=None, high=None, *, digits: int = 3, **options) -> str:
    """The Markdown paragraph a chapter ends with for one claim.

    The paper's statement and number, ours with its interval, the verdict and
    its reason, all from :func:`verdict` (called with ``claim, ours, low,
    high, **options``), or from a :class:`Verdict` passed as ``claim`` (then
    give no numbers).

    Parameters
    ----------
    claim : Claim, str or Verdict
    ours, low, high : float, optional
        See :func:`verdict`.
    digits : int, default 3
        Decimals of our numbers (two fewer, at least one, in percent for a
        ``"%"`` claim).
    **options
        ``level``, ``untestable``, ``rule``, ``expected``, ``recogniser``.

    Returns
    -------
    str
        Markdown, e.g. ``**Claim (e)** (paper, IV-E, V): ... *Paper:* ...
        *Ours:* 0.120 [0.080, 0.160] (95% interval; quantity). **Verdict:
        agrees** - reason.``
    """
    if isinstance(claim, Verdict):
        if ours is not None or low is not None or high is not None or options:
            raise ValueError("a Verdict carries its numbers; pass either a Verdict alone or a claim "
                             "with ours, low, high")
        v = claim
    else:
        v = verdict(claim, ours, low, high, **options)
    c = v.claim
    who = f" ({v.recogniser})" if v.recogniser else ""
    ours_text = _interval_text(v, digits)
    interval_note = (f"{round(100 * v.level)}% interval; " if not math.isnan(v.low) else "")
    return (f"**Claim ({c.id})**{who} (paper, Sec. {c.section}): {c.statement}\n"
            f"*Paper:* {c.paper}\n"
            f"*Ours:* {ours_text} ({interval_note}{c.quantity})\n"
            f"**Verdict: {v.outcome}**: {v.reason}.")


def claims_table(verdicts, *, digits: int = 3) -> pd.DataFrame:
    """The results page's table of the paper's claims (a)-(e), one row each.

    Parameters
    ----------
    verdicts : sequence of Verdict, or dict recogniser -> sequence of Verdict
        Verdicts from :func:`verdict`. Verdicts of several recognisers (their
        ``recogniser``, or the dict's keys) give one "ours" and one "verdict"
        column per recogniser. At most one verdict per claim and recogniser.
    digits : int, default 3

    Returns
    -------
    pandas.DataFrame
        One row per claim of :data:`CLAIMS` (in id order, plus any other claim
        given), columns ``claim`` ("(a) IV-A, V: statement"), ``paper``, then
        ``ours (95% interval)`` and ``verdict`` (suffixed ``: <recogniser>``
        when there are several recognisers). A claim without a verdict reads
        "not run".
    """
    if isinstance(verdicts, dict):
        items = []
        for name, group in verdicts.items():
            for v in group:
                if not isinstance(v, Verdict):
                    raise ValueError(f"verdicts[{name!r}] must hold Verdict objects, got "
                                     f"{type(v).__name__}")
                items.append((name, v))
    else:
        items = []
        for v in verdicts:
            if not isinstance(v, Verdict):
                raise ValueError(f"verdicts must hold Verdict objects (from verdict()), got "
                                 f"{type(v).__name__}")
            items.append((v.recogniser, v))
    recognisers = list(dict.fromkeys(name for name, _ in items)) or [None]
    several = len(recognisers) > 1
    claims = dict(CLAIMS)
    for _, v in items:
        claims.setdefault(v.claim.id, v.claim)
    seen = {}
    for name, v in items:
        key = (v.claim.id, name)
        if key in seen:
            raise ValueError(f"two verdicts for claim ({v.claim.id})"
                             f"{f' and recogniser {name!r}' if name else ''}; give one each")
        seen[key] = v
    levels = {round(100 * v.level) for _, v in items} or {95}
    level_text = "/".join(f"{p}%" for p in sorted(levels))
    rows = []
    for claim_id in sorted(claims):
        c = claims[claim_id]
        row = {"claim": f"({c.id}) {c.section}: {c.statement}", "paper": c.paper}
        for name in recognisers:
            suffix = f": {name}" if several else ""
            v = seen.get((claim_id, name))
            row[f"ours ({level_text} interval){suffix}"] = _interval_text(v, digits) if v else NOT_RUN
            row[f"verdict{suffix}"] = v.outcome if v else NOT_RUN
        rows.append(row)
    return pd.DataFrame(rows)
