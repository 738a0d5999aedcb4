"""Chapter 3 for the real recognisers: a softmax identification head fitted on their
frozen embeddings of ORL's training identities (:mod:`faceexp.verify.identification_head`),
explained beside the embedding's cosine.

The head is fitted on the ``train`` split's images of the training identities (the
identities the paper's CNNs train on, :func:`faceexp.models.training.training_frames`)
and its accuracy is read on the ``val`` split: held-out images of the same people.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from faceexp.study.explaining import GapSoftmax
from faceexp.study.setup import Study
from faceexp.verify.identification_head import (HeadEmbed, IdentificationHead,
                                                 fit_identification_head, head_accuracy)


class HeadSubject:
    """A recogniser subject with its identification head: besides ``"embedding"`` it
    has a layer ``"softmax"``, the head's class probabilities (:class:`HeadEmbed`)."""

    kind = "recogniser"
    embedding_layer = "embedding"
    has_layers = False

    def __init__(self, base, head: IdentificationHead):
        self.base, self.head = base, head
        self.name = base.name
        self.frame_name = base.frame_name

    @property
    def model_id(self) -> str:
        from faceexp.study.cache import source_hash

        code = source_hash("faceexp.verify.identification_head", "faceexp.study.heads")
        return f"{self.base.model_id}-head-{self.head.fingerprint}-{code}"

    @property
    def label(self) -> str:
        return f"{self.base.label} + softmax head"

    @property
    def sweep_layers(self) -> list:
        return [self.embedding_layer]

    def images(self, frame: pd.DataFrame):
        return self.base.images(frame)

    def embedder(self, layers=None, **_options):
        """Callable (N, 3, H, W) -> dict with the asked ``layers`` of "embedding", "softmax"."""
        layers = [self.embedding_layer, "softmax"] if layers is None else list(layers)
        unknown = sorted(set(layers) - {self.embedding_layer, "softmax"})
        if unknown:
            raise ValueError(f"{self.name} with a head has the layers 'embedding' and 'softmax', "
                             f"got {unknown}")
        return HeadEmbed(self.base.embedder([self.embedding_layer]), self.head,
                         embedding_layer=self.embedding_layer, layers=layers)


@dataclass
class HeadGapSoftmax(GapSoftmax):
    """:class:`faceexp.study.explaining.GapSoftmax` of the recognisers with their heads'
    held-out accuracy (``accuracy``: recogniser -> accuracy, ci_low, ci_high, n, ...)."""

    accuracy: pd.DataFrame = None


def training_identity_images(study: Study, splits=("train", "val"),
                             n_identities: int | None = None) -> pd.DataFrame:
    """One image of each training identity from each of ``splits`` (the first ``n_identities``
    identities in the data's order; None: all), the rows every recogniser aligns."""
    from faceexp.study.verification import verifiable_frame

    if study.models:
        return verifiable_frame(study, study.one_per_identity(tuple(splits), n_identities))
    identities = list(dict.fromkeys(study.split("train")["identity"]))
    if n_identities is not None:
        identities = identities[:int(n_identities)]
    frame = study.images[study.images["split"].isin(splits)
                         & study.images["identity"].isin(identities)]
    frame = verifiable_frame(study, frame.reset_index(drop=True))
    return frame.groupby(["split", "identity"], sort=False).head(1).reset_index(drop=True)


def identification_heads(study: Study, names=None, *, C: float = 10.0, n_boot: int = 2000,
                         seed: int = 0, progress=True) -> tuple[dict, pd.DataFrame]:
    """Fit each recogniser's head on the ``train`` split and read its accuracy on ``val``.

    Parameters
    ----------
    names : sequence of str, optional
        Recognisers of the study (default all).
    C : float
        :func:`faceexp.verify.identification_head.fit_identification_head`'s regularisation.
    n_boot, seed
        Bootstrap of the accuracy's 95% interval over held-out images.

    Returns
    -------
    heads : dict
        name -> :class:`HeadSubject`.
    accuracy : pandas.DataFrame
        Indexed by recogniser: ``accuracy``, ``ci_low``, ``ci_high`` (fractions), ``n``
        (held-out images), ``classes`` (training identities), ``fitted on`` (images).
    """
    from faceexp.study.verification import embed_test_images, verifiable_frame

    names = list(study.recognisers if names is None else names)
    unknown = sorted(set(names) - set(study.recognisers))
    if unknown:
        raise ValueError(f"names must be some of the study's recognisers {study.recognisers}, got {unknown}")
    train = verifiable_frame(study, study.split("train"))
    held = verifiable_frame(study, study.split("val"))
    heads, rows = {}, []
    for name in names:
        subject = study.subject(name)
        layer = subject.embedding_layer
        x = embed_test_images(study, train, name, [layer], progress=progress)[layer]
        head = fit_identification_head(x, train["identity"].to_numpy(), C=C, seed=seed)
        y = embed_test_images(study, held, name, [layer], progress=progress)[layer]
        acc = head_accuracy(head, y, held["identity"].to_numpy(), n_boot=n_boot, seed=seed)
        heads[name] = HeadSubject(subject, head)
        rows.append({"recogniser": name, **acc, "fitted on": head.n_train})
    return heads, pd.DataFrame(rows).set_index("recogniser")


