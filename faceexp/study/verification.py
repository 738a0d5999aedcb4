"""Chapters 2 and 5: verification by the study's subjects (cached descriptors, EER per
pose pair with intervals, score fusion, every recogniser on every photo).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from faceexp import models as fmodels
from faceexp.study import cache as fkeys
from faceexp.study.setup import Study
from faceexp.verify import fusion as ffusion
from faceexp.verify import protocol as fprot


@dataclass
class Complementarity:
    """Result of :func:`complementarity_analysis` (paper IV-C, Table I, Fig. 6)."""

    pairs: pd.DataFrame
    scores: dict  # name -> (P,) cosine scores of the embedding
    eer: pd.DataFrame  # EER (fraction) per subject and Table I column
    tables: dict  # "a + b" -> Table I of the pair (fractions), fused row included
    sweeps: dict  # "a + b" -> fusion sweep (a, group, eer)
    bests: dict  # "a + b" -> best fusion
    frame: pd.DataFrame = None  # the verified images
    fused_pairs: list = field(default_factory=list)  # (a, b) of each fused pair
    kfold: dict = field(default_factory=dict)  # "a + b" -> faceexp.verify.intervals.kfold_fusion table
    intervals: pd.DataFrame = None  # eer with 95% identity-bootstrap interval per subject, pose pair

    @property
    def table(self) -> pd.DataFrame:
        """The first fused pair's Table I."""
        return next(iter(self.tables.values()))

    @property
    def sweep(self) -> pd.DataFrame:
        return next(iter(self.sweeps.values()))

    @property
    def best(self) -> dict:
        return next(iter(self.bests.values()))

    @property
    def eer_gap(self) -> pd.Series:
        """Overall EER (fraction) per subject."""
        return self.eer["overall"]

    @property
    def fusion_table(self) -> pd.DataFrame:
        """Every fused pair's Table I stacked, indexed by (fused pair, row); the fused row is
        labelled the oracle it is (its weight was tuned on these same pairs)."""
        table = pd.concat(self.tables, names=["fused pair", "row"])
        return table.rename(index={"combined (best)": "combined (oracle: a tuned on these pairs)"})

    @property
    def fusion_summary(self) -> pd.DataFrame:
        """Per fused pair: the fused EER with the weight chosen on held-out identities
        (k-fold) and the oracle's, with 95% intervals, and the change against the better
        network alone (fractions)."""
        rows = []
        for key, table in self.kfold.items():
            for line in ("k-fold", "oracle"):
                r = table[table["line"] == line].iloc[0]
                rows.append({"fused pair": key, "weight chosen": "on held-out identities"
                             if line == "k-fold" else "on these pairs (oracle)",
                             "EER": r["eer"], "EER low": r["ci_low"], "EER high": r["ci_high"],
                             "change": r["change"], "change low": r["change_low"],
                             "change high": r["change_high"]})
        return pd.DataFrame(rows).set_index(["fused pair", "weight chosen"])


def embed_test_images(study: Study, frame: pd.DataFrame, arch: str, layers=("gap",), *,
                      batch_size=50, progress=True) -> dict:
    """Flip-averaged descriptors of ``frame`` by a subject, cached under the study's
    artifacts: ``{layer: (N, D)}`` (recognisers: rows of the photos they align, see
    :func:`verifiable_frame`)."""
    from faceexp.verify import embeddings as femb

    subject = study.subject(arch)
    if subject.kind == "recogniser":
        return _recogniser_descriptors(study, subject, frame, list(layers), progress=progress)
    embedder = study.embedder(arch, list(layers))
    return femb.compute_embeddings(embedder, frame, model_id=fmodels.checkpoint_hash(
        study.checkpoint(arch)), layers=list(layers), batch_size=batch_size,
        cache_dir=study.artifacts / "embeddings", progress=progress)


