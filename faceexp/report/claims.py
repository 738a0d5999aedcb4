"""The paper's claims (a)-(e), measured on the book's analyses and judged.

Each ``claim_*`` function takes what a chapter computed (the results of
:mod:`faceexp.study`) and returns one :class:`faceexp.report.verdicts.Verdict` per
network: our value of the claim's quantity (:data:`faceexp.report.verdicts.CLAIMS`)
with its 95% bootstrap interval and its ``n``, and the verdict of the four-outcome
rule of :mod:`faceexp.report.verdicts`. The chapters print
:func:`faceexp.report.verdicts.verdict_paragraph` of them and store them in their
summary; :func:`as_records` makes them one JSON record per (claim, subject), the
results page's claims table and ``claims.json``. Each function takes ``gate``
(subject -> reason, from :func:`faceexp.report.competence.competence_gates`): a
subject that fails the competence gate gets a "not competent" record with the
gate's reason instead of a verdict. Nothing here is typed by hand: a verdict
follows from the numbers.

Regions come from the five landmarks of each crop (:mod:`faceexp.evaluate.regions`):
in the canonical crop of the real recognisers they are the canonical template
itself (every crop is aligned to it); in the paper CNNs' 113x113 crop MTCNN
finds them per image (a crop without a face is left out).
"""
from __future__ import annotations

from dataclasses import replace

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


def _verdict(claim, name: str, row, *, untestable=None, missing=None, extra=None) -> fver.Verdict:
    """A verdict from a row with ``mean``, ``ci_low``, ``ci_high`` and ``n``."""
    value = float(row["mean"]) if row is not None else np.nan
    n = row.get("n") if row is not None else None
    n = int(n) if n is not None and np.isfinite(n) else None
    extra = dict(extra or {})
    if not np.isfinite(value):
        return fver.verdict(claim, n=n, untestable=untestable, recogniser=name, extra=extra,
                            missing=missing or "no value could be computed")
    return fver.verdict(claim, value, float(row["ci_low"]), float(row["ci_high"]), n=n,
                        untestable=untestable, recogniser=name, extra=extra)


def _protocol(result) -> dict:
    """``{"protocol": label}`` for a result on a protocol other than ORL's own pairs
    (e.g. :class:`faceexp.study.degraded.DegradedProtocol`), else ``{}``."""
    label = getattr(result, "label", None)
    return {"protocol": str(label)} if label else {}


def subject_name(name: str) -> str:
    """A subject's name in the records: a fusion "a + b" becomes "a+b"."""
    return "+".join(part.strip() for part in str(name).split("+"))


def _gated(claim, name: str, gate) -> fver.Verdict | None:
    """The not-competent record of ``name`` when the gate (subject -> reason) leaves it out."""
    if not gate:
        return None
    for key in (name, subject_name(name)):
        if key in gate:
            return fver.not_competent(claim, subject_name(name), gate[key])
    parts = subject_name(name).split("+")
    failed = [p for p in parts if p in gate]
    if len(parts) > 1 and failed:
        return fver.not_competent(claim, subject_name(name), "; ".join(
            f"{p}: {gate[p]}" for p in failed))
    return None


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


def claim_a(gap_softmax, *, seed=0, gate=None) -> list:
    """(a) GAP and softmax heatmaps of one image mark the same regions: per image, PSNR
    between its GAP and softmax heatmaps minus PSNR between its GAP heatmap and the next
    image's softmax heatmap (dB). Constant maps (no information) are left out.

    ``gate``: subject -> reason (:func:`faceexp.report.competence.competence_gates`);
    those subjects get a not-competent record instead of a verdict."""
    from faceexp.evaluate.heatmaps import psnr_pairs

    out = []
    for name, (gap, soft) in gap_softmax.maps.items():
        gated = _gated("a", name, gate)
        if gated is not None:
            out.append(gated)
            continue
        informative = (soft.reshape(len(soft), -1).std(axis=1) > 0) & \
            (gap.reshape(len(gap), -1).std(axis=1) > 0)
        if informative.sum() < 3:
            out.append(fver.verdict("a", n=int(informative.sum()), recogniser=name, missing=(
                f"{int(informative.sum())} of {len(gap)} images have informative GAP and softmax "
                "heatmaps (the others are constant: the probability barely moves under "
                "perturbation); at least 3 are needed for an interval")))
            continue
        g, s = gap[informative], soft[informative]
        same = psnr_pairs(g, s)
        other = psnr_pairs(g, np.roll(s, 1, axis=0))
        diff = np.where(np.isfinite(same) & np.isfinite(other), same - other, np.nan)
        row = mean_interval(diff, seed=seed).iloc[0]
        out.append(_verdict("a", name, row))
    return out


