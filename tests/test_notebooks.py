"""The notebooks: clean in git, parametrised for papermill, and executable with the quick profile.

The quick-profile runs go through book/build.py into book/executed/quick/ and are skipped
when up to date (same notebook cells, parameters and faceexp sources), so a second
`make test` only re-runs what changed.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest
from conftest import load_build_script
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = [
    "01_method", "02_training", "03_gap_vs_softmax", "04_comparing_cnns",
    "05_complementarity", "06_layers", "07_pixel_removal", "08_sampling", "09_sensitivity",
    "10_which_explainer", "11_known_answers",
]
STRIP_HINT = "run `python book/build.py --strip` (clears outputs and execution counts)"


build = load_build_script()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _read(path):
    return nbformat.read(str(path), as_version=4)


def _tiny_notebook(*code: str, parameters: str = "profile = 'demo'\noutput_dir = None\nvalue = 1"):
    return new_notebook(
        cells=[new_markdown_cell("# Tiny"),
               new_code_cell(parameters, metadata={"tags": ["parameters"]}),
               *(new_code_cell(c) for c in code)],
        metadata={"kernelspec": {"name": "faceexp", "display_name": "faceexp", "language": "python"}})


# ----------------------------------------------------------------------------- in git


def test_the_book_has_its_notebooks_in_paper_order():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED
    assert [p.stem for p in build.notebook_paths()] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_in_git_has_no_outputs_and_uses_the_faceexp_kernel(path):
    nb = _read(path)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: code cells {dirty} hold outputs or execution counts; {STRIP_HINT}"
    assert nb.metadata["kernelspec"]["name"] == "faceexp"
    assert build.hygiene_problems(nb) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_in_git_is_nbformat_normalised(path):
    """Every cell has an id (nbformat 4.5): reading it warns of nothing and normalising
    changes nothing."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert (raw["nbformat"], raw["nbformat_minor"]) >= (4, 5)
    assert all("id" in cell for cell in raw["cells"]), [i for i, c in enumerate(raw["cells"]) if "id" not in c]
    changes, _ = nbformat.validator.normalize(raw)
    assert changes == 0


