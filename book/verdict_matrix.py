"""The verdict matrix of the results page: the paper's claims as rows, the subjects
(recognisers, networks, pairs of them) as columns, each cell a coloured verdict with our
value, its 95% interval and n on one short line; the paper's statement and the full
reasoning one click away (a ``<details>`` in the row's first cell, the reason also as the
cell's tooltip).

Reads verdict records in the schema of :func:`faceexp.report.summary.normalise_record`
(``claim, subject, value, ci_low, ci_high, n, verdict, reason``) or the older one
(``recogniser, ours, low, high, outcome``). The HTML has no blank line, so MyST passes it
through as one raw block.
"""
from __future__ import annotations

import html
import re

#: CSS class of each verdict (colours in book/_static_faceexp/faceexp.css).
VERDICT_CLASS = {"agrees": "verdict-agrees", "differs": "verdict-differs",
                 "undecided": "verdict-undecided", "cannot be tested": "verdict-untestable",
                 "not competent": "verdict-untestable"}
#: What a cell says when no record tests that claim on that subject.
NOT_TESTED = "not tested"


def short_statement(statement: str, limit: int = 90) -> str:
    """The first sentence of ``statement`` without quotes, at most ``limit`` characters
    (cut at a word, with an ellipsis): the row's title; the full statement is a click away."""
    text = statement.replace('"', "").replace("“", "").replace("”", "").strip()
    first = re.split(r"(?<=[.;:])\s", text, maxsplit=1)[0].rstrip(".;:")
    aside = re.search(r"\s[(\[]", first[30:])  # an aside in brackets goes to the full statement
    if aside:
        first = first[:30 + aside.start()]
    if len(first) <= limit:
        return first
    cut = first[:limit].rsplit(" ", 1)[0].rstrip(",;: ")
    return cut + "…"


def _claim_info(claim_id: str, claims: dict) -> dict:
    claim = claims.get(claim_id)
    get = (lambda k: getattr(claim, k, "") or "") if claim is not None else (lambda k: "")
    return {"statement": get("statement"), "paper": get("paper"), "quantity": get("quantity"),
            "section": get("section"), "unit": get("unit"), "title": get("title")}


def cell_measure(record: dict, unit: str) -> str:
    """``value [low, high] unit · n = N`` of one normalised record (empty without a value)."""
    from faceexp.report.summary import measurement

    if record["value"] is None:
        return ""
    text = measurement(record["value"], record["ci_low"], record["ci_high"], unit=unit)
    return text + (f" · n = {record['n']}" if record["n"] is not None else "")


#: The protocol of the paper's own analyses on ORL (records without a protocol are on it).
OWN_PROTOCOL = "ORL pairs"


def variant(record: dict) -> str:
    """What sets a record's row apart from its claim's main row: another measure of the
    claim (e.g. "paired similarity") and/or another protocol (e.g. chapter 5's degraded
    probes); "" for the claim's own measure on ORL's pairs."""
    parts = []
    measure = record.get("measure")
    if measure and measure != "relative EER rise":
        parts.append(str(measure))
    protocol = record.get("protocol")
    if protocol and protocol != OWN_PROTOCOL:
        parts.append(str(protocol))
    return "; ".join(parts)


def verdict_matrix_html(records, claims: dict | None = None, *, caption: str | None = None) -> str:
    """The matrix as one HTML block.

    Parameters
    ----------
    records : iterable of dict
        Verdict records (either schema); one per (claim, variant, subject), a later one
        wins. A record with another ``measure`` or ``protocol`` (:func:`variant`) gets a
        row of its own under its claim's.
    claims : dict, optional
        Claim id -> an object with ``statement``, ``paper``, ``quantity``, ``section``,
        ``unit`` (:data:`faceexp.report.verdicts.CLAIMS`); claims without a record get a
        row too.
    caption : str, optional

    Returns
    -------
    str
        ``<div class="verdict-matrix-wrap"><table class="verdict-matrix">...</table></div>``.
    """
    from faceexp.report.summary import claim_records

    claims = dict(claims or {})
    rows = claim_records(records, keep_extra=True)
    subjects = list(dict.fromkeys(r["subject"] for r in rows))
    # one matrix row per claim and variant (another measure or protocol of the same claim)
    for r in rows:
        r["_row"] = (r["claim"], variant(r))
    by_key = {(r["_row"], r["subject"]): r for r in rows}
    base_ids = [c for c in claims if "|" not in c]
    base_ids += sorted({r["claim"] for r in rows} - set(base_ids))
    seen = list(dict.fromkeys(r["_row"] for r in rows))
    claim_ids = []
    for cid in base_ids:
        claim_ids += [(cid, "")] + sorted({row for row in seen if row[0] == cid and row[1]})
    esc = html.escape
    width = round(75 / max(1, len(subjects)), 2)  # the claim's column takes the other 25%
    out = ['<div class="verdict-matrix-wrap">', '<table class="verdict-matrix">']
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    out.append('<colgroup><col class="verdict-claim-col"/>'
               + "".join(f'<col style="width:{width}%"/>' for _ in subjects) + "</colgroup>")
    out.append("<thead><tr><th>claim</th>" + "".join(f"<th>{esc(s if s != '-' else 'all')}</th>"
                                                      for s in subjects) + "</tr></thead>")
    out.append("<tbody>")
    for row_key in claim_ids:
        cid, which = row_key
        if which and not any(k[0] == row_key for k in by_key):
            continue
        measure = next((r.get("measure") for r in rows if r["_row"] == row_key), None)
        info = _claim_info(f"{cid}|{measure}" if f"{cid}|{measure}" in claims else cid, claims)
        title = info["title"] or short_statement(info["statement"]) or f"claim {cid}"
        if which:
            title = f"{title} — {which}"
        details = []
        if info["statement"]:
            where = f" ({esc(info['section'])})" if info["section"] else ""
            details.append(f"<p><strong>The paper{where}:</strong> {esc(info['statement'])}</p>")
        if info["paper"]:
            details.append(f"<p><strong>Its evidence:</strong> {esc(info['paper'])}</p>")
        if info["quantity"]:
            details.append(f"<p><strong>What we measure:</strong> {esc(info['quantity'])}</p>")
        reasons = [f"<li><strong>{esc(s if s != '-' else 'all')}</strong>, {esc(by_key[(row_key, s)]['verdict'])}: "
                   f"{esc(by_key[(row_key, s)]['reason'])}</li>" for s in subjects if (row_key, s) in by_key]
        if reasons:
            details.append("<p><strong>Why:</strong></p><ul>" + "".join(reasons) + "</ul>")
        head = (f'<th scope="row"><details><summary>({esc(cid)}) {esc(title)}</summary>'
                + "".join(details) + "</details></th>")
        cells = []
        for s in subjects:
            record = by_key.get((row_key, s))
            if record is None:
                cells.append(f'<td class="verdict verdict-none">{NOT_TESTED}</td>')
                continue
            measure = cell_measure(record, info["unit"])
            cells.append(f'<td class="verdict {VERDICT_CLASS[record["verdict"]]}" title="{esc(record["reason"], quote=True)}">'
                         f'<span class="verdict-word">{esc(record["verdict"])}</span>'
                         + (f'<br/><span class="verdict-measure">{esc(measure)}</span>' if measure else "")
                         + "</td>")
        out.append("<tr>" + head + "".join(cells) + "</tr>")
    out += ["</tbody>", "</table>", "</div>"]
    return "\n".join(out)
