"""The known-answer benchmark: (recogniser, explainer, task, map) -> scores with intervals.

For each kept constructed probe (:mod:`~faceexp.evaluate.known_answers.construction`),
an explainer explains the pair (modified probe, mate): the similarity of the
probe's embedding to the mate's. Its two maps (:func:`pair_maps`) are scored
against the ground-truth mask, beside the same explainer's maps of the clean
pair (the control), the change between the two, and a random map
(:mod:`~faceexp.evaluate.known_answers.scoring`).

Which maps an explainer gives:

- faceexp's LIME (``faceexp-lime-*``): both, from one fit
  (:func:`faceexp.explain.signed_maps.signed_maps`);
- ``corrrise``: both (:func:`faceexp.explain.corrrise.corrrise`);
- signed attributions of chapter 10's registry (lime, captum's occlusion,
  KernelSHAP, LIME, IG): the positive part is the similarity map, the negative
  part the dissimilarity map;
- unsigned maps (:data:`UNSIGNED`: saliency, Grad-CAM): one map, scored as a
  dissimilarity map on the swap tasks (the row's ``note`` says so).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from faceexp.core import checks
from faceexp.evaluate.compare.explainers import (N_SEGMENTS, SLIC_ZERO, USUAL_SAMPLES,
                                                 explainer_spec, run_explainer)
from faceexp.evaluate.compare.model import FaceModel, as_face_model
from faceexp.evaluate.known_answers.construction import (DEFAULT_MIN_DROP, TASKS, KnownAnswer,
                                                         construct_probes, keep_by_drop)
from faceexp.evaluate.known_answers.fills import FILLS, fill_agreement, fill_aucs, fill_ranking
from faceexp.evaluate.known_answers.scoring import (change_auc, map_scores, pixel_auc,
                                                    random_map, summarise_scores)
from faceexp.explain.corrrise import CORRRISE_MASKS, corrrise
from faceexp.explain.lime_steps import superpixels
from faceexp.explain.signed_maps import MAP_KINDS, signed_maps

__all__ = ["LIME_SETTINGS", "UNSIGNED", "UNSIGNED_NOTE", "pair_maps", "score_probes",
           "known_answer_table", "KnownAnswers", "run_known_answers"]

#: faceexp's LIME settings of chapter 10's registry (the same options as its entries).
LIME_SETTINGS = {"faceexp-lime-paper": {"p_off": 0.6}, "faceexp-lime-p0.2": {"p_off": 0.2},
                 "faceexp-lime-matlab": {"sampling": "matlab"}}
#: Explainers whose map has no sign.
UNSIGNED = ("captum-saliency", "grad-cam")
UNSIGNED_NOTE = "unsigned map, scored as a dissimilarity map"


def pair_maps(name: str, model: FaceModel, probe: np.ndarray, mate_embedding: torch.Tensor, *,
              seed: int, budget: int | None = None, segments: np.ndarray | None = None
              ) -> dict[str, np.ndarray]:
    """The maps of one explainer for the pair (probe, mate).

    Parameters
    ----------
    name : str
        ``faceexp-lime-*``, ``corrrise`` or another key of
        :data:`faceexp.evaluate.compare.EXPLAINERS`.
    model : FaceModel
    probe : ndarray, float32, shape (H, W, 3)
    mate_embedding : torch.Tensor, shape (D,)
    seed : int
    budget : int, optional
        Images through the network (samples, masks); None: the usual 1000.
    segments : ndarray (H, W) of int, optional
        Superpixels of the region explainers (default SLIC as chapter 10).

    Returns
    -------
    dict
        ``"similarity"`` and/or ``"dissimilarity"`` -> (H, W) float64.
    """
    if name in LIME_SETTINGS:
        from faceexp.explain.explainer import Explainer

        def embed(batch):
            return model.embed(batch)

        embed.compiled = model.compiled     # as chapter 10's registry: pad short batches only then
        explainer = Explainer(embed, n_samples=budget or USUAL_SAMPLES, n_segments=N_SEGMENTS,
                              batch_size=model.batch_size, **LIME_SETTINGS[name])
        explanation = explainer.explain(probe, reference=mate_embedding.numpy(), seed=seed,
                                        segments=segments)
        return signed_maps(explanation)
    if name == "corrrise":
        maps = corrrise(lambda batch: model.similarity(batch, mate_embedding), probe,
                        n_masks=budget or CORRRISE_MASKS, seed=seed,
                        batch_size=model.batch_size)
        return {"similarity": maps.similarity, "dissimilarity": maps.dissimilarity}
    explainer_spec(name)
    heatmap = run_explainer(name, model, probe, mate_embedding, seed=seed, budget=budget,
                            segments=segments).heatmap
    if name in UNSIGNED:
        return {"dissimilarity": heatmap}
    return {"similarity": np.maximum(heatmap, 0.0), "dissimilarity": np.maximum(-heatmap, 0.0)}


def score_probes(recogniser: Any, items: Sequence[KnownAnswer], explainer: str, *,
                 seed: int = 0, budget: int | None = None, recogniser_name: str | None = None,
                 maps: dict | None = None, progress: bool = False,
                 n_segments: int = N_SEGMENTS) -> pd.DataFrame:
    """Per-probe scores of one explainer on kept constructed probes (superpixels of the
    clean probe, ``n_segments`` of them, shared by every explainer).

    ``maps``: a dict to collect the maps in, ``maps[(task, probe index)] =
    {"modified": {...}, "clean": {...}}`` (:func:`pair_maps`' dicts), e.g. for the
    fills' deletion curves of the clean pairs.

    Returns
    -------
    DataFrame
        One row per (probe, map): ``recogniser``, ``explainer``, ``task``,
        ``map``, ``probe`` (its index), ``region``, ``auc``, ``pointing``,
        ``mass_ratio``, ``auc_control``, ``pointing_control``,
        ``mass_ratio_control``, ``change_auc``, ``auc_random``, ``seconds``
        (both explanations of the probe), ``note``.
    """
    from tqdm import tqdm

    model = as_face_model(recogniser)
    seed = checks.seed(seed)
    name = recogniser_name or model.name
    rows = []
    for item in tqdm(list(items), disable=not progress, desc=explainer, unit="probe"):
        mate = model.embed(item.mate.transpose(2, 0, 1)[None])[0]
        segments = superpixels(item.clean, n_segments, slic_zero=SLIC_ZERO)
        start = time.perf_counter()
        modified = pair_maps(explainer, model, item.probe, mate, seed=seed, budget=budget,
                             segments=segments)
        control = pair_maps(explainer, model, item.clean, mate, seed=seed, budget=budget,
                            segments=segments)
        seconds = time.perf_counter() - start
        if maps is not None:
            maps[(item.task, item.index)] = {"modified": modified, "clean": control}
        rng = np.random.default_rng([seed, item.index])
        for kind in MAP_KINDS:
            if kind not in modified:
                continue
            scores = map_scores(modified[kind], item.mask)
            clean = map_scores(control[kind], item.mask)
            rows.append({
                "recogniser": name, "explainer": explainer, "task": item.task, "map": kind,
                "probe": item.index, "region": item.region, **scores,
                "auc_control": clean["auc"], "pointing_control": clean["pointing"],
                "mass_ratio_control": clean["mass_ratio"],
                "change_auc": change_auc(modified[kind], control[kind], item.mask),
                "auc_random": pixel_auc(random_map(item.mask.shape, segments=segments,
                                                   rng=rng), item.mask),
                "seconds": seconds,
                "note": UNSIGNED_NOTE if explainer in UNSIGNED else ""})
    return pd.DataFrame(rows)


def known_answer_table(per_probe: pd.DataFrame, constructed: dict, *, n_boot: int = 2000,
                       seed: int = 0) -> pd.DataFrame:
    """One row per (recogniser, explainer, task, map): :func:`summarise_scores` plus ``n``
    (probes constructed for that recogniser and task: ``constructed[(recogniser, task)]``),
    ``seconds`` (mean per probe, both explanations) and ``note``."""
    table = summarise_scores(per_probe, n_boot=n_boot, seed=seed)
    keys = ["recogniser", "explainer", "task", "map"]
    extra = per_probe.groupby(keys, sort=False).agg(seconds=("seconds", "mean"),
                                                   note=("note", "first")).reset_index()
    table = table.merge(extra, on=keys, how="left")
    table["n"] = [int(constructed.get((r, t), 0)) for r, t in
                  zip(table["recogniser"], table["task"])]
    return table


@dataclass
class KnownAnswers:
    """The known-answer benchmark on one recogniser (:func:`run_known_answers`).

    Attributes
    ----------
    table : DataFrame
        One row per (recogniser, explainer, task, map) (:func:`known_answer_table`).
    per_probe : DataFrame
        :func:`score_probes`' rows of every explainer.
    items : dict
        task -> the kept :class:`KnownAnswer` probes.
    drops : dict
        task -> (constructed,) similarity drop of every constructed probe.
    maps : dict
        explainer -> ``{(task, probe index): {"modified": ..., "clean": ...}}``.
    fill_aucs, ranking, agreement : DataFrame or None
        Deletion/insertion AUC per fill of the clean pairs' similarity maps
        (:func:`~faceexp.evaluate.known_answers.fills.fill_aucs`), the explainers'
        ranks per fill (deletion) and Kendall's tau between the fills.
    settings : dict
    """

    table: pd.DataFrame
    per_probe: pd.DataFrame
    items: dict
    drops: dict
    maps: dict
    fill_aucs: pd.DataFrame | None
    ranking: pd.DataFrame | None
    agreement: pd.DataFrame | None
    settings: dict


def run_known_answers(recogniser: Any, faces: Any, identities: Sequence[str], *,
                      explainers: Sequence[str], tasks: Sequence[str] = TASKS,
                      n_probes: int = 8, budget: int | None = None, seed: int = 0,
                      min_drop: float = DEFAULT_MIN_DROP, n_patches: int = 8,
                      patch_size: int = 20, fills: Sequence[Any] | None = FILLS,
                      names: Sequence[str] | None = None, recogniser_name: str | None = None,
                      n_boot: int = 2000, progress: bool = False,
                      n_segments: int = N_SEGMENTS) -> KnownAnswers:
    """Construct, keep, explain and score: the whole benchmark on one recogniser.

    Parameters
    ----------
    recogniser : recogniser in the canonical frame, FaceModel, module or embed callable
    faces : array_like, float in [0, 1], shape (N, H, W, 3)
        Aligned faces (canonical crops) of several identities.
    identities : sequence of str, length N
    explainers : sequence of str
        ``faceexp-lime-*``, ``corrrise`` or keys of chapter 10's registry.
    tasks : sequence of {"patch", "region"}
    n_probes : int
        Probes constructed per task (the same probes, mates and donors for both
        tasks: :func:`construct_probes` with one seed).
    budget : int, optional
        Images through the network per explanation (None: 1000).
    seed : int
    min_drop : float
        The keep rule (:func:`keep_by_drop`): cosine drop to the mate.
    n_patches, patch_size : int
    fills : sequence, optional
        Fills of the deletion/insertion ranking (None: skip it).
    names : sequence of str, optional
        The faces' paths, recorded with the probes.
    n_boot : int
    progress : bool

    Returns
    -------
    KnownAnswers
    """
    from faceexp.core.similarity import cosine_rows

    model = as_face_model(recogniser)
    explainers = list(explainers)
    for name in explainers:
        if name not in LIME_SETTINGS and name != "corrrise":
            explainer_spec(name)
    name = recogniser_name or model.name

    def similarity(a, b):
        return cosine_rows(model.embed(a.transpose(0, 3, 1, 2)).numpy(),
                           model.embed(b.transpose(0, 3, 1, 2)).numpy())

    items, drops, constructed = {}, {}, {}
    for task in tasks:
        built = construct_probes(faces, identities, task=task, n_probes=n_probes, seed=seed,
                                 n_patches=n_patches, patch_size=patch_size, names=names)
        items[task], drops[task] = keep_by_drop(built, similarity, min_drop=min_drop)
        constructed[(name, task)] = len(built)
    parts, maps = [], {}
    for explainer in explainers:
        maps[explainer] = {}
        for task in tasks:
            if items[task]:
                parts.append(score_probes(model, items[task], explainer, seed=seed,
                                          budget=budget, recogniser_name=name,
                                          maps=maps[explainer], progress=progress,
                                          n_segments=n_segments))
    per_probe = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    table = known_answer_table(per_probe, constructed, n_boot=n_boot, seed=seed) \
        if len(per_probe) else pd.DataFrame()
    fill_table = ranking = agreement = None
    first = next((t for t in tasks if items[t]), None)
    if fills and first is not None and len(explainers) >= 1:
        kept = items[first]
        keys = [(first, item.index) for item in kept]
        clean_maps = {e: np.stack([_first_map(maps[e][key]["clean"]) for key in keys])
                      for e in explainers}
        images = np.stack([item.clean for item in kept]).transpose(0, 3, 1, 2)
        mates = model.embed(np.stack([item.mate for item in kept]).transpose(0, 3, 1, 2))
        fill_table = fill_aucs(model.embed, images, clean_maps, mates.numpy(), fills=fills,
                               batch_size=model.batch_size, progress=progress)
        ranking = fill_ranking(fill_table, mode="deletion")
        agreement = fill_agreement(ranking)
    settings = {"recogniser": name, "explainers": explainers, "tasks": list(tasks),
                "n_probes": n_probes, "budget": budget, "seed": seed, "min_drop": min_drop,
                "n_patches": n_patches, "patch_size": patch_size,
                "fills": [str(f) for f in fills] if fills else [],
                "kept": {t: len(items[t]) for t in tasks}}
    return KnownAnswers(table, per_probe, items, drops, maps, fill_table, ranking, agreement,
                        settings)


def _first_map(maps: dict) -> np.ndarray:
    """The map deletion ranks by: the similarity map, or the one map of an unsigned explainer."""
    return maps["similarity"] if "similarity" in maps else maps["dissimilarity"]
