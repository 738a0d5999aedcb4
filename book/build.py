#!/usr/bin/env python
"""Build the faceexp book offline: papermill runs the notebooks, jupyter-book renders them.

Usage (from anywhere; paths are relative to the repository root)::

    python book/build.py [--profile demo] [--only NAME ...] [--param KEY=VALUE ...] [--force]
    python book/build.py --check [--skip-build]     # audit the built HTML, screenshot two pages
    python book/build.py --strip                    # clear outputs from notebooks/*.ipynb

Steps of a build:

1. Each ``notebooks/NN_*.ipynb`` is executed by papermill (kernel ``faceexp``, working
   directory = repository root) into ``book/executed/<profile>/<stem>.ipynb``, with the
   parameters merged from ``params/<profile>/common.yaml`` (only the keys the notebook
   declares in its cell tagged ``parameters``), ``params/<profile>/<stem>.yaml`` (every key
   must be declared), ``--param`` options, and the injected ``profile`` and ``output_dir``
   (``book/executed/<profile>/outputs``). A notebook is skipped when its executed copy is up
   to date: the key stored in the copy's metadata (``metadata.faceexp_build.key``) hashes the
   notebook's cells, its parameters, every ``faceexp/**/*.py`` file and the keys of the
   notebooks it depends on. A notebook that uses what an earlier one writes (the trained
   checkpoints) says so in its metadata, ``"faceexp": {"depends_on": ["02_training"]}``,
   and re-runs whenever that one has.
2. The profile's executed notebooks are published to ``book/executed/<stem>.ipynb`` (the
   files ``_toc.yml`` names; copied only when they differ, so Sphinx re-renders only what
   changed), and ``book/executed/results_summary.md`` is generated from the summaries the
   notebooks wrote (see below); ``book/results.md`` includes it.
3. MathJax 3 is fetched once with ``npm pack`` into ``.cache/mathjax/`` and unpacked into
   ``book/_static_mathjax/mathjax/`` (an ``html_static_path`` folder, served as
   ``_static/mathjax/``), so the built pages load no script from the web.
4. ``jupyter-book build . -W -n`` renders ``_build/html`` with execution off; any Sphinx
   warning fails the build.

Summaries for the results page: a notebook's last cell writes ``<output_dir>/<stem>.json``::

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

import argparse
import ast
import contextlib
import hashlib
import html.parser
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence
from urllib.parse import unquote, urlparse

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
PARAMS_DIR = ROOT / "params"
PACKAGE_DIR = ROOT / "faceexp"
EXECUTED_DIR = ROOT / "book" / "executed"
SUMMARY_NAME = "results_summary.md"
KERNEL = "faceexp"
# Metadata key of the run record in an executed copy (never in the notebooks in git).
RECORD = "faceexp_build"
# Bump to re-execute every notebook after a change in how they are run.
CACHE_VERSION = 1

MATHJAX_VERSION = "3.2.2"
MATHJAX_SHA1 = "c754d7b46a679d7f3fa03543d6b8bf124ddf9f6b"  # npm's shasum of mathjax-3.2.2.tgz
MATHJAX_CACHE = ROOT / ".cache" / "mathjax"
# An html_static_path folder NOT named _static: jupyter-book adds every .js file in a
# `_static` folder as a <script>, so MathJax would load twice.
MATHJAX_STATIC = ROOT / "book" / "_static_mathjax"
MATHJAX_SCRIPT = "mathjax/es5/tex-mml-chtml.js"  # = mathjax_path in _config.yml
MATHJAX_MEMBERS = (
    "LICENSE",
    "es5/tex-mml-chtml.js",
    "es5/output/chtml/fonts/woff-v2/",
    "es5/input/tex/extensions/",  # TeX packages MathJax autoloads (\boldsymbol, \color, ...)
    "es5/input/mml/extensions/",
)

SCREENSHOT_PAGES = ("book/intro", "book/results")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SCALARS = (str, int, float, bool, type(None))


class NotebookError(RuntimeError):
    """A notebook failed to execute; the message names it, the cell and the error."""


class BookError(RuntimeError):
    """jupyter-book, MathJax or Chromium failed; the message says what to do."""


@dataclass
class Execution:
    """What happened to one notebook.

    Attributes
    ----------
    name : str
        The notebook's stem, e.g. ``"03_gap_vs_softmax"``.
    path : Path
        The executed copy.
    status : str
        ``"executed"`` or ``"up to date"``.
    seconds : float
        Execution time (of the run that produced the copy, when it was up to date).
    """

    name: str
    path: Path
    status: str
    seconds: float


# --------------------------------------------------------------------------- notebooks


def notebook_paths(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The book's notebooks, ``NN_name.ipynb``, in chapter order."""
    paths = sorted(p for p in Path(notebook_dir).glob("[0-9][0-9]_*.ipynb") if p.is_file())
    if not paths:
        raise FileNotFoundError(f"no NN_*.ipynb notebooks in {notebook_dir}")
    return paths


