"""The package's layers, enforced: every import of every module (inside functions too) goes down.

The order of the layers is stated once, in :data:`LAYERS`; README's layout table and
``faceexp/__init__``'s docstring are checked against it. Each rule is also run on a
planted violation, so that a rule that cannot fail would fail here.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "faceexp"
README = PACKAGE.parent / "README.md"

#: faceexp's packages, bottom to top. A package may import from the packages of lower
#: ranks only; packages of one rank (explain, verify) may not import each other.
LAYERS = (
    ("core",),
    ("data",),
    ("models",),
    ("recognisers",),
    ("explain", "verify"),
    ("evaluate",),
    ("study",),
    ("report",),
    ("cli",),
)
RANK = {package: rank for rank, group in enumerate(LAYERS) for package in group}
#: The largest module a reader should have to hold in their head (lines).
MAX_LINES = 650


# ------------------------------------------------------------------ the import graph
def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _resolve(node: ast.ImportFrom, name: str, known: set) -> str:
    """The absolute module an ``ImportFrom`` reaches (relative imports included)."""
    if node.level:
        base = name.split(".")
        is_package = name in known and any(k.startswith(name + ".") for k in known)
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        return ".".join(base + ([node.module] if node.module else []))
    return node.module or ""


def imports(name: str, path: Path, known: set) -> list[tuple[str, str | None, int]]:
    """``(module imported, name imported from it or None, line)`` for every import of a
    ``faceexp`` module in ``path``, wherever it stands; ``from pkg import sub`` is
    reported as an import of ``pkg.sub`` when that is a module."""
    root = name.split(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names
                      if a.name.split(".")[0] == root]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, name, known)
            if target.split(".")[0] != root:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, None, node.lineno) if sub in known
                             else (target, alias.name, node.lineno))
    return found


def private_attribute_uses(path: Path, known: set) -> list[tuple[str, int]]:
    """``alias._name`` where ``alias`` is bound to a faceexp module by an import."""
    tree = ast.parse(path.read_text(), str(path))
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "faceexp":
            for a in node.names:
                if f"{node.module}.{a.name}" in known:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.asname and a.name in known:
                    aliases[a.asname] = a.name
    return [(f"{aliases[n.value.id]}.{n.attr}", n.lineno) for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
            and n.value.id in aliases and n.attr.startswith("_") and not n.attr.startswith("__")]


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None   # None: the top-level facade


def violations(root: Path = PACKAGE) -> dict[str, list[str]]:
    """Every broken rule, by rule: ``upward``, ``sibling``, ``facade``, ``private``, ``cycle``."""
    found = {"upward": [], "sibling": [], "facade": [], "private": [], "unknown": [], "cycle": []}
    known = set(modules(root))
    graph = {}
    for name, path in modules(root).items():
        if name.count(".") == 0 or name.endswith("__main__"):
            continue   # the facade (lazy public names) and ``python -m faceexp`` sit above all
        here = layer_of(name)
        if here not in RANK:
            found["unknown"].append(f"{name}: package {here!r} is in no layer")
            continue
        graph[name] = set()
        for target, imported, line in imports(name, path, known):
            there = layer_of(target)
            where = f"{path.relative_to(root.parent)}:{line}"
            if there is None:
                if imported not in (None, "__version__"):
                    found["facade"].append(f"{where}: {name} imports {imported!r} from the facade "
                                           "'faceexp'; import it from the module that defines it")
                continue
            if there not in RANK:
                continue
            if RANK[there] > RANK[here]:
                found["upward"].append(f"{where}: {name} ({here}) imports {target} ({there})")
            elif RANK[there] == RANK[here] and there != here:
                found["sibling"].append(f"{where}: {name} ({here}) imports {target} ({there})")
            if imported and imported.startswith("_") and not imported.startswith("__") \
                    and target != name:
                found["private"].append(f"{where}: {name} imports {target}.{imported}")
            if target in known and target != name:
                graph[name].add(target)
        for dotted, line in private_attribute_uses(path, known):
            if not dotted.startswith(name + "."):
                found["private"].append(f"{path.relative_to(root.parent)}:{line}: {name} uses {dotted}")
    found["cycle"] = [" -> ".join(c) for c in cycles(graph)]
    return found


def cycles(graph: dict[str, set]) -> list[list[str]]:
    """Import cycles between modules, one per strongly connected component
    (a package importing its own submodules from ``__init__`` is not a cycle)."""
    def edges(node):
        # ``pkg/__init__`` importing ``pkg.sub`` and ``pkg.sub`` importing ``pkg`` is how
        # Python packages work; only module-to-module edges count.
        return {t for t in graph.get(node, ()) if not node.startswith(t + ".")
                and not t.startswith(node + ".")}

    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# ------------------------------------------------------------------ the rules on faceexp
@pytest.mark.parametrize("rule", ["upward", "sibling", "facade", "private", "unknown", "cycle"])
def test_faceexp_keeps_the_rule(rule):
    broken = violations()[rule]
    assert not broken, f"{len(broken)} {rule} import(s):\n" + "\n".join(broken)


def test_every_module_is_in_a_layer_package():
    flat = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert not flat, f"modules outside the layer packages: {flat}"
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(RANK), (packages, set(RANK))


def test_no_module_is_too_long():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_function_in_the_package_looks_like_a_test():
    found = [f"{name}.{node.name}" for name, path in modules().items()
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")]
    assert not found, f"pytest would collect these if imported into a test: {found}"


def test_readme_and_docstring_list_the_layers_in_order():
    import faceexp

    order = [p for group in LAYERS for p in group]
    table = re.findall(r"^\| `(\w+)/` \|", README.read_text(), flags=re.M)
    assert table == order, f"README's layout table lists {table}, the layers are {order}"
    line = next(l for l in faceexp.__doc__.splitlines() if l.strip().startswith("core"))
    named = re.findall(r"\w+", line)
    assert named == order, f"faceexp's docstring says {named}, the layers are {order}"


# ------------------------------------------------------------------ the rules can fail
def _plant(tmp_path, files: dict[str, str]) -> Path:
    root = tmp_path / "faceexp"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()
    return root


def test_a_planted_upward_import_fails(tmp_path):
    root = _plant(tmp_path, {"core/a.py": "def f():\n    from faceexp.study.b import g\n",
                             "study/b.py": "def g():\n    pass\n"})
    found = violations(root)
    assert len(found["upward"]) == 1 and "faceexp.core.a (core) imports faceexp.study.b" in found["upward"][0]


def test_a_planted_sibling_import_fails(tmp_path):
    root = _plant(tmp_path, {"explain/a.py": "from faceexp.verify import b\n", "verify/b.py": ""})
    assert len(violations(root)["sibling"]) == 1


def test_a_planted_cycle_fails(tmp_path):
    root = _plant(tmp_path, {"core/a.py": "from faceexp.core.b import g\n",
                             "core/b.py": "def g():\n    from faceexp.core import a\n"})
    assert violations(root)["cycle"] == ["faceexp.core.a -> faceexp.core.b"]


def test_a_planted_private_import_fails(tmp_path):
    root = _plant(tmp_path, {"core/a.py": "_hidden = 1\n",
                             "data/b.py": "from faceexp.core.a import _hidden\n",
                             "data/c.py": "from faceexp.core import a as fa\nx = fa._hidden\n"})
    assert len(violations(root)["private"]) == 2


def test_a_planted_facade_import_fails(tmp_path):
    root = _plant(tmp_path, {"core/a.py": "from faceexp import explain_set\n",
                             "core/b.py": "from faceexp import core\nfrom faceexp import __version__\n"})
    assert len(violations(root)["facade"]) == 1


def test_the_real_tree_has_imports_to_check():
    # the walker sees function-level imports (a rule over an empty graph cannot fail)
    known = set(modules())
    found = imports("faceexp.study.subjects", modules()["faceexp.study.subjects"], known)
    assert ("faceexp.study.cache", "source_hash", 88) in found or \
        any(t == "faceexp.study.cache" for t, _, _ in found)
    assert len(found) > 5
