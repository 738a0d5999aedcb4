"""Chapter 11's driver: explanations with known answers on the subjects of a Study.

:func:`known_answers_subjects` runs :func:`faceexp.evaluate.known_answers.run_known_answers`
on the canonical crops of the study's test identities for each pretrained recogniser;
:func:`known_answers_table` stacks their tables; :func:`known_answers_reading` and
:func:`fills_reading` turn the tables into the chapter's sentences (every number in
them comes from the tables).
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd

from faceexp.evaluate.known_answers.benchmark import KnownAnswers, run_known_answers

__all__ = ["known_answers_subjects", "known_answers_table", "known_answers_reading",
           "fills_reading", "example_maps", "recommendation_check"]


def known_answers_subjects(study: Any, names: Sequence[str], *, explainers: Sequence[str],
                           n_identities: int | None = None, per_identity: int = 3,
                           seed: int = 0, **options: Any) -> dict[str, KnownAnswers]:
    """The known-answer benchmark on pretrained recognisers of a study.

    Parameters
    ----------
    study : faceexp.study.Study
    names : sequence of str
        Pretrained recognisers of the study (canonical frame; the paper's CNNs
        have no canonical crop and are left out with a warning).
    explainers : sequence of str
    n_identities : int, optional
        Test identities drawn (seeded); None: all.
    per_identity : int
        Images per identity (the first ones): probe, mate and donors come from these.
    seed : int
    **options
        :func:`run_known_answers` options (``tasks``, ``n_probes``, ``budget``,
        ``min_drop``, ``n_patches``, ``patch_size``, ``fills``, ``progress``).

    Returns
    -------
    dict
        name -> :class:`~faceexp.evaluate.known_answers.benchmark.KnownAnswers`.
    """
    test = study.split("test")
    people = sorted(test["identity"].unique())
    if n_identities is not None:
        order = np.random.default_rng(seed).permutation(len(people))[:int(n_identities)]
        people = [people[k] for k in order]
    frame = test[test["identity"].isin(people)].groupby("identity", sort=False) \
        .head(int(per_identity)).reset_index(drop=True)
    result = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"IProgress not found")
        for name in names:
            subject = study.subject(name)
            if subject.kind != "recogniser":
                warnings.warn(f"{name}: the paper's CNNs have no canonical crop; left out of "
                              "the known-answer benchmark", stacklevel=2)
                continue
            images, keep, _ = subject.images(frame)
            result[name] = run_known_answers(
                subject.recogniser, images, frame["identity"].iloc[keep].tolist(),
                explainers=explainers, seed=seed, names=frame["path"].iloc[keep].tolist(),
                recogniser_name=name, **options)
    return result


def known_answers_table(results: dict[str, KnownAnswers]) -> pd.DataFrame:
    """All recognisers' tables, one row per (recogniser, explainer, task, map)."""
    tables = [r.table for r in results.values() if len(r.table)]
    if not tables:
        raise ValueError("results: no recogniser kept any probe; lower min_drop or add probes")
    return pd.concat(tables, ignore_index=True)


def _interval(row, column, digits=2):
    return (f"{row[column]:.{digits}f} [{row[column + '_low']:.{digits}f}, "
            f"{row[column + '_high']:.{digits}f}]")


def known_answers_reading(table: pd.DataFrame) -> str:
    """Which explainer's dissimilarity map finds what the construction put there.

    Per (recogniser, task), the explainers whose dissimilarity map beats its
    control (``delta`` interval above 0) and those whose raw AUC alone would say
    otherwise (AUC interval not above 0.5 while delta's is above 0, or the
    reverse).
    """
    part = table[table["map"] == "dissimilarity"]
    lines = []
    for (recogniser, task), group in part.groupby(["recogniser", "task"], sort=False):
        finds = [r for _, r in group.iterrows() if r["delta_low"] > 0]
        misses = [r for _, r in group.iterrows() if not r["delta_low"] > 0]
        sentence = f"**{recogniser}, {task} swap** ({int(group['kept'].max())} of " \
                   f"{int(group['n'].max())} probes kept): "
        if finds:
            sentence += "the dissimilarity map moves to the swapped pixels, beyond its control, " \
                        "for " + "; ".join(f"{r['explainer']} (delta {_interval(r, 'delta')})"
                                           for r in finds) + ". "
        if misses:
            sentence += "No change beyond the control is shown for " + ", ".join(
                f"{r['explainer']} (delta {_interval(r, 'delta')})" for r in misses) + ". "
        contrary = [r["explainer"] for r in finds if not r["auc_low"] > 0.5] + \
                   [r["explainer"] for r in misses if r["auc_low"] > 0.5]
        if contrary:
            sentence += "The raw AUC alone would have read these the other way: " + \
                        ", ".join(contrary) + "."
        lines.append(sentence.strip())
    return "\n\n".join(lines) if lines else "No dissimilarity map was scored."


