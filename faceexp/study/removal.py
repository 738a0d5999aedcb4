"""Chapter 7: EER and similarity as the most significant pixels are removed, and
deletion / insertion curves.
"""
from __future__ import annotations

import warnings

from dataclasses import dataclass

import numpy as np
import pandas as pd

from faceexp.evaluate import faithfulness as ffaith
from faceexp.evaluate import removal as fremoval
from faceexp.study.setup import Study
from faceexp.verify import protocol as fprot


@dataclass
class RemovalAnalysis:
    """Result of :func:`removal_analysis` (paper IV-E, Figs. 9-11, deletion curves)."""

    eer: pd.DataFrame  # network, seed, threshold, method, pose_pair, eer, ci_low, ci_high, ...
    fractions: pd.DataFrame  # network, image, threshold, fraction
    examples: list  # (image (H, W, 3), title)
    curves: pd.DataFrame  # network, image, order, fraction, similarity (self, deletion)
    auc: pd.DataFrame  # network x order: mean deletion AUC (self-similarity)
    #: per image after removal: network, seed, image, threshold, method, similarity to a
    #: clean genuine partner
    similarities: pd.DataFrame | None = None
    #: network, baseline, threshold, significant, random, difference, ci_low, ci_high, ...
    paired: pd.DataFrame | None = None
    #: network, mode, image, order, fraction, similarity: the probe against a clean
    #: genuine partner as pixels are deleted or inserted
    pair_curves: pd.DataFrame | None = None
    #: network, mode, order, mean, ci_low, ci_high, n: AUCs of ``pair_curves``
    pair_auc: pd.DataFrame | None = None


def _first_partners(pairs: pd.DataFrame, n: int) -> np.ndarray:
    """Each image's first genuine partner among the ``n`` images (-1: none)."""
    return np.array([p[0] if len(p) else -1 for p in fremoval.genuine_partners(pairs, n)])


def curve_auc_table(curves: pd.DataFrame, *, seed=0) -> pd.DataFrame:
    """Mean AUC per (network, mode, order) of deletion/insertion curves, with its 95%
    bootstrap interval over images (:func:`faceexp.core.bootstrap.mean_interval`)."""
    from faceexp.core.bootstrap import mean_interval

    auc = pd.concat([ffaith.deletion_auc(part.drop(columns="network")).assign(network=network)
                     for network, part in curves.groupby("network", sort=False)],
                    ignore_index=True)
    rows = []
    for (network, mode, order), part in auc.groupby(["network", "mode", "order"], sort=False):
        ci = mean_interval(part["auc"].to_numpy(), seed=seed).iloc[0]
        rows.append({"network": network, "mode": mode, "order": order, "mean": ci["mean"],
                     "ci_low": ci["ci_low"], "ci_high": ci["ci_high"], "n": int(ci["n"])})
    return pd.DataFrame(rows, columns=["network", "mode", "order", "mean", "ci_low", "ci_high",
                                       "n"])


def removal_analysis(study: Study, heatmaps: dict, *, thresholds=fremoval.DEFAULT_THRESHOLDS,
                     deletion_images=None, seed=0, random_seeds=5, all_impostors=False,
                     n_boot=1000, batch_size=None, compile=False,
                     progress=True) -> RemovalAnalysis:
    """EER as the most significant pixels are removed, against both random baselines,
    and deletion / insertion curves, for every subject of ``heatmaps`` (its embedding
    layer).

    * ``eer``: every EER with its identity-bootstrap interval (``n_boot`` resamples);
      each random baseline is drawn with ``random_seeds`` seeds (a ``seed`` column).
    * ``paired``: at each threshold, per image, the similarity of the probe after
      removal to a clean genuine partner, random minus significant removal (mean over
      the random seeds), with a paired bootstrap interval over images
      (:func:`faceexp.evaluate.removal.significant_vs_random`).
    * ``curves`` / ``auc``: deletion curves on the face's self-similarity (most/least
      relevant first, random superpixels), ``deletion_images`` faces.
    * ``pair_curves`` / ``pair_auc``: deletion and insertion curves scored on the
      genuine pair (the probe degraded, its first genuine partner clean), for the
      faces among the first ``deletion_images`` that have a partner: the explainer
      was fitted to the self-similarity, so this is the out-of-sample test.
    """
    eers, fractions, curves, aucs, sims, paired, pair_curves = [], [], [], [], [], [], []
    examples = []
    for name, hs in heatmaps.items():
        subject = study.subject(name)
        layer = subject.embedding_layer
        # the removal functions always call embed with batch_size rows: compiles once
        embed = (subject.embedder([layer], compile=compile) if subject.kind == "paper"
                 else subject.embedder([layer]))
        images = hs.images.transpose(0, 3, 1, 2)
        maps = hs.embedding
        pairs = fprot.verification_pairs_by_pose(hs.frame, all_impostors=all_impostors)
        if pairs.empty or not (pairs["label"] == 1).any() or not (pairs["label"] == 0).any():
            # e.g. a subject explained on one image per person (images_per_subject): its
            # heatmaps still count for the other analyses, an EER needs both kinds of pair
            warnings.warn(f"{name}: its {len(hs.frame)} explained images give no genuine or no "
                          f"impostor pair, so it is left out of the removal analysis (explain "
                          f"at least two images per person with it)", stacklevel=2)
            continue
        for k, s in enumerate(range(seed, seed + max(int(random_seeds), 1))):
            methods = fremoval.METHODS if k == 0 else ("random-pixels", "random-superpixels")
            res, sim = fremoval.removal_experiment(
                embed, images, maps, hs.frame, pairs, thresholds=thresholds, methods=methods,
                segments=hs.segments, seed=s, batch_size=batch_size, layer=layer,
                n_boot=n_boot if k == 0 else 0,   # further seeds: the band is their spread
                similarities=True, progress=progress)
            if k:
                res = res[res["method"] != fremoval.NO_REMOVAL]
                sim = sim[sim["method"] != fremoval.NO_REMOVAL]
            eers.append(res.assign(network=name, seed=s))
            sims.append(sim.assign(network=name, seed=s))
        own = pd.concat([x for x in sims if x["network"].iloc[0] == name], ignore_index=True)
        paired.append(fremoval.significant_vs_random(own, seed=seed).assign(network=name))
        fractions.append(fremoval.removed_fraction(maps, thresholds).assign(network=name))
        n = len(images) if deletion_images is None else min(deletion_images, len(images))
        c = ffaith.deletion_curves(embed, images[:n], maps[:n], segments=hs.segments[:n],
                                   seed=seed, batch_size=batch_size, layer=layer,
                                   progress=progress)
        curves.append(c.assign(network=name))
        aucs.append(ffaith.deletion_auc(c).assign(network=name))
        partner = _first_partners(pairs, len(images))
        with_partner = np.flatnonzero(partner >= 0)[:n]
        if len(with_partner):
            for mode in ffaith.MODES:
                c = ffaith.deletion_curves(
                    embed, images[with_partner], maps[with_partner],
                    segments=hs.segments[with_partner], seed=seed, batch_size=batch_size,
                    layer=layer, references=images[partner[with_partner]], mode=mode,
                    progress=progress)
                c["image"] = with_partner[c["image"].to_numpy()]
                pair_curves.append(c.assign(network=name, mode=mode))
        for t in (0.8, 0.5, 0.3):
            removed, _ = fremoval.remove_significant(images[:1], maps[:1], t)
            examples.append((removed[0].transpose(1, 2, 0), f"{name}, > {t}"))
    curves = pd.concat(curves, ignore_index=True)
    auc = pd.concat(aucs, ignore_index=True)
    auc_mean = auc.groupby(["network", "order"], sort=False)["auc"].mean().unstack("order")
    pair_curves = pd.concat(pair_curves, ignore_index=True) if pair_curves else None
    return RemovalAnalysis(eer=pd.concat(eers, ignore_index=True),
                           fractions=pd.concat(fractions, ignore_index=True),
                           examples=examples, curves=curves, auc=auc_mean,
                           similarities=pd.concat(sims, ignore_index=True),
                           paired=pd.concat(paired, ignore_index=True),
                           pair_curves=pair_curves,
                           pair_auc=None if pair_curves is None else curve_auc_table(
                               pair_curves, seed=seed))


