"""Prose cannot go stale: hand-written Markdown (notebook Markdown cells, book/*.md) holds no
number outside the allowlist of book/prose.py; results are written by code at run time."""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from book.prose import notebook_stale_numbers, stale_numbers  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _report(found) -> str:
    return "\n".join(f"  cell {k}: {number!r} in: {sentence[:160]}" for k, number, sentence in found)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_markdown_has_no_hand_typed_numbers(path):
    found = notebook_stale_numbers(path)
    assert not found, f"{path.name}: numbers typed in Markdown (write them from the results):\n{_report(found)}"


@pytest.mark.parametrize("name", ["intro.md", "results.md"])
def test_book_pages_have_no_hand_typed_numbers(name):
    found = stale_numbers((ROOT / "book" / name).read_text(encoding="utf-8"))
    assert not found, f"book/{name}: {found}"


def test_a_planted_digit_in_a_markdown_cell_fails(tmp_path):
    nb = new_notebook(cells=[
        new_markdown_cell("# Title\n\n*Section IV-B and Figs. 3-5 of the paper.*"),
        new_markdown_cell("The method explains each face; see chapter 5 and Table I."),
        new_code_cell("x = 0.42  # code may hold numbers"),
        new_markdown_cell("Our EER is 0.42% on ORL."),  # planted: a result typed by hand
    ])
    path = tmp_path / "99_planted.ipynb"
    nbformat.write(nb, str(path))
    assert notebook_stale_numbers(path) == [(3, "0.42", "Our EER is 0.42% on ORL.")]


def test_the_allowlist_by_example():
    # references, the paper's own numbers in a sentence naming the paper, math constants,
    # code, names with digits, the 95% level and the pose name 3/4
    allowed = ("See Section IV-B, Fig. 3, Figs. 3-5, Table I, Eq. (2) and chapter 10.\n\n"
               "The paper uses 75 superpixels and 1000 perturbed images.\n\n"
               "Weights $w_i = \\exp(-d_i^2/\\kappa^2)$ on $\\{0, 1\\}^M$ and $10 \\log_{10} x_1$.\n\n"
               "Set `kernel_width=0.35` for ResNet50 at 113x113 on VGGFace2.\n\n"
               "A 95% interval; the F-3/4 pairs. <!-- 12 hidden -->")
    assert stale_numbers(allowed) == []
    # a number the paper does not print is stale even in a sentence naming the paper
    assert stale_numbers("As in the paper, SFace reaches 0.18%.") == [("0.18", "As in the paper, SFace reaches 0.18%.")]
    # a number in math other than a formula's constants
    assert stale_numbers("We use $p = 0.2$.") == [("0.2", "We use $p = 0.2$.")]
    # a table is the paper's only when its caption (or the paragraph before it) names the paper
    assert stale_numbers("```{table} The paper's Table I\n| a |\n|---|\n| 3.69 |\n```") == []
    assert stale_numbers("Ours:\n\n| a |\n|---|\n| 3.69 |") == [("3.69", "| a | |---| | 3.69 |")]
    assert stale_numbers("The paper's Table I:\n\n| a |\n|---|\n| 3.69 |") == []


def test_generated_text_that_names_an_explainer_not_run_is_found():
    from nbformat.v4 import new_output

    from book.prose import unrun_explainers

    nb = new_notebook(cells=[
        new_markdown_cell("Methods: lime, captum-ig and captum-lime are described here."),
        new_code_cell("x", outputs=[new_output("display_data", data={
            "text/markdown": "faceexp-lime-paper leads lime; captum-occlusion is third."})])])
    known = ["faceexp-lime-paper", "lime", "captum-occlusion", "captum-ig", "captum-lime"]
    assert unrun_explainers(nb, known, ["faceexp-lime-paper", "lime", "captum-occlusion"]) == []
    assert unrun_explainers(nb, known, ["faceexp-lime-paper", "captum-occlusion"]) == ["lime"]
    assert unrun_explainers(nb, known, ["lime", "captum-occlusion"]) == ["faceexp-lime-paper"]


def test_a_chapter_may_name_what_the_chapter_it_quotes_ran(tmp_path):
    # Chapter 11 quotes chapter 10's recommendation: an explainer chapter 10 ran may appear in
    # 11's text; one neither ran is still found.
    import nbformat
    from nbformat.v4 import new_output

    from book.browser import unrun_problems
    from book.layout import RECORD

    sources, executed = tmp_path / "notebooks", tmp_path / "executed" / "demo"
    sources.mkdir()
    executed.mkdir(parents=True)

    def write(stem, text, ran):
        nbformat.write(new_notebook(), str(sources / f"{stem}.ipynb"))
        nb = new_notebook(cells=[new_code_cell("x", outputs=[new_output(
            "display_data", data={"text/markdown": text})])])
        nb.metadata[RECORD] = {"parameters": {"explainers": ran}}
        nbformat.write(nb, str(executed / f"{stem}.ipynb"))

    write("10_which_explainer", "faceexp-lime-p0.2 leads captum-occlusion.",
          ["faceexp-lime-p0.2", "captum-occlusion"])
    write("11_known_answers", "chapter 10 finds no clear winner between faceexp-lime-p0.2 and "
          "captum-occlusion; corrrise moves most.", ["corrrise", "captum-occlusion"])
    assert unrun_problems(notebook_dir=sources, executed_root=tmp_path / "executed") == []
    write("11_known_answers", "lime moves most.", ["corrrise"])
    (problem,) = unrun_problems(notebook_dir=sources, executed_root=tmp_path / "executed")
    assert "['lime']" in problem
