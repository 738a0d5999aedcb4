"""The book's analyses: the cache of trained runs and explanations, what is explained
(subjects), and the paper's analyses end to end.
"""
from __future__ import annotations

from faceexp.core.exports import lazy_exports

#: public name -> the module of this package that defines it
_EXPORTS = {
    **dict.fromkeys(["resolve_device", "Study", "prepare_study", "per_model_value",
            "example_triplet", "explain_study", "GapSoftmax", "SOURCE_SEED_OFFSET",
            "gap_vs_softmax_analysis", "psnr_means", "NetworkComparison", "sweep_layers",
            "explain_test_images", "comparable_pairs", "compare_networks_analysis", "SeedFloor",
            "seed_floor", "Complementarity", "embed_test_images", "verifiable_frame",
            "default_fusions", "complementarity_analysis", "verification_analysis", "LayerAnalysis",
            "block_label", "layered", "depth_columns", "layers_analysis", "RemovalAnalysis",
            "curve_auc_table", "removal_analysis", "sampling_analysis", "sampling_comparison",
            "sensitivity_analysis"], "analyses"),
    **dict.fromkeys(["source_hash", "make_key", "cached_table", "trained_network",
            "trained_checkpoint", "pose_labels", "HeatmapSet", "explain_images", "explain_subject"],
            "artifacts"),
    **dict.fromkeys(["LABELS", "TRAINED_ON", "FACENET_SWEEP", "label", "RecogniserSubject",
            "PaperSubject", "canonical_crops"], "subjects"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
