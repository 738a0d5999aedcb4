"""faceexp: explainable face verification.

LIME adapted to verification (Alonso-Fernandez et al.): superpixels are blacked
out at random, each perturbed image's embedding is compared by cosine
similarity with a reference embedding, and a weighted linear model of those
similarities on the superpixel on/off vectors gives each superpixel's
importance.

The code lives in packages, one per layer; each imports only the layers before it
(``tests/test_layers.py`` enforces it), bottom to top::

    core data models recognisers explain verify evaluate study report cli

- ``core``: argument checks, atomic files, torchrun processes, the one cosine, batched
  embedding, the bootstrap;
- ``data``: image sets and their layouts (ORL, VGGFace2), splits, boxes, decoding and the
  paper's crop, pose;
- ``models``: the paper's CNNs, their layers, checkpoints, engines, training;
- ``recognisers``: SFace, FaceNet-CASIA, dlib and the paper's CNNs behind ``load(name)``;
- ``explain`` (beside ``verify``): targets, the LIME steps, ``Explainer``, ``Explanation``,
  explanation sets;
- ``verify``: EER, the paper's pairs and Table I, embeddings, layer sweeps, fusion, EER
  intervals;
- ``evaluate``: heatmap statistics, masking and removal, faithfulness, stability,
  sensitivity, regions, the seed floor, the field's explainers compared;
- ``study``: the book's analyses and their cache;
- ``report``: captions, the paper's claims and verdicts, plots;
- ``cli``: the ``faceexp`` command.

Public names are importable from the package itself (``faceexp.explain``);
they are loaded lazily so ``import faceexp`` stays cheap.
"""
from __future__ import annotations

import importlib

from faceexp.core.version import __version__

_EXPORTS = {
    # data
    **dict.fromkeys(["orl_root", "load_orl", "scan_identity_folders"], "data.folders"),
    **dict.fromkeys(["split_identities", "validation_holdout"], "data.splits"),
    **dict.fromkeys(["load_bounding_boxes", "attach_boxes", "frame_boxes", "BOX_COLUMNS"], "data.boxes"),
    **dict.fromkeys(["SkipReport", "SkippedFileWarning"], "data.skips"),
    **dict.fromkeys(["resolve_dataset", "Dataset", "find_dataset_file", "ORL_NAME"], "data.layouts"),
    **dict.fromkeys(["FaceDataset", "preprocess", "load_image", "IMAGENET_MEAN", "IMAGENET_STD",
                     "INPUT_SIZE", "preprocessed_images", "preprocessed_image", "crop_box",
                     "BOX_MARGIN"], "data.preprocessing"),
    # pose
    **dict.fromkeys(["POSES", "read_pose_template_list"], "data.layouts"),
    **dict.fromkeys(["POSE_CODES", "estimate_pose", "look_left", "look_left_batch", "yaw_proxy"], "data.pose"),
    # models
    **dict.fromkeys(["ARCHITECTURES", "EMBEDDING_DIM", "build_model", "imagenet_state_dict",
                     "layer_catalogue", "block_ends", "resolve_layer", "Embedder",
                     "save_checkpoint", "load_checkpoint", "checkpoint_hash", "state_dict_hash",
                     "load_embedder",
                     "default_batch_size"], "models"),
    # training
    **dict.fromkeys(["TrainConfig", "TrainResult"], "models.training"),
    # explanation
    **dict.fromkeys(["Explainer"], "explain.explainer"),
    **dict.fromkeys(["superpixels", "draw_samples", "perturb", "kernel_weights", "fit_linear",
                     "paint"], "explain.lime_steps"),
    **dict.fromkeys(["Explanation", "stack_heatmaps"], "explain.explanation"),
    **dict.fromkeys(["explain_set"], "explain.explanation_sets"),
    **dict.fromkeys(["Cosine", "ClassProbability"], "explain.targets"),
    # one embedding path and one similarity
    **dict.fromkeys(["BatchedEmbed"], "core.batching"),
    **dict.fromkeys(["cosine_rows", "pair_cosine"], "core.similarity"),
    # embeddings
    **dict.fromkeys(["compute_embeddings"], "verify.embeddings"),
    **dict.fromkeys(["layer_sweep_scores", "plan_layer_groups"], "verify.layer_sweep"),
    # verification
    **dict.fromkeys(["verification_pairs", "verification_pairs_by_pose", "cosine_scores",
                     "eer_table", "table_one", "format_eer_table", "POSE_PAIRS"], "verify.protocol"),
    **dict.fromkeys(["equal_error_rate", "EER", "det_curve", "roc_curve", "eer_by_group"], "verify.metrics"),
    **dict.fromkeys(["fuse_scores", "fusion_sweep", "best_fusion"], "verify.fusion"),
    **dict.fromkeys(["verify_frame", "VerificationResult"], "verify.verification"),
    # statistics
    **dict.fromkeys(["heatmap_psnr", "psnr_pairs", "average_heatmaps",
                     "average_faces", "averages_by_key", "psnr_between", "psnr_histograms",
                     "psnr_examples", "overlay"], "evaluate.heatmaps"),
    **dict.fromkeys(["remove_significant", "remove_random_pixels", "remove_random_superpixels",
                     "removed_fraction", "removal_experiment"], "evaluate.removal"),
    **dict.fromkeys(["deletion_curves", "deletion_auc", "faithfulness_gap"], "evaluate.faithfulness"),
    **dict.fromkeys(["sampling_study", "summarise_sampling_study"], "evaluate.stability"),
    # the field's explainers beside faceexp's, on faithfulness, sanity and cost
    **dict.fromkeys(["explain_with", "compare_explainers", "EXPLAINERS"], "evaluate.compare"),
    # uncertainty, face regions and verdicts on the paper's claims
    **dict.fromkeys(["bootstrap_eer", "eer_interval", "kfold_fusion"], "verify.intervals"),
    **dict.fromkeys(["mean_interval", "paired_difference"], "core.bootstrap"),
    **dict.fromkeys(["noise_floor", "relative_to_floor"], "evaluate.seed_floor"),
    **dict.fromkeys(["region_masks", "region_ratios", "region_table", "region_contrast",
                     "REGIONS"], "evaluate.regions"),
    **dict.fromkeys(["Claim", "Verdict", "CLAIMS", "verdict", "verdict_paragraph",
                     "claims_table"], "report.verdicts"),
    # cached experiment steps shared by the notebooks
    **dict.fromkeys(["trained_network", "trained_checkpoint", "explain_images", "explain_subject",
                     "HeatmapSet", "pose_labels"], "study.artifacts"),
    # what the book explains: real recognisers (canonical crop) and the paper's CNNs
    **dict.fromkeys(["RecogniserSubject", "PaperSubject", "canonical_crops"], "study.subjects"),
    # the paper's analyses end to end, for the notebooks
    **dict.fromkeys(["prepare_study", "Study", "example_triplet"], "study.setup"),
    # what the book's pages say: notebook setup, captions, results-page summaries
    **dict.fromkeys(["setup_notebook", "caption", "write_summary"], "report.text"),
}

__all__ = sorted([*_EXPORTS, "explain"]) + ["__version__"]


def __getattr__(name: str):
    if name == "explain":  # the package, callable as the function (faceexp/explain/__init__.py)
        return importlib.import_module("faceexp.explain")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'faceexp' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"faceexp.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
