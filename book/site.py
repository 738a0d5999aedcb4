"""The offline site: the profile's executed notebooks published where ``_toc.yml`` names
them, MathJax 3 served from the book itself, and ``jupyter-book build``.

MathJax is fetched once with ``npm pack`` into ``.cache/mathjax/`` and unpacked into
``book/_static_mathjax/mathjax/`` (an ``html_static_path`` folder, served as
``_static/mathjax/``), so the built pages load no script from the web.
``jupyter-book build . -W -n`` renders ``_build/html`` with execution off; any Sphinx
warning fails the build.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Callable

from book.layout import EXECUTED_DIR, NOTEBOOK_DIR, ROOT, BookError, display_path
import nbformat

from book.notebooks import notebook_paths, read_notebook
from book.present import present_notebook
from book.results import DOWNLOAD_DIR, download_links, write_results_summary

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


def publish(profile: str, *, executed_root: Path = EXECUTED_DIR, notebook_dir: Path = NOTEBOOK_DIR) -> list[str]:
    """Copy the profile's executed notebooks to where ``_toc.yml`` expects them, as the book
    shows them (:func:`book.present.present_notebook`: parameters in one dropdown, code
    collapsed, links to the chapter's data), after writing the results page's files.

    Returns the names of the notebooks that changed. Raises FileNotFoundError when one has
    not been executed for this profile yet.
    """
    executed_root = Path(executed_root)
    sources = notebook_paths(notebook_dir)
    missing = [s.stem for s in sources if not (executed_root / profile / s.name).is_file()]
    if missing:
        raise FileNotFoundError(f"not yet executed with profile {profile!r}: {', '.join(missing)} "
                                f"(run `python book/build.py --profile {profile}` without --only)")
    write_results_summary(profile, executed_root=executed_root, notebook_dir=notebook_dir)
    changed = []
    for source in sources:
        cached, published = executed_root / profile / source.name, executed_root / source.name
        text = nbformat.writes(present_notebook(read_notebook(cached), profile=profile,
                                                downloads=chapter_downloads(source.stem, executed_root)))
        if not published.is_file() or published.read_text(encoding="utf-8") != text:
            published.write_text(text, encoding="utf-8")
            changed.append(source.stem)
    wanted = {s.name for s in sources}
    for stale in executed_root.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    marker = executed_root / "published.json"
    marker.write_text(json.dumps({"profile": profile}) + "\n", encoding="utf-8")
    return changed


def chapter_downloads(stem: str, executed_root: Path = EXECUTED_DIR) -> str:
    """HTML links from a chapter's page (``book/executed/<stem>.html``) to its data files
    that :func:`book.results.write_downloads` wrote; empty when there are none."""
    folder = Path(executed_root) / DOWNLOAD_DIR / "data"
    files = sorted(p.name for p in folder.glob(f"{stem}*") if p.suffix in (".json", ".csv"))
    files.sort(key=lambda name: (not name.endswith(".json"), name))
    return download_links(stem, files, "../../")


def _mathjax_tarball(log: Callable[[str], None]) -> Path:
    tarball = MATHJAX_CACHE / f"mathjax-{MATHJAX_VERSION}.tgz"
    if not tarball.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise BookError(f"MathJax is needed offline and npm is not installed: put mathjax-{MATHJAX_VERSION}.tgz "
                            f"(from `npm pack mathjax@{MATHJAX_VERSION}`) into {MATHJAX_CACHE}")
        MATHJAX_CACHE.mkdir(parents=True, exist_ok=True)
        log(f"fetching MathJax {MATHJAX_VERSION} with npm pack into {display_path(MATHJAX_CACHE)}")
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
    (EXECUTED_DIR / DOWNLOAD_DIR).mkdir(parents=True, exist_ok=True)  # an html_static_path folder
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
