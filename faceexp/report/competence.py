"""The competence gate: which subjects may enter the claims table, stated once with its numbers.

A claim about how a face recogniser attends to a face means nothing for a network
that cannot recognise faces (the issue's ResNet50 at 0.11 validation accuracy
"agreed" with three claims). A subject enters the claims only if its verification
EER on its test identities is, with its interval, clearly below
:data:`COMPETENCE_THRESHOLD`: the interval's upper end must lie below it. Why 10 %:
the paper's networks reach 3.75-3.84 % on VGGFace2-Pose (Table I), a harder
protocol than ORL; a network that may be worse than one error in ten on ORL is not
the kind of recogniser the paper explains. Subjects that fail get the outcome
:data:`faceexp.report.verdicts.NOT_COMPETENT` in every claim, with this gate's reason:
not a verdict on the claim, but the reason the subject was not asked.
"""
from __future__ import annotations

import math
import numbers
from typing import Mapping

__all__ = ["COMPETENCE_THRESHOLD", "COMPETENCE_RULE", "competence_gate", "competence_gates",
           "gate_records"]

#: The largest verification EER (a fraction) the upper end of a subject's interval may reach.
COMPETENCE_THRESHOLD = 0.10
#: The gate in words, for the page.
COMPETENCE_RULE = (f"a subject enters the claims only if the 95% interval of its verification "
                   f"EER on its test identities lies entirely below "
                   f"{100 * COMPETENCE_THRESHOLD:.0f} % (the paper's networks: 3.75-3.84 % on a "
                   f"harder protocol)")


def _fraction(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be an EER as a fraction in [0, 1] (not percent), "
                         f"got {value!r}")
    return float(value)


def competence_gate(eer, ci_low, ci_high, n, *, threshold: float = COMPETENCE_THRESHOLD
                    ) -> tuple[bool, str]:
    """Whether a subject may enter the claims, and why, with its numbers.

    Parameters
    ----------
    eer, ci_low, ci_high : float
        Its verification EER on its test identities and the interval (fractions,
        ``ci_low <= eer <= ci_high``; e.g. :func:`faceexp.verify.intervals.bootstrap_eer`).
        A NaN EER (no pairs) does not pass.
    n : int
        Test identities behind the interval.
    threshold : float, default :data:`COMPETENCE_THRESHOLD`
        The upper end must lie strictly below it.

    Returns
    -------
    passes : bool
    reason : str
        E.g. "verification EER 23.1 % [18.0 %, 28.4 %] over 12 test identities; the
        competence gate asks the interval's upper end below 10 %: left out of the claims".
    """
    threshold = _fraction(threshold, "threshold")
    if isinstance(n, bool) or not isinstance(n, numbers.Real) or not float(n).is_integer() \
            or n < 0:
        raise ValueError(f"n must be the number of test identities (an int >= 0), got {n!r}")
    values = []
    for value, name in ((eer, "eer"), (ci_low, "ci_low"), (ci_high, "ci_high")):
        if value is not None and isinstance(value, numbers.Real) and math.isnan(value):
            values.append(math.nan)
        else:
            values.append(_fraction(value, name))
    eer, low, high = values
    gate = f"the competence gate asks the interval's upper end below {100 * threshold:g} %"
    if any(math.isnan(v) for v in values):
        return False, (f"no verification EER with an interval over {int(n)} test identities; "
                       f"{gate}: left out of the claims")
    if not low <= eer <= high:
        raise ValueError(f"eer ({eer}) must lie within its interval [{low}, {high}]")
    numbers_text = (f"verification EER {100 * eer:.1f} % [{100 * low:.1f} %, {100 * high:.1f} %] "
                    f"over {int(n)} test identities")
    if high < threshold:
        return True, f"{numbers_text}: passes ({gate})"
    return False, f"{numbers_text}; {gate}: left out of the claims"


def competence_gates(verification: Mapping, *, threshold: float = COMPETENCE_THRESHOLD) -> dict:
    """The ``gate`` mapping of :mod:`faceexp.report.claims`: subject -> reason, failing ones only.

    Parameters
    ----------
    verification : mapping
        subject -> ``(eer, ci_low, ci_high, n)`` (or a mapping with those keys).

    Returns
    -------
    dict
        subject -> :func:`competence_gate`'s reason, for the subjects that do not pass.
    """
    out = {}
    for subject, numbers_ in verification.items():
        if isinstance(numbers_, Mapping):
            numbers_ = tuple(numbers_[k] for k in ("eer", "ci_low", "ci_high", "n"))
        passes, reason = competence_gate(*numbers_, threshold=threshold)
        if not passes:
            out[subject] = reason
    return out


def gate_records(records: list, gate: Mapping) -> list:
    """Claims records (:func:`faceexp.report.claims.as_records`, e.g. read back from a chapter's
    JSON) with the gate applied: a record whose subject, or a member of whose fusion
    ("a+b"), is in ``gate`` gets verdict :data:`faceexp.report.verdicts.NOT_COMPETENT`, the
    gate's reason and no numbers (``value``, ``ci_low``, ``ci_high``, ``n`` None). Other
    records are returned unchanged (new dicts)."""
    from faceexp.report.verdicts import NOT_COMPETENT

    out = []
    for record in records:
        record = dict(record)
        subject = record.get("subject") or ""
        members = [m.strip() for m in subject.split("+")]
        failed = [m for m in members if m in gate]
        if subject in gate:
            reason = gate[subject]
        elif failed:
            reason = "; ".join(f"{m}: {gate[m]}" for m in failed)
        else:
            out.append(record)
            continue
        record.update(value=None, ci_low=None, ci_high=None, n=None, verdict=NOT_COMPETENT,
                      reason=reason)
        for key in ("half_width", "n_needed"):
            record.pop(key, None)
        out.append(record)
    return out
