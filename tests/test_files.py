"""faceexp.core.files: atomic writes and the clean-up of what killed writes left."""
from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from faceexp.core.files import atomic_write, remove_orphans, write_csv, write_json


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    write_csv(pd.DataFrame({"a": [1, 2]}), target)
    assert target.read_text() == "a\n1\n2\n"

    def fail(file):
        file.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_text() == "a\n1\n2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
    with pytest.raises(ValueError, match="is a directory"):
        write_json(tmp_path, {"a": 1})


def test_remove_orphans_of_dead_processes_only(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    orphan = tmp_path / f".metrics.csv.{dead}-0123abcd.tmp"
    live = tmp_path / f".metrics.csv.{os.getppid()}-0123abcd.tmp"
    other = tmp_path / ".notes.tmp"
    for path in (orphan, live, other):
        path.write_text("x")
    assert remove_orphans(tmp_path) == [orphan]
    assert live.exists() and other.exists() and not orphan.exists()
