"""Comparisons read back: the deletion-and-insertion paragraph, tables, caption and heatmap grid.

Chapter 10's stated recommendation rule is :mod:`faceexp.evaluate.compare.recommendation_rule`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from faceexp.evaluate.compare.explainers import BLACK_BOX
from faceexp.evaluate.compare.comparison import Comparison

#: A map is "random-like" under randomisation when its rank correlation with the
#: original stays below this after the whole network is re-initialised.
RANDOMISATION_PASS = 0.5


def heatmap_grid(comparisons: Any, *, names: Sequence[str] | None = None, faces: int = 2
                 ) -> tuple[list, list, list]:
    """Faces x explainers of several comparisons, ready for
    :func:`faceexp.report.plots.plot_heatmap_row` (``ncols`` = explainers + 1).

    ``comparisons``: a Comparison, a list, or a dict (``names`` picks and orders
    its entries). Per comparison and face: the face alone, then each explainer's map scaled
    to [0, 1] (min-max; a constant map is 0), or the face alone titled
    "n/a (black box)" where the explainer cannot run.

    Returns
    -------
    images, heatmaps, titles : lists of equal length
    """
    if names is not None and isinstance(comparisons, Mapping):
        comparisons = [comparisons[name] for name in names]
    comparisons = _as_list(comparisons)
    columns = []
    for comparison in comparisons:
        columns += [e for e in comparison.settings["explainers"] if e not in columns]
    images, maps, titles = [], [], []
    for comparison in comparisons:
        for k in range(min(faces, len(comparison.faces))):
            face = comparison.faces[k]
            images.append(face)
            maps.append(None)
            titles.append(f"{comparison.recogniser}, face {k}")
            for name in columns:
                images.append(face)
                stack = comparison.heatmaps.get(name)
                if stack is None:
                    maps.append(None)
                    ran = name in comparison.settings["explainers"]
                    titles.append(f"{name}: {BLACK_BOX if ran else 'not run'}")
                    continue
                heat = stack[k]
                low, high = heat.min(), heat.max()
                maps.append((heat - low) / (high - low) if high > low else np.zeros_like(heat))
                titles.append(name)
    return images, maps, titles


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"


def recommendation(table: pd.DataFrame, *, tolerance: float = 0.01) -> str:
    """A Markdown paragraph per recogniser saying which explainer to trust, from the numbers.

    An explainer is *faithful* when its map beats the random map of its own
    kind on deletion and on insertion by more than ``tolerance`` (normalised
    AUC), *model-sensitive* when its rank correlation with itself on the
    network with the deepest cascade computed (``randomised``) re-initialised
    is below :data:`RANDOMISATION_PASS` (a black box cannot be tested and is
    not held against; on a network with a torch module an undefined
    correlation, from a constant map or a check not run, does not pass), and
    *stable* when two seeds agree to a rank correlation of at least 0.5. The
    recommended explainer is the faithful, model-sensitive one with the
    largest deletion gain plus insertion gain; the paragraph also says where
    the paper's setting stands and what each choice costs.
    """
    needed = {"recogniser", "explainer", "deletion_gain", "insertion_gain",
              "randomisation_rank_corr", "seed_rank_corr", "seconds", "forwards"}
    if not needed <= set(table):
        raise ValueError(f"table must be summarise()'s table; missing {sorted(needed - set(table))}")
    paragraphs = []
    for recogniser, part in table.groupby("recogniser", sort=False):
        part = part[part["note"].fillna("") == ""] if "note" in part else part
        blocked = sorted(set(table.loc[table["recogniser"] == recogniser, "explainer"])
                         - set(part["explainer"]))
        if part.empty:
            paragraphs.append(f"**{recogniser}**: no explainer could run.")
            continue
        faithful = (part["deletion_gain"] > tolerance) & (part["insertion_gain"] > tolerance)
        corr = part["randomisation_rank_corr"]
        white = part["white_box"].fillna(False).astype(bool) if "white_box" in part \
            else pd.Series(False, index=part.index)
        sensitive = ~white | (corr < RANDOMISATION_PASS)
        undetermined = white & corr.isna()
        stable = part["seed_rank_corr"] >= 0.5
        score = part["deletion_gain"] + part["insertion_gain"]
        good = part[faithful & sensitive]
        faces = int(part["faces"].max())
        depth = next((str(d) for d in part.get("randomised", pd.Series(dtype=object))
                      if isinstance(d, str) and d), "")
        stages = f"its top {depth.split('/')[0]} of {depth.split('/')[1]} stages" if depth \
            else "its layers"
        text = [f"**{recogniser}** ({faces} face{'s' if faces != 1 else ''}):"]
        if good.empty:
            best = part.loc[score.idxmax()]
            text.append(f"no explainer beats a random map of its own kind on both deletion and "
                        f"insertion while passing the randomisation check; the closest is "
                        f"{best['explainer']} (deletion gain {_fmt(best['deletion_gain'], 3)}, "
                        f"insertion gain {_fmt(best['insertion_gain'], 3)}). Trust none of "
                        "these maps as a ranking of pixels for this recogniser.")
        else:
            best = good.loc[score[good.index].idxmax()]
            text.append(f"use **{best['explainer']}**: removing its most relevant pixels "
                        f"lowers the similarity more than a random map of its kind "
                        f"(normalised deletion AUC {_fmt(best['deletion_auc'], 3)} vs "
                        f"{_fmt(best['deletion_baseline'], 3)}) and inserting them restores "
                        f"more ({_fmt(best['insertion_auc'], 3)} vs "
                        f"{_fmt(best['insertion_baseline'], 3)});")
            if white[best.name]:
                text.append(f"its map changes when {stages} are re-initialised (rank "
                            f"correlation {_fmt(best['randomisation_rank_corr'])} with the "
                            "trained map),")
            else:
                text.append("the randomisation check cannot be run on a black box,")
            text.append(f"two seeds agree to {_fmt(best['seed_rank_corr'])}, and one map costs "
                        f"{_fmt(best['seconds'], 1)} s and {best['forwards']:.0f} images "
                        "through the network.")
            others = [e for e in good["explainer"] if e != best["explainer"]]
            if others:
                text.append("Also faithful" + (" and passing the randomisation check"
                                               if white.any() else "") + ": "
                            + ", ".join(others) + ".")
        failed_sanity = part.loc[white & (corr >= RANDOMISATION_PASS), "explainer"].tolist()
        if failed_sanity:
            text.append(f"Fails the randomisation check (rank correlation with the trained map "
                        f"at least {RANDOMISATION_PASS} with {stages} re-initialised): "
                        + ", ".join(failed_sanity) + ".")
        if undetermined.any():
            text.append("Randomisation check undetermined (a constant map, or not run): "
                        + ", ".join(part.loc[undetermined, "explainer"]) + ".")
        unstable = part.loc[~stable & part["seed_rank_corr"].notna(), "explainer"].tolist()
        if unstable:
            text.append("Unstable across seeds (rank correlation below 0.5): "
                        + ", ".join(unstable) + ".")
        paper = part[part["explainer"] == "faceexp-lime-paper"]
        if not paper.empty:
            p = paper.iloc[0]
            verdict = "beats" if bool(faithful[paper.index[0]]) else "does not beat"
            text.append(f"The paper's LIME (p_off=0.6) {verdict} its random baseline (deletion "
                        f"gain {_fmt(p['deletion_gain'], 3)}, insertion gain "
                        f"{_fmt(p['insertion_gain'], 3)}).")
        if blocked:
            text.append("Not run (black box, no gradients): " + ", ".join(blocked) + ".")
        paragraphs.append(" ".join(text))
    return "\n\n".join(paragraphs)


#: The headline columns of :func:`headline_table` (and of the benchmark).
HEADLINE = ("recogniser", "explainer", "deletion_auc", "deletion_baseline", "insertion_auc",
            "insertion_baseline", "randomisation_rank_corr", "randomisation_spread",
            "randomisation_degenerate", "seed_rank_corr", "seconds", "forwards", "faces", "note")


def _as_list(comparisons: Any) -> list:
    if isinstance(comparisons, Comparison):
        return [comparisons]
    if isinstance(comparisons, Mapping):
        return list(comparisons.values())
    return list(comparisons)


def combine(comparisons: Any, what: str) -> pd.DataFrame:
    """One table of several comparisons' ``what`` ("table", "per_face", "curves" or
    "randomisation"), with a ``recogniser`` column."""
    if what not in ("table", "per_face", "curves", "randomisation"):
        raise ValueError(f"what must be 'table', 'per_face', 'curves' or 'randomisation', "
                         f"got {what!r}")
    parts = [getattr(c, what).assign(recogniser=c.recogniser) for c in _as_list(comparisons)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def headline_table(comparisons: Any, *, digits: int = 3) -> pd.DataFrame:
    """The :data:`HEADLINE` columns of the comparisons' tables, rounded (the randomisation
    spread, a small number, to ``digits`` significant figures)."""
    table = combine(comparisons, "table")
    for column in ("randomisation_spread", "randomisation_degenerate"):
        if column not in table:
            table[column] = np.nan if column == "randomisation_spread" else False
    spread = [float(f"{v:.{digits}g}") if np.isfinite(v) else v
              for v in table["randomisation_spread"].to_numpy(dtype=float)]
    table = table[list(HEADLINE)].round(digits)
    table["randomisation_spread"] = spread
    return table


def comparison_caption(comparisons: Any, extra: str = "") -> str:
    """A caption saying what comparisons ran: data, recognisers and their weights, faces,
    budget, seeds, the explained similarity and the deletion settings."""
    items = _as_list(comparisons)
    if not items:
        raise ValueError("comparisons: none given")
    s = items[0].settings
    models = []
    for c in items:
        source = c.settings.get("source") or {}
        weights = source.get("package") or source.get("checkpoint") or source.get("file") or "?"
        models.append(f"{c.recogniser} ({weights}; {c.settings.get('faces')} genuine pairs)")
    budget = "usual settings" if s.get("budget") is None else \
        f"budget {s['budget']} images per explanation"
    steps = s.get("steps") or [0.0]
    text = (f"Data: {s.get('data') or 'faces given by the caller'}. Recognisers: "
            + "; ".join(models) + ". Explained: cosine similarity to the "
            f"{'genuine partner' if s.get('reference') == 'pair' else 'face itself'}; "
            f"{budget}; {s.get('n_segments')} superpixels; seeds {s.get('seeds')}; pixels set "
            f"to {s.get('fill')} in steps to {100 * max(steps):.0f}%.")
    return text + (f" {extra}" if extra else "")
