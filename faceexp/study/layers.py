"""Chapter 6: heatmaps across depth and the EER of every layer's descriptor."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from faceexp import models as fmodels
from faceexp.evaluate import heatmaps as fheat
from faceexp.study.explaining import mirror_looks
from faceexp.study.setup import Study
from faceexp.study.verification import embed_test_images, verifiable_frame
from faceexp.verify import protocol as fprot


@dataclass
class LayerAnalysis:
    """Result of :func:`layers_analysis` (paper IV-D, Figs. 7-8)."""

    averages: pd.DataFrame  # network, layer, block, count, heatmap
    faces: pd.DataFrame  # network, count, image
    per_layer: pd.DataFrame  # network, layer, index, block_end, eer, ci_low, ci_high, genuine, impostor


def block_label(subject, layer: str) -> str:
    """Column label of a layer in Fig. 7: the block number, "GAP" or the embedding."""
    if layer == subject.embedding_layer:
        return "GAP" if layer == "gap" else "embedding"
    if subject.kind == "paper":
        return str(fmodels.block_ends(subject.name).index(layer) + 1)
    return layer


def layered(study: Study) -> list:
    """The study's subjects with layers to analyse (the paper's CNNs, FaceNet, SFace)."""
    return [n for n in study.subjects if study.subject(n).has_layers]


def depth_columns(study: Study, heatmaps: dict) -> dict:
    """Per subject with layers, the Fig. 7 columns in depth order (paper CNNs: blocks
    1, 3, 6, 10, 13, 16 and GAP; FaceNet: each explained layer)."""
    out = {}
    for name, hs in heatmaps.items():
        subject = study.subject(name)
        if not subject.has_layers:
            continue
        labels = [block_label(subject, layer) for layer in hs.layers]
        if subject.kind == "paper":
            labels = [x for x in labels if x in ("1", "3", "6", "10", "13", "16", "GAP")]
        out[name] = labels
    return out


def layers_analysis(study: Study, heatmaps: dict, frame: pd.DataFrame | None = None, *,
                    layer_step: int = 1, memory_budget_mb: float = 2000,
                    all_impostors=False, n_boot: int = 1000, seed=0,
                    progress=True) -> LayerAnalysis:
    """Average heatmaps across depth, and the EER of every layer's descriptor with its
    95% identity-bootstrap interval and pair counts (``n_boot`` resamples,
    :func:`faceexp.verify.intervals.eer_interval`), for every subject with layers (the
    paper's CNNs and FaceNet; black boxes are left out).

    ``layer_step`` > 1 keeps every n-th layer of the paper CNNs' catalogue (block ends and
    GAP always), to fit a small machine; the paper uses every layer. FaceNet's layers
    are its stem, every Inception-ResNet block end and reduction, mean-pooled.
    """
    from faceexp.verify import layer_sweep as flayers

    averages, faces = [], []
    for name, hs in heatmaps.items():
        subject = study.subject(name)
        if not subject.has_layers:
            continue
        maps, groups = [], []
        for layer in hs.layers:
            maps.append(hs.layer(layer))
            groups.append(hs.frame.assign(network=name, layer=layer,
                                          block=block_label(subject, layer)))
        table = pd.concat(groups, ignore_index=True)
        averages.append(fheat.average_heatmaps(np.concatenate(maps), table,
                                               by=["network", "block"], looks=mirror_looks(table)))
        own = hs.frame.assign(network=name)
        faces.append(fheat.average_faces(hs.images, own, by=["network"], looks=mirror_looks(own)))

    frame = verifiable_frame(study, study.split("test") if frame is None else frame)
    from faceexp.verify.intervals import eer_interval

    pairs = fprot.verification_pairs(frame, all_impostors=all_impostors)
    rows, intervals = [], []
    for name in study.subjects:
        subject = study.subject(name)
        if not subject.has_layers:
            continue
        if subject.kind == "recogniser":
            layers = subject.layer_names
            descriptors = embed_test_images(study, frame, name, layers, progress=progress)
            scores = {layer: fprot.cosine_scores(descriptors[layer], pairs) for layer in layers}
            for index, layer in enumerate(layers):
                rows.append({"network": name, "layer": layer, "index": index,
                             "block_end": layer in subject.sweep_layers})
            intervals.append(eer_interval(scores, pairs, n_boot=n_boot, seed=seed)
                             .assign(network=name))
            continue
        cat = fmodels.layer_catalogue(name)
        cat = cat[~cat["name"].isin(["input", "x", "logits", "softmax"])].reset_index(drop=True)
        keep = (np.arange(len(cat)) % layer_step == 0) | cat["block_end"].to_numpy() \
            | (cat["name"] == "gap").to_numpy()
        cat = cat[keep]
        model, _ = fmodels.load_checkpoint(study.checkpoint(name), device=study.device)
        scores = flayers.layer_sweep_scores(
            model, frame, pairs, layers=list(cat["name"]), memory_budget_mb=memory_budget_mb,
            cache_dir=study.artifacts / "layer-scores",
            model_id=fmodels.checkpoint_hash(study.checkpoint(name)), progress=progress)
        for _, r in cat.iterrows():
            index = r["matlab_layer"] if pd.notna(r["matlab_layer"]) else r.name
            rows.append({"network": name, "layer": r["name"], "index": int(index),
                         "block_end": bool(r["block_end"])})
        intervals.append(eer_interval({x: scores[x].to_numpy() for x in cat["name"]}, pairs,
                                           n_boot=n_boot, seed=seed).assign(network=name))
    per_layer = pd.DataFrame(rows)
    if intervals:
        ci = pd.concat(intervals, ignore_index=True).rename(columns={"system": "layer"})
        per_layer = per_layer.merge(ci[["network", "layer", "eer", "ci_low", "ci_high",
                                        "genuine", "impostor"]], on=["network", "layer"],
                                    how="left")
    return LayerAnalysis(averages=pd.concat(averages, ignore_index=True),
                         faces=pd.concat(faces, ignore_index=True), per_layer=per_layer)
