"""Computed once, reused: trained networks, pose labels and heatmaps on disk.

The notebooks of the book (and a user's own scripts) share expensive results
through this module. Every artifact lives under one ``artifacts`` folder in a
sub-folder named by a key that hashes everything it depends on: its
parameters, the content of its inputs (checkpoint bytes, image paths) and the
source code of the faceexp modules that compute it. Changing code or
parameters therefore recomputes; changing nothing reads from disk.

Long computations keep their finished work: training resumes from its last
epoch (see :mod:`faceexp.train`), explanations are stored one image at a time,
and an image that cannot be explained is recorded and skipped.

Layout::

    artifacts/
      train/<arch>-<key>/        a faceexp.train run (final.pt, metrics.csv, split.csv)
      poses/<key>.csv            pose labels of a set of images
      sampling/<key>.csv         the sampling study of chapter 8 (cached_table)
      explain/<key>/<n>.npz      one Explanation.save file per image
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from faceexp.embeddings import frame_fingerprint
from faceexp.explanation import Explanation, stack_heatmaps
from faceexp.files import write_csv

_PACKAGE = Path(__file__).resolve().parent


def source_hash(*modules: str) -> str:
    """Hash of the source of faceexp modules or packages (e.g. ``"train", "models"``):
    a module's ``.py`` file, or every ``.py`` file of a sub-package."""
    h = hashlib.sha256()
    for name in sorted(modules):
        folder = _PACKAGE / name
        files = sorted(folder.rglob("*.py")) if folder.is_dir() else [_PACKAGE / f"{name}.py"]
        for file in files:
            h.update(str(file.relative_to(_PACKAGE)).encode())
            h.update(file.read_bytes())
    return h.hexdigest()[:16]


def make_key(**fields) -> str:
    """A short stable hash of JSON-serialisable keyword fields."""
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_table(artifacts, kind: str, compute, **key_fields) -> pd.DataFrame:
    """A DataFrame computed once: read ``<artifacts>/<kind>/<key>.csv`` if it exists,
    else ``compute()`` it and write it there atomically.

    ``key`` hashes ``key_fields`` (:func:`make_key`): pass everything the table
    depends on, including :func:`source_hash` of the modules that compute it.
    """
    path = Path(artifacts) / kind / f"{make_key(**key_fields)}.csv"
    if path.exists():
        return pd.read_csv(path)
    table = compute()
    write_csv(table, path)
    return table


# ----------------------------------------------------------------- networks


def trained_network(arch: str, artifacts="artifacts", *, progress: bool = True, **config):
    """Train ``arch`` once with these settings, or read the finished run.

    Parameters
    ----------
    arch : {"mobilenetv2", "resnet50"}
    artifacts : path
        The artifacts folder.
    progress : bool
        Progress bars while training.
    **config
        :class:`faceexp.train.TrainConfig` fields (``max_epochs``,
        ``batch_size``, ``data_root``, ...). Fields left out keep the paper's
        defaults.

    Returns
    -------
    faceexp.train.TrainResult
        With ``final_checkpoint``, ``metrics`` (one row per epoch),
        ``classes`` and ``test_identities``. An interrupted run is resumed.
    """
    from faceexp import train as ftrain

    cfg = ftrain.TrainConfig(arch=arch, **config)
    key = make_key(config=cfg.to_dict(), code=source_hash(
        "train", "data", "preprocessing", "distributed", "models/networks", "models/checkpoints",
        "models/catalogue"))
    out = Path(artifacts) / "train" / f"{arch}-{key}"
    if (out / "final.pt").exists():
        return ftrain.load_run(out)
    return ftrain.train(cfg, out, progress=progress)


# --------------------------------------------------------------------- poses


def pose_labels(frame: pd.DataFrame, artifacts="artifacts", *, progress: bool = True,
                **options) -> pd.DataFrame:
    """``frame`` with ``pose``, ``looks`` and ``yaw_proxy`` columns (MTCNN), cached.

    Options go to :func:`faceexp.pose.estimate_pose`.
    """
    from faceexp import pose as fpose

    poses = cached_table(artifacts, "poses",
                         lambda: fpose.estimate_pose(frame, progress=progress, **options),
                         images=frame_fingerprint(frame), options=options,
                         code=source_hash("pose", "preprocessing"))
    poses = poses.set_index("path")
    out = frame.copy()
    for column in ("pose", "looks", "yaw_proxy", "detected"):
        out[column] = out["path"].map(poses[column]).to_numpy()
    return out


