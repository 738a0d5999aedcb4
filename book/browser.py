"""Checks of the built book: an audit of its HTML (every page there, figures embedded,
nothing loaded from the web, the local MathJax loaded once), the reader's view of every page
(:mod:`book.page_checks`: raw TeX and empty sections in the HTML; in headless Chromium at
1280 px, a horizontal scrollbar, a clipped table or caption, a figure under
``MIN_FIGURE_PX``), formulas typeset, and a screenshot of every page in
``_build/screenshots/``."""
from __future__ import annotations

import html.parser
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlparse

from book.layout import EXECUTED_DIR, NOTEBOOK_DIR, ROOT, BookError, display_path
from book.notebooks import notebook_paths
from book.site import MATHJAX_SCRIPT, html_dir

SCREENSHOT_PAGES = ("book/intro", "book/results")
#: The window every page is checked and photographed in.
WINDOW_WIDTH = 1280
#: A figure shown narrower than this (px, at WINDOW_WIDTH) is reported.
MIN_FIGURE_PX = 240
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


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


#: Chapter -> the chapters whose results its generated text quotes (with their explainers).
QUOTES = {"11_known_answers": ("10_which_explainer",)}


def unrun_problems(*, notebook_dir: Path = NOTEBOOK_DIR, executed_root: Path = EXECUTED_DIR) -> list[str]:
    """Executed chapters whose generated text names an explainer they did not run (their
    recorded ``explainers`` parameter), one line each (:func:`book.prose.unrun_explainers`)."""
    import nbformat

    from book.layout import RECORD
    from book.prose import unrun_explainers
    from faceexp.evaluate.compare.explainers import EXPLAINERS

    def explainers_of(executed):
        nb = nbformat.read(str(executed), as_version=4)
        return nb, nb.metadata.get(RECORD, {}).get("parameters", {}).get("explainers")

    problems = []
    for source in notebook_paths(notebook_dir):
        for executed in sorted(Path(executed_root).glob(f"*/{source.name}")):
            nb, ran = explainers_of(executed)
            if not ran:
                continue
            # a chapter may name what the chapters it quotes ran (11 reads 10's recommendation)
            for quoted in QUOTES.get(source.stem, ()):
                other = executed.parent / f"{quoted}.ipynb"
                if other.is_file():
                    ran = list(ran) + list(explainers_of(other)[1] or [])
            names = unrun_explainers(nb, list(EXPLAINERS) + ["corrrise"], ran)
            if names:
                problems.append(f"{display_path(executed)}: its generated text names {names}, "
                                f"which this run did not include (explainers={ran})")
    return problems


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
    problems += unrun_problems(notebook_dir=notebook_dir)
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


def dump_dom(page: Path, *, window: str = f"{WINDOW_WIDTH},1000") -> str:
    """The DOM of ``page`` once Chromium has loaded it (and run its scripts) in ``window``."""
    result = _chromium([f"--window-size={window}", "--dump-dom", Path(page).resolve().as_uri()])
    return result.stdout


def book_pages(html: Path, *, notebook_dir: Path = NOTEBOOK_DIR) -> dict:
    """``{name: page}`` of every page a reader opens: the introduction, each chapter, the
    results page (those that exist)."""
    pages = {"intro": html / "book" / "intro.html"}
    pages.update({s.stem: html / "book" / "executed" / f"{s.stem}.html" for s in notebook_paths(notebook_dir)})
    pages["results"] = html / "book" / "results.html"
    return {name: page for name, page in pages.items() if page.is_file()}


def reader_problems(html: Path, *, shots: Path | None = None, min_figure_px: int = MIN_FIGURE_PX,
                    notebook_dir: Path = NOTEBOOK_DIR, log: Callable[[str], None] = print) -> list[str]:
    """Every page as a reader sees it (:mod:`book.page_checks`), each also photographed at
    1280 px into ``shots`` (when given)."""
    from book.page_checks import layout_problems, static_problems

    problems = []
    for name, page in book_pages(html, notebook_dir=notebook_dir).items():
        found = static_problems(page.read_text(encoding="utf-8"), name)
        found += layout_problems(page, dump_dom, min_figure_px=min_figure_px, name=name)
        problems += found
        if shots is not None:
            shot = screenshot(page, Path(shots) / f"{name}.png", window=f"{WINDOW_WIDTH},2000")
            log(f"screenshot: {display_path(shot)}" + (f" ({len(found)} problem(s))" if found else ""))
    return problems


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
    """Audit the built book, count typeset formulas, check every page as a reader sees it at
    1280 px (:func:`reader_problems`) and screenshot it into ``_build/screenshots/``."""
    html = html_dir(path_output)
    if not (html / "index.html").is_file():
        return [f"no book in {html}: build it first (python book/build.py)"]
    marker = EXECUTED_DIR / "published.json"
    if path_output is None and marker.is_file():
        log(f"checking {display_path(html)} (profile {json.loads(marker.read_text())['profile']!r})")
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
    problems += reader_problems(html, shots=shots, log=log)
    return problems
