"""The interface every face recogniser shares: ``align`` an image, then call on a batch.

A recogniser ``rec`` is an embedding function for :func:`faceexp.explain`:
``rec(batch)`` maps a float batch ``(N, 3, H, W)`` in [0, 1] (torch tensor or
numpy array, ``(H, W) == rec.input_size``) to a ``(N, D)`` float32 torch
tensor. ``rec.align(image)`` turns a photo into that geometry.
"""
from __future__ import annotations

import numpy as np
import torch

from faceexp.recognisers.alignment import detect_faces, image_name, to_rgb_uint8


class Recogniser:
    """Base class: input checks, batching and alignment plumbing.

    Subclasses set ``name``, ``input_size``, ``embedding_dim`` and
    ``preferred_batch_size`` and implement ``_place(rgb, box, landmarks)``
    (RGB uint8 (H, W, 3) and MTCNN's box and five landmarks → float32
    (h, w, 3) in [0, 1]) and
    ``_embed(batch)`` (float32 torch tensor (n, 3, h, w) in [0, 1] on the CPU
    → (n, D) float32 torch tensor).
    """

    name: str = ""
    input_size: tuple[int, int] = (0, 0)
    embedding_dim: int = 0
    preferred_batch_size: int = 32
    #: The explainer compiles models that say so; none of these is compiled.
    compiled: bool = False
    #: Where the weights came from (a path and its hash), for captions.
    source: dict = {}

    # ------------------------------------------------------------ alignment
    def align(self, image) -> np.ndarray:
        """Detect the face in ``image`` and put it in this recogniser's geometry.

        Parameters
        ----------
        image : str, path-like, PIL image or numpy.ndarray
            An RGB or grey image of any size, (H, W) or (H, W, 3), ``uint8``
            or float in [0, 1], or a file path.

        Returns
        -------
        numpy.ndarray, float32, shape (*input_size, 3), values in [0, 1]

        Raises
        ------
        ValueError
            If no face is found (the message names the image), or the image
            cannot be decoded or is not a supported array.
        """
        (face,) = self.align_many([image], errors="raise")
        return face

    def align_many(self, images, *, errors: str = "raise") -> list:
        """:meth:`align` for several images, detecting faces in batches.

        Parameters
        ----------
        images : sequence
            Anything :meth:`align` accepts.
        errors : {"raise", "return"}
            On an image without a face (or undecodable): raise its
            ``ValueError``, or put the ``ValueError`` in its place in the
            returned list.

        Returns
        -------
        list of numpy.ndarray (float32, (*input_size, 3)) or ValueError
        """
        if errors not in ("raise", "return"):
            raise ValueError(f"errors must be 'raise' or 'return', got {errors!r}")
        results: list = [None] * len(images)
        rgbs, names, where = [], [], []
        for k, image in enumerate(images):
            name = image_name(image)
            try:
                rgbs.append(to_rgb_uint8(image, name=name))
            except ValueError as exc:
                if errors == "raise":
                    raise
                results[k] = exc
                continue
            names.append(name)
            where.append(k)
        for k, rgb, name, found in zip(where, rgbs, names, detect_faces(rgbs, names)):
            if isinstance(found, ValueError):
                if errors == "raise":
                    raise found
                results[k] = found
                continue
            face = self._place(rgb, *found)
            assert face.shape == (*self.input_size, 3) and face.dtype == np.float32, (face.shape, face.dtype)
            results[k] = face
        return results

    def _place(self, rgb: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:  # pragma: no cover
        """The detected face (MTCNN ``box``, five ``landmarks``) in this recogniser's geometry."""
        raise NotImplementedError

    # ------------------------------------------------------------ embedding
    def _as_batch(self, batch) -> torch.Tensor:
        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(np.ascontiguousarray(batch))
        if not isinstance(batch, torch.Tensor):
            raise ValueError(f"batch must be a torch tensor or numpy array, got {type(batch).__name__}")
        if batch.ndim == 3:
            raise ValueError(
                f"batch must be (N, 3, H, W); got one image of shape {tuple(batch.shape)}: use batch[None]"
            )
        if batch.ndim != 4 or batch.shape[1] != 3 or tuple(batch.shape[2:]) != tuple(self.input_size):
            raise ValueError(
                f"{self.name}: batch must have shape (N, 3, {self.input_size[0]}, {self.input_size[1]}), "
                f"got {tuple(batch.shape)}; align faces with rec.align(image) first"
            )
        if not batch.is_floating_point():
            raise ValueError(f"{self.name}: batch must be float in [0, 1], got dtype {batch.dtype}")
        return batch.detach().to(device="cpu", dtype=torch.float32)

    def __call__(self, batch) -> torch.Tensor:
        """Embeddings of a batch of aligned faces.

        Parameters
        ----------
        batch : torch.Tensor or numpy.ndarray, float, shape (N, 3, H, W)
            Values in [0, 1], ``(H, W) == input_size``.

        Returns
        -------
        torch.Tensor, float32, shape (N, D), on the CPU
            Not normalised; compare with cosine similarity.
        """
        batch = self._as_batch(batch)
        if len(batch) == 0:
            return torch.zeros((0, self.embedding_dim), dtype=torch.float32)
        step = max(1, int(self.preferred_batch_size))
        parts = [self._embed(batch[k: k + step]) for k in range(0, len(batch), step)]
        return torch.cat(parts).to(torch.float32)

    def _embed(self, batch: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<recogniser {self.name!r}: input {self.input_size}, {self.embedding_dim}-d>"
