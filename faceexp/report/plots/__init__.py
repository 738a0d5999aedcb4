"""Figures of the paper and beyond; the only faceexp package that draws.

Every ``plot_*`` function takes the arrays/DataFrames that the compute modules
return and draws with matplotlib/seaborn. Those that draw one panel take
``ax=None`` (a new figure when None); :func:`plot_coefficients` and
:func:`plot_counts` return that axes, every other function returns the figure
(the one holding ``ax`` when it was given). ``source=`` attaches a caption
saying what data and model produced the figure; nothing is drawn into the image:
:func:`figure_caption` / :func:`caption_markdown` return it, and in IPython the
figure displays with it as a ``<figcaption>`` under the image (:func:`figure_html`).

One module per kind of figure: :mod:`.heatmaps` (the method, heatmaps, average
maps, PSNR, face regions), :mod:`.training`, :mod:`.verification` (EERs, fusion,
per-layer EER, Table I), :mod:`.removal` (pixel removal, deletion curves),
:mod:`.explainers` (explainer settings and comparisons); :mod:`.common` holds
what they share.
"""
from __future__ import annotations

from faceexp.report.plots.common import (METHOD_STYLE, POSE_PAIR_ORDER, caption_markdown, figure_caption,
                                         figure_html, overlay)
from faceexp.report.plots.explainers import (plot_explainer_curves, plot_randomisation_curves,
                                             plot_sampling_study, plot_sensitivity)
from faceexp.report.plots.heatmaps import (plot_average_heatmaps, plot_coefficients,
                                           plot_heatmap_row, plot_layer_rows,
                                           plot_method_overview, plot_psnr_examples,
                                           plot_psnr_histograms, plot_region_ratios)
from faceexp.report.plots.removal import (plot_deletion_curves, plot_pair_curves,
                                          plot_paired_removal, plot_removal_eer,
                                          plot_removal_examples, plot_removed_fraction)
from faceexp.report.plots.training import plot_counts, plot_training_curves
from faceexp.report.plots.verification import (plot_eer_per_layer, plot_fusion_curves,
                                               plot_fusion_sweeps, plot_verification,
                                               style_table_one)

__all__ = [
    "POSE_PAIR_ORDER", "METHOD_STYLE", "overlay", "figure_caption", "caption_markdown", "figure_html",
    # heatmaps
    "plot_method_overview", "plot_coefficients", "plot_heatmap_row", "plot_psnr_examples",
    "plot_layer_rows", "plot_region_ratios", "plot_average_heatmaps", "plot_psnr_histograms",
    # training
    "plot_training_curves", "plot_counts",
    # verification
    "plot_verification", "plot_fusion_curves", "plot_fusion_sweeps", "plot_eer_per_layer",
    "style_table_one",
    # removal
    "plot_removal_eer", "plot_removed_fraction", "plot_removal_examples", "plot_deletion_curves",
    "plot_pair_curves", "plot_paired_removal",
    # explainers
    "plot_sampling_study", "plot_sensitivity", "plot_explainer_curves", "plot_randomisation_curves",
]
