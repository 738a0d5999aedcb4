"""A lock on a folder that a killed process never leaves stuck.

:class:`FolderLock` takes an exclusive, non-blocking lock of the operating system
(``fcntl.flock``; ``msvcrt.locking`` on Windows) on a small file in the folder.
The kernel releases such a lock when the process that holds it ends, however it
ends (SIGKILL, a crash, a power cut), so no stale lock has to be detected or
removed by hand; the lock file itself stays (empty of meaning once unlocked) and
names its last holder (pid, host, start time) for the refusal message.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

try:                                  # POSIX
    import fcntl
except ImportError:                   # pragma: no cover - Windows
    fcntl = None
    import msvcrt

__all__ = ["FolderLock", "FolderInUse", "LOCK_NAME"]

#: The lock file's name inside the locked folder.
LOCK_NAME = ".lock"


class FolderInUse(ValueError):
    """Another process holds the lock on ``folder``; ``holder`` says which (may be "")."""

    def __init__(self, folder, holder: str = ""):
        self.folder, self.holder = str(folder), str(holder)
        by = f" ({self.holder})" if self.holder else ""
        super().__init__(f"{self.folder!r} is in use by another run{by}: wait for it to "
                         "end, or write to another folder")

    def __reduce__(self):             # pickled between torchrun processes
        return type(self), (self.folder, self.holder)


class FolderLock:
    """An exclusive lock on a folder, held from :meth:`acquire` to :meth:`release`.

    Parameters
    ----------
    folder : str or Path
        The folder (created when missing).
    name : str
        The lock file's name in it (default :data:`LOCK_NAME`).

    Examples
    --------
    >>> with FolderLock(out_dir):          # doctest: +SKIP
    ...     ...                             # FolderInUse if another process holds it

    Notes
    -----
    The lock belongs to the open file, not to the process: a second
    :class:`FolderLock` on the same folder is refused even inside the process that
    holds the first. It is not inherited by child processes.
    """

    def __init__(self, folder, name: str = LOCK_NAME):
        self.folder = Path(folder)
        self.path = self.folder / name
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> "FolderLock":
        """Take the lock without waiting; :class:`FolderInUse` when another holds it."""
        if self._fd is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except OSError:
            holder = _read(fd)
            os.close(fd)
            raise FolderInUse(self.folder, holder) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the lock go (closing the file releases it); a no-op when not held."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"FolderLock({str(self.folder)!r}, held={self.held})"


def _lock(fd: int) -> None:
    """Exclusive, non-blocking; OSError when another open file holds it."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:                             # pragma: no cover - Windows
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)


def _read(fd: int) -> str:
    """The holder's line (empty when unreadable or not yet written)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 200).decode("utf-8", "replace").strip().splitlines()[0]
    except (OSError, IndexError):
        return ""
