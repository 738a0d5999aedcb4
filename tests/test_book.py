"""The book built from the quick-profile notebooks: complete, figures embedded, offline.

The build goes to _build/test/_build/html (so `make test` leaves the book of `make book` in
_build/html alone); the executed notebooks are shared with tests/test_notebooks.py and
`python book/build.py --profile quick`, and Sphinx re-renders only what changed.
"""
from __future__ import annotations

import html.parser
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from conftest import load_build_script

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = [
    ("01_method", "1. The method"),
    ("02_training", "2. The subjects: real face recognisers, and the two CNNs trained here"),
    ("03_gap_vs_softmax", "3. GAP embedding vs softmax heatmaps"),
    ("04_comparing_cnns", "4. Comparing the networks"),
    ("05_complementarity", "5. Network complementarity"),
    ("06_layers", "6. Learning across layers"),
    ("07_pixel_removal", "7. Eliminating the most significant pixels"),
    ("08_sampling", "8. Beyond the paper: choosing the perturbation"),
    ("09_sensitivity", "9. Beyond the paper: which choices of the explainer matter"),
    ("10_which_explainer", "10. Beyond the paper: which explainer to trust"),
]
MATHJAX = "_static/mathjax/es5/tex-mml-chtml.js"


build = load_build_script()
from book import results  # noqa: E402  (importable once build.py is loaded)


class _Tags(html.parser.HTMLParser):
    """Collects (tag, attributes) of every start tag."""

    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(page: Path):
    parser = _Tags()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.tags


def _resolves(page: Path, url: str) -> bool:
    return (page.parent / unquote(url.split("?")[0])).resolve().is_file()


@pytest.fixture(scope="module")
def site() -> Path:
    """The quick-profile book's HTML folder."""
    build.execute_profile("quick", log=lambda message: None)
    build.publish("quick")
    output = ROOT / "_build" / "test"
    index = build.build_book(path_output=output, log=lambda message: None)
    assert index.is_file()
    return index.parent


@pytest.mark.parametrize("profile", ["quick", "demo", "full"])
def test_results_page_lists_every_parameter_the_profile_gives_a_notebook(profile):
    """Each key of params/<profile>/*.yaml that a notebook declares reaches the page (in the
    first sentence or the chapter's section), unless results.SETTINGS_NOT_SHOWN names it."""
    executed_root = ROOT / "_build" / "test" / "settings"
    shutil.rmtree(executed_root, ignore_errors=True)
    text = build.write_results_summary(profile, executed_root=executed_root).read_text(encoding="utf-8")
    first, *sections = text.split("\n### ")
    shown = 0
    for source, section in zip(build.notebook_paths(), sections):
        given = {}
        for file in build.parameters.profile_files(profile, source):
            given.update(build.parameters.read_parameter_file(file))
        parameters = build.notebook_parameters(source, profile, output_dir="unused")
        for key in set(given) & set(parameters) - set(results.SETTINGS_NOT_SHOWN):
            setting = f"`{key}={results.setting_text(parameters[key])}`"
            assert setting in first or setting in section, f"{profile}, {source.stem}: {setting} not on the page"
            shown += 1
    assert shown >= 8 * 10
    assert set(results.SETTINGS_NOT_SHOWN) == {"profile", "output_dir", "artifacts_dir"}
    assert "`images_per_identity=" in first and "`max_epochs=" in first
    shutil.rmtree(executed_root, ignore_errors=True)


def test_intro_results_and_every_chapter_is_built(site):
    assert (site / "book" / "intro.html").is_file()
    assert (site / "book" / "results.html").is_file()
    for stem, _ in CHAPTERS:
        assert (site / "book" / "executed" / f"{stem}.html").is_file(), stem


def test_chapters_are_numbered_in_paper_order_in_the_navigation(site):
    text = (site / "book" / "intro.html").read_text(encoding="utf-8")
    links = re.findall(r'<a class="reference internal" href="executed/(\d\d_\w+)\.html">([^<]+)</a>', text)
    assert links[:len(CHAPTERS)] == CHAPTERS


@pytest.mark.parametrize("stem", [stem for stem, _ in CHAPTERS])
def test_each_chapter_embeds_a_figure(site, stem):
    page = site / "book" / "executed" / f"{stem}.html"
    sources = [a.get("src", "") for tag, a in _tags(page) if tag == "img"]
    embedded = [s for s in sources if s.startswith("data:image/")
                or ("_images/" in s and _resolves(page, s))]
    assert embedded, f"{stem}: no figure in {sources}"


def test_no_page_loads_a_script_or_stylesheet_from_the_web(site):
    external = []
    for page in site.rglob("*.html"):
        for tag, attrs in _tags(page):
            url = attrs.get("src") if tag == "script" else attrs.get("href") if tag == "link" else None
            if url and (url.startswith("//") or urlparse(url).scheme in ("http", "https")):
                external.append(f"{page.relative_to(site)}: <{tag}> {url}")
    assert external == []


def test_pages_load_the_local_mathjax_once(site):
    for name in ("intro", "results", "executed/05_complementarity"):
        page = site / "book" / f"{name}.html"
        scripts = [a["src"] for tag, a in _tags(page) if tag == "script" and a.get("src")]
        mathjax = [s for s in scripts if "mathjax" in s.lower()]
        assert len(mathjax) == 1 and mathjax[0].split("?")[0].endswith(MATHJAX), (name, mathjax)
        assert _resolves(page, mathjax[0])
        assert not any("require" in s.lower() for s in scripts), scripts
    assert list((site / "_static" / "mathjax" / "es5" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))


def test_the_intro_holds_math_for_mathjax(site):
    text = (site / "book" / "intro.html").read_text(encoding="utf-8")
    assert text.count('class="math notranslate nohighlight"') >= 3


def test_results_page_includes_the_generated_summary_and_its_figures(site):
    page = site / "book" / "results.html"
    text = page.read_text(encoding="utf-8")
    assert "<strong>quick</strong> profile" in text
    for _, title in CHAPTERS:
        assert title.replace("&", "&amp;") in text
    figures = [a["src"] for tag, a in _tags(page) if tag == "img"]
    assert len(figures) >= len(CHAPTERS) and all(_resolves(page, s) for s in figures), figures


def test_build_py_audit_finds_nothing_wrong(site):
    assert build.audit_book(site) == []


@pytest.mark.skipif(build.find_chromium() is None, reason="headless Chromium is not installed (apt-get install -y chromium)")
def test_mathjax_typesets_the_intro_offline(site):
    assert build.rendered_formulas(site / "book" / "intro.html") >= 10