SCALAR = (str, int, float, bool, type(None))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_is_tagged_parameters_and_holds_only_literal_assignments(path):
    nb = _read(path)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", []), f"{path.name}: tag the first code cell 'parameters'"
    names = []
    for node in ast.parse(first.source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, \
            f"{path.name}: line {node.lineno} of the parameters cell is not `name = value`"
        value = ast.literal_eval(node.value)
        assert isinstance(value, SCALAR) or (isinstance(value, list) and all(isinstance(v, SCALAR) for v in value)) \
            or (isinstance(value, dict) and all(isinstance(v, SCALAR) for v in value.values())), \
            f"{path.name}: {node.targets[0].id} is not a string, number, bool, None, or a list or dict of those"
        names.append(node.targets[0].id)
    for required in ("profile", "data_root", "artifacts_dir", "output_dir", "n_samples", "n_segments",
                     "images_per_identity", "seed", "device"):
        assert required in names, f"{path.name}: the parameters cell lacks {required}"
    assert build.parameters_cell_problems(nb) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_reads_every_parameter(path):
    """papermill's own parser (`papermill --help-notebook`) sees each declared parameter
    (a value holding "=" made it skip the line and warn of an unknown parameter)."""
    from papermill.translators import PythonTranslator

    first = next(c for c in _read(path).cells if c.cell_type == "code")
    seen = [p.name for p in PythonTranslator.inspect(first)]
    assert seen == build.declared_parameters(_read(path))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_is_one_hidden_call_and_the_parameters_stay_visible(path):
    code = [c for c in _read(path).cells if c.cell_type == "code"]
    parameters, setup = code[0], code[1]
    assert not {"hide-input", "remove-input", "hide-cell", "remove-cell"} & set(parameters.metadata.get("tags", []))
    assert "hide-input" in setup.metadata.get("tags", []), f"{path.name}: tag the setup cell 'hide-input'"
    assert "report.setup_notebook(" in setup.source and "os.chdir" not in setup.source
    sources = "\n".join(c.source for c in code)
    assert '.split(",")' not in sources and "def " not in sources and "study.source(" not in sources


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_follows_the_house_skeleton(path):
    cells = _read(path).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# "), "first cell: the title"
    headings = [c.source.splitlines()[0] for c in cells if c.cell_type == "markdown" and c.source.startswith("## ")]
    assert headings[0] == "## Overview" and "## Summary" in headings and len(headings) >= 4, headings


def test_every_profile_gives_each_notebook_declared_parameters():
    samples = {}
    for profile in ("quick", "demo", "full"):
        for path in NOTEBOOKS:
            parameters = build.notebook_parameters(path, profile, output_dir=f"book/executed/{profile}/outputs")
            assert parameters["profile"] == profile
            assert parameters["output_dir"] == f"book/executed/{profile}/outputs"
            assert set(parameters) <= set(build.declared_parameters(_read(path)))
            samples[profile] = parameters["n_samples"]
    assert samples["quick"] < samples["demo"] <= samples["full"] == 1000


# ----------------------------------------------------------------------------- build.py helpers


def test_parameters_cell_problems_flags_anything_but_literal_assignments():
    good = _tiny_notebook(parameters="a = 1\nb = -0.5\nc = 'artifacts/x'\nd = None\ne = True\n"
                                     "f = ['mobilenetv2', 'resnet50']\ng = {'mobilenetv2': 6, 'resnet50': None}")
    assert build.parameters_cell_problems(good) == []
    bad = _tiny_notebook(parameters="import os\nx = [1, [2]]\ny = os.getcwd()")
    problems = build.parameters_cell_problems(bad)
    assert len(problems) == 3 and "line 2: x" in problems[1] and "line 3: y" in problems[2]
    untagged = _tiny_notebook()
    untagged.cells[1].metadata = {}
    assert build.parameters_cell_problems(untagged) == ["the first code cell is not tagged 'parameters'"]


def test_notebook_parameters_merge_common_then_own_file_then_overrides(tmp_path):
    source = tmp_path / "09_tiny.ipynb"
    nbformat.write(_tiny_notebook(parameters="profile = 'demo'\noutput_dir = None\nn_samples = 1\nseed = 0"),
                   str(source))
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "common.yaml").write_text("n_samples: 10\nseed: 3\nmax_epochs: 2  # not declared: skipped\n")
    (tmp_path / "p" / "09_tiny.yaml").write_text("n_samples: 20\n")
    parameters = build.notebook_parameters(source, "p", output_dir="out", params_dir=tmp_path,
                                           overrides={"seed": 7, "data_root": "/x"})
    assert parameters == {"n_samples": 20, "seed": 7, "profile": "p", "output_dir": "out"}
    (tmp_path / "p" / "09_tiny.yaml").write_text("n_sample: 20\n")
    with pytest.raises(ValueError, match=r"09_tiny.yaml: n_sample not declared"):
        build.notebook_parameters(source, "p", output_dir="out", params_dir=tmp_path)
    (tmp_path / "p" / "09_tiny.yaml").write_text("n_samples: [1, 2]\nseed: {a: 1}\n")
    assert build.notebook_parameters(source, "p", output_dir="out", params_dir=tmp_path)["n_samples"] == [1, 2]
    (tmp_path / "p" / "09_tiny.yaml").write_text("n_samples: [[1, 2]]\n")
    with pytest.raises(ValueError, match=r"n_samples must be a string, number, bool or null"):
        build.notebook_parameters(source, "p", output_dir="out", params_dir=tmp_path)
    with pytest.raises(ValueError, match=r"profile 'nope' has no folder"):
        build.notebook_parameters(source, "nope", output_dir="out", params_dir=tmp_path)


def test_parse_overrides_reads_values_as_yaml():
    assert build.parse_overrides(["n_samples=100", "data_root=/data/vggface2", "images_per_identity=null"]) == \
        {"n_samples": 100, "data_root": "/data/vggface2", "images_per_identity": None}
    assert build.parse_overrides(["models=[resnet50]", "max_epochs={mobilenetv2: 6, resnet50: 12}"]) == \
        {"models": ["resnet50"], "max_epochs": {"mobilenetv2": 6, "resnet50": 12}}
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        build.parse_overrides(["n_samples"])


