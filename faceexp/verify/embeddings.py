"""Face descriptors with an on-disk cache.

Descriptors (paper, Sec. III-B): an image's descriptor is the average of the
descriptors of the image and of its horizontal mirror (after Duong et al.,
MobiFace). Both go through the network in one forward pass: each batch
stacks ``x`` and ``flip(x)``. :func:`compute_embeddings` returns one
``(N, D)`` float32 matrix per requested layer from one pass over the images.

Cache: with ``cache_dir`` (e.g. ``artifacts/embeddings``) results are stored
under ``cache_dir/<kind>-<key>/`` as one ``.npy`` file per layer plus
``meta.json`` (the key's fields, for people). The key is the SHA-256 of

* the model: ``model_id`` (the checkpoint's content hash,
  :func:`faceexp.models.checkpoint_hash`, a name such as
  ``"imagenet-mobilenetv2"``, or by default :func:`faceexp.models.state_dict_hash` of the
  embedder's weights), its architecture, pooling and input normalisation;
* the data: every image's path, file size and modification time, in order
  (:func:`frame_fingerprint`), or the bytes of an image array;
* the preprocessing: mode, the boxes used, ``flip_average``, input size;
* for pair scores, the pairs' ``(i, j)``;
* :data:`CACHE_VERSION`.

Layers are files inside the entry, so asking later for more layers computes
only the missing ones. Every file is written to a temporary name and moved
into place with ``os.replace``: a killed run leaves no half-written file
that a later run could read. A changed checkpoint, file or option gives
another key and never reads a stale entry. Large files are read back
memory-mapped (read-only arrays).

The per-layer score sweep of the paper's Fig. 8, which reuses this cache and
the image pass, is :mod:`faceexp.verify.layer_sweep`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from faceexp.core import checks
from faceexp import data as fdata
from faceexp.data import preprocessing as fpre
from faceexp.core.batching import BatchedEmbed
from faceexp.core.files import atomic_write, json_sha256, write_text
from faceexp.models.checkpoints import state_dict_hash

__all__ = [
    "CACHE_VERSION",
    "compute_embeddings",
    "frame_fingerprint",
]

#: Bumped when the descriptor definition or the cache layout changes.
CACHE_VERSION = 1

_MB = 1 << 20


# --------------------------------------------------------------------------- #
# Hashing
# --------------------------------------------------------------------------- #
def frame_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's images as files: path, size and mtime of each row, in order,
    and each row's face box (``faceexp.data.BOX_COLUMNS``) when the frame has one.

    Cheap (no image is read). A file replaced by one of the same size and
    modification time is not noticed.

    Raises
    ------
    FileNotFoundError
        A path does not exist (the message names it).
    """
    if not isinstance(frame, pd.DataFrame) or "path" not in frame.columns:
        raise ValueError("frame must be a pandas DataFrame with a 'path' column (see faceexp.data)")
    digest = hashlib.sha256()
    images = frame["image"].astype(str).tolist() if "image" in frame.columns \
        else [""] * len(frame)
    from faceexp.data.boxes import frame_boxes

    boxes = frame_boxes(frame) or [None] * len(frame)
    for path, image, box in zip(frame["path"].astype(str), images, boxes):
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"image file {path!r} (in frame['path']) does not exist") \
                from None
        digest.update(f"{path}\0{image}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
        digest.update(f"\0{box}\n".encode() if box is not None else b"\n")
    return digest.hexdigest()


def _boxes_fingerprint(boxes, frame) -> str | None:
    """Hash of the boxes the frame's rows use (looked up as FaceDataset does)."""
    if boxes is None:
        return None
    digest = hashlib.sha256()
    images = frame["image"].astype(str).tolist() if isinstance(frame, pd.DataFrame) \
        and "image" in frame.columns else []
    for image in images:
        stem, dot, ext = image.replace("\\", "/").rpartition(".")
        stem = stem if dot and "/" not in ext else image
        found = boxes.get(stem, boxes.get(image))
        digest.update(f"{image}\0{None if found is None else tuple(found)}\n".encode())
    return digest.hexdigest()


def safe_layer_name(layer: str) -> str:
    """A file name for a layer name: readable part + short hash (aliases never collide)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", layer)[:80]
    return f"{readable}-{hashlib.sha1(layer.encode()).hexdigest()[:8]}"


# --------------------------------------------------------------------------- #
# Atomic files
# --------------------------------------------------------------------------- #
def save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda file: np.save(file, array, allow_pickle=False))


def write_meta(entry: Path, fields: dict, layers: dict) -> None:
    meta_path = entry / "meta.json"
    known = {}
    if meta_path.is_file():
        try:
            known = json.loads(meta_path.read_text()).get("layers", {})
        except (OSError, ValueError):
            known = {}
    known.update(layers)
    text = json.dumps({"key": fields, "layers": known}, indent=1, sort_keys=True, default=str)
    write_text(meta_path, text)


def load_npy(path: Path, *, rows: int, mmap_threshold_mb: float, ndim: int):
    """The array at ``path``, or None when it is missing or does not fit."""
    if not path.is_file():
        return None
    mmap = "r" if path.stat().st_size > mmap_threshold_mb * _MB else None
    try:
        array = np.load(path, mmap_mode=mmap, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if array.ndim != ndim or array.shape[0] != rows:
        return None
    return array


# --------------------------------------------------------------------------- #
# Images
# --------------------------------------------------------------------------- #
class ImageSource:
    """Preprocessed images by row range, from a frame (decoded lazily) or an array."""

    def __init__(self, frame, *, boxes, mode, progress):
        self.boxes = boxes
        self.mode = mode
        self.progress = progress
        self._dataset = None
        if isinstance(frame, pd.DataFrame):
            if "path" not in frame.columns:
                raise ValueError(
                    "frame must have a 'path' column (e.g. faceexp.data.load_orl()) or be an "
                    "image array of shape (N, 3, H, W)"
                )
            if len(frame) == 0:
                raise ValueError("frame is empty; give at least one image")
            if boxes is not None and "image" not in frame.columns:
                raise ValueError("boxes need an 'image' column in frame to look the boxes up")
            self.frame = frame.reset_index(drop=True)
            self.array = None
            self.n = len(frame)
            self.size = (fpre.INPUT_SIZE, fpre.INPUT_SIZE)
            self.fields = {"images": frame_fingerprint(self.frame), "mode": mode,
                           "boxes": _boxes_fingerprint(boxes, self.frame)}
        elif isinstance(frame, (np.ndarray, torch.Tensor)):
            if boxes is not None:
                raise ValueError("boxes apply to image files; do not pass them with an image array")
            array = frame.detach().cpu() if isinstance(frame, torch.Tensor) \
                else torch.from_numpy(np.asarray(frame))
            if not array.is_floating_point() or array.dim() != 4 or array.shape[1] != 3 \
                    or array.shape[0] == 0:
                raise ValueError(
                    "an image array must be float in [0, 1] with shape (N, 3, H, W), N >= 1; "
                    f"got dtype {array.dtype}, shape {tuple(array.shape)}"
                )
            self.frame = None
            self.array = array.to(torch.float32).contiguous()
            self.n = int(array.shape[0])
            self.size = (int(array.shape[2]), int(array.shape[3]))
            digest = hashlib.sha256(self.array.numpy().tobytes()).hexdigest()
            self.fields = {"images": f"array:{tuple(self.array.shape)}:{digest}",
                           "mode": None, "boxes": None}
        else:
            raise ValueError(
                "frame must be a DataFrame with a 'path' column or a float image array "
                f"(N, 3, H, W); got {type(frame).__name__}"
            )
        self.fields["input_size"] = list(self.size)

    def dataset(self):
        if self._dataset is None:
            frame = self.frame
            if "identity" not in frame.columns:
                frame = frame.assign(identity="")
            dataset = fpre.FaceDataset(frame, boxes=self.boxes, mode=self.mode, train=False,
                                        progress=self.progress)
            if len(dataset) != self.n:
                skipped = dataset.report.paths
                raise ValueError(
                    f"{self.n - len(dataset)} image(s) of frame could not be read or "
                    f"preprocessed, e.g. {skipped[:3]}: drop them from the frame so that "
                    "descriptor rows match its rows"
                )
            self._dataset = dataset
        return self._dataset

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, rows: slice) -> torch.Tensor:
        return self.batch(*rows.indices(self.n)[:2])

    def batch(self, start: int, stop: int) -> torch.Tensor:
        if self.array is not None:
            return self.array[start:stop]
        dataset = self.dataset()
        return torch.stack([dataset[k][0] for k in range(start, stop)])


def _embedder_fields(embedder, model_id) -> dict:
    return {
        "model_id": str(model_id),
        "embedder": type(embedder).__name__,
        "arch": getattr(embedder, "arch", None),
        "pooling": getattr(embedder, "pooling", None),
        "normalize": getattr(embedder, "normalize", None),
    }


def _default_model_id(embedder, model_id, cache_dir):
    if model_id is not None:
        if not isinstance(model_id, str) or not model_id:
            raise ValueError(
                "model_id must be a non-empty string (e.g. checkpoint_hash(path)); "
                f"got {model_id!r}"
            )
        return model_id
    if cache_dir is None:
        return None
    model = getattr(embedder, "model", None)
    if isinstance(model, torch.nn.Module):
        return "state_dict:" + state_dict_hash(model)
    raise ValueError(
        "cache_dir needs model_id= to tell checkpoints apart: pass "
        "faceexp.models.checkpoint_hash(path), a name such as 'imagenet-mobilenetv2', "
        "or an embedder with a .model attribute"
    )


# --------------------------------------------------------------------------- #
# One pass over the images
# --------------------------------------------------------------------------- #
def embed_pass(embedder, images: ImageSource, layers, *, flip_average: bool, batch_size: int,
                progress: bool, allocate: Callable, desc: str) -> dict:
    """Run ``embedder`` over every image once; ``allocate(layer, (n, D))`` gives the outputs.

    Batching, padding of the last batch and flip-averaging are
    :class:`faceexp.core.batching.BatchedEmbed`'s (one batch of all images when they
    fit, so a few images are never padded to a full batch).
    """
    runner = BatchedEmbed(embedder, batch_size=min(batch_size, images.n),
                          flip_average=flip_average, layers=layers)
    outputs: dict = {}
    for start, stop, values in runner.batches(images, progress=progress, desc=desc):
        for layer, value in values.items():
            value = value.to("cpu", torch.float32)
            if layer not in outputs:
                outputs[layer] = allocate(layer, (images.n, int(value.shape[1])))
            elif outputs[layer].shape[1] != value.shape[1]:
                raise ValueError(f"embedder output {layer!r} changed width between batches")
            outputs[layer][start:stop] = value.numpy()
        del values
    return outputs


def in_memory(layer, shape):
    return np.empty(shape, dtype=np.float32)


# --------------------------------------------------------------------------- #
# Descriptors
# --------------------------------------------------------------------------- #
def compute_embeddings(
    embedder,
    frame,
    *,
    model_id: str | None = None,
    layers: Sequence[str] | None = None,
    flip_average: bool = True,
    batch_size: int = 50,
    cache_dir=None,
    boxes=None,
    mode: str = "resize-crop",
    progress: bool = True,
    mmap_threshold_mb: float = 256,
) -> dict[str, np.ndarray]:
    """Descriptors of every image for one or more layers, cached on disk.

    Parameters
    ----------
    embedder : callable
        ``embedder(batch) -> {layer: (M, D) tensor}`` for a float batch
        ``(M, 3, H, W)`` in [0, 1], e.g. :class:`faceexp.models.Embedder`.
        Its ``layers``, ``arch``, ``pooling``, ``normalize`` and ``model``
        attributes are used when present.
    frame : pandas.DataFrame or array, shape (N, 3, H, W)
        Images: a frame with a ``path`` column (and ``image`` when ``boxes``
        is given), read and preprocessed by :class:`faceexp.data.preprocessing.FaceDataset`,
        or an already preprocessed float image array (numpy or torch). Row
        ``k`` of each result belongs to ``frame.iloc[k]``.
    model_id : str, optional
        Identifies the weights in the cache key:
        ``faceexp.models.checkpoint_hash(path)`` or a name such as
        ``"imagenet-mobilenetv2"``. Default: :func:`faceexp.models.state_dict_hash` of
        ``embedder.model`` (a ``ValueError`` when the embedder has none and
        ``cache_dir`` is given). Not needed without ``cache_dir``.
    layers : sequence of str, optional
        Layers to return; default ``embedder.layers``. Must be among the
        embedder's outputs.
    flip_average : bool, default True
        Average each image's descriptor with its mirror's (paper, Sec. III-B).
        The forward batch then holds ``2 * batch_size`` images.
    batch_size : int, default 50
        Images per forward pass (before mirroring). All passes have the same
        size: the last batch is padded with copies of its last image (unless
        ``embedder.compiled`` is False), so a compiled embedder never
        recompiles.
    cache_dir : str or path-like, optional
        Where to read and write the cache; None computes every time.
    boxes : mapping or path-like, optional
        Face boxes, ``NAME_ID -> (x, y, w, h)`` (from
        :func:`faceexp.data.load_bounding_boxes`) or the CSV file itself;
        only with ``mode="resize-crop"`` and a frame.
    mode : {"resize-crop", "aligned"}
        Preprocessing, see :func:`faceexp.data.preprocessing.preprocess` (frames only).
    progress : bool, default True
        A tqdm bar while computing.
    mmap_threshold_mb : float, default 256
        Cached layers larger than this are returned memory-mapped (read-only).

    Returns
    -------
    dict of str to numpy.ndarray
        ``layer -> (N, D)`` float32 descriptors (flip-averaged, not
        re-normalised; cosine scores normalise them), in ``layers`` order.

    Raises
    ------
    ValueError
        Bad options, an image that cannot be read (FaceDataset drops it; the
        rows would not match the frame), an embedder output of the wrong
        shape, ``cache_dir`` without a way to identify the model.
    FileNotFoundError
        A path of the frame or the boxes file does not exist.
    """
    batch_size = checks.positive_int(batch_size, "batch_size")
    if not callable(embedder):
        raise ValueError(
            f"embedder must be callable (e.g. faceexp.models.Embedder); got {embedder!r}"
        )
    if isinstance(boxes, (str, os.PathLike)):
        boxes = fdata.load_bounding_boxes(boxes)
    if mode not in ("resize-crop", "aligned"):
        raise ValueError(f"mode must be 'resize-crop' or 'aligned'; got {mode!r}")
    available = getattr(embedder, "layers", None)
    if layers is None:
        if available is None:
            raise ValueError("pass layers=[...]: the embedder has no .layers attribute")
        layers = tuple(available)
    if isinstance(layers, str):
        layers = (layers,)
    layers = tuple(layers)
    if not layers or len(set(layers)) != len(layers) or not all(isinstance(x, str) for x in layers):
        raise ValueError(f"layers must be distinct layer names, at least one; got {list(layers)}")
    if available is not None:
        unknown = [x for x in layers if x not in tuple(available)]
        if unknown:
            raise ValueError(
                f"layers {unknown} are not outputs of the embedder (it gives {list(available)}); "
                "build the Embedder with those layers"
            )
    model_id = _default_model_id(embedder, model_id, cache_dir)
    images = ImageSource(frame, boxes=boxes, mode=mode, progress=progress)

    results: dict = {}
    entry = fields = None
    if cache_dir is not None:
        fields = {"kind": "embeddings", "version": CACHE_VERSION,
                  **_embedder_fields(embedder, model_id), **images.fields,
                  "flip_average": bool(flip_average), "n": images.n}
        entry = Path(cache_dir) / f"emb-{json_sha256(fields)[:24]}"
        for layer in layers:
            cached = load_npy(entry / f"{safe_layer_name(layer)}.npy", rows=images.n,
                               mmap_threshold_mb=mmap_threshold_mb, ndim=2)
            if cached is not None:
                results[layer] = cached
    missing = [layer for layer in layers if layer not in results]
    if missing:
        computed = embed_pass(embedder, images, missing, flip_average=flip_average,
                               batch_size=batch_size, progress=progress, allocate=in_memory,
                               desc=f"embedding {images.n} images")
        results.update(computed)
        if entry is not None:
            for layer in missing:
                save_npy(entry / f"{safe_layer_name(layer)}.npy", computed[layer])
            write_meta(entry, fields, {
                layer: {"file": f"{safe_layer_name(layer)}.npy", "shape": list(computed[layer].shape)}
                for layer in missing})
    return {layer: results[layer] for layer in layers}
