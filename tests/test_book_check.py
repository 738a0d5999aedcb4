"""The reader's-view checks of `make book-check` (book/page_checks.py) on constructed pages:
raw TeX and empty sections from the HTML; in headless Chromium at 1280 px, a page that scrolls
sideways, a clipped table, a figure shown too small."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from book import browser  # noqa: E402
from book.page_checks import layout_problems, static_problems  # noqa: E402


def _page(body: str) -> str:
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><style>body {{ margin: 0 }}
.bd-article {{ width: 800px; margin: 0 auto }}</style></head>
<body><main><article class="bd-article">{body}</article></main></body></html>"""


GOOD = _page("""
<section id="method"><h2>Method<a class="headerlink" href="#method">¶</a></h2>
<p>The weight is <span class="math notranslate nohighlight">\\(\\exp(-d^2/\\kappa^2)\\)</span>; in code
<code>price = $5$</code> is fine.</p></section>
<section id="summary"><h2>Summary</h2>
<div class="cell tag_hide-input"><details class="hide above-input"><summary>Show code cell source</summary>
<div class="cell_input"><pre>report.write_summary(...)</pre></div></details>
<div class="cell_output"><p>Claim (a) agrees.</p></div></div></section>""")


def test_static_checks_pass_a_good_page():
    assert static_problems(GOOD, "good") == []


def test_static_checks_find_raw_tex_and_an_empty_section():
    bad = _page("""
<section id="method"><h2>Method</h2><p>The weight is $\\exp(-d^2/\\kappa^2)$ per copy.</p></section>
<section id="summary"><h2>Summary</h2>
<div class="cell tag_hide-input"><details class="hide above-input"><summary>Show code cell source</summary>
<div class="cell_input"><pre>report.write_summary(...)</pre></div></details></div></section>""")
    assert static_problems(bad, "bad") == [
        "bad: raw TeX in the text: 'The weight is $\\\\exp(-d^2/\\\\kappa^2)$ per copy.'",
        "bad: section 'Summary' is empty",
    ]


def test_a_section_with_only_subsections_or_a_figure_is_not_empty():
    page = _page("""<section id="a"><h2>A</h2><section id="b"><h3>B</h3><img src="x.png"/></section></section>""")
    assert static_problems(page) == []


needs_chromium = pytest.mark.skipif(browser.find_chromium() is None,
                                    reason="headless Chromium is not installed (apt-get install -y chromium)")


def _check(tmp_path, body: str, **options) -> list[str]:
    page = tmp_path / "page.html"
    page.write_text(_page(body), encoding="utf-8")
    problems = layout_problems(page, browser.dump_dom, name="p", **options)
    assert not list(tmp_path.glob(".*faceexp-check*")), "the probe copy must be removed"
    return problems


@needs_chromium
def test_browser_passes_a_good_page(tmp_path):
    wide = "".join(f"<td>column {k} with a long text</td>" for k in range(30))
    body = f"""<section id="s"><h2>S</h2><p>text</p>
<div style="overflow-x:auto"><table><tr>{wide}</tr></table></div>
<img src="data:image/svg+xml;utf8,&lt;svg xmlns='http://www.w3.org/2000/svg' width='600' height='100'/&gt;" style="width:600px"/>
</section>"""
    assert _check(tmp_path, body) == []


@needs_chromium
def test_browser_finds_a_sideways_page_a_clipped_table_and_a_small_figure(tmp_path):
    wide = "".join(f"<td>column {k} with a long text</td>" for k in range(30))
    body = f"""<section id="s"><h2>S</h2><p>text</p><table><tr>{wide}</tr></table>
<img alt="tiny heatmap grid" src="data:image/svg+xml;utf8,&lt;svg xmlns='http://www.w3.org/2000/svg' width='600' height='100'/&gt;" style="width:120px"/>
</section>"""
    problems = _check(tmp_path, body)
    assert any(p.startswith("p: the page scrolls sideways:") for p in problems), problems
    assert any(p.startswith("p: table cut off at the right edge") for p in problems), problems
    assert "p: figure shown 120 px wide (under 240 px): tiny heatmap grid" in problems


@needs_chromium
def test_browser_finds_tex_that_mathjax_left_raw(tmp_path):
    body = """<section id="a"><h2>A</h2><p>the heatmap \\frac{1}{P} stays raw</p><pre>\\frac in code</pre></section>"""
    assert _check(tmp_path, body) == ["p: raw TeX in the text: the heatmap \\frac{1}{P} stays raw"]
