"""faceexp.report.tables: a constructed DataFrame in, the exact formatted text out."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from faceexp.report.tables import decimals, format_interval, format_number, format_table


def test_numbers_have_significant_digits_not_six_decimals():
    # worked out by hand: 3 significant digits
    assert decimals(0.184, 2) == 2 and decimals(12.34, 3) == 1 and decimals(1234.5, 3) == 0
    assert format_number(0.123456) == "0.123"
    assert format_number(12.3456) == "12.3"
    assert format_number(1234.56) == "1235"
    assert format_number(7) == "7"
    assert format_number(np.int64(24)) == "24"
    assert format_number(0.0018, 2, percent=True) == "0.18%"
    assert format_number(float("nan")) == "–" and format_number(None) == "–"
    assert format_number(-0.0001, 1, places=2) == "0.00"


def test_interval_takes_the_values_decimals():
    assert format_interval(0.0018, 0.0, 0.0034, 2, percent=True) == "0.18% [0.00, 0.34]"
    assert format_interval(21.456, 19.02, 23.9, 3) == "21.5 [19.0, 23.9]"
    assert format_interval(1.5, None, 2.0) == "1.50"
    assert format_interval(np.nan, 0.1, 0.2) == "–"


def test_format_table_labels_intervals_names_and_no_meaningless_index():
    frame = pd.DataFrame({
        "network": ["mobilenetv2", "resnet50"],
        "split": ["train", "validation"],
        "mean": [21.45678, 3.0],
        "ci_low": [19.0, np.nan],
        "ci_high": [23.9, np.nan],
        "n": [24, 12],
        "n_excluded": [0, np.nan],
    })
    table = format_table(frame, labels={"mean": "PSNR gap (dB)"})
    assert list(table.frame.columns) == ["network", "set", "PSNR gap (dB) [95% interval]", "n", "excluded"]
    assert table.frame.values.tolist() == [
        ["mobilenetv2", "train", "21.5 [19.0, 23.9]", "24", "0"],
        ["resnet50", "validation", "3.00", "12", "–"],
    ]
    assert table.to_text() == (
        "    network        set PSNR gap (dB) [95% interval]  n excluded\n"
        "mobilenetv2      train            21.5 [19.0, 23.9] 24        0\n"
        "   resnet50 validation                         3.00 12        –")


def test_format_table_keeps_a_named_index_and_turns_tuples_into_names():
    frame = pd.DataFrame({"eer": [0.0018, 0.0042], "low": [0.0, 0.0], "high": [0.0034, 0.0047],
                          "genuine pairs": [225, 225]},
                         index=["('sface', 'canonical')", ("facenet-casia", "canonical")])
    table = format_table(frame, percent=["eer"], digits=2, labels={"eer": "EER"})
    assert table.frame.values.tolist() == [
        ["sface / canonical", "0.18% [0.00, 0.34]", "225"],
        ["facenet-casia / canonical", "0.42% [0.00, 0.47]", "225"],
    ]
    assert list(table.frame.columns) == ["", "EER [95% interval]", "genuine pairs"]
    indexed = pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index(["a", "b"], name="explainer"))
    assert format_table(indexed).frame.values.tolist() == [["a", "1.00"], ["b", "2.00"]]
    assert list(format_table(indexed).frame.columns) == ["explainer", "x"]


def test_explicit_intervals_columns_and_html_that_scrolls():
    frame = pd.DataFrame({"a": [0.5], "a_lo": [0.25], "a_hi": [0.75], "b": ["x<y"]})
    table = format_table(frame, intervals={"A (95%)": ("a", "a_lo", "a_hi")}, columns=["b", "A (95%)"],
                         caption="Caption & more")
    assert table.frame.values.tolist() == [["x<y", "0.500 [0.250, 0.750]"]]
    assert list(table.frame.columns) == ["b", "A (95%)"]
    page = table.to_html()
    assert page.startswith('<div class="faceexp-table-wrap" style="overflow-x:auto; max-width:100%">')
    assert "<caption>Caption &amp; more</caption>" in page and "x&lt;y" in page
    assert "<th>" not in page.split("<tbody>")[1]          # no index column in the body
    assert table.to_markdown().splitlines()[2] == "| x<y | 0.500 [0.250, 0.750] |"


def test_format_table_refuses_bad_calls():
    with pytest.raises(ValueError, match="intervals"):
        format_table(pd.DataFrame({"a": [1]}), intervals={"A": ("a", "lo", "hi")})
    with pytest.raises(ValueError, match="DataFrame"):
        format_table([1, 2])
    with pytest.raises(ValueError, match="digits"):
        format_table(pd.DataFrame({"a": [1]}), digits=0)


def test_a_float_column_shares_the_decimals_of_its_largest_value():
    frame = pd.DataFrame({"accuracy": [0.107, 0.0357], "seconds": [71.0, 201.4], "eer": [0.0, 0.0042]})
    table = format_table(frame, percent=["eer"], labels={"eer": "EER"})
    # 3 significant digits of 0.107 -> 3 decimals; of 201.4 -> 0; of 0.42 (%) -> 3
    assert table.frame.values.tolist() == [["0.107", "71", "0.000%"], ["0.036", "201", "0.420%"]]


def test_chapter_tables_go_through_format_table_in_percent():
    # report.percent_table / interval_table are format_table with the book's percent columns:
    # three significant digits of each value, its bounds at its decimals: the fractions
    # 0.0018 [0.0000, 0.0034] read "0.180% [0.000, 0.340]" (worked by hand).
    from faceexp.report.text import interval_table, percent_table

    raw = pd.DataFrame({"EER": [0.0018, 0.125], "EER low": [0.0, 0.1], "EER high": [0.0034, 0.15],
                        "EER before": [0.02, 0.5], "pairs": [40, 12]},
                       index=pd.Index(["sface", "facenet-casia"], name="subject"))
    table = percent_table(raw, fractions=["EER before"])
    assert list(table.frame.columns) == ["subject", "EER [95% interval]", "EER before", "pairs"]
    assert table.frame["EER [95% interval]"].tolist() == ["0.180% [0.000, 0.340]", "12.5% [10.0, 15.0]"]
    assert table.frame["EER before"].tolist() == ["2.0%", "50.0%"]
    assert table.frame["pairs"].tolist() == ["40", "12"]
    with pytest.raises(ValueError, match="fractions names \\['eer'\\]"):
        percent_table(raw, fractions=["eer"])

    rows = pd.DataFrame({"system": ["sface"], "group": ["overall"], "eer": [0.0037], "ci_low": [0.0],
                         "ci_high": [0.0083], "genuine": [40], "impostor": [1000], "identities": [12]})
    eer = interval_table(rows)
    assert list(eer.frame.columns) == ["subject", "pose pair", "EER [95% interval]", "genuine",
                                       "impostor", "identities"]
    assert eer.frame.iloc[0].tolist() == ["sface", "overall", "0.370% [0.000, 0.830]", "40", "1000", "12"]