def _recogniser_descriptors(study: Study, subject, frame: pd.DataFrame, layers: list, *,
                            progress=True) -> dict:
    import torch

    from faceexp.core.batching import BatchedEmbed
    from faceexp.verify.embeddings import frame_fingerprint

    key = fkeys.make_key(model=subject.model_id, images=frame_fingerprint(frame), layers=layers,
                          code=fkeys.source_hash("faceexp.core.batching", "faceexp.recognisers", "faceexp.study.subjects"))
    path = study.artifacts / "descriptors" / f"{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return {layer: z[f"layer{k}"] for k, layer in enumerate(layers)}
    images, keep, failed = subject.images(frame)
    if len(keep) != len(frame):
        raise ValueError(f"{subject.name} finds no face in {len(frame) - len(keep)} of the photos "
                         f"(e.g. {failed['path'].iloc[0]}); verify on verifiable_frame(study, frame)")
    runner = BatchedEmbed(subject.embedder(layers), flip_average=True, layers=layers)
    out = runner(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()), progress=progress,
                 desc=f"embed {subject.name}")
    out = {layer: out[layer].numpy() for layer in layers}
    from faceexp.core.files import atomic_write

    atomic_write(path, lambda file: np.savez(file, **{f"layer{k}": out[layer]
                                                      for k, layer in enumerate(layers)}))
    return out


