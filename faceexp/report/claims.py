"""The paper's claims (a)-(e), measured on the book's analyses and judged.

Each ``claim_*`` function takes what a chapter computed (the results of
:mod:`faceexp.study`) and returns one :class:`faceexp.report.verdicts.Verdict` per
network: our value of the claim's quantity (:data:`faceexp.report.verdicts.CLAIMS`)
with its 95% bootstrap interval, and the verdict the rule gives. The chapters
print :func:`faceexp.report.verdicts.verdict_paragraph` of them and store them in
their summary; the results page stacks them into one claims table. Nothing
here is typed by hand: a verdict follows from the numbers.

Regions come from the five landmarks of each crop (:mod:`faceexp.evaluate.regions`):
in the canonical crop of the real recognisers they are the canonical template
itself (every crop is aligned to it); in the paper CNNs' 113x113 crop MTCNN
finds them per image (a crop without a face is left out).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from faceexp.evaluate import regions as freg
from faceexp.core.bootstrap import mean_interval, paired_difference
from faceexp.verify.intervals import kfold_fusion
from faceexp.report import verdicts as fver

#: Claim (b): regions said to matter most, and least.
ATTENDED = ("nose", "inter-eye")
LESS_ATTENDED = ("eyes", "mouth")
#: Claim (d): regions of the early layers.
EARLY_REGIONS = ("forehead", "cheeks")


def _verdict(claim: str, name: str, row, *, untestable=None) -> fver.Verdict:
    value = float(row["mean"]) if row is not None else np.nan
    if not np.isfinite(value):
        return fver.verdict(claim, untestable=untestable or "no value could be computed",
                            recogniser=name)
    return fver.verdict(claim, value, float(row["ci_low"]), float(row["ci_high"]),
                        untestable=untestable, recogniser=name)


# ----------------------------------------------------------------------- regions


def crop_landmarks(heatmap_set, subject) -> np.ndarray:
    """Five landmarks (N, 5, 2) of each explained crop; NaN rows where MTCNN found no face."""
    n = len(heatmap_set.images)
    if subject.kind == "recogniser":
        from faceexp.recognisers.canonical import CANONICAL_TEMPLATE

        return np.repeat(CANONICAL_TEMPLATE[None], n, axis=0)
    from faceexp.recognisers.alignment import detect_faces

    crops = [np.round(im * 255).astype(np.uint8) for im in heatmap_set.images]
    out = np.full((n, 5, 2), np.nan)
    for k, found in enumerate(detect_faces(crops, min_face_size=20)):
        if not isinstance(found, ValueError):
            out[k] = found[1]
    return out


def heatmap_regions(heatmap_set, subject, layers=None) -> pd.DataFrame:
    """Region ratios (:func:`faceexp.evaluate.regions.region_ratios`) of every explained image and
    layer: one row per (image, layer) with ``path``, ``pose``, ``layer`` and a column per
    region; images without landmarks are left out."""
    landmarks = crop_landmarks(heatmap_set, subject)
    ok = np.isfinite(landmarks).all(axis=(1, 2))
    if not ok.any():
        return pd.DataFrame(columns=["path", "layer", *freg.REGIONS])
    shape = heatmap_set.images.shape[1:3]
    masks = freg.region_masks(landmarks[ok], shape)
    frame = heatmap_set.frame[ok].reset_index(drop=True)
    parts = []
    for layer in (heatmap_set.layers if layers is None else layers):
        ratios = freg.region_ratios(heatmap_set.layer(layer)[ok], masks,
                                    frame[[c for c in ("path", "identity", "pose") if c in frame]])
        parts.append(ratios.assign(layer=layer))
    return pd.concat(parts, ignore_index=True)


# ----------------------------------------------------------------------- claims


def claim_a(gap_softmax, *, seed=0) -> list:
    """(a) GAP and softmax heatmaps of one image mark the same regions: per image, PSNR
    between its GAP and softmax heatmaps minus PSNR between its GAP heatmap and the next
    image's softmax heatmap (dB). Constant maps (no information) are left out."""
    from faceexp.evaluate.heatmaps import psnr_pairs

    out = []
    for name, (gap, soft) in gap_softmax.maps.items():
        informative = (soft.reshape(len(soft), -1).std(axis=1) > 0) & \
            (gap.reshape(len(gap), -1).std(axis=1) > 0)
        if informative.sum() < 3:
            out.append(fver.verdict("a", untestable=(
                f"{int(informative.sum())} of {len(gap)} images have informative GAP and softmax "
                "heatmaps (the others are constant: the probability barely moves under "
                "perturbation)"), recogniser=name))
            continue
        g, s = gap[informative], soft[informative]
        same = psnr_pairs(g, s)
        other = psnr_pairs(g, np.roll(s, 1, axis=0))
        diff = np.where(np.isfinite(same) & np.isfinite(other), same - other, np.nan)
        row = mean_interval(diff, seed=seed).iloc[0]
        out.append(_verdict("a", name, row))
    return out


def claim_b(comparison, study, *, seed=0) -> list:
    """(b) Nose and inter-eye attended more than eyes and mouth: per image, mean region
    ratio of nose and inter-eye minus that of eyes and mouth, embedding layer."""
    out = []
    for name, hs in comparison.heatmaps.items():
        subject = study.subject(name)
        ratios = heatmap_regions(hs, subject, [subject.embedding_layer])
        if len(ratios) < 3:
            out.append(fver.verdict("b", untestable="fewer than 3 crops with landmarks",
                                    recogniser=name))
            continue
        contrast = freg.region_contrast(ratios, ATTENDED, LESS_ATTENDED).to_numpy()
        out.append(_verdict("b", name, mean_interval(contrast, seed=seed).iloc[0]))
    return out


