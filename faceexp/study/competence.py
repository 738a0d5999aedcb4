"""The competence gate's numbers: each subject's verification EER on the study's test
identities, with its identity-bootstrap interval, so that a network that cannot recognise
faces is kept out of the paper's claims (:mod:`faceexp.report.competence` applies the gate).
"""
from __future__ import annotations

import pandas as pd

from faceexp.study.setup import Study
from faceexp.study.verification import embed_test_images, verifiable_frame
from faceexp.verify import protocol as fprot


def competence_table(study: Study, *, n_boot: int = 1000, seed=0, progress=True) -> pd.DataFrame:
    """Verification EER of every subject of ``study`` on its test identities (all their
    photos every recogniser finds a face in, every genuine and impostor pair, descriptors
    from each subject's embedding layer), with a 95% interval from a bootstrap over
    identities (``n_boot`` resamples). Embeddings are cached as chapter 5's.

    Returns
    -------
    pandas.DataFrame
        Index ``subject``; columns ``eer``, ``ci_low``, ``ci_high`` (fractions),
        ``n`` (test identities), ``genuine``, ``impostor`` (pair counts).
    """
    from faceexp.verify.intervals import eer_interval

    frame = verifiable_frame(study, study.split("test"))
    if frame.empty:
        raise ValueError("the study has no test images to verify: give it test identities "
                         "(prepare_study's split) before asking for the competence table")
    pairs = fprot.verification_pairs(frame, all_impostors=True)
    scores = {}
    for name in study.subjects:
        layer = study.subject(name).embedding_layer
        scores[name] = fprot.cosine_scores(
            embed_test_images(study, frame, name, [layer], progress=progress)[layer], pairs)
    table = eer_interval(scores, pairs, n_boot=n_boot, seed=seed)
    table = table[table["group"] == "overall"].set_index("system")
    table.index.name = "subject"
    return (table.rename(columns={"identities": "n"})
            [["eer", "ci_low", "ci_high", "n", "genuine", "impostor"]])


def competence_numbers(table: pd.DataFrame) -> dict:
    """:func:`competence_table` as the JSON-able mapping the gate reads:
    ``{subject: {"eer", "ci_low", "ci_high", "n"}}`` (fractions; ``n`` test identities)."""
    return {str(s): {"eer": float(r.eer), "ci_low": float(r.ci_low), "ci_high": float(r.ci_high),
                     "n": int(r.n)} for s, r in table.iterrows()}