# ----------------------------------------------------------------- heatmaps


@dataclass
class HeatmapSet:
    """Explanations of many images: a stack of :class:`faceexp.explanation.Explanation`.

    Attributes
    ----------
    frame : pandas.DataFrame
        The explained images (rows of the input frame that succeeded).
    explanations : list of Explanation
        One per row of ``frame``.
    images : numpy.ndarray, shape (N, H, W, 3), float32 in [0, 1]
        The preprocessed images that were explained.
    failed : pandas.DataFrame
        Images that could not be explained, with the reason.
    options : dict

    The stacked arrays are properties: ``layers`` (list of str), ``heatmaps``
    (N, L, H, W) float32 in [0, 1], ``segments`` (N, H, W) int32,
    ``coefficients`` (list of (L, S_i) arrays) and ``r2`` (N, L).
    """

    frame: pd.DataFrame
    explanations: list
    images: np.ndarray
    failed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["path", "reason"]))
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        stacked = stack_heatmaps(self.explanations)
        self.heatmaps, self.segments, self.r2 = (stacked["heatmaps"], stacked["segments"],
                                                 stacked["r2"])

    @property
    def layers(self) -> list:
        return list(self.explanations[0].layers)

    @property
    def coefficients(self) -> list:
        return [x.coefficients for x in self.explanations]

    @property
    def embedding_layer(self) -> str:
        """The explained subject's embedding layer ("gap" for the paper's CNNs)."""
        return self.options.get("embedding_layer", "gap")

    @property
    def embedding(self) -> np.ndarray:
        """Heatmaps of the embedding layer, (N, H, W)."""
        return self.layer(self.embedding_layer)

    def layer(self, name: str) -> np.ndarray:
        """Heatmaps of one layer, (N, H, W)."""
        if name not in self.layers:
            raise ValueError(f"layer {name!r} was not explained; have {self.layers}")
        return self.heatmaps[:, self.layers.index(name)]


def explain_images(checkpoint, frame: pd.DataFrame, artifacts="artifacts", *,
                   layers=("gap",), pooling="flatten", target="cosine", class_indices=None,
                   seed=0, compile=False, backend="auto", device=None, progress=True,
                   **options) -> HeatmapSet:
    """Explain every image of ``frame`` with the network in ``checkpoint``, cached.

    Parameters
    ----------
    checkpoint : path
        A faceexp checkpoint (:func:`faceexp.models.save_checkpoint`).
    frame : pandas.DataFrame
        Images (``path``, ``identity`` columns), in the order to explain.
    artifacts : path
        Cache folder; one :meth:`Explanation.save` file per image under
        ``explain/<key>/``, so an interrupted run keeps what it finished.
    layers : sequence of str
        Layers explained together in one pass per batch (e.g. the block ends,
        "gap" and "softmax" of :func:`faceexp.models.layer_catalogue`).
    pooling : {"flatten", "mean"}
        Descriptor of intermediate layers.
    target : {"cosine", "softmax"}, target object, or dict layer -> target
        ``"softmax"`` explains the probability of ``class_indices[i]`` (the
        image's training identity) in layer "softmax". A dict (keys = ``layers``)
        gives each layer its own target from the same forward passes, e.g.
        ``{"gap": "cosine", "softmax": "softmax"}``.
    class_indices : sequence of int, optional
        Per-image class for a softmax target; default the top class.
    seed : int
        Image ``i`` is explained with seed ``seed + i``.
    compile : bool
        ``torch.compile`` the network (worth it from a few dozen images on;
        torch backend only).
    backend : {"auto", "torch", "onnxruntime"}
        The engine of the forward passes (:class:`faceexp.models.Embedder`):
        "auto" runs onnxruntime on a CPU, where it is the fastest.
    **options
        :class:`faceexp.explainer.Explainer` options (``n_samples``,
        ``n_segments``, ``p_off``, ``sampling``, ``batch_size``, ...).

    Returns
    -------
    HeatmapSet
    """
    from faceexp.subjects import PaperSubject

    subject = PaperSubject(Path(checkpoint).parent.name.split("-")[0], checkpoint, device=device)
    return explain_subject(subject, frame, artifacts, layers=layers, pooling=pooling, target=target,
                           class_indices=class_indices, seed=seed, compile=compile, backend=backend,
                           progress=progress, **options)


