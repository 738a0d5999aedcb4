"""The book's findings in sentences, written from the results: what it found (each with its
number, 95% interval and n) and what it could not decide, and why.

Reads verdict records of the schema the chapters store (``claims.json``)::

    {"claim": "a", "subject": "sface", "value": 0.0018, "ci_low": 0.0, "ci_high": 0.0034,
     "n": 24, "verdict": "agrees", "reason": "..."}

with ``verdict`` one of :data:`VERDICTS`; the older keys (``recogniser``, ``ours``,
``low``, ``high``, ``outcome``) are read too (:func:`normalise_record`). Nothing here is
typed by hand: a sentence changes when the numbers do.
"""
from __future__ import annotations

import math
import numbers

from faceexp.report.tables import MISSING, format_interval

#: The verdicts a record may carry; "not competent": the competence gate left the subject
#: out (:mod:`faceexp.report.competence`), no verdict on the claim.
VERDICTS = ("agrees", "differs", "undecided", "cannot be tested", "not competent")
#: Keys of the older record schema, replaced by :data:`RECORD_KEYS`.
_OLD_KEYS = ("recogniser", "ours", "low", "high", "outcome")
#: Older outcome names -> verdicts.
_OLD_VERDICTS = {"cannot be tested here": "cannot be tested", "not run": "cannot be tested"}
#: The keys of a normalised record.
RECORD_KEYS = ("claim", "subject", "value", "ci_low", "ci_high", "n", "verdict", "reason")


def _number(value):
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, numbers.Number):
        return None if isinstance(value, float) and not math.isfinite(value) else value
    return None


def normalise_record(record: dict) -> dict:
    """One verdict record in the schema of :data:`RECORD_KEYS`.

    Reads the new keys, or the older ``recogniser``/``ours``/``low``/``high``/``outcome``;
    NaN numbers become None. Raises ValueError naming the record when it has no claim or
    its verdict is not one of :data:`VERDICTS`.
    """
    if not isinstance(record, dict) or not record.get("claim"):
        raise ValueError(f"a verdict record must be a dict with a 'claim', got {record!r:.200}")
    verdict = record.get("verdict", record.get("outcome"))
    verdict = _OLD_VERDICTS.get(verdict, verdict)
    if verdict not in VERDICTS:
        raise ValueError(f"record of claim {record['claim']!r}: verdict must be one of {', '.join(VERDICTS)}, "
                         f"got {verdict!r}")
    subject = record.get("subject", record.get("recogniser"))
    n = _number(record.get("n"))
    return {
        "claim": str(record["claim"]),
        "subject": str(subject) if subject not in (None, "") else "-",
        "value": _number(record.get("value", record.get("ours"))),
        "ci_low": _number(record.get("ci_low", record.get("low"))),
        "ci_high": _number(record.get("ci_high", record.get("high"))),
        "n": int(n) if n is not None else None,
        "verdict": verdict,
        "reason": str(record.get("reason") or ""),
    }


def claim_records(records, *, keep_extra: bool = False) -> list[dict]:
    """Normalised records, one per (claim, subject, measure, protocol) (a later record
    replaces an earlier one), sorted by claim then in the order the subjects first appear.

    ``keep_extra``: keep a record's other keys (``n_needed``, ``statement``, ...) after the
    :data:`RECORD_KEYS`; the older schema's keys are dropped either way.
    """
    found: dict = {}
    for record in records:
        r = normalise_record(record)
        if keep_extra:
            r.update({k: v for k, v in record.items() if k not in r and k not in _OLD_KEYS})
        # another measure or protocol of the same claim is a record of its own
        found[(r["claim"], r["subject"], record.get("measure"), record.get("protocol"))] = r
    subjects = list(dict.fromkeys(key[1] for key in found))
    return sorted(found.values(), key=lambda r: (r["claim"], subjects.index(r["subject"])))


