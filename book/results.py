"""The results page: ``book/executed/results_summary.md`` (included by ``book/results.md``),
written from the summaries the notebooks wrote and the settings they ran with; the verdict
matrix (``claims_summary.md``), the findings summary the introduction and the results page
open with (``findings_summary.md``), ``<profile>/claims.json`` and the downloadable data.

A notebook's last cell writes ``<output_dir>/<stem>.json`` (:func:`faceexp.report.write_summary`)::

    {
      "summary": "Markdown: a paragraph of what the chapter found.",
      "values": {"EER MB2, overall (%)": {"ours": 5.1, "paper": 3.75}, "images": 24},
      "tables": [{"caption": "...", "columns": [...], "index": [...], "data": [[...], ...],
                  "float_format": ".2f"}],
      "figures": [{"file": "fig6.png", "caption": "..."}]
    }

Every key is optional. ``tables`` entries are ``DataFrame.to_dict(orient="split")`` plus a
caption (``index`` optional, ``None`` cells print as a dash); ``figures`` files are
relative to ``output_dir``; a value is a number or string, or ``{"ours": ..., "paper": ...}``.
"""
from __future__ import annotations

import json
from pathlib import Path

from book.layout import EXECUTED_DIR, NOTEBOOK_DIR, PARAMS_DIR, RECORD, ROOT, display_path
from book.notebooks import notebook_paths, notebook_title, read_notebook
from book.parameters import notebook_parameters

SUMMARY_NAME = "results_summary.md"
#: The claims table, included at the top of the results page.
CLAIMS_NAME = "claims_summary.md"


def _cell(value, float_format: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        from faceexp.report.tables import format_number

        text = format_number(value)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list, rows: list[list], caption: str | None) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if caption:
        return [f"```{{table}} {caption}", *lines, "```"]
    return lines


def table_frame(table: dict):
    """A summary table (``DataFrame.to_dict(orient="split")``) back as a DataFrame."""
    import pandas as pd

    frame = pd.DataFrame(table["data"], columns=table["columns"])
    if table.get("index") is not None:
        frame.index = table["index"]
    return frame


def table_html(table: dict, caption: str | None = None) -> str:
    """A summary table as people read it (:func:`faceexp.report.tables.format_table`):
    labelled columns, significant digits, intervals joined, no meaningless index, HTML that
    scrolls inside the page."""
    from faceexp.report.tables import format_table

    return format_table(table_frame(table), caption=caption).to_html()


def _summary_markdown(data: dict, json_path: Path) -> list[str]:
    if not isinstance(data, dict):
        raise ValueError(f"{json_path}: the summary must be a JSON object with summary/values/tables/figures, "
                         f"got {type(data).__name__}")
    unknown = sorted(set(data) - {"summary", "values", "tables", "figures", "verdicts", "competence"})
    if unknown:
        raise ValueError(f"{json_path}: keys must be some of summary, values, tables, figures, verdicts, "
                         f"got {unknown}")
    lines = []
    if data.get("summary"):
        lines += [str(data["summary"]), ""]
    values = data.get("values") or {}
    if not isinstance(values, dict):
        raise ValueError(f"{json_path}: 'values' must map names to numbers, strings or "
                         f"{{'ours': ..., 'paper': ...}}, got {type(values).__name__}")
    if values:
        with_paper = any(isinstance(v, dict) for v in values.values())
        rows = []
        for name, value in values.items():
            if isinstance(value, dict):
                rows.append([_cell(name, ".4g"), _cell(value.get("ours"), ".4g"), _cell(value.get("paper"), ".4g")])
            else:
                rows.append([_cell(name, ".4g"), _cell(value, ".4g")] + (["–"] if with_paper else []))
        lines += _table(["Quantity", "Ours"] + (["Paper"] if with_paper else []), rows, None) + [""]
    for number, table in enumerate(data.get("tables") or [], start=1):
        if not isinstance(table, dict) or "columns" not in table or "data" not in table:
            raise ValueError(f"{json_path}: tables[{number - 1}] must have 'columns' and 'data' "
                             f"(DataFrame.to_dict(orient='split') plus a 'caption'), got {table!r:.200}")
        lines += [table_html(table, table.get("caption") or f"Table {number}"), ""]
    for number, figure in enumerate(data.get("figures") or []):
        if not isinstance(figure, dict) or "file" not in figure:
            raise ValueError(f"{json_path}: figures[{number}] must have a 'file' (relative to output_dir), "
                             f"got {figure!r:.200}")
        image = json_path.parent / figure["file"]
        if not image.is_file():
            raise FileNotFoundError(f"{json_path}: figures[{number}] file {image} does not exist")
        caption = " ".join(str(figure.get(k) or "").strip() for k in ("caption", "source")).strip()
        lines += [f"```{{figure}} /{image.resolve().relative_to(ROOT).as_posix()}", ":width: 100%", "",
                  caption, "```", ""]
    return lines


