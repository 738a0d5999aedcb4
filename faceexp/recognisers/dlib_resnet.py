"""dlib's face recognition ResNet (128-d, 150x150 chips) through dlib's Python API: a black box.

Weights: ``dlib_face_recognition_resnet_model_v1.dat`` and
``shape_predictor_5_face_landmarks.dat`` inside ``face_recognition_models``
(public domain per dlib-models; its training data carry their own terms).
That package's ``__init__`` imports ``pkg_resources`` (absent from current
setuptools), so the files are found by path, without importing it.

The face is found by MTCNN (its box becomes the ``dlib.rectangle`` that
dlib's 5-point shape predictor refines), then ``dlib.get_face_chip`` cuts
the 150x150 chip with padding 0.25. The network is reached only through
``compute_face_descriptor`` on uint8 chips: no layers, no gradients. It is
the proof that the explainer needs nothing but an embedding function.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from faceexp.core.files import package_path
from faceexp.recognisers.base import Recogniser

RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_FILE = "shape_predictor_5_face_landmarks.dat"


def model_file(filename: str) -> Path:
    """Path of a ``.dat`` file inside the installed ``face_recognition_models`` (not imported)."""
    return package_path("face_recognition_models", f"models/{filename}",
                        install="pip install --no-deps face_recognition_models==0.3.0")


class DlibResNet(Recogniser):
    """dlib's ResNet (see the module docstring)."""

    name = "dlib"
    input_size = (150, 150)
    embedding_dim = 128
    preferred_batch_size = 32
    #: ``dlib.get_face_chip``'s padding around the five landmarks.
    padding = 0.25

    def __init__(self, device=None):
        import dlib

        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"dlib runs on the CPU here; device must be None or 'cpu', got {device!r}")
        self._dlib = dlib
        self.shape_predictor = dlib.shape_predictor(str(model_file(SHAPE_FILE)))
        self.network = dlib.face_recognition_model_v1(str(model_file(RESNET_FILE)))
        self.source = {
            "file": str(model_file(RESNET_FILE)),
            "package": "face_recognition_models==0.3.0",
            "licence": "public domain (dlib-models)",
        }

    def _place(self, rgb, box, landmarks):
        dlib = self._dlib
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        shape = self.shape_predictor(rgb, dlib.rectangle(x1, y1, x2, y2))
        chip = dlib.get_face_chip(rgb, shape, size=self.input_size[0], padding=self.padding)
        return np.asarray(chip, dtype=np.float32) / np.float32(255)

    def _embed(self, batch):
        chips = np.round(batch.numpy().transpose(0, 2, 3, 1) * 255.0).clip(0, 255).astype(np.uint8)
        descriptors = self.network.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
        return torch.tensor(np.array([np.asarray(d) for d in descriptors], dtype=np.float32))
