"""The paper's claims (a)-(e) and verdicts on them written from our numbers and intervals.

:data:`CLAIMS` holds the five claims of Alonso-Fernandez et al. that the book
tests, each with the section it comes from, the paper's wording, the number
the paper prints, what we measure, and the **smallest effect that would
count** (:attr:`Claim.smallest_effect`, from the paper's own numbers where it
gives them, otherwise stated once and justified in :attr:`Claim.basis`).
:func:`verdict` turns a value, its interval and its ``n`` into one of four
outcomes; :func:`verdict_paragraph` writes the Markdown paragraph a chapter
ends with and :func:`claims_table` the table the results page opens with. No
verdict is typed by hand.

The rule (:data:`OUTCOMES`). Let ``s`` be the claim's direction (+1: ours
should be large; -1: ours should be negative, e.g. a fusion's EER change),
``d >= 0`` its smallest effect, and ``[L, H]`` the interval of ``s * ours``
(oriented so that the paper's side is up). The paper's statement is
"the effect is at least ``d`` in the direction ``s``".

* **agrees** when ``L > d``: the whole interval lies beyond the smallest effect
  on the paper's side.
* **differs** when ``H < d``: the whole interval lies short of the smallest
  effect: the effect is in the opposite direction (``H < 0``), absent, or in
  the paper's direction but smaller than would count (the reason says which).
* **undecided** when ``L <= d <= H`` (the closed interval contains the
  smallest effect), or when no value could be computed. The verdict then
  carries ``n``, the interval's half-width ``h = (H - L) / 2`` and
  ``n_needed = ceil(n * (h / |s * ours - d|) ** 2)``: a half-width shrinks
  as ``1 / sqrt(n)``, so at ``n_needed`` units (images, faces or identities) an
  interval of the same shape centred on the point estimate would just
  exclude ``d``. A rough guide (with that true effect about half of such
  studies would decide); None when the point estimate equals ``d``.
* **cannot be tested** only for a reason in principle (``untestable=``), e.g.
  a black box has no layers to read; never for lack of data.

Outside the four outcomes, :data:`NOT_COMPETENT` marks a subject left out of
the claims by the competence gate (:mod:`faceexp.report.competence`): it is
not a verdict on the claim but on whether the subject is a face recogniser
worth asking.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace

import pandas as pd

__all__ = ["Claim", "Verdict", "CLAIMS", "CLAIM_E_SIMILARITY", "OUTCOMES", "NOT_COMPETENT",
           "NOT_RUN", "verdict", "not_competent", "n_needed", "verdict_paragraph",
           "claims_table"]

#: The four verdicts: agrees, differs, undecided, cannot be tested.
OUTCOMES = ("agrees", "differs", "undecided", "cannot be tested")
#: A subject the competence gate left out (not a verdict on the claim).
NOT_COMPETENT = "not competent"
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
        The claim in the paper's words.
    paper : str
        The number or text the paper prints as its evidence.
    quantity : str
        What "ours" is: the measured value the rule is applied to.
    direction : {+1, -1}
        The paper's side: +1 ours should be positive, -1 negative.
    smallest_effect : float
        ``d >= 0``, in the unit of ``quantity``: the smallest ``direction *
        ours`` that would count as the paper's effect.
    basis : str
        Where ``smallest_effect`` comes from (the paper's number, or why we chose it).
    unit : str
        ``"%"``: ours is a fraction printed in percent; ``"dB"``, ``""``: as is.
    n_unit : str
        What ``n`` counts (the resampled unit of the interval).
    """

    id: str
    section: str
    statement: str
    paper: str
    quantity: str
    direction: int = 1
    smallest_effect: float = 0.0
    basis: str = ""
    unit: str = ""
    n_unit: str = "images"


@dataclass(frozen=True)
class Verdict:
    """What :func:`verdict` found for one claim and subject.

    ``ours``, ``low``, ``high`` are the value and its interval (NaN when none),
    ``n`` the units behind them, ``n_needed`` the rough size that would decide
    an undecided claim (None otherwise), ``recogniser`` the subject.
    """

    claim: Claim
    outcome: str
    reason: str
    ours: float = math.nan
    low: float = math.nan
    high: float = math.nan
    level: float = 0.95
    recogniser: str | None = None
    n: int | None = None
    n_needed: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def half_width(self) -> float:
        """Half the interval's width (NaN without an interval)."""
        return (self.high - self.low) / 2