# Parameters the results page does not list: where the build put its files, and the
# profile's name, which the page's first sentence gives.
SETTINGS_NOT_SHOWN = ("profile", "output_dir", "artifacts_dir")


def setting_text(value) -> str:
    """A parameter value as the params files spell it: ``null``, ``true``, ``[a, b]``,
    ``{mobilenetv2: 6, resnet50: 12}``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(setting_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {setting_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def chapter_settings(profile: str, *, executed_root: Path = EXECUTED_DIR, notebook_dir: Path = NOTEBOOK_DIR,
                     params_dir: Path = PARAMS_DIR) -> dict:
    """``{stem: parameters}`` of every chapter, minus ``SETTINGS_NOT_SHOWN``.

    The parameters an executed copy recorded it ran with; for a chapter not yet executed,
    those :func:`book.parameters.notebook_parameters` would give it.
    """
    executed_root = Path(executed_root)
    output_dir = display_path(executed_root / profile / "outputs")
    settings = {}
    for source in notebook_paths(notebook_dir):
        executed = executed_root / profile / source.name
        record = read_notebook(executed).metadata.get(RECORD, {}) if executed.is_file() else {}
        if record.get("status") == "ok":
            parameters = record.get("parameters", {})
        else:
            parameters = notebook_parameters(source, profile, output_dir=output_dir, params_dir=params_dir)
        settings[source.stem] = {k: v for k, v in parameters.items() if k not in SETTINGS_NOT_SHOWN}
    return settings


def _settings_markdown(settings: dict) -> str:
    return ", ".join(f"`{k}={setting_text(v)}`" for k, v in settings.items())


def _claims() -> dict:
    # The paper's claims, for the matrix's rows and the units of their values.
    from faceexp.report.verdicts import CLAIM_E_SIMILARITY, CLAIMS

    # a variant row of a claim reads its own measure's unit and words ("claim|measure")
    return {**CLAIMS, "e|paired similarity": CLAIM_E_SIMILARITY}


def claims_html(records: list, claims: dict | None = None) -> str:
    """The verdict matrix of the results page (:func:`book.verdict_matrix.verdict_matrix_html`)."""
    from book.verdict_matrix import verdict_matrix_html

    return verdict_matrix_html(records, _claims() if claims is None else claims,
                               caption="The paper's claims (rows) on each subject (columns): our verdict, "
                                       "value [95% interval] and n; click a claim for the paper's words "
                                       "and the reasons")


def findings_text(records: list, claims: dict | None = None) -> str:
    """The findings summary the introduction and the results page open with
    (:func:`faceexp.report.summary.findings_markdown`)."""
    from faceexp.report.summary import findings_markdown

    claims = _claims() if claims is None else claims
    return findings_markdown(records, units={k: getattr(c, "unit", "") for k, c in claims.items()})


#: Where the downloadable data go (an html_static_path folder of _config.yml, served as
#: ``_static/``): ``<executed_root>/_static_data/data/``.
DOWNLOAD_DIR = "_static_data"
#: The file of the findings summary the introduction and the results page include.
FINDINGS_NAME = "findings_summary.md"


def download_links(stem: str, files: list[str], prefix: str) -> str:
    """``Data: <a>JSON</a> · <a>CSV</a> ...`` for one chapter; ``prefix`` is the way from
    the page to the book's root (``"../"`` on book/results.html)."""
    if not files:
        return ""
    links = []
    for name in files:
        kind = "JSON" if name.endswith(".json") else ("CSV, table " + name.rsplit("table", 1)[-1].split(".")[0])
        links.append(f'<a href="{prefix}_static/data/{name}" download>{kind}</a>')
    return '<p class="faceexp-downloads">Data of this chapter: ' + " · ".join(links) + "</p>"


