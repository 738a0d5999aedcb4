"""Study helpers: example selection, test subsets and the results-page summary."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from faceexp import study as fs  # noqa: E402


def _frame():
    return pd.DataFrame({"path": [f"p{i}" for i in range(7)],
                         "identity": ["a", "a", "a", "b", "b", "c", "c"],
                         "split": "test",
                         "pose": ["frontal", "frontal", "three-quarter", "frontal", "frontal",
                                  "frontal", "frontal"]})


def test_example_triplet_picks_probe_genuine_impostor():
    t = fs.example_triplet(_frame())
    assert list(t["role"]) == ["probe", "genuine", "impostor"]
    assert list(t["path"]) == ["p0", "p1", "p3"]
    with pytest.raises(ValueError, match="two images"):
        fs.example_triplet(_frame().iloc[[0, 3]])


def test_test_subset_keeps_first_images_and_every_turned_face():
    st = fs.Study(runs={}, images=_frame(), artifacts=None, dataset="toy")
    sub = st.test_subset(1)
    # first image of each identity, plus the three-quarter face of "a"
    assert list(sub["path"]) == ["p0", "p2", "p3", "p5"]
    assert len(st.test_subset(None)) == 7


def test_write_summary_writes_json_tables_and_figures(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    table = pd.DataFrame({"F-F": [1.5, np.nan]}, index=["MB2", "R50"])
    path = fs.write_summary(tmp_path, "05_x", summary="text", values={"EER": {"ours": np.float64(1.23456), "paper": 3.75}, "n": np.int64(3)},
                            tables=[(table, "Table I")], figures=[(fig, "f.png", "a figure")])
    doc = json.loads(path.read_text())
    assert doc["values"] == {"EER": {"ours": 1.2346, "paper": 3.75}, "n": 3}
    assert doc["tables"][0]["data"] == [[1.5], [None]] and doc["tables"][0]["caption"] == "Table I"
    assert (tmp_path / "f.png").stat().st_size > 0


def test_resolve_device():
    assert fs.resolve_device("cpu") == "cpu"
    assert fs.resolve_device("auto") in ("cpu", "cuda")
