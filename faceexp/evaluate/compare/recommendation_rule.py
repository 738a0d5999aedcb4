"""Chapter 10's recommendation rule: one primary measure, gates, a paired interval, two halves.

The rule, per recogniser, from the per-face table of the comparison
(:func:`~faceexp.evaluate.compare.summary.combine` of ``"per_face"``):

1. **Primary measure** (:data:`PRIMARY`): the insertion gain on genuine pairs, the
   normalised insertion AUC of the pair similarity with the explainer's map minus
   that with a random map of its kind, per face (> 0: inserting the map's pixels
   first restores the pair's similarity faster than a random order does).
2. **Gates** (:data:`GATES`), each stated with its numbers where it excludes:
   the explainer must run on the recogniser (no black-box gradient explainer);
   pass the randomisation check (mean rank correlation with its map on the
   randomised network below :data:`~faceexp.evaluate.compare.summary.RANDOMISATION_PASS`;
   not applied where the check was degenerate or could not be computed: that is said);
   and be stable across seeds (mean rank correlation of two seeds at least
   :data:`STABLE_SEEDS`, where measured).
3. Among the explainers that pass, on the faces where all of them have a value,
   the best and runner-up by mean primary measure; the **lead** is the mean
   per-face difference best - runner-up with a paired bootstrap interval over faces
   (:func:`faceexp.core.bootstrap.paired_difference`). The best is **recommended**
   only when that interval lies above 0, its own insertion gain's interval over
   faces lies above 0 (it beats a random map), and there are at least
   :data:`MIN_DECISION_FACES` faces; otherwise "no clear winner between X and Y",
   with the numbers.
4. **Two halves**: the faces are split into two disjoint halves (a seeded
   permutation, the first ``ceil(n/2)`` and the rest) and the rule is applied to
   each; they agree when they recommend the same explainer, or both recommend
   none with the same top pair (in either order).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from faceexp.core.bootstrap import mean_interval, paired_difference
from faceexp.evaluate.compare.summary import RANDOMISATION_PASS

__all__ = ["PRIMARY", "PRIMARY_TEXT", "GATES", "STABLE_SEEDS", "MIN_FACES", "MIN_DECISION_FACES",
           "primary_scores",
           "explainer_gates", "decide", "recommend", "recommendation_text", "rule_text",
           "write_recommendation"]

#: The per-face column the rule ranks by (computed by :func:`primary_scores`).
PRIMARY = "insertion_gain_pair"
#: The primary measure in words, for the page.
PRIMARY_TEXT = ("the insertion gain on genuine pairs: the normalised area under the curve of the "
                "pair's cosine similarity as the map's most relevant pixels are inserted first, "
                "minus the same with a random map of its kind (per face; > 0 beats random)")
#: The gates, in words.
GATES = (f"runs on the recogniser (gradient explainers need a white box); passes the "
         f"randomisation check (mean rank correlation with its map on the randomised network "
         f"below {RANDOMISATION_PASS}, not applied where the check is degenerate or undefined); "
         f"stable across seeds (mean rank correlation of two seeds at least 0.5, where measured)")
#: The smallest mean rank correlation of two seeds that counts as stable.
STABLE_SEEDS = 0.5
#: Faces per recogniser the chapter aims at (two halves of at least 6).
MIN_FACES = 12
#: The fewest faces on which the rule states a winner: a percentile bootstrap over a
#: handful of faces is far too narrow (over 2 faces it has 3 distinct means), so fewer
#: faces give no recommendation, whatever the interval (half of :data:`MIN_FACES`).
MIN_DECISION_FACES = 6
#: The keys of each record of :func:`recommend`.
RECORD_KEYS = ("recogniser", "explainer", "runner_up", "lead", "ci_low", "ci_high", "faces",
               "halves_agree")


def primary_scores(per_face: pd.DataFrame) -> pd.Series:
    """Per-face :data:`PRIMARY`: ``insertion_auc_pair - insertion_baseline_pair`` (NaN if absent)."""
    needed = {"insertion_auc_pair", "insertion_baseline_pair"}
    if not needed <= set(per_face):
        raise ValueError(f"per_face must be Comparison.per_face with pair curves (reference "
                         f"'pair'); missing {sorted(needed - set(per_face))}")
    return (per_face["insertion_auc_pair"] - per_face["insertion_baseline_pair"]).rename(PRIMARY)


def _mean(part: pd.DataFrame, column: str) -> float:
    if column not in part:
        return math.nan
    values = pd.to_numeric(part[column], errors="coerce").dropna()
    return float(values.mean()) if len(values) else math.nan


def explainer_gates(per_face: pd.DataFrame) -> dict:
    """explainer -> None (passes) or why it is left out, with its numbers, for one recogniser.

    ``per_face``: the rows of one recogniser (columns ``explainer``, ``note``,
    ``white_box``, ``randomisation_rank_corr``, ``randomisation_degenerate``,
    ``seed_rank_corr``; the missing ones are treated as not measured).
    """
    out = {}
    for explainer, part in per_face.groupby("explainer", sort=False):
        note = part["note"].dropna().astype(str) if "note" in part else pd.Series([], dtype=str)
        if (note != "").any():
            out[explainer] = f"cannot run: {note[note != ''].iloc[0]}"
            continue
        white = bool(part["white_box"].fillna(False).astype(bool).any()) \
            if "white_box" in part else False
        corr = _mean(part, "randomisation_rank_corr")
        degenerate = bool(part["randomisation_degenerate"].dropna().astype(bool).all()) \
            if "randomisation_degenerate" in part and \
            part["randomisation_degenerate"].notna().any() else False
        if white and not degenerate and np.isfinite(corr) and corr >= RANDOMISATION_PASS:
            out[explainer] = (f"fails the randomisation check: its map keeps a rank correlation "
                              f"of {corr:.2f} (at least {RANDOMISATION_PASS}) with the map on the "
                              "randomised network")
            continue
        seeds = _mean(part, "seed_rank_corr")
        if np.isfinite(seeds) and seeds < STABLE_SEEDS:
            out[explainer] = (f"unstable across seeds: two seeds' maps agree to a rank "
                              f"correlation of {seeds:.2f} (below {STABLE_SEEDS})")
            continue
        out[explainer] = None
    return out


def decide(scores: pd.DataFrame, *, n_boot: int = 2000, level: float = 0.95, seed: Any = 0,
           min_faces: int = MIN_DECISION_FACES) -> dict:
    """Step 3 of the rule on a faces x explainers table of the primary measure.

    Parameters
    ----------
    scores : DataFrame, shape (faces, explainers)
        The primary measure of the explainers that passed the gates; a face with
        a NaN anywhere is left out (every explainer is compared on the same faces).
    min_faces : int, default :data:`MIN_DECISION_FACES`
        Fewer faces: the ranking and intervals are given, no explainer is recommended.

    Returns
    -------
    dict
        ``explainer`` (recommended, or None), ``best``, ``runner_up`` (None with
        fewer than two explainers), ``lead``, ``ci_low``, ``ci_high`` (None
        without a runner-up), ``best_gain``, ``best_low``, ``best_high`` (the
        best's mean primary measure and its interval), ``faces``, ``ranking``
        (explainer -> mean, best first).
    """
    scores = scores.dropna(axis=0, how="any")
    out = {"explainer": None, "best": None, "runner_up": None, "lead": None, "ci_low": None,
           "ci_high": None, "best_gain": None, "best_low": None, "best_high": None,
           "faces": int(len(scores)), "ranking": {}}
    if scores.shape[1] == 0 or len(scores) < 2:
        return out
    means = scores.mean(axis=0).sort_values(ascending=False, kind="stable")
    out["ranking"] = {str(k): float(v) for k, v in means.items()}
    best = str(means.index[0])
    own = mean_interval(scores[best].to_numpy(), n_boot=n_boot, level=level, seed=seed).iloc[0]
    out.update(best=best, best_gain=float(own["mean"]), best_low=float(own["ci_low"]),
               best_high=float(own["ci_high"]))
    beats_random = float(own["ci_low"]) > 0 and len(scores) >= min_faces
    if len(means) == 1:
        out["explainer"] = best if beats_random else None
        return out
    runner = str(means.index[1])
    lead = paired_difference(scores[best].to_numpy(), scores[runner].to_numpy(), n_boot=n_boot,
                             level=level, seed=seed).iloc[0]
    out.update(runner_up=runner, lead=float(lead["difference"]), ci_low=float(lead["ci_low"]),
               ci_high=float(lead["ci_high"]))
    if float(lead["ci_low"]) > 0 and beats_random:       # beats_random includes min_faces
        out["explainer"] = best
    return out


def _halves_agree(first: dict, second: dict) -> bool | None:
    if first["faces"] < 2 or second["faces"] < 2:
        return None
    if first["explainer"] is not None or second["explainer"] is not None:
        return first["explainer"] == second["explainer"]
    if first["runner_up"] is None or second["runner_up"] is None:
        return first["best"] == second["best"]
    return {first["best"], first["runner_up"]} == {second["best"], second["runner_up"]}


def recommend(per_face: pd.DataFrame, *, n_boot: int = 2000, level: float = 0.95, seed: Any = 0,
              split_seed: Any = 0, min_faces: int = MIN_DECISION_FACES) -> list:
    """Chapter 10's recommendation per recogniser (the module's rule), JSON-ready.

    Parameters
    ----------
    per_face : DataFrame
        :func:`~faceexp.evaluate.compare.summary.combine` ``(comparisons, "per_face")``:
        one row per (recogniser, explainer, face).
    n_boot, level, seed
        The paired bootstrap over faces (:func:`faceexp.core.bootstrap.paired_difference`).
    split_seed : int
        The permutation of the faces into two halves.
    min_faces : int, default :data:`MIN_DECISION_FACES`
        The fewest faces (of the whole, or of a half) on which a winner is stated.

    Returns
    -------
    list of dict
        One per recogniser: ``recogniser``, ``explainer`` (or None), ``runner_up``,
        ``lead``, ``ci_low``, ``ci_high`` (the lead's interval), ``faces``,
        ``halves_agree`` (None when a half has fewer than 2 faces), then ``best``,
        ``best_gain``, ``best_low``, ``best_high``, ``ranking``, ``gates``
        (explainer -> reason it is left out), ``halves`` (the rule on each half:
        ``faces``, ``explainer``, ``best``, ``runner_up``, ``lead``, ``ci_low``,
        ``ci_high``), ``primary`` (:data:`PRIMARY_TEXT`), ``level``, ``min_faces``.
    """
    needed = {"recogniser", "explainer", "face"}
    if not needed <= set(per_face):
        raise ValueError(f"per_face must be combine(comparisons, 'per_face'); missing "
                         f"{sorted(needed - set(per_face))}")
    data = per_face.copy()
    data[PRIMARY] = primary_scores(data)
    records = []
    for recogniser, part in data.groupby("recogniser", sort=False):
        gates = explainer_gates(part)
        passing = [e for e, reason in gates.items() if reason is None]
        scores = part[part["explainer"].isin(passing)].pivot_table(
            index="face", columns="explainer", values=PRIMARY, aggfunc="first", dropna=False)
        scores = scores.reindex(columns=passing).dropna(axis=0, how="any")
        whole = decide(scores, n_boot=n_boot, level=level, seed=seed, min_faces=min_faces)
        order = np.random.default_rng(split_seed).permutation(len(scores))
        cut = math.ceil(len(scores) / 2)
        halves = [decide(scores.iloc[np.sort(idx)], n_boot=n_boot, level=level, seed=seed,
                         min_faces=min_faces) for idx in (order[:cut], order[cut:])]
        record = {"recogniser": str(recogniser),
                  **{k: whole[k] for k in ("explainer", "runner_up", "lead", "ci_low", "ci_high",
                                           "faces")},
                  "halves_agree": _halves_agree(*halves),
                  **{k: whole[k] for k in ("best", "best_gain", "best_low", "best_high",
                                           "ranking")},
                  "gates": {e: r for e, r in gates.items() if r is not None},
                  "halves": [{k: h[k] for k in ("faces", "explainer", "best", "runner_up", "lead",
                                                "ci_low", "ci_high")} for h in halves],
                  "primary": PRIMARY_TEXT, "level": float(level), "min_faces": int(min_faces)}
        records.append(record)
    return records


def _num(value, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def recommendation_text(records: list) -> str:
    """One Markdown paragraph per recogniser from :func:`recommend`'s records (numbers generated)."""
    paragraphs = []
    for r in records:
        percent = f"{round(100 * r.get('level', 0.95))}%"
        head = f"**{r['recogniser']}** ({r['faces']} face{'s' if r['faces'] != 1 else ''}):"
        few = r["faces"] < r.get("min_faces", MIN_DECISION_FACES)
        if r["faces"] < 2:
            text = f"{head} too few faces for an interval over faces: no recommendation."
        elif r["best"] is None:
            text = f"{head} no explainer passed the gates on two or more faces."
        elif r["runner_up"] is None:
            gain = (f"insertion gain {_num(r['best_gain'])} [{_num(r['best_low'])}, "
                    f"{_num(r['best_high'])}]")
            if r["explainer"]:
                text = f"{head} use **{r['best']}**, the only explainer that passed the gates ({gain})."
            else:
                why = (f"fewer than {r.get('min_faces', MIN_DECISION_FACES)} faces" if few else
                       "its interval does not exclude a random map")
                text = (f"{head} no recommendation: {r['best']} is the only explainer that passed "
                        f"the gates ({gain}), on {why}." if few else
                        f"{head} no recommendation: {r['best']} is the only explainer that passed "
                        f"the gates ({gain}), and {why}.")
        else:
            lead = (f"leads {r['runner_up']} by {_num(r['lead'])} "
                    f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}] ({percent} paired interval "
                    f"over faces)")
            gain = (f"its insertion gain over a random map is {_num(r['best_gain'])} "
                    f"[{_num(r['best_low'])}, {_num(r['best_high'])}]")
            if r["explainer"]:
                text = f"{head} use **{r['explainer']}**: it {lead}, and {gain}."
            elif few:
                text = (f"{head} no recommendation on fewer than "
                        f"{r.get('min_faces', MIN_DECISION_FACES)} faces: {r['best']} {lead}, "
                        f"and {gain}.")
            elif r["ci_low"] is not None and r["ci_low"] > 0:
                text = (f"{head} no clear winner: {r['best']} {lead}, but {gain}, which does not "
                        "exclude a random map.")
            else:
                text = (f"{head} no clear winner between {r['best']} and {r['runner_up']}: "
                        f"{r['best']} {lead}, an interval that contains 0.")
        halves = r.get("halves") or []
        if len(halves) == 2:
            sizes = f"{halves[0]['faces']} and {halves[1]['faces']} faces"
            said = "; ".join(
                (f"use {h['explainer']}" if h["explainer"] else
                 f"no clear winner between {h['best']} and {h['runner_up']}" if h["runner_up"]
                 else "no winner") for h in halves)
            verdict = {True: "agree", False: "disagree",
                       None: "cannot be compared (a half has fewer than 2 faces)"}[
                r["halves_agree"]]
            text += f" The two halves of the faces ({sizes}) {verdict}" + (
                f": {said}." if r["halves_agree"] is not None else ".")
        if r.get("gates"):
            text += " Left out by the gates: " + "; ".join(
                f"{e} ({reason})" for e, reason in r["gates"].items()) + "."
        paragraphs.append(text)
    return "\n\n".join(paragraphs)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_recommendation(records: list, output_dir: Any, name: str = "recommendation.json"
                         ) -> Path:
    """Write :func:`recommend`'s records as ``<output_dir>/recommendation.json``: an object
    recogniser -> its record (keys :data:`RECORD_KEYS` first; NaN as null). Returns the path."""
    from faceexp.core.files import write_json

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {r["recogniser"]: _plain({k: v for k, v in r.items() if k != "recogniser"})
           for r in records}
    return write_json(out / name, doc, indent=2, allow_nan=False)


def rule_text(records: list, *, budget: int | None = None) -> str:
    """The rule as the page states it, with what was run: faces per recogniser, the two
    halves' sizes, the budget per map, the primary measure and the gates (all generated)."""
    faces = ", ".join(f"{r['recogniser']} {r['faces']} (halves of "
                      f"{' and '.join(str(h['faces']) for h in r.get('halves') or [])})"
                      for r in records) or "none"
    level = f"{round(100 * (records[0].get('level', 0.95) if records else 0.95))}%"
    spent = f" at a budget of {budget} images through the network per map" if budget else ""
    return (f"Faces explained per recogniser{spent}: {faces}. The explainers are ranked by one "
            f"primary measure, {PRIMARY_TEXT}. Gates an explainer must pass to be ranked: "
            f"{GATES}. The best is recommended only when its lead over the runner-up has a "
            f"{level} paired bootstrap interval over faces above 0 and its own insertion gain's "
            f"interval lies above 0; otherwise there is no clear winner. The rule is applied "
            f"again to two disjoint halves of the faces (a seeded split), which agree when they "
            f"recommend the same explainer or both name no winner between the same two.")
