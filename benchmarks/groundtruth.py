"""Explanations with known answers: does a map find the pixels a construction put there?

A benchmark, not a test: it prints figures. ORL faces are aligned into the canonical
crop (the same pixels for every recogniser); for each task ``--probes`` probes are
constructed (:mod:`faceexp.evaluate.known_answers.construction`; the same probes,
mates and donors for both tasks):

- ``patch``: ``--patches`` squares of ``--patch-size`` pixels pasted from another
  identity's aligned face at the same positions (Patch-LFW's protocol);
- ``region``: the eyes, nose or mouth replaced by a non-mate's, seamlessly cloned
  (the Inpainting Game's idea).

A probe is kept only where the recogniser's cosine similarity to the mate drops by
``--min-drop`` or more. Every explainer explains the pair (modified probe, mate) and
the clean pair (the control) with ``--samples`` images through the network; one
row per (recogniser, explainer, task, map):

- ``auc`` (pixel ROC AUC of the map against the mask, 0.5 = random), ``auc_low``,
  ``auc_high`` (95% bootstrap over probes); ``auc_control`` (the clean pair's map,
  same mask); ``delta`` = auc - auc_control paired over probes with its interval;
- ``pointing`` (share of the map's maximum in the mask), ``mass_ratio`` (mass in the
  mask over its area share), ``change_auc`` (AUC of modified minus clean map),
  ``auc_random`` (a random superpixel map) with its interval;
- ``n`` (probes constructed), ``kept`` (kept and scored), ``seconds`` (per probe,
  both explanations), ``note`` (an unsigned map scored as a dissimilarity map).

Then the clean pairs' similarity maps are ranked by deletion with three fills (black,
blur, OpenCV inpainting) and Kendall's tau between the fills' rankings is printed
(under ``fills`` in --json).

    python benchmarks/groundtruth.py [--recognisers facenet-casia,sface]
        [--explainers faceexp-lime-paper,corrrise,captum-occlusion] [--probes 12]
        [--samples 500] [--tasks patch,region] [--min-drop 0.05] [--quick] [--json]

``--quick``: FaceNet-CASIA, faceexp-lime-paper, corrrise and captum-occlusion, 4
probes per task from 8 people, 150 images per explanation (under 10 minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
import pandas as pd

from faceexp import data as fdata
from faceexp import recognisers
from faceexp.evaluate import known_answers as ka

KEYS = ("recogniser", "explainer", "task", "map", "auc", "auc_low", "auc_high", "auc_control",
        "delta", "delta_low", "delta_high", "pointing", "mass_ratio", "n", "kept", "seconds")
EXTRA = ("change_auc", "auc_random", "auc_random_low", "auc_random_high", "note")
QUICK = {"recognisers": "facenet-casia",
         "explainers": "faceexp-lime-paper,corrrise,captum-occlusion",
         "probes": 4, "samples": 150, "identities": 8}


def _plain(value):
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _faces(identities: int, per_identity: int, seed: int):
    """Canonical crops of ``per_identity`` images of ``identities`` ORL people (seeded)."""
    frame = fdata.load_orl()
    people = sorted(frame["identity"].unique())
    chosen = [people[k] for k in np.random.default_rng(seed).permutation(len(people))[:identities]]
    frame = frame[frame["identity"].isin(chosen)].groupby("identity", sort=False) \
        .head(per_identity).reset_index(drop=True)
    aligner = recognisers.load("facenet-casia", frame="canonical")
    found = aligner.align_many(frame["path"].tolist(), errors="return")
    keep = [k for k, f in enumerate(found) if not isinstance(f, Exception)]
    faces = np.stack([found[k] for k in keep]).astype(np.float32)
    return faces, frame["identity"].iloc[keep].tolist(), frame["path"].iloc[keep].tolist()


def _cell(row, column):
    value = row[column]
    if column in ("recogniser", "explainer", "task", "map"):
        return str(value)
    if column in ("n", "kept"):
        return str(int(value))
    if not isinstance(value, (int, float, np.floating)) or not np.isfinite(value):
        return ""
    low, high = row.get(f"{column}_low", np.nan), row.get(f"{column}_high", np.nan)
    digits = 1 if column == "seconds" else 3
    interval = f" [{low:.{digits}f}, {high:.{digits}f}]" if np.isfinite(low) else ""
    return f"{value:.{digits}f}{interval}"


def _table_text(table: pd.DataFrame) -> str:
    columns = [c for c in KEYS if not c.endswith(("_low", "_high"))] + ["auc_random"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(row, c) for c in columns) + " |")
    notes = sorted({n for n in table.get("note", []) if isinstance(n, str) and n})
    return "\n".join(lines + [f"note: {n}" for n in notes])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recognisers", default="facenet-casia,sface")
    parser.add_argument("--explainers", default="faceexp-lime-paper,corrrise,captum-occlusion")
    parser.add_argument("--tasks", default="patch,region")
    parser.add_argument("--probes", type=int, default=12, help="probes constructed per task")
    parser.add_argument("--samples", type=int, default=500,
                        help="images through the network per explanation")
    parser.add_argument("--identities", type=int, default=20, help="ORL people drawn")
    parser.add_argument("--patches", type=int, default=8)
    parser.add_argument("--patch-size", type=int, default=20)
    parser.add_argument("--min-drop", type=float, default=ka.DEFAULT_MIN_DROP)
    parser.add_argument("--fills", default=",".join(ka.FILLS), help="'' to skip the fills")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK}")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)

    start_all = time.perf_counter()
    faces, identities, paths = _faces(args.identities, 3, args.seed)
    print(f"{len(faces)} canonical crops of {len(set(identities))} ORL people", file=sys.stderr)
    tables, fills, settings = [], [], {}
    for name in [r for r in args.recognisers.split(",") if r]:
        start = time.perf_counter()
        rec = recognisers.load(name, frame="canonical")
        result = ka.run_known_answers(
            rec, faces, identities, explainers=[e for e in args.explainers.split(",") if e],
            tasks=[t for t in args.tasks.split(",") if t], n_probes=args.probes,
            budget=args.samples, seed=args.seed, min_drop=args.min_drop,
            n_patches=args.patches, patch_size=args.patch_size,
            fills=[f for f in args.fills.split(",") if f] or None, names=paths,
            recogniser_name=name, progress=True)   # bars on stderr
        tables.append(result.table)
        settings[name] = dict(result.settings, seconds=round(time.perf_counter() - start, 1),
                              drops={t: [round(float(d), 4) for d in v]
                                     for t, v in result.drops.items()})
        if result.ranking is not None:
            fills.append({"recogniser": name,
                          "ranking": result.ranking.reset_index().to_dict(orient="records"),
                          "agreement": result.agreement.to_dict(orient="records"),
                          "aucs": result.fill_aucs.groupby(["explainer", "fill", "mode"])["auc"]
                          .mean().reset_index().to_dict(orient="records")})
        print(f"{name}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    table = pd.concat(tables, ignore_index=True)
    settings["total_seconds"] = round(time.perf_counter() - start_all, 1)
    if args.json:
        rows = [{k: _plain(row[k]) for k in KEYS + EXTRA if k in row}
                for row in table.to_dict(orient="records")]
        doc = {"rows": rows, "fills": json.loads(json.dumps(fills, default=_plain)),
               "settings": json.loads(json.dumps(settings, default=str))}
        print(json.dumps(doc, indent=1, default=_plain))
    else:
        print(_table_text(table))
        for entry in fills:
            print(f"\n{entry['recogniser']}: deletion ranks per fill (1 = similarity falls "
                  "fastest)")
            print(pd.DataFrame(entry["ranking"]).to_string(index=False))
            print(pd.DataFrame(entry["agreement"]).to_string(index=False))
        print(f"\ntotal {settings['total_seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
