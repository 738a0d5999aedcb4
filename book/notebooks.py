"""The book's notebooks as they are in git: listing and selecting them, titles, hygiene
(no outputs, the faceexp kernel), stripping run output, error outputs of executed copies."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import nbformat

from book.layout import KERNEL, NOTEBOOK_DIR

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
            raise ValueError(f"--only must name one of {', '.join(p.stem for p in paths)} (or its number), "
                             f"got {name!r}, which matches {len(hits)} notebooks")
        if hits[0] not in chosen:
            chosen.append(hits[0])
    return [p for p in paths if p in chosen]


def read_notebook(path: Path):
    """A notebook as nbformat v4, normalised (a cell without an id gets one)."""
    nb = nbformat.read(str(path), as_version=4)
    return nbformat.from_dict(nbformat.validator.normalize(nb)[1])


def cell_tags(cell) -> list[str]:
    """The tags of one cell (``metadata.tags``), [] when it has none."""
    return list(cell.get("metadata", {}).get("tags", []))


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


# Cell metadata a run leaves behind (JupyterLab, papermill); tags and the rest stay.
VOLATILE_CELL_METADATA = {"execution", "papermill", "ExecuteTime", "collapsed", "scrolled"}
# Notebook metadata kept in git: the kernel, the build's dependencies, the language name.
KEPT_NOTEBOOK_METADATA = {"kernelspec", "faceexp", ("language_info", "name")}


def strip_notebook(path: Path) -> bool:
    """Clear outputs, execution counts and run metadata from a notebook in place.

    nbconvert's ``ClearOutputPreprocessor`` clears the code cells (and their
    ``VOLATILE_CELL_METADATA``), its ``ClearMetadataPreprocessor`` keeps only
    ``KEPT_NOTEBOOK_METADATA`` of the notebook's metadata, and nbformat normalises the
    result (every cell gets an id). Returns True when the file changed.
    """
    from nbconvert.preprocessors import ClearMetadataPreprocessor, ClearOutputPreprocessor

    path = Path(path)
    nb = read_notebook(path)
    nb, _ = ClearOutputPreprocessor(remove_metadata_fields=VOLATILE_CELL_METADATA).preprocess(nb, {})
    nb, _ = ClearMetadataPreprocessor(clear_cell_metadata=False,
                                      preserve_nb_metadata_mask=KEPT_NOTEBOOK_METADATA).preprocess(nb, {})
    nb = nbformat.from_dict(nb)
    nbformat.validate(nb)
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
