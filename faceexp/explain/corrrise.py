"""CorrRISE (Lu, Xu and Ebrahimi, WACV 2024): similarity and dissimilarity maps of a pair, black box.

A verification explanation is two maps of the probe: what makes the pair
*similar* and what makes it *dissimilar*. CorrRISE draws random smooth masks
as RISE does (Petsiuk et al. 2018: a coarse ``grid`` x ``grid`` Bernoulli grid
that keeps a cell with probability ``p_keep``, upsampled bilinearly to
``(grid + 1)`` cells and cropped at a random shift below one cell), multiplies
the probe by each mask (removed pixels go to ``fill``, black by default),
scores every masked probe against the other image of the pair (e.g. the cosine
similarity of their embeddings), and correlates, pixel by pixel, the mask's
value with the score over the masks (Pearson). Where keeping a pixel goes with
a higher score (positive correlation) the pixel makes the pair similar: the
**similarity map** is ``max(r, 0)``; where keeping it goes with a lower score
the pixel makes them dissimilar: the **dissimilarity map** is ``max(-r, 0)``.

Written here because no installed library has it (captum and grad-cam have no
RISE; the authors' code is a script, not a package). The correlations are
accumulated batch by batch (sums of m, m^2, s, s^2 and m s), so memory does not
grow with the number of masks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from faceexp.core import checks
from faceexp.explain.lime_steps import as_image

__all__ = ["CorrRiseMaps", "corrrise", "rise_masks", "CORRRISE_MASKS", "CORRRISE_GRID",
           "CORRRISE_P_KEEP"]

#: Masks at its usual setting.
CORRRISE_MASKS = 1000
#: Side of the coarse grid of each mask (RISE's s).
CORRRISE_GRID = 8
#: Probability that a coarse cell is kept (RISE's p1).
CORRRISE_P_KEEP = 0.5


@dataclass
class CorrRiseMaps:
    """CorrRISE's result for one probe.

    Attributes
    ----------
    similarity : ndarray, float64, shape (H, W)
        ``max(r, 0)``: pixels whose presence raises the pair score.
    dissimilarity : ndarray, float64, shape (H, W)
        ``max(-r, 0)``: pixels whose presence lowers it.
    correlation : ndarray, float64, shape (H, W)
        ``r`` in [-1, 1], Pearson's correlation of mask value and score (0 where
        the mask or the score does not vary).
    scores : ndarray, float64, shape (n_masks,)
        The pair score of every masked probe.
    """

    similarity: np.ndarray
    dissimilarity: np.ndarray
    correlation: np.ndarray
    scores: np.ndarray


def rise_masks(n: int, shape: tuple[int, int], *, grid: int = CORRRISE_GRID,
               p_keep: float = CORRRISE_P_KEEP, rng: Any = 0) -> torch.Tensor:
    """RISE's random smooth masks.

    Parameters
    ----------
    n : int
    shape : (H, W)
    grid : int
        Coarse cells per side.
    p_keep : float in (0, 1)
        Probability that a coarse cell is 1 (kept).
    rng : int or numpy.random.Generator

    Returns
    -------
    torch.Tensor, float32, shape (n, H, W), values in [0, 1]
    """
    height, width = (int(s) for s in shape)
    rng = np.random.default_rng(rng)
    cell_h, cell_w = int(np.ceil(height / grid)), int(np.ceil(width / grid))
    cells = torch.from_numpy((rng.random((n, 1, grid, grid)) < p_keep).astype(np.float32))
    up = torch.nn.functional.interpolate(cells, size=((grid + 1) * cell_h, (grid + 1) * cell_w),
                                         mode="bilinear", align_corners=False)[:, 0]
    dy, dx = rng.integers(0, cell_h, n), rng.integers(0, cell_w, n)
    return torch.stack([up[k, dy[k]:dy[k] + height, dx[k]:dx[k] + width] for k in range(n)])


def corrrise(score: Callable, image: Any, *, n_masks: int = CORRRISE_MASKS,
             grid: int = CORRRISE_GRID, p_keep: float = CORRRISE_P_KEEP, seed: int = 0,
             fill: float = 0.0, batch_size: int = 32, progress: bool = False) -> CorrRiseMaps:
    """CorrRISE's similarity and dissimilarity maps of one probe (see the module docstring).

    Parameters
    ----------
    score : callable
        ``(B, 3, H, W)`` float32 tensor in [0, 1] (masked probes) -> ``(B,)``
        pair scores (tensor or array), e.g.
        ``lambda batch: model.similarity(batch, mate_embedding)``.
    image : array_like, shape (H, W, 3)
        The probe, uint8 or float in [0, 1].
    n_masks : int >= 2
    grid : int >= 1
    p_keep : float in (0, 1)
    seed : int
        Seed of the masks (``np.random.default_rng(seed)``).
    fill : float in [0, 1]
        Value of removed pixels (0: black, as RISE).
    batch_size : int
        Masked probes per call of ``score``.
    progress : bool

    Returns
    -------
    CorrRiseMaps
        Maps of shape (H, W).
    """
    from tqdm import tqdm

    if not callable(score):
        raise ValueError("score must be a callable mapping (B, 3, H, W) masked probes to (B,) "
                         "pair scores")
    face = torch.from_numpy(np.ascontiguousarray(as_image(image, "image").transpose(2, 0, 1)))
    n_masks = checks.positive_int(n_masks, "n_masks", 2)
    grid = checks.positive_int(grid, "grid")
    batch_size = checks.positive_int(batch_size, "batch_size")
    seed = checks.seed(seed)
    if not 0.0 < float(p_keep) < 1.0:
        raise ValueError(f"p_keep must lie strictly between 0 and 1, got {p_keep}")
    if not 0.0 <= float(fill) <= 1.0:
        raise ValueError(f"fill must lie in [0, 1] (0 = black), got {fill}")
    height, width = face.shape[1:]
    rng = np.random.default_rng(seed)
    sums = {key: torch.zeros(height, width, dtype=torch.float64) for key in ("m", "mm", "ms")}
    scores = np.empty(n_masks)
    for start in tqdm(range(0, n_masks, batch_size), disable=not progress, desc="corrrise",
                      unit="batch"):
        count = min(batch_size, n_masks - start)
        masks = rise_masks(count, (height, width), grid=grid, p_keep=p_keep, rng=rng)
        batch = face[None] * masks[:, None] + float(fill) * (1.0 - masks[:, None])
        value = score(batch)
        value = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        value = np.asarray(value, dtype=np.float64).reshape(-1)
        if value.shape != (count,) or not np.isfinite(value).all():
            raise ValueError(f"score returned {value.shape} values (or non-finite ones) for a "
                             f"batch of {count}; it must return one finite score per image")
        scores[start:start + count] = value
        m, s = masks.double(), torch.from_numpy(value)
        sums["m"] += m.sum(0)
        sums["mm"] += (m * m).sum(0)
        sums["ms"] += (m * s[:, None, None]).sum(0)
    n = float(n_masks)
    mean_m, mean_s = sums["m"] / n, scores.mean()
    covariance = sums["ms"] / n - mean_m * mean_s
    var_m = (sums["mm"] / n - mean_m ** 2).clamp_(min=0.0)
    var_s = max(float(np.mean((scores - mean_s) ** 2)), 0.0)
    denominator = torch.sqrt(var_m * var_s)
    correlation = torch.where(denominator > 1e-12, covariance / denominator.clamp(min=1e-300),
                              torch.zeros_like(covariance)).clamp_(-1.0, 1.0).numpy()
    return CorrRiseMaps(similarity=np.maximum(correlation, 0.0),
                        dissimilarity=np.maximum(-correlation, 0.0),
                        correlation=correlation, scores=scores)