def region_summary(comparison, study, *, seed=0) -> pd.DataFrame:
    """Mean region ratio per network and region with a 95% interval over images
    (embedding layer): the table behind claim (b)."""
    rows = []
    for name, hs in comparison.heatmaps.items():
        subject = study.subject(name)
        ratios = heatmap_regions(hs, subject, [subject.embedding_layer])
        if len(ratios):
            rows.append(freg.region_table(ratios, seed=seed).assign(network=name))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def claim_c(complementarity, *, k=5, seed=0) -> list:
    """(c) Fusion helps: relative change of the fused EER against the better network, with
    the weight chosen on held-out identities (k-fold over identities)."""
    out = []
    for key, (a, b) in zip(complementarity.tables, complementarity.fused_pairs):
        table = complementarity.kfold.get(key)
        if table is None:
            table = kfold_fusion(complementarity.scores[a], complementarity.scores[b],
                                      complementarity.pairs, k=k, seed=seed)
        line = table[table["line"] == "k-fold"].iloc[0]
        better = min(line["eer_first"], line["eer_second"])
        if not better > 0:
            out.append(fver.verdict("c", untestable=(
                f"the better of the two alone already has EER {100 * better:.2f}% on these pairs: "
                "no room for fusion to improve"), recogniser=key))
            continue
        row = {"mean": line["change"], "ci_low": line["change_low"], "ci_high": line["change_high"]}
        out.append(_verdict("c", key, row))
    return out


def claim_d(layer_heatmaps: dict, study, *, seed=0) -> list:
    """(d) Attention moves from forehead and cheeks to the nose with depth: per image, the
    contrast (forehead + cheeks minus nose + inter-eye) at the first explained layer
    minus the same contrast at the embedding."""
    out = []
    for name, hs in layer_heatmaps.items():
        subject = study.subject(name)
        if not subject.has_layers or len(hs.layers) < 2:
            continue
        first, last = hs.layers[0], subject.embedding_layer
        ratios = heatmap_regions(hs, subject, [first, last])
        if len(ratios) < 6:
            out.append(fver.verdict("d", untestable="fewer than 3 crops with landmarks",
                                    recogniser=name))
            continue
        contrast = freg.region_contrast(ratios, EARLY_REGIONS, ATTENDED)
        early = contrast[ratios["layer"] == first].to_numpy()
        late = contrast[ratios["layer"] == last].to_numpy()
        diff = paired_difference(early, late, seed=seed).iloc[0]
        out.append(_verdict("d", name, {"mean": diff["difference"], "ci_low": diff["ci_low"],
                                        "ci_high": diff["ci_high"]}))
    return out


def claim_e(removal, *, baseline: str = "random-superpixels", seed=0) -> list:
    """(e) Removing the most significant pixels hurts more than removing random ones: per
    image, the similarity of the probe to a clean genuine partner after removing as many
    pixels in random superpixels (mean over the random seeds) minus after removing the
    pixels above each threshold, averaged over the thresholds (> 0 when the heatmap's
    pixels matter more to the pair), with a paired bootstrap interval over images.

    ``removal`` is :func:`faceexp.study.removal_analysis`'s result (its
    ``similarities``)."""
    from faceexp.evaluate.removal import NO_REMOVAL

    sims = getattr(removal, "similarities", None)
    out = []
    if sims is None:
        return [fver.verdict("e", untestable="no per-image genuine-pair similarities "
                                               "(run faceexp.study.removal_analysis)")]
    for name, part in sims.groupby("network", sort=False):
        part = part[part["method"] != NO_REMOVAL]
        sig = part[part["method"] == "significant"].pivot_table(
            index="image", columns="threshold", values="similarity")
        rnd = part[part["method"] == baseline].pivot_table(
            index="image", columns="threshold", values="similarity", aggfunc="mean")
        if sig.empty or rnd.empty:
            out.append(fver.verdict("e", untestable=f"no {baseline} baseline", recogniser=name))
            continue
        rnd = rnd.reindex(index=sig.index, columns=sig.columns)
        per_image = (rnd - sig).mean(axis=1).dropna()      # images with a genuine partner
        if per_image.empty:
            out.append(fver.verdict("e", untestable="no explained image has a genuine partner "
                                                    "among the explained images",
                                    recogniser=name))
            continue
        ci = mean_interval(per_image.to_numpy(), seed=seed).iloc[0]
        out.append(_verdict("e", name, ci))
    return out


def paragraphs(verdicts) -> str:
    """The verdict paragraphs of a chapter, one per network, as Markdown."""
    return "\n\n".join(fver.verdict_paragraph(v) for v in verdicts)


def as_records(verdicts) -> list:
    """Verdicts as JSON-ready dicts for a chapter's summary (the results page's claims table)."""
    from dataclasses import asdict

    records = []
    for v in verdicts:
        d = asdict(v)
        d["claim"] = v.claim.id if hasattr(v.claim, "id") else d.get("claim")
        records.append({k: (None if isinstance(x, float) and not np.isfinite(x) else x)
                        for k, x in d.items() if not isinstance(x, dict)})
    return records
