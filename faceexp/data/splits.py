"""Splits: disjoint training and test identities, and the per-identity validation hold-out."""
from __future__ import annotations

import zlib
from typing import Iterable

import numpy as np
import pandas as pd

from faceexp.data.folders import natural_sort_key

__all__ = [
    "split_identities",
    "validation_holdout",
]


def split_identities(
    identities: Iterable, *, test_fraction: float = 0.3, seed: int = 0
) -> tuple[list, list]:
    """Split identities into disjoint training and test sets.

    Verification must use identities the network never trained on (the
    paper trains on VGGFace2's 8,631 training identities and verifies on
    its test identities). The split is a seeded permutation of the unique
    identities in natural order, so it does not depend on input order.

    Parameters
    ----------
    identities : iterable
        Identity labels; repeats are allowed (e.g. ``frame["identity"]``).
    test_fraction : float, default 0.3
        Fraction of identities for the test side, in ``(0, 1)``; the count
        is ``round(test_fraction * n_identities)``.
    seed : int, default 0
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    train_ids, test_ids : list
        Disjoint lists of identities, each sorted in natural order.

    Raises
    ------
    ValueError
        If ``test_fraction`` is outside ``(0, 1)`` or either side would be
        empty.
    """
    if not (isinstance(test_fraction, (int, float)) and 0 < test_fraction < 1):
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    unique = sorted(set(identities), key=natural_sort_key)
    n = len(unique)
    n_test = int(round(test_fraction * n))
    if n_test == 0 or n_test == n:
        raise ValueError(
            f"test_fraction={test_fraction} of {n} identities leaves "
            f"{'no test' if n_test == 0 else 'no training'} identity: "
            "use more identities or a fraction nearer 0.5"
        )
    order = np.random.default_rng(seed).permutation(n)
    test = sorted((unique[i] for i in order[:n_test]), key=natural_sort_key)
    train = sorted((unique[i] for i in order[n_test:]), key=natural_sort_key)
    return train, test


def validation_holdout(
    frame: pd.DataFrame,
    *,
    fraction: float = 0.02,
    min_per_identity: int = 1,
    seed: int = 0,
) -> pd.Series:
    """Mark the paper's validation hold-out: a share of each identity's images.

    For an identity with ``n`` images, ``max(min_per_identity,
    floor(fraction * n))`` images are drawn at random for validation
    (paper: 2 % per identity, at least one; ORL's 10 images per identity
    give 1 each). The draw for an identity depends only on ``seed`` and
    the identity's name and images, not on the other identities.

    Parameters
    ----------
    frame : pandas.DataFrame
        Needs an ``identity`` column (e.g. from :func:`scan_identity_folders`).
    fraction : float, default 0.02
        Share of each identity's images held out, in ``[0, 1)``.
    min_per_identity : int, default 1
        Least number of validation images per identity (``>= 0``).
    seed : int, default 0
        Seed of the draws.

    Returns
    -------
    pandas.Series of bool
        Aligned with ``frame.index``; True marks a validation image.

    Raises
    ------
    ValueError
        If ``frame`` lacks ``identity``, the options are out of range, or an
        identity has too few images to give its validation images and keep
        at least one training image (the message names it; drop such
        identities first, as the paper drops MS1M identities with < 70
        images).
    """
    if not isinstance(frame, pd.DataFrame) or "identity" not in frame.columns:
        raise ValueError("frame must be a pandas DataFrame with an 'identity' column")
    if not (isinstance(fraction, (int, float)) and 0 <= fraction < 1):
        raise ValueError(f"fraction must be a number in [0, 1), got {fraction!r}")
    if isinstance(min_per_identity, bool) or not isinstance(min_per_identity, (int, np.integer)) \
            or min_per_identity < 0:
        raise ValueError(f"min_per_identity must be an integer >= 0, got {min_per_identity!r}")

    held = np.zeros(len(frame), dtype=bool)
    positions = pd.Series(np.arange(len(frame))).groupby(frame["identity"].to_numpy(), sort=False)
    for identity, pos in positions:
        pos = pos.to_numpy()
        n = len(pos)
        n_val = max(int(min_per_identity), int(np.floor(fraction * n + 1e-9)))
        if n_val == 0:
            continue
        if n_val >= n:
            raise ValueError(
                f"identity {identity!r} has {n} image(s): it cannot give {n_val} validation "
                f"image(s) and keep a training image; drop identities with fewer than "
                f"{n_val + 1} images or pass min_per_identity=0"
            )
        rng = np.random.default_rng([int(seed), zlib.crc32(str(identity).encode()), n])
        held[pos[rng.choice(n, size=n_val, replace=False)]] = True
    return pd.Series(held, index=frame.index, name="validation")
