"""What the book's pages say and show: captions and readings, the paper's claims and
their verdicts, and every figure.
"""
from __future__ import annotations

from faceexp.core.exports import lazy_exports

#: public name -> the module of this package that defines it
_EXPORTS = {
    **dict.fromkeys(["ATTENDED", "LESS_ATTENDED", "EARLY_REGIONS", "crop_landmarks",
            "heatmap_regions", "claim_a", "claim_b", "region_summary", "claim_c", "claim_d",
            "claim_e", "claim_e_rise", "RISE_MEASURE", "paragraphs", "as_records", "subject_name",
            "RECORD_KEYS"], "claims"),
    **dict.fromkeys(["COMPETENCE_THRESHOLD", "COMPETENCE_RULE", "competence_gate",
            "competence_gates", "gate_records"], "competence"),
    **dict.fromkeys(["progress", "setup_notebook", "caption", "verification_table",
            "interval_table", "percent_table", "layer_eer_table", "verification_sentence",
            "removal_reading", "paired_removal_reading", "sensitivity_reading", "write_summary"],
            "text"),
    **dict.fromkeys(["Claim", "Verdict", "CLAIMS", "CLAIM_E_SIMILARITY", "OUTCOMES",
            "NOT_COMPETENT", "NOT_RUN", "verdict", "not_competent", "n_needed",
            "verdict_paragraph", "claims_table"], "verdicts"),
    **dict.fromkeys(["POSE_PAIR_ORDER", "METHOD_STYLE", "overlay", "plot_method_overview",
            "plot_coefficients", "plot_heatmap_row", "plot_psnr_examples", "plot_layer_rows",
            "plot_region_ratios", "plot_average_heatmaps", "plot_psnr_histograms",
            "plot_training_curves", "plot_counts", "plot_verification", "plot_fusion_curves",
            "plot_fusion_sweeps", "plot_eer_per_layer", "style_table_one", "plot_removal_eer",
            "plot_removed_fraction", "plot_removal_examples", "plot_deletion_curves",
            "plot_pair_curves", "plot_paired_removal", "plot_sampling_study", "plot_sensitivity",
            "plot_explainer_curves", "plot_randomisation_curves", "figure_caption",
            "caption_markdown"], "plots"),
    **dict.fromkeys(["FormattedTable", "format_table", "format_number", "format_interval"], "tables"),
    **dict.fromkeys(["VERDICTS", "normalise_record", "claim_records", "measurement",
            "verdict_sentence", "value_sentence", "chapter_sentences", "findings_markdown",
            "split_sentence"],
            "summary"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