def explain_subject(subject, frame: pd.DataFrame, artifacts="artifacts", *, layers=None,
                    pooling="flatten", target="cosine", class_indices=None, seed=0, compile=False,
                    backend="auto", progress=True, **options) -> HeatmapSet:
    """Explain every image of ``frame`` with a subject (:mod:`faceexp.subjects`), cached.

    As :func:`explain_images`, for a real recogniser (canonical crops; photos
    without a face are left out and listed in ``failed``) or a paper CNN.
    ``layers`` default to the subject's embedding layer.
    """
    from tqdm import tqdm

    from faceexp import explainer as fexplain

    layers = [subject.embedding_layer] if layers is None else list(layers)
    all_images, kept, failed_align = subject.images(frame)
    key = make_key(model=subject.model_id, layers=layers, pooling=pooling,
                   target=fexplain.target_name(target), options=options, backend=backend,
                   code=source_hash("explainer", "lime_steps", "explanation", "targets",
                                    "batching", "similarity", "models", "preprocessing",
                                    "recognisers", "subjects", "data"))
    folder = Path(artifacts) / "explain" / key
    folder.mkdir(parents=True, exist_ok=True)
    images = np.zeros((len(frame), *all_images.shape[1:]), np.float32)
    images[kept] = all_images
    classes = [None] * len(frame) if class_indices is None else [int(c) for c in class_indices]
    from faceexp.data import frame_boxes

    boxes = frame_boxes(frame) or [None] * len(frame)
    image_keys = [hashlib.sha256(f"{p}|{seed + i}|{classes[i]}".encode()
                                 + (f"|{boxes[i]}".encode() if boxes[i] is not None else b"")
                                 ).hexdigest()[:16] for i, p in enumerate(frame["path"])]
    kept_set = set(int(k) for k in kept)
    todo = [i for i, k in enumerate(image_keys)
            if i in kept_set and not (folder / f"{k}.npz").exists()]
    failed = list(failed_align.itertuples(index=False, name=None))
    if todo:
        softmax_alone = fexplain.needs_class_index(target) and not isinstance(target, dict)
        embed_layers = list(dict.fromkeys(layers + (["softmax"] if softmax_alone else [])))
        embed_options = dict(pooling=pooling, compile=compile, backend=backend) \
            if subject.kind == "paper" else {}
        embedder = subject.embedder(embed_layers, **embed_options)
        explainer = fexplain.Explainer(embedder, layers=["softmax"] if softmax_alone else layers,
                                       target=target, **options)
        for i in tqdm(todo, desc=f"explain {subject.name} ({len(layers)} layer(s))", unit="image",
                      disable=not progress):
            try:
                result = explainer.explain(images[i], class_index=classes[i], seed=seed + i)
            except (ValueError, RuntimeError) as exc:
                warnings.warn(f"could not explain {frame['path'].iloc[i]}: {exc}", stacklevel=2)
                failed.append((frame["path"].iloc[i], str(exc)))
                continue
            result.save(folder / f"{image_keys[i]}.npz")
    keep, explanations = [], []
    for i, k in enumerate(image_keys):
        path = folder / f"{k}.npz"
        if i in kept_set and path.exists():
            explanations.append(Explanation.load(path))
            keep.append(i)
    if not keep:
        raise ValueError(f"no image of the frame could be explained by {subject.name}; see the warnings")
    return HeatmapSet(
        frame=frame.iloc[keep].reset_index(drop=True), explanations=explanations,
        images=images[keep], failed=pd.DataFrame(failed, columns=["path", "reason"]),
        options=dict(options, layers=layers, pooling=pooling,
                     target=fexplain.target_name(target), seed=seed, subject=subject.name,
                     embedding_layer=subject.embedding_layer))
