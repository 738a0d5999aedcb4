"""The comparison itself: explainers side by side on one recogniser.

:func:`compare_explainers` measures faithfulness, the randomisation check, seed stability
and cost (a :class:`Comparison`); :func:`summarise` makes its table, one row per explainer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from faceexp.core import checks
from faceexp.evaluate.faithfulness import DEFAULT_STEPS, removal_steps
from faceexp.explain.lime_steps import as_image, superpixels
from faceexp.evaluate.compare.model import FaceModel, as_face_model, randomise_stages
from faceexp.evaluate.compare.explainers import (
    BLACK_BOX, DEFAULT_EXPLAINERS, EXPLAINERS, N_SEGMENTS, SLIC_ZERO, explainer_spec, run_explainer)
from faceexp.evaluate.compare.measures import (
    CURVE_MODES, baseline_map, curve_auc, rank_correlation, similarity_curves, t_interval)
from faceexp.evaluate.compare.randomisation import DEGENERATE_SPREAD, explained_spread


# --------------------------------------------------------------------------- the comparison


@dataclass
class Comparison:
    """What :func:`compare_explainers` measured on one recogniser.

    Attributes
    ----------
    recogniser : str
    table : DataFrame
        :func:`summarise` of ``per_face``: one row per explainer.
    per_face : DataFrame
        One row per (explainer, face): ``seconds``, ``forwards``, the normalised
        AUCs ``<mode>_auc_<reference>`` and ``<mode>_baseline_<reference>``,
        ``seed_rank_corr``, ``randomisation_rank_corr`` (with
        ``randomisation_spread`` and ``randomisation_degenerate`` of the deepest
        randomisation, see ``randomisation``); a black box's
        gradient explainers have one row with ``note`` "n/a (black box)".
    curves : DataFrame
        ``explainer``, ``kind``, ``map`` ("explainer" or the random "baseline"
        of its kind), ``image``, ``mode``, ``reference``, ``fraction``,
        ``n_pixels``, ``similarity``.
    randomisation : DataFrame
        ``explainer``, ``image``, ``stages`` (randomised from the top),
        ``stage`` (the lowest one randomised), ``rank_corr``, ``spread`` (the
        standard deviation of the explained similarity over random superpixel
        perturbations under the randomised model,
        :func:`~faceexp.evaluate.compare.randomisation.explained_spread`),
        ``trained_spread`` (the same on the trained model) and ``degenerate``
        (``spread`` below :data:`~faceexp.evaluate.compare.randomisation.DEGENERATE_SPREAD`:
        the rank correlation then says nothing about the explainer).
    heatmaps : dict
        explainer -> (N, H, W) maps of the first seed.
    faces, partners : ndarray (N, H, W, 3)
    settings : dict
        What was run (explainers, faces, budget, seeds, reference, steps, fill,
        cascade, the recogniser's source).
    model : FaceModel, optional
        The recogniser the explainers ran on (for :func:`comparison_cost`).
    """

    recogniser: str
    table: pd.DataFrame
    per_face: pd.DataFrame
    curves: pd.DataFrame
    randomisation: pd.DataFrame
    heatmaps: dict
    faces: np.ndarray
    partners: np.ndarray | None
    settings: dict = field(default_factory=dict)
    model: FaceModel | None = field(default=None, repr=False)


def _cascade_points(cascade: Any, n_stages: int) -> list[int]:
    if cascade is None:
        return list(range(1, n_stages + 1))
    # capped at the network's depth, so one cascade serves networks of different depths
    return sorted({min(checks.positive_int(c, "cascade"), n_stages) for c in cascade})


def compare_explainers(recogniser: Any, faces: Any, partners: Any = None, *,
                       explainers: Sequence[str] = DEFAULT_EXPLAINERS,
                       reference: str = "pair", seeds: Sequence[int] = (0, 1),
                       budget: int | None = None, n_segments: int = N_SEGMENTS,
                       steps: Any = DEFAULT_STEPS,
                       fill: Any = "black", cascade: Sequence[int] | None = None,
                       stability_faces: int | None = None,
                       randomisation_faces: int | None = None, data: str | None = None,
                       progress: bool = False) -> Comparison:
    """Run explainers on one recogniser and faces and measure them side by side.

    Each face is explained by each explainer (seed ``seeds[0]``) for the
    similarity named by ``reference``; then, per map: deletion and insertion
    curves on both the pair's and the self-similarity (:func:`similarity_curves`)
    beside those of a random map of its kind (:func:`baseline_map`, one per
    face and kind, seeded by the face; the pixel kind shuffles the first pixel
    explainer's map: any shuffle is a uniformly random pixel order, ties
    aside); the rank correlation with the map of
    ``seeds[1]`` (stochastic explainers; 1 for deterministic ones); and, for a
    white box, the rank correlation with the map on the recogniser with its
    top ``c`` stages re-initialised for every ``c`` in ``cascade``
    (:func:`randomise_stages`, seed ``seeds[0]``).

    Parameters
    ----------
    recogniser : recogniser, torch module, embed callable or FaceModel
    faces : array_like, shape (N, H, W, 3)
        Aligned faces in [0, 1].
    partners : array_like, shape (N, H, W, 3), optional
        A genuine partner of each face (another image of the same person).
        Needed for ``reference="pair"`` and for the pair curves.
    explainers : sequence of str
        Keys of :data:`EXPLAINERS`. On a black box the gradient ones get a
        row saying "n/a (black box)".
    reference : {"pair", "self"}
        Which similarity the explainers explain.
    seeds : sequence of int
        One seed, or two for seed stability.
    budget : int, optional
        Images through the network per explanation (see :func:`run_explainer`).
    n_segments : int
        Superpixels of the region explainers and of the region baseline.
    steps : fractions, as :func:`faceexp.evaluate.faithfulness.deletion_curves`
        Shared by deletion and insertion (default 0, 0.05, ..., 0.5).
    fill : pixel value of deleted (and not yet inserted) pixels; default black.
    cascade : sequence of int, optional
        Numbers of top stages randomised (capped at the network's stages);
        None: every depth. Empty: no check.
    stability_faces, randomisation_faces : int, optional
        Run the second seed / the randomisation on the first this many faces
        only (None: all).
    data : str, optional
        What the faces are (e.g. "ORL faces (AT&T Laboratories Cambridge)"),
        recorded for captions.
    progress : bool
        A progress bar over the explanations.

    Returns
    -------
    Comparison
    """
    from tqdm import tqdm

    model = as_face_model(recogniser)
    faces = np.stack([as_image(f, "faces") for f in faces])
    n = len(faces)
    if partners is not None:
        partners = np.stack([as_image(f, "partners") for f in partners])
        if partners.shape != faces.shape:
            raise ValueError(f"partners must have the faces' shape {faces.shape}, got "
                             f"{partners.shape}")
    if reference not in ("pair", "self"):
        raise ValueError(f"reference must be 'pair' or 'self', got {reference!r}")
    if reference == "pair" and partners is None:
        raise ValueError("reference='pair' needs partners (a genuine partner per face); "
                         "or explain the self-similarity with reference='self'")
    explainers = [explainer_spec(name).name for name in explainers]
    if not explainers or len(set(explainers)) != len(explainers):
        raise ValueError(f"explainers must be distinct names from {list(EXPLAINERS)}")
    seeds = [checks.seed(s) for s in seeds]
    if not 1 <= len(seeds) <= 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be one or two distinct seeds, got {seeds}")
    stability_faces = n if stability_faces is None else min(n, checks.positive_int(
        stability_faces, "stability_faces", 0))
    randomisation_faces = n if randomisation_faces is None else min(n, checks.positive_int(
        randomisation_faces, "randomisation_faces", 0))
    points = _cascade_points(cascade, len(model.stages)) if model.white_box else []

    chw = torch.from_numpy(np.ascontiguousarray(faces.transpose(0, 3, 1, 2)))
    embeddings = {"self": model.embed(chw)}
    if partners is not None:
        embeddings["pair"] = model.embed(np.ascontiguousarray(partners.transpose(0, 3, 1, 2)))
    n_segments = checks.positive_int(n_segments, "n_segments", 2)
    segments = [superpixels(face, n_segments, slic_zero=SLIC_ZERO) for face in faces]

    def explained(k):
        return None if reference == "self" else partners[k]

    runnable = [e for e in explainers if not (EXPLAINERS[e].gradients and not model.white_box)]
    jobs = [(e, k) for e in runnable for k in range(n)]
    heatmaps = {e: np.zeros(faces.shape[:3]) for e in runnable}
    rows = {}
    for e, k in tqdm(jobs, disable=not progress, desc=f"explain ({model.name})", unit="map"):
        spec = EXPLAINERS[e]
        first = run_explainer(e, model, faces[k], explained(k), seed=seeds[0], budget=budget,
                              segments=segments[k])
        heatmaps[e][k] = first.heatmap
        row = {"explainer": e, "face": k, "white_box": model.white_box,
               "seconds": first.seconds,
               "forwards": first.forwards, "seed_rank_corr": np.nan}
        if not spec.stochastic:
            row["seed_rank_corr"] = 1.0
        elif len(seeds) == 2 and k < stability_faces:
            second = run_explainer(e, model, faces[k], explained(k), seed=seeds[1],
                                   budget=budget, segments=segments[k])
            row["seed_rank_corr"] = rank_correlation(first.heatmap, second.heatmap)
        rows[e, k] = row

    # deletion and insertion: every explainer's maps and one baseline per face and kind
    kinds = sorted({EXPLAINERS[e].kind for e in runnable})
    baselines = {}
    for kind in kinds:
        owner = next(e for e in runnable if EXPLAINERS[e].kind == kind)
        baselines[kind] = np.stack([baseline_map(heatmaps[owner][k], kind, segments=segments[k],
                                                 rng=[seeds[0], k]) for k in range(n)])
    maps = [("explainer", e, heatmaps[e]) for e in runnable] + \
        [("baseline", kind, baselines[kind]) for kind in kinds]
    curve_parts = []
    for label, name, stack in maps:
        for mode in CURVE_MODES:
            part = similarity_curves(model.embed, chw, stack, embeddings, mode=mode,
                                     steps=steps, fill=fill, batch_size=model.batch_size)
            curve_parts.append(part.assign(map=label, source=name))
    curves = pd.concat(curve_parts, ignore_index=True) if curve_parts else pd.DataFrame()
    if curve_parts:
        aucs = curve_auc(curves, by=("map", "source", "mode", "reference"))
        for record in aucs.itertuples():
            if record.map == "explainer":
                rows[record.source, record.image][
                    f"{record.mode}_auc_{record.reference}"] = record.auc
            else:
                for e in runnable:
                    if EXPLAINERS[e].kind == record.source:
                        rows[e, record.image][
                            f"{record.mode}_baseline_{record.reference}"] = record.auc
    explainer_curves = []
    for e in runnable:
        kind = EXPLAINERS[e].kind
        explainer_curves.append(curves[(curves["map"] == "explainer") & (curves["source"] == e)]
                                .assign(explainer=e, kind=kind))
        explainer_curves.append(curves[(curves["map"] == "baseline")
                                       & (curves["source"] == kind)]
                                .assign(explainer=e, kind=kind))
    curves = pd.concat(explainer_curves, ignore_index=True).drop(columns="source") \
        if explainer_curves else pd.DataFrame()

    # model randomisation, cascading from the top, with the spread of the explained
    # similarity under each randomised model (randomisation.explained_spread)
    randomisation = []
    trained_spread = {k: explained_spread(model.embed, faces[k], explained(k), segments[k],
                                          fill=fill, seed=[seeds[0], k])["spread"]
                      for k in range(randomisation_faces)} if points else {}
    for depth in points:
        randomised = randomise_stages(model, depth, seed=seeds[0])
        stage = model.stage_labels[depth - 1]
        spread = {k: explained_spread(randomised.embed, faces[k], explained(k), segments[k],
                                      fill=fill, seed=[seeds[0], k])["spread"]
                  for k in range(randomisation_faces)}
        for e in runnable:
            for k in range(randomisation_faces):
                other = run_explainer(e, randomised, faces[k], explained(k), seed=seeds[0],
                                      budget=budget, segments=segments[k])
                randomisation.append({"explainer": e, "image": k, "stages": depth,
                                      "stage": stage,
                                      "rank_corr": rank_correlation(heatmaps[e][k],
                                                                    other.heatmap),
                                      "spread": spread[k], "trained_spread": trained_spread[k],
                                      "degenerate": spread[k] < DEGENERATE_SPREAD})
        del randomised
    randomisation = pd.DataFrame(randomisation, columns=[
        "explainer", "image", "stages", "stage", "rank_corr", "spread", "trained_spread",
        "degenerate"])
    if points:
        deepest = randomisation[randomisation["stages"] == points[-1]]
        for record in deepest.itertuples():
            rows[record.explainer, record.image]["randomisation_rank_corr"] = record.rank_corr
            rows[record.explainer, record.image]["randomisation_spread"] = record.spread
            rows[record.explainer, record.image]["randomisation_degenerate"] = record.degenerate
        for row in rows.values():
            row["randomised"] = f"{points[-1]}/{len(model.stages)}"

    per_face = pd.DataFrame(list(rows.values()))
    blocked = [e for e in explainers if e not in runnable]
    if blocked:
        per_face = pd.concat([per_face, pd.DataFrame({"explainer": blocked, "white_box": False,
                                                      "note": BLACK_BOX})], ignore_index=True)
    per_face.insert(0, "recogniser", model.name)
    settings = {"data": data, "explainers": explainers, "faces": n, "budget": budget,
                "n_segments": n_segments, "seeds": seeds,
                "reference": reference, "steps": [float(s) for s in removal_steps(steps)],
                "fill": fill, "cascade": points, "stages": len(model.stages),
                "stability_faces": stability_faces if len(seeds) == 2 else 0,
                "randomisation_faces": randomisation_faces if points else 0,
                "source": model.source, "white_box": model.white_box}
    return Comparison(recogniser=model.name, table=summarise(per_face, reference=reference,
                                                             order=explainers),
                      per_face=per_face, curves=curves, randomisation=randomisation,
                      heatmaps=heatmaps, faces=faces, partners=partners, settings=settings,
                      model=model)


#: Measures of :func:`summarise`: (column in the table, column in per_face).
_MEASURES = ("deletion_auc", "insertion_auc", "deletion_baseline", "insertion_baseline",
             "randomisation_rank_corr", "randomisation_spread", "seed_rank_corr", "seconds")


def summarise(per_face: pd.DataFrame, *, reference: str = "pair",
              order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (recogniser, explainer): means over faces with 95% intervals.

    ``deletion_auc``, ``insertion_auc`` and their ``*_baseline`` are those of
    the ``reference`` similarity ("pair" or "self"; the other's are given as
    ``*_auc_<other>``); ``deletion_gain`` = baseline - explainer and
    ``insertion_gain`` = explainer - baseline (positive: the map beats a random
    map of its kind). Each mean ``m`` has ``m_low`` and ``m_high`` (Student-t,
    :func:`t_interval`). ``forwards`` is the mean per explanation,
    ``faces`` the faces explained, ``note`` "n/a (black box)" where the
    explainer cannot run, ``randomised`` how many of the stages the
    ``randomisation_rank_corr`` had re-initialised ("k/M"), ``randomisation_spread``
    the explained similarity's spread under that randomised model and
    ``randomisation_degenerate`` True when it was degenerate on every face checked.
    """
    if reference not in ("pair", "self"):
        raise ValueError(f"reference must be 'pair' or 'self', got {reference!r}")
    if "explainer" not in per_face or "recogniser" not in per_face:
        raise ValueError("per_face must be Comparison.per_face (columns recogniser, "
                         "explainer, ...)")
    other = "self" if reference == "pair" else "pair"
    data = per_face.copy()
    for mode in CURVE_MODES:
        for kind, column in (("auc", f"{mode}_auc"), ("baseline", f"{mode}_baseline")):
            data[column] = data.get(f"{mode}_{kind}_{reference}", np.nan)
        data[f"{mode}_auc_{other}"] = data.get(f"{mode}_auc_{other}", np.nan)
        data[f"{mode}_baseline_{other}"] = data.get(f"{mode}_baseline_{other}", np.nan)
    data["deletion_gain"] = data["deletion_baseline"] - data["deletion_auc"]
    data["insertion_gain"] = data["insertion_auc"] - data["insertion_baseline"]
    measures = list(_MEASURES[:4]) + ["deletion_gain", "insertion_gain"] + \
        list(_MEASURES[4:]) + [f"{m}_auc_{other}" for m in CURVE_MODES]
    rows = []
    for (recogniser, explainer), part in data.groupby(["recogniser", "explainer"],
                                                      sort=False):
        note = part["note"].dropna() if "note" in part else pd.Series([], dtype=object)
        spec = EXPLAINERS.get(explainer)
        row = {"recogniser": recogniser, "explainer": explainer,
               "kind": spec.kind if spec else None, "library": spec.library if spec else None,
               "white_box": bool(part["white_box"].fillna(False).any())
               if "white_box" in part else False}
        for measure in measures:
            column = part[measure] if measure in part else pd.Series([np.nan])
            mean, low, high = t_interval(column.to_numpy(dtype=np.float64))
            row.update({measure: mean, f"{measure}_low": low, f"{measure}_high": high})
        forwards = part["forwards"] if "forwards" in part else pd.Series([np.nan])
        row["forwards"] = float(np.nanmean(forwards)) if forwards.notna().any() else np.nan
        row["faces"] = int(part["deletion_auc"].notna().sum())
        randomised = part["randomised"].dropna() if "randomised" in part else []
        row["randomised"] = str(randomised.iloc[0]) if len(randomised) else ""
        degenerate = part["randomisation_degenerate"].dropna() \
            if "randomisation_degenerate" in part else []
        row["randomisation_degenerate"] = bool(len(degenerate) and degenerate.astype(bool).all())
        row["note"] = str(note.iloc[0]) if len(note) else ""
        rows.append(row)
    table = pd.DataFrame(rows)
    if order is not None and not table.empty:
        rank = {name: i for i, name in enumerate(order)}
        table = table.sort_values("explainer", key=lambda s: s.map(rank), kind="stable") \
            .reset_index(drop=True)
    return table