def test_select_notebooks_by_number_stem_or_name():
    paths = build.notebook_paths()
    assert [p.stem for p in build.select_notebooks(paths, ["3", "gap_vs_softmax", "07_pixel_removal"])] == \
        ["03_gap_vs_softmax", "07_pixel_removal"]
    with pytest.raises(ValueError, match="matches 0 notebooks"):
        build.select_notebooks(paths, ["99"])


def test_execution_key_follows_cells_parameters_and_package_but_not_outputs():
    nb = _tiny_notebook("print(value)")
    key = build.execution_key(nb, {"value": 1}, package="p1")
    assert build.execution_key(nb, {"value": 2}, package="p1") != key
    assert build.execution_key(nb, {"value": 1}, package="p2") != key
    changed = _tiny_notebook("print(value + 1)")
    assert build.execution_key(changed, {"value": 1}, package="p1") != key
    nb.cells[2].outputs = [new_output("stream", name="stdout", text="1\n")]
    nb.cells[2].execution_count = 1
    assert build.execution_key(nb, {"value": 1}, package="p1") == key


def test_dependencies_name_earlier_notebooks_and_enter_the_key():
    stems = [p.stem for p in NOTEBOOKS]
    for path in NOTEBOOKS:
        assert set(build.dependencies(_read(path), path, stems)) <= set(stems)
    nb = _tiny_notebook()
    nb.metadata["faceexp"] = {"depends_on": ["02_training"]}
    assert build.dependencies(nb, Path("05_x.ipynb"), ["02_training", "05_x"]) == ["02_training"]
    with pytest.raises(ValueError, match=r"05_x.ipynb: metadata faceexp.depends_on names '02_training'"):
        build.dependencies(nb, Path("05_x.ipynb"), ["05_x", "02_training"])
    key = build.execution_key(nb, {}, package="p", upstream={"02_training": "a"})
    assert key != build.execution_key(nb, {}, package="p", upstream={"02_training": "b"})


def test_strip_clears_outputs_counts_and_run_metadata(tmp_path):
    nb = _tiny_notebook("print(value)")
    nb.cells[2].outputs = [new_output("stream", name="stdout", text="1\n")]
    nb.cells[2].execution_count = 3
    nb.cells[2].metadata["execution"] = {"iopub.status.busy": "2026-01-01"}
    nb.metadata["papermill"] = {"parameters": {}}
    nb.metadata["faceexp_build"] = {"key": "k", "status": "ok"}
    nb.metadata["faceexp"] = {"depends_on": ["02_training"]}
    path = tmp_path / "dirty.ipynb"
    nbformat.write(nb, str(path))
    assert build.hygiene_problems(_read(path)) == ["cell 2 has outputs", "cell 2 has an execution count"]
    assert build.strip_notebook(path) is True
    clean = _read(path)
    assert build.hygiene_problems(clean) == []
    assert "papermill" not in clean.metadata and "execution" not in clean.cells[2].metadata
    assert "faceexp_build" not in clean.metadata
    assert clean.metadata["faceexp"] == {"depends_on": ["02_training"]}, "dependencies are source, not output"
    assert clean.cells[2].source == "print(value)"
    assert build.strip_notebook(path) is False


# ----------------------------------------------------------------------------- execution


