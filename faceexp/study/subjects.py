"""What the book explains: a real face recogniser or a paper CNN trained here, behind one face.

A *subject* knows how to turn a frame of photos into the images it is explained
on, how to build its embedding callable over some layers, and which id keys its
cached results:

- :class:`RecogniserSubject` (``sface``, ``facenet-casia``, ``dlib``): photos
  are aligned once into the shared canonical crop
  (:mod:`faceexp.recognisers.canonical`, 144x144; cached under
  ``<artifacts>/aligned/``), and the recogniser warps that crop into its own
  geometry inside its embedding; so every recogniser's heatmaps live in the same
  frame. A photo without a detectable face is left out and listed.
- :class:`PaperSubject` (``mobilenetv2``, ``resnet50``): a faceexp training
  run; the paper's 113x113 crop of the whole photo.

Every subject names its final embedding layer ``embedding_layer`` ("gap" for
the paper's CNNs, "embedding" for the recognisers) and lists the layers the
book explains across depth (``sweep_layers``: block ends, then the embedding).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from faceexp.data import preprocessing as fpre
from faceexp.core.files import atomic_write

#: Display names of the subjects, for captions and table headers.
LABELS = {
    "sface": "SFace",
    "facenet-casia": "FaceNet-CASIA",
    "dlib": "dlib ResNet",
    "mobilenetv2": "MobileNetV2",
    "resnet50": "ResNet50",
}
#: Training data of the pretrained recognisers (captions).
TRAINED_ON = {
    "sface": "MS1M",
    "facenet-casia": "CASIA-WebFace",
    "dlib": "dlib's 3M faces",
}
#: FaceNet-CASIA layers explained across depth: the stem, the end of each
#: Inception-ResNet stage and reduction, and the embedding.
#: Recognisers with layers -> the name of their embedding layer inside the recogniser
#: (a subject calls it "embedding").
LAYERED = {"facenet-casia": "last_bn", "sface": "fc1"}
FACENET_SWEEP = ("conv2d_4b", "repeat_1.4", "mixed_6a", "repeat_2.9", "mixed_7a", "block8")


def label(name: str) -> str:
    """``"facenet-casia"`` -> ``"FaceNet-CASIA"``."""
    return LABELS.get(name, name)


class RecogniserSubject:
    """A pretrained face recogniser in the canonical frame (see the module docstring).

    Parameters
    ----------
    name : {"sface", "facenet-casia", "dlib"}
    artifacts : path
        Cache folder (aligned crops under ``aligned/``).
    """

    kind = "recogniser"
    embedding_layer = "embedding"
    frame_name = "canonical 144x144 face crop"

    def __init__(self, name: str, artifacts):
        from faceexp import recognisers

        if name not in recognisers.PRETRAINED:
            raise ValueError(f"recognisers must be some of {list(recognisers.PRETRAINED)}, got {name!r}")
        self.name = name
        self.artifacts = Path(artifacts)
        self._rec = None

    @property
    def recogniser(self):
        """The canonical-frame recogniser (loaded on first use)."""
        if self._rec is None:
            from faceexp import recognisers

            self._rec = recognisers.load(self.name, frame="canonical")
        return self._rec

    @property
    def model_id(self) -> str:
        from faceexp.study.cache import source_hash

        return f"{self.name}-{source_hash('faceexp.recognisers')}"

    @property
    def label(self) -> str:
        return f"{label(self.name)} (pretrained on {TRAINED_ON[self.name]})"

    @property
    def sweep_layers(self) -> list:
        """The layers explained in chapter 6's one pass: FaceNet's stages and SFace's
        stage ends (:data:`faceexp.recognisers.sface.SWEEP`), the embedding last."""
        if self.name == "facenet-casia":
            return list(FACENET_SWEEP) + [self.embedding_layer]
        if self.name == "sface":
            from faceexp.recognisers.sface import SWEEP

            return list(SWEEP) + [self.embedding_layer]
        return [self.embedding_layer]

    @property
    def has_layers(self) -> bool:
        """FaceNet (a PyTorch graph) and SFace (extra outputs of its ONNX graph) have
        layers; dlib is a black box."""
        return self.name in LAYERED

    @property
    def layer_names(self) -> list:
        """Every layer of the recogniser before its embedding, in depth order, then the
        embedding (chapter 6's per-layer EER); only the embedding for a black box."""
        if self.name == "facenet-casia":
            from faceexp.recognisers.facenet import LAYERS

            inner = [x for x in LAYERS if x != LAYERED[self.name]]
        elif self.name == "sface":
            from faceexp.recognisers.sface import LAYERS

            inner = [x for x in LAYERS if x != LAYERED[self.name]]
        else:
            inner = []
        return inner + [self.embedding_layer]

    def images(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """Canonical crops of ``frame``'s photos, cached.

        Returns
        -------
        images : numpy.ndarray, float32, shape (K, 144, 144, 3)
        keep : numpy.ndarray of int, shape (K,)
            Row positions in ``frame`` of the aligned photos.
        failed : pandas.DataFrame
            ``path``, ``reason`` of the others.
        """
        return canonical_crops(frame, self.artifacts)

    def embedder(self, layers=None, **_options):
        """Callable (N, 3, 144, 144) in [0, 1] -> dict layer -> (N, D).

        ``layers`` are names of :attr:`layer_names` (default the embedding
        alone); FaceNet and SFace have layers besides the embedding, dlib does not.
        """
        layers = [self.embedding_layer] if layers is None else list(layers)
        other = [x for x in layers if x != self.embedding_layer]
        if other and not self.has_layers:
            raise ValueError(f"{self.name} is a black box: it has only the layer "
                             f"{self.embedding_layer!r}, got {other}")
        return _RecogniserEmbed(self.recogniser, layers, self.embedding_layer,
                                LAYERED.get(self.name, "last_bn"))


class _RecogniserEmbed:
    """A recogniser's embed as a dict of layers (FaceNet: its multi-layer embedder)."""

    compiled = False

    def __init__(self, rec, layers, embedding_layer, inner_embedding="last_bn"):
        self.rec, self.layers, self.embedding_layer = rec, list(layers), embedding_layer
        self.preferred_batch_size = rec.preferred_batch_size
        self._inner = None
        if any(x != embedding_layer for x in self.layers):
            inner = [inner_embedding if x == embedding_layer else x for x in self.layers]
            self._inner = rec.embedder(inner)
            self._names = inner

    def __call__(self, batch):
        import torch

        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(np.ascontiguousarray(batch))
        if self._inner is None:
            return {self.embedding_layer: self.rec(batch)}
        out = self._inner(batch)
        return {x: out[n] for x, n in zip(self.layers, self._names)}


class PaperSubject:
    """One of the paper's CNNs from a faceexp training run (its own 113x113 frame)."""

    kind = "paper"
    embedding_layer = "gap"
    frame_name = "113x113 crop of the whole photo (the paper's)"
    has_layers = True

    def __init__(self, arch: str, checkpoint, *, device="cpu"):
        self.name = arch
        self.checkpoint = Path(checkpoint)
        self.device = device

    @property
    def model_id(self) -> str:
        from faceexp import models as fmodels

        return fmodels.checkpoint_hash(self.checkpoint)

    @property
    def label(self) -> str:
        return f"{label(self.name)} (trained here)"

    @property
    def sweep_layers(self) -> list:
        from faceexp import models as fmodels

        return fmodels.block_ends(self.name) + ["gap"]

    def images(self, frame: pd.DataFrame):
        """The paper's crops of every photo: ``(images (N, 113, 113, 3), keep, failed)``."""
        return (fpre.preprocessed_images(frame), np.arange(len(frame)),
                pd.DataFrame(columns=["path", "reason"]))

    def embedder(self, layers=None, **options):
        """:func:`faceexp.models.load_embedder` of the checkpoint (``compile``,
        ``backend``, ``pooling``, ``device`` options)."""
        from faceexp import models as fmodels

        options.setdefault("device", self.device)
        return fmodels.load_embedder(self.checkpoint, list(layers or ["gap"]), **options)


def canonical_crops(frame: pd.DataFrame, artifacts) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Canonical crops (:mod:`faceexp.recognisers.canonical`) of every photo of ``frame``,
    computed once per set of photos and cached in ``<artifacts>/aligned/<key>.npz``.

    Returns ``(images (K, 144, 144, 3) float32, keep (K,) row positions, failed)``.
    """
    from faceexp.study.cache import make_key, source_hash
    from faceexp.verify.embeddings import frame_fingerprint
    from faceexp.recognisers.canonical import CANONICAL_SIZE, CANONICAL_TEMPLATE
    from faceexp.recognisers.alignment import detect_faces, to_rgb_uint8, warp_to_template

    key = make_key(images=frame_fingerprint(frame), code=source_hash("faceexp.recognisers"))
    path = Path(artifacts) / "aligned" / f"{key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            failed = pd.DataFrame({"path": z["failed_path"].astype(str),
                                   "reason": z["failed_reason"].astype(str)})
            return z["images"], z["keep"], failed
    from faceexp.data.boxes import frame_boxes
    from PIL import Image

    from faceexp.data.preprocessing import BOX_MARGIN, crop_box

    paths = list(frame["path"])
    boxes = frame_boxes(frame)
    rgbs, names, where, failed = [], [], [], []
    for k, p in enumerate(paths):
        try:
            rgb = to_rgb_uint8(p)
            box = boxes[k] if boxes is not None else None
            if box is not None and np.all(np.isfinite(box)):
                # MTCNN looks inside the face box grown by BOX_MARGIN (VGGFace2's loose boxes)
                rgb = to_rgb_uint8(np.asarray(crop_box(Image.fromarray(rgb), box, margin=BOX_MARGIN)))
            rgbs.append(rgb)
            names.append(repr(str(p)))
            where.append(k)
        except (OSError, ValueError) as exc:
            failed.append((str(p), str(exc)))
    images, keep = [], []
    for k, rgb, found in zip(where, rgbs, detect_faces(rgbs, names)):
        if isinstance(found, ValueError):
            failed.append((str(paths[k]), str(found)))
            continue
        images.append(warp_to_template(rgb, found[1], CANONICAL_TEMPLATE, CANONICAL_SIZE))
        keep.append(k)
    images = np.stack(images) if images else np.zeros((0, *CANONICAL_SIZE, 3), np.float32)
    keep = np.asarray(keep, dtype=np.int64)
    failed = pd.DataFrame(failed, columns=["path", "reason"])

    def write(file):
        np.savez(file, images=images, keep=keep, failed_path=failed["path"].to_numpy(dtype=str),
                 failed_reason=failed["reason"].to_numpy(dtype=str))

    atomic_write(path, write)
    return images, keep, failed