def write_downloads(profile: str, *, executed_root: Path = EXECUTED_DIR, notebook_dir: Path = NOTEBOOK_DIR,
                    records: list | None = None) -> dict:
    """Copy each chapter's summary JSON and write its tables as CSV into
    ``<executed_root>/_static_data/data/`` (published with the book as ``_static/data/``),
    with ``claims.json``; returns ``{stem: [file names]}``."""
    import shutil

    executed_root = Path(executed_root)
    target = executed_root / DOWNLOAD_DIR / "data"
    if target.is_dir():
        shutil.rmtree(target)
    target.mkdir(parents=True, exist_ok=True)
    outputs = executed_root / profile / "outputs"
    files: dict = {}
    for source in notebook_paths(notebook_dir):
        json_path = outputs / f"{source.stem}.json"
        if not json_path.is_file():
            continue
        shutil.copyfile(json_path, target / json_path.name)
        names = [json_path.name]
        data = json.loads(json_path.read_text(encoding="utf-8"))
        for number, table in enumerate(data.get("tables") or [], start=1):
            if isinstance(table, dict) and "columns" in table and "data" in table:
                name = f"{source.stem}_table{number}.csv"
                frame = table_frame(table)
                frame.to_csv(target / name, index=table.get("index") is not None)
                names.append(name)
        files[source.stem] = names
    if records is not None:
        claims = executed_root / profile / "claims.json"
        if claims.is_file():
            shutil.copyfile(claims, target / "claims.json")
    return files


def gated_records(records: list, competence: dict) -> list:
    """``records`` with the competence gate applied (:func:`faceexp.report.competence.gate_records`):
    a subject whose verification EER interval (``competence``: subject -> eer, ci_low,
    ci_high, n, as chapter 2 records it) fails the gate gets "not competent" and the
    reason with its numbers instead of a verdict."""
    if not competence:
        return list(records)
    from faceexp.report.competence import competence_gates, gate_records

    return gate_records(list(records), competence_gates(competence))


#: The file chapter 10 writes into its output_dir, published beside claims.json.
RECOMMENDATION_NAME = "recommendation.json"


def copy_recommendation(profile: str, *, executed_root: Path = EXECUTED_DIR) -> Path | None:
    """Copy chapter 10's ``outputs/recommendation.json`` to ``<executed_root>/<profile>/`` and
    into the downloads; None when chapter 10 has not written it."""
    import shutil

    executed_root = Path(executed_root)
    source = executed_root / profile / "outputs" / RECOMMENDATION_NAME
    if not source.is_file():
        return None
    target = executed_root / profile / RECOMMENDATION_NAME
    shutil.copyfile(source, target)
    downloads = executed_root / DOWNLOAD_DIR / "data"
    downloads.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, downloads / RECOMMENDATION_NAME)
    return target


def write_claims_json(profile: str, records: list, *, executed_root: Path = EXECUTED_DIR) -> Path:
    """``<executed_root>/<profile>/claims.json``: one record per (claim, subject) in the schema
    of :func:`faceexp.report.summary.normalise_record`, then the record's other keys."""
    from faceexp.report.summary import claim_records

    path = Path(executed_root) / profile / "claims.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_if_changed(path, json.dumps(claim_records(records, keep_extra=True), indent=2))
    return path