def test_execution_embeds_figures_despite_mplbackend_agg_and_skips_up_to_date_copies(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # a kernel inheriting it would embed no figure
    source = tmp_path / "plot.ipynb"
    nbformat.write(_tiny_notebook("import matplotlib.pyplot as plt\nplt.plot([0, value])\nplt.show()"), str(source))
    executed = tmp_path / "executed" / "plot.ipynb"
    first = build.execute_notebook(source, executed, {"value": 2}, package="fixed")
    assert first.status == "executed"
    outputs = [o for c in _read(executed).cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), outputs
    assert build.execute_notebook(source, executed, {"value": 2}, package="fixed").status == "up to date"
    assert build.execute_notebook(source, executed, {"value": 3}, package="fixed").status == "executed"


def test_failing_notebook_names_itself_the_cell_and_the_error(tmp_path):
    source = tmp_path / "fails.ipynb"
    nbformat.write(_tiny_notebook("x = value", "raise ValueError('n_samples must be positive')"), str(source))
    executed = tmp_path / "fails-executed.ipynb"
    with pytest.raises(build.NotebookError,
                       match=r"fails\.ipynb failed in cell \d+ .*ValueError: n_samples must be positive"):
        build.execute_notebook(source, executed, {"value": 1}, package="fixed")
    assert build.error_outputs(_read(executed)), "papermill keeps the copy with the traceback"
    fresh, _ = build.is_up_to_date(executed, build.execution_key(_read(source), {"value": 1}, package="fixed"))
    assert not fresh


def test_a_notebook_reruns_after_the_notebook_it_depends_on(tmp_path, monkeypatch):
    monkeypatch.setattr(build.execute, "package_digest", lambda *args: "fixed")
    notebooks, params, executed = tmp_path / "nb", tmp_path / "params", tmp_path / "executed"
    notebooks.mkdir()
    (params / "p").mkdir(parents=True)
    upstream = _tiny_notebook("print('trains')")
    downstream = _tiny_notebook("print('explains')")
    downstream.metadata["faceexp"] = {"depends_on": ["01_train"]}
    nbformat.write(upstream, str(notebooks / "01_train.ipynb"))
    nbformat.write(downstream, str(notebooks / "02_explain.ipynb"))
    options = dict(executed_root=executed, notebook_dir=notebooks, params_dir=params, log=lambda message: None)
    assert [r.status for r in build.execute_profile("p", **options)] == ["executed", "executed"]
    assert build.stale_notebooks([notebooks / "02_explain.ipynb"], "p", executed_root=executed,
                                 notebook_dir=notebooks, params_dir=params) == []
    assert [r.status for r in build.execute_profile("p", only=["01"], force=True, **options)] == ["executed"]
    assert build.stale_notebooks([notebooks / "02_explain.ipynb"], "p", executed_root=executed,
                                 notebook_dir=notebooks, params_dir=params) == ["02_explain"]


@pytest.fixture(scope="module")
def quick_runs():
    """Every notebook executed with the quick profile (skipped where up to date)."""
    return build.execute_profile("quick", log=lambda message: None)


def test_quick_profile_runs_every_notebook(quick_runs):
    assert [r.name for r in quick_runs] == EXPECTED
    assert all(r.path == ROOT / "book" / "executed" / "quick" / f"{r.name}.ipynb" for r in quick_runs)


@pytest.mark.parametrize("stem", EXPECTED)
def test_quick_notebook_holds_a_figure_no_error_and_its_summary(quick_runs, stem):
    run = next(r for r in quick_runs if r.name == stem)
    nb = _read(run.path)
    assert build.error_outputs(nb) == []
    pngs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert pngs, f"{stem}: no figure embedded in the executed notebook"
    record = nb.metadata["faceexp_build"]
    assert record["status"] == "ok" and record["parameters"]["profile"] == "quick"
    summary = ROOT / "book" / "executed" / "quick" / "outputs" / f"{stem}.json"
    assert record["summary"] == summary.relative_to(ROOT).as_posix()
    data = json.loads(summary.read_text())
    assert set(data) <= {"summary", "values", "tables", "figures", "verdicts", "competence"}


@pytest.mark.parametrize("stem", EXPECTED)
def test_quick_notebook_shows_no_stderr_and_no_stray_return_value(quick_runs, stem):
    run = next(r for r in quick_runs if r.name == stem)
    outputs = [o for c in _read(run.path).cells if c.cell_type == "code" for o in c.outputs]
    stderr = [o.get("text", "") for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stderr"]
    # faceexp's own diagnostics (an under-determined fit, a target that never changes) say
    # something true about a quick-profile result; anything else is stray
    stray = [t for t in stderr if not re.match(r"\S*/faceexp/\S+\.py:\d+: \w+Warning: ", t)]
    assert stray == [], f"{stem} shows stderr: {stray}"
    texts = [o.get("data", {}).get("text/plain", "") for o in outputs if o.get("output_type") == "execute_result"]
    assert not [t for t in texts if "PosixPath(" in t], texts


def test_parameters_the_build_sets_cannot_be_overridden():
    for key in ("output_dir", "profile"):
        with pytest.raises(ValueError, match=rf"--param {key}: set by the build itself"):
            build.parse_overrides([f"{key}=/tmp/elsewhere"])