def claim_b(comparison, study, *, seed=0, gate=None) -> list:
    """(b) Nose and inter-eye attended more than eyes and mouth: per image, mean region
    ratio of nose and inter-eye minus that of eyes and mouth, embedding layer.
    ``gate``: as :func:`claim_a`."""
    out = []
    for name, hs in comparison.heatmaps.items():
        gated = _gated("b", name, gate)
        if gated is not None:
            out.append(gated)
            continue
        subject = study.subject(name)
        ratios = heatmap_regions(hs, subject, [subject.embedding_layer])
        if len(ratios) < 3:
            out.append(fver.verdict("b", n=len(ratios), recogniser=name,
                                    missing=f"{len(ratios)} crops with landmarks, fewer than 3"))
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


def claim_c(complementarity, *, k=5, seed=0, gate=None) -> list:
    """(c) Fusion helps: relative change of the fused EER against the better network, with
    the weight chosen on held-out identities (k-fold over identities); ``n`` counts the
    identities of the k-fold line. Subjects are named "a+b". ``gate``: as :func:`claim_a`
    (a fusion is left out when either of its systems is)."""
    out, extra = [], _protocol(complementarity)
    for key, (a, b) in zip(complementarity.tables, complementarity.fused_pairs):
        name = subject_name(key)
        gated = _gated("c", name, gate)
        if gated is not None:
            out.append(gated)
            continue
        table = complementarity.kfold.get(key)
        if table is None:
            table = kfold_fusion(complementarity.scores[a], complementarity.scores[b],
                                 complementarity.pairs, k=k, seed=seed)
        line = table[table["line"] == "k-fold"].iloc[0]
        n = int(line["identities"]) if "identities" in line and np.isfinite(
            line["identities"]) else None
        better = min(line["eer_first"], line["eer_second"])
        if not better > 0:
            out.append(fver.verdict("c", n=n, recogniser=name, extra=extra, untestable=(
                f"a ceiling of this protocol: the better of the two alone already has EER "
                f"{100 * better:.2f}% on these pairs, so fusion has no error to remove (a "
                "harder protocol can test it)")))
            continue
        row = {"mean": line["change"], "ci_low": line["change_low"],
               "ci_high": line["change_high"], "n": n}
        out.append(_verdict("c", name, row, extra=extra))
    return out


def claim_d(layer_heatmaps: dict, study, *, seed=0, gate=None) -> list:
    """(d) Attention moves from forehead and cheeks to the nose with depth: per image, the
    contrast (forehead + cheeks minus nose + inter-eye) at the first explained layer
    minus the same contrast at the embedding. A subject without layers (a black box) is
    "cannot be tested"; ``gate``: as :func:`claim_a`."""
    out = []
    for name, hs in layer_heatmaps.items():
        gated = _gated("d", name, gate)
        if gated is not None:
            out.append(gated)
            continue
        subject = study.subject(name)
        if not subject.has_layers:
            out.append(fver.verdict("d", recogniser=name, untestable=(
                "a black box: its intermediate layers cannot be read, so there is no early "
                "layer to explain")))
            continue
        if len(hs.layers) < 2:
            out.append(fver.verdict("d", recogniser=name, untestable=(
                "only the embedding was explained: the claim compares an early layer with the "
                "last, so explain at least one earlier layer")))
            continue
        first, last = hs.layers[0], subject.embedding_layer
        ratios = heatmap_regions(hs, subject, [first, last])
        if len(ratios) < 6:
            out.append(fver.verdict("d", n=len(ratios) // 2, recogniser=name,
                                    missing="fewer than 3 crops with landmarks"))
            continue
        contrast = freg.region_contrast(ratios, EARLY_REGIONS, ATTENDED)
        early = contrast[ratios["layer"] == first].to_numpy()
        late = contrast[ratios["layer"] == last].to_numpy()
        diff = paired_difference(early, late, seed=seed).iloc[0]
        out.append(_verdict("d", name, {"mean": diff["difference"], "ci_low": diff["ci_low"],
                                        "ci_high": diff["ci_high"], "n": diff["n"]}))
    return out


