"""The score of every verification pair for every layer of a network (paper, Fig. 8).

Flattened early layers are huge, so :func:`layer_sweep_scores` works within a
memory budget: layers are grouped so that one group's descriptors fit, one pass
over the images per group (:func:`plan_layer_groups`); a layer too big on its
own is written to a temporary memory-mapped file and scored from it in chunks
(:func:`faceexp.core.similarity.pair_cosine`). Only the scores are cached, keyed as
:mod:`faceexp.verify.embeddings` keys its descriptors (whose cache files and image
pass this module shares).
"""
from __future__ import annotations

import gc
import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from faceexp.core import checks
from faceexp.core.files import json_sha256
from faceexp import data as fdata
from faceexp.verify.embeddings import (CACHE_VERSION, embed_pass, ImageSource, in_memory, load_npy,
                                safe_layer_name, save_npy, write_meta)
from faceexp.models.checkpoints import state_dict_hash
from faceexp.core.similarity import pair_cosine, pair_positions

__all__ = ["layer_sweep_scores", "plan_layer_groups"]

_MB = 1 << 20


def plan_layer_groups(dims: Mapping[str, int], n_images: int, *, memory_budget_mb: float,
                      batch_size: int = 50, flip_average: bool = True
                      ) -> list[tuple[tuple[str, ...], bool]]:
    """Group layers so that each group's descriptors fit a memory budget.

    A layer of width D costs ``(n_images + forward batch) * D * 4`` bytes:
    its float32 descriptors of every image, plus the network's output for
    one forward batch (``2 * batch_size`` images with ``flip_average``).
    Layers are taken in the given order (give them in forward order: a
    group then stops early in the network) and added to the current group
    while the sum fits; a layer whose descriptors alone (``n_images * D * 4``)
    exceed the budget gets a group of its own, stored on disk. A layer whose
    descriptors fit but whose cost with the forward batch does not also gets
    a group of its own, in memory (a smaller ``batch_size`` avoids that).

    Parameters
    ----------
    dims : mapping of str to int
        Layer name -> descriptor width D, in the order to process.
    n_images : int
    memory_budget_mb : float
    batch_size : int, default 50
    flip_average : bool, default True

    Returns
    -------
    list of (tuple of str, bool)
        The groups in order, each with ``True`` when its one layer goes to a
        memory-mapped file on disk.
    """
    n_images = checks.positive_int(n_images, "n_images")
    batch_size = checks.positive_int(batch_size, "batch_size")
    if not isinstance(memory_budget_mb, (int, float, np.number)) or isinstance(
            memory_budget_mb, bool) or not memory_budget_mb > 0:
        raise ValueError(f"memory_budget_mb must be a positive number; got {memory_budget_mb!r}")
    budget = float(memory_budget_mb) * _MB
    forward = min(batch_size, n_images) * (2 if flip_average else 1)
    groups, current, used = [], [], 0.0
    for layer, d in dims.items():
        d = checks.positive_int(d, f"dims[{layer!r}]")
        if n_images * d * 4 > budget:
            if current:
                groups.append((tuple(current), False))
                current, used = [], 0.0
            groups.append(((layer,), True))
            continue
        cost = (n_images + forward) * d * 4
        if current and used + cost > budget:
            groups.append((tuple(current), False))
            current, used = [], 0.0
        current.append(layer)
        used += cost
    if current:
        groups.append((tuple(current), False))
    return groups


def _forward_order(embedder, layers: tuple) -> tuple:
    arch = getattr(embedder, "arch", None)
    if arch is None:
        return layers
    from faceexp import models as fmodels

    try:
        names = fmodels.layer_catalogue(arch)["name"].tolist()
        where = {name: k for k, name in enumerate(names)}
        rank = {layer: where.get(fmodels.resolve_layer(arch, layer), len(names))
                for layer in layers}
    except ValueError:
        return layers
    return tuple(sorted(layers, key=lambda layer: rank[layer]))


def _layer_dims(embedder, images: ImageSource, layers: tuple) -> dict:
    dims_of = getattr(embedder, "output_dims", None)
    if callable(dims_of) and images.size[0] == images.size[1]:
        dims = dims_of(input_size=images.size[0])
        return {layer: int(dims[layer]) for layer in layers}
    out = embedder(images.batch(0, 1))  # one image, to read the widths
    return {layer: int(torch.as_tensor(out[layer]).reshape(1, -1).shape[1]) for layer in layers}


