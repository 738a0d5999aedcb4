"""Explaining a whole data set: one explanation file per image, resumable, shardable.

:func:`explain_set` explains every image of a one-folder-per-identity set and
writes each result with :meth:`faceexp.explain.explanation.Explanation.save` to
``out_dir/<identity>/<file>.npz``, mirroring the set's layout. It is built for
runs that take hours (the paper's VGGFace2-Pose: 11,040 images x 2 CNNs x 1000
samples):

* **resume**: a finished image's file is never recomputed (files are written
  atomically, so a file that exists is whole); a killed run started again
  continues where it stopped and ends with the same files as an uninterrupted run;
* **results that know what made them**: every file records the run's settings
  (model and weights hash, layers, target, every explainer option, seed, faceexp's
  version; :func:`faceexp.explain.provenance.run_settings`) and its image's content
  hash, and the folder holds one ``manifest.json`` of the settings. A run on a
  folder whose manifest differs is refused, naming each differing setting
  (:class:`~faceexp.explain.provenance.SettingsDiffer`), unless ``restart=True``,
  which deletes the files other settings made. A file counts as finished only
  when its settings, image content, box and seed are this run's: an image whose
  content changed is explained again;
* **one run per folder**: the run holds a lock on ``out_dir``
  (:class:`faceexp.core.locks.FolderLock`, released by the kernel when the process
  ends, even by SIGKILL); a second run is refused
  (:class:`~faceexp.core.locks.FolderInUse`). Under torchrun, process 0 takes it
  for the whole run and tells the others whether they may start;
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
from faceexp.core.files import json_sha256, remove_orphans, write_csv
from faceexp.core.locks import FolderLock
from faceexp.data.boxes import frame_boxes
from faceexp.explain.explainer import Explainer
from faceexp.explain.explanation import read_provenance
from faceexp.explain.provenance import (describe_model, image_record, prepare_folder,
                                        run_settings)

__all__ = ["explain_set", "result_path"]


def result_path(out_dir, image: str) -> Path:
    """Where :func:`explain_set` writes the explanation of ``image`` (``"s1/1.pgm"``)."""
    return Path(out_dir) / f"{image}.npz"


def explain_set(frame: pd.DataFrame, embed: Callable, out_dir, *, read: Callable | None = None,
                seed: int = 0, rank: int = 0, world_size: int = 1, progress: bool = True,
                model: dict | None = None, restart: bool = False, **options) -> pd.DataFrame:
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
    model : dict, optional
        What ``embed`` is, as :func:`faceexp.explain.provenance.describe_model` gives
        it (pass ``describe_model(embed, checkpoint=path)`` to record the checkpoint);
        default ``describe_model(embed)``.
    restart : bool
        When ``out_dir``'s manifest records other settings: delete the files they
        made and explain those images again, instead of refusing.
    **options
        :class:`~faceexp.explain.explainer.Explainer` options (``layers``, ``n_samples``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per image of this process: ``image``, ``status`` ("done",
        "existing" or "failed"), ``reason`` (for "done", why a file that was there
        was replaced, if one was) and ``seconds``. Failures are also written to
        ``out_dir/failed-<rank>.csv`` (and warned).

    Raises
    ------
    faceexp.core.locks.FolderInUse
        Another run holds ``out_dir``.
    faceexp.explain.provenance.SettingsDiffer
        ``out_dir``'s manifest records other settings (and ``restart`` is False).
        Both are ValueErrors raised before any image is explained, by every
        process of a torchrun.
    """
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
    model = describe_model(embed) if model is None else dict(model)
    settings = run_settings(explainer, model, seed=seed, read=read)

    # One process takes the lock and checks (or writes) the manifest before any
    # work; under torchrun the others learn the outcome from it.
    shared = _process_group(world_size)
    lock = FolderLock(out_dir) if rank == 0 or not shared else None
    refusal = None
    if lock is not None:
        try:
            lock.acquire()
            remove_orphans(out_dir)             # a manifest whose write was killed
            prepare_folder(out_dir, settings, model, restart=restart)
        except Exception as exc:                # every process must hear of it
            lock.release()
            refusal = exc
    if shared:
        refusal = _from_process_zero(refusal)
    if refusal is not None:
        raise refusal
    try:
        return _explain_mine(frame, explainer, out_dir, read, boxes, settings, model, seed,
                             rank, world_size, progress)
    finally:
        if shared:
            _barrier()                          # the lock outlives every process's work
        if lock is not None:
            lock.release()


