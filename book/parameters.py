"""Notebook parameters: the cell tagged ``parameters``, the files ``params/<profile>/*.yaml``
and ``--param KEY=VALUE`` overrides, merged into what papermill injects.

A parameter value is a scalar (string, number, bool, None), a list of scalars or a mapping
from names to scalars (``models: [mobilenetv2, resnet50]``, ``max_epochs: {mobilenetv2: 6,
resnet50: 12}``): papermill writes each as a Python literal, and papermill's own parser of
the parameters cell reads such literals.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterable

import yaml

from book.layout import PARAMS_DIR
from book.notebooks import cell_tags, read_notebook

SCALARS = (str, int, float, bool, type(None))
VALUE_KINDS = "a string, number, bool or null, or a list or mapping of those"


def is_parameter_value(value) -> bool:
    """Whether ``value`` may be a notebook parameter: a scalar, a list of scalars, or a
    mapping of string keys to scalars."""
    if isinstance(value, SCALARS):
        return True
    if isinstance(value, list):
        return all(isinstance(item, SCALARS) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and isinstance(v, SCALARS) for k, v in value.items())
    return False


def parameters_cell_problems(nb) -> list[str]:
    """What is wrong with a notebook's parameters cell (empty list: nothing).

    The first code cell must be tagged ``parameters`` and hold only assignments of one name
    to a literal parameter value (see :func:`is_parameter_value`), so papermill can
    override each one.
    """
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or "parameters" not in cell_tags(code[0]):
        return ["the first code cell is not tagged 'parameters'"]
    try:
        tree = ast.parse(code[0].source)
    except SyntaxError as exc:
        return [f"the parameters cell does not parse: {exc}"]
    problems = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target.id, node.value
        else:
            problems.append(f"line {node.lineno}: only `name = literal` assignments belong in the parameters cell")
            continue
        try:
            allowed = is_parameter_value(ast.literal_eval(value))
        except (ValueError, TypeError, SyntaxError):  # not a literal
            allowed = False
        if not allowed:
            problems.append(f"line {node.lineno}: {target} must be {VALUE_KINDS}, "
                            f"got {ast.unparse(value)}")
    if not tree.body:
        problems.append("the parameters cell assigns nothing")
    return problems


def declared_parameters(nb) -> list[str]:
    """Names assigned in the notebook's cell tagged ``parameters``, in order."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell_tags(cell):
            names = []
            for node in ast.parse(cell.source).body:
                targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
                names += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in names]
            return names
    return []


def read_parameter_file(path: Path) -> dict:
    """A params YAML file as a dict of parameter values ({} for a missing or empty file)."""
    path = Path(path)
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the file must be a mapping of parameter names to values, "
                         f"got {type(data).__name__}")
    for key, value in data.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"{path}: a parameter name must be a Python identifier, got {key!r}")
        if not is_parameter_value(value):
            raise ValueError(f"{path}: {key} must be {VALUE_KINDS}, got {value!r}")
    return data


def profiles(params_dir: Path = PARAMS_DIR) -> list[str]:
    """The profiles: the sub-folders of ``params_dir``, sorted."""
    return sorted(p.name for p in Path(params_dir).iterdir() if p.is_dir())


def profile_files(profile: str, source: Path, *, params_dir: Path = PARAMS_DIR) -> list[Path]:
    """The parameter files of one notebook in one profile, in merge order: the profile's
    ``common.yaml``, then ``<stem>.yaml``."""
    folder = Path(params_dir) / profile
    return [folder / "common.yaml", folder / f"{Path(source).stem}.yaml"]


def notebook_parameters(source: Path, profile: str, *, output_dir: str, overrides: dict | None = None,
                        params_dir: Path = PARAMS_DIR) -> dict:
    """The parameters papermill injects into one notebook.

    ``params/<profile>/common.yaml`` and ``overrides`` contribute the keys the notebook
    declares; ``params/<profile>/<stem>.yaml`` must only hold declared keys. ``profile`` and
    ``output_dir`` are added when declared.
    """
    folder = Path(params_dir) / profile
    if not folder.is_dir():
        raise ValueError(f"profile {profile!r} has no folder {folder}: profile must be one of "
                         f"{', '.join(profiles(params_dir))}")
    declared = declared_parameters(read_notebook(source))
    common_file, own_file = profile_files(profile, source, params_dir=params_dir)
    own = read_parameter_file(own_file)
    unknown = sorted(set(own) - set(declared))
    if unknown:
        raise ValueError(f"{own_file}: {', '.join(unknown)} not declared in the parameters cell of "
                         f"{Path(source).name}; its keys must be some of {', '.join(declared)}")
    merged = {}
    for layer in (read_parameter_file(common_file), own, overrides or {},
                  {"profile": profile, "output_dir": output_dir}):
        merged.update({k: v for k, v in layer.items() if k in declared})
    return merged


#: Parameters the build injects itself, and where their values come from.
BUILD_SET = {"profile": "--profile", "output_dir": "book/executed/<profile>/outputs, where the "
             "results page reads each chapter's summary"}


def parse_overrides(items: Iterable[str]) -> dict:
    """``["data_root=/data/vggface2", "n_samples=100", "models=[resnet50]"]`` -> dict
    (values read as YAML)."""
    overrides = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--param must be KEY=VALUE with KEY a Python identifier (expected KEY=VALUE, "
                             f"e.g. --param n_samples=100), got {item!r}")
        if key in BUILD_SET:
            raise ValueError(f"--param {key}: set by the build itself ({BUILD_SET[key]}); "
                             "it cannot be overridden")
        value = yaml.safe_load(text) if text else None
        if not is_parameter_value(value):
            raise ValueError(f"--param {key}: the value must be {VALUE_KINDS}, got {value!r}")
        overrides[key] = value
    return overrides