def _unit(units: dict, record: dict) -> str:
    # a claim's other measure has its own unit ("e|paired similarity"), else the claim's
    return units.get(f"{record['claim']}|{record.get('measure')}", units.get(record["claim"], ""))


def _variant(record: dict) -> str:
    # what sets a record apart from its claim's own measure on ORL's pairs
    parts = [str(record[k]) for k in ("measure", "protocol")
             if record.get(k) and record[k] not in ("relative EER rise", "ORL pairs")]
    return f" ({'; '.join(parts)})" if parts else ""


def measurement(value, ci_low=None, ci_high=None, n=None, *, unit: str = "", digits: int = 3) -> str:
    """A number as the book writes it: ``0.18% [0.00, 0.34], n = 24`` (``unit="%"``: a
    fraction printed in percent), ``1.20 [0.40, 2.00] dB, n = 24``; ``–`` when missing."""
    if _number(value) is None:
        text = MISSING
    else:
        text = format_interval(value, ci_low, ci_high, digits, percent=unit == "%")
        if unit and unit != "%":
            text += f" {unit}"
    if n is not None:
        text += f", n = {int(n)}"
    return text


def verdict_sentence(record: dict, *, unit: str = "", digits: int = 3) -> str:
    """One sentence on one verdict record (either schema), e.g.
    ``Claim (a) agrees with the paper for sface: 0.18% [0.00, 0.34], n = 24 (95% interval).``"""
    r = normalise_record(record)
    who = (f"Claim ({r['claim']})" + _variant(record)
           + (f" for {r['subject']}" if r["subject"] != "-" else ""))
    number = measurement(r["value"], r["ci_low"], r["ci_high"], r["n"], unit=unit, digits=digits)
    reason = r["reason"].strip().rstrip(".")
    if r["verdict"] in ("agrees", "differs"):
        verb = "agrees with the paper" if r["verdict"] == "agrees" else "differs from the paper"
        return f"{who} {verb}: {number} (95% interval)."
    if r["verdict"] == "undecided":
        because = f": {reason}" if reason else ""
        return f"{who} is undecided at {number} (95% interval){because}."
    if r["verdict"] == "not competent":
        return f"{who} is not judged, the subject failed the competence check: {reason or 'no reason given'}."
    return f"{who} cannot be tested: {reason or 'no value could be computed'}."


def value_sentence(label: str, value, ci_low=None, ci_high=None, n=None, *, unit: str = "",
                   digits: int = 3) -> str:
    """``<label>: <measurement>.`` for one of a chapter's values."""
    return f"{label}: {measurement(value, ci_low, ci_high, n, unit=unit, digits=digits)}."


def _value_parts(value) -> tuple:
    # A chapter value: a number, or {"value"/"ours": x, "ci_low"/"low", "ci_high"/"high", "n", "unit"}.
    if isinstance(value, dict):
        return (value.get("value", value.get("ours")), value.get("ci_low", value.get("low")),
                value.get("ci_high", value.get("high")), value.get("n"), value.get("unit", ""))
    return value, None, None, None, ""


def chapter_sentences(values: dict, *, digits: int = 3) -> list[str]:
    """One sentence per value of a chapter (``{label: number or dict}``), strings left as
    they are (``label: text.``)."""
    out = []
    for label, value in values.items():
        v, low, high, n, unit = _value_parts(value)
        if isinstance(v, str):
            out.append(f"{label}: {v}.")
        else:
            out.append(value_sentence(label, v, low, high, n, unit=unit, digits=digits))
    return out


