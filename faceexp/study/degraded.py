"""Chapter 5's harder protocol: ORL with degraded probes (ours, not the paper's).

The probes are degraded by :data:`faceexp.data.degradation.DEGRADATION_FAMILY` (low
resolution); its strength is chosen once, on the training identities' pairs, so that the
main recognisers' EERs lie near :data:`faceexp.verify.degraded.EER_TARGET`; the subjects
are then scored, and fused, on the test identities' pairs
(:mod:`faceexp.verify.degraded`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from faceexp.data.degradation import DEGRADATION_FAMILY
from faceexp.study import cache as fkeys
from faceexp.study.setup import Study
from faceexp.verify import degraded as fdeg
from faceexp.verify.metrics import group_eer

#: Candidate strengths the choice is made from: for "downscale", the share of the crop's
#: side lost (0.85: a 144-pixel crop seen at 22 pixels); for "occlusion", of its area.
DEFAULT_STRENGTHS = {"downscale": (0.82, 0.835, 0.85, 0.865, 0.88),
                     "occlusion": (0.1, 0.2, 0.3, 0.4, 0.5)}


@dataclass
class DegradedProtocol:
    """Result of :func:`degraded_protocol`."""

    family: str
    strength: float
    seed: int
    choice: pd.DataFrame  # strength, system, eer: the training identities' pairs
    frame: pd.DataFrame  # the test identities' images scored
    pairs: pd.DataFrame  # gallery x probe pairs of ``frame`` (i, j, label, ..., pose_pair)
    scores: dict  # name -> (P,) cosine of clean gallery and degraded probe
    eer: pd.DataFrame  # system, group, eer, ci_low, ci_high, genuine, impostor, identities, reported
    fusions: pd.DataFrame  # per fused pair: fused, best, best_eer, difference, ci_low, ci_high, ...
    kfold: dict = field(default_factory=dict)  # "a + b" -> faceexp.verify.intervals.kfold_fusion table
    fused_pairs: list = field(default_factory=list)  # (a, b) of each fused pair
    gallery: dict = field(default_factory=dict)  # name -> (N, D) clean descriptors of ``frame``
    probes: dict = field(default_factory=dict)  # name -> (N, D) degraded descriptors (probe rows)

    @property
    def label(self) -> str:
        """"ORL with probes degraded by downscale 0.86 (ours, not the paper's)"."""
        return f"ORL, probes degraded by {self.family} {self.strength:g} (ours, not the paper's)"

    @property
    def tables(self) -> dict:
        """``"a + b"`` -> that pair's row of ``fusions`` (keys as
        :class:`faceexp.study.verification.Complementarity`'s, so that
        :func:`faceexp.report.claims.claim_c` reads this protocol as it reads chapter 5's)."""
        return {f"{a} + {b}": self.fusions.iloc[k] for k, (a, b) in enumerate(self.fused_pairs)}

    @property
    def overall(self) -> pd.DataFrame:
        """EER with its interval per system on all pairs."""
        return self.eer[self.eer["group"] == "overall"].set_index("system")


def degraded_descriptors(study: Study, frame: pd.DataFrame, name: str, strength: float, *,
                         family: str = DEGRADATION_FAMILY, seed: int = 0,
                         progress=True) -> np.ndarray:
    """Flip-averaged embeddings ``(N, D)`` of ``frame``'s images, each degraded at
    ``strength`` (:func:`faceexp.data.degradation.degrade`, keyed by path; 0: clean), in
    the subject's own crop. Cached under ``<artifacts>/descriptors/``. For a recogniser,
    ``frame`` must hold only photos it aligns (:func:`faceexp.study.verification.verifiable_frame`).
    """
    import torch

    from faceexp.core.batching import BatchedEmbed
    from faceexp.core.files import atomic_write
    from faceexp.data.degradation import degrade
    from faceexp.verify.embeddings import frame_fingerprint

    subject = study.subject(name)
    layer = subject.embedding_layer
    key = fkeys.make_key(model=subject.model_id, images=frame_fingerprint(frame), layer=layer,
                         degradation=family if strength else "none", strength=float(strength),
                         seed=int(seed) if strength else 0,
                         code=fkeys.source_hash("faceexp.core.batching", "faceexp.data.degradation",
                                                "faceexp.recognisers", "faceexp.study.subjects"))
    path = study.artifacts / "descriptors" / f"{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["embedding"]
    images, keep, failed = subject.images(frame)
    if len(keep) != len(frame):
        raise ValueError(f"{name} finds no face in {len(frame) - len(keep)} of the photos (e.g. "
                         f"{failed['path'].iloc[0]}); pass verifiable_frame(study, frame)")
    images = degrade(np.asarray(images, np.float32), [str(p) for p in frame["path"]], strength,
                     family=family, seed=seed)
    runner = BatchedEmbed(subject.embedder([layer]), flip_average=True, layers=[layer])
    out = runner(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()), progress=progress,
                 desc=f"embed {name} ({family} {strength:g})")[layer].numpy()
    atomic_write(path, lambda file: np.savez(file, embedding=out))
    return out


