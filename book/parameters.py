"""Notebook parameters: the cell tagged ``parameters``, the files ``params/<profile>/*.yaml``
and ``--param KEY=VALUE`` overrides, merged into what papermill injects.

Before any notebook runs, every value is checked against what its parameter accepts
(:func:`check_profile_parameters`): the kinds of its default in the parameters cell and of
the profiles' values, None where allowed, counts and sizes >= 1 (:data:`MINIMUM` lists the
exceptions), seeds >= 0, so that ``--param n_samples=abc`` is one line, not a failed chapter.

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

from book.layout import PARAMS_DIR, display_path
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


# --------------------------------------------------------------------------- value checks
#: The smallest value of an integer parameter where it is not 1 (counts and sizes are
#: positive; seeds, and lists of them, are >= 0; these accept 0 to mean "none").
MINIMUM = {"n_samples": 2, "n_segments": 2, "study_samples": 2,
           "stability_faces": 0, "randomisation_faces": 0}
_KIND_ORDER = ("bool", "int", "float", "str", "list", "dict")
_ONE = {"bool": "True or False", "float": "a number", "str": "a string"}
_MANY = {"bool": "booleans", "float": "numbers", "str": "strings"}


def _kind(value) -> str:
    if value is None:
        return "none"
    for kind, types in (("bool", bool), ("int", int), ("float", float), ("str", str),
                        ("list", list), ("dict", dict)):
        if isinstance(value, types):
            return kind
    return type(value).__name__


def _items(value) -> list:
    return list(value.values()) if isinstance(value, dict) else list(value)


def _minimum(name: str, item: bool) -> int:
    """The smallest int ``name`` (or, ``item``, one of its list or mapping values) accepts."""
    if name in MINIMUM:
        return MINIMUM[name]
    if name == "seed" or name.endswith("_seed") or (item and name.endswith("seeds")):
        return 0
    return 1


class ParameterSpec:
    """What one notebook parameter accepts: the kinds of its default in the parameters
    cell and of the values the profiles' files give it (an int is also a number), None
    where one of those is None or the default's comment mentions None, and ints from
    :func:`_minimum` up. A parameter whose every known value is None accepts anything."""

    def __init__(self, name: str, default, comment: str, seen: list, notebook: str):
        self.name, self.default, self.notebook = name, default, notebook
        values = [default, *seen]
        self.kinds = {_kind(v) for v in values} - {"none"}
        self.items = {_kind(item) for v in values if isinstance(v, (list, dict))
                      for item in _items(v)} - {"none"}
        self.none = any(v is None for v in values) or "None" in comment
        self.anything = not self.kinds

    def _fits(self, value, kinds: set, item: bool) -> bool:
        kind = _kind(value)
        if kind == "int" and "int" not in kinds and "float" in kinds:
            return True
        if kind not in kinds:
            return False
        if kind == "int":
            return value >= _minimum(self.name, item)
        if kind in ("list", "dict"):
            return not self.items or all(self._fits(v, self.items, True) for v in _items(value))
        return True

    def accepts(self, value) -> bool:
        if self.anything:
            return True
        if value is None:
            return self.none
        return self._fits(value, self.kinds, False)

    def describe(self) -> str:
        """What is accepted, as "an int >= 1 or None"."""
        def one(kind, item):
            if kind == "int":
                return f"{'ints' if item else 'an int'} >= {_minimum(self.name, item)}"
            if kind in ("list", "dict"):
                inner = " or ".join(one(k, True) for k in _KIND_ORDER if k in self.items)
                head = "a list" if kind == "list" else "a mapping of names to values"
                return f"{head} of {inner}" if kind == "list" and inner else (
                    f"a mapping of names to {inner}" if inner else head)
            return (_MANY if item else _ONE)[kind]
        parts = [one(kind, False) for kind in _KIND_ORDER if kind in self.kinds]
        return " or ".join(parts + (["None"] if self.none else []))


def parameter_specs(source: Path, *, params_dir: Path = PARAMS_DIR) -> dict[str, ParameterSpec]:
    """What each parameter of a notebook accepts (:class:`ParameterSpec`), from its cell
    tagged ``parameters`` (defaults and their comments) and every profile's files."""
    import io
    import tokenize

    nb = read_notebook(source)
    cell = next((c for c in nb.cells if c.cell_type == "code" and "parameters" in cell_tags(c)),
                None)
    if cell is None:
        return {}
    comments = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(cell.source).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string
    except (tokenize.TokenError, SyntaxError):
        pass
    defaults = {}
    for node in ast.parse(cell.source).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 \
            else getattr(node, "target", None)
        if isinstance(target, ast.Name) and getattr(node, "value", None) is not None:
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError):
                continue
            defaults[target.id] = (value, comments.get(node.lineno, ""))
    seen: dict[str, list] = {name: [] for name in defaults}
    for profile in profiles(params_dir):
        for path in profile_files(profile, source, params_dir=params_dir):
            for key, value in read_parameter_file(path).items():
                if key in seen:
                    seen[key].append(value)
    return {name: ParameterSpec(name, value, comment, seen[name], Path(source).name)
            for name, (value, comment) in defaults.items()}


def check_profile_parameters(profile: str, paths: Iterable[Path], *, overrides: dict | None = None,
                             params_dir: Path = PARAMS_DIR) -> None:
    """Check, before any notebook runs, every value the profile's files and ``overrides``
    give the notebooks ``paths`` against what their parameters accept
    (:func:`parameter_specs`: the kinds of the defaults, None where allowed, positive
    counts and sizes, seeds >= 0).

    Raises
    ------
    ValueError
        One line naming where the value comes from (``--param`` or the file), the
        parameter, what it accepts and the value.
    """
    for source in paths:
        specs = parameter_specs(source, params_dir=params_dir)
        common_file, own_file = profile_files(profile, source, params_dir=params_dir)
        for origin, values in ((f"{display_path(common_file)}:", read_parameter_file(common_file)),
                               (f"{display_path(own_file)}:", read_parameter_file(own_file)),
                               ("--param", overrides or {})):
            for name, value in values.items():
                spec = specs.get(name)
                if spec is None or name in BUILD_SET or spec.accepts(value):
                    continue
                raise ValueError(f"{origin} {name} must be {spec.describe()} (its default in "
                                 f"the parameters cell of {spec.notebook}: {name} = "
                                 f"{spec.default!r}), got {value!r}")
