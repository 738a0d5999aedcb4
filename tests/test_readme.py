"""README's first code example runs as written (in a scratch folder)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.slow
def test_readme_example_runs_as_written(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    explanation, pair = namespace["explanation"], namespace["pair"]
    assert explanation.heatmaps.shape == (1, 112, 112) and explanation.samples.shape[0] == 1000
    assert pair.options["reference"] == "image"
    assert (tmp_path / "probe.npz").is_file()
    assert np.all((explanation.heatmaps >= 0) & (explanation.heatmaps <= 1))
