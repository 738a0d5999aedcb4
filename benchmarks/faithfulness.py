"""Which explainer to trust: faithfulness, sanity, stability and cost per (recogniser, explainer).

A benchmark, not a test: it prints figures. For each recogniser, ``--faces`` genuine
ORL pairs (one per identity, identities drawn with ``--seed``; a paper CNN's from its
run's test identities) are aligned by the recogniser, and every explainer of
``--explainers`` explains the cosine similarity of each probe to its partner
(:func:`faceexp.evaluate.compare.compare_explainers`), with ``--samples`` images through the
network per explanation (an equal budget for all; the one-pass gradient methods use
what they need). One row per (recogniser, explainer):

- ``deletion_auc`` / ``insertion_auc``: normalised area (mean similarity) of the
  pair's similarity as its most relevant pixels are set to black / inserted into a
  black image, 0 to 50% in 5% steps; ``*_baseline`` the same for a random map of the
  explainer's kind (random superpixel coefficients for region maps, shuffled
  attributions for pixel maps); ``*_gain`` how much the map beats it;
  ``deletion_auc_self`` / ``insertion_auc_self`` on the probe's self-similarity;
- ``randomisation_rank_corr``: Spearman correlation of the map with the map on the
  recogniser with its top ``--cascade`` stages re-initialised (the deepest point;
  PyTorch recognisers only); the whole curve is under ``randomisation`` in --json;
- ``seed_rank_corr``: Spearman correlation of the maps of seeds 0 and 1 (1 for
  deterministic explainers);
- ``seconds``, ``forwards``: per explanation (images through the network);
- ``faces``; each mean ``m`` has ``m_low``, ``m_high`` (95% t-interval over faces).

Gradient explainers on a black box (SFace, dlib) get a row saying "n/a (black box)".
The closing paragraph is :func:`faceexp.evaluate.compare.recommendation` of the table.

With ``--usual-cost [N]`` each explainer is also timed on the first N pairs (all without
N) at its usual settings (lime's and the paper's 1000 samples, captum's 50 IG steps,
Occlusion's side/10 patch) beside the equal budget (:func:`faceexp.evaluate.compare.cost_table`):
one row per (recogniser, explainer, setting) with the median ``seconds`` and
``forwards`` per explanation, and :func:`faceexp.evaluate.compare.cost_summary`'s sentence;
under ``cost`` and ``cost_summary`` in --json.

    python benchmarks/faithfulness.py [--recognisers facenet-casia,sface]
        [--explainers faceexp-lime-paper,...] [--faces 6] [--samples 300]
        [--cascade 1,4,8] [--stability-faces N] [--randomisation-faces N]
        [--run mobilenetv2=artifacts/demo/train/mobilenetv2-...] [--usual-cost [N]] [--json]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
import pandas as pd

from faceexp.evaluate import compare as fc
from faceexp import data as fdata
from faceexp import recognisers

ORL = "ORL faces (AT&T Laboratories Cambridge)"
COLUMNS = ("recogniser", "explainer", "deletion_auc", "insertion_auc", "deletion_baseline",
           "insertion_baseline", "randomisation_rank_corr", "seed_rank_corr", "seconds",
           "forwards", "faces")
COST_COLUMNS = ("recogniser", "explainer", "setting", "budget", "seconds", "forwards", "faces",
                "note")


def _recogniser(name: str, runs: dict):
    """(recogniser, frame of its eligible images, data description)."""
    if name in ("mobilenetv2", "resnet50"):
        from faceexp.models.training import load_run

        if name not in runs:
            raise SystemExit(f"{name}: pass --run {name}=<training run folder> (its final.pt "
                             "and split.csv; the faces come from its test identities)")
        run = load_run(runs[name])
        frame = run.split[run.split["split"] == "test"].reset_index(drop=True)
        rec = recognisers.load(name, checkpoint=run.final_checkpoint)
        return rec, frame, f"{ORL}, test identities of {run.out_dir.name}"
    return recognisers.load(name), fdata.load_orl(), ORL


def _plain(value):
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _table_text(table) -> str:
    """A Markdown table of the headline columns (mean [95% interval])."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for _, row in table.iterrows():
        cells = []
        for column in COLUMNS:
            value = row[column]
            if row.get("note") and column == "deletion_auc":
                cells.append(row["note"])
            elif isinstance(value, str):
                cells.append(value)
            elif column in ("faces",):
                cells.append(f"{int(value)}")
            elif column == "forwards":
                cells.append("" if not np.isfinite(value) else f"{value:.0f}")
            elif not np.isfinite(value):
                cells.append("")
            else:
                low, high = row.get(f"{column}_low", np.nan), row.get(f"{column}_high", np.nan)
                digits = 1 if column == "seconds" else 3
                interval = f" [{low:.{digits}f}, {high:.{digits}f}]" if np.isfinite(low) else ""
                cells.append(f"{value:.{digits}f}{interval}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cost_text(table) -> str:
    """A Markdown table of the cost at usual settings and at the equal budget."""
    lines = ["| " + " | ".join(COST_COLUMNS) + " |", "|" + "---|" * len(COST_COLUMNS)]
    for _, row in table.iterrows():
        cells = []
        for column in COST_COLUMNS:
            value = row[column]
            if column == "seconds":
                cells.append("" if not np.isfinite(value) else f"{value:.3f}")
            elif column == "forwards":
                cells.append("" if not np.isfinite(value) else f"{value:.0f}")
            else:
                cells.append("" if pd.isna(value) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recognisers", default="facenet-casia,sface")
    parser.add_argument("--explainers", default=",".join(fc.DEFAULT_EXPLAINERS))
    parser.add_argument("--faces", type=int, default=6, help="genuine pairs (one per identity)")
    parser.add_argument("--samples", type=int, default=300,
                        help="images through the network per explanation (the budget)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the identities' draw")
    parser.add_argument("--cascade", default="1,4,8",
                        help="numbers of top stages re-initialised ('' for no check, 'all')")
    parser.add_argument("--stability-faces", type=int, default=None)
    parser.add_argument("--randomisation-faces", type=int, default=None)
    parser.add_argument("--reference", default="pair", choices=("pair", "self"))
    parser.add_argument("--run", action="append", default=[], metavar="ARCH=DIR",
                        help="training run of a paper CNN (mobilenetv2 / resnet50)")
    parser.add_argument("--usual-cost", type=int, nargs="?", const=0, default=None,
                        metavar="N", help="also time every explainer at its usual settings "
                        "beside the budget, on the first N pairs (all without N)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    runs = dict(item.split("=", 1) for item in args.run)
    explainers = [e for e in args.explainers.split(",") if e]
    curves, settings, tables, costs = {}, {}, [], []
    for name in [r for r in args.recognisers.split(",") if r]:
        start = time.perf_counter()
        rec, frame, data = _recogniser(name, runs)
        model = fc.as_face_model(rec)
        if args.cascade == "all":
            cascade = None
        else:
            cascade = [int(c) for c in args.cascade.split(",") if c]
        faces, partners, pairs = fc.align_pairs(rec, fc.genuine_pairs(frame, args.faces,
                                                                       seed=args.seed))
        print(f"{name}: {len(faces)} pairs ({', '.join(pairs['identity'])}), "
              f"{len(explainers)} explainers, budget {args.samples}", file=sys.stderr)
        comparison = fc.compare_explainers(
            model, faces, partners, explainers=explainers, reference=args.reference,
            budget=args.samples, cascade=cascade, stability_faces=args.stability_faces,
            randomisation_faces=args.randomisation_faces, data=data, progress=True)
        tables.append(comparison.table)
        settings[name] = dict(comparison.settings, identities=pairs["identity"].tolist(),
                              total_seconds=time.perf_counter() - start)
        curves[name] = comparison.randomisation.groupby(["explainer", "stages", "stage"],
                                                        sort=False)["rank_corr"].mean() \
            .reset_index().to_dict(orient="records")
        if args.usual_cost is not None:
            costs.append(fc.comparison_cost(comparison, n_faces=args.usual_cost or None,
                                            progress=True))
        print(f"{name}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    table = pd.concat(tables, ignore_index=True)
    advice = fc.recommendation(table)
    cost = pd.concat(costs, ignore_index=True) if costs else None
    if args.json:
        doc = {"rows": [{k: _plain(v) for k, v in row.items()} for row in
                        table.to_dict(orient="records")],
               "randomisation": {k: [{kk: _plain(vv) for kk, vv in r.items()} for r in v]
                                 for k, v in curves.items()},
               "settings": json.loads(json.dumps(settings, default=str)),
               "recommendation": advice}
        if cost is not None:
            doc["cost"] = [{k: _plain(None if pd.isna(v) else v) for k, v in row.items()}
                           for row in cost.to_dict(orient="records")]
            doc["cost_summary"] = fc.cost_summary(cost)
        print(json.dumps(doc, indent=1))
    else:
        print(_table_text(table))
        print()
        print(advice)
        if cost is not None:
            print()
            print(_cost_text(cost))
            print()
            print(fc.cost_summary(cost))
    return 0


if __name__ == "__main__":
    sys.exit(main())
