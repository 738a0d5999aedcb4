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
        On a missing column, a non-numeric or non-finite score, or a label
        other than 0/1; the message names the file and the line (header = 1).
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
        score_at, label_at = names.index("score"), names.index("label")
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue  # blank line
            if len(row) <= max(score_at, label_at):
                raise ValueError(f"{path}: line {line} has {len(row)} field(s); expected the columns {names}")
            text = row[score_at].strip()
            try:
                score = float(text)
            except ValueError:
                raise ValueError(f"{path}: line {line}: score {text!r} is not a number") from None
            if not math.isfinite(score):
                raise ValueError(f"{path}: line {line}: score {text!r} is not a finite number")
            text = row[label_at].strip()
            try:
                label = float(text)
            except ValueError:
                label = None
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
