"""Executing the notebooks with papermill, and the keys that say when an executed copy is
up to date.

Each ``notebooks/NN_*.ipynb`` runs (kernel ``faceexp``, working directory = repository
root) into ``book/executed/<profile>/<stem>.ipynb`` with the parameters of
:func:`book.parameters.notebook_parameters`. A notebook is skipped when its executed copy
is up to date: the key stored in the copy's metadata (``metadata.faceexp_build.key``)
hashes the notebook's cells, its parameters, every ``faceexp/**/*.py`` file and the keys
of the notebooks it depends on. A notebook that uses what an earlier one writes (the
trained checkpoints) says so in its metadata, ``"faceexp": {"depends_on":
["02_training"]}``, and re-runs whenever that one has.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import nbformat

from book.layout import (EXECUTED_DIR, KERNEL, NOTEBOOK_DIR, PACKAGE_DIR, PARAMS_DIR, RECORD, ROOT,
                         BookError, NotebookError, display_path)
from book.notebooks import cell_tags, notebook_paths, read_notebook, select_notebooks
from book.parameters import declared_parameters, notebook_parameters

# Bump to re-execute every notebook after a change in how they are run.
CACHE_VERSION = 1


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
    cells = [[c.cell_type, c.source, sorted(cell_tags(c))] for c in nb.cells]
    payload = json.dumps({"version": CACHE_VERSION, "cells": cells, "parameters": parameters,
                          "kernel": kernel, "upstream": upstream or {}}, sort_keys=True)
    return _sha256(payload.encode(), (package or package_digest()).encode())


@contextlib.contextmanager
def _kernel_environment():
    # A kernel that inherits MPLBACKEND=Agg embeds no figures: the inline backend must
    # stay the default, whatever the caller (or a test) exported.
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
            raise ValueError(f"{Path(path).name}: metadata faceexp.depends_on names {name!r}; it must name "
                             f"earlier notebooks: {', '.join(stems[:list(stems).index(stem)])}")
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
            f"{exc.ename}: {exc.evalue}\n  the executed copy with the traceback: {display_path(executed)}"
        ) from exc
    except Exception as exc:
        raise NotebookError(f"notebook {source.name} could not be executed: "
                            f"{type(exc).__name__}: {exc}") from exc
    seconds = time.perf_counter() - start

    out = read_notebook(executed)
    for cell in out.cells:  # the defaults are shown folded; the injected cell shows the values used
        if cell.cell_type == "code" and "parameters" in cell_tags(cell):
            cell.metadata["tags"] = cell_tags(cell) + ["hide-cell"]
            break
    out.metadata[RECORD] = {
        "key": key, "status": "ok", "seconds": round(seconds, 2), "parameters": parameters,
        "upstream": upstream or {}, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "summary": display_path(summary) if summary is not None and summary.is_file() else None,
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
        raise ValueError(f"--param keys must be some of {', '.join(sorted(declared))} (what the notebooks "
                         f"declare), got {', '.join(unused)}")
    out_dir = Path(executed_root) / profile
    output_dir = display_path(out_dir / "outputs")
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
    output_dir = display_path(Path(executed_root) / profile / "outputs")
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
