"""The study's setup: the device, the trained networks and labelled images every
chapter works on (:class:`Study`, :func:`prepare_study`), per-network options and the
example triplet.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from faceexp import models as fmodels
from faceexp.study import artifacts as fcache


def resolve_device(device) -> str:
    """``"auto"``/None -> "cuda" when available else "cpu"; anything else as given.

    The availability probe is asked with its warnings caught: on a machine with a CUDA
    build of torch and no driver it warns instead of answering quietly False.
    """
    if device in (None, "auto"):
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            available = torch.cuda.is_available()
        return "cuda" if available else "cpu"
    return str(device)


@dataclass
class Study:
    """The networks and images every chapter of the book works on.

    Attributes
    ----------
    runs : dict
        ``arch -> faceexp.models.training.TrainResult`` (trained once, then read).
    images : pandas.DataFrame
        Every image with its ``split`` (train / val / test) and, for the test
        identities, its ``pose``, ``looks`` and ``yaw_proxy``.
    artifacts : Path
    dataset : str
    device : str
    options : dict
        The training options used.
    """

    runs: dict
    images: pd.DataFrame
    artifacts: Path
    dataset: str
    device: str = "cpu"
    options: dict = field(default_factory=dict)
    recognisers: list = field(default_factory=list)
    _subjects: dict = field(default_factory=dict, repr=False)

    @property
    def models(self) -> list:
        """The paper's CNNs trained here, in order."""
        return list(self.runs)

    @property
    def subjects(self) -> list:
        """Everything the book explains: the real recognisers first, then the paper's CNNs."""
        return list(self.recognisers) + self.models

    def subject(self, name: str):
        """The :mod:`faceexp.study.subjects` object of a recogniser or trained network."""
        if name not in self._subjects:
            from faceexp.study import subjects as fsub

            if name in self.recognisers:
                self._subjects[name] = fsub.RecogniserSubject(name, self.artifacts)
            elif name in self.runs:
                self._subjects[name] = fsub.PaperSubject(name, self.checkpoint(name), device=self.device)
            else:
                raise ValueError(f"{name!r} is not in this study: choose one of {self.subjects}")
        return self._subjects[name]

    def checkpoint(self, arch: str) -> Path:
        return Path(self.runs[arch].final_checkpoint)

    def split(self, name: str) -> pd.DataFrame:
        """Images of one split ("train", "val" or "test"), index reset."""
        return self.images[self.images["split"] == name].reset_index(drop=True)

    def embedder(self, arch: str, layers=("gap",), **options):
        """An :class:`faceexp.models.Embedder` of a trained network."""
        return fmodels.load_embedder(self.checkpoint(arch), layers, device=self.device, **options)

    def class_indices(self, frame: pd.DataFrame) -> np.ndarray:
        """Training class index of each row's identity (for softmax targets)."""
        classes = self.runs[self.models[0]].classes
        lookup = {c: i for i, c in enumerate(classes)}
        missing = sorted(set(frame["identity"]) - set(lookup))
        if missing:
            raise ValueError(f"identities {missing[:5]} were not trained on; softmax targets "
                             "exist only for training identities")
        return frame["identity"].map(lookup).to_numpy()

    def summary(self) -> pd.DataFrame:
        """Identities and images per split."""
        g = self.images.groupby("split", sort=False)
        return pd.DataFrame({"identities": g["identity"].nunique(), "images": g.size()}) \
            .reindex(["train", "val", "test"])

    def training_table(self) -> pd.DataFrame:
        """Per network: its initial weights (as its run recorded them, see
        :func:`faceexp.models.initial_weights.init_weights_text`: ImageNet, random, or fine-tuned from an
        MS1M-style pre-training run), epochs, final/best validation accuracy, training time."""
        from faceexp.models.initial_weights import init_weights_text

        rows = []
        for a, run in self.runs.items():
            m = run.metrics
            rows.append({"network": a,
                         "initial weights": init_weights_text(getattr(run, "init_weights", None)),
                         "epochs": len(m), "final lr": m["lr"].iloc[-1],
                         "val. accuracy (final)": m["val_acc"].iloc[-1],
                         "val. accuracy (best)": m["val_acc"].max(),
                         "train accuracy (final)": m["train_acc"].iloc[-1],
                         "training time (s)": round(float(m["seconds"].sum()), 1)})
        return pd.DataFrame(rows).set_index("network")

    def metrics(self) -> dict:
        """``arch -> DataFrame`` of each network's training metrics, one row per epoch."""
        return {a: run.metrics for a, run in self.runs.items()}

    def held_out_images(self, images_per_identity: int | None = None) -> pd.DataFrame:
        """The first ``images_per_identity`` test images of every test identity
        (all when None), keeping every non-frontal one."""
        test = self.split("test")
        if images_per_identity is None:
            return test
        rank = test.groupby("identity").cumcount()
        keep = (rank < images_per_identity) | (test["pose"].fillna("frontal") != "frontal")
        return test[keep].reset_index(drop=True)

    def one_per_identity(self, splits=("train", "val"), n_identities: int | None = None
                         ) -> pd.DataFrame:
        """One image of each training identity from each split (paper IV-A)."""
        classes = self.runs[self.models[0]].classes
        if n_identities is not None:
            classes = classes[:n_identities]
        frame = self.images[self.images["split"].isin(splits)
                            & self.images["identity"].isin(classes)]
        return frame.groupby(["split", "identity"], sort=False).head(1).reset_index(drop=True)


