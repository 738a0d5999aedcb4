"""Where the book's files are (notebooks, parameters, executed copies) and the errors
its build steps raise."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
PARAMS_DIR = ROOT / "params"
PACKAGE_DIR = ROOT / "faceexp"
EXECUTED_DIR = ROOT / "book" / "executed"
KERNEL = "faceexp"
# Metadata key of the run record in an executed copy (never in the notebooks in git).
RECORD = "faceexp_build"


class NotebookError(RuntimeError):
    """A notebook failed to execute; the message names it, the cell and the error."""


class BookError(RuntimeError):
    """jupyter-book, MathJax or Chromium failed; the message says what to do."""


def display_path(path: Path) -> str:
    """``path`` relative to the repository root when it is inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)
