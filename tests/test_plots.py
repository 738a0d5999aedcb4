"""Every plot function draws from small inputs and returns a figure or axes."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from faceexp import plots  # noqa: E402


def test_overlay_blends_and_clips():
    img = np.zeros((4, 4, 3))
    hm = np.full((4, 4), 2.0)  # clipped to 1
    out = plots.overlay(img, hm, alpha=1.0, cmap="gray")
    np.testing.assert_allclose(out, 1.0)


def test_grid_and_curve_plots_return_figures():
    rng = np.random.default_rng(0)
    maps = {("mobilenetv2", "frontal"): rng.random((8, 8)), ("resnet50", "frontal"): rng.random((8, 8))}
    fig = plots.plot_average_heatmaps(maps, rows=["mobilenetv2", "resnet50"], cols=["frontal", "profile"],
                                      source="toy")
    assert isinstance(fig, plt.Figure)
    # the missing profile panel says n/a
    assert any(t.get_text() == "n/a" for ax in fig.axes for t in ax.texts)
    metrics = pd.DataFrame({"epoch": [1, 2, 3], "lr": [0.01, 0.01, 0.005], "train_loss": [3, 2, 1],
                            "val_loss": [3, 2.5, 2], "train_acc": [0.1, 0.5, 0.9], "val_acc": [0.1, 0.4, 0.7]})
    assert isinstance(plots.plot_training_curves({"mb2": metrics}), plt.Figure)
    sweep = pd.DataFrame({"a": np.repeat([0, 0.5, 1], 2), "group": ["F-F", "overall"] * 3,
                          "eer": [0.1, 0.2, 0.05, 0.1, 0.1, 0.2]})
    assert isinstance(plots.plot_fusion_curves(sweep, best_a=0.5), plt.Figure)
    per_layer = pd.DataFrame({"network": "mb2", "index": [1, 2, 3], "eer": [0.4, 0.3, 0.1],
                              "block_end": [False, True, False]})
    assert isinstance(plots.plot_eer_per_layer(per_layer), plt.Figure)
    removal = pd.DataFrame({"network": "mb2", "threshold": ["none", 0.8, 0.5, 0.8, 0.5],
                            "method": ["none", "significant", "significant", "random-pixels", "random-pixels"],
                            "pose_pair": "overall", "eer": [0.1, 0.2, 0.3, 0.15, 0.2]})
    assert isinstance(plots.plot_removal_eer(removal), plt.Figure)
    fractions = pd.DataFrame({"threshold": [0.8, 0.8, 0.5, 0.5], "fraction": [0.01, 0.02, 0.1, 0.2]})
    assert isinstance(plots.plot_removed_fraction(fractions), plt.Figure)
    plt.close("all")


def test_explainer_and_randomisation_curves_draw_one_row_or_panel_per_recogniser():
    import pandas as pd
    from faceexp import plots

    rows = []
    for recogniser in ("a", "b"):
        for mode in ("deletion", "insertion"):
            for f in (0.0, 0.25, 0.5):
                for label, explainer in (("explainer", "x"), ("baseline", "x")):
                    rows.append({"recogniser": recogniser, "explainer": explainer,
                                 "kind": "region", "map": label, "image": 0, "mode": mode,
                                 "reference": "pair", "fraction": f, "similarity": 1 - f})
    fig = plots.plot_explainer_curves(pd.DataFrame(rows), source="toy")
    assert len(fig.axes) == 4 and fig.axes[0].get_title() == "a deletion"
    randomisation = pd.DataFrame({"recogniser": ["a", "a"], "explainer": ["x", "x"],
                                  "image": [0, 0], "stages": [1, 2], "stage": ["head", "stem"],
                                  "rank_corr": [0.5, 0.1]})
    fig = plots.plot_randomisation_curves(randomisation)
    (line,) = [x for x in fig.axes[0].get_lines() if x.get_label() == "x"]
    assert list(line.get_ydata()) == [1.0, 0.5, 0.1]
