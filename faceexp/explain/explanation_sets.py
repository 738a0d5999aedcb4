"""Explaining a whole data set: one explanation file per image, resumable, shardable.

:func:`explain_set` explains every image of a one-folder-per-identity set and
writes each result with :meth:`faceexp.explain.explanation.Explanation.save` to
``out_dir/<identity>/<file>.npz``, mirroring the set's layout. It is built for
runs that take hours (the paper's VGGFace2-Pose: 11,040 images x 2 CNNs x 1000
samples):

* **resume**: a finished image's file is never recomputed (files are written
  atomically, so a file that exists is whole); a killed run started again
  continues where it stopped and ends with the same files as an uninterrupted run;
* **determinism**: image k of the set (in the set's sorted order) is explained
  with seed ``seed + k``, whatever process explains it and whenever;
* **sharding**: under ``torchrun --nproc_per_node N`` process r takes the images
  k with ``k % N == r`` (PyTorch's process group, :mod:`faceexp.core.distributed`;
  no scheduler of our own), so the union of the shards is a one-process run;
* **no lost work**: an image that cannot be read or explained is listed in
  ``failed-<rank>.csv`` with the reason, and the run goes on;
* **face boxes**: a frame with box columns (:data:`faceexp.data.BOX_COLUMNS`,
  e.g. :meth:`faceexp.data.Dataset.held_out_frame`) has each image read through its box.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from faceexp.core import checks
from faceexp.data.boxes import frame_boxes
from faceexp.explain.explainer import Explainer
from faceexp.core.files import remove_orphans, write_csv

__all__ = ["explain_set", "result_path"]


def result_path(out_dir, image: str) -> Path:
    """Where :func:`explain_set` writes the explanation of ``image`` (``"s1/1.pgm"``)."""
    return Path(out_dir) / f"{image}.npz"


def explain_set(frame: pd.DataFrame, embed: Callable, out_dir, *, read: Callable | None = None,
                seed: int = 0, rank: int = 0, world_size: int = 1, progress: bool = True,
                **options) -> pd.DataFrame:
    """Explain every image of ``frame`` into ``out_dir``, skipping finished ones.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns ``path`` and ``image`` (the path relative to the set's root, e.g.
        from :func:`faceexp.data.scan_identity_folders`); its row order is the
        order that numbers the images (and their seeds). With box columns
        (:data:`faceexp.data.BOX_COLUMNS`) each image is read as
        ``read(path, box=(x, y, w, h))``.
    embed : callable
        The embed callable handed to :class:`faceexp.explain.explainer.Explainer`.
    out_dir : str or Path
        Results: ``out_dir/<image>.npz`` (:func:`result_path`).
    read : callable, optional
        ``path -> (H, W, 3)`` float image in [0, 1] as ``embed`` expects it,
        accepting ``box=`` when the frame has boxes; default the paper's
        preprocessing (box crop, 113x113, :func:`faceexp.data.preprocessing.preprocessed_image`).
    seed : int
        Image k is explained with seed ``seed + k``.
    rank, world_size : int
        This process takes the images k with ``k % world_size == rank``.
    progress : bool
        A progress bar over this process's images.
    **options
        :class:`~faceexp.explain.explainer.Explainer` options (``layers``, ``n_samples``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per image of this process: ``image``, ``status`` ("done",
        "existing" or "failed"), ``reason`` and ``seconds``. Failures are also
        written to ``out_dir/failed-<rank>.csv`` (and warned).
    """
    from tqdm import tqdm

    missing = [c for c in ("path", "image") if c not in frame.columns]
    if missing:
        raise ValueError(f"frame must have the columns path and image (from "
                         f"faceexp.data.scan_identity_folders), it lacks {missing}")
    seed = checks.seed(seed)
    world_size = checks.positive_int(world_size, "world_size")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank!r}")
    if read is None:
        from faceexp.data.preprocessing import preprocessed_image as read
    boxes = frame_boxes(frame)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {str(out_dir)!r} is a file; give a folder")
    explainer = Explainer(embed, **options)

    mine = [k for k in range(len(frame)) if k % world_size == rank]
    for folder in {result_path(out_dir, frame["image"].iloc[k]).parent for k in mine}:
        remove_orphans(folder)
    rows, failed = [], []
    for k in tqdm(mine, desc=f"explain-set (process {rank + 1}/{world_size})", unit="image",
                  disable=not progress):
        image_name, path = frame["image"].iloc[k], frame["path"].iloc[k]
        target = result_path(out_dir, image_name)
        if target.exists():
            rows.append({"image": image_name, "status": "existing", "reason": "",
                         "seconds": 0.0})
            continue
        start = time.perf_counter()
        try:
            box = None if boxes is None else boxes[k]
            image = read(path) if box is None else read(path, box=box)
            explanation = explainer.explain(image, seed=seed + k)
            explanation.save(target, image=image)
        except (ValueError, OSError, RuntimeError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"could not explain {path}: {reason}", stacklevel=2)
            failed.append({"path": str(path), "image": image_name, "reason": reason})
            rows.append({"image": image_name, "status": "failed", "reason": reason,
                         "seconds": time.perf_counter() - start})
            continue
        rows.append({"image": image_name, "status": "done", "reason": "",
                     "seconds": time.perf_counter() - start})
    if failed:
        write_csv(pd.DataFrame(failed), out_dir / f"failed-{rank}.csv")
    return pd.DataFrame(rows, columns=["image", "status", "reason", "seconds"])
