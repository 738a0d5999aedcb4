"""Cosine similarity: the one definition every faceexp score uses.

The rule for a zero vector, everywhere: its cosine similarity with anything is
0 (as ``sklearn.metrics.pairwise.cosine_similarity``), never an error and never
NaN. NaN or infinite values are refused with a ValueError naming the input.

* :func:`cosine_rows`: row by row, ``a[k]`` with ``b[k]`` (numpy).
* :func:`cosine_to`: every row of a (N, D) tensor with one (D,) vector (torch,
  on the tensors' device; the explainer's target: one matrix-vector product,
  nothing of size (N, D) allocated).
* :func:`pair_cosine`: pairs ``(i, j)`` of rows of one (N, D) matrix, which may
  be a memory-mapped file far larger than memory (verification scores).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["cosine_rows", "cosine_to", "pair_cosine", "pair_positions"]

_MB = 1 << 20


def _check_finite(values: np.ndarray, name: str) -> None:
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(f"{name} holds NaN or infinite values (row {row})")


def cosine_rows(a, b, *, name: str = "embeddings") -> np.ndarray:
    """Cosine similarity of ``a[k]`` and ``b[k]`` for every row k.

    Parameters
    ----------
    a, b : array_like, shape (n, D)
    name : str
        What the arrays are, for error messages.

    Returns
    -------
    numpy.ndarray, shape (n,), float64 in [-1, 1]; 0 where a vector is zero.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"{name} must be two arrays of one shape (n, D), got {a.shape} and "
                         f"{b.shape}")
    dots = np.einsum("ij,ij->i", a, b)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    _check_finite(dots + norms, name)
    return np.clip(np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0), -1.0, 1.0)


