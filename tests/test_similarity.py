"""faceexp.core.similarity: one cosine, checked against scikit-learn, with one rule for zero vectors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics.pairwise import cosine_similarity

from faceexp.core.similarity import cosine_rows, cosine_to, pair_cosine, pair_positions


def test_cosine_rows_match_sklearn_and_zero_rule():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    a[3] = 0.0                                   # sklearn: a zero vector has similarity 0
    expected = np.diag(cosine_similarity(a, b))
    np.testing.assert_allclose(cosine_rows(a, b), expected, atol=1e-12)
    assert cosine_rows(a, b)[3] == 0.0
    with pytest.raises(ValueError, match="NaN or infinite"):
        cosine_rows(np.array([[np.nan, 1.0]]), np.ones((1, 2)))
    with pytest.raises(ValueError, match="one shape"):
        cosine_rows(np.ones((2, 3)), np.ones((3, 3)))


def test_cosine_to_matches_sklearn_in_float32_and_float64():
    rng = np.random.default_rng(1)
    x, r = rng.normal(size=(6, 9)), rng.normal(size=9)
    x[2] = 0.0
    expected = cosine_similarity(x, r[None])[:, 0]
    for dtype in (torch.float32, torch.float64, torch.float16):
        got = cosine_to(torch.tensor(x, dtype=dtype), torch.tensor(r))
        np.testing.assert_allclose(got.double().numpy(), expected,
                                   atol=1e-2 if dtype == torch.float16 else 1e-6)
        assert got[2] == 0.0
    assert torch.all(cosine_to(torch.ones(3, 2), torch.zeros(2)) == 0)


@pytest.mark.parametrize("method", ["gram", "gather", "auto"])
def test_pair_cosine_matches_sklearn_and_keeps_float64(method):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(11, 4))
    i, j = np.array([0, 3, 3, 10, 5]), np.array([1, 3, 7, 0, 5])
    full = cosine_similarity(x)
    got = pair_cosine(x, i, j, chunk_bytes=64, method=method)
    np.testing.assert_allclose(got, full[i, j], atol=1e-12)      # float64 in, float64 products
    x[7] = 0.0
    assert pair_cosine(x, i, j, method=method)[2] == 0.0
    x[1] = np.inf
    with pytest.raises(ValueError, match=r"x holds NaN or infinite values \(row 1\)"):
        pair_cosine(x, i, j, method=method, name="x")


def test_pair_positions_from_frame_and_array():
    import pandas as pd

    i, j = pair_positions(pd.DataFrame({"i": [0, 2], "j": [1, 0]}), 3)
    assert i.tolist() == [0, 2] and j.tolist() == [1, 0]
    i, j = pair_positions(np.array([[1, 2]]), 3)
    assert (i[0], j[0]) == (1, 2)
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        pair_positions(np.array([[0, 3]]), 3)
    with pytest.raises(ValueError, match="columns 'i' and 'j'"):
        pair_positions(pd.DataFrame({"a": [0]}), 3)
