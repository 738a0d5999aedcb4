"""Which weights a training run started from: the record it writes, and the caption text of it.

A run records what it actually loaded (:func:`initial_weights`): the ImageNet file and its
sha256, "random" when none was found or none was asked for, or the state_dict file /
checkpoint given; :func:`init_weights_text` turns the record into the phrase every
caption uses, following a fine-tuned run back to the run it started from.
"""
from __future__ import annotations

import json
from pathlib import Path

from faceexp.core.files import file_sha256
from faceexp.data.layouts import ORL_NAME
from faceexp.models.networks import imagenet_weights_file

#: The files of a training run folder that say what it was and what it started from.
CONFIG_FILE = "config.json"
INIT_WEIGHTS_FILE = "init_weights.json"


def initial_weights(config) -> dict:
    """Which weights a run with ``config`` (a :class:`~faceexp.models.training.TrainConfig`) starts from, as a record for its captions.

    Returns
    -------
    dict
        ``{"source", "path", "sha256", "requested"}``: ``source`` is ``"checkpoint"``
        (``init_checkpoint``: its backbone, a new head), ``"file"`` (``weights`` is a
        state_dict path), ``"imagenet"`` (the file of :func:`faceexp.models.imagenet_weights_file`) or
        ``"random"`` (``weights=None``, or no ImageNet file was found); ``path`` and
        ``sha256`` name the file read (None for random); ``requested`` is
        ``config.weights``.
    """
    record = {"source": "random", "path": None, "sha256": None, "requested": config.weights}
    if config.init_checkpoint:
        file, source = Path(config.init_checkpoint), "checkpoint"
    elif config.weights is None:
        return record
    elif config.weights == "imagenet":
        file, source = imagenet_weights_file(config.arch), "imagenet"
        if file is None:
            return record
    else:
        file, source = Path(config.weights), "file"
    if not file.is_file():
        raise FileNotFoundError(f"{'init_checkpoint' if source == 'checkpoint' else 'weights'} "
                                f"must be an existing file, got {str(file)!r}")
    return dict(record, source=source, path=str(file.resolve()), sha256=file_sha256(file))


def init_weights_text(record: dict | None, *, _depth: int = 0) -> str:
    """A caption phrase for a training run's initial-weights record.

    Parameters
    ----------
    record : dict or None
        :func:`faceexp.models.training.initial_weights`' dict (None: the run recorded nothing).

    Returns
    -------
    str
        "ImageNet init (<file>, sha256 <12 hex digits>)", "random init", "init from
        <file> (...)" or, for a run fine-tuned from a checkpoint, what that checkpoint's
        own run folder recorded (its ``config.json`` and ``init_weights.json``): "fine-tuned
        from an MS1M-style pre-training run on <root name> (final.pt, sha256 ...; that
        run: ImageNet init (...))" for a run on aligned crops (the paper's first step,
        ``pretrain_root``), "fine-tuned from a run on <data> (...)" for another faceexp
        run, or "fine-tuned from <file> (sha256 ...)" when the folder records nothing.
    """
    if not record:
        return "initial weights not recorded"
    source = record.get("source")
    if source == "random":
        if record.get("requested") == "imagenet":
            return "random init (no ImageNet weights file found)"
        return "random init"
    name = Path(record.get("path") or "?").name
    digest = f"sha256 {str(record.get('sha256'))[:12]}"
    if source == "imagenet":
        return f"ImageNet init ({name}, {digest})"
    if source == "checkpoint":
        return _fine_tuned_text(Path(record.get("path") or "?"), name, digest, _depth)
    if source == "file":
        return f"init from {name} ({digest})"
    raise ValueError(f"record['source'] must be 'imagenet', 'file', 'checkpoint' or 'random', "
                     f"got {source!r}")


def _fine_tuned_text(checkpoint: Path, name: str, digest: str, depth: int) -> str:
    # What the run that wrote ``checkpoint`` recorded beside it (faceexp.models.training's files).
    try:
        config = json.loads((checkpoint.parent / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        config = None
    if not isinstance(config, dict):
        return f"fine-tuned from {name} ({digest})"
    root = config.get("data_root")
    data = Path(root).name if root else ORL_NAME
    try:
        first = json.loads((checkpoint.parent / INIT_WEIGHTS_FILE).read_text())
    except (OSError, ValueError):
        first = None
    inner = init_weights_text(first, _depth=depth + 1) if depth < 3 else "..."
    kind = "an MS1M-style pre-training run" if config.get("mode") == "aligned" else "a run"
    return f"fine-tuned from {kind} on {data} ({name}, {digest}; that run: {inner})"
