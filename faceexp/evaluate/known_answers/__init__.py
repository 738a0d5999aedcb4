"""Explanations with known answers: probes whose answer is known by construction.

A probe is modified by pasting a non-mate's pixels into it (patch swap: Patch-LFW's
protocol; region swap: the Inpainting Game's idea, blended by seamless cloning), so
the pixels that make the pair (modified probe, mate) dissimilar are known. The
package builds such probes in the canonical crop
(:mod:`~faceexp.evaluate.known_answers.construction`), scores maps against them
with a control for where maps look anyway
(:mod:`~faceexp.evaluate.known_answers.scoring`), runs explainers on them
(:mod:`~faceexp.evaluate.known_answers.benchmark`), and redraws deletion and insertion
with other fills to see whether the explainers' ranking survives
(:mod:`~faceexp.evaluate.known_answers.fills`).
"""
from __future__ import annotations

from faceexp.core.exports import lazy_exports

#: public name -> the module of this package that defines it
_EXPORTS = {
    **dict.fromkeys(["TASKS", "SWAP_REGIONS", "KnownAnswer", "face_box", "region_mask",
            "patch_swap", "region_swap", "construct_probes", "keep_by_drop", "DEFAULT_MIN_DROP"],
            "construction"),
    **dict.fromkeys(["pixel_auc", "pointing_game", "mass_ratio", "map_scores", "change_auc",
            "random_map", "summarise_scores", "SCORE_COLUMNS", "GROUP_COLUMNS"], "scoring"),
    **dict.fromkeys(["LIME_SETTINGS", "UNSIGNED", "UNSIGNED_NOTE", "pair_maps", "score_probes",
            "known_answer_table", "KnownAnswers", "run_known_answers"], "benchmark"),
    **dict.fromkeys(["FILLS", "fill_curves", "fill_aucs", "fill_ranking", "fill_agreement"],
            "fills"),
    **dict.fromkeys(["PairClassifier", "MATCH", "NON_MATCH"], "quantus_adapter"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