def claim_e(removal, *, baseline: str = "random-superpixels", seed=0, gate=None) -> list:
    """(e), today's paired similarity test (:data:`faceexp.report.verdicts.CLAIM_E_SIMILARITY`):
    per image, the similarity of the probe to a clean genuine partner after removing as
    many pixels in random superpixels (mean over the random seeds) minus after removing
    the pixels above each threshold, averaged over the thresholds (> 0 when the heatmap's
    pixels matter more to the pair), with a bootstrap interval over images; the verdict
    weighs it against the claim's smallest cosine difference. Records carry ``measure``
    "paired similarity" (the paper's own measure, the relative EER rise, is
    ``CLAIMS["e"]``).

    ``removal`` is :func:`faceexp.study.removal_analysis`'s result (its
    ``similarities``). ``gate``: as :func:`claim_a`."""
    from faceexp.evaluate.removal import NO_REMOVAL

    claim = fver.CLAIM_E_SIMILARITY
    measure = {"measure": "paired similarity"}
    sims = getattr(removal, "similarities", None)
    if sims is None:
        return [fver.verdict(claim, extra=measure, missing=(
            "no per-image genuine-pair similarities (run faceexp.study.removal_analysis)"))]
    out = []
    for name, part in sims.groupby("network", sort=False):
        gated = _gated(claim, name, gate)
        if gated is not None:
            out.append(gated)
            continue
        part = part[part["method"] != NO_REMOVAL]
        sig = part[part["method"] == "significant"].pivot_table(
            index="image", columns="threshold", values="similarity")
        rnd = part[part["method"] == baseline].pivot_table(
            index="image", columns="threshold", values="similarity", aggfunc="mean")
        if sig.empty or rnd.empty:
            raise ValueError(f"removal.similarities of {name} has no 'significant' or "
                             f"{baseline!r} rows; run removal_analysis with that baseline")
        rnd = rnd.reindex(index=sig.index, columns=sig.columns)
        per_image = (rnd - sig).mean(axis=1).dropna()      # images with a genuine partner
        if per_image.empty:
            out.append(fver.verdict(claim, n=0, recogniser=name, extra=measure, missing=(
                "no explained image has a genuine partner among the explained images")))
            continue
        row = mean_interval(per_image.to_numpy(), seed=seed).iloc[0]
        n = int(row["n"])
        out.append(fver.verdict(claim, float(row["mean"]), float(row["ci_low"]),
                                float(row["ci_high"]), n=n, recogniser=name, extra=measure))
    return out


def paragraphs(verdicts) -> str:
    """The verdict paragraphs of a chapter, one per network, as Markdown."""
    return "\n\n".join(fver.verdict_paragraph(v) for v in verdicts)


#: The keys every record of :func:`as_records` has.
RECORD_KEYS = ("claim", "subject", "value", "ci_low", "ci_high", "n", "verdict", "reason")


def _plain(x):
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


#: The measure of :func:`claim_e_rise` in its records.
RISE_MEASURE = "relative EER rise"


