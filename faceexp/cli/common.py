"""Checks every subcommand makes before it computes anything: output paths and devices.

A wrong ``--out`` or ``--device`` is reported in one line before minutes of work,
not after them.
"""
from __future__ import annotations

from pathlib import Path


def check_output_file(path, option: str = "--out") -> Path:
    """``path`` as a writable file path: not an existing folder, parent a folder
    (created when missing). ValueError naming ``option`` otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a directory; give a file path")
    parent = path.parent
    for folder in (parent, *parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"{option} {str(path)!r}: {str(folder)!r} is a file, not a "
                                 "directory")
            break
    return path


def check_output_folder(path, option: str = "--out") -> Path:
    """``path`` as a folder to write into: ValueError naming ``option`` when it is a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a file; give a folder (new or existing)")
    check_output_file(path / "x", option)
    return path


def check_device(device, option: str = "--device") -> str | None:
    """A torch device the machine has: ValueError for an unknown name or a missing GPU."""
    if device is None:
        return None
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ValueError(f"{option} must be a torch device such as cpu or cuda, got "
                         f"{device!r}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{option} {device!r}: CUDA is not available on this machine; use "
                         f"{option} cpu")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{option} {device!r}: MPS is not available on this machine; use "
                         f"{option} cpu")
    return str(device)
