"""Prose that cannot go stale: the hand-written Markdown of the book (notebook Markdown cells,
``book/*.md``) states methods and reasons, never results. A number in it is a result typed
by hand, which the next run can contradict, unless it is one of these (the allowlist):

* a reference: section, figure, table, equation or chapter numbers (``Section IV-B``,
  ``Figs. 3-5``, ``Table I``, ``chapter 5``, ``Eq. (2)``);
* the paper's own numbers (:data:`PAPER_NUMBERS`) in a sentence that names the paper (``the
  paper``, ``paper's``), or in a table whose caption (or the paragraph before it) names it;
* inside math, the constants of a formula: 0, 1, 2 and 10 (``\\{0, 1\\}``, ``d_i^2``,
  ``10 \\log_{10}``), and every index (``x_1``, ``\\log_{10}``);
* code (inline or fenced), links' targets, HTML and MyST comments, names with digits in them
  (``ResNet50``, ``VGGFace2``, ``113x113``);
* conventions: the 95% level of the intervals, the pose name 3/4 (three-quarter), a
  citation's year and arXiv number (``et al., 2018``, ``(WIFS), 2023``, ``arXiv:2307.13428``);
* the few fixed facts of :data:`ALLOWED_PHRASES` (the data set's size, which no run changes).

A sentence that states a result is written by the package at run time (a code cell that
prints Markdown); :func:`stale_numbers` finds the rest.
"""
from __future__ import annotations

import re
from pathlib import Path

#: Conventions, not results: the 95% level of every interval, the pose name "3/4"
#: (three-quarter: F-3/4, 3/4-P), a citation's year ("et al., 2018", "(WIFS), 2023") and
#: arXiv number.
_CONVENTIONS = re.compile(r"\b95\s?%|(?<![\d.])3/4(?![\d.])|et al\.?,?\s+(?:19|20)\d\d"
                          r"|\b[A-Z]{2,}\)?,?\s+(?:19|20)\d\d\b|arXiv:\d{4}\.\d{4,5}")

#: Phrases whose numbers are fixed facts, not results (each says why in its comment).
ALLOWED_PHRASES = (
    "40 people",          # the ORL / AT&T database: 40 people ...
    "10 images each",     # ... with 10 images each, fixed by the data set
    "8,631 identities",   # VGGFace2's training identities, fixed by the data set
)

#: Every number the paper prints (its text before the references, thousands without
#: separators): a sentence that names the paper may quote these and no other.
PAPER_NUMBERS = frozenset("""
00 0 0.0001 0.001 0.005 0.01 0.2 0.4 0.5 0.58 0.6 0.8 1 1.6 1.8 2 2.70 2.91 3 3.01 3.13 3.14
3.16 3.31 3.33 3.37 3.44 3.5 3.51 3.53 3.69 3.75 3.83 3.84 3.93 4 4.08 4.1 4.27 4.34 4.52
4.54 5 5.1 5.17 5.61 6 6.0 7 7.2 8 8.0 8.6 9 9.6 10 11 12 13 14 15 16 17 18 19
21 22 25 25.6 26 27 33 34 35 37 43 49 50 52 53 59 60 69 70 75 78 79 81 87 91 93.4 95 100 101
104 111 113 121 128 129 130 131 139 141 147 150 153 173 301 363.6 368 500 823 1000 1280 2019
2022 2048 8631 9131 11040 35016
""".split())

_FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.S | re.M)
_INLINE_CODE = re.compile(r"`[^`]*`")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_MYST_COMMENT = re.compile(r"^%.*$", re.M)
_LINK_TARGET = re.compile(r"\]\([^)]*\)|https?://\S+|<[a-zA-Z/][^>]*>")
_DISPLAY_MATH = re.compile(r"\$\$(.*?)\$\$", re.S)
_INLINE_MATH = re.compile(r"(?<!\\)\$(.+?)(?<!\\)\$", re.S)
_REFERENCE = re.compile(
    r"\b(?:Sections?|Sec\.|Secs\.|Figures?|Figs?\.|Tables?|Equations?|Eqs?\.|[Cc]hapters?|§)"
    r"\s*\(?[IVX\d]+(?:[-–.][A-Za-z\d]+)*\)?"
    r"(?:\s*(?:,|and|to|or|-|–)\s*\(?[IVX\d]+(?:[-–.][A-Za-z\d]+)*\)?)*")
