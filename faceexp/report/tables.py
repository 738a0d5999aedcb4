"""Tables for people: one helper, :func:`format_table`, turns a result DataFrame into the
table a reader sees in the book.

Labelled columns with units, significant digits instead of six decimals, intervals as
``0.18% [0.00, 0.34]`` from (value, low, high) column triples, names instead of tuples,
no index column unless the index means something, ``–`` for a missing value, and HTML
that scrolls inside the page when the table is wider than it. pandas' ``Styler`` would
format the cells but neither joins column triples nor drops a meaningless index, so the
formatting is ours and the HTML is pandas' ``to_html``.
"""
from __future__ import annotations

import ast
import html
import math
import numbers
from dataclasses import dataclass, field

import pandas as pd

#: What a missing value prints as.
MISSING = "–"

#: Raw column names -> the label a reader sees (with its unit). A caller's ``labels``
#: override these; a name in neither prints with its underscores as spaces.
LABELS = {
    "eer": "EER", "ci_low": "95% interval, low", "ci_high": "95% interval, high",
    "low": "95% interval, low", "high": "95% interval, high", "n": "n",
    "n_excluded": "excluded", "psnr": "PSNR (dB)", "mean": "mean", "std": "SD",
    "network": "network", "recogniser": "recogniser", "subject": "subject",
    "pose_pair": "pose pair", "threshold": "threshold", "fraction": "fraction removed",
    "difference": "difference", "split": "set", "layer": "layer", "explainer": "explainer",
}

#: Value columns that pair with ``ci_low``/``ci_high`` when ``intervals`` is not given.
INTERVAL_VALUES = ("mean", "value", "eer", "difference", "estimate", "ours", "psnr")


def _name(value) -> str:
    # A tuple, or the text of one as JSON stores it ("('sface', 'canonical')"), reads as
    # "sface / canonical".
    if isinstance(value, str) and value.startswith("(") and value.endswith(")"):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, tuple):
            value = parsed
    if isinstance(value, tuple):
        return " / ".join(_name(v) for v in value if v is not None and str(v) != "")
    return str(value)


def _missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def decimals(value: float, digits: int = 3) -> int:
    """How many decimals show ``digits`` significant digits of ``value`` (0 at most 6 decimals).

    Examples: ``decimals(0.184, 2) == 2``, ``decimals(12.34, 3) == 1``, ``decimals(1234.5, 3) == 0``.
    """
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    if value == 0 or not math.isfinite(value):
        return max(0, min(6, digits - 1))
    return max(0, min(6, digits - 1 - math.floor(math.log10(abs(value)))))


def format_number(value, digits: int = 3, *, percent: bool = False, places: int | None = None) -> str:
    """One number for people: ``digits`` significant digits (or ``places`` decimals), no
    scientific notation, integers as integers, ``–`` when missing.

    ``percent``: ``value`` is a fraction, printed times 100 with a ``%`` sign.
    """
    if _missing(value):
        return MISSING
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return _name(value)
    if isinstance(value, numbers.Integral) and not percent:
        return f"{int(value):d}"
    x = float(value) * (100 if percent else 1)
    if not math.isfinite(x):
        return MISSING if math.isnan(x) else ("∞" if x > 0 else "−∞")
    text = f"{x:.{decimals(x, digits) if places is None else places}f}"
    if text.startswith("-") and float(text) == 0:
        text = text[1:]
    return text + ("%" if percent else "")


def format_interval(value, low, high, digits: int = 3, *, percent: bool = False) -> str:
    """``value [low, high]`` with the bounds at the value's decimals: ``0.18% [0.00, 0.34]``.

    A missing bound leaves the value alone; a missing value prints ``–``.
    """
    if _missing(value):
        return MISSING
    x = float(value) * (100 if percent else 1)
    places = decimals(x, digits)
    text = format_number(value, digits, percent=percent, places=places)
    if _missing(low) or _missing(high):
        return text
    lo = format_number(low, digits, places=places, percent=percent).rstrip("%")
    hi = format_number(high, digits, places=places, percent=percent).rstrip("%")
    return f"{text} [{lo}, {hi}]"


@dataclass
class FormattedTable:
    """A table formatted for people: every cell a string.

    Attributes
    ----------
    frame : DataFrame
        (rows, columns) of strings, the labelled columns, no index.
    caption : str or None
        Written above the table in HTML.
    data : DataFrame
        The numbers it came from (what a download should hold).
    """

    frame: pd.DataFrame
    caption: str | None = None
    data: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_text(self) -> str:
        """The table as aligned plain text (what a test compares)."""
        return self.frame.to_string(index=False)

    def to_html(self) -> str:
        """The table as HTML in a ``<div>`` that scrolls sideways when the table is wide."""
        table = self.frame.to_html(index=False, border=0, escape=True, classes="faceexp-table")
        if self.caption:
            table = table.replace(">", f">\n  <caption>{html.escape(self.caption)}</caption>", 1)
        return f'<div class="faceexp-table-wrap" style="overflow-x:auto; max-width:100%">\n{table}\n</div>'

    def to_markdown(self) -> str:
        """The table as a Markdown pipe table (``|`` in a cell escaped)."""
        def row(cells):
            return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
        lines = [row(self.frame.columns), "|" + "---|" * len(self.frame.columns)]
        lines += [row(r) for r in self.frame.itertuples(index=False)]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return self.to_text()