def select_notebooks(paths: Sequence[Path], names: Iterable[str] | None) -> list[Path]:
    """The notebooks ``names`` pick, by stem (``03_gap_vs_softmax``), number (``03``, ``3``)
    or name without the number (``gap_vs_softmax``); all of them when ``names`` is None."""
    if not names:
        return list(paths)
    chosen = []
    for name in names:
        key = Path(name).stem
        hits = [p for p in paths
                if key in (p.stem, p.stem[:2], p.stem[3:]) or (key.isdigit() and int(key) == int(p.stem[:2]))]
        if len(hits) != 1:
            raise ValueError(f"--only {name!r} matches {len(hits)} notebooks; "
                             f"use one of {', '.join(p.stem for p in paths)}")
        if hits[0] not in chosen:
            chosen.append(hits[0])
    return [p for p in paths if p in chosen]


def read_notebook(path: Path):
    return nbformat.read(str(path), as_version=4)


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def parameters_cell_problems(nb) -> list[str]:
    """What is wrong with a notebook's parameters cell (empty list: nothing).

    The first code cell must be tagged ``parameters`` and hold only assignments of one name
    to a literal scalar (string, number, bool) or None, so papermill can override each one.
    """
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or "parameters" not in _tags(code[0]):
        return ["the first code cell is not tagged 'parameters'"]
    try:
        tree = ast.parse(code[0].source)
    except SyntaxError as exc:
        return [f"the parameters cell does not parse: {exc}"]
    problems = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target.id, node.value
        else:
            problems.append(f"line {node.lineno}: only `name = literal` assignments belong in the parameters cell")
            continue
        if isinstance(value, ast.UnaryOp) and isinstance(value.op, (ast.USub, ast.UAdd)):
            value = value.operand
        if not (isinstance(value, ast.Constant) and isinstance(value.value, SCALARS)):
            problems.append(f"line {node.lineno}: {target} is not a string, number, bool or None")
    if not tree.body:
        problems.append("the parameters cell assigns nothing")
    return problems


def declared_parameters(nb) -> list[str]:
    """Names assigned in the notebook's cell tagged ``parameters``, in order."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in _tags(cell):
            names = []
            for node in ast.parse(cell.source).body:
                targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
                names += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in names]
            return names
    return []


def notebook_title(nb, default: str) -> str:
    """The text of the first ``# `` heading of a notebook."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return default


def hygiene_problems(nb) -> list[str]:
    """Why a notebook is not fit for git (outputs, execution counts, wrong kernel)."""
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {index} has outputs")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {index} has an execution count")
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != KERNEL:
        problems.append(f"kernelspec is {kernel!r}, not {KERNEL!r}")
    return problems


_VOLATILE_CELL_METADATA = ("execution", "papermill", "ExecuteTime", "collapsed", "scrolled")


def strip_notebook(path: Path) -> bool:
    """Clear outputs, execution counts and run metadata from a notebook in place.

    Returns True when the file changed.
    """
    path = Path(path)
    nb = read_notebook(path)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in _VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
    for key in ("papermill", "widgets", RECORD):
        nb.metadata.pop(key, None)
    nb.metadata["language_info"] = {"name": "python"}
    text = nbformat.writes(nb) + "\n"
    if text == path.read_text(encoding="utf-8"):
        return False
    path.write_text(text, encoding="utf-8")
    return True


def error_outputs(nb) -> list[str]:
    """``"cell N: Ename: evalue"`` for each error output of a notebook."""
    return [f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
            for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for out in cell.get("outputs", []) if out.get("output_type") == "error"]


# --------------------------------------------------------------------------- parameters


def read_parameter_file(path: Path) -> dict:
    """A params YAML file as a dict of scalars ({} for a missing or empty file)."""
    path = Path(path)
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of parameter names to values, got {type(data).__name__}")
    for key, value in data.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"{path}: parameter name {key!r} is not a Python identifier")
        if not isinstance(value, SCALARS):
            raise ValueError(f"{path}: {key} must be a string, number, bool or null "
                             f"(notebook parameters are scalars), got {type(value).__name__}")
    return data


def profiles(params_dir: Path = PARAMS_DIR) -> list[str]:
    return sorted(p.name for p in Path(params_dir).iterdir() if p.is_dir())