def write_results_summary(profile: str, *, executed_root: Path = EXECUTED_DIR,
                          notebook_dir: Path = NOTEBOOK_DIR, params_dir: Path = PARAMS_DIR) -> Path:
    """Write ``<executed_root>/results_summary.md`` from the profile's summary JSON files.

    The first sentence lists the settings every chapter ran with; each chapter's section
    lists the rest of its settings (see :func:`chapter_settings`), then its summary and links
    to its data. Also writes the verdict matrix (``claims_summary.md``), the findings
    summary (``findings_summary.md``), ``<profile>/claims.json`` and the downloads
    (:func:`write_downloads`). A file is rewritten only when its text changes (Sphinx then
    re-renders only what it must).
    """
    executed_root = Path(executed_root)
    outputs = executed_root / profile / "outputs"
    target = executed_root / SUMMARY_NAME
    per_chapter = chapter_settings(profile, executed_root=executed_root, notebook_dir=notebook_dir,
                                   params_dir=params_dir)
    first, *rest = per_chapter.values()
    shared = {k: v for k, v in first.items() if all(k in s and s[k] == v for s in rest)}
    generated = f"<!-- Generated by book/build.py from {display_path(outputs)}/*.json: do not edit. -->"
    lines = [generated, "",
             f"These results come from the **{profile}** profile (`params/{profile}/`"
             + (f": {_settings_markdown(shared)}" if shared else "") + ").", ""]
    records, competence = [], {}
    for source in notebook_paths(notebook_dir):
        json_path = outputs / f"{source.stem}.json"
        if json_path.is_file():
            data = json.loads(json_path.read_text(encoding="utf-8"))
            records += data.get("verdicts") or []
            competence.update(data.get("competence") or {})
    records = gated_records(records, competence)
    write_claims_json(profile, records, executed_root=executed_root)
    copy_recommendation(profile, executed_root=executed_root)
    downloads = write_downloads(profile, executed_root=executed_root, notebook_dir=notebook_dir,
                                records=records)
    claims = [generated, ""]
    if records:
        claims += [f"Each claim of the paper measured on the **{profile}** profile's data with a 95% "
                   "bootstrap interval; the verdict is computed from the interval by `faceexp.report.verdicts` "
                   "(each chapter's last sections give the quantity and the rule). "
                   '<a href="../_static/data/claims.json" download>All verdicts as JSON</a>.', "",
                   claims_html(records), ""]
    else:
        claims += ["*No chapter has recorded a verdict yet.*", ""]
    _write_if_changed(executed_root / CLAIMS_NAME, "\n".join(claims))
    _write_if_changed(executed_root / FINDINGS_NAME, "\n".join([generated, "", findings_text(records)]))
    for number, source in enumerate(notebook_paths(notebook_dir), start=1):
        executed = executed_root / profile / source.name
        title = notebook_title(read_notebook(executed if executed.is_file() else source), source.stem)
        docname = "/" + (executed_root / source.stem).resolve().relative_to(ROOT).as_posix()
        own = {k: v for k, v in per_chapter[source.stem].items() if k not in shared}
        lines += [f"### {number}. {title}", "", f"From {{doc}}`chapter {number} <{docname}>`"
                  + (f", with {_settings_markdown(own)}" if own else "") + ".", ""]
        json_path = outputs / f"{source.stem}.json"
        if json_path.is_file():
            data = json.loads(json_path.read_text(encoding="utf-8"))
            lines += _summary_markdown(data, json_path)
            links = download_links(source.stem, downloads.get(source.stem, []), "../")
            if links:
                lines += [links, ""]
        else:
            lines += [f"*No summary: the notebook wrote no `{source.stem}.json` into `output_dir`.*", ""]
    _write_if_changed(target, "\n".join(lines))
    return target


def _write_if_changed(target: Path, text: str) -> None:
    text = text.rstrip() + "\n"
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