def prepare_study(models=("mobilenetv2", "resnet50"), artifacts="artifacts", *,
                  recognisers=(), data_root=None, pretrain_root=None, seed=0, device="auto",
                  progress=True, **train_options) -> Study:
    """Train (or read) the networks and label the test images' poses.

    Parameters
    ----------
    models : sequence of str
        Architectures, e.g. ``["mobilenetv2", "resnet50"]``.
    recognisers : sequence of str
        Pretrained face recognisers explained beside them (and first), e.g.
        ``["sface", "facenet-casia", "dlib"]`` (:mod:`faceexp.study.subjects`).
    artifacts : path
        Cache folder (trained runs, poses, explanations, embeddings).
    data_root : path, optional
        One folder per identity; None uses ORL.
    pretrain_root : path, optional
        The paper's two training steps: MS1M-style aligned 113x113 crops, one
        folder per identity, trained on first; ``data_root`` then fine-tunes
        that network (:func:`faceexp.study.artifacts.trained_network`). None: one
        step, from ImageNet weights (or random ones).
    seed : int
        Seed of the identity split, the hold-out and training.
    device : {"auto", "cpu", "cuda", ...}
    **train_options
        :class:`faceexp.models.training.TrainConfig` fields (``max_epochs``,
        ``batch_size``, ...); None values are dropped (paper defaults). A
        field may differ per network: a dict ``{arch: value}`` (see
        :func:`per_model_value`).

    Returns
    -------
    Study
    """
    if isinstance(models, str) or not all(isinstance(m, str) for m in models):
        raise ValueError(f"models must be a list of architectures, e.g. "
                         f"{list(fmodels.ARCHITECTURES)}, got {models!r}")
    models = list(models)
    from faceexp.recognisers import PRETRAINED

    if isinstance(recognisers, str) or any(r not in PRETRAINED for r in recognisers or ()):
        raise ValueError(f"recognisers must be a list of some of {list(PRETRAINED)}, got {recognisers!r}")
    unknown = [m for m in models if m not in fmodels.ARCHITECTURES]
    if unknown:
        raise ValueError(f"models must be some of {fmodels.ARCHITECTURES}, got unknown {unknown}")
    device = resolve_device(device)
    options = {k: v for k, v in train_options.items() if v is not None}
    runs = {}
    for arch in models:
        own = {k: per_model_value(v, arch, k, models) for k, v in options.items()}
        runs[arch] = fcache.trained_network(arch, artifacts, progress=progress,
                                          pretrain_root=pretrain_root,
                                          data_root=data_root, seed=seed, device=device,
                                          **{k: v for k, v in own.items() if v is not None})
    images = runs[models[0]].split
    test = images[images["split"] == "test"]
    labelled = fcache.pose_labels(test, artifacts, progress=progress)
    listed = "pose" in images and images.loc[images["split"] == "test", "pose"].notna().any()
    if listed:  # poses from the data set's pose list (VGGFace2-Pose); MTCNN only says where a face looks
        extra = labelled[["path", "looks", "yaw_proxy"]]
    else:
        extra = labelled[["path", "pose", "looks", "yaw_proxy"]]
        images = images.drop(columns=["pose", "template"], errors="ignore")
    images = images.merge(extra, on="path", how="left")
    from faceexp import data as fdata

    dataset = fdata.ORL_NAME if data_root is None else fdata.resolve_dataset(data_root).name
    dataset += " (poses from the data set's pose list)" if listed else ""
    return Study(runs=runs, images=images, artifacts=Path(artifacts), dataset=dataset,
                 device=device, options=dict(options, seed=seed, pretrain_root=pretrain_root),
                 recognisers=list(recognisers or ()))


def per_model_value(value, arch: str, name: str, models=fmodels.ARCHITECTURES):
    """``arch``'s value of an option given for all networks or per network.

    ``value`` is used as it is, unless it is a dict ``{arch: value}`` (papermill
    passes the YAML mapping ``{mobilenetv2: 6, resnet50: 12}`` as one); then every
    network in ``models`` must be given a value, and only known architectures.
    """
    if not isinstance(value, dict):
        return value
    unknown = sorted(set(value) - set(fmodels.ARCHITECTURES))
    missing = [m for m in models if m not in value]
    if unknown or missing:
        raise ValueError(f"{name}: per-network values must name each of {list(models)}; "
                         f"unknown {unknown}, missing {missing}")
    return value[arch]


def example_triplet(frame: pd.DataFrame) -> pd.DataFrame:
    """A probe, another image of the same identity and an image of the next
    identity: rows 'probe', 'genuine', 'impostor' of ``frame``."""
    ids = list(dict.fromkeys(frame["identity"]))
    first = frame[frame["identity"] == ids[0]]
    if len(first) < 2 or len(ids) < 2:
        raise ValueError("frame needs an identity with two images and a second identity")
    other = frame[frame["identity"] == ids[1]]
    out = pd.concat([first.iloc[:2], other.iloc[:1]])
    return out.assign(role=["probe", "genuine", "impostor"]).reset_index(drop=True)
