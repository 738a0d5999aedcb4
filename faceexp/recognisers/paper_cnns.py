"""The paper's CNNs (MobileNetV2, ResNet50) from a faceexp training run, as recognisers.

``load("mobilenetv2", checkpoint="runs/mobilenetv2/model.pt")`` wraps the
checkpoint's network in :class:`faceexp.models.Embedder` and returns its GAP
layer (the paper's descriptor). The networks were trained on whole ORL
frames resized and centre-cropped to 113x113 (:func:`faceexp.data.preprocessing.preprocess`),
so ``align`` does the same to the whole image; MTCNN is used only to refuse
images without a face, as every recogniser does.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from faceexp.recognisers.base import Recogniser


class PaperCNN(Recogniser):
    """MobileNetV2 or ResNet50 from a faceexp checkpoint; 113x113; the GAP layer."""

    input_size = (113, 113)

    def __init__(self, arch: str, device=None, *, checkpoint=None, layer: str = "gap"):
        from faceexp.models import Embedder, load_checkpoint

        if checkpoint is None:
            raise ValueError(
                f"{arch} has no pretrained face weights: pass checkpoint=<a faceexp training run's "
                f"checkpoint> (e.g. from `faceexp train --arch {arch}`), or use one of 'sface', "
                "'facenet-casia', 'dlib'"
            )
        model, meta = load_checkpoint(checkpoint, arch=arch, device=device or "cpu")
        self.name = arch
        self.layer = layer
        self.embedder = Embedder(model, [layer])
        self.model = model
        self.preferred_batch_size = int(self.embedder.preferred_batch_size)
        self.source = {"checkpoint": str(checkpoint), "meta": meta}
        with torch.no_grad():
            self.embedding_dim = int(self.embedder(torch.zeros(1, 3, *self.input_size))[layer].shape[1])

    def _place(self, rgb, box, landmarks):
        from faceexp.data.preprocessing import preprocess

        return np.ascontiguousarray(preprocess(Image.fromarray(rgb)).transpose(1, 2, 0))

    def _embed(self, batch):
        with torch.no_grad():
            return self.embedder(batch)[self.layer].float().cpu()
