"""Verification of a folder-per-identity face set with a recogniser: EER with a bootstrap CI over identities.

:func:`verify_frame` aligns every image with the recogniser (images it cannot
read, too small for MTCNN or without a face are skipped and listed; an image with a face box is first cropped to the
box grown by :data:`faceexp.data.preprocessing.BOX_MARGIN`, :func:`align_images`), embeds them with flip-averaged descriptors
(:class:`faceexp.core.batching.BatchedEmbed`), scores the protocol's pairs by
cosine similarity (:func:`faceexp.verify.protocol.cosine_scores`) and computes the
EER (:func:`faceexp.verify.metrics.equal_error_rate`) with a 95% interval from
a bootstrap over identities (:func:`faceexp.verify.intervals.bootstrap_eer`,
each pair attributed to the identity of its first image).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from faceexp.data.preprocessing import BOX_MARGIN, crop_box, preprocess

#: Pair rules of :func:`verify_frame`: every pair, or the paper's "next 100 users".
PAIR_RULES = ("all", "paper")


def _is_paper_cnn(recogniser) -> bool:
    from faceexp.recognisers.paper_cnns import PaperCNN

    return isinstance(recogniser, PaperCNN)


def align_images(recogniser, images, boxes=None, *, margin: float = BOX_MARGIN,
                 errors: str = "return") -> list:
    """``recogniser.align_many(images)``, each image first cropped to its face box.

    With a box, MTCNN (inside the recogniser) looks at the box grown by
    ``margin`` on every side and clipped to the image
    (:func:`faceexp.data.preprocessing.crop_box`); the recogniser's own geometry is
    then cut from that crop. The paper's CNNs (``mobilenetv2``, ``resnet50``)
    are the exception: they were trained on the box itself (shorter side 129,
    central 113x113, :func:`faceexp.data.preprocessing.preprocess`), so they get
    exactly that; MTCNN, as for every recogniser, only refuses images without a face.

    Parameters
    ----------
    recogniser : Recogniser
    images : sequence
        Paths (or anything ``recogniser.align`` accepts).
    boxes : sequence of (x, y, w, h) or None, optional
        One per image (None: the whole image), e.g. :func:`faceexp.data.frame_boxes`.
    margin : float, default :data:`faceexp.data.preprocessing.BOX_MARGIN` (0.25)
    errors : {"return", "raise"}
        As :meth:`Recogniser.align_many`: a ``ValueError`` (undecodable image,
        no face, box outside the image) in the image's place, or raised.

    Returns
    -------
    list of numpy.ndarray (float32, (*input_size, 3)) or ValueError
    """
    from PIL import Image

    from faceexp.recognisers.alignment import image_name, to_rgb_uint8

    if errors not in ("raise", "return"):
        raise ValueError(f"errors must be 'raise' or 'return', got {errors!r}")
    images = list(images)
    if boxes is None or all(b is None for b in boxes):
        return recogniser.align_many(images, errors=errors)
    if len(boxes) != len(images):
        raise ValueError(f"boxes has {len(boxes)} entries for {len(images)} images; give one "
                         "per image (None for the whole image)")
    results: list = [None] * len(images)
    inputs, where, decoded = [], [], {}
    for k, (image, box) in enumerate(zip(images, boxes)):
        if box is None:
            inputs.append(image)
            where.append(k)
            continue
        try:
            whole = Image.fromarray(to_rgb_uint8(image))
            inputs.append(np.asarray(crop_box(whole, box, margin=margin, name=image_name(image))))
        except ValueError as exc:
            if errors == "raise":
                raise
            results[k] = exc
            continue
        decoded[k] = whole
        where.append(k)
    aligned = recogniser.align_many(inputs, errors="return")
    paper = _is_paper_cnn(recogniser)
    for k, crop, face in zip(where, inputs, aligned):
        if isinstance(face, ValueError):
            if k in decoded:  # name the file and its box, not the crop array
                face = ValueError(str(face).replace(
                    image_name(crop), f"{image_name(images[k])} (box {tuple(boxes[k])} "
                                      f"grown by {margin:g})"))
            if errors == "raise":
                raise face
        elif paper and k in decoded:
            face = np.ascontiguousarray(preprocess(decoded[k], box=boxes[k]).transpose(1, 2, 0))
        results[k] = face
    return results


@dataclass
class VerificationResult:
    """What :func:`verify_frame` found; ``to_dict()`` is what ``faceexp verify --json`` prints."""

    model: str
    eer: float
    ci95: tuple[float, float]
    threshold: float
    genuine: int
    impostor: int
    images: int
    identities: int
    pairs: str
    failed: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    scores: pd.DataFrame | None = field(default=None, repr=False)
    boxes: int = 0

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "eer": self.eer,
            "ci95": list(self.ci95),
            "threshold": self.threshold,
            "genuine": self.genuine,
            "impostor": self.impostor,
            "images": self.images,
            "identities": self.identities,
            "pairs": self.pairs,
            "failed": list(self.failed),
            "seconds": dict(self.seconds),
            "boxes": self.boxes,
        }


def verify_frame(frame: pd.DataFrame, recogniser, *, pairs: str = "all", n_resamples: int = 1000,
                 rng=0, chunk: int = 256, progress: bool = False, boxes=None,
                 box_margin: float = BOX_MARGIN) -> VerificationResult:
    """Align, embed and score every image of a frame; EER with a 95% CI over identities.

    Parameters
    ----------
    frame : pandas.DataFrame
        Columns ``path`` and ``identity`` (as :func:`faceexp.data.load_orl`
        and :func:`faceexp.data.scan_identity_folders` give), optionally
        ``image`` (a short name used in ``failed``).
    recogniser : Recogniser
        From :func:`faceexp.recognisers.load`.
    pairs : {"all", "paper"}
        ``"all"``: every genuine and every impostor pair; ``"paper"``: the
        paper's rule (each user's first image against the second image of
        the next 100 users), see :func:`faceexp.verify.protocol.verification_pairs`.
    n_resamples : int, default 1000
        Bootstrap resamples over identities
        (:func:`faceexp.verify.intervals.bootstrap_eer` with ``identity_j=None``:
        each pair is kept once per draw of the identity of its first image).
    rng : int, numpy.random.Generator or None, default 0
        Seed of the bootstrap (None: a fresh seed).
    chunk : int, default 256
        Images aligned at a time (bounds the memory of decoded images).
    boxes : mapping of str to (x, y, w, h), optional
        VGGFace2's boxes, looked up by ``image``; default the frame's box
        columns (:data:`faceexp.data.BOX_COLUMNS`). Each boxed image is
        cropped to its box grown by ``box_margin`` before alignment
        (:func:`align_images`).
    box_margin : float, default :data:`faceexp.data.preprocessing.BOX_MARGIN` (0.25)

    Returns
    -------
    VerificationResult
        ``failed`` lists ``{"image", "error"}`` for each image that could
        not be used: not decoded (a FIFO, over the pixel cap, corrupt:
        :func:`faceexp.data.preprocessing.load_image`), too small for MTCNN
        (the message names the size and the minimum, 20x20 pixels), or
        without a face; those images are left out of every pair and the run
        goes on. ``scores`` holds the pairs (positions in the kept images) with
        their ``score``; ``boxes`` counts the images read through their box.
    """
    import torch

    from faceexp.core.batching import BatchedEmbed
    from faceexp.data.boxes import frame_boxes
    from faceexp.verify.intervals import bootstrap_eer
    from faceexp.verify.metrics import equal_error_rate
    from faceexp.verify.protocol import cosine_scores, verification_pairs

    if pairs not in PAIR_RULES:
        raise ValueError(f"pairs must be one of {PAIR_RULES}, got {pairs!r}")
    for column in ("path", "identity"):
        if column not in frame.columns:
            raise ValueError(f"frame needs a column {column!r}; got {list(frame.columns)}")
    # The bootstrap's size before minutes of aligning and embedding.
    from faceexp.core import checks
    from faceexp.core.limits import bootstrap_memory, check_memory

    n_resamples = checks.positive_int(n_resamples, "n_resamples")
    check_memory(bootstrap_memory(n_resamples, int(frame["identity"].nunique())),
                 f"n_resamples={n_resamples}", lower="n_resamples")
    names = frame["image"].astype(str).tolist() if "image" in frame.columns else frame["path"].astype(str).tolist()
    paths = frame["path"].astype(str).tolist()
    box_list = frame_boxes(frame, boxes)
    seconds = {}
    start = time.perf_counter()
    faces, kept, failed = [], [], []
    for begin in range(0, len(paths), int(chunk)):
        end = begin + int(chunk)
        aligned = align_images(recogniser, paths[begin:end],
                               None if box_list is None else box_list[begin:end],
                               margin=box_margin, errors="return")
        for offset, face in enumerate(aligned):
            k = begin + offset
            if isinstance(face, Exception):
                failed.append({"image": names[k], "error": str(face)})
            else:
                faces.append(face)
                kept.append(k)
    seconds["align"] = time.perf_counter() - start
    if not faces:
        raise ValueError(f"no face found in any of the {len(paths)} images; see the failures: {failed[:3]}")
    kept_frame = frame.iloc[kept].reset_index(drop=True)
    table = verification_pairs(kept_frame, all_impostors=(pairs == "all"))
    labels = table["label"].to_numpy()
    if labels.all() or not labels.any():
        raise ValueError(
            "the images give no genuine pair or no impostor pair: verification needs at least two "
            "identities and an identity with two images with a face"
        )

    start = time.perf_counter()
    batch = torch.from_numpy(np.ascontiguousarray(np.stack(faces).transpose(0, 3, 1, 2)))
    embeddings = BatchedEmbed(recogniser, flip_average=True)(batch, progress=progress)
    embeddings = next(iter(embeddings.values())).float().numpy()
    seconds["embed"] = time.perf_counter() - start
    seconds["embed_per_image"] = seconds["embed"] / len(faces)

    start = time.perf_counter()
    scores = np.asarray(cosine_scores(embeddings, table), dtype=np.float64)
    genuine = labels == 1
    result = equal_error_rate(scores[~genuine], scores[genuine])
    low, high, _ = bootstrap_eer(scores, labels, table["identity_i"].to_numpy(),
                                 n_boot=n_resamples, seed=rng)
    seconds["score"] = time.perf_counter() - start
    table = table.assign(score=scores)
    return VerificationResult(
        model=recogniser.name, eer=float(result.eer), ci95=(low, high), threshold=float(result.threshold),
        genuine=int(genuine.sum()), impostor=int((~genuine).sum()), images=len(faces),
        identities=int(kept_frame["identity"].nunique()), pairs=pairs, failed=failed,
        seconds=seconds, scores=table,
        boxes=0 if box_list is None else sum(b is not None for b in box_list),
    )