def notebook_parameters(source: Path, profile: str, *, output_dir: str, overrides: dict | None = None,
                        params_dir: Path = PARAMS_DIR) -> dict:
    """The parameters papermill injects into one notebook.

    ``params/<profile>/common.yaml`` and ``overrides`` contribute the keys the notebook
    declares; ``params/<profile>/<stem>.yaml`` must only hold declared keys. ``profile`` and
    ``output_dir`` are added when declared.
    """
    folder = Path(params_dir) / profile
    if not folder.is_dir():
        raise ValueError(f"profile {profile!r} has no folder {folder}; "
                         f"use one of {', '.join(profiles(params_dir))}")
    declared = declared_parameters(read_notebook(source))
    stem = Path(source).stem
    own_file = folder / f"{stem}.yaml"
    own = read_parameter_file(own_file)
    unknown = sorted(set(own) - set(declared))
    if unknown:
        raise ValueError(f"{own_file}: {', '.join(unknown)} not declared in the parameters cell of "
                         f"{Path(source).name}; it declares {', '.join(declared)}")
    merged = {}
    for layer in (read_parameter_file(folder / "common.yaml"), own, overrides or {},
                  {"profile": profile, "output_dir": output_dir}):
        merged.update({k: v for k, v in layer.items() if k in declared})
    return merged


def parse_overrides(items: Iterable[str]) -> dict:
    """``["data_root=/data/vggface2", "n_samples=100"]`` -> dict (values read as YAML)."""
    overrides = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--param {item!r}: expected KEY=VALUE, e.g. --param n_samples=100")
        value = yaml.safe_load(text) if text else None
        if not isinstance(value, SCALARS):
            raise ValueError(f"--param {item!r}: the value must be a scalar, got {type(value).__name__}")
        overrides[key] = value
    return overrides


# --------------------------------------------------------------------------- execution


def _sha256(*chunks: bytes) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(hashlib.sha256(chunk).digest())
    return digest.hexdigest()


def package_digest(package_dir: Path = PACKAGE_DIR) -> str:
    """Hash of every ``*.py`` file of the faceexp package (paths and contents)."""
    files = sorted(p for p in Path(package_dir).rglob("*.py") if "__pycache__" not in p.parts)
    return _sha256(*(part for p in files
                     for part in (p.relative_to(package_dir).as_posix().encode(), p.read_bytes())))


def execution_key(nb, parameters: dict, *, kernel: str = KERNEL, package: str | None = None,
                  upstream: dict | None = None) -> str:
    """The key that says whether an executed copy is up to date.

    It hashes the cells' types, sources and tags (not outputs, so saving the notebook in
    JupyterLab changes nothing), the parameters, the kernel, the package sources, and
    ``upstream``: the recorded keys of the notebooks this one depends on.
    """
    cells = [[c.cell_type, c.source, sorted(_tags(c))] for c in nb.cells]
    payload = json.dumps({"version": CACHE_VERSION, "cells": cells, "parameters": parameters,
                          "kernel": kernel, "upstream": upstream or {}}, sort_keys=True)
    return _sha256(payload.encode(), (package or package_digest()).encode())


def _display_path(path: Path) -> str:
    path = Path(path).resolve()
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