def eer_rise_analysis(study: Study, heatmaps: dict, *, degraded=None, target=0.02,
                      random_seeds=3, seed=0, n_boot=1000, batch_size=None,
                      progress=True) -> pd.DataFrame:
    """Claim (e) as the paper states it, per subject of ``heatmaps`` (its embedding layer):
    the relative EER rise when the pixels above the threshold that removes about
    ``target`` of them are removed from every image, against as many random pixels and
    random superpixels (:func:`faceexp.evaluate.eer_rise.eer_rise`, intervals over
    resampled identities).

    Measured on ORL's own pairs among the explained images (every genuine and impostor
    pair) and, with ``degraded`` (a :class:`faceexp.study.degraded.DegradedProtocol`), on
    its harder protocol: the same images as gallery and probes
    (:func:`faceexp.verify.degraded.gallery_probe_pairs`), each probe degraded as there
    (same family, strength and seed) before the pixels are removed.

    Returns
    -------
    pandas.DataFrame
        ``network``, ``protocol`` ("ORL pairs" or the degraded protocol's label) and the
        columns of :func:`faceexp.evaluate.eer_rise.eer_rise`.
    """
    from faceexp.data.degradation import degrade
    from faceexp.evaluate.eer_rise import eer_rise
    from faceexp.verify import degraded as fdeg

    rows = []
    for name, hs in heatmaps.items():
        subject = study.subject(name)
        layer = subject.embedding_layer
        embed = subject.embedder([layer])
        maps = hs.embedding
        protocols = [("ORL pairs", hs.images, fprot.verification_pairs(hs.frame, all_impostors=True))]
        if degraded is not None and hs.frame.groupby("identity").size().max() < 2:
            warnings.warn(f"{name}: no person has two of its explained images (a gallery image "
                          f"and a probe): left out of the EER rise on {degraded.label}",
                          stacklevel=2)
        elif degraded is not None:
            probe = fdeg.gallery_probe_roles(hs.frame) == "probe"
            images = hs.images.copy()
            images[probe] = degrade(hs.images[probe], [str(p) for p in hs.frame["path"][probe]],
                                    degraded.strength, family=degraded.family, seed=degraded.seed)
            protocols.append((degraded.label, images, fdeg.gallery_probe_pairs(hs.frame)))
        for label, images, pairs in protocols:
            if pairs.empty or not (pairs["label"] == 1).any() or not (pairs["label"] == 0).any():
                warnings.warn(f"{name}: no genuine or no impostor pair among its "
                              f"{len(hs.frame)} explained images on {label}: left out of the "
                              f"EER rise", stacklevel=2)
                continue
            table = eer_rise(embed, images.transpose(0, 3, 1, 2), maps, pairs, target=target,
                             segments=hs.segments, random_seeds=random_seeds, seed=seed,
                             layer=layer, batch_size=batch_size, n_boot=n_boot,
                             progress=progress)
            rows.append(table.assign(network=name, protocol=label))
    if not rows:
        raise ValueError("no subject's explained images give genuine and impostor pairs: "
                         "explain at least two images per person")
    out = pd.concat(rows, ignore_index=True)
    return out[["network", "protocol"] + [c for c in out.columns if c not in ("network", "protocol")]]
