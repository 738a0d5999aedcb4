"""``faceexp eer SCORES.csv``: the equal error rate of a file of scores.

The CSV needs the columns ``score`` (a similarity: higher = more likely the
same person) and ``label`` (1 genuine, 0 impostor); other columns are ignored.
A comparison is accepted when ``score >= threshold``.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import re
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eer",
        help="equal error rate of a CSV of scores (columns score,label)",
        description=(
            "Print the equal error rate (a fraction) and its threshold for a CSV with columns "
            "score (similarity, higher = same person) and label (1 genuine, 0 impostor). "
            "Comparisons with score >= threshold are accepted."
        ),
    )
    parser.add_argument("scores", metavar="SCORES.csv", help="CSV file with columns score,label")
    parser.add_argument("--json", action="store_true",
                        help='print {"eer", "threshold", "genuine", "impostor"} as JSON')
    parser.add_argument("--convention", choices=("bob", "pyeer"), default="bob",
                        help="EER rule: bob.measure's (default) or pyeer's; see faceexp.verify.metrics.equal_error_rate")
    parser.set_defaults(func=run)
    return parser


def read_scores(path) -> tuple[list[float], list[int]]:
    """Scores and labels of a ``score,label`` CSV.

    Parameters
    ----------
    path : str or Path
        The CSV file; the header is line 1.

    Returns
    -------
    (list of float, list of int)
        Scores and labels (1 genuine, 0 impostor), in file order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        On a missing or repeated ``score``/``label`` column, a row with more or
        fewer fields than the header, a score that is not a plain finite decimal
        number (``1_000``, ``inf``, ``nan`` are refused), or a label other than
        0/1; the message names the file and the line (header = 1).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give the CSV file of scores")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return _read_scores(path)
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text (a binary or UTF-16 file?); save it as "
                         "CSV in UTF-8") from None


#: A plain decimal number: digits with an optional point and exponent (or nan/inf, which
#: are refused as not finite). Python's float() also takes "1_000", a thousands separator
#: that is refused here rather than read as one thousand.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)",
                     re.IGNORECASE)


def _number(text: str) -> float | None:
    """``text`` as a float when it is a plain decimal number, else None."""
    return float(text) if _NUMBER.fullmatch(text) else None


def _read_scores(path: Path) -> tuple[list[float], list[int]]:
    scores, labels = [], []
    # utf-8-sig: Excel's CSVs start with a byte-order mark.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file; expected a header line with columns score,label")
        names = [name.strip() for name in header]
        for column in ("score", "label"):
            if column not in names:
                raise ValueError(f"{path}: missing column {column!r} in the header (line 1); found {names}")
            where = [k + 1 for k, name in enumerate(names) if name == column]
            if len(where) > 1:
                raise ValueError(f"{path}: columns {' and '.join(map(str, where))} are both named "
                                 f"{column!r} in the header (line 1); rename all but one")
        score_at, label_at = names.index("score"), names.index("label")
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue  # blank line
            if len(row) != len(names):
                raise ValueError(f"{path}: line {line} has {len(row)} field{'s' * (len(row) != 1)}; "
                                 f"the header (line 1) has {len(names)} ({','.join(names)}): a "
                                 "comma inside a number, or a missing or extra column?")
            text = row[score_at].strip()
            score = _number(text)
            if score is None:
                raise ValueError(f"{path}: line {line}: score {text!r} is not a number (write it "
                                 "as 0.75 or 1e-3, without thousands separators)")
            if not math.isfinite(score):
                raise ValueError(f"{path}: line {line}: score {text!r} is not a finite number")
            text = row[label_at].strip()
            label = _number(text)
            if label not in (0.0, 1.0):
                raise ValueError(f"{path}: line {line}: label {text!r} must be 1 (genuine) or 0 (impostor)")
            scores.append(score)
            labels.append(int(label))
    return scores, labels


def run(args) -> int:
    import numpy as np

    from faceexp.verify.metrics import equal_error_rate

    scores, labels = read_scores(args.scores)
    scores = np.asarray(scores, dtype=np.float64)
    genuine = np.asarray(labels, dtype=np.int64) == 1
    n_genuine, n_impostor = int(genuine.sum()), int((~genuine).sum())
    if n_genuine == 0 or n_impostor == 0:
        missing = "genuine (label 1)" if n_genuine == 0 else "impostor (label 0)"
        raise ValueError(f"{args.scores}: no {missing} rows; the EER needs both classes")
    result = equal_error_rate(scores[~genuine], scores[genuine], convention=args.convention)
    if args.json:
        print(json.dumps({"eer": result.eer, "threshold": result.threshold,
                          "genuine": n_genuine, "impostor": n_impostor}))
    else:
        print(f"EER: {result.eer:.6f} ({100 * result.eer:.2f}%)")
        print(f"threshold: {result.threshold:.6g} (accept score >= threshold; "
              f"FMR {result.fmr:.6f}, FNMR {result.fnmr:.6f})")
        print(f"comparisons: {n_genuine} genuine, {n_impostor} impostor")
    return 0
