"""Running any embed callable over images: fixed-size batches, padding, flip-averaging.

Every faceexp path that embeds images goes through :class:`BatchedEmbed`: the
explainer's perturbed samples, the cached descriptors of
:func:`faceexp.verify.embeddings.compute_embeddings`, pixel removal, deletion curves
and the sampling study, and :class:`faceexp.models.Embedder`'s own chunking.
It owns four things that were once written in each of them:

* **batching**: images go to ``embed`` ``batch_size`` at a time;
* **padding**: a short last batch is padded to ``batch_size`` rows by
  repeating its last image (the padding rows are dropped from the output), so
  a compiled network always sees one shape and never recompiles;
* **flip-averaging** (paper III-B, after MobiFace): with ``flip_average`` each
  batch ``x`` goes through ``embed`` as one forward pass of ``[x; flip(x)]``
  and each image's descriptor is the mean of its own and its mirror's;
* **output checking**: whatever ``embed`` returns (an ``(N, D)`` tensor or
  array, or a dict of them by layer name) becomes ``{layer: (N, D) tensor}``
  (:func:`layer_outputs`), with errors that name the layer.

Device placement stays with ``embed`` (an :class:`~faceexp.models.Embedder`
moves its input to its device); the outputs are returned where ``embed`` put
them.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from faceexp.core import checks

__all__ = ["BatchedEmbed", "layer_outputs", "resolve_batch_size", "DEFAULT_BATCH_SIZE",
           "SINGLE_LAYER"]

#: Batch size of an embed callable that does not say which it prefers.
DEFAULT_BATCH_SIZE = 50
#: Name of the only "layer" of an embed callable that returns one array.
SINGLE_LAYER = "embedding"


def resolve_batch_size(embed: Callable, batch_size: int | None = None) -> int:
    """``batch_size`` if given (checked), else ``embed.preferred_batch_size`` if the
    callable has one (:class:`faceexp.models.Embedder` does), else 50."""
    if batch_size is None:
        batch_size = getattr(embed, "preferred_batch_size", None) or DEFAULT_BATCH_SIZE
    return checks.positive_int(batch_size, "batch_size")


def layer_outputs(output: Any, rows: int, layers: Sequence[str] | None = None,
                  *, finite: bool = False) -> dict[str, torch.Tensor]:
    """An embed callable's output as ``{layer: (rows, D) tensor}``.

    Parameters
    ----------
    output : tensor, ndarray, or dict of them
        What ``embed(batch)`` returned for a batch of ``rows`` images; a single
        array is the layer :data:`SINGLE_LAYER` ("embedding"), or the layer
        asked for when ``layers`` names one. Trailing dimensions are flattened.
    rows : int
        Number of images in the batch.
    layers : sequence of str, optional
        Layers to keep, in this order; default every layer returned.
    finite : bool
        Raise ValueError when a kept layer holds NaN or infinite values.

    Returns
    -------
    dict of str to torch.Tensor
        ``(rows, D)`` tensors, on the device ``embed`` returned them on.
    """
    if isinstance(output, Mapping):
        items = {str(name): value for name, value in output.items()}
    elif isinstance(output, (torch.Tensor, np.ndarray)):
        # One array: the layer "embedding", or the one layer asked for.
        single = layers[0] if layers is not None and len(layers) == 1 else SINGLE_LAYER
        items = {single: output}
    else:
        raise ValueError("embed must return an (N, D) tensor or array, or a dict of them by "
                         f"layer name, got {type(output).__name__}")
    if not items:
        raise ValueError("embed returned an empty dict; it must return at least one layer")
    names = list(items) if layers is None else list(layers)
    missing = [name for name in names if name not in items]
    if missing:
        raise ValueError(f"embed returned no layer {missing[0]!r}; it returned {list(items)} "
                         "(ask for layers the embed callable gives)")
    result = {}
    for name in names:
        value = items[name]
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"embed output {name!r} must be a tensor or numpy array, got "
                             f"{type(value).__name__}")
        if value.ndim < 2 or value.shape[0] != rows:
            raise ValueError(f"embed output {name!r} must have shape ({rows}, D) for a batch of "
                             f"{rows} images, got {tuple(value.shape)}")
        value = value.reshape(rows, -1)
        if finite and not torch.isfinite(value).all():
            raise ValueError(f"embed output {name!r} holds NaN or infinite values")
        result[name] = value
    return result


class BatchedEmbed:
    """Any embed callable, run ``batch_size`` images at a time.

    Parameters
    ----------
    embed : callable
        Maps a float32 batch ``(N, 3, H, W)`` in [0, 1] to an ``(N, D)`` tensor
        or array, or to a dict of them by layer name (e.g.
        :class:`faceexp.models.Embedder`, a face recogniser, any function).
    batch_size : int, optional
        Images per call of ``embed`` (before mirroring). None:
        ``embed.preferred_batch_size`` where it has one, else 50.
    pad : bool, optional
        Pad a short batch to ``batch_size`` rows by repeating its last image.
        None: pad unless ``embed.compiled`` is False (an uncompiled network
        gains nothing from one shape; an unknown callable may be compiled).
    flip_average : bool, default False
        Average each image's output with its horizontal mirror's (one forward
        pass of ``2 * batch_size`` images).
    layers : sequence of str, optional
        Layers to keep from a dict output; default all.
    finite : bool, default False
        Raise ValueError when ``embed`` returns NaN or infinite values.

    Notes
    -----
    Calls run under ``torch.inference_mode()``; outputs are float32 tensors
    (inference tensors: use out-of-place operations on them, or ``.clone()``).
    """

    def __init__(self, embed: Callable, *, batch_size: int | None = None,
                 pad: bool | None = None, flip_average: bool = False,
                 layers: Sequence[str] | None = None, finite: bool = False):
        if not callable(embed):
            raise ValueError("embed must be a callable mapping (N, 3, H, W) batches in [0, 1] "
                             f"to embeddings, got {type(embed).__name__}")
        self.embed = embed
        self.batch_size = resolve_batch_size(embed, batch_size)
        self.pad = bool(getattr(embed, "compiled", True)) if pad is None else bool(pad)
        self.flip_average = bool(flip_average)
        self.layers = None if layers is None else [str(x) for x in layers]
        self.finite = bool(finite)

    def __repr__(self) -> str:
        return (f"BatchedEmbed({self.embed!r}, batch_size={self.batch_size}, pad={self.pad}, "
                f"flip_average={self.flip_average})")

    def run(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Embed at most ``batch_size`` images in one call of ``embed``.

        Parameters
        ----------
        batch : torch.Tensor, shape (n, 3, H, W), n <= batch_size

        Returns
        -------
        dict of str to torch.Tensor
            ``(n, D)`` float32 per layer (padding rows dropped, mirrors averaged).
        """
        real = int(batch.shape[0])
        if real == 0 or real > self.batch_size:
            raise ValueError(f"batch must hold 1..{self.batch_size} images, got {real}")
        if self.pad and real < self.batch_size:
            batch = torch.cat([batch, batch[-1:].expand(self.batch_size - real,
                                                        *batch.shape[1:])])
        width = int(batch.shape[0])
        if self.flip_average:
            batch = torch.cat([batch, batch.flip(-1)])
        with torch.inference_mode():
            outputs = layer_outputs(self.embed(batch), int(batch.shape[0]), self.layers,
                                    finite=self.finite)
            result = {}
            for name, value in outputs.items():
                value = value.float()
                if self.flip_average:
                    value = (value[:real] + value[width:width + real]) * 0.5
                else:
                    value = value[:real]
                result[name] = value
        return result

    def batches(self, images, *, progress: bool = False, desc: str = "embed"
                ) -> Iterator[tuple[int, int, dict[str, torch.Tensor]]]:
        """Embed every image, one batch at a time.

        Parameters
        ----------
        images : tensor or array (N, 3, H, W), or any object with ``len()`` whose
            slices ``images[start:stop]`` are such tensors (read lazily).
        progress : bool
            A tqdm bar over the images.

        Yields
        ------
        (start, stop, outputs)
            Rows ``start:stop`` of the input and their ``{layer: (stop - start, D)}``.
        """
        from tqdm import tqdm

        if isinstance(images, np.ndarray):
            images = torch.from_numpy(images)
        n = len(images)
        with tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False) as bar:
            for start in range(0, n, self.batch_size):
                stop = min(start + self.batch_size, n)
                batch = images[start:stop]
                if isinstance(batch, np.ndarray):
                    batch = torch.from_numpy(batch)
                yield start, stop, self.run(batch)
                bar.update(stop - start)

    def __call__(self, images, *, progress: bool = False, desc: str = "embed"
                 ) -> dict[str, torch.Tensor]:
        """Embed every image: ``{layer: (N, D) float32 tensor}``."""
        parts: dict[str, list] = {}
        for _, _, outputs in self.batches(images, progress=progress, desc=desc):
            for name, value in outputs.items():
                parts.setdefault(name, []).append(value)
        if not parts:
            raise ValueError("images is empty; give at least one image")
        return {name: values[0] if len(values) == 1 else torch.cat(values)
                for name, values in parts.items()}

    def stream(self) -> "EmbedStream":
        """A :class:`EmbedStream` over this embed: images handed over in pieces."""
        return EmbedStream(self)


