"""faceexp.study.competence: each subject's test-identity EER for the competence gate,
checked on constructed embeddings against bob.measure's EER of the same scores."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from faceexp.report.competence import competence_gates
from faceexp.study import competence as fcomp


def _study(frame):
    subjects = {"good": SimpleNamespace(embedding_layer="gap"),
                "poor": SimpleNamespace(embedding_layer="embedding")}
    return SimpleNamespace(subjects=list(subjects), subject=subjects.__getitem__,
                           split=lambda name: frame)


def test_competence_table_matches_an_independent_eer(monkeypatch):
    bob = pytest.importorskip("bob.measure")
    rng = np.random.default_rng(3)
    ids = np.repeat(np.arange(6), 4)
    frame = pd.DataFrame({"identity": [f"s{i}" for i in ids], "path": [f"{k}.png" for k in range(24)]})
    good = np.eye(6)[ids] + 0.01 * rng.normal(size=(24, 6))
    poor = rng.normal(size=(24, 6))
    monkeypatch.setattr(fcomp, "verifiable_frame", lambda study, f: f.reset_index(drop=True))
    monkeypatch.setattr(fcomp, "embed_test_images",
                        lambda study, f, name, layers, progress=True:
                        {layers[0]: good if name == "good" else poor})
    table = fcomp.competence_table(_study(frame), n_boot=200, seed=0, progress=False)
    assert list(table.index) == ["good", "poor"]
    assert table.loc["good", ["eer", "ci_low", "ci_high"]].tolist() == [0.0, 0.0, 0.0]
    assert table.loc["good", "n"] == 6
    assert table.loc["good", "genuine"] == 6 * 6 and table.loc["good", "impostor"] == 24 * 23 // 2 - 36
    # the poor subject's EER from bob.measure on the same cosine scores
    unit = poor / np.linalg.norm(poor, axis=1, keepdims=True)
    sims = unit @ unit.T
    i, j = np.triu_indices(24, 1)
    same = ids[i] == ids[j]
    neg, pos = sims[i, j][~same], sims[i, j][same]
    threshold = bob.eer_threshold(neg, pos)
    far, frr = bob.farfrr(neg, pos, threshold)
    assert table.loc["poor", "eer"] == pytest.approx((far + frr) / 2, abs=0.02)
    assert table.loc["poor", "ci_low"] <= table.loc["poor", "eer"] <= table.loc["poor", "ci_high"]
    numbers = fcomp.competence_numbers(table)
    assert numbers["good"] == {"eer": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 6}
    # a random network fails the gate, a perfect one passes
    assert list(competence_gates(numbers)) == ["poor"]


def test_competence_table_refuses_a_study_without_test_images(monkeypatch):
    frame = pd.DataFrame({"identity": [], "path": []})
    monkeypatch.setattr(fcomp, "verifiable_frame", lambda study, f: f)
    with pytest.raises(ValueError, match="no test images"):
        fcomp.competence_table(_study(frame), progress=False)
