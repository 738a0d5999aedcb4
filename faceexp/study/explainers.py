"""Chapter 10's driver: the explainer comparison on the subjects of a Study."""
from __future__ import annotations

import warnings
from typing import Any, Sequence

from faceexp.evaluate.compare.comparison import compare_explainers
from faceexp.evaluate.compare.measures import genuine_pairs


def compare_subjects(study: Any, names: Sequence[str], *, n_faces: int, seed: int = 0,
                     **options: Any) -> dict:
    """:func:`compare_explainers` on subjects of a :class:`faceexp.study.Study`, on the
    same genuine pairs of its test identities.

    Parameters
    ----------
    study : faceexp.study.Study
    names : sequence of str
        Subjects (``study.subject(name)``): pretrained recognisers, explained in
        the canonical frame (so their maps share one frame), or the paper's
        CNNs trained in the study (their own 113x113 frame).
    n_faces : int
        Genuine pairs (:func:`genuine_pairs` of the test split, seed ``seed``);
        a pair with a face the recogniser cannot find is left out.
    **options
        :func:`compare_explainers` options (``explainers``, ``budget``,
        ``seeds``, ``cascade``, ...).

    Returns
    -------
    dict
        name -> :class:`~faceexp.evaluate.compare.Comparison`, in the order of ``names``.
    """
    with warnings.catch_warnings():
        # captum and facenet-pytorch import tqdm.auto, which warns once in a kernel without
        # ipywidgets; faceexp shows no progress bars in the book (as report.setup_notebook)
        warnings.filterwarnings("ignore", message=r"IProgress not found")
        return _compare_subjects(study, names, n_faces=n_faces, seed=seed, **options)


def _compare_subjects(study, names, *, n_faces, seed, **options):
    from faceexp import recognisers

    test = study.split("test")
    pairs = genuine_pairs(test, n_faces, seed=seed)
    lookup = test.drop_duplicates("path").set_index("path")
    both = lookup.loc[pairs["probe"].tolist() + pairs["partner"].tolist()].reset_index()
    result = {}
    for name in names:
        subject = study.subject(name)
        if subject.kind == "recogniser":
            recogniser = subject.recogniser
        else:
            recogniser = recognisers.load(name, checkpoint=subject.checkpoint,
                                          device=study.device)
        images, keep, _ = subject.images(both)
        position = {int(k): i for i, k in enumerate(keep)}
        n = len(pairs)
        found = [k for k in range(n) if k in position and n + k in position]
        if not found:
            raise ValueError(f"{name}: no pair has both faces aligned")
        faces = images[[position[k] for k in found]]
        partners = images[[position[n + k] for k in found]]
        result[name] = compare_explainers(
            recogniser, faces, partners,
            data=f"{study.dataset}, test identities ({subject.frame_name})", **options)
    return result
