"""The book built from the quick-profile notebooks: complete, figures embedded, offline.

The build goes to _build/test/_build/html (so `make test` leaves the book of `make book` in
_build/html alone); the executed notebooks are shared with tests/test_notebooks.py and
`python book/build.py --profile quick`, and Sphinx re-renders only what changed.
"""
from __future__ import annotations

import json
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
    # settings every chapter shares are said once, in the first sentence (chapter 11 draws its
    # probes per identity: images_per_identity is said per chapter)
    assert "`max_epochs=" in first and "`seed=" in first
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


# ----------------------------------------------------------------- pieces, without a build

class _Claim:
    def __init__(self, statement, unit=""):
        self.statement, self.paper, self.quantity, self.section, self.unit = statement, "Fig. 2", "a gap", "IV-A", unit


def test_verdict_matrix_has_claims_as_rows_subjects_as_columns_and_reads_both_schemas():
    from book.verdict_matrix import verdict_matrix_html

    records = [
        {"claim": "a", "subject": "sface", "value": 0.0018, "ci_low": 0.0, "ci_high": 0.0034, "n": 24,
         "verdict": "agrees", "reason": "the interval lies above 0"},
        {"claim": "b", "recogniser": "resnet50", "ours": -0.1, "low": -0.3, "high": 0.1,
         "outcome": "cannot be tested here", "reason": "contains 0 <no direction>"},
    ]
    claims = {"a": _Claim('"GAP heatmaps are valid." More text.', unit="%"), "b": _Claim("Nose matters.")}
    page = verdict_matrix_html(records, claims, caption="cap")
    assert "\n\n" not in page                               # one raw HTML block for MyST
    rows = re.findall(r"<tr>(.*?)</tr>", page, re.S)
    assert re.findall(r"<th>(.*?)</th>", rows[0]) == ["claim", "sface", "resnet50"]
    assert "<summary>(a) GAP heatmaps are valid</summary>" in rows[1]
    assert ('<td class="verdict verdict-agrees" title="the interval lies above 0"><span class="verdict-word">agrees'
            '</span><br/><span class="verdict-measure">0.180% [0.000, 0.340] · n = 24</span></td>') in rows[1]
    assert '<td class="verdict verdict-none">not tested</td>' in rows[1]      # (a) on resnet50
    assert 'verdict-untestable" title="contains 0 &lt;no direction&gt;"' in rows[2]
    assert "-0.100 [-0.300, 0.100]" in rows[2] and "n = " not in rows[2].split("verdict-untestable")[1]
    assert "<strong>The paper (IV-A):</strong>" in rows[1] and "<li><strong>sface</strong>, agrees:" in rows[1]


def test_claims_json_holds_one_record_per_claim_and_subject(tmp_path):
    import json

    from book.results import write_claims_json

    old = {"claim": "a", "recogniser": "mb2", "ours": 1.0, "low": 0.5, "high": 1.5, "outcome": "agrees",
           "reason": "r", "level": 0.95}
    path = write_claims_json("quick", [old, dict(old, ours=2.0)], executed_root=tmp_path)
    assert path == tmp_path / "quick" / "claims.json"
    assert json.loads(path.read_text()) == [{"claim": "a", "subject": "mb2", "value": 2.0, "ci_low": 0.5,
                                             "ci_high": 1.5, "n": None, "verdict": "agrees", "reason": "r",
                                             "level": 0.95}]


