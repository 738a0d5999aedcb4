"""Verification: EER and curves, the paper's pairs and Table I, cached embeddings, every
layer's scores, score fusion, and a recogniser's verification of a set of faces.
"""
from __future__ import annotations

from faceexp.core.exports import lazy_exports

#: public name -> the module of this package that defines it
_EXPORTS = {
    **dict.fromkeys(["CACHE_VERSION", "compute_embeddings", "frame_fingerprint"], "embeddings"),
    **dict.fromkeys(["DEFAULT_WEIGHTS", "fuse_scores", "fusion_sweep", "best_fusion"], "fusion"),
    **dict.fromkeys(["PROTOCOL_LABEL", "EER_RANGE", "EER_TARGET", "MIN_GENUINE_PER_POSE",
            "gallery_probe_roles", "gallery_probe_pairs", "pair_cosines", "choose_strength",
            "fusion_gain"], "degraded"),
    **dict.fromkeys(["IdentificationHead", "fit_identification_head", "head_accuracy",
            "HeadEmbed"], "identification_head"),
    **dict.fromkeys(["KFOLD_WEIGHTS", "bootstrap_eer", "eer_interval", "kfold_fusion"],
            "intervals"),
    **dict.fromkeys(["layer_sweep_scores", "plan_layer_groups"], "layer_sweep"),
    **dict.fromkeys(["EER", "CONVENTIONS", "equal_error_rate", "det_curve", "roc_curve",
            "eer_by_group", "group_masks", "OVERALL"], "metrics"),
    **dict.fromkeys(["POSE_PAIRS", "TABLE_COLUMNS", "verification_pairs",
            "verification_pairs_by_pose", "cosine_scores", "eer_table", "table_one",
            "format_eer_table"], "protocol"),
    **dict.fromkeys(["PAIR_RULES", "align_images", "VerificationResult", "verify_frame"],
            "verification"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
