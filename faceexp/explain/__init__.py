"""The paper's explainer: what is explained (targets), the LIME steps one by one, the
:class:`Explainer`, its result (:class:`Explanation`) and whole sets of images.
"""
from __future__ import annotations

import sys
import types

from faceexp.core.exports import lazy_exports

#: public name -> the module of this package that defines it
_EXPORTS = {
    **dict.fromkeys(["explain", "Explainer"], "explainer"),
    **dict.fromkeys(["Explanation", "ExplanationWarning", "stack_heatmaps", "read_provenance",
            "FORMAT", "FORMATS"], "explanation"),
    **dict.fromkeys(["explain_set", "result_path"], "explanation_sets"),
    **dict.fromkeys(["superpixels", "draw_samples", "perturb", "kernel_weights", "fit_linear",
            "paint", "as_image", "relabel_segments", "SAMPLINGS", "KERNELS", "KERNEL_WIDTHS"],
            "lime_steps"),
    **dict.fromkeys(["split_half_agreement", "spearman_brown", "estimate_agreement"],
            "convergence"),
    **dict.fromkeys(["describe_model", "image_record", "record_for", "run_settings", "differences",
            "prepare_folder", "read_manifest", "SettingsDiffer", "MANIFEST_NAME", "MANIFEST_FORMAT",
            "MODEL_SETTINGS"], "provenance"),
    **dict.fromkeys(["Cosine", "ClassProbability", "as_target", "target_name", "needs_class_index",
            "TARGET_NAMES"], "targets"),
    **dict.fromkeys(["signed_maps", "MAP_KINDS"], "signed_maps"),
    **dict.fromkeys(["CorrRiseMaps", "corrrise", "rise_masks", "CORRRISE_MASKS", "CORRRISE_GRID",
            "CORRRISE_P_KEEP"], "corrrise"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)


class _CallableModule(types.ModuleType):
    """``faceexp.explain`` is both this package and the function users call:
    ``faceexp.explain(image, embed, ...)`` is :func:`faceexp.explain.explainer.explain`.
    (Once a subpackage is imported, Python binds its name on the parent package,
    which would otherwise hide the function of the same name.)"""

    def __call__(self, *args, **kwargs):
        from faceexp.explain.explainer import explain

        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
