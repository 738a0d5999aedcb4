"""What an explanation costs, at each explainer's usual settings and at an equal budget.

:func:`cost_table` (or :func:`comparison_cost` of a comparison) times them;
:func:`cost_summary` says what the numbers show.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd

from faceexp.core import checks
from faceexp.explain.lime_steps import as_image, superpixels
from faceexp.evaluate.compare.model import as_face_model
from faceexp.evaluate.compare.explainers import (
    BLACK_BOX, DEFAULT_EXPLAINERS, EXPLAINERS, N_SEGMENTS, SLIC_ZERO, explainer_spec, run_explainer)
from faceexp.evaluate.compare.comparison import Comparison


# --------------------------------------------------------------------------- cost


#: The settings of :func:`cost_table`'s rows, in order.
COST_SETTINGS = ("usual", "equal budget")
#: Images per explanation of :func:`cost_table`'s untimed first run of each explainer.
WARMUP_BUDGET = 10


def cost_table(recogniser: Any, faces: Any, references: Any = None, *,
               explainers: Sequence[str] = DEFAULT_EXPLAINERS, budget: int, seed: int = 0,
               n_segments: int = N_SEGMENTS, warmup: bool | Sequence[str] = True,
               progress: bool = False) -> pd.DataFrame:
    """What one explanation costs at each explainer's usual settings and at an equal budget.

    Every explainer explains every face twice through :func:`run_explainer`:
    at its usual settings (``budget=None``: :attr:`ExplainerSpec.usual`, e.g.
    1000 samples) and with ``budget`` images through the network
    (:attr:`ExplainerSpec.budget_sets`), the budget :func:`compare_explainers`
    gives them all. Superpixels are made once per face, outside the timing, as
    in :func:`compare_explainers`. With ``warmup`` each explainer first runs
    once, untimed, on the first face at a budget of :data:`WARMUP_BUDGET`, so
    that no row pays for importing its library or for the network's first call
    (a torch network's first gradient pass can take seconds).

    Parameters
    ----------
    recogniser : recogniser, torch module, embed callable or FaceModel
        See :func:`as_face_model`.
    faces : array_like, shape (N, H, W, 3)
        Aligned faces, uint8 or float in [0, 1].
    references : sequence, optional
        None: each face's similarity to its own embedding is explained; else one
        reference per face (an (H, W, 3) image such as its genuine partner, or a
        (D,) embedding), as :func:`run_explainer`'s ``reference``.
    explainers : sequence of str
        Keys of :data:`EXPLAINERS`. On a black box the gradient ones get rows
        saying "n/a (black box)".
    budget : int
        The equal budget: images through the network per explanation.
    seed : int
        Seed of the stochastic explainers.
    n_segments : int
        Superpixels of the region explainers (the paper's 75).
    warmup : bool or sequence of str
        Warm up every explainer (True), none (False) or those named.
    progress : bool
        A progress bar over the explanations.

    Returns
    -------
    DataFrame
        Per explainer (in the given order) a row per setting of
        :data:`COST_SETTINGS`: ``recogniser``, ``explainer``, ``setting``,
        ``settings`` (what the setting means), ``budget`` (None at usual
        settings), ``seconds`` (median wall time of one explanation over the
        faces), ``forwards`` (median images through the network per
        explanation, the reference's embedding included, as
        :func:`run_explainer` counts them: at most ``budget + 1`` at the equal
        budget), ``faces`` and ``note`` ("n/a (black box)" where the explainer
        cannot run).

    Examples
    --------
    >>> rec = faceexp.recognisers.load("sface")                       # doctest: +SKIP
    >>> cost_table(rec, faces[:1], explainers=["faceexp-lime-paper", "captum-occlusion"],
    ...            budget=150)                                        # doctest: +SKIP
    """
    from tqdm import tqdm

    model = as_face_model(recogniser)
    if getattr(faces, "ndim", None) == 3:
        raise ValueError("faces must be (N, H, W, 3); pass one face as faces[None]")
    faces = [as_image(f, "faces") for f in faces]
    if not faces:
        raise ValueError("faces: none given")
    n = len(faces)
    if references is None:
        references = [None] * n
    elif len(references) != n:
        raise ValueError(f"references: one per face ({n}), got {len(references)}")
    explainers = [explainer_spec(name).name for name in explainers]
    if not explainers or len(set(explainers)) != len(explainers):
        raise ValueError(f"explainers must be distinct names from {list(EXPLAINERS)}")
    budget = checks.positive_int(budget, "budget", 2)
    seed = checks.seed(seed)
    n_segments = checks.positive_int(n_segments, "n_segments", 2)
    segments = [superpixels(face, n_segments, slic_zero=SLIC_ZERO) for face in faces]
    runnable = [e for e in explainers if not (EXPLAINERS[e].gradients and not model.white_box)]
    budgets = {"usual": None, "equal budget": budget}
    if isinstance(warmup, str):
        warmup = [warmup]
    warm = runnable if warmup is True else [] if warmup is False else \
        [e for e in runnable if e in {explainer_spec(name).name for name in warmup}]
    if warm:
        with warnings.catch_warnings():
            # a fit on so few samples may warn; the run is discarded
            warnings.simplefilter("ignore")
            for e in warm:
                run_explainer(e, model, faces[0], references[0], seed=seed,
                              budget=min(budget, WARMUP_BUDGET), segments=segments[0])
    jobs = [(e, setting, k) for e in runnable for setting in COST_SETTINGS for k in range(n)]
    runs: dict = {}
    for e, setting, k in tqdm(jobs, disable=not progress, desc=f"cost ({model.name})",
                              unit="map"):
        runs.setdefault((e, setting), []).append(
            run_explainer(e, model, faces[k], references[k], seed=seed,
                          budget=budgets[setting], segments=segments[k]))
    rows = []
    for e in explainers:
        spec = EXPLAINERS[e]
        for setting in COST_SETTINGS:
            done = runs.get((e, setting), [])
            settings = spec.usual if setting == "usual" else \
                f"{budget} images per explanation; a budget sets {spec.budget_sets}"
            rows.append({"recogniser": model.name, "explainer": e, "setting": setting,
                         "settings": settings, "budget": budgets[setting],
                         "seconds": float(np.median([r.seconds for r in done]))
                         if done else np.nan,
                         "forwards": float(np.median([r.forwards for r in done]))
                         if done else np.nan,
                         "faces": len(done), "note": "" if done else BLACK_BOX})
    table = pd.DataFrame(rows)
    table["budget"] = pd.Series([row["budget"] for row in rows], dtype=object)   # None or int
    return table


def comparison_cost(comparison: Comparison, *, n_faces: int | None = None,
                    explainers: Sequence[str] | None = None, budget: int | None = None,
                    warmup: bool | Sequence[str] | None = None,
                    progress: bool = False) -> pd.DataFrame:
    """:func:`cost_table` of a comparison's recogniser on its first ``n_faces`` faces
    (None: all), with the comparison's settings: the similarity it explained (to the
    genuine partner or the face itself), its budget, its first seed and its superpixels.

    ``explainers``: the explainers to time (None: those the comparison ran);
    ``budget``: the equal budget, needed only when the comparison ran at usual
    settings; ``warmup``: as :func:`cost_table`'s, None: the explainers the
    comparison did not run (the others have run on the network already).
    """
    if comparison.model is None:
        raise ValueError("comparison has no model: make it with compare_explainers")
    settings = comparison.settings
    budget = settings.get("budget") if budget is None else budget
    if budget is None:
        raise ValueError("the comparison ran at usual settings: pass budget=, the equal "
                         "budget of images per explanation")
    n = len(comparison.faces) if n_faces is None else checks.positive_int(n_faces, "n_faces")
    faces = comparison.faces[:n]
    references = None if settings.get("reference") == "self" or comparison.partners is None \
        else comparison.partners[:n]
    explainers = list(settings["explainers"] if explainers is None else explainers)
    if warmup is None:
        warmup = [e for e in explainers if e not in settings["explainers"]]
    return cost_table(comparison.model, faces, references, explainers=explainers,
                      budget=budget, seed=settings["seeds"][0],
                      n_segments=settings.get("n_segments", N_SEGMENTS), warmup=warmup,
                      progress=progress)


def _seconds(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def _times(value: float, base: float) -> str:
    if not (np.isfinite(value) and np.isfinite(base)) or base <= 0:
        return "n/a"
    ratio = value / base
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def cost_summary(table: pd.DataFrame) -> str:
    """A Markdown paragraph per recogniser from :func:`cost_table`'s numbers: which
    explainer is cheapest and which most expensive at their usual settings (seconds
    and images through the network per explanation, and how many times the
    cheapest's seconds the most expensive takes), and the same spread at the
    equal budget."""
    needed = {"recogniser", "explainer", "setting", "budget", "seconds", "forwards", "faces"}
    if not needed <= set(table):
        raise ValueError(f"table must be cost_table()'s table; missing "
                         f"{sorted(needed - set(table))}")
    paragraphs = []
    for recogniser, part in table.groupby("recogniser", sort=False):
        ran = part[part["seconds"].notna()]
        blocked = [e for e in dict.fromkeys(part["explainer"]) if e not in set(ran["explainer"])]
        usual = ran[ran["setting"] == "usual"]
        equal = ran[ran["setting"] == "equal budget"]
        if ran.empty:
            paragraphs.append(f"**{recogniser}**: no explainer could run.")
            continue
        faces = int(ran["faces"].max())
        text = [f"**{recogniser}** ({faces} face{'s' if faces != 1 else ''}, median per "
                "explanation):"]
        if not usual.empty:
            cheap = usual.loc[usual["seconds"].idxmin()]
            dear = usual.loc[usual["seconds"].idxmax()]
            if len(usual) == 1:
                text.append(f"at its usual settings {cheap['explainer']} takes "
                            f"{_seconds(cheap['seconds'])} s and {cheap['forwards']:.0f} images "
                            "through the network.")
            else:
                text.append(f"at their usual settings {cheap['explainer']} is the cheapest "
                            f"({_seconds(cheap['seconds'])} s, {cheap['forwards']:.0f} images "
                            f"through the network) and {dear['explainer']} the most expensive "
                            f"({_seconds(dear['seconds'])} s, {dear['forwards']:.0f} images: "
                            f"{_times(dear['seconds'], cheap['seconds'])} the seconds of "
                            f"{cheap['explainer']}).")
        if len(equal) > 1:
            budget = int(equal["budget"].dropna().iloc[0])
            cheap = equal.loc[equal["seconds"].idxmin()]
            dear = equal.loc[equal["seconds"].idxmax()]
            text.append(f"At an equal budget of {budget} images the most expensive, "
                        f"{dear['explainer']} ({_seconds(dear['seconds'])} s, "
                        f"{dear['forwards']:.0f} images), takes "
                        f"{_times(dear['seconds'], cheap['seconds'])} the seconds of the "
                        f"cheapest, {cheap['explainer']} ({_seconds(cheap['seconds'])} s, "
                        f"{cheap['forwards']:.0f} images).")
        if blocked:
            text.append("Not run (black box, no gradients): " + ", ".join(blocked) + ".")
        paragraphs.append(" ".join(text))
    return "\n\n".join(paragraphs)
