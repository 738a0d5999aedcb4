"""Study helpers (example selection, test images, per-network options) and what the report
module writes about them (captions from recorded provenance, readings, the summary JSON)."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from faceexp import report  # noqa: E402
from faceexp.models.initial_weights import init_weights_text  # noqa: E402
from faceexp import study as fs
from faceexp.models.training import TrainResult  # noqa: E402


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


def test_held_out_images_keeps_first_images_and_every_turned_face():
    st = fs.Study(runs={}, images=_frame(), artifacts=None, dataset="toy")
    sub = st.held_out_images(1)
    # first image of each identity, plus the three-quarter face of "a"
    assert list(sub["path"]) == ["p0", "p2", "p3", "p5"]
    assert len(st.held_out_images(None)) == 7


def test_write_summary_writes_json_tables_and_figures(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    table = pd.DataFrame({"F-F": [1.5, np.nan]}, index=["MB2", "R50"])
    path = report.write_summary(tmp_path, "05_x", summary="text", values={"EER": {"ours": np.float64(1.23456), "paper": 3.75}, "n": np.int64(3)},
                            tables=[(table, "Table I")], figures=[(fig, "f.png", "a figure")])
    doc = json.loads(path.read_text())
    assert doc["values"] == {"EER": {"ours": 1.2346, "paper": 3.75}, "n": 3}
    assert doc["tables"][0]["data"] == [[1.5], [None]] and doc["tables"][0]["caption"] == "Table I"
    assert (tmp_path / "f.png").stat().st_size > 0


def test_per_model_value_from_dict_or_plain():
    assert fs.per_model_value(12, "resnet50", "max_epochs") == 12
    per_network = {"mobilenetv2": 6, "resnet50": 12}  # as papermill passes a YAML mapping
    assert fs.per_model_value(per_network, "mobilenetv2", "max_epochs") == 6
    assert fs.per_model_value(per_network, "resnet50", "max_epochs") == 12
    assert fs.per_model_value({"mobilenetv2": None, "resnet50": 0.5}, "mobilenetv2", "x") is None
    assert fs.per_model_value({"mobilenetv2": 3}, "mobilenetv2", "x", ["mobilenetv2"]) == 3
    assert fs.per_model_value("resize-crop", "resnet50", "mode") == "resize-crop"
    assert fs.per_model_value("mobilenetv2:6", "resnet50", "boxes") == "mobilenetv2:6", \
        "strings are values, never parsed"
    with pytest.raises(ValueError, match=r"max_epochs: per-network values must name each of "
                                         r"\['mobilenetv2', 'resnet50'\]; unknown \[\], "
                                         r"missing \['resnet50'\]"):
        fs.per_model_value({"mobilenetv2": 6}, "mobilenetv2", "max_epochs")
    with pytest.raises(ValueError, match="unknown \\['vgg'\\]"):
        fs.per_model_value({"vgg": 1, "mobilenetv2": 1, "resnet50": 1}, "resnet50", "x")


def test_prepare_study_wants_a_list_of_known_networks():
    with pytest.raises(ValueError, match=r"models must be a list of architectures, e\.g\. "
                                         r"\['mobilenetv2', 'resnet50'\], got 'mobilenetv2,resnet50'"):
        fs.prepare_study("mobilenetv2,resnet50")
    with pytest.raises(ValueError, match=r"models must be some of .*got unknown \['vgg'\]"):
        fs.prepare_study(["vgg"])


def test_resolve_device():
    assert fs.resolve_device("cpu") == "cpu"
    assert fs.resolve_device("auto") in ("cpu", "cuda")


def test_removal_reading_states_the_numbers_and_the_verdict():
    from faceexp.report.text import removal_reading
    from faceexp.study.removal import RemovalAnalysis

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


def _run(tmp_path, arch, init_weights):
    out = tmp_path / arch
    out.mkdir()
    if init_weights is not None:
        (out / "init_weights.json").write_text(json.dumps(init_weights))
    metrics = pd.DataFrame({"epoch": [1, 2], "val_acc": [0.5, 0.75]})
    return TrainResult(out_dir=out, final_checkpoint=out / "final.pt", best_checkpoint=out / "best.pt",
                       metrics=metrics, classes=["a", "b", "c"])


def test_caption_says_which_initial_weights_each_run_recorded(tmp_path):
    resnet = {"source": "imagenet", "path": "/w/resnet50-0676ba61.pth", "sha256": "0123456789abcdef" * 4,
              "requested": "imagenet"}
    mobilenet = {"source": "random", "path": None, "sha256": None, "requested": "imagenet"}
    runs = {"mobilenetv2": _run(tmp_path, "mobilenetv2", mobilenet),
            "resnet50": _run(tmp_path, "resnet50", resnet)}
    study = fs.Study(runs=runs, images=_frame(), artifacts=tmp_path, dataset="toy faces")
    assert report.caption(study, extra="4 images") == (
        "Data: toy faces. Models: mobilenetv2: 2 epochs on 3 identities, random init (no ImageNet "
        "weights file found), val. acc. 0.75; resnet50: 2 epochs on 3 identities, ImageNet init "
        "(resnet50-0676ba61.pth, sha256 0123456789ab), val. acc. 0.75. 4 images")
    assert report.caption(study, "resnet50").startswith("Data: toy faces. Models: resnet50: ")


def test_init_weights_text_for_every_source():
    digest = "ab" * 32
    assert init_weights_text(None) == "initial weights not recorded"
    assert init_weights_text({"source": "random", "requested": None}) == "random init"
    assert init_weights_text({"source": "file", "path": "/x/my.pth", "sha256": digest}) == \
        "init from my.pth (sha256 abababababab)"
    assert init_weights_text({"source": "checkpoint", "path": "/r/final.pt", "sha256": digest}) == \
        "fine-tuned from final.pt (sha256 abababababab)"
    with pytest.raises(ValueError, match=r"record\['source'\] must be .* got 'guess'"):
        init_weights_text({"source": "guess"})


def test_paired_removal_reading_counts_thresholds_by_their_intervals():
    from types import SimpleNamespace

    from faceexp.report.text import paired_removal_reading

    paired = pd.DataFrame({
        "network": "sface", "baseline": "random-superpixels", "threshold": [0.8, 0.5, 0.3],
        "difference": [0.05, 0.01, -0.2], "ci_low": [0.02, -0.01, -0.3],
        "ci_high": [0.08, 0.03, -0.1], "n": 10, "seeds": 5})
    text = paired_removal_reading(SimpleNamespace(paired=paired), "sface")
    assert "(10 images with a genuine partner, 5 random seeds)" in text
    assert "at 1 of 3 thresholds (95% interval above 0), less at 1, indistinguishably at 1" in text
    assert "largest mean difference -0.200 at threshold 0.3 [-0.300, -0.100]" in text
    none = paired.assign(difference=np.nan)
    assert "no paired comparison" in paired_removal_reading(SimpleNamespace(paired=none), "sface")


def test_psnr_means_leave_out_identical_maps_and_carry_intervals():
    psnr = pd.DataFrame({"network": ["a"] * 3 + ["b"] * 2, "split": "train",
                         "psnr": [20.0, 22.0, np.inf, 10.0, 12.0]})
    table = fs.psnr_means(psnr)
    a = table.set_index("network").loc["a"]
    assert a["mean"] == 21.0 and a["n"] == 2 and a["n_excluded"] == 1
    # two images: every resampled mean is 20, 21 or 22 -> the interval spans them
    assert (a["ci_low"], a["ci_high"]) == (20.0, 22.0)


def test_gap_vs_softmax_with_only_constant_softmax_maps_counts_them(monkeypatch):
    """A network whose every softmax heatmap is constant (the demo's ResNet50 after 8
    epochs) is counted as uninformative, its PSNR left out, and nothing fails."""
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"path": [f"p{k}" for k in range(4)], "identity": list("aabb"),
                          "split": ["train", "val"] * 2, "pose": "frontal"})

    class _Set:
        def __init__(self, maps):
            self.maps, self.frame = maps, frame
            self.images = np.zeros((4, 8, 8, 3), np.float32)
            self.r2 = np.zeros((4, 1))

        def layer(self, name):
            return self.maps

    def fake_explain(study, frame, *, layers, **options):
        constant = layers == ["softmax"]
        return {arch: _Set(np.zeros((4, 8, 8)) if constant and arch == "resnet50"
                           else rng.uniform(size=(4, 8, 8))) for arch in study.models}

    from faceexp.study import explaining

    monkeypatch.setattr(explaining, "explain_study", fake_explain)
    study = SimpleNamespace(models=["mobilenetv2", "resnet50"],
                            one_per_identity=lambda splits, n: frame)
    result = fs.gap_vs_softmax_analysis(study)
    assert set(result.psnr["network"]) == {"mobilenetv2"}
    assert list(result.psnr_mean["network"]) == ["mobilenetv2", "mobilenetv2"]
    counts = result.uninformative.loc[("resnet50", "softmax")]
    assert counts["uninformative"].sum() == 4


def test_explain_test_images_caps_the_images_of_a_named_subject(monkeypatch):
    from types import SimpleNamespace

    from faceexp.study import explaining

    seen = {}

    def fake_explain(subject, frame, artifacts, *, layers, seed, progress, **options):
        seen[subject.name] = (list(frame["path"]), seed)
        return subject.name

    monkeypatch.setattr(explaining.fcache, "explain_subject", fake_explain)
    subjects = {n: SimpleNamespace(name=n, sweep_layers=["gap"]) for n in ("mobilenetv2", "resnet50")}
    study = SimpleNamespace(subjects=list(subjects), subject=subjects.__getitem__, artifacts=None)
    frame = pd.DataFrame({"identity": ["a", "a", "a", "b", "b"], "path": ["a1", "a2", "a3", "b1", "b2"]})
    out = explaining.explain_test_images(study, frame, images_per_subject={"resnet50": 1})
    assert out == {"mobilenetv2": "mobilenetv2", "resnet50": "resnet50"}
    assert seen["mobilenetv2"][0] == ["a1", "a2", "a3", "b1", "b2"]
    assert seen["resnet50"][0] == ["a1", "b1"]
    assert seen["resnet50"][1] == explaining.SOURCE_SEED_OFFSET  # the same seed as without a cap
    with pytest.raises(ValueError, match="vgg"):
        explaining.explain_test_images(study, frame, images_per_subject={"vgg": 1})
    with pytest.raises(ValueError, match=r"images_per_subject\['resnet50'\]"):
        explaining.explain_test_images(study, frame, images_per_subject={"resnet50": 0})
