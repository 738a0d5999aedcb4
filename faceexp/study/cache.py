"""Cache keys: a short hash of everything a result depends on, the code that computed it included.

Every cached result of the book (:mod:`faceexp.study.artifacts`, the analyses)
lives under a key from :func:`make_key`; its ``code`` field is
:func:`source_hash` of the modules that compute it, so editing them recomputes.
"""
from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import pandas as pd

from faceexp.core.files import write_csv


def source_hash(*modules: str) -> str:
    """Hash of the source of modules or packages named by their dotted names
    (``"faceexp.models.training", "faceexp.models.schedule", "faceexp.models.initial_weights", "faceexp.recognisers"``): a module's ``.py`` file,
    or every ``.py`` file of a package. Names are resolved by import, so a name that
    no longer exists raises instead of hashing nothing."""
    h = hashlib.sha256()
    for name in sorted(modules):
        module = importlib.import_module(name)
        if hasattr(module, "__path__"):
            folder = Path(module.__file__).resolve().parent
            files = sorted(folder.rglob("*.py"))
        else:
            folder, files = Path(module.__file__).resolve().parent, [Path(module.__file__).resolve()]
        for file in files:
            h.update(f"{name}:{file.relative_to(folder).as_posix()}".encode())
            h.update(file.read_bytes())
    return h.hexdigest()[:16]


def make_key(**fields) -> str:
    """A short stable hash of JSON-serialisable keyword fields."""
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_table(artifacts, kind: str, compute, **key_fields) -> pd.DataFrame:
    """A DataFrame computed once: read ``<artifacts>/<kind>/<key>.csv`` if it exists,
    else ``compute()`` it and write it there atomically.

    ``key`` hashes ``key_fields`` (:func:`make_key`): pass everything the table
    depends on, including :func:`source_hash` of the modules that compute it.
    """
    path = Path(artifacts) / kind / f"{make_key(**key_fields)}.csv"
    if path.exists():
        return pd.read_csv(path)
    table = compute()
    write_csv(table, path)
    return table