def verifiable_frame(study: Study, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` every recogniser of the study finds a face in (all rows
    without recognisers), so that every subject is scored on the same pairs."""
    if not study.recognisers:
        return frame.reset_index(drop=True)
    from faceexp.study.subjects import canonical_crops

    _, keep, _ = canonical_crops(frame, study.artifacts)
    return frame.iloc[keep].reset_index(drop=True)


def default_fusions(study: Study) -> list:
    """The pairs fused in chapter 5: the first two recognisers, then the paper's pair."""
    pairs = []
    for group in (study.recognisers, study.models):
        if len(group) >= 2:
            pairs.append((group[0], group[1]))
    return pairs


def complementarity_analysis(study: Study, frame: pd.DataFrame | None = None, *, fusions=None,
                             all_impostors=True, n_boot=1000, kfold_k=5,
                             progress=True) -> Complementarity:
    """Table I: EER per pose pair of every subject (with a 95% interval from a bootstrap
    over identities, ``n_boot`` resamples), and of the best score fusion of each pair in
    ``fusions`` (pairs, or strings "a+b"; default :func:`default_fusions`): the paper's oracle (weight tuned on
    these pairs) and the weight chosen on held-out identities (``kfold_k`` folds over
    identities, :func:`faceexp.verify.intervals.kfold_fusion`). ``all_impostors``: every
    impostor pair (default; ORL has few people), or the paper's next-100-users rule."""
    frame = verifiable_frame(study, study.split("test") if frame is None else frame)
    pairs = fprot.verification_pairs_by_pose(frame, all_impostors=all_impostors)
    scores = {}
    for name in study.subjects:
        layer = study.subject(name).embedding_layer
        scores[name] = fprot.cosine_scores(
            embed_test_images(study, frame, name, [layer], progress=progress)[layer], pairs)
    eer = fprot.eer_table(scores, pairs)
    from faceexp.verify.intervals import eer_interval, kfold_fusion

    intervals = eer_interval(scores, pairs, by="pose_pair", n_boot=n_boot, seed=0)
    fusions = default_fusions(study) if fusions is None else \
        [tuple(f.split("+")) if isinstance(f, str) else tuple(f) for f in fusions]
    unknown = sorted({n for pair in fusions for n in pair} - set(study.subjects))
    if unknown or any(len(pair) != 2 for pair in fusions):
        raise ValueError(f"fusions must be pairs of this study's networks such as "
                         f"'facenet-casia+dlib' (networks: {study.subjects}), got {fusions}")
    tables, sweeps, bests, kfold = {}, {}, {}, {}
    for a, b in fusions:
        key = f"{a} + {b}"
        tables[key] = fprot.table_one({a: scores[a], b: scores[b]}, pairs)
        sweeps[key] = ffusion.fusion_sweep(scores[a], scores[b], pairs["label"].to_numpy(),
                                           groups=pairs["pose_pair"].to_numpy())
        bests[key] = ffusion.best_fusion(sweeps[key])
        kfold[key] = kfold_fusion(scores[a], scores[b], pairs, k=kfold_k, seed=0)
    if not tables:
        tables, sweeps, bests = {"": eer}, {"": None}, {"": None}
    return Complementarity(pairs=pairs, scores=scores, eer=eer, tables=tables, sweeps=sweeps,
                           bests=bests, frame=frame, fused_pairs=fusions, intervals=intervals,
                           kfold=kfold)


def verification_analysis(study: Study, *, n_resamples=1000, identities=None,
                          frames=("canonical",), progress=True) -> pd.DataFrame:
    """Every recogniser on every photo of the data set (all genuine and impostor pairs,
    descriptors averaged with the mirror image), in the canonical crop the book explains
    it in (``"canonical"``) and, if asked, aligned its own way (``"own"``, as
    ``faceexp verify``); EER with a 95% interval from a bootstrap over identities
    (:func:`faceexp.verify.intervals.eer_interval`). Cached.

    ``identities`` keeps only the first n identities (None: all).

    Returns
    -------
    pandas.DataFrame
        ``recogniser``, ``frame``, ``eer``, ``ci_low``, ``ci_high`` (fractions),
        ``genuine``, ``impostor``, ``identities``, ``images``, ``failed`` (photos
        without a face, left out).
    """
    from faceexp import recognisers
    from faceexp.verify.intervals import eer_interval
    from faceexp.verify.embeddings import frame_fingerprint

    unknown = sorted(set(frames) - {"own", "canonical"})
    if unknown:
        raise ValueError(f"frames must be some of ['own', 'canonical'], got {unknown}")
    photos = study.images[["path", "identity"]].reset_index(drop=True)
    if identities is not None:
        keep = list(dict.fromkeys(photos["identity"]))[:int(identities)]
        photos = photos[photos["identity"].isin(keep)].reset_index(drop=True)

    def compute():
        rows = []
        for name in study.recognisers:
            if "canonical" in frames:
                subject = study.subject(name)
                usable = verifiable_frame(study, photos)
                layer = subject.embedding_layer
                descriptors = embed_test_images(study, usable, name, [layer], progress=progress)[layer]
                pairs = fprot.verification_pairs(usable, all_impostors=True)
                scores = fprot.cosine_scores(descriptors, pairs)
                r = eer_interval(scores, pairs, n_boot=n_resamples, seed=0).iloc[-1]
                rows.append({"recogniser": name, "frame": "canonical", "eer": r["eer"],
                             "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                             "genuine": int(r["genuine"]), "impostor": int(r["impostor"]),
                             "identities": int(r["identities"]), "images": len(usable),
                             "failed": len(photos) - len(usable)})
            if "own" in frames:
                r = recognisers.verify_frame(photos, recognisers.load(name),
                                             n_resamples=n_resamples, progress=progress)
                rows.append({"recogniser": name, "frame": "own", "eer": r.eer,
                             "ci_low": r.ci95[0], "ci_high": r.ci95[1], "genuine": r.genuine,
                             "impostor": r.impostor, "identities": r.identities,
                             "images": r.images, "failed": len(r.failed)})
        return pd.DataFrame(rows)

    return fkeys.cached_table(study.artifacts, "verification", compute,
                               images=frame_fingerprint(photos), recognisers=study.recognisers,
                               n_resamples=n_resamples, frames=list(frames),
                               code=fkeys.source_hash("faceexp.core.batching", "faceexp.core.bootstrap", "faceexp.recognisers",
                                                      "faceexp.study.subjects",
                                                      "faceexp.verify.intervals",
                                                      "faceexp.verify.metrics",
                                                      "faceexp.verify.protocol",
                                                      "faceexp.verify.verification"))
