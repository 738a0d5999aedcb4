"""Face image sets on disk: ORL and one-folder-per-identity layouts (VGGFace2), splits,
boxes, decoding and the paper's crop, pose labels. Imports only :mod:`faceexp.core`.
"""
from __future__ import annotations

from faceexp.core.exports import lazy_exports

#: public name -> the module of this package that defines it
_EXPORTS = {
    **dict.fromkeys(["IMAGE_EXTENSIONS", "orl_root", "load_orl", "scan_identity_folders",
            "split_identities", "validation_holdout", "load_bounding_boxes", "BOX_COLUMNS",
            "attach_boxes", "frame_boxes", "POSES", "TEMPLATE_LIST_BLOCK",
            "read_pose_template_list", "ORL_NAME", "VGGFACE2_FILES", "find_dataset_file", "Dataset",
            "resolve_dataset", "SkipReport", "SkippedFileWarning", "natural_sort_key"],
            "image_sets"),
    **dict.fromkeys(["POSE_CODES", "UNKNOWN", "NOSE_DEPTH_RATIO", "FRONTAL_MAX_DEGREES",
            "THREE_QUARTER_MAX_DEGREES", "FRONTAL_MAX", "THREE_QUARTER_MAX", "POSE_CROP_SIZE",
            "yaw_proxy", "pose_from_yaw_proxy", "looks_from_yaw_proxy", "estimate_pose",
            "look_left", "look_left_batch"], "pose"),
    **dict.fromkeys(["IMAGENET_MEAN", "IMAGENET_STD", "INPUT_SIZE", "RESIZE_SHORTER",
            "PRELOAD_LIMIT", "BOX_MARGIN", "load_image", "crop_box", "preprocess", "FaceDataset",
            "preprocessed_images", "preprocessed_image"], "preprocessing"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
