"""Lazy public names for a package: ``import faceexp.study`` stays cheap, ``faceexp.study.Study`` works.

captum's pattern (implementations in modules, one public namespace per package),
loaded on first use so that importing a low layer never pulls in torch or a
higher one.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable, Callable]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose public names live in its modules.

    Parameters
    ----------
    package : str
        The package's dotted name (its ``__name__``).
    exports : mapping
        Public name -> dotted module name relative to ``package`` (``"image_sets"``),
        or absolute (``"faceexp.data.folders"``).

    Returns
    -------
    (__getattr__, __dir__)
        To be assigned at the package's top level.
    """
    module_globals = importlib.import_module(package).__dict__

    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        path = module if module.startswith("faceexp") else f"{package}.{module}"
        value = getattr(importlib.import_module(path), name)
        module_globals[name] = value
        return value

    def __dir__():
        return sorted(set(exports) | {k for k in module_globals if not k.startswith("_")})

    return __getattr__, __dir__
