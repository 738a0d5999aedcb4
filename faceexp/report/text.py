"""What the book's pages say: the notebooks' setup, figure captions, readings and the
summary JSON the results page is built from.

The analyses live in :mod:`faceexp.study`; this module turns what they ran and found into
text. Captions are written from recorded provenance (the data set, how many identities,
the initial weights each training run recorded, see :func:`faceexp.models.training.initial_weights`),
never from what the code assumes was run.
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from faceexp.core.version import __version__
from faceexp.models.initial_weights import init_weights_text
from faceexp import study as fs
from faceexp.report.plots.common import figure_caption
from faceexp.report.tables import FormattedTable, format_table


def progress() -> bool:
    """Whether the running notebook should show progress bars: True under ``make book``
    (book/build.py relays them to the terminal and strips them from the pages; it sets
    ``FACEEXP_BOOK_PROGRESS=1``), False in JupyterLab or papermill run by hand."""
    return os.environ.get("FACEEXP_BOOK_PROGRESS") == "1"


def setup_notebook(profile: str, models, artifacts_dir, *, recognisers=(), data_root=None,
                   pretrain_root=None, seed: int = 0, device="auto", max_epochs=None,
                   train_batch_size=None) -> fs.Study:
    """The setup cell of every chapter: working directory, quiet compiler, the study.

    Changes the working directory to the repository root when the notebook was opened
    from ``notebooks/`` (parameters hold paths relative to the root); imports torch's C++
    extension module with its logger at ERROR, so that the first ``torch.compile`` on a
    machine without a CUDA runtime does not log "No CUDA runtime is found" into the
    chapter; then :func:`faceexp.study.prepare_study` without progress bars (and without
    the warnings of a network that starts from random weights, which its captions state,
    or of tqdm missing ipywidgets), and prints one line saying what was loaded.

    Parameters
    ----------
    profile : str
        The params profile the notebook runs with (only printed).
    models, artifacts_dir, recognisers, data_root, pretrain_root, seed, device
        As :func:`faceexp.study.prepare_study` (``pretrain_root``: MS1M-style aligned
        crops trained on first, then ``data_root`` fine-tunes; the paper's two steps).
    max_epochs, train_batch_size : int, dict or None
        The training options ``max_epochs`` and ``batch_size``; a dict ``{arch: value}``
        gives each network its own.

    Returns
    -------
    faceexp.study.Study
    """
    if Path.cwd().name == "notebooks" and (Path.cwd().parent / "faceexp").is_dir():
        os.chdir(Path.cwd().parent)
    _import_cpp_extension_quietly()
    # facenet-pytorch (MTCNN: poses, alignment) imports tqdm.auto, which warns in a kernel
    # without ipywidgets whenever it is first imported; faceexp's bars are console bars.
    warnings.filterwarnings("ignore", message=r"IProgress not found")
    # Under-determined or constant explanations are counted where they matter (chapter 3's
    # uninformative maps, the R² of every Explanation), not printed as warnings mid-page.
    from faceexp.explain.explanation import ExplanationWarning

    warnings.filterwarnings("ignore", category=ExplanationWarning)
    with warnings.catch_warnings():
        # A network without ImageNet weights says so in every caption (its run records
        # it), not in a warning in whichever chapter happens to train it.
        warnings.filterwarnings("ignore", message=r".*starts from random initialisation",
                                category=UserWarning)
        # facenet-pytorch (pose labels) imports tqdm.auto, which warns in a kernel without
        # ipywidgets; faceexp shows no progress bars in the book.
        warnings.filterwarnings("ignore", message=r"IProgress not found")
        study = fs.prepare_study(models, artifacts_dir, recognisers=recognisers,
                                 data_root=data_root, pretrain_root=pretrain_root, seed=seed,
                                 device=device, max_epochs=max_epochs,
                                 batch_size=train_batch_size, progress=progress())
    print(f"faceexp {__version__}, profile {profile!r}: {study.dataset}; "
          f"recognisers {study.recognisers}; networks trained here {study.models}")
    return study


def _import_cpp_extension_quietly() -> None:
    # torch.utils.cpp_extension logs "No CUDA runtime is found" once, when it is imported
    # (torch.compile's CPU backend imports it) on a machine with a CUDA folder and no
    # CUDA runtime. Importing it here with its logger at ERROR keeps that line out of the
    # pages and leaves every other log record alone.
    logger = logging.getLogger("torch.utils.cpp_extension")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        import torch.utils.cpp_extension  # noqa: F401
    finally:
        logger.setLevel(previous)


# ----------------------------------------------------------------------------- captions


def caption(study: fs.Study, arch=None, extra: str = "") -> str:
    """A caption line saying what data and which networks produced a figure.

    ``arch`` is one name, a list of names, or None (the study's trained networks). Per
    trained network: epochs, training identities, the initial weights its run recorded,
    and the final validation accuracy; per pretrained recogniser: its training data, the
    weights' package and the frame it is explained in. ``extra`` is appended as one more
    sentence.
    """
    from faceexp.study import subjects as fsub

    names = study.models if arch is None else ([arch] if isinstance(arch, str) else list(arch))
    parts = []
    for a in names:
        if a in study.recognisers:
            source = study.subject(a).recogniser.source
            parts.append(f"{fsub.label(a)} (pretrained on {fsub.TRAINED_ON[a]}, weights from "
                         f"{source.get('package', '?')}; {study.subject(a).frame_name})")
            continue
        run = study.runs[a]
        m = run.metrics
        parts.append(f"{a}: {len(m)} epochs on {len(run.classes)} identities, "
                     f"{init_weights_text(getattr(run, 'init_weights', None))}, "
                     f"val. acc. {m['val_acc'].iloc[-1]:.2f}")
    text = f"Data: {study.dataset}. Models: " + "; ".join(parts)
    return text + (f". {extra}" if extra else "")


# ----------------------------------------------------------------------------- readings


def verification_table(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`faceexp.study.verification_analysis`'s table for a page: EER and its 95%
    interval in percent, pair counts, one row per recogniser and frame."""
    out = pd.DataFrame({
        "recogniser": table["recogniser"], "frame": table["frame"],
        "EER (%)": (100 * table["eer"]).round(2),
        "95% interval (%)": [f"{100 * lo:.2f}-{100 * hi:.2f}"
                             for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "genuine pairs": table["genuine"], "impostor pairs": table["impostor"],
        "identities": table["identities"], "photos without a face": table["failed"]})
    return out.set_index(["recogniser", "frame"])


def interval_table(intervals: pd.DataFrame) -> FormattedTable:
    """:func:`faceexp.verify.intervals.eer_interval`'s rows for a page: one row per network and
    pose pair, "EER [95% interval]" in percent and the pair counts (through
    :func:`~faceexp.report.tables.format_table`)."""
    keys = [c for c in ("system", "group") if c in intervals]
    keep = keys + [c for c in ("eer", "ci_low", "ci_high", "genuine", "impostor", "identities")
                   if c in intervals]
    return format_table(intervals[keep].reset_index(drop=True),
                        intervals={"EER [95% interval]": ("eer", "ci_low", "ci_high")},
                        percent=("eer", "ci_low", "ci_high"),
                        labels={"system": "subject", "group": "pose pair"})


def percent_table(table: pd.DataFrame, *, fractions=()) -> FormattedTable:
    """Columns ``X``, ``X low``, ``X high`` (fractions) as one column "X [95% interval]" in
    percent, through :func:`~faceexp.report.tables.format_table`; ``fractions``: other
    columns holding fractions, printed in percent too. Other columns as format_table prints
    them; the index is kept when it means something."""
    intervals, percent = {}, set(fractions)
    for column in table.columns:
        if f"{column} low" in table and f"{column} high" in table:
            intervals[f"{column} [95% interval]"] = (column, f"{column} low", f"{column} high")
            percent |= {column, f"{column} low", f"{column} high"}
    missing = sorted(set(fractions) - set(table.columns))
    if missing:
        raise ValueError(f"fractions names {missing}, which are not columns of the table "
                         f"({list(table.columns)})")
    return format_table(table, intervals=intervals, percent=sorted(percent, key=str))


def layer_eer_table(per_layer: pd.DataFrame, *, block_ends_only: bool = True) -> FormattedTable:
    """:attr:`faceexp.study.LayerAnalysis.per_layer` as a readable table: network, layer,
    "EER [95% interval]" in percent, genuine and impostor pair counts (block ends only by
    default)."""
    rows = per_layer[per_layer["block_end"]] if block_ends_only else per_layer
    table = rows.rename(columns={"ci_low": "EER low", "ci_high": "EER high", "eer": "EER"})
    keep = [c for c in ("network", "layer", "EER", "EER low", "EER high", "genuine", "impostor")
            if c in table.columns]
    return percent_table(table[keep].reset_index(drop=True))


def verification_sentence(table: pd.DataFrame) -> str:
    """One sentence with each recogniser's EER (canonical frame) and interval."""
    rows = table[table["frame"] == "canonical"] if "canonical" in set(table["frame"]) else table
    parts = [f"{r.recogniser} {100 * r.eer:.2f}% (95% interval {100 * r.ci_low:.2f}-{100 * r.ci_high:.2f}%)"
             for r in rows.itertuples()]
    if not parts:
        return ""
    first = rows.iloc[0]
    return (f"EER of the real recognisers on all {first['identities']} identities "
            f"({first['genuine']} genuine and {first['impostor']} impostor pairs), in the crop the book "
            f"explains them in: " + ", ".join(parts) + ".")


def removal_reading(result: fs.RemovalAnalysis, *, pose_pair: str = "overall",
                    tolerance: float = 0.005) -> str:
    """A Markdown paragraph saying what :func:`faceexp.study.removal_analysis` found, per network.

    For each network: the EER with nothing removed, the mean EER over the
    thresholds after removing the significant pixels and after removing as
    many random pixels / random superpixels, and the deletion AUCs
    (most-relevant-first against least-relevant-first). AUCs within
    ``tolerance`` of each other are called "no difference".
    """
    eer = result.eer[result.eer["pose_pair"] == pose_pair]
    sentences = []
    for network, rows in eer.groupby("network", sort=False):
        base = rows.loc[rows["method"] == "none", "eer"].mean()
        removed = rows[rows["method"] != "none"].groupby("method")["eer"].mean()
        sig = removed.get("significant", np.nan)
        text = (f"**{network}**: EER {100 * base:.1f}% with nothing removed; removing the "
                f"pixels above each threshold gives {100 * sig:.1f}% on average over the "
                "thresholds")
        baselines = [f"{100 * removed[method]:.1f}% for {label}" for method, label in
                     (("random-pixels", "as many random pixels"),
                      ("random-superpixels", "as many pixels in random superpixels"))
                     if method in removed]
        if baselines:
            text += ", against " + " and ".join(baselines)
        if network in result.auc.index:
            auc = result.auc.loc[network]
            morf, lerf = auc.get("most-relevant-first"), auc.get("least-relevant-first")
            if morf is not None and lerf is not None:
                if morf < lerf - tolerance:
                    verdict = "the similarity falls faster when the most relevant pixels go first"
                elif morf > lerf + tolerance:
                    verdict = ("the similarity falls *slower* when the most relevant pixels go "
                               "first: the heatmap ranks pixels worse than its reverse")
                else:
                    verdict = ("no difference between most- and least-relevant-first: the "
                               "heatmap does not rank pixels by their effect on the embedding")
                text += (f". Deletion AUC {morf:.3f} most-relevant-first vs {lerf:.3f} "
                         f"least-relevant-first: {verdict}")
        text += paired_removal_reading(result, network)
        sentences.append(text + ".")
    return "\n\n".join(sentences)


def paired_removal_reading(result: fs.RemovalAnalysis, network: str,
                           baseline: str = "random-superpixels") -> str:
    """A clause on the paired comparison of significant and random removal of one network
    (:attr:`faceexp.study.RemovalAnalysis.paired`): at how many thresholds the 95%
    interval of (random - significant) pair similarity lies above 0, below 0, or
    contains 0, and the largest mean difference. Empty when nothing was paired."""
    paired = getattr(result, "paired", None)
    if paired is None or paired.empty:
        return ""
    part = paired[(paired["network"] == network) & (paired["baseline"] == baseline)]
    part = part.dropna(subset=["difference"])
    if part.empty:
        return ". No explained image has a genuine partner, so no paired comparison"
    above = int((part["ci_low"] > 0).sum())
    below = int((part["ci_high"] < 0).sum())
    best = part.loc[part["difference"].abs().idxmax()]
    return (f". Paired per image ({int(part['n'].max())} images with a genuine partner, "
            f"{int(part['seeds'].max())} random seeds): removing the pixels above the threshold "
            f"lowers the similarity to a clean genuine partner more than as many pixels in "
            f"random superpixels at {above} of {len(part)} thresholds (95% interval above 0), "
            f"less at {below}, indistinguishably at {len(part) - above - below}; largest mean "
            f"difference {best['difference']:+.3f} at threshold {best['threshold']} "
            f"[{best['ci_low']:+.3f}, {best['ci_high']:+.3f}]")


def sensitivity_reading(summary: pd.DataFrame) -> str:
    """A Markdown paragraph from :func:`faceexp.evaluate.sensitivity.summarise_sensitivity`: which
    choices move the heatmaps beyond the seed floor, and which is most faithful."""
    floor = float(summary.loc["default", "PSNR to default (dB)"]) if "default" in summary.index \
        else float("nan")
    moving = [k for k, r in summary.iterrows()
              if str(r.get("against the seed floor", "")).startswith("moves")]
    undecided = [k for k, r in summary.iterrows()
                 if str(r.get("against the seed floor", "")).startswith("too few")]
    quiet = [k for k in summary.index if k != "default" and k not in moving and k not in undecided]
    best = summary["faithfulness"].idxmax()
    text = (f"Two seeds of the default explainer agree at {floor:.1f} dB (the seed floor). ")
    text += (("Choices that change the heatmaps more than a new seed does: " + ", ".join(moving) + ". ")
             if moving else "No choice is shown to change the heatmaps more than a new seed does. ")
    if quiet:
        text += "Within the floor (they matter no more than the luck of the draw): " + ", ".join(quiet) + ". "
    if undecided:
        text += "Too few images to tell for: " + ", ".join(undecided) + ". "
    text += (f"Most faithful on these images: {best} (AUC gap {summary.loc[best, 'faithfulness']:.3f}, "
             f"95% interval {summary.loc[best, 'faithfulness low']:.3f} to "
             f"{summary.loc[best, 'faithfulness high']:.3f}; the default: "
             f"{summary.loc['default', 'faithfulness']:.3f}).") if "default" in summary.index else ""
    return text


# ----------------------------------------------------------------------------- summary JSON


def write_summary(output_dir, name: str, *, summary: str, values: dict | None = None,
                  tables: list | None = None, figures: list | None = None,
                  verdicts: list | None = None, competence: dict | None = None) -> Path:
    """Write a chapter's summary for the book's results page (book/results.py reads it).

    Parameters
    ----------
    output_dir : path
        Folder of ``<name>.json`` and the figures' PNG files (created if missing).
    name : str
        The notebook's stem, e.g. ``"05_complementarity"``.
    summary : str
        Markdown: what the chapter found.
    values : dict, optional
        Label -> number or string, or ``{"ours": x, "paper": y}``.
    tables : list, optional
        ``(DataFrame, caption)`` pairs.
    figures : list, optional
        ``(figure, file name, caption)`` triples; each figure is saved as PNG, and the
        provenance caption the plot attached to it is written as ``source`` (the results
        page prints it under the figure).
    verdicts : list, optional
        :class:`faceexp.report.verdicts.Verdict` objects of the paper's claims this chapter
        tests; the results page stacks them into its claims table.
    competence : dict, optional
        subject -> ``{"eer", "ci_low", "ci_high", "n"}``
        (:func:`faceexp.study.competence.competence_numbers`): the results page keeps a
        subject whose interval fails the competence gate out of the claims.

    Returns
    -------
    Path
        The JSON file written. Non-finite numbers are written as null, floats rounded to
        4 decimals.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for fig, file, text in figures or []:
        fig.savefig(out / file, dpi=100, bbox_inches="tight")
        entries.append({"file": file, "caption": text, "source": figure_caption(fig)})
    doc = {"summary": summary,
           "values": {k: ({kk: _plain(vv) for kk, vv in v.items()} if isinstance(v, dict)
                          else _plain(v)) for k, v in (values or {}).items()},
           "tables": [dict(_plain_table(t), caption=c) for t, c in tables or [] if t is not None],
           "figures": entries}
    if competence:
        doc["competence"] = {str(k): {kk: _plain(vv) for kk, vv in v.items()}
                             for k, v in competence.items()}
    if verdicts:
        from faceexp.report.claims import as_records

        doc["verdicts"] = as_records(verdicts)
    path = out / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def _plain_table(table) -> dict:
    # a FormattedTable is stored as the reader sees it (its strings)
    if isinstance(table, FormattedTable):
        table = table.frame
    d = table.to_dict(orient="split")
    d["data"] = [[_plain(x) for x in row] for row in d["data"]]
    d["index"] = [str(i) for i in d["index"]]
    d["columns"] = [str(c) for c in d["columns"]]
    return d


def _plain(v):
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else round(float(v), 4)
    if isinstance(v, np.integer):
        return int(v)
    return v
