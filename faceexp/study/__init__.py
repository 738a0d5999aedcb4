"""The paper's analyses, end to end, as functions the book's notebooks call.

A :class:`Study` holds the trained networks and the labelled images; each
``*_analysis`` function runs one section of the paper on it (explanations and
embeddings come from the :mod:`faceexp.study.artifacts` cache) and returns plain
DataFrames and arrays for :mod:`faceexp.report.plots`. The notebooks set parameters,
call these and show figures; what the pages say about them (captions, readings,
the results-page summaries) is :mod:`faceexp.report`.

Modules: :mod:`~faceexp.study.cache` (keys), :mod:`~faceexp.study.artifacts` (the cache of
trained runs, poses and explanations), :mod:`~faceexp.study.subjects` (what is explained), and one
module per chapter group: :mod:`~faceexp.study.setup`, :mod:`~faceexp.study.explaining`,
:mod:`~faceexp.study.verification`, :mod:`~faceexp.study.layers`, :mod:`~faceexp.study.removal`,
:mod:`~faceexp.study.sampling`, :mod:`~faceexp.study.explainers`.
"""
from __future__ import annotations

from faceexp.core.exports import lazy_exports

#: public name -> the module of this package that defines it
_EXPORTS = {
    **dict.fromkeys(["trained_network", "trained_checkpoint", "pose_labels", "HeatmapSet",
            "explain_images", "explain_subject"], "artifacts"),
    **dict.fromkeys(["source_hash", "make_key", "cached_table"], "cache"),
    **dict.fromkeys(["competence_table", "competence_numbers"], "competence"),
    **dict.fromkeys(["known_answers_subjects", "known_answers_table", "known_answers_reading",
            "fills_reading", "example_maps", "recommendation_check"], "known_answers"),
    **dict.fromkeys(["compare_subjects"], "explainers"),
    **dict.fromkeys(["explain_study", "mirror_looks", "GapSoftmax", "SOURCE_SEED_OFFSET",
            "gap_vs_softmax_analysis", "psnr_means", "NetworkComparison", "sweep_layers",
            "explain_test_images", "comparable_pairs", "compare_networks_analysis", "SeedFloor",
            "seed_floor"], "explaining"),
    **dict.fromkeys(["LayerAnalysis", "block_label", "layered", "depth_columns", "layers_analysis"],
            "layers"),
    **dict.fromkeys(["RemovalAnalysis", "curve_auc_table", "removal_analysis"], "removal"),
    **dict.fromkeys(["eer_rise_analysis"], "removal"),
    **dict.fromkeys(["DegradedProtocol", "degraded_descriptors", "degraded_protocol"], "degraded"),
    **dict.fromkeys(["HeadSubject", "HeadGapSoftmax", "training_identity_images",
            "identification_heads", "head_gap_vs_softmax"], "heads"),
    **dict.fromkeys(["sampling_analysis", "sampling_comparison", "sensitivity_analysis"],
            "sampling"),
    **dict.fromkeys(["resolve_device", "Study", "prepare_study", "per_model_value",
            "example_triplet"], "setup"),
    **dict.fromkeys(["LABELS", "TRAINED_ON", "FACENET_SWEEP", "label", "RecogniserSubject",
            "PaperSubject", "canonical_crops"], "subjects"),
    **dict.fromkeys(["Complementarity", "embed_test_images", "verifiable_frame", "default_fusions",
            "complementarity_analysis", "verification_analysis"], "verification"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
