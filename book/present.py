"""How a chapter is shown in the book: the published copy of an executed notebook with no
code a reader does not need.

The notebooks in ``notebooks/`` and their executed copies keep every cell as written (they
stay editable in JupyterLab); only the copy ``_toc.yml`` names is changed, at publish time:

* the cell tagged ``parameters`` (the defaults) and papermill's cell tagged
  ``injected-parameters`` are removed (tag ``remove-cell``); in their place one Markdown
  cell holds a dropdown listing the values that ran, and the links to the chapter's data;
* every other code cell is collapsed (tag ``hide-input``): its output shows, its code is a
  click away; a cell tagged ``remove-input``, ``remove-cell``, ``hide-cell`` or
  ``hide-output`` keeps what it says.
"""
from __future__ import annotations

import copy
import html

from book.notebooks import cell_tags

#: Tags of the cells a reader never sees.
PARAMETER_TAGS = ("parameters", "injected-parameters")
#: Tags that already say how a code cell shows.
SHOW_TAGS = ("remove-input", "remove-cell", "hide-cell", "hide-input", "hide-output", "remove-output")


def _value_text(value) -> str:
    from book.results import setting_text

    return setting_text(value)


def parameters_dropdown(parameters: dict, *, profile: str | None = None, downloads: str = "") -> str:
    """One Markdown cell's source: a ``<details>`` dropdown of the values a chapter ran with
    (one row per parameter, in order), then ``downloads`` (HTML links)."""
    rows = "".join(f"<tr><td><code>{html.escape(str(k))}</code></td><td><code>{html.escape(_value_text(v))}</code>"
                   "</td></tr>" for k, v in parameters.items())
    where = f" (profile <strong>{html.escape(profile)}</strong>)" if profile else ""
    block = (f'<details class="faceexp-parameters"><summary>Parameters this chapter ran with{where}</summary>'
             f'<div class="faceexp-table-wrap"><table class="faceexp-table"><thead><tr><th>parameter</th>'
             f"<th>value</th></tr></thead><tbody>{rows}</tbody></table></div></details>")
    return block + ("\n" + downloads if downloads else "")


def _dropdown_cell(parameters: dict, profile: str | None, downloads: str):
    from nbformat.v4 import new_markdown_cell

    cell = new_markdown_cell(parameters_dropdown(parameters, profile=profile, downloads=downloads),
                             metadata={"tags": ["faceexp-parameters"]})
    cell["id"] = "faceexp-parameters"  # fixed: publishing twice writes the same bytes
    return cell


def present_notebook(nb, *, parameters: dict | None = None, profile: str | None = None, downloads: str = ""):
    """A copy of the executed notebook ``nb`` as the book shows it (see the module docstring).

    ``parameters``: the values that ran (default: the run record's); ``downloads``: HTML
    links to the chapter's data, put under the dropdown.
    """
    out = copy.deepcopy(nb)
    if parameters is None:
        from book.layout import RECORD

        parameters = out.metadata.get(RECORD, {}).get("parameters", {})
    cells, placed = [], False
    for cell in out.cells:
        tags = cell_tags(cell)
        if cell.cell_type == "code" and any(t in tags for t in PARAMETER_TAGS):
            cell.metadata["tags"] = [t for t in tags if t != "hide-cell"] + ["remove-cell"]
            cells.append(cell)
            if not placed:
                cells.append(_dropdown_cell(parameters, profile, downloads))
                placed = True
            continue
        if cell.cell_type == "code" and not any(t in tags for t in SHOW_TAGS):
            cell.metadata["tags"] = tags + ["hide-input"]
        cells.append(cell)
    if not placed and (parameters or downloads):
        at = 1 if cells and cells[0].cell_type == "markdown" else 0
        cells.insert(at, _dropdown_cell(parameters, profile, downloads))
    out.cells = cells
    return out
