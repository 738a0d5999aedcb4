"""How good an explanation is: heatmap statistics, pixel removal, deletion curves,
sampling stability, sensitivity, face regions, intervals, and the field's explainers
side by side.
"""
from __future__ import annotations

from faceexp.core.exports import lazy_exports

#: public name -> the module of this package that defines it
_EXPORTS = {
    **dict.fromkeys(["ORDERS", "DEFAULT_STEPS", "INSERTION_STEPS", "MODES", "deletion_curves",
            "deletion_auc", "faithfulness_gap"], "faithfulness"),
    **dict.fromkeys(["heatmap_psnr", "psnr_pairs", "average_heatmaps", "average_faces",
            "averages_by_key", "psnr_between", "psnr_histograms", "psnr_examples", "overlay"],
            "heatmaps"),
    **dict.fromkeys(["SLIC_COMPACTNESS", "as_images", "as_maps", "fill_values", "fill_tensor",
            "as_counts", "check_choices", "check_embed", "image_rng", "label_index",
            "random_pixel_mask", "superpixel_permutation", "random_superpixel_mask", "random_masks",
            "apply_masks", "like_input", "slic_maps", "segments_or_slic", "IMAGE_FILLS",
            "INPAINT_RADIUS", "inpainted", "apply_fill"], "masking"),
    **dict.fromkeys(["REGIONS", "GEOMETRY", "region_masks", "region_ratios", "region_table",
            "region_contrast"], "regions"),
    **dict.fromkeys(["METHODS", "DEFAULT_THRESHOLDS", "NO_REMOVAL", "remove_significant",
            "remove_random_pixels", "remove_random_superpixels", "removed_fraction",
            "removal_experiment", "genuine_partners", "significant_vs_random"], "removal"),
    **dict.fromkeys(["TARGET_FRACTION", "THRESHOLD_GRID", "threshold_for_fraction", "eer_rise"],
            "eer_rise"),
    **dict.fromkeys(["FLOOR_READINGS", "noise_floor", "relative_to_floor"], "seed_floor"),
    **dict.fromkeys(["DEFAULT_CHOICES", "sensitivity_study", "summarise_sensitivity"],
            "sensitivity"),
    **dict.fromkeys(["DEFAULT_SETTINGS", "sampling_study", "summarise_sampling_study"],
            "stability"),
    **dict.fromkeys(["EXPLAINERS", "DEFAULT_EXPLAINERS", "ExplainerSpec", "FaceModel",
            "Attribution", "Comparison", "as_face_model", "explain_with", "run_explainer",
            "randomise_stages", "rank_correlation", "baseline_map", "similarity_curves",
            "curve_auc", "t_interval", "genuine_pairs", "align_pairs", "compare_explainers",
            "summarise", "recommendation", "comparison_caption", "explainer_table", "heatmap_grid",
            "occlusion_window", "combine", "headline_table", "COST_SETTINGS", "cost_table",
            "comparison_cost", "cost_summary", "N_SEGMENTS", "SLIC_ZERO", "USUAL_SAMPLES",
            "USUAL_IG_STEPS", "RANDOMISATION_PASS", "BLACK_BOX", "FACENET_STAGES", "PAPER_STAGES",
            "CAM_LAYERS", "CURVE_MODES", "WARMUP_BUDGET", "HEADLINE", "DEGENERATE_SPREAD",
            "explained_spread", "randomisation_summary", "randomisation_reading", "GATES",
            "MIN_FACES", "PRIMARY", "PRIMARY_TEXT", "explainer_gates", "recommend",
            "recommendation_text", "rule_text", "write_recommendation"], "compare"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
