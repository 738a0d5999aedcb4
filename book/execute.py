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

While a notebook runs, what it prints (and its tqdm bars, on stderr) can be relayed to a
text stream (:class:`ProgressRelay`, the ``progress`` argument): one line per code cell
started, then the cell's output lines, each prefixed with the notebook's stem; a progress
bar, which redraws one line after a carriage return, shows at most one state every
``interval`` seconds per bar, and its last state when it completes or the cell ends. The
kernel then sees ``FACEEXP_BOOK_PROGRESS=1``. The executed copy keeps no progress bar: the
lines a cell redrew are removed from its stored output (:func:`strip_progress_bars`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence, TextIO

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


# Set in the kernel's environment while its output is relayed: code in a notebook may show
# progress bars then (they reach the terminal, not the executed copy).
PROGRESS_ENV = "FACEEXP_BOOK_PROGRESS"


@contextlib.contextmanager
def _kernel_environment(progress: bool = False):
    # A kernel that inherits MPLBACKEND=Agg embeds no figures: the inline backend must
    # stay the default, whatever the caller (or a test) exported.
    saved = {name: os.environ.pop(name, None) for name in ("MPLBACKEND", PROGRESS_ENV)}
    if progress:
        os.environ[PROGRESS_ENV] = "1"
    try:
        yield
    finally:
        os.environ.pop(PROGRESS_ENV, None)
        os.environ.update({name: value for name, value in saved.items() if value is not None})


# --------------------------------------------------------------------------- progress

# A terminal splits a stream into records at newlines, carriage returns (tqdm redraws its
# bar after one) and cursor movements (tqdm moves between the lines of nested bars).
_DELIMITER = re.compile(r"\r\n|\r|\n|\x1b\[[0-9;]*[A-HJK]")
_BAR_KEY = re.compile(r"\s*([^:|]*?):")
# What a tqdm bar draws: a percentage before the bar, or the elapsed time in brackets.
_BAR_LOOK = re.compile(r"\d%\||\[\d+:\d\d[^\]]*\]")
_BAR_END = re.compile(r"\[\d+:\d\d[^\]]*\]\s*$")


def _records(text: str, before: str = "") -> tuple[list[tuple[str, str, str]], str, str]:
    """Split ``text`` into records ``(text, delimiter before, delimiter after)``.

    ``before`` is the delimiter that preceded ``text``; returns the complete records, the
    unterminated rest and the delimiter before that rest. CR LF counts as LF.
    """
    records, start = [], 0
    for match in _DELIMITER.finditer(text):
        after = "\n" if match.group() == "\r\n" else match.group()
        records.append((text[start:match.start()], before, after))
        before, start = after, match.end()
    return records, text[start:], before


def _is_bar(text: str, before: str, after: str | None) -> bool:
    # A record overwritten after it was drawn (a carriage return or a cursor movement
    # follows it) is a state of a progress bar; so is one drawn after a carriage return
    # that looks like a bar (the final state of a bar that stays, or of an outer bar of
    # nested ones), unlike tqdm.write's lines.
    if after is not None and after != "\n":
        return True
    return before == "\r" and _BAR_LOOK.search(text) is not None


def _stream_text(output) -> str:
    return "".join(output.text) if isinstance(output.text, list) else output.text


def _keep(record: str, before: str, after: str | None) -> bool:
    # What stays in a stored stream: no state of a bar, no blank line a bar's carriage
    # return or cursor movement left behind.
    return not _is_bar(record, before, after) and (bool(record.strip()) or before in ("", "\n"))


def strip_progress_bars(nb) -> int:
    """Remove the progress bars from the stream outputs of ``nb``, in place.

    A cell whose stream outputs hold a carriage return or a cursor movement is read as a
    terminal would read each of its streams (stdout, stderr), across the outputs of the
    other stream: the lines that were redrawn (the states of tqdm bars) are removed and
    every other line stays, in order, in the output where it ended. Outputs left empty
    are dropped, and consecutive ones of one stream merged. Other cells are left alone.
    Returns how many outputs were removed or changed.
    """
    changed = 0
    for cell in nb.cells:
        streams = [o for o in cell.get("outputs", []) if o.output_type == "stream"]
        if cell.cell_type != "code" or not any(ch in _stream_text(o) for o in streams for ch in "\r\x1b"):
            continue
        state: dict[str, tuple[str, str]] = {}  # name: (unterminated rest, delimiter before it)
        last = {o.name: o for o in streams}
        outputs = []
        for output in cell.outputs:
            if output.output_type != "stream":
                outputs.append(output)
                continue
            text = _stream_text(output)
            rest, before = state.get(output.name, ("", ""))
            records, rest, before = _records(rest + text, before)
            kept = "".join(record + "\n" for record, pre, post in records if _keep(record, pre, post))
            if output is last[output.name] and rest and _keep(rest, before, None):
                kept += rest
            state[output.name] = (rest, before)
            changed += kept != text
            if not kept:
                continue
            output.text = kept
            if outputs and outputs[-1].output_type == "stream" and outputs[-1].name == output.name:
                outputs[-1].text += kept
                changed += 1
            else:
                outputs.append(output)
        cell.outputs = outputs
    return changed


class _Channel:
    """The file object papermill writes one stream (stdout or stderr) of the kernel to."""

    def __init__(self, relay: "ProgressRelay"):
        self._relay, self._rest, self._before, self._passed = relay, "", "", None

    def write(self, text: str) -> int:
        records, self._rest, self._before = _records(self._rest + text, self._before)
        for record, before, after in records:
            if record == self._passed and after != "\n":
                self._passed = None  # seen when it was drawn, when it was the rest
                continue
            self._relay._record(record, _is_bar(record, before, after), ended=after == "\n")
        self._passed = None
        if self._before == "\r" and _BAR_END.search(self._rest):  # a whole bar, not yet redrawn
            self._relay._record(self._rest, True)
            self._passed = self._rest
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._rest and self._rest != self._passed:
            self._relay._record(self._rest, _is_bar(self._rest, self._before, None))
        self._rest, self._before, self._passed = "", "", None


class ProgressRelay:
    """Relays what a running notebook prints to ``stream``, one readable line at a time.

    Every line reads ``  <name> | <text>``. A code cell announces itself when it starts
    (``In [n] <its first line>``) and, when it took ``interval`` seconds or more, when it
    ends. A printed line is passed on as it comes; a progress bar (a line redrawn after a
    carriage return, as tqdm draws on stderr) shows its first state at once, then at most
    one state every ``interval`` seconds (bars whose descriptions differ only in numbers,
    like ``epoch 1`` and ``epoch 2``, count as one), and its last state when it completes
    (a bar that stays) or when the cell ends.

    Give :meth:`options` to ``papermill.execute_notebook``; call :meth:`close` after.

    Parameters
    ----------
    name : str
        The prefix, the notebook's stem.
    stream : text stream
        Where the lines go (flushed after each).
    interval : float
        Seconds between two states of one progress bar.
    clock : callable
        Returns seconds (``time.monotonic``).
    """

    def __init__(self, name: str, stream: TextIO, *, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.name, self.stream, self.interval, self.clock = name, stream, interval, clock
        self.stdout, self.stderr = _Channel(self), _Channel(self)
        self._bars: dict[str, dict] = {}
        self._cells = 0
        self._cell_start = None

    def options(self) -> dict:
        """Keyword arguments of ``papermill.execute_notebook`` that feed this relay."""
        return {"stdout_file": self.stdout, "stderr_file": self.stderr,
                "on_cell_execute": self.cell_started, "on_cell_executed": self.cell_finished}

    def line(self, text: str) -> None:
        """Write ``text`` (one line) with the prefix."""
        self.stream.write(f"  {self.name} | {text}\n")
        self.stream.flush()

    def _record(self, text: str, bar: bool, ended: bool = False) -> None:
        text = text.rstrip()
        if not text.strip():
            return
        if not bar:
            self.line(text)
            return
        match = _BAR_KEY.match(text)
        key = re.sub(r"\d+", "#", match.group(1).strip() if match else "")
        state = self._bars.setdefault(key, {"last": None, "shown": None, "at": None})
        state["last"] = text
        now = self.clock()
        done = ended and "100%|" in text  # the last state of a bar that stays
        if text != state["shown"] and (done or state["at"] is None or now - state["at"] >= self.interval):
            state["shown"], state["at"] = text, now
            self.line(text)

    def _finish_bars(self) -> None:
        for state in self._bars.values():
            if state["last"] != state["shown"]:
                self.line(state["last"])
        self._bars.clear()

    def cell_started(self, cell, cell_index: int, **_) -> None:
        """nbclient's ``on_cell_execute`` hook: a code cell starts."""
        self._cells += 1
        self._cell_start = self.clock()
        lines = [ln.strip() for ln in cell.source.splitlines()]
        code = [ln for ln in lines if ln and not ln.startswith("#")] or [ln for ln in lines if ln] or [""]
        first, more = code[0], " ..." if len(code) > 1 else ""
        if len(first) > 72:
            first, more = first[:72], " ..."
        self.line(f"In [{self._cells}] {first}{more}")

    def cell_finished(self, cell, cell_index: int, **_) -> None:
        """nbclient's ``on_cell_executed`` hook: a code cell ended (or raised)."""
        self.stdout.close()
        self.stderr.close()
        self._finish_bars()
        if self._cell_start is not None:
            seconds = self.clock() - self._cell_start
            if seconds >= self.interval:
                self.line(f"In [{self._cells}] done in {seconds:.0f} s")
            self._cell_start = None

    def close(self) -> None:
        """Pass on what is still held back (after a failure, say)."""
        self.stdout.close()
        self.stderr.close()
        self._finish_bars()


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


def _strip_copy(executed: Path) -> None:
    # The copy a failed run left keeps its traceback, not its progress bars.
    try:
        nb = read_notebook(executed)
        if strip_progress_bars(nb):
            nbformat.write(nb, str(executed))
    except Exception:
        pass


def execute_notebook(source: Path, executed: Path, parameters: dict, *, force: bool = False,
                     kernel: str = KERNEL, cwd: Path = ROOT, package: str | None = None,
                     upstream: dict | None = None, progress: TextIO | None = None,
                     interval: float = 10.0) -> Execution:
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
    progress : text stream, optional
        Where to relay, while it runs, what the notebook prints and its progress bars
        (:class:`ProgressRelay`, lines prefixed with the notebook's stem); None: nowhere
        (papermill then draws its bar of cells when stderr is a terminal).
    interval : float
        Seconds between two states of one progress bar in ``progress``.

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
    relay = ProgressRelay(source.stem, progress, interval=interval) if progress is not None else None
    start = time.perf_counter()
    try:
        with _kernel_environment(progress=relay is not None):
            papermill.execute_notebook(str(source), str(executed), parameters=parameters,
                                       kernel_name=kernel, cwd=str(cwd), log_output=False,
                                       progress_bar=relay is None and sys.stderr.isatty(),
                                       **_engine_options(), **(relay.options() if relay else {}))
    except PapermillExecutionError as exc:
        _strip_copy(executed)

        raise NotebookError(
            f"notebook {source.name} failed in cell {exc.cell_index} (In [{exc.exec_count}]): "
            f"{exc.ename}: {exc.evalue}\n  the executed copy with the traceback: {display_path(executed)}"
        ) from exc
    except Exception as exc:
        raise NotebookError(f"notebook {source.name} could not be executed: "
                            f"{type(exc).__name__}: {exc}") from exc
    finally:
        if relay is not None:
            relay.close()
    seconds = time.perf_counter() - start

    out = read_notebook(executed)
    strip_progress_bars(out)
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
                    params_dir: Path = PARAMS_DIR, log: Callable[[str], None] = print,
                    progress: TextIO | None = None, interval: float = 10.0) -> list[Execution]:
    """Execute the profile's stale notebooks into ``<executed_root>/<profile>/``, in order.

    ``progress`` and ``interval``: as :func:`execute_notebook` (each notebook's lines are
    prefixed with its stem). Stops at the first failing notebook (NotebookError).
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
                                  upstream=upstream, progress=progress, interval=interval)
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