_NUMBER = re.compile(r"(?<![\w.\-/])\d+(?:[.,]\d+)*(?![\w])")
_MATH_CONSTANTS = {"0", "1", "2", "10"}
_PAPER = re.compile(r"\bpaper(?:'s)?\b", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])[ \t\n]+(?=[A-Z*_(\[])")  # not at a no-break space


def _math_numbers(math: str) -> list[str]:
    # Indices and exponents are names; 0, 1, 2 and 10 are a formula's constants.
    math = re.sub(r"[_^](\{[^}]*\}|\d)", " ", math)
    return [n for n in _NUMBER.findall(math) if n not in _MATH_CONSTANTS]


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def _number_key(number: str) -> str:
    return re.sub(r"(?<=\d),(?=\d{3}\b)", "", number)


def _sentence_numbers(sentence: str) -> list[str]:
    numbers: list[str] = []

    def math(match):
        numbers.extend(_math_numbers(match.group(1)))
        return " "

    text = _DISPLAY_MATH.sub(math, sentence)
    text = _INLINE_MATH.sub(math, text)
    text = _REFERENCE.sub(" ", text)
    return numbers + _NUMBER.findall(text)


def stale_numbers(markdown: str) -> list[tuple[str, str]]:
    """The numbers in hand-written Markdown that the allowlist does not cover.

    Returns ``[(number, the sentence it is in), ...]`` in order; empty: nothing stale.
    """
    found = []
    text = _COMMENT.sub(" ", markdown)

    def paper_table(match):
        # A table whose caption names the paper: the paper's numbers only.
        found.extend((n, "table: " + match.group(1).strip()) for n in _NUMBER.findall(match.group(2))
                     if _number_key(n) not in PAPER_NUMBERS)
        return " "

    text = re.sub(r"^```\{table\}([^\n]*paper[^\n]*)\n(.*?)^```\s*$", paper_table, text, flags=re.S | re.M | re.I)
    text = _FENCE.sub(" ", text)
    text = _MYST_COMMENT.sub(" ", text)
    text = _INLINE_CODE.sub(" ", text)
    text = _LINK_TARGET.sub(" ", text)
    for phrase in ALLOWED_PHRASES:
        text = text.replace(phrase, " ")
    text = _CONVENTIONS.sub(" ", text)
    # No sentence ends after an abbreviation ("Fig. 3", "Eq. (2)", "et al. 2018").
    text = re.sub(r"\b(Figs?|Eqs?|Secs?|e\.g|i\.e|al|cf|vs)\.\s", "\\1.\u00a0", text)
    after_paper = False
    for paragraph in _paragraphs(text):
        # A pipe table right after a paragraph that names the paper is the paper's table.
        is_table = paragraph.lstrip().startswith("|")
        sentences = [paragraph] if is_table else _SENTENCE.split(paragraph)
        for sentence in sentences:
            quotes_paper = bool(_PAPER.search(sentence)) or (is_table and after_paper)
            clean = " ".join(sentence.split())
            for number in _sentence_numbers(sentence):
                if not (quotes_paper and _number_key(number) in PAPER_NUMBERS):
                    found.append((number, clean))
        after_paper = bool(_PAPER.search(paragraph)) and not is_table
    return found


def notebook_stale_numbers(path: Path) -> list[tuple[int, str, str]]:
    """``[(cell index, number, sentence), ...]`` of a notebook's Markdown cells."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    return [(k, number, sentence) for k, cell in enumerate(nb.cells) if cell.cell_type == "markdown"
            for number, sentence in stale_numbers(cell.source)]


def _output_text(nb) -> str:
    # what the code cells printed or displayed: the text a reader sees as generated
    parts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(str(output.get("text", "")))
            for kind in ("text/markdown", "text/html", "text/plain"):
                value = output.get("data", {}).get(kind)
                if value:
                    parts.append(value if isinstance(value, str) else "".join(value))
    return "\n".join(parts)


def unrun_explainers(nb, known, ran) -> list[str]:
    """Explainers (names of ``known``) that ``nb``'s generated output names although the run
    did not include them (``ran``): text that speaks of a method the chapter never ran.

    A name counts only as a whole name (``lime`` is not found inside
    ``faceexp-lime-paper``); Markdown cells, which describe methods, are not read.
    """
    text = _output_text(nb)
    ran = set(ran)
    found = []
    for name in sorted(set(known) - ran):
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
            found.append(name)
    return found