def _explain_mine(frame, explainer, out_dir, read, boxes, settings, model, seed, rank,
                  world_size, progress) -> pd.DataFrame:
    """The images k with k % world_size == rank, each explained unless its file is finished."""
    from tqdm import tqdm

    key = json_sha256(settings)
    (out_dir / f"failed-{rank}.csv").unlink(missing_ok=True)    # rewritten below if need be
    mine = [k for k in range(len(frame)) if k % world_size == rank]
    for folder in {result_path(out_dir, frame["image"].iloc[k]).parent for k in mine}:
        remove_orphans(folder)
    rows, failed = [], []
    for k in tqdm(mine, desc=f"explain-set (process {rank + 1}/{world_size})", unit="image",
                  disable=not progress):
        image_name, path = frame["image"].iloc[k], frame["path"].iloc[k]
        box = None if boxes is None else boxes[k]
        target = result_path(out_dir, image_name)
        start = time.perf_counter()
        try:
            record = image_record(path, box=box)
            replaced = _stale(target, key, record, seed + k)
            if replaced is None:
                rows.append({"image": image_name, "status": "existing", "reason": "",
                             "seconds": 0.0})
                continue
            image = read(path) if box is None else read(path, box=box)
            explanation = explainer.explain(image, seed=seed + k)
            explanation.provenance = dict(
                explanation.provenance or {}, model=model, settings=settings,
                settings_sha256=key, image=dict(record, name=image_name, index=k, seed=seed + k))
            explanation.save(target, image=image)
        except (ValueError, OSError, RuntimeError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"could not explain {path}: {reason}", stacklevel=3)
            failed.append({"path": str(path), "image": image_name, "reason": reason})
            rows.append({"image": image_name, "status": "failed", "reason": reason,
                         "seconds": time.perf_counter() - start})
            continue
        rows.append({"image": image_name, "status": "done", "reason": replaced,
                     "seconds": time.perf_counter() - start})
    if failed:
        write_csv(pd.DataFrame(failed), out_dir / f"failed-{rank}.csv")
    return pd.DataFrame(rows, columns=["image", "status", "reason", "seconds"])


def _stale(target: Path, key: str, record: dict, seed: int) -> str | None:
    """None when ``target`` is this run's finished file of the image; else why it is
    (re)computed ("" when there is no file)."""
    if not target.exists():
        return ""
    try:
        made = read_provenance(target)
    except ValueError:
        return "replaced: not a readable explanation file"
    if made is None:
        return "replaced: made by a faceexp that did not record its settings"
    if made.get("settings_sha256") != key:
        return "replaced: made with other settings"
    image = made.get("image") or {}
    if image.get("sha256") != record["sha256"]:
        return "replaced: the image's content changed"
    if image.get("box") != record["box"] or image.get("seed") != seed:
        return "replaced: the image's box or place in the set changed"
    return None


def _process_group(world_size: int) -> bool:
    """Whether the processes of this run share a torch process group (torchrun)."""
    import torch.distributed as dist

    return (world_size > 1 and dist.is_available() and dist.is_initialized()
            and dist.get_world_size() == world_size)


def _from_process_zero(value):
    """Process 0's ``value``, on every process of the group."""
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _barrier() -> None:
    from faceexp.core.distributed import barrier

    barrier()
