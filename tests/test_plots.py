"""Every plot function draws from small inputs and returns a figure or axes."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from faceexp.report import plots  # noqa: E402


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
    from faceexp.report import plots

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


def test_removal_interval_plots_draw_their_bars_and_bands():
    paired = pd.DataFrame({"network": ["a", "a", "b", "b"], "baseline": "random-superpixels",
                           "threshold": [0.8, 0.5, 0.8, 0.5], "difference": [0.1, 0.0, -0.1, 0.2],
                           "ci_low": [0.05, -0.1, -0.2, 0.1], "ci_high": [0.2, 0.1, 0.0, 0.3]})
    fig = plots.plot_paired_removal(paired, source="toy")
    ax = fig.axes[0]
    assert len(ax.containers) == 2 and ax.get_title() == "against random-superpixels"
    curves = pd.DataFrame({"network": "a", "image": np.repeat([0, 1], 6),
                           "order": np.tile(np.repeat(["most-relevant-first", "random-superpixels"], 3), 2),
                           "fraction": np.tile([0.0, 0.5, 1.0], 4), "similarity": np.linspace(0, 1, 12)})
    both = pd.concat([curves.assign(mode="deletion"), curves.assign(mode="insertion")])
    fig = plots.plot_pair_curves(both)
    assert [a.get_title() for a in fig.axes] == ["deletion", "insertion"]
    empty = plots.plot_pair_curves(None)
    assert "genuine partner" in empty.axes[0].texts[0].get_text()
    per_layer = pd.DataFrame({"network": "a", "index": [1, 2, 3], "eer": [0.2, 0.1, 0.15],
                              "ci_low": [0.1, 0.05, 0.1], "ci_high": [0.3, 0.2, 0.2],
                              "block_end": [False, True, False]})
    fig = plots.plot_eer_per_layer(per_layer)
    assert len(fig.axes[0].collections) == 1           # the interval band
    eer = pd.DataFrame({"network": "a", "threshold": ["none", 0.8, 0.5], "pose_pair": "overall",
                        "method": ["none", "significant", "significant"], "eer": [0.1, 0.2, 0.3],
                        "ci_low": [0.0, 0.1, 0.2], "ci_high": [0.2, 0.3, 0.4]})
    fig = plots.plot_removal_eer(eer)
    assert len(fig.axes[0].containers) == 1            # error bars on the significant line
    plt.close("all")


def test_caption_is_text_under_the_figure_not_inside_it():
    per_layer = pd.DataFrame({"network": "mb2", "index": [1, 2, 3], "eer": [0.4, 0.3, 0.1],
                              "block_end": [False, True, False]})
    source = "ORL faces <40 people>, mobilenetv2 (random init)"
    fig = plots.plot_eer_per_layer(per_layer, source=source)
    # nothing is written into the image: no figure-level text
    assert [t.get_text() for t in fig.texts] == []
    assert plots.figure_caption(fig) == source
    assert plots.caption_markdown(fig) == "*ORL faces \\<40 people\\>, mobilenetv2 (random init)*"
    html = plots.figure_html(fig)
    assert html.startswith('<figure class="faceexp-figure"') and '<img src="data:image/png;base64,' in html
    assert "<figcaption" in html and "ORL faces &lt;40 people&gt;, mobilenetv2 (random init)</figcaption>" in html
    bare = plots.plot_eer_per_layer(per_layer)
    assert plots.figure_caption(bare) is None and plots.figure_html(bare) is None
    assert plots.caption_markdown(bare) == ""
    plt.close("all")


def test_a_heatmap_grid_wider_than_max_cols_is_transposed_or_wrapped():
    images = np.zeros((8, 4, 4, 3))
    maps = [np.full((4, 4), k / 8) for k in range(8)]
    titles = [f"t{k}" for k in range(8)]
    # 2 rows of 4 -> with max_cols=3: transposed into 4 rows of 2 (row r, column c = panel c*4 + r)
    fig = plots.plot_heatmap_row(images, maps, titles, ncols=4, max_cols=3)
    grid = [[ax.get_title() for ax in fig.axes[r * 2:(r + 1) * 2]] for r in range(4)]
    assert grid == [["t0", "t4"], ["t1", "t5"], ["t2", "t6"], ["t3", "t7"]]
    # 1 row of 8 -> wrapped into rows of 3
    fig = plots.plot_heatmap_row(images, maps, titles, ncols=8, max_cols=3)
    assert len(fig.axes) == 9 and [ax.get_title() for ax in fig.axes[:3]] == ["t0", "t1", "t2"]
    assert not fig.axes[8].get_visible()
    plt.close("all")
