"""Chapters 8-9: the explainer's sampling and its other choices compared by
faithfulness and stability (cached).
"""
from __future__ import annotations

import pandas as pd

from faceexp.evaluate import stability as fstab
from faceexp.study import cache as fkeys
from faceexp.study.setup import Study


def sampling_analysis(study: Study, frame: pd.DataFrame, arch: str = "mobilenetv2", *,
                      settings=fstab.DEFAULT_SETTINGS, seeds=(0, 1, 2), n_samples=1000,
                      n_segments=75, batch_size=None, compile=False, progress=True) -> tuple:
    """The explainer's sampling compared by faithfulness and stability, cached, for one
    subject (``arch``: a trained network or a recogniser of the study).

    Returns ``(per_image, summary)`` DataFrames (see
    :func:`faceexp.evaluate.stability.sampling_study`).
    """
    subject = study.subject(arch)
    layer = subject.embedding_layer
    images, keep, _ = subject.images(frame)

    def compute():
        embed = (subject.embedder([layer], compile=compile) if subject.kind == "paper"
                 else subject.embedder([layer]))
        return fstab.sampling_study(embed, images, settings=settings, seeds=seeds,
                                    n_samples=n_samples, n_segments=n_segments, layer=layer,
                                    batch_size=batch_size, progress=progress)

    per_image = fkeys.cached_table(
        study.artifacts, "sampling", compute,
        model=subject.model_id, images=list(frame["path"].iloc[keep]),
        settings=list(settings), seeds=list(seeds), n_samples=n_samples, n_segments=n_segments,
        code=fkeys.source_hash("faceexp.core.batching", "faceexp.core.similarity", "faceexp.data.preprocessing",
                               "faceexp.evaluate.faithfulness", "faceexp.evaluate.masking",
                               "faceexp.evaluate.removal", "faceexp.evaluate.stability",
                               "faceexp.explain.explainer", "faceexp.explain.lime_steps",
                               "faceexp.explain.targets", "faceexp.models", "faceexp.recognisers",
                               "faceexp.study.subjects"))
    return per_image, fstab.summarise_sampling_study(per_image)


def sampling_comparison(study: Study, frame: pd.DataFrame, names, **options) -> tuple:
    """:func:`sampling_analysis` for several subjects: ``(per_image, summary)`` with a
    ``network`` column."""
    per_image, summary = [], []
    for name in names:
        p, m = sampling_analysis(study, frame, name, **options)
        per_image.append(p.assign(network=name))
        summary.append(m.assign(network=name))
    return pd.concat(per_image, ignore_index=True), pd.concat(summary, ignore_index=True)


def sensitivity_analysis(study: Study, frame: pd.DataFrame, name: str, *, seeds=(0, 1),
                         n_samples=150, n_segments=75, batch_size=None, choices=None,
                         progress=True) -> tuple:
    """Each explainer choice's effect on one network's heatmaps, cached
    (:func:`faceexp.evaluate.sensitivity.sensitivity_study`): ``(per_image, summary)``."""
    from faceexp.evaluate import sensitivity as fsens

    subject = study.subject(name)
    layer = subject.embedding_layer
    images, keep, _ = subject.images(frame)
    choices = fsens.DEFAULT_CHOICES if choices is None else choices

    def compute():
        return fsens.sensitivity_study(subject.embedder([layer]), images, choices=choices,
                                       seeds=seeds, n_samples=n_samples, n_segments=n_segments,
                                       layer=layer, batch_size=batch_size, progress=progress)

    per_image = fkeys.cached_table(
        study.artifacts, "sensitivity", compute, model=subject.model_id,
        images=list(frame["path"].iloc[keep]), seeds=list(seeds), n_samples=n_samples,
        n_segments=n_segments, choices=[[label, dict(o)] for label, o in choices],
        code=fkeys.source_hash("faceexp.core.batching", "faceexp.core.similarity", "faceexp.data.preprocessing",
                               "faceexp.evaluate.faithfulness", "faceexp.evaluate.sensitivity",
                               "faceexp.explain.explainer", "faceexp.explain.lime_steps",
                               "faceexp.explain.targets", "faceexp.models", "faceexp.recognisers",
                               "faceexp.study.subjects"))
    return per_image, fsens.summarise_sensitivity(per_image)