def test_a_published_chapter_hides_its_parameters_and_collapses_its_code():
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    from book.present import present_notebook

    nb = new_notebook(cells=[new_markdown_cell("# T"),
                             new_code_cell("n = 1", metadata={"tags": ["parameters", "hide-cell"]}),
                             new_code_cell("n = 2", metadata={"tags": ["injected-parameters"]}),
                             new_code_cell("import faceexp"),
                             new_code_cell("x", metadata={"tags": ["remove-input"]})])
    out = present_notebook(nb, parameters={"n": 2, "models": ["a", "b"]}, profile="quick",
                           downloads='<p class="faceexp-downloads">links</p>')
    tags = [c.metadata.get("tags", []) for c in out.cells]
    assert tags == [[], ["parameters", "remove-cell"], ["faceexp-parameters"], ["injected-parameters", "remove-cell"],
                    ["hide-input"], ["remove-input"]]
    dropdown = out.cells[2].source
    assert dropdown.startswith('<details class="faceexp-parameters"><summary>Parameters this chapter ran with '
                               "(profile <strong>quick</strong>)</summary>")
    assert "<tr><td><code>models</code></td><td><code>[a, b]</code></td></tr>" in dropdown
    assert dropdown.endswith('</details>\n<p class="faceexp-downloads">links</p>')
    assert [c.metadata.get("tags", []) for c in nb.cells][1] == ["parameters", "hide-cell"]  # the input is unchanged


def test_download_links_and_summary_tables_for_people(tmp_path):
    from book.results import download_links, table_html

    links = download_links("02_training", ["02_training.json", "02_training_table1.csv"], "../../")
    assert links == ('<p class="faceexp-downloads">Data of this chapter: '
                     '<a href="../../_static/data/02_training.json" download>JSON</a> · '
                     '<a href="../../_static/data/02_training_table1.csv" download>CSV, table 1</a></p>')
    table = {"index": ["0", "1"], "columns": ["network", "mean", "ci_low", "ci_high", "n"],
             "data": [["mb2", 9.4712, 9.31, 9.62, 2], ["r50", None, None, None, 1]], "caption": "PSNR"}
    page = table_html(table, "PSNR")
    assert page.startswith('<div class="faceexp-table-wrap" style="overflow-x:auto; max-width:100%">')
    cells = re.findall(r"<td>(.*?)</td>", page)
    assert cells == ["mb2", "9.47 [9.31, 9.62]", "2", "r50", "–", "1"]
    assert re.findall(r"<th>(.*?)</th>", page) == ["network", "mean [95% interval]", "n"]


def test_results_gate_a_subject_that_cannot_recognise_faces_and_publish_the_recommendation(tmp_path):
    records = [{"claim": "b", "subject": "resnet50", "value": 0.3, "ci_low": 0.2, "ci_high": 0.4,
                "n": 12, "verdict": "agrees", "reason": "interval above 0.1"},
               {"claim": "b", "subject": "sface", "value": 0.3, "ci_low": 0.2, "ci_high": 0.4,
                "n": 12, "verdict": "agrees", "reason": "interval above 0.1"},
               {"claim": "c", "subject": "mobilenetv2+resnet50", "value": -0.1, "ci_low": -0.2,
                "ci_high": -0.05, "n": 12, "verdict": "agrees", "reason": "r"}]
    competence = {"resnet50": {"eer": 0.31, "ci_low": 0.25, "ci_high": 0.37, "n": 12},
                  "sface": {"eer": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 12}}
    out = results.gated_records(records, competence)
    assert [r["verdict"] for r in out] == ["not competent", "agrees", "not competent"]
    assert out[0]["value"] is None and "31" in out[0]["reason"] and "10" in out[0]["reason"]
    assert out[2]["reason"].startswith("resnet50: ")
    assert results.gated_records(records, {}) == records
    assert results.copy_recommendation("demo", executed_root=tmp_path) is None
    (tmp_path / "demo" / "outputs").mkdir(parents=True)
    (tmp_path / "demo" / "outputs" / "recommendation.json").write_text('{"sface": {"explainer": null}}')
    target = results.copy_recommendation("demo", executed_root=tmp_path)
    assert target == tmp_path / "demo" / "recommendation.json"
    assert json.loads(target.read_text()) == {"sface": {"explainer": None}}
    assert (tmp_path / results.DOWNLOAD_DIR / "data" / "recommendation.json").is_file()