def _meaningful_index(frame: pd.DataFrame) -> bool:
    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.name is None:
        return False
    if index.name is None and index.nlevels == 1:
        as_text = [str(v) for v in index]
        return as_text != [str(i) for i in range(len(index))]
    return True


def _column_places(values, digits: int, percent: bool) -> int | None:
    # One number of decimals per column of floats: ``digits`` significant digits of its
    # largest value (so 0.107 and 0.0357 read 0.107 and 0.036); None for other columns.
    floats = [float(v) * (100 if percent else 1) for v in values
              if isinstance(v, numbers.Real) and not isinstance(v, (bool, numbers.Integral)) and not _missing(v)]
    finite = [abs(x) for x in floats if math.isfinite(x)]
    if not finite:
        return None
    return decimals(max(finite), digits)


def _counts(column: pd.Series) -> bool:
    # A float column whose values are all whole numbers and which has a missing one.
    if not pd.api.types.is_float_dtype(column):
        return False
    finite = column.dropna()
    return len(finite) < len(column) and len(finite) > 0 and bool((finite == finite.round()).all())


def _auto_intervals(columns) -> dict:
    cols = list(columns)
    for low, high in (("ci_low", "ci_high"), ("low", "high")):
        if low in cols and high in cols:
            values = [c for c in INTERVAL_VALUES if c in cols]
            if len(values) == 1:
                return {values[0]: (values[0], low, high)}
    return {}


def format_table(frame: pd.DataFrame, *, labels: dict | None = None, intervals: dict | None = None,
                 percent=(), digits: int = 3, index: bool | None = None, columns=None,
                 caption: str | None = None) -> FormattedTable:
    """Format a result table for people.

    Parameters
    ----------
    frame : DataFrame
        (rows, columns) of results, raw names (``eer``, ``ci_low``, ...).
    labels : dict, optional
        Raw column name -> label with its unit, over :data:`LABELS`.
    intervals : dict, optional
        Output column -> ``(value, low, high)`` raw column names, joined into one cell
        ``value [low, high]`` that takes the output column's place (at the value's
        position). Default: ``ci_low``/``ci_high`` (or ``low``/``high``) pair with the one
        column of :data:`INTERVAL_VALUES` present; pass ``{}`` for none.
    percent : iterable of str
        Raw columns holding fractions, printed in percent (``0.0018`` -> ``0.18%``); an
        interval column is in percent when its value column is.
    digits : int
        Significant digits: a column of floats gets the decimals that show ``digits``
        significant digits of its largest value; an interval's bounds take its value's.
    index : bool, optional
        Keep the index as the first column(s); default: only when it means something (not
        0..n-1 without a name).
    columns : list of str, optional
        Output columns to keep, in order (raw names or interval output names).
    caption : str, optional

    Returns
    -------
    FormattedTable
        ``.frame`` (rows, k) of strings; ``.to_html()`` scrolls inside the page.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    labels = {**LABELS, **(labels or {})}
    percent = set(percent)
    data = frame.copy()
    keep_index = _meaningful_index(data) if index is None else index
    if keep_index:
        unnamed = [n is None for n in data.index.names]
        data = data.reset_index()
        if len(unnamed) == 1 and unnamed[0]:
            data = data.rename(columns={data.columns[0]: ""})
    else:
        data = data.reset_index(drop=True)
    data.columns = [_name(c) if isinstance(c, tuple) else c for c in data.columns]
    intervals = _auto_intervals(data.columns) if intervals is None else dict(intervals)
    for out, triple in intervals.items():
        missing = [c for c in triple if c not in data.columns]
        if len(triple) != 3 or missing:
            raise ValueError(f"intervals[{out!r}] must name three columns (value, low, high) of the frame, "
                             f"missing {missing or triple}; columns are {list(data.columns)}")
    used = {c for triple in intervals.values() for c in triple}
    cells: dict = {}
    order = []
    for col in data.columns:
        starts = [out for out, triple in intervals.items() if triple[0] == col]
        if starts:
            out = starts[0]
            value, low, high = intervals[out]
            pct = value in percent
            cells[out] = [format_interval(v, lo, hi, digits, percent=pct)
                          for v, lo, hi in zip(data[value], data[low], data[high])]
            order.append(out)
        elif col not in used:
            pct = col in percent
            values = list(data[col])
            if not pct and _counts(data[col]):  # a count column that holds a NaN is float
                values = [v if _missing(v) else int(v) for v in values]
            cells[col] = [format_number(v, digits, percent=pct, places=_column_places(values, digits, pct))
                          for v in values]
            order.append(col)
    if columns is not None:
        unknown = [c for c in columns if c not in cells]
        if unknown:
            raise ValueError(f"columns {unknown} are not among the formatted columns {order}")
        order = list(columns)
    out = pd.DataFrame({_label(c, labels, intervals): cells[c] for c in order}, dtype=object)
    return FormattedTable(out, caption, frame.copy())


def _label(column, labels: dict, intervals: dict) -> str:
    # An interval column named after its value column reads "<value's label> [95% interval]";
    # one the caller named keeps that name (or its label).
    if column in intervals and intervals[column][0] == column and column not in labels:
        return f"{labels.get(column, str(column).replace('_', ' '))} [95% interval]"
    if column in intervals and intervals[column][0] == column:
        return f"{labels[column]} [95% interval]"
    return labels.get(column, str(column).replace("_", " "))
