"""Computed once, reused: trained networks, pose labels and heatmaps on disk.

The notebooks of the book (and a user's own scripts) share expensive results
through this module. Every artifact lives under one ``artifacts`` folder in a
sub-folder named by a key that hashes everything it depends on: its
parameters, the content of its inputs (checkpoint bytes, image paths) and the
source code of the faceexp modules that compute it. Changing code or
parameters therefore recomputes; changing nothing reads from disk.

Long computations keep their finished work: training resumes from its last
epoch (see :mod:`faceexp.models.training`), explanations are stored one image at a time,
and an image that cannot be explained is recorded and skipped.

Layout::

    artifacts/
      train/<arch>-<key>/        a faceexp.models.training run (final.pt, metrics.csv, split.csv)
      pretrain/<arch>-<key>/     the first of the paper's two training steps (MS1M-style
                                 aligned crops, ``pretrain_root``); train/ fine-tunes it
      poses/<key>.csv            pose labels of a set of images
      sampling/<key>.csv         the sampling study of chapter 8 (cached_table)
      explain/<key>/<n>.npz      one Explanation.save file per image

The book keeps one such folder per params profile (``artifacts/<profile>/``);
:func:`trained_checkpoint` finds the newest network it trained there.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from faceexp.verify.embeddings import frame_fingerprint
from faceexp.explain.explanation import Explanation, stack_heatmaps
from faceexp.core.files import file_sha256
from faceexp.study.cache import cached_table, make_key, source_hash

# ----------------------------------------------------------------- networks


#: TrainConfig fields that describe the fine-tuning data: the pre-training run of
#: :func:`trained_network` (``pretrain_root``) leaves them out and reads aligned crops.
_DATA_FIELDS = ("data_root", "boxes", "test_boxes", "pose_list", "mode", "init_checkpoint")

#: The code a training run depends on (part of its cache key).
_TRAIN_CODE = ("faceexp.core.distributed", "faceexp.data", "faceexp.models.catalogue",
               "faceexp.models.checkpoints", "faceexp.models.initial_weights",
               "faceexp.models.networks", "faceexp.models.schedule", "faceexp.models.training")


def trained_network(arch: str, artifacts="artifacts", *, pretrain_root=None, progress: bool = True,
                    **config):
    """Train ``arch`` once with these settings, or read the finished run.

    Parameters
    ----------
    arch : {"mobilenetv2", "resnet50"}
    artifacts : path
        The artifacts folder; runs go to ``<artifacts>/train/<arch>-<key>/``.
    pretrain_root : path, optional
        The paper's two-step training: a folder of MS1M-style aligned crops
        (one sub-folder per identity, images at least 113x113, used as they
        are: ``mode="aligned"``) that is trained on first, into
        ``<artifacts>/pretrain/<arch>-<key>/`` (with ``config``'s recipe but
        none of its data fields: ``data_root``, ``boxes``, ``test_boxes``,
        ``pose_list``, ``mode``); the run on ``data_root`` then fine-tunes it
        (``init_checkpoint`` = that run's ``final.pt``: its backbone, a new
        head). Both runs are cached; the second one's key holds the first's
        checkpoint path and sha256. None: one run, from ``weights``. The
        pre-training run keeps the recipe's ``test_fraction`` of its people
        out of training (held out, never used), as every faceexp run does.
    progress : bool
        Progress bars while training.
    **config
        :class:`faceexp.models.training.TrainConfig` fields (``max_epochs``,
        ``batch_size``, ``data_root``, ...). Fields left out keep the paper's
        defaults.

    Returns
    -------
    faceexp.models.training.TrainResult
        With ``final_checkpoint``, ``metrics`` (one row per epoch),
        ``classes``, ``test_identities`` and ``init_weights`` (the record of
        what it started from: ``source="checkpoint"`` and the pre-training
        run's ``final.pt`` when ``pretrain_root`` is given). An interrupted run
        is resumed.
    """
    if pretrain_root is not None:
        if config.get("init_checkpoint") is not None:
            raise ValueError("pass pretrain_root or init_checkpoint, not both: pretrain_root trains "
                             f"the run whose final.pt becomes init_checkpoint (got "
                             f"init_checkpoint={config['init_checkpoint']!r})")
        if not Path(pretrain_root).expanduser().is_dir():
            raise FileNotFoundError(
                f"pretrain_root must be a folder of aligned 113x113 face crops, one sub-folder "
                f"per identity (MS1M exported to folders), got {str(pretrain_root)!r}; "
                "pass None to train on data_root alone")
        recipe = {k: v for k, v in config.items() if k not in _DATA_FIELDS}
        first = _train_once(arch, Path(artifacts) / "pretrain", progress,
                            dict(recipe, data_root=str(pretrain_root), mode="aligned"))
        config = dict(config, init_checkpoint=str(first.final_checkpoint))
    return _train_once(arch, Path(artifacts) / "train", progress, config)


def _train_once(arch: str, folder: Path, progress: bool, config: dict):
    from faceexp.models import training as ftrain

    cfg = ftrain.TrainConfig(arch=arch, **config)
    fields = dict(config=cfg.to_dict(), code=source_hash(*_TRAIN_CODE))
    if cfg.init_checkpoint is not None and Path(cfg.init_checkpoint).is_file():
        fields["init"] = file_sha256(cfg.init_checkpoint)   # the weights, not only their path
    # (a missing init_checkpoint is refused by faceexp.models.training with its own message)
    out = folder / f"{arch}-{make_key(**fields)}"
    if (out / "final.pt").exists():
        return ftrain.load_run(out)
    return ftrain.train(cfg, out, progress=progress)


def trained_checkpoint(arch: str, profile: str | None = "demo", artifacts="artifacts") -> Path:
    """The ``final.pt`` of the newest finished training run of ``arch``: the network
    ``make book`` trained.

    ``make book`` (``python book/build.py --profile <profile>``) trains the paper's CNNs
    with :func:`trained_network` into ``<artifacts>/<profile>/train/<arch>-<key>/``, one
    folder per set of settings; this picks the run whose ``final.pt`` was written last.

    Parameters
    ----------
    arch : {"mobilenetv2", "resnet50"}
    profile : str or None
        The book's params profile ("quick", "demo", "full"): the sub-folder of
        ``artifacts`` holding ``train/``. None: ``artifacts`` holds ``train/`` itself
        (the folder given to :func:`trained_network`).
    artifacts : path
        The artifacts root; relative paths are taken from the working directory
        (the repository root for ``make book``'s ``artifacts/``).

    Returns
    -------
    pathlib.Path
        ``<artifacts>/<profile>/train/<arch>-<key>/final.pt`` (relative when
        ``artifacts`` is), for :func:`faceexp.models.load_embedder`,
        ``faceexp.recognisers.load(arch, checkpoint=...)`` or ``faceexp explain
        --checkpoint``.
        Pre-training runs (``pretrain/``) are not candidates.

    Raises
    ------
    ValueError
        ``arch`` is not one of the paper's CNNs.
    FileNotFoundError
        No finished run of ``arch`` is there: the message names the folder looked in,
        what it holds (other networks, unfinished runs, other profiles) and how to
        train one.
    """
    from faceexp.models import ARCHITECTURES

    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {list(ARCHITECTURES)}, got {arch!r}")
    base = Path(artifacts) if profile is None else Path(artifacts) / str(profile)
    folder = base / "train"
    finished = sorted(folder.glob(f"{arch}-*/final.pt"),
                      key=lambda p: (p.stat().st_mtime_ns, p.parent.name))
    if finished:
        return finished[-1]
    runs = sorted(p.name + ("" if (p / "final.pt").exists() else " (unfinished: no final.pt)")
                  for p in folder.glob("*-*") if p.is_dir()) if folder.is_dir() else []
    found = (f"the folder holds {runs}" if runs else "the folder holds no run folder"
             if folder.is_dir() else "the folder does not exist")
    others = sorted(p.parent.name for p in Path(artifacts).glob("*/train")
                    if p.is_dir() and any(p.glob(f"{arch}-*/final.pt")))
    if profile is not None and others:
        found += f"; profiles with a finished {arch} run under {str(artifacts)!r}: {others}"
    command = "make book" if profile in (None, "demo") else f"make book PROFILE={profile}"
    raise FileNotFoundError(
        f"no finished training run of {arch} in {str(folder)!r} (looked for "
        f"{arch}-<key>/final.pt; {found}). Train one with `{command}` from the repository "
        f"root, pass profile= a profile with runs or artifacts= the repository's artifacts "
        f"folder, or run `faceexp train --arch {arch} --out RUN` and load RUN/final.pt")


# --------------------------------------------------------------------- poses


def pose_labels(frame: pd.DataFrame, artifacts="artifacts", *, progress: bool = True,
                **options) -> pd.DataFrame:
    """``frame`` with ``pose``, ``looks`` and ``yaw_proxy`` columns (MTCNN), cached.

    Options go to :func:`faceexp.data.pose.estimate_pose`.
    """
    from faceexp.data import pose as fpose

    poses = cached_table(artifacts, "poses",
                         lambda: fpose.estimate_pose(frame, progress=progress, **options),
                         images=frame_fingerprint(frame), options=options,
                         code=source_hash("faceexp.data.pose", "faceexp.data.preprocessing"))
    poses = poses.set_index("path")
    out = frame.copy()
    for column in ("pose", "looks", "yaw_proxy", "detected"):
        out[column] = out["path"].map(poses[column]).to_numpy()
    return out


# ----------------------------------------------------------------- heatmaps


@dataclass
class HeatmapSet:
    """Explanations of many images: a stack of :class:`faceexp.explain.explanation.Explanation`.

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
    backend : {"auto", "torch", "onnxruntime", "openvino"}
        The engine of the forward passes (:class:`faceexp.models.Embedder`):
        "auto" runs, on a CPU, the engine measured fastest for the network
        (:data:`faceexp.models.onnx_backend.AUTO_CPU`: OpenVINO for MobileNetV2,
        onnxruntime for ResNet50).
    **options
        :class:`faceexp.explain.explainer.Explainer` options (``n_samples``,
        ``n_segments``, ``p_off``, ``sampling``, ``batch_size``, ...).

    Returns
    -------
    HeatmapSet
    """
    from faceexp.study.subjects import PaperSubject

    subject = PaperSubject(Path(checkpoint).parent.name.split("-")[0], checkpoint, device=device)
    return explain_subject(subject, frame, artifacts, layers=layers, pooling=pooling, target=target,
                           class_indices=class_indices, seed=seed, compile=compile, backend=backend,
                           progress=progress, **options)


def explain_subject(subject, frame: pd.DataFrame, artifacts="artifacts", *, layers=None,
                    pooling="flatten", target="cosine", class_indices=None, seed=0, compile=False,
                    backend="auto", progress=True, **options) -> HeatmapSet:
    """Explain every image of ``frame`` with a subject (:mod:`faceexp.study.subjects`), cached.

    As :func:`explain_images`, for a real recogniser (canonical crops; photos
    without a face are left out and listed in ``failed``) or a paper CNN.
    ``layers`` default to the subject's embedding layer.
    """
    from tqdm import tqdm

    from faceexp import explain as fexplain

    layers = [subject.embedding_layer] if layers is None else list(layers)
    all_images, kept, failed_align = subject.images(frame)
    key = make_key(model=subject.model_id, layers=layers, pooling=pooling,
                   target=fexplain.target_name(target), options=options, backend=backend,
                   code=source_hash("faceexp.core.batching", "faceexp.core.similarity", "faceexp.data",
                                    "faceexp.explain.explainer", "faceexp.explain.explanation",
                                    "faceexp.explain.lime_steps", "faceexp.explain.targets",
                                    "faceexp.models", "faceexp.recognisers",
                                    "faceexp.study.subjects"))
    folder = Path(artifacts) / "explain" / key
    folder.mkdir(parents=True, exist_ok=True)
    images = np.zeros((len(frame), *all_images.shape[1:]), np.float32)
    images[kept] = all_images
    classes = [None] * len(frame) if class_indices is None else [int(c) for c in class_indices]
    from faceexp.data.boxes import frame_boxes

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