def head_gap_vs_softmax(study: Study, names=None, *, n_identities=None, seed=0, C: float = 10.0,
                        n_boot: int = 2000, progress=True, **options):
    """Chapter 3 for the real recognisers: each image's embedding-cosine heatmap against
    its head's class-probability heatmap, on one training and one held-out (``val``)
    image per training identity, as :func:`faceexp.study.explaining.gap_vs_softmax_analysis`
    does for the paper's CNNs (independent perturbations for the two sources, constant
    maps left out and counted).

    Returns
    -------
    HeadGapSoftmax
        A :class:`faceexp.study.explaining.GapSoftmax` (sources "embedding" and "softmax")
        with ``accuracy``, the heads' held-out accuracy (:func:`identification_heads`).
    """
    import warnings

    import numpy as np

    from faceexp import explain as fexplain
    from faceexp.evaluate import heatmaps as fheat
    from faceexp.study import artifacts as fcache
    from faceexp.study.explaining import SOURCE_SEED_OFFSET, psnr_means

    heads, accuracy = identification_heads(study, names, C=C, n_boot=n_boot, seed=seed,
                                           progress=progress)
    frame = training_identity_images(study, ("train", "val"), n_identities)
    maps, groups, psnr, pairs, empty = [], [], [], {}, []
    for name, head_subject in heads.items():
        classes = head_subject.head.class_index(list(frame["identity"]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fexplain.ExplanationWarning)
            emb = fcache.explain_subject(study.subject(name), frame, study.artifacts,
                                         layers=["embedding"], target="cosine", seed=seed,
                                         progress=progress, **options)
            soft = fcache.explain_subject(head_subject, frame, study.artifacts,
                                          layers=["softmax"], target="softmax",
                                          class_indices=classes, seed=seed + SOURCE_SEED_OFFSET,
                                          progress=progress, **options)
        both = emb.frame[["path"]].reset_index().merge(soft.frame[["path"]].reset_index(), on="path")
        table = emb.frame.iloc[both["index_x"]].reset_index(drop=True)
        e = emb.layer("embedding")[both["index_x"]]
        s = soft.layer("softmax")[both["index_y"]]
        r2 = {"embedding": emb.r2[both["index_x"], 0], "softmax": soft.r2[both["index_y"], 0]}
        pairs[name] = (e, s)
        for source, stack in (("embedding", e), ("softmax", s)):
            informative = stack.reshape(len(stack), -1).std(axis=1) > 0
            maps.append(stack[informative])
            groups.append(table[informative].assign(network=name, source=source))
            for split in dict.fromkeys(table["split"]):
                rows = (table["split"] == split).to_numpy()
                empty.append({"network": name, "source": source, "split": split,
                              "images": int(rows.sum()),
                              "uninformative": int((rows & ~informative).sum()),
                              "mean R²": float(np.nanmean(r2[source][rows]))})
        keep = (e.reshape(len(e), -1).std(axis=1) > 0) & (s.reshape(len(s), -1).std(axis=1) > 0)
        if keep.any():
            psnr.append(fheat.psnr_between(e[keep], s[keep], table[keep].reset_index(drop=True))
                        .assign(network=name))
    averages = fheat.average_heatmaps(np.concatenate(maps), pd.concat(groups, ignore_index=True),
                                      by=["network", "split", "source"])
    faces = fheat.average_faces(emb.images, emb.frame, by=["split"])
    psnr = (pd.concat(psnr, ignore_index=True) if psnr
            else pd.DataFrame(columns=["network", "split", "psnr"]))
    return HeadGapSoftmax(averages=averages, faces=faces, psnr=psnr,
                          psnr_mean=psnr_means(psnr, seed=seed), maps=pairs,
                          uninformative=pd.DataFrame(empty).set_index(["network", "source", "split"]),
                          accuracy=accuracy)