class EmbedStream:
    """Embeds images handed over in pieces of any size, always full batches.

    ``add(images)`` queues images and runs every full batch; ``finish()`` runs
    the rest as one (padded) batch. Outputs come out in the order the images
    went in: ``ready`` counts those not yet taken and ``pop(k)`` takes the next
    ``k`` as ``{layer: (k, D) tensor}``. At most ``batch_size - 1`` images wait.
    """

    def __init__(self, runner: BatchedEmbed):
        self.runner = runner
        self._waiting: list[torch.Tensor] = []
        self._n_waiting = 0
        self._out: list[dict[str, torch.Tensor]] = []
        self.ready = 0

    def _run(self, batch: torch.Tensor) -> None:
        outputs = self.runner.run(batch)
        self._out.append(outputs)
        self.ready += int(batch.shape[0])

    def add(self, images: torch.Tensor) -> None:
        """Queue ``images`` (n, 3, H, W) and embed every full batch."""
        size = self.runner.batch_size
        self._waiting.append(images)
        self._n_waiting += len(images)
        if self._n_waiting < size:
            return
        queued = torch.cat(self._waiting)
        full = len(queued) - len(queued) % size
        for start in range(0, full, size):
            self._run(queued[start:start + size])
        self._waiting = [queued[full:]] if full < len(queued) else []
        self._n_waiting = len(queued) - full

    def finish(self) -> None:
        """Embed what still waits (one short batch)."""
        if self._n_waiting:
            self._run(torch.cat(self._waiting))
            self._waiting, self._n_waiting = [], 0

    def pop(self, k: int) -> dict[str, torch.Tensor]:
        """The next ``k`` outputs, in input order."""
        if k > self.ready:
            raise ValueError(f"k must be at most the {self.ready} ready outputs, got {k}")
        names = list(self._out[0])
        values = {name: torch.cat([part[name] for part in self._out]) if len(self._out) > 1
                  else self._out[0][name] for name in names}
        taken = {name: value[:k] for name, value in values.items()}
        rest = {name: value[k:] for name, value in values.items()}
        self._out = [rest] if len(rest[names[0]]) else []
        self.ready -= k
        return taken