def layer_sweep_scores(
    model,
    frame,
    pairs,
    *,
    layers: Sequence[str],
    pooling: str = "flatten",
    flip_average: bool = True,
    memory_budget_mb: float = 2000,
    batch_size: int = 50,
    cache_dir=None,
    model_id: str | None = None,
    boxes=None,
    mode: str = "resize-crop",
    device=None,
    compile: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Cosine score of every pair for every layer, within a memory budget (paper, Fig. 8).

    Flattened early layers are huge (MobileNetV2 at 113x113 with stride 1:
    about 1.2 M values per image for an expanded layer, about 30 M for all
    layers together), so the layers are grouped (:func:`plan_layer_groups`)
    and the images are embedded once per group; the group's pair scores are
    computed (rows L2-normalised, pairs scored in chunks) and its
    descriptors freed before the next group. A layer whose descriptors
    alone exceed the budget is written to a float32 ``.npy`` memory map in a
    temporary folder (``cache_dir/tmp``, or the system's temporary folder
    without ``cache_dir``), scored from it in chunks and deleted.

    The budget covers the descriptors and one forward batch of the group's
    outputs; the network's weights, its other activations and the decoded
    images come on top (about 1 GB for MobileNetV2 at batch 50 with flips).
    A layer on disk still needs one forward batch of its outputs in memory.

    Parameters
    ----------
    model : torch.nn.Module or callable
        A network from :func:`faceexp.models.build_model` /
        :func:`~faceexp.models.load_checkpoint` (each group gets an
        ``Embedder(model, group, pooling=pooling, device=device,
        compile=compile)``), or a factory ``layers_tuple -> embedder``.
    frame : pandas.DataFrame or array (N, 3, H, W)
        Images, as in :func:`compute_embeddings`.
    pairs : pandas.DataFrame with int columns ``i``, ``j``, or array (P, 2)
        Rows of ``frame`` to compare (e.g.
        ``faceexp.verify.protocol.verification_pairs``).
    layers : sequence of str
        Layer names or aliases, e.g. ``layer_catalogue("mobilenetv2")["name"]``
        minus the input ``"x"``.
    pooling : {"flatten", "mean"}, default "flatten"
        How a (C, H, W) activation becomes a vector (see Embedder).
    flip_average : bool, default True
        As in :func:`compute_embeddings`.
    memory_budget_mb : float, default 2000
        Budget for one group's descriptors plus a forward batch of its outputs.
    batch_size : int, default 50
        Images per forward pass (before mirroring); fewer lets bigger groups fit.
    cache_dir : path-like, optional
        Cache of the scores: one ``(P,)`` file per layer, keyed like
        :func:`compute_embeddings` plus the pairs. A killed sweep resumes at
        the first layer whose scores are missing.
    model_id : str, optional
        As in :func:`compute_embeddings`; default :func:`faceexp.models.state_dict_hash` of
        ``model`` (required with a factory and ``cache_dir``).
    boxes, mode
        Preprocessing of a frame, as in :func:`compute_embeddings`.
    device, compile
        Passed to the Embedder built for each group (``model`` a module).
    progress : bool, default True
        tqdm bars over groups and batches.

    Returns
    -------
    pandas.DataFrame
        P rows (``pairs``' index) x one float64 column of cosine scores per
        layer (in ``layers`` order); higher is more similar. A zero
        descriptor scores 0 against anything.
    """
    if isinstance(layers, str):
        layers = (layers,)
    layers = tuple(layers)
    if not layers or len(set(layers)) != len(layers) or not all(isinstance(x, str) for x in layers):
        raise ValueError(f"layers must be distinct layer names, at least one; got {list(layers)}")
    if pooling not in ("flatten", "mean"):
        raise ValueError(f"pooling must be 'flatten' or 'mean'; got {pooling!r}")
    batch_size = checks.positive_int(batch_size, "batch_size")
    if isinstance(memory_budget_mb, bool) or not isinstance(memory_budget_mb, (int, float)) \
            or not memory_budget_mb > 0:
        raise ValueError(f"memory_budget_mb must be a positive number; got {memory_budget_mb!r}")
    if mode not in ("resize-crop", "aligned"):
        raise ValueError(f"mode must be 'resize-crop' or 'aligned'; got {mode!r}")
    if isinstance(boxes, (str, os.PathLike)):
        boxes = fdata.load_bounding_boxes(boxes)

    if isinstance(model, torch.nn.Module):
        from faceexp.models import Embedder

        module = model

        def factory(group):
            return Embedder(module, group, pooling=pooling, device=device, compile=compile)

        if model_id is None and cache_dir is not None:
            model_id = "state_dict:" + state_dict_hash(module)
    elif callable(model):
        factory = model
        if model_id is None and cache_dir is not None:
            raise ValueError(
                "with an embedder factory and cache_dir, pass model_id= (e.g. "
                "faceexp.models.checkpoint_hash(path)) so that the cache follows the weights"
            )
    else:
        raise ValueError(
            "model must be a torch.nn.Module or a factory layers -> embedder; "
            f"got {type(model).__name__}"
        )
    if model_id is not None and (not isinstance(model_id, str) or not model_id):
        raise ValueError(f"model_id must be a non-empty string; got {model_id!r}")

    images = ImageSource(frame, boxes=boxes, mode=mode, progress=progress)
    i, j = pair_positions(pairs, images.n)
    if len(i) == 0:
        raise ValueError("pairs is empty; give at least one pair")
    index = pairs.index if isinstance(pairs, pd.DataFrame) else pd.RangeIndex(len(i))
    scores: dict = {}
    entry = fields = None
    if cache_dir is not None:
        pair_hash = hashlib.sha256(np.stack([i, j]).tobytes()).hexdigest()
        fields = {"kind": "pair-scores", "version": CACHE_VERSION, "model_id": model_id,
                  "pooling": pooling, **images.fields, "flip_average": bool(flip_average),
                  "n": images.n, "pairs": pair_hash, "n_pairs": len(i)}
        entry = Path(cache_dir) / f"scores-{json_sha256(fields)[:24]}"
        for layer in layers:
            cached = load_npy(entry / f"{safe_layer_name(layer)}.npy", rows=len(i),
                               mmap_threshold_mb=float("inf"), ndim=1)
            if cached is not None:
                scores[layer] = cached
    todo = tuple(layer for layer in layers if layer not in scores)

    if todo:
        from tqdm import tqdm

        probe = factory(todo)
        probe_pooling = getattr(probe, "pooling", pooling)
        if probe_pooling != pooling:
            raise ValueError(
                f"the factory's embedders pool with {probe_pooling!r} but pooling={pooling!r}; "
                "make them agree"
            )
        order = _forward_order(probe, todo)
        dims = _layer_dims(probe, images, order)
        del probe
        groups = plan_layer_groups(dims, images.n, memory_budget_mb=memory_budget_mb,
                                   batch_size=batch_size, flip_average=flip_average)
        chunk_bytes = int(min(256 * _MB, max(8 * _MB, memory_budget_mb * _MB / 8)))
        tmp_root = Path(cache_dir) / "tmp" if cache_dir is not None else None
        bar = tqdm(groups, desc=f"layer sweep ({len(todo)} layers)", unit="group",
                   disable=not progress)
        for group, on_disk in bar:
            tmp_dir = None
            try:
                if on_disk:
                    if tmp_root is not None:
                        tmp_root.mkdir(parents=True, exist_ok=True)
                    tmp_dir = Path(tempfile.mkdtemp(prefix="sweep-", dir=tmp_root))

                    def allocate(layer, shape, _dir=tmp_dir):
                        return np.lib.format.open_memmap(
                            _dir / f"{safe_layer_name(layer)}.npy", mode="w+", dtype=np.float32,
                            shape=shape)
                else:
                    allocate = in_memory
                embedder = factory(group)
                arrays = embed_pass(embedder, images, group, flip_average=flip_average,
                                     batch_size=batch_size, progress=progress,
                                     allocate=allocate, desc=f"{group[0]} (+{len(group) - 1})")
                del embedder
                for layer in group:
                    x = arrays.pop(layer)
                    if on_disk:
                        x.flush()
                    scores[layer] = pair_cosine(x, i, j, chunk_bytes=chunk_bytes, name=layer)
                    del x
                    if entry is not None:
                        save_npy(entry / f"{safe_layer_name(layer)}.npy", scores[layer])
                del arrays
            finally:
                gc.collect()
                if tmp_dir is not None:
                    shutil.rmtree(tmp_dir, ignore_errors=True)
            if entry is not None:
                write_meta(entry, fields, {layer: {"file": f"{safe_layer_name(layer)}.npy"}
                                            for layer in group})
    return pd.DataFrame({layer: np.asarray(scores[layer], dtype=np.float64)
                         for layer in layers}, index=index)