@contextlib.contextmanager
def _kernel_environment():
    # A kernel that inherits MPLBACKEND=Agg embeds no figures (see shared/FACTS.md): the
    # inline backend must stay the default, whatever the caller (or a test) exported.
    saved = os.environ.pop("MPLBACKEND", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["MPLBACKEND"] = saved


def _engine_options() -> dict:
    # Let jupyter_client give the kernel CurveZMQ keys when it can: the channel is then
    # encrypted and ipykernel does not warn about plain TCP at every start.
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    if zmq.has("curve") and KernelManager.class_traits().get("transport_encryption") is not None:
        return {"config": Config({"KernelManager": {"transport_encryption": "auto"}})}
    return {}


def check_kernel(kernel: str = KERNEL) -> None:
    """Raise BookError when the Jupyter kernel ``kernel`` is not installed."""
    from jupyter_client.kernelspec import KernelSpecManager

    if kernel not in KernelSpecManager().find_kernel_specs():
        raise BookError(f"the Jupyter kernel {kernel!r} is not installed; run "
                        f"`{sys.executable} -m ipykernel install --sys-prefix --name {kernel}`")


def dependencies(nb, path: Path, stems: Sequence[str]) -> list[str]:
    """The earlier notebooks ``nb`` depends on (``metadata.faceexp.depends_on``)."""
    depends_on = nb.metadata.get("faceexp", {}).get("depends_on", [])
    stem = Path(path).stem
    for name in depends_on:
        if name not in stems or list(stems).index(name) >= list(stems).index(stem):
            raise ValueError(f"{Path(path).name}: metadata faceexp.depends_on names {name!r}; "
                             f"use the stems of earlier notebooks: {', '.join(stems[:list(stems).index(stem)])}")
    return list(depends_on)


def recorded_run(executed: Path) -> str | None:
    """Which run produced an executed copy: ``"<key>@<finish time>"`` (None: missing or failed).

    Downstream notebooks hash it, so they re-run whenever this one re-runs (--force included).
    """
    try:
        record = read_notebook(executed).metadata.get(RECORD, {})
    except Exception:
        return None
    return f"{record.get('key')}@{record.get('finished')}" if record.get("status") == "ok" else None


def is_up_to_date(executed: Path, key: str) -> tuple[bool, float]:
    """Whether ``executed`` was produced with ``key`` and succeeded, and how long it took."""
    if not Path(executed).is_file():
        return False, 0.0
    try:
        record = read_notebook(executed).metadata.get(RECORD, {})
    except Exception:  # a half-written copy from an interrupted run is simply stale
        return False, 0.0
    summary = record.get("summary")
    fresh = (record.get("key") == key and record.get("status") == "ok"
             and (summary is None or (ROOT / summary).is_file()))
    return fresh, float(record.get("seconds", 0.0))


def execute_notebook(source: Path, executed: Path, parameters: dict, *, force: bool = False,
                     kernel: str = KERNEL, cwd: Path = ROOT, package: str | None = None,
                     upstream: dict | None = None) -> Execution:
    """Run one notebook with papermill into ``executed`` unless that copy is up to date.

    Parameters
    ----------
    source : Path
        The notebook in ``notebooks/``.
    executed : Path
        Where the executed copy goes; its metadata ``faceexp`` records the key.
    parameters : dict
        Injected by papermill after the cell tagged ``parameters``.
    force : bool
        Execute even when the copy is up to date.
    upstream : dict, optional
        ``{stem: recorded_run(...)}`` of the notebooks this one depends on.

    Raises
    ------
    NotebookError
        When a cell raises; papermill has still written the copy with the traceback.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source, executed = Path(source), Path(executed)
    nb = read_notebook(source)
    key = execution_key(nb, parameters, kernel=kernel, package=package, upstream=upstream)
    fresh, seconds = is_up_to_date(executed, key)
    if fresh and not force:
        return Execution(source.stem, executed, "up to date", seconds)

    executed.parent.mkdir(parents=True, exist_ok=True)
    summary = None
    if "output_dir" in parameters:
        summary = Path(cwd) / parameters["output_dir"] / f"{source.stem}.json"
        summary.unlink(missing_ok=True)  # a stale summary must not outlive a failed run
    start = time.perf_counter()
    try:
        with _kernel_environment():
            papermill.execute_notebook(str(source), str(executed), parameters=parameters,
                                       kernel_name=kernel, cwd=str(cwd), log_output=False,
                                       progress_bar=sys.stderr.isatty(), **_engine_options())
    except PapermillExecutionError as exc:
        raise NotebookError(
            f"notebook {source.name} failed in cell {exc.cell_index} (In [{exc.exec_count}]): "
            f"{exc.ename}: {exc.evalue}\n  the executed copy with the traceback: {_display_path(executed)}"
        ) from exc
    except Exception as exc:
        raise NotebookError(f"notebook {source.name} could not be executed: "
                            f"{type(exc).__name__}: {exc}") from exc
    seconds = time.perf_counter() - start

    out = read_notebook(executed)
    for cell in out.cells:  # the defaults are shown folded; the injected cell shows the values used
        if cell.cell_type == "code" and "parameters" in _tags(cell):
            cell.metadata["tags"] = _tags(cell) + ["hide-cell"]
            break
    out.metadata[RECORD] = {
        "key": key, "status": "ok", "seconds": round(seconds, 2), "parameters": parameters,
        "upstream": upstream or {}, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "summary": _display_path(summary) if summary is not None and summary.is_file() else None,
    }
    nbformat.write(out, str(executed))
    return Execution(source.stem, executed, "executed", seconds)


def execute_profile(profile: str, *, only: Iterable[str] | None = None, overrides: dict | None = None,
                    force: bool = False, executed_root: Path = EXECUTED_DIR, notebook_dir: Path = NOTEBOOK_DIR,
                    params_dir: Path = PARAMS_DIR, log: Callable[[str], None] = print) -> list[Execution]:
    """Execute the profile's stale notebooks into ``<executed_root>/<profile>/``, in order.

    Stops at the first failing notebook (NotebookError).
    """
    check_kernel()
    every = notebook_paths(notebook_dir)
    stems = [p.stem for p in every]
    paths = select_notebooks(every, only)
    declared = {name for path in paths for name in declared_parameters(read_notebook(path))}
    unused = sorted(set(overrides or {}) - declared)
    if unused:
        raise ValueError(f"--param {', '.join(unused)}: no notebook declares it; "
                         f"the notebooks declare {', '.join(sorted(declared))}")
    out_dir = Path(executed_root) / profile
    output_dir = _display_path(out_dir / "outputs")
    package = package_digest()
    results = []
    for number, source in enumerate(paths, start=1):
        parameters = notebook_parameters(source, profile, output_dir=output_dir, overrides=overrides,
                                         params_dir=params_dir)
        upstream = {dep: recorded_run(out_dir / f"{dep}.ipynb")
                    for dep in dependencies(read_notebook(source), source, stems)}
        log(f"[{number}/{len(paths)}] {source.stem} ...")
        result = execute_notebook(source, out_dir / source.name, parameters, force=force, package=package,
                                  upstream=upstream)
        note = "(last run took" if result.status == "up to date" else "in"
        log(f"[{number}/{len(paths)}] {source.stem}: {result.status} {note} {result.seconds:.1f} s"
            + (")" if result.status == "up to date" else ""))
        results.append(result)
    return results


def stale_notebooks(paths: Iterable[Path], profile: str, *, overrides: dict | None = None,
                    executed_root: Path = EXECUTED_DIR, notebook_dir: Path = NOTEBOOK_DIR,
                    params_dir: Path = PARAMS_DIR) -> list[str]:
    """The stems among ``paths`` whose executed copy for ``profile`` is missing or out of date."""
    output_dir = _display_path(Path(executed_root) / profile / "outputs")
    package = package_digest()
    stems = [p.stem for p in notebook_paths(notebook_dir)]
    stale = []
    for source in paths:
        nb = read_notebook(source)
        parameters = notebook_parameters(source, profile, output_dir=output_dir, overrides=overrides,
                                         params_dir=params_dir)
        upstream = {dep: recorded_run(Path(executed_root) / profile / f"{dep}.ipynb")
                    for dep in dependencies(nb, source, stems)}
        key = execution_key(nb, parameters, package=package, upstream=upstream)
        if not is_up_to_date(Path(executed_root) / profile / source.name, key)[0]:
            stale.append(source.stem)
    return stale


# --------------------------------------------------------------------------- results page


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
        raise ValueError(f"{json_path}: expected a JSON object with summary/values/tables/figures")
    unknown = sorted(set(data) - {"summary", "values", "tables", "figures"})
    if unknown:
        raise ValueError(f"{json_path}: unknown keys {unknown}; use summary, values, tables, figures")
    lines = []
    if data.get("summary"):
        lines += [str(data["summary"]), ""]
    values = data.get("values") or {}
    if not isinstance(values, dict):
        raise ValueError(f"{json_path}: 'values' must map names to numbers, strings or {{'ours': ..., 'paper': ...}}")
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
            raise ValueError(f"{json_path}: tables[{number - 1}] needs 'columns' and 'data' "
                             "(DataFrame.to_dict(orient='split') plus a 'caption')")
        fmt = table.get("float_format", ".4g")
        index = table.get("index")
        header = ([""] if index is not None else []) + [_cell(c, fmt) for c in table["columns"]]
        rows = [([_cell(index[i], fmt)] if index is not None else []) + [_cell(v, fmt) for v in row]
                for i, row in enumerate(table["data"])]
        lines += _table(header, rows, table.get("caption") or f"Table {number}") + [""]
    for number, figure in enumerate(data.get("figures") or []):
        if not isinstance(figure, dict) or "file" not in figure:
            raise ValueError(f"{json_path}: figures[{number}] needs a 'file' (relative to output_dir)")
        image = json_path.parent / figure["file"]
        if not image.is_file():
            raise FileNotFoundError(f"{json_path}: figures[{number}] file {image} does not exist")
        lines += [f"```{{figure}} /{image.resolve().relative_to(ROOT).as_posix()}", ":width: 60%", "", str(figure.get("caption", "")), "```", ""]
    return lines


def write_results_summary(profile: str, *, executed_root: Path = EXECUTED_DIR,
                          notebook_dir: Path = NOTEBOOK_DIR) -> Path:
    """Write ``<executed_root>/results_summary.md`` from the profile's summary JSON files.

    The file is rewritten only when its text changes (Sphinx then re-renders only what it must).
    """
    executed_root = Path(executed_root)
    outputs = executed_root / profile / "outputs"
    target = executed_root / SUMMARY_NAME
    common = read_parameter_file(PARAMS_DIR / profile / "common.yaml")
    settings = ", ".join(f"`{k}={v}`" for k, v in common.items()
                         if k in ("n_samples", "n_segments", "images_per_group", "max_epochs"))
    lines = [f"<!-- Generated by book/build.py from {_display_path(outputs)}/*.json: do not edit. -->", "",
             f"These results come from the **{profile}** profile (`params/{profile}/`"
             + (f": {settings}" if settings else "") + ").", ""]
    for number, source in enumerate(notebook_paths(notebook_dir), start=1):
        executed = executed_root / profile / source.name
        title = notebook_title(read_notebook(executed if executed.is_file() else source), source.stem)
        docname = "/" + (executed_root / source.stem).resolve().relative_to(ROOT).as_posix()
        lines += [f"### {number}. {title}", "", f"From {{doc}}`chapter {number} <{docname}>`.", ""]
        json_path = outputs / f"{source.stem}.json"
        if json_path.is_file():
            data = json.loads(json_path.read_text(encoding="utf-8"))
            lines += _summary_markdown(data, json_path)
        else:
            lines += [f"*No summary: the notebook wrote no `{source.stem}.json` into `output_dir`.*", ""]
    text = "\n".join(lines).rstrip() + "\n"
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return target


def publish(profile: str, *, executed_root: Path = EXECUTED_DIR, notebook_dir: Path = NOTEBOOK_DIR) -> list[str]:
    """Copy the profile's executed notebooks to where ``_toc.yml`` expects them.

    Returns the names of the notebooks that changed. Raises FileNotFoundError when one has
    not been executed for this profile yet.
    """
    executed_root = Path(executed_root)
    sources = notebook_paths(notebook_dir)
    missing = [s.stem for s in sources if not (executed_root / profile / s.name).is_file()]
    if missing:
        raise FileNotFoundError(f"not yet executed with profile {profile!r}: {', '.join(missing)} "
                                f"(run `python book/build.py --profile {profile}` without --only)")
    changed = []
    for source in sources:
        cached, published = executed_root / profile / source.name, executed_root / source.name
        if not published.is_file() or published.read_bytes() != cached.read_bytes():
            shutil.copyfile(cached, published)
            changed.append(source.stem)
    wanted = {s.name for s in sources}
    for stale in executed_root.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    write_results_summary(profile, executed_root=executed_root, notebook_dir=notebook_dir)
    marker = executed_root / "published.json"
    marker.write_text(json.dumps({"profile": profile}) + "\n", encoding="utf-8")
    return changed


# --------------------------------------------------------------------------- MathJax and jupyter-book


def _mathjax_tarball(log: Callable[[str], None]) -> Path:
    tarball = MATHJAX_CACHE / f"mathjax-{MATHJAX_VERSION}.tgz"
    if not tarball.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise BookError(f"MathJax is needed offline and npm is not installed: put mathjax-{MATHJAX_VERSION}.tgz "
                            f"(from `npm pack mathjax@{MATHJAX_VERSION}`) into {MATHJAX_CACHE}")
        MATHJAX_CACHE.mkdir(parents=True, exist_ok=True)
        log(f"fetching MathJax {MATHJAX_VERSION} with npm pack into {_display_path(MATHJAX_CACHE)}")
        result = subprocess.run([npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--pack-destination", str(MATHJAX_CACHE)],
                                capture_output=True, text=True)
        if result.returncode != 0 or not tarball.is_file():
            raise BookError(f"`npm pack mathjax@{MATHJAX_VERSION}` failed (no registry?):\n{result.stderr.strip()}\n"
                            f"put mathjax-{MATHJAX_VERSION}.tgz into {MATHJAX_CACHE} by hand")
    sha1 = hashlib.sha1(tarball.read_bytes()).hexdigest()
    if sha1 != MATHJAX_SHA1:
        raise BookError(f"{tarball} has sha1 {sha1}, expected {MATHJAX_SHA1}: delete it and build again")
    return tarball


def prepare_mathjax(log: Callable[[str], None] = print) -> Path:
    """Unpack MathJax into ``book/_static_mathjax/mathjax`` (once); returns the script path."""
    target = MATHJAX_STATIC / "mathjax"
    script = MATHJAX_STATIC / MATHJAX_SCRIPT
    stamp = target / "VERSION"
    if script.is_file() and stamp.is_file() and stamp.read_text().strip() == MATHJAX_VERSION:
        return script
    tarball = _mathjax_tarball(log)
    shutil.rmtree(target, ignore_errors=True)
    with tarfile.open(tarball) as archive:
        members = []
        for member in archive.getmembers():
            name = member.name.removeprefix("package/")
            if member.isfile() and any(name == m or (m.endswith("/") and name.startswith(m)) for m in MATHJAX_MEMBERS):
                member.name = name
                members.append(member)
        archive.extractall(target, members=members, filter="data")
    stamp.write_text(MATHJAX_VERSION + "\n")
    if not script.is_file():
        raise BookError(f"{tarball} holds no {MATHJAX_SCRIPT}")
    return script


def _jupyter_book() -> str:
    candidate = Path(sys.executable).with_name("jupyter-book")
    found = str(candidate) if candidate.is_file() else shutil.which("jupyter-book")
    if found is None:
        raise BookError("jupyter-book is not installed: pip install -e '.[book]'")
    return found


def html_dir(path_output: Path | None = None) -> Path:
    """Where jupyter-book writes the HTML for ``path_output`` (default ``_build/html``)."""
    return (Path(path_output) if path_output else ROOT) / "_build" / "html"


def build_book(*, path_output: Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Render the published notebooks with ``jupyter-book build . -W -n``; returns index.html.

    Sphinx rebuilds only the pages whose sources changed. Raises BookError with Sphinx's
    output when the build fails, including on any warning.
    """
    prepare_mathjax(log)
    command = [_jupyter_book(), "build", str(ROOT), "-W", "-n"]
    if path_output is not None:
        command += ["--path-output", str(path_output)]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        lines = output.splitlines()
        causes = [line for line in lines if "WARNING" in line or "ERROR" in line or "SphinxWarning" in line]
        tail = "\n".join(lines[-30:])
        raise BookError("jupyter-book build failed (a Sphinx warning counts as an error):\n"
                        + "\n".join(causes[:20]) + f"\n--- last lines of jupyter-book's output ---\n{tail}")
    index = html_dir(path_output) / "index.html"
    log(f"jupyter-book build: {time.perf_counter() - start:.1f} s")
    return index


# --------------------------------------------------------------------------- checks


class _Assets(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts, self.links, self.images = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])
        elif tag == "link" and attrs.get("href") and attrs.get("rel") not in ("canonical",):
            self.links.append(attrs["href"])
        elif tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])