def cosine_to(activations: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of ``activations`` (N, D) with ``reference`` (D,).

    One matrix-vector product and one norm reduction, on the activations'
    device, in their precision (half precision is computed in float32).
    Non-finite activations give non-finite similarities (callers that need
    finite values check them).

    Returns
    -------
    torch.Tensor, shape (N,); 0 where a row or the reference is zero.
    """
    if not activations.is_floating_point() or activations.dtype in (torch.float16,
                                                                   torch.bfloat16):
        activations = activations.float()
    reference = reference.to(device=activations.device, dtype=activations.dtype)
    dots = activations @ reference
    denominators = torch.linalg.vector_norm(activations, dim=1) * torch.linalg.vector_norm(
        reference)
    return torch.where(denominators == 0, torch.zeros_like(dots), dots / denominators)


def pair_positions(pairs, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions ``(i, j)`` of pairs: a DataFrame with int columns ``i``, ``j``
    (e.g. from :func:`faceexp.verify.protocol.verification_pairs`) or an int array (P, 2);
    every position must lie in ``[0, n_rows)``."""
    if hasattr(pairs, "columns"):  # a pandas DataFrame
        if not {"i", "j"} <= set(pairs.columns):
            raise ValueError(f"pairs must have columns 'i' and 'j'; it has {list(pairs.columns)}")
        i, j = pairs["i"].to_numpy(), pairs["j"].to_numpy()
    else:
        array = np.asarray(pairs)
        if array.ndim != 2 or array.shape[1] != 2:
            raise ValueError(
                f"pairs must be a DataFrame with columns i, j or an array of shape (P, 2), got shape {array.shape}"
            )
        i, j = array[:, 0], array[:, 1]
    if not (np.issubdtype(i.dtype, np.integer) and np.issubdtype(j.dtype, np.integer)):
        if i.size and j.size:
            raise ValueError("pairs' i and j must be integer row positions")
        i, j = i.astype(np.int64), j.astype(np.int64)
    for name, idx in (("i", i), ("j", j)):
        if idx.size and (idx.min() < 0 or idx.max() >= n_rows):
            raise ValueError(f"pairs' {name} must be row positions in [0, {n_rows}) of the embeddings")
    return i.astype(np.int64), j.astype(np.int64)


def _row_norms(x, rows: np.ndarray, block: int) -> np.ndarray:
    norms = np.empty(len(rows), dtype=np.float64)
    for s in range(0, len(rows), block):
        chunk = np.asarray(x[rows[s:s + block]], dtype=np.float64)
        norms[s:s + block] = np.sqrt(np.einsum("ij,ij->i", chunk, chunk))
    return norms


def pair_cosine(x, i, j, *, chunk_bytes: int = 64 * _MB, method: str = "auto",
                name: str = "embeddings") -> np.ndarray:
    """Cosine similarity of rows ``x[i]`` and ``x[j]``, reading ``x`` in bounded chunks.

    Parameters
    ----------
    x : array_like, shape (N, D)
        Descriptors; may be a memory-mapped ``.npy`` file.
    i, j : array_like of int, shape (P,)
        Row positions of the pairs.
    chunk_bytes : int
        About how many bytes of rows are read at a time.
    method : {"auto", "gram", "gather"}
        "gram" computes the Gram matrix of the rows used (BLAS, |U|^2 D flops,
        each row read a few times; repeated and mirrored pairs cost nothing),
        "gather" the pairs' dot products (P D, two row copies per pair);
        "auto" picks gram when ``|U|^2 <= 64 P``.
    name : str
        What ``x`` is, for error messages.

    Returns
    -------
    numpy.ndarray, shape (P,), float64 in [-1, 1]; 0 where a vector is zero.
    Products are computed in float64 for float64 input and in float32 for
    float32 input (gram) or accumulated in float64 (gather).
    """
    if method not in ("auto", "gram", "gather"):
        raise ValueError(f"method must be 'auto', 'gram' or 'gather', got {method!r}")
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    n, d = x.shape
    dtype = np.float64 if np.asarray(x[:0]).dtype == np.float64 else np.float32
    used = np.unique(np.concatenate([i, j]))
    rows = max(1, int(chunk_bytes // (8 * max(d, 1))))
    norms = _row_norms(x, used, rows)
    if not np.isfinite(norms).all():
        raise ValueError(f"{name} holds NaN or infinite values (row "
                         f"{int(used[np.flatnonzero(~np.isfinite(norms))[0]])})")
    safe = np.where(norms > 0, norms, 1.0)        # a zero vector scores 0 with anything
    position = np.searchsorted(used, np.arange(n))  # only read at used rows
    if method == "auto":
        method = "gram" if len(used) ** 2 <= 64 * len(i) else "gather"
    scores = np.empty(len(i), dtype=np.float64)
    itemsize = np.dtype(dtype).itemsize
    if method == "gram":
        block = max(1, int(chunk_bytes // (2 * itemsize * max(d, 1))))
        gram = np.empty((len(used), len(used)), dtype=np.float64)
        for a in range(0, len(used), block):
            xa = np.asarray(x[used[a:a + block]], dtype=dtype)
            xa = xa / safe[a:a + block, None].astype(dtype)
            for b in range(a, len(used), block):
                if b == a:
                    xb = xa
                else:
                    xb = np.asarray(x[used[b:b + block]], dtype=dtype)
                    xb = xb / safe[b:b + block, None].astype(dtype)
                part = xa @ xb.T
                gram[a:a + block, b:b + block] = part
                gram[b:b + block, a:a + block] = part.T
        scores[:] = gram[position[i], position[j]]
    else:
        block = max(1, int(chunk_bytes // (3 * itemsize * max(d, 1))))
        for s in range(0, len(i), block):
            xi = np.asarray(x[i[s:s + block]], dtype=dtype)
            xj = np.asarray(x[j[s:s + block]], dtype=dtype)
            dots = np.einsum("pd,pd->p", xi, xj, dtype=np.float64)
            scores[s:s + block] = dots / (safe[position[i[s:s + block]]]
                                          * safe[position[j[s:s + block]]])
    return np.clip(scores, -1.0, 1.0)
