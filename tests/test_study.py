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


def test_per_model_value_from_dict_string_or_plain():
    assert fs.per_model_value(12, "resnet50", "max_epochs") == 12
    text = "mobilenetv2:6, resnet50:12"
    assert fs.per_model_value(text, "mobilenetv2", "max_epochs") == 6
    assert fs.per_model_value(text, "resnet50", "max_epochs") == 12
    assert fs.per_model_value("mobilenetv2:none,resnet50:0.5", "mobilenetv2", "x") is None
    assert fs.per_model_value("mobilenetv2:none,resnet50:0.5", "resnet50", "x") == 0.5
    assert fs.per_model_value({"mobilenetv2": 3}, "mobilenetv2", "x", ["mobilenetv2"]) == 3
    assert fs.per_model_value("resize-crop", "resnet50", "mode") == "resize-crop"
    assert fs.per_model_value("C:/boxes.csv", "resnet50", "boxes") == "C:/boxes.csv"
    with pytest.raises(ValueError, match=r"max_epochs: per-network values must name each of "
                                         r"\['mobilenetv2', 'resnet50'\]; unknown \[\], "
                                         r"missing \['resnet50'\]"):
        fs.per_model_value("mobilenetv2:6", "mobilenetv2", "max_epochs")
    with pytest.raises(ValueError, match="unknown \\['vgg'\\]"):
        fs.per_model_value({"vgg": 1, "mobilenetv2": 1, "resnet50": 1}, "resnet50", "x")
    with pytest.raises(ValueError, match="max_epochs: expected 'mobilenetv2:VALUE"):
        fs.per_model_value("mobilenetv2:6,resnet50", "resnet50", "max_epochs")


def test_resolve_device():
    assert fs.resolve_device("cpu") == "cpu"
    assert fs.resolve_device("auto") in ("cpu", "cuda")


def test_removal_reading_states_the_numbers_and_the_verdict():
    from faceexp.study import RemovalAnalysis, removal_reading

    rows = []
    for network, sig in (("mobilenetv2", (0.20, 0.30)), ("resnet50", (0.10, 0.10))):
        rows.append(dict(network=network, threshold="none", method="none",
                         pose_pair="overall", eer=0.10))
        rows.append(dict(network=network, threshold="none", method="none", pose_pair="F-F",
                         eer=0.99))
        for t, s in zip((0.8, 0.5), sig):
            rows += [dict(network=network, threshold=t, method="significant",
                          pose_pair="overall", eer=s),
                     dict(network=network, threshold=t, method="random-pixels",
                          pose_pair="overall", eer=0.40),
                     dict(network=network, threshold=t, method="random-superpixels",
                          pose_pair="overall", eer=0.12)]
    auc = pd.DataFrame({"least-relevant-first": [0.50, 0.47], "most-relevant-first": [0.40, 0.4702],
                        "random-superpixels": [0.45, 0.46]}, index=["mobilenetv2", "resnet50"])
    result = RemovalAnalysis(eer=pd.DataFrame(rows), fractions=None, examples=[], curves=None,
                             auc=auc)
    text = removal_reading(result)
    first, second = text.split("\n\n")
    # mobilenetv2: base 10%, significant mean (20+30)/2 = 25%, pixels 40%, superpixels 12%
    assert first.startswith("**mobilenetv2**: EER 10.0% with nothing removed")
    assert "gives 25.0% on average" in first and "40.0% for as many random pixels" in first
    assert "12.0% for as many pixels in random superpixels" in first
    assert "0.400 most-relevant-first vs 0.500" in first and "falls faster" in first
    # resnet50: AUCs 0.4702 vs 0.47 differ by less than the tolerance
    assert "gives 10.0% on average" in second and "no difference" in second
    auc.loc["resnet50", "most-relevant-first"] = 0.49
    assert "*slower*" in removal_reading(result).split("\n\n")[1]