def fills_reading(results: dict[str, KnownAnswers], *, black_favoured: str = "faceexp-lime-paper"
                  ) -> str:
    """Kendall's tau between the fills' deletion rankings, and whether the black fill
    favours ``black_favoured`` (the explainer that itself blacks pixels out): its rank
    under black beside its ranks under the other fills."""
    lines = []
    for name, result in results.items():
        if result.ranking is None or result.agreement is None:
            continue
        taus = "; ".join(f"{r.fill_a} vs {r.fill_b}: tau {r.tau:.2f}"
                         for r in result.agreement.itertuples())
        sentence = f"**{name}** ({len(result.ranking)} explainers): {taus}."
        if black_favoured in result.ranking.index and "black" in result.ranking.columns:
            ranks = result.ranking.loc[black_favoured]
            others = [f"{fill} {ranks[fill]:.0f}" for fill in ranks.index if fill != "black"]
            better = all(ranks["black"] < ranks[fill] for fill in ranks.index if fill != "black")
            sentence += (f" {black_favoured} ranks {ranks['black']:.0f} with the black fill and "
                         f"{', '.join(others)} with the others: the black fill "
                         f"{'does' if better else 'does not'} favour it.")
        lines.append(sentence)
    return "\n\n".join(lines) if lines else "The fills were not run."


def recommendation_check(table: pd.DataFrame, recommendation: dict | None, *,
                         task: str = "patch") -> str:
    """How the known answers bear on chapter 10's recommendation: per recogniser, chapter
    10's recommended explainer (``recommendation``: its ``recommendation.json``, recogniser
    -> ``{"explainer", "runner_up", ...}``) beside the explainer whose dissimilarity map
    moves most to the swapped pixels beyond its control on ``task`` (the largest ``delta``
    whose interval lies above 0), and whether they agree. Chapter 10's rule ranks by the
    insertion gain; this is the check with a known answer that it can pass or fail.
    """
    if not recommendation:
        return ("Chapter 10 wrote no recommendation for this profile (run it first): nothing "
                "to check against the known answers.")
    part = table[(table["map"] == "dissimilarity") & (table["task"] == task)]
    lines = []
    for recogniser, record in recommendation.items():
        mine = part[part["recogniser"] == recogniser]
        if mine.empty:
            lines.append(f"**{recogniser}**: not in this chapter's benchmark.")
            continue
        found = mine[mine["delta_low"] > 0].sort_values("delta", ascending=False)
        best = found.iloc[0] if len(found) else None
        chosen = record.get("explainer")
        said = (f"chapter 10 recommends {chosen}" if chosen else
                f"chapter 10 finds no clear winner between {record.get('best') or 'its best'} and "
                f"{record.get('runner_up') or 'its runner-up'}")
        if best is None:
            lines.append(f"**{recogniser}**: {said}; no explainer's dissimilarity map beats its "
                         f"control on the {task} swap here, so the known answers neither confirm "
                         f"nor contradict it.")
            continue
        verdict = ("they agree" if chosen == best["explainer"] else
                   ("chapter 10's choice was not scored here" if chosen not in set(mine["explainer"])
                    else "they disagree"))
        lines.append(f"**{recogniser}**: {said}; on the {task} swap the dissimilarity map that "
                     f"moves most to the swapped pixels is {best['explainer']}'s (delta "
                     f"{_interval(best, 'delta')}): {verdict}.")
    return "\n\n".join(lines)


def example_maps(result: KnownAnswers, task: str, *, explainers: Sequence[str] | None = None,
                 n: int = 1) -> tuple[list, list, list]:
    """Images, maps and titles of the first ``n`` kept probes of one task: the
    modified probe, its mask, then each explainer's similarity and dissimilarity maps
    (for :func:`faceexp.report.plots.plot_heatmap_row`)."""
    items = result.items.get(task, [])[:n]
    explainers = list(result.maps) if explainers is None else list(explainers)
    images, maps, titles = [], [], []
    for item in items:
        images += [item.probe, item.probe]
        maps += [None, item.mask.astype(float)]
        titles += [f"{task} probe", "swapped pixels"]
        for explainer in explainers:
            for kind, heatmap in result.maps[explainer][(task, item.index)]["modified"].items():
                images.append(item.probe)
                maps.append(heatmap)
                titles.append(f"{explainer}: {kind}")
    return images, maps, titles