def findings_markdown(records, *, units: dict | None = None, chapters: dict | None = None,
                      digits: int = 3) -> str:
    """The findings summary: Markdown paragraphs.

    Parameters
    ----------
    records : iterable of dict
        Verdict records (either schema).
    units : dict, optional
        Claim id -> unit of its value (``"%"``, ``"dB"``, ``""``).
    chapters : dict, optional
        Chapter title -> ``{label: value}`` (:func:`chapter_sentences`): a sentence list per
        chapter after the verdicts.

    Returns
    -------
    str
        "**What the book found.**" (agrees/differs), "**What it could not decide, and
        why.**" (undecided/cannot be tested), "**Left out of the claims.**" (one sentence
        per subject that failed the competence gate) and one paragraph per chapter.
    """
    units = units or {}
    rows = claim_records(records, keep_extra=True)
    decided = [r for r in rows if r["verdict"] in ("agrees", "differs")]
    open_ = [r for r in rows if r["verdict"] not in ("agrees", "differs", "not competent")]
    left_out = [r for r in rows if r["verdict"] == "not competent"]
    parts = []
    if rows:
        counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
        tally = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v])
        found = _bullets(verdict_sentence(r, unit=_unit(units, r), digits=digits) for r in decided)
        parts.append(f"**What the book found.** Of {len(rows)} verdicts (claim and subject): {tally}."
                     + (found or " No claim was decided on this profile's data."))
        parts.append("**What it could not decide, and why.**"
                     + (_bullets(verdict_sentence(r, unit=_unit(units, r), digits=digits)
                                 for r in open_) or " Every claim tested was decided."))
        if left_out:
            parts.append("**Left out of the claims.** " + not_competent_sentences(left_out))
    else:
        parts.append("**What the book found.** No chapter has recorded a verdict yet.")
    for title, values in (chapters or {}).items():
        sentences = chapter_sentences(values or {}, digits=digits)
        if sentences:
            parts.append(f"**{title}.** " + " ".join(sentences))
    return "\n\n".join(parts) + "\n"


def _bullets(sentences) -> str:
    # One Markdown list item per sentence, after the paragraph's lead-in ("" for none).
    items = [f"- {x}" for x in sentences]
    return ("\n\n" + "\n".join(items)) if items else ""


def not_competent_sentences(records) -> str:
    """One sentence per subject that failed the competence gate, naming its claims once
    (instead of repeating the gate's reason under every claim), e.g. ``mobilenetv2 is not
    judged on claims (a), (b): <reason>.``"""
    by_subject: dict = {}
    for record in records:
        r = normalise_record(record)
        entry = by_subject.setdefault(r["subject"], {"claims": [], "reason": r["reason"]})
        if r["claim"] not in entry["claims"]:
            entry["claims"].append(r["claim"])
    sentences = []
    for subject, entry in by_subject.items():
        claims = ", ".join(f"({c})" for c in sorted(entry["claims"]))
        reason = entry["reason"].strip().rstrip(".") or "no reason given"
        sentences.append(f"{subject} is not judged on claim{'s' if len(entry['claims']) > 1 else ''} "
                         f"{claims}, having failed the competence check: {reason}.")
    return " ".join(sentences)


def split_sentence(splits) -> str:
    """What the study trains, validates and verifies on, as one Markdown sentence.

    Parameters
    ----------
    splits : DataFrame
        :meth:`faceexp.study.Study.summary`: index ``train``, ``val``, ``test``; columns
        ``identities``, ``images``.

    Returns
    -------
    str
        e.g. "The networks are trained on 252 images of 28 identities; 28 more images of
        those identities (10.0% of their 280) are held out for validation, and verification
        uses 120 images of 12 identities never trained on."
    """
    missing = [c for c in ("identities", "images") if c not in getattr(splits, "columns", [])]
    if missing:
        raise ValueError(f"splits must have columns identities and images (Study.summary()), missing {missing}")

    def get(split, column):
        try:
            value = splits.loc[split, column]
        except KeyError:
            return 0
        return 0 if value != value else int(value)  # NaN: a split with no image

    train, val = get("train", "images"), get("val", "images")
    share = f"{100 * val / (train + val):.1f}%" if train + val else "–"
    return (f"The networks are trained on {train} images of {get('train', 'identities')} identities; "
            f"{val} more images of those identities ({share} of their {train + val}) are held out for "
            f"validation, and verification uses {get('test', 'images')} images of "
            f"{get('test', 'identities')} identities never trained on.")