_REGION_BASIS = ("the paper reads this from average heatmaps and prints no number; a region "
                 "ratio of 1 is the attention a region gets from a flat map, and we count a "
                 "contrast of at least 0.1, a tenth of that flat-map attention (about one step "
                 "of a ten-step colour scale like the paper's figures), smaller contrasts being "
                 "invisible in such figures")

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
        direction=1, smallest_effect=2.0,
        basis="the paper reports a 2 dB PSNR difference (validation below training, Sec. IV-A) "
              "as a difference worth stating; we take 2 dB as the smallest PSNR gap that counts",
        unit="dB"),
    Claim(
        id="b", section="IV-A, IV-B, V",
        statement="\"The nose and inter-eye regions receive the highest attention\"; \"the eyes and "
                  "mouth also receive attention, though to a lesser extent\".",
        paper="Read from the average heatmaps (Fig. 2, 3); most face regions score above 0.4; no "
              "number per region.",
        quantity="Mean region ratio (heatmap mass share / area share) of nose and inter-eye minus "
                 "that of eyes and mouth, per image (faceexp.evaluate.regions.region_contrast): > 0 "
                 "when nose and inter-eye get more attention per pixel.",
        direction=1, smallest_effect=0.1, basis=_REGION_BASIS),
    Claim(
        id="c", section="IV-B, IV-C, V",
        statement="The two networks' heatmaps differ for a portion of the images, more so away from "
                  "the frontal view, so the networks are complementary: \"the fusion enhances "
                  "performance across all pose cases\".",
        paper="Overall EER 3.75 % (MB2), 3.84 % (R50), fused 3.44 % at a = 0.58: -8.0 % against the "
              "better network (Table I; a tuned on the test pairs); -4.1 % to -10.3 % per pose "
              "pair, about -10 % for P-P and F-P.",
        quantity="Relative change of the fused EER against the better single system, with the "
                 "fusion weight chosen on held-out identities (faceexp.verify.intervals.kfold_fusion, "
                 "'change' of the k-fold line): < 0 when fusion helps.",
        direction=-1, smallest_effect=0.08,
        basis="the paper's overall gain, -8.0 % against the better network (Table I, last row)",
        unit="%", n_unit="identities"),
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
        direction=1, smallest_effect=0.1, basis=_REGION_BASIS),
    Claim(
        id="e", section="IV-E, V",
        statement="\"Eliminating the most significant pixels leads to a quicker decrease in the "
                  "EER [in accuracy] compared to randomly removing the same number of pixels\"; "
                  "\"by removing less than 2% of the pixels, the EER increases by 35-50%\".",
        paper="Threshold 0.8 removes 1.6-1.8 % of the pixels; overall EER 3.75 -> 5.61 % (MB2), "
              "3.84 -> 5.17 % (R50), +35-50 % (Fig. 9, 10).",
        quantity="Relative EER rise when the pixels above the threshold that removes about 2 % of "
                 "them are blacked out (EER after / EER before - 1), with an interval over "
                 "identities: > 0 when removing the significant pixels hurts verification.",
        direction=1, smallest_effect=0.35,
        basis="the lower end of the paper's +35-50 % (3.84 -> 5.17 % for ResNet50, Sec. IV-E)",
        unit="%", n_unit="identities"),
)}

#: Claim (e) as today's paired similarity test: the same claim, measured per image as a
#: cosine difference (``faceexp.report.claims.claim_e``); its records carry ``claim`` "e"
#: and ``measure`` "paired similarity".
CLAIM_E_SIMILARITY = replace(
    CLAIMS["e"],
    quantity="Per image, the cosine similarity of the probe to a clean genuine partner "
             "after removing as many pixels in random superpixels (mean of the random seeds) "
             "minus after removing the pixels above each threshold, averaged over the "
             "thresholds (faceexp.evaluate.removal.removal_experiment, "
             "faceexp.report.claims.claim_e): > 0 when the significant pixels matter more to "
             "the pair than random ones.",
    smallest_effect=0.02, unit="", n_unit="images",
    basis="the paper prints no similarity; we count a cosine difference of at least 0.02, one "
          "hundredth of the cosine's range [-1, 1] (a convention, ten times the +0.002 that a "
          "sign test alone would accept)")


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


def _count(n) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, numbers.Real) or not float(n).is_integer() \
            or n < 0:
        raise ValueError(f"n must be a count of images, faces or identities (an int >= 0), "
                         f"got {n!r}")
    return int(n)


def _format(value: float, unit: str, digits: int) -> str:
    """A value in its unit: a ``"%"`` fraction in percent with two decimals fewer (at least 1)."""
    if value is None or math.isnan(value):
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


