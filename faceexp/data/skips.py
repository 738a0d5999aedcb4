"""Skipped files: loaders record each file they could not use, with the reason, and warn."""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

__all__ = [
    "SkippedFileWarning",
    "SkipReport",
    "record_skip",
]


class SkippedFileWarning(UserWarning):
    """Warning issued for each file a loader skips (unreadable, not an image...)."""


class SkipReport:
    """Collects the files a loader skipped, with the reason.

    Every :meth:`add` also issues a :class:`SkippedFileWarning` naming the
    file (unless ``warn=False``), so bad input is never silent.

    Parameters
    ----------
    warn : bool, default True
        Issue a warning for each skipped file.

    Examples
    --------
    >>> report = SkipReport(warn=False)
    >>> report.add("a/b.jpg", "truncated")
    >>> len(report), report.to_frame().columns.tolist()
    (1, ['path', 'reason'])
    """

    def __init__(self, *, warn: bool = True):
        self.warn = bool(warn)
        self._entries: list[tuple[str, str]] = []

    def add(self, path, reason: str) -> None:
        """Record that ``path`` was skipped because of ``reason`` (and warn)."""
        path, reason = str(path), str(reason)
        self._entries.append((path, reason))
        if self.warn:
            warnings.warn(f"skipped {path}: {reason}", SkippedFileWarning, stacklevel=2)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return iter(list(self._entries))

    def __repr__(self) -> str:
        return f"SkipReport({len(self)} skipped)"

    @property
    def paths(self) -> list[str]:
        """The skipped paths, in the order they were added."""
        return [p for p, _ in self._entries]

    def to_frame(self) -> pd.DataFrame:
        """The skipped files as a DataFrame with columns ``path`` and ``reason``."""
        return pd.DataFrame(self._entries, columns=["path", "reason"])

    def write(self, path) -> Path:
        """Write :meth:`to_frame` as CSV to ``path`` atomically (folders created) and return it."""
        from faceexp.core.files import write_csv

        return write_csv(self.to_frame(), path)


def record_skip(report: SkipReport | None, path, reason: str) -> None:
    if report is None:
        warnings.warn(f"skipped {path}: {reason}", SkippedFileWarning, stacklevel=3)
    else:
        report.add(path, reason)