def page_assets(page: Path) -> _Assets:
    """The script, link and image URLs of one HTML page."""
    parser = _Assets()
    parser.feed(Path(page).read_text(encoding="utf-8"))
    return parser


def _is_external(url: str) -> bool:
    return url.startswith("//") or urlparse(url).scheme not in ("", "file", "data")


def audit_book(html: Path | None = None, *, notebook_dir: Path = NOTEBOOK_DIR) -> list[str]:
    """What is wrong with a built book (empty list: nothing).

    Checks: the intro, results and every chapter page exist; each chapter embeds a figure
    that resolves; no page loads a script or stylesheet from the web; the pages load the
    local MathJax exactly once and its fonts are there.
    """
    html = Path(html) if html else html_dir()
    problems = []
    pages = {"intro": html / "book" / "intro.html", "results": html / "book" / "results.html"}
    pages.update({s.stem: html / "book" / "executed" / f"{s.stem}.html" for s in notebook_paths(notebook_dir)})
    for name, page in pages.items():
        if not page.is_file():
            problems.append(f"{name}: no page {page}")
    for page in sorted(html.rglob("*.html")):
        assets = page_assets(page)
        for url in assets.scripts + assets.links:
            if _is_external(url):
                problems.append(f"{page.relative_to(html)} loads {url} from the web")
        mathjax = [u for u in assets.scripts if "mathjax" in u.lower() or "tex-" in u.lower()]
        if page.parent == html / "book" and page.stem in ("intro", "results"):
            local = [u for u in mathjax if u.split("?")[0].endswith(MATHJAX_SCRIPT)]
            if len(local) != 1 or len(mathjax) != 1:
                problems.append(f"{page.relative_to(html)} loads MathJax as {mathjax}, expected one local {MATHJAX_SCRIPT}")
            for url in local:
                if not (page.parent / unquote(url.split("?")[0])).resolve().is_file():
                    problems.append(f"{page.relative_to(html)}: {url} does not exist")
    for stem, page in pages.items():
        if stem in ("intro", "results") or not page.is_file():
            continue
        images = page_assets(page).images
        good = [u for u in images if u.startswith("data:image/")
                or (not _is_external(u) and (page.parent / unquote(u.split("?")[0])).resolve().is_file())]
        if not good:
            problems.append(f"{stem}: the chapter embeds no figure (images: {images})")
    fonts = html / "_static" / "mathjax" / "es5" / "output" / "chtml" / "fonts" / "woff-v2"
    if not any(fonts.glob("*.woff")):
        problems.append(f"no MathJax fonts in {fonts}")
    return problems


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium(args: list[str], *, timeout: float = 120) -> subprocess.CompletedProcess:
    chromium = find_chromium()
    if chromium is None:
        raise BookError("headless Chromium is needed for --check: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="faceexp-chromium-") as profile_dir:
        command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   f"--user-data-dir={profile_dir}", "--hide-scrollbars", "--virtual-time-budget=20000",
                   *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def rendered_formulas(page: Path) -> int:
    """How many formulas MathJax typeset in ``page`` once Chromium has loaded it."""
    result = _chromium(["--dump-dom", Path(page).resolve().as_uri()])
    return result.stdout.count("<mjx-container")


def screenshot(page: Path, png: Path, *, window: str = "1280,2000") -> Path:
    """Render one page with headless Chromium into ``png``."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    result = _chromium([f"--window-size={window}", f"--screenshot={png.resolve()}", Path(page).resolve().as_uri()])
    if not png.is_file() or png.stat().st_size == 0:
        raise BookError(f"Chromium wrote no screenshot of {page}:\n{result.stderr[-2000:]}")
    return png


def check_book(*, path_output: Path | None = None, log: Callable[[str], None] = print) -> list[str]:
    """Audit the built book, count typeset formulas and screenshot the intro and results pages."""
    html = html_dir(path_output)
    if not (html / "index.html").is_file():
        return [f"no book in {html}: build it first (python book/build.py)"]
    marker = EXECUTED_DIR / "published.json"
    if path_output is None and marker.is_file():
        log(f"checking {_display_path(html)} (profile {json.loads(marker.read_text())['profile']!r})")
    problems = audit_book(html)
    if find_chromium() is None:
        raise BookError("headless Chromium is needed for --check: apt-get install -y chromium")
    intro = html / "book" / "intro.html"
    if intro.is_file():
        formulas = rendered_formulas(intro)
        log(f"MathJax typeset {formulas} formulas on the introduction")
        if formulas == 0:
            problems.append("MathJax typeset no formula on the introduction (math shows raw)")
    shots = (Path(path_output) if path_output else ROOT) / "_build" / "screenshots"
    for page in SCREENSHOT_PAGES:
        source = html / f"{page}.html"
        if source.is_file():
            log(f"screenshot: {_display_path(screenshot(source, shots / (Path(page).name + '.png')))}")
    return problems


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python book/build.py",
        description="Execute the notebooks (papermill, skipping the up-to-date ones) and build the book.")
    parser.add_argument("--profile", default="demo", help="params/<profile>/: quick, demo or full (default: demo)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="execute only these notebooks (03, gap_vs_softmax, ...)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override a parameter for every notebook that declares it, e.g. data_root=/data/vggface2")
    parser.add_argument("--force", action="store_true", help="execute even the up-to-date notebooks")
    parser.add_argument("--skip-build", action="store_true", help="neither execute nor build: with --check, check the built book")
    parser.add_argument("--check", action="store_true",
                        help="audit the built HTML and screenshot the intro and results pages (_build/screenshots/)")
    parser.add_argument("--strip", action="store_true", help="clear outputs and execution counts from notebooks/*.ipynb")
    args = parser.parse_args(argv)
    try:
        if args.strip:
            for path in notebook_paths():
                print(f"{'stripped' if strip_notebook(path) else 'clean   '} {_display_path(path)}")
            return 0
        if not args.skip_build:
            if args.profile not in profiles():
                raise ValueError(f"--profile {args.profile!r}: use one of {', '.join(profiles())}")
            start = time.perf_counter()
            results = execute_profile(args.profile, only=args.only, overrides=parse_overrides(args.param),
                                      force=args.force)
            print(f"notebooks: {sum(r.status == 'executed' for r in results)} executed, "
                  f"{sum(r.status != 'executed' for r in results)} up to date, {time.perf_counter() - start:.1f} s")
            if args.only:
                rest = [p for p in notebook_paths() if p.stem not in {r.name for r in results}]
                stale = stale_notebooks(rest, args.profile, overrides=parse_overrides(args.param))
                if stale:
                    print(f"not re-run (--only), out of date: {', '.join(stale)}")
            try:
                changed = publish(args.profile)
            except FileNotFoundError as exc:
                print(f"book not built: {exc}")
                return 0
            print(f"published profile {args.profile!r}: {len(changed)} page(s) changed")
            index = build_book()
            print(f"the book: {index}")
        if args.check:
            problems = check_book()
            for problem in problems:
                print(f"check: {problem}", file=sys.stderr)
            if problems:
                return 1
            print("check: the book is complete and loads nothing from the web")
        return 0
    except NotebookError as exc:
        print(f"build.py: {exc}", file=sys.stderr)
        return 1
    except BookError as exc:
        print(f"build.py: {exc}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