def _protocol_scores(study, frame, names, strength, family, seed, progress):
    """Pairs, scores and descriptors: gallery rows embedded clean, probe rows degraded
    (each set embedded once; rows of the other role are zeros)."""
    pairs = fdeg.gallery_probe_pairs(frame)
    probe = fdeg.gallery_probe_roles(frame) == "probe"
    gallery, probes, scores = {}, {}, {}
    for name in names:
        clean = degraded_descriptors(study, frame[~probe].reset_index(drop=True), name, 0.0,
                                     progress=progress)
        bad = degraded_descriptors(study, frame[probe].reset_index(drop=True), name, strength,
                                   family=family, seed=seed, progress=progress)
        gallery[name] = np.zeros((len(frame), clean.shape[1]), clean.dtype)
        gallery[name][~probe] = clean
        probes[name] = np.zeros_like(gallery[name])
        probes[name][probe] = bad
        scores[name] = fdeg.pair_cosines(gallery[name], probes[name], pairs)
    return pairs, scores, gallery, probes


def degraded_protocol(study: Study, *, family: str = DEGRADATION_FAMILY, strengths=None,
                      main=None, fusions=None, seed: int = 0, n_boot: int = 1000, kfold_k: int = 5,
                      progress=True) -> DegradedProtocol:
    """Choose the degradation's strength on the training identities, then score and fuse
    every subject on the test identities.

    Parameters
    ----------
    family : {"downscale", "occlusion"}
        :data:`faceexp.data.degradation.DEGRADATION_FAMILY` by default (see there why).
    strengths : sequence of float, optional
        Candidate strengths (default :data:`DEFAULT_STRENGTHS` of the family); a single
        one is used as it is, without the choice (``choice`` is then empty).
    main : sequence of str, optional
        The recognisers whose EERs choose the strength (default the study's first two).
    fusions : sequence of (str, str) or "a+b", optional
        Pairs fused (default :func:`faceexp.study.verification.default_fusions`).
    seed, n_boot, kfold_k
        Seed of the degradations, folds and bootstraps; resamples; folds over identities.

    Returns
    -------
    DegradedProtocol
        ``eer`` per system and pose pair (``reported`` False where a pose pair has fewer
        than :data:`faceexp.verify.degraded.MIN_GENUINE_PER_POSE` genuine pairs);
        ``fusions``: fused minus best single EER with its paired interval.
    """
    from faceexp.data.degradation import FAMILIES
    from faceexp.study.verification import default_fusions, verifiable_frame
    from faceexp.verify.intervals import eer_interval

    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    main = list(study.recognisers[:2] if main is None else main)
    strengths = [float(s) for s in (DEFAULT_STRENGTHS[family] if strengths is None else strengths)]
    if not main or any(m not in study.subjects for m in main):
        raise ValueError(f"main must name some of the study's subjects {study.subjects}, got {main}")
    if not strengths or any(not 0 <= s < 1 for s in strengths):
        raise ValueError(f"strengths must be fractions in [0, 1), got {strengths}")
    fusions = default_fusions(study) if fusions is None else \
        [tuple(f.split("+")) if isinstance(f, str) else tuple(f) for f in fusions]
    if any(len(f) != 2 or not set(f) <= set(study.subjects) for f in fusions):
        raise ValueError(f"fusions must be pairs of the study's subjects {study.subjects} such as "
                         f"'sface+facenet-casia', got {fusions}")
    # 1. the strength, from the training identities' pairs (never scored); one candidate
    #    given: it is taken as it is (e.g. a strength this rule chose before)
    training = verifiable_frame(study, study.images[study.images["split"].isin(["train", "val"])]
                                .reset_index(drop=True)) if len(strengths) > 1 else None
    rows = []
    for s in strengths if len(strengths) > 1 else ():
        pairs, scores, _, _ = _protocol_scores(study, training, main, s, family, seed, progress)
        g = pairs["label"].to_numpy() == 1
        for name in main:
            rows.append({"strength": s, "system": name,
                         "eer": group_eer(scores[name][~g], scores[name][g], "bob")})
    choice = pd.DataFrame(rows, columns=["strength", "system", "eer"])
    strength = fdeg.choose_strength(choice) if len(strengths) > 1 else strengths[0]
    # 2. every subject on the test identities' pairs
    frame = verifiable_frame(study, study.split("test"))
    pairs, scores, gallery, probes = _protocol_scores(study, frame, study.subjects, strength,
                                                      family, seed, progress)
    by = "pose_pair" if "pose_pair" in pairs else None
    eer = eer_interval(scores, pairs, by=by, n_boot=n_boot, seed=seed)
    eer["reported"] = (eer["group"] == "overall") | (eer["genuine"] >= fdeg.MIN_GENUINE_PER_POSE)
    fused, kfold = [], {}
    for a, b in fusions:
        gain = fdeg.fusion_gain(scores[a], scores[b], pairs, k=kfold_k, seed=seed, n_boot=n_boot,
                                names=(a, b))
        kfold[f"{a} + {b}"] = gain.pop("table")
        line = kfold[f"{a} + {b}"].query("line == 'k-fold'").iloc[0]
        fused.append({"fused pair": f"{a}+{b}", **gain, "change": line["change"],
                      "change_low": line["change_low"], "change_high": line["change_high"]})
    return DegradedProtocol(family=family, strength=strength, seed=seed, choice=choice,
                            frame=frame, pairs=pairs, scores=scores, eer=eer,
                            fusions=pd.DataFrame(fused), kfold=kfold, fused_pairs=list(fusions),
                            gallery=gallery, probes=probes)