def n_needed(n: int, half_width: float, distance: float) -> int | None:
    """Roughly how many units would decide an undecided claim, from 1/sqrt(n) scaling.

    Parameters
    ----------
    n : int
        Units (images, faces, identities) behind the interval.
    half_width : float
        Half the interval's width, ``(high - low) / 2``.
    distance : float
        ``|point estimate - boundary|``, the boundary being the smallest effect
        on the paper's side.

    Returns
    -------
    int or None
        ``ceil(n * (half_width / distance) ** 2)`` (at least ``n + 1``: more data
        is what an undecided verdict asks for); None when ``distance`` is 0 (no
        number of units decides an effect sitting on the boundary) or ``n`` is 0.
    """
    n = _count(n)
    half_width, distance = abs(float(half_width)), abs(float(distance))
    if not n or distance == 0 or not math.isfinite(half_width):
        return None
    # rounded first: 0.30 - 0.35 is not exactly -0.05 in floating point
    return max(n + 1, math.ceil(round(n * (half_width / distance) ** 2, 6)))


def verdict(claim, ours=None, low=None, high=None, *, n=None, level: float = 0.95,
            untestable: str | None = None, missing: str | None = None,
            smallest_effect: float | None = None, recogniser: str | None = None,
            extra: dict | None = None) -> Verdict:
    """The verdict on one claim from our value, its interval and its ``n``.

    Parameters
    ----------
    claim : Claim or str
        A :class:`Claim` (e.g. :data:`CLAIM_E_SIMILARITY`) or an id of :data:`CLAIMS`.
    ours : float, optional
        Our value of the claim's ``quantity`` (EERs and relative changes as
        fractions). None or NaN: undecided (say why with ``missing``).
    low, high : float, optional
        Its interval, ``low <= ours <= high``; needed with a value.
    n : int, optional
        The units (``claim.n_unit``) behind the value; needed for ``n_needed``.
    level : float, default 0.95
        The interval's coverage (written into the text).
    untestable : str, optional
        Why the claim cannot be tested **in principle** for this subject (e.g.
        "a black box: no layers to read"); the outcome is then "cannot be
        tested", whatever the numbers. Never for lack of data.
    missing : str, optional
        Why no value could be computed (with ``ours`` None/NaN): the outcome is
        "undecided" with this reason.
    smallest_effect : float, optional
        Overrides ``claim.smallest_effect`` (a number >= 0; justify it where
        it is passed).
    recogniser : str, optional
        The subject (a recogniser, a network, or a fusion "a+b").
    extra : dict, optional
        More keys for the record (e.g. ``{"measure": "paired similarity"}``).

    Returns
    -------
    Verdict
        ``outcome`` one of :data:`OUTCOMES`; ``reason`` a sentence with the numbers.

    Raises
    ------
    ValueError
        Unknown claim, a missing or inverted interval for a value, ``ours``
        outside its interval, a bad ``n``, ``level`` or ``smallest_effect``.
    """
    claim = _claim(claim)
    if smallest_effect is not None:
        delta = _number(smallest_effect, "smallest_effect")
        if not delta >= 0:
            raise ValueError(f"smallest_effect must be a number >= 0 (its direction is the "
                             f"claim's), got {smallest_effect!r}")
        claim = replace(claim, smallest_effect=delta)
    if claim.direction not in (1, -1):
        raise ValueError(f"claim {claim.id}: direction must be +1 or -1, got {claim.direction!r}")
    ours, low, high = _number(ours, "ours"), _number(low, "low"), _number(high, "high")
    n = _count(n)
    level = float(level)
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    info = {"smallest_effect": claim.smallest_effect, "direction": claim.direction,
            **(extra or {})}
    common = dict(claim=claim, ours=ours, low=low, high=high, level=level, recogniser=recogniser,
                  n=n, extra=info)
    if untestable is not None:
        if not isinstance(untestable, str) or not untestable.strip():
            raise ValueError("untestable must be a sentence saying why the claim cannot be tested "
                             "in principle")
        return Verdict(outcome=OUTCOMES[3], reason=untestable.strip(), **common)
    if math.isnan(ours):
        why = (missing or "no value could be computed (NaN)").strip()
        return Verdict(outcome=OUTCOMES[2], reason=f"{why}; more {claim.n_unit} would be "
                       f"needed ({n if n is not None else 'n/a'} so far)", **common)
    if math.isnan(low) or math.isnan(high):
        raise ValueError("low and high (the interval of ours) are needed for a verdict; pass the "
                         "ci_low and ci_high of the faceexp function that computed ours")
    if not low <= ours <= high:
        raise ValueError(f"ours ({ours}) must lie within its interval [{low}, {high}]")
    s, d = claim.direction, claim.smallest_effect
    lo, hi = sorted((s * low, s * high))           # oriented: the paper's side is up
    percent = f"{round(100 * level)}%"
    unit = claim.unit
    interval = f"[{_format(low, unit, 3)}, {_format(high, unit, 3)}]"
    boundary = _format(s * d, unit, 3)
    beyond = "above" if s > 0 else "below"
    short = "below" if s > 0 else "above"
    if lo > d:
        return Verdict(outcome=OUTCOMES[0], reason=f"our {percent} interval {interval} lies "
                       f"{beyond} {boundary}, the smallest effect that counts ({claim.basis})",
                       **common)
    if hi < d:
        if hi < 0:
            what = "the opposite of the paper's direction"
        elif lo > 0:
            what = "in the paper's direction but smaller than the smallest effect that counts"
        else:
            what = "no effect of the size the paper states"
        return Verdict(outcome=OUTCOMES[1], reason=f"our {percent} interval {interval} lies "
                       f"{short} {boundary}: {what} ({claim.basis})", **common)
    half = (high - low) / 2
    needed = n_needed(n, half, s * ours - d) if n is not None else None
    scale = (f"about {needed} {claim.n_unit} would decide it if the effect were "
             f"{_format(ours, unit, 3)}" if needed is not None else
             "no number of units decides an effect that sits on the smallest effect")
    common["n_needed"] = needed
    return Verdict(outcome=OUTCOMES[2], reason=f"our {percent} interval {interval} contains "
                   f"{boundary}, the smallest effect that counts, with n = "
                   f"{n if n is not None else 'n/a'} {claim.n_unit} and half-width "
                   f"{_format(half, unit, 3)}: {scale}", **common)


