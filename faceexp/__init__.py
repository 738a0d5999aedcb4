"""faceexp: explainable face verification.

LIME adapted to verification (Alonso-Fernandez et al.): superpixels are blacked
out at random, each perturbed image's embedding is compared by cosine
similarity with a reference embedding, and a weighted linear model of those
similarities on the superpixel on/off vectors gives each superpixel's
importance.

Data flows one way through the modules::

    data, pose -> models -> train | embeddings -> explain | protocol, metrics
      -> heatmaps, removal -> plots -> notebooks

Public names are importable from the package itself (``faceexp.explain``);
they are loaded lazily so ``import faceexp`` stays cheap.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    # data
    "orl_root": "data", "load_orl": "data", "scan_identity_folders": "data",
    "split_identities": "data", "validation_holdout": "data", "FaceDataset": "data",
    "preprocess": "data", "load_bounding_boxes": "data", "SkipReport": "data",
    "IMAGENET_MEAN": "data", "IMAGENET_STD": "data",
    # pose
    "estimate_pose": "pose", "read_pose_template_list": "pose", "look_left": "pose",
    # models
    "build_model": "models", "layer_catalogue": "models", "Embedder": "models",
    "save_checkpoint": "models", "load_checkpoint": "models",
    # training
    "train": "train", "TrainConfig": "train",
    # explanation
    "explain": "explain", "Explainer": "explain", "Explanation": "explain",
    # verification
    "compute_embeddings": "embeddings",
    "verification_pairs": "protocol", "score_pairs": "protocol",
    "equal_error_rate": "metrics", "fusion_sweep": "metrics",
    # statistics
    "peak_signal_noise_ratio": "heatmaps", "average_heatmaps": "heatmaps",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'faceexp' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"faceexp.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