def claim_e_rise(rise: pd.DataFrame, *, gate=None) -> list:
    """(e) as the paper states it: the relative EER rise, (EER after - EER before) / EER
    before, when the pixels above the threshold that removes about 2% of them are blacked
    out, with its interval over identities; one verdict per subject and protocol, read
    against the claim's smallest effect (+35%).

    Parameters
    ----------
    rise : pandas.DataFrame
        :func:`faceexp.study.removal.eer_rise_analysis`'s table: ``network``, ``protocol``,
        ``method``, ``rise``, ``ci_low``, ``ci_high``, ``identities``, ``threshold``,
        ``removed_fraction``, ``eer_before``, ``eer_after``; the rows whose ``method`` is
        "significant" are judged.
    gate : mapping, optional
        As :func:`claim_a`.

    Returns
    -------
    list of Verdict
        With ``extra`` ``measure`` (:data:`RISE_MEASURE`), ``protocol`` and the numbers
        behind the rise. A rise over a clean EER of 0 (a ceiling of the protocol, as for
        claim (c)) is undefined: its verdict is "cannot be tested" with that reason.
    """
    required = {"network", "protocol", "method", "rise", "ci_low", "ci_high", "identities"}
    missing = sorted(required - set(rise.columns))
    if missing:
        raise ValueError(f"rise lacks the columns {missing}: pass "
                         f"faceexp.study.removal.eer_rise_analysis's table")
    out = []
    for r in rise[rise["method"] == "significant"].itertuples():
        gated = _gated("e", r.network, gate)
        if gated is not None:
            out.append(gated)
            continue
        extra = {"measure": RISE_MEASURE, "protocol": r.protocol}
        for key in ("threshold", "removed_fraction", "eer_before", "eer_after"):
            if hasattr(r, key):
                extra[key] = float(getattr(r, key))
        n = int(r.identities) if np.isfinite(r.identities) else None
        if not np.isfinite(r.rise):
            out.append(fver.verdict("e", n=n, recogniser=r.network, extra=extra, untestable=(
                "a ceiling of this protocol: the EER before removal is 0 on these pairs, so a "
                "relative rise is undefined (a harder protocol can test it)")))
            continue
        out.append(fver.verdict("e", float(r.rise), float(r.ci_low), float(r.ci_high), n=n,
                                recogniser=r.network, extra=extra))
    return out


def as_records(verdicts, *, gate=None) -> list:
    """Verdicts as JSON-ready dicts, one per (claim, subject): the results page's claims table
    and ``claims.json``.

    Parameters
    ----------
    verdicts : sequence of Verdict
    gate : mapping, optional
        subject -> reason (:func:`faceexp.report.competence.competence_gates`): those
        subjects' records become not-competent records with that reason (no numbers).

    Returns
    -------
    list of dict
        Keys :data:`RECORD_KEYS`: ``claim`` ("a" .. "e"), ``subject`` (a fusion as
        "a+b"), ``value``, ``ci_low``, ``ci_high`` (None when absent), ``n``,
        ``verdict`` (one of :data:`faceexp.report.verdicts.OUTCOMES`, or
        :data:`faceexp.report.verdicts.NOT_COMPETENT`), ``reason``; then
        ``smallest_effect`` (signed: on the paper's side), ``statement``, ``level``,
        ``n_unit``, ``half_width`` and ``n_needed`` (undecided only), and the
        verdict's extra keys (e.g. ``measure``).
    """
    records = []
    for v in verdicts:
        if not isinstance(v, fver.Verdict):
            raise ValueError(f"verdicts must hold Verdict objects (from claim_a .. claim_e), "
                             f"got {type(v).__name__}")
        subject = subject_name(v.recogniser) if v.recogniser is not None else None
        if subject is not None:
            gated = _gated(v.claim, subject, gate)
            if gated is not None:
                v = replace(gated, extra=dict(v.extra))
        c = v.claim
        record = {"claim": c.id, "subject": subject, "value": v.ours, "ci_low": v.low,
                  "ci_high": v.high, "n": v.n, "verdict": v.outcome, "reason": v.reason,
                  "smallest_effect": c.direction * c.smallest_effect, "statement": c.statement,
                  "level": v.level, "n_unit": c.n_unit}
        if v.outcome == fver.OUTCOMES[2]:
            record["half_width"] = v.half_width
            record["n_needed"] = v.n_needed
        for key, value in v.extra.items():
            if key not in ("smallest_effect", "direction"):
                record.setdefault(key, value)
        records.append({k: _plain(x) for k, x in record.items()})
    return records