def not_competent(claim, recogniser: str, reason: str) -> Verdict:
    """A record for a subject the competence gate left out (outcome :data:`NOT_COMPETENT`).

    ``reason`` is :func:`faceexp.report.competence.competence_gate`'s text, with the numbers.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("reason must say why the subject is left out, with its numbers")
    return Verdict(claim=_claim(claim), outcome=NOT_COMPETENT, reason=reason.strip(),
                   recogniser=recogniser)


def verdict_paragraph(claim, ours=None, low=None, high=None, *, digits: int = 3, **options) -> str:
    """The Markdown paragraph a chapter ends with for one claim.

    The paper's statement and number, ours with its interval and ``n``, the
    smallest effect that counts, the verdict and its reason, all from
    :func:`verdict` (called with ``claim, ours, low, high, **options``), or
    from a :class:`Verdict` passed as ``claim`` (then give no numbers).

    Returns
    -------
    str
        Markdown, e.g. ``**Claim (e)** (paper, Sec. IV-E, V): ... *Paper:* ...
        *Ours:* 0.420 [0.380, 0.460], n = 12 identities (95% interval; quantity).
        **Verdict: agrees**: reason.``
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
    if v.n is not None:
        ours_text += f", n = {v.n} {c.n_unit}"
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
        At most one verdict per claim and recogniser.
    digits : int, default 3

    Returns
    -------
    pandas.DataFrame
        One row per claim (id order), columns ``claim``, ``paper``, then per
        recogniser ``ours (95% interval)``, ``n`` and ``verdict`` (suffixed
        ``: <recogniser>`` when there are several). A claim without a verdict
        reads "not run".
    """
    items = []
    groups = verdicts.items() if isinstance(verdicts, dict) else [(None, verdicts)]
    for name, group in groups:
        for v in group:
            if not isinstance(v, Verdict):
                raise ValueError(f"verdicts must hold Verdict objects (from verdict()), got "
                                 f"{type(v).__name__}")
            items.append((v.recogniser if name is None else name, v))
    recognisers = list(dict.fromkeys(name for name, _ in items)) or [None]
    several = len(recognisers) > 1
    claims = dict(CLAIMS)
    seen = {}
    for name, v in items:
        claims.setdefault(v.claim.id, v.claim)
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
            row[f"n{suffix}"] = v.n if v is not None and v.n is not None else ""
            row[f"verdict{suffix}"] = v.outcome if v else NOT_RUN
        rows.append(row)
    return pd.DataFrame(rows)
