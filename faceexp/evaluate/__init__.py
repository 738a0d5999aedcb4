"""How good an explanation is: heatmap statistics, pixel removal, deletion curves,
sampling stability, sensitivity, face regions, intervals, and the field's explainers
side by side.
"""
from __future__ import annotations

from faceexp.core.exports import lazy_exports

#: public name -> the module of this package that defines it
_EXPORTS = {
    **dict.fromkeys(["EXPLAINERS", "DEFAULT_EXPLAINERS", "ExplainerSpec", "FaceModel",
            "Attribution", "Comparison", "as_face_model", "explain_with", "run_explainer",
            "randomise_stages", "rank_correlation", "baseline_map", "similarity_curves",
            "curve_auc", "t_interval", "genuine_pairs", "align_pairs", "compare_explainers",
            "compare_subjects", "summarise", "recommendation", "comparison_caption",
            "explainer_table", "heatmap_grid", "occlusion_window", "combine", "headline_table",
            "COST_SETTINGS", "cost_table", "comparison_cost", "cost_summary"], "compare"),
    **dict.fromkeys(["ORDERS", "DEFAULT_STEPS", "INSERTION_STEPS", "MODES", "deletion_curves",
            "deletion_auc", "faithfulness_gap"], "faithfulness"),
    **dict.fromkeys(["heatmap_psnr", "psnr_pairs", "average_heatmaps", "average_faces",
            "averages_by_key", "psnr_between", "psnr_histograms", "psnr_examples", "overlay"],
            "heatmaps"),
    **dict.fromkeys(["REGIONS", "GEOMETRY", "region_masks", "region_ratios", "region_table",
            "region_contrast"], "regions"),
    **dict.fromkeys(["METHODS", "DEFAULT_THRESHOLDS", "NO_REMOVAL", "remove_significant",
            "remove_random_pixels", "remove_random_superpixels", "removed_fraction",
            "removal_experiment", "genuine_partners", "significant_vs_random"], "removal"),
    **dict.fromkeys(["DEFAULT_CHOICES", "sensitivity_study", "summarise_sensitivity"],
            "sensitivity"),
    **dict.fromkeys(["DEFAULT_SETTINGS", "sampling_study", "summarise_sampling_study"],
            "stability"),
    **dict.fromkeys(["KFOLD_WEIGHTS", "bootstrap_eer", "eer_interval", "kfold_fusion",
            "mean_interval", "paired_difference", "noise_floor", "relative_to_floor"],
            "uncertainty"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
