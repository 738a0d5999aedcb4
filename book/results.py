"""The results page: ``book/executed/results_summary.md`` (included by ``book/results.md``),
written from the summaries the notebooks wrote and the settings they ran with.

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
        text = format(value, float_format)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list, rows: list[list], caption: str | None) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if caption:
        return [f"```{{table}} {caption}", *lines, "```"]
    return lines


def _summary_markdown(data: dict, json_path: Path) -> list[str]:
    if not isinstance(data, dict):
        raise ValueError(f"{json_path}: the summary must be a JSON object with summary/values/tables/figures, "
                         f"got {type(data).__name__}")
    unknown = sorted(set(data) - {"summary", "values", "tables", "figures", "verdicts"})
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
        fmt = table.get("float_format", ".4g")
        index = table.get("index")
        header = ([""] if index is not None else []) + [_cell(c, fmt) for c in table["columns"]]
        rows = [([_cell(index[i], fmt)] if index is not None else []) + [_cell(v, fmt) for v in row]
                for i, row in enumerate(table["data"])]
        lines += _table(header, rows, table.get("caption") or f"Table {number}") + [""]
    for number, figure in enumerate(data.get("figures") or []):
        if not isinstance(figure, dict) or "file" not in figure:
            raise ValueError(f"{json_path}: figures[{number}] must have a 'file' (relative to output_dir), "
                             f"got {figure!r:.200}")
        image = json_path.parent / figure["file"]
        if not image.is_file():
            raise FileNotFoundError(f"{json_path}: figures[{number}] file {image} does not exist")
        lines += [f"```{{figure}} /{image.resolve().relative_to(ROOT).as_posix()}", ":width: 60%", "", str(figure.get("caption", "")), "```", ""]
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


def _verdict_cell(record: dict) -> str:
    ours = record.get("ours")
    if ours is None:
        return f"{record.get('outcome')}: {record.get('reason', '')}"
    claim = record.get("claim")
    unit = _CLAIM_UNITS.get(claim, "")
    scale = 100 if unit == "%" else 1
    return (f"{scale * ours:.3g}{unit} [{scale * record['low']:.3g}, {scale * record['high']:.3g}]: "
            f"**{record.get('outcome')}**")


_CLAIM_UNITS: dict = {}


def claims_markdown(records: list) -> list[str]:
    """The claims table of the results page: one row per claim of the paper (a)-(e), the
    paper's evidence, and per network our value with its 95% interval and the verdict
    (records as :func:`faceexp.report.claims.as_records` writes them)."""
    from faceexp.report.verdicts import CLAIMS

    _CLAIM_UNITS.update({k: c.unit for k, c in CLAIMS.items()})
    networks = list(dict.fromkeys(r.get("recogniser") or "-" for r in records))
    header = ["claim", "the paper"] + networks
    rows = []
    for cid, claim in CLAIMS.items():
        mine = {r.get("recogniser") or "-": r for r in records if r.get("claim") == cid}
        cells = [_verdict_cell(mine[n]) if n in mine else "not tested" for n in networks]
        rows.append([f"({cid}) {claim.statement}", claim.paper, *cells])
    rows = [[_cell(x, "") for x in row] for row in rows]
    return _table(header, rows, "The paper's claims, our values (95% interval) and verdicts")


def write_results_summary(profile: str, *, executed_root: Path = EXECUTED_DIR,
                          notebook_dir: Path = NOTEBOOK_DIR, params_dir: Path = PARAMS_DIR) -> Path:
    """Write ``<executed_root>/results_summary.md`` from the profile's summary JSON files.

    The first sentence lists the settings every chapter ran with; each chapter's section
    lists the rest of its settings (see :func:`chapter_settings`), then its summary. The
    file is rewritten only when its text changes (Sphinx then re-renders only what it must).
    """
    executed_root = Path(executed_root)
    outputs = executed_root / profile / "outputs"
    target = executed_root / SUMMARY_NAME
    per_chapter = chapter_settings(profile, executed_root=executed_root, notebook_dir=notebook_dir,
                                   params_dir=params_dir)
    first, *rest = per_chapter.values()
    shared = {k: v for k, v in first.items() if all(k in s and s[k] == v for s in rest)}
    lines = [f"<!-- Generated by book/build.py from {display_path(outputs)}/*.json: do not edit. -->", "",
             f"These results come from the **{profile}** profile (`params/{profile}/`"
             + (f": {_settings_markdown(shared)}" if shared else "") + ").", ""]
    records = []
    for source in notebook_paths(notebook_dir):
        json_path = outputs / f"{source.stem}.json"
        if json_path.is_file():
            records += json.loads(json_path.read_text(encoding="utf-8")).get("verdicts") or []
    claims = [f"<!-- Generated by book/build.py from {display_path(outputs)}/*.json: do not edit. -->", ""]
    if records:
        claims += [f"Each claim of the paper measured on the **{profile}** profile's data with a 95% "
                   "bootstrap interval; the verdict is computed from the interval by `faceexp.report.verdicts` "
                   "(each chapter's last sections give the quantity and the rule).", "",
                   *claims_markdown(records), ""]
    else:
        claims += ["*No chapter has recorded a verdict yet.*", ""]
    _write_if_changed(executed_root / CLAIMS_NAME, "\n".join(claims))
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
        else:
            lines += [f"*No summary: the notebook wrote no `{source.stem}.json` into `output_dir`.*", ""]
    _write_if_changed(target, "\n".join(lines))
    return target


def _write_if_changed(target: Path, text: str) -> None:
    text = text.rstrip() + "\n"
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
