"""faceexp checkpoints: a network's weights with its architecture, head size and plain
metadata, written atomically and read back with ``torch.load(weights_only=True)``."""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from faceexp.core.files import atomic_write, file_sha256
from faceexp.models.networks import (CHECKPOINT_FORMAT, HEAD_PREFIX, check_arch,
                                     torchvision_model, unwrap_model)

# ----------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------
def _plain(value, where: str):
    """Check that ``value`` is made of str/int/float/bool/None/list/dict only."""
    # numpy scalars (np.float64 is even a float subclass) would not load with
    # weights_only=True: store the plain Python value.
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"meta keys must be strings; {where} has key {key!r}")
            out[key] = _plain(item, f"{where}[{key!r}]")
        return out
    raise ValueError(
        f"meta must hold only str, int, float, bool, None, lists and dicts; {where} is "
        f"{type(value).__name__} (convert it, e.g. float(x) or str(path))"
    )


def save_checkpoint(path, model: nn.Module, *, arch: str, num_classes: int, meta=None) -> Path:
    """Write a model's weights as a faceexp checkpoint (atomically).

    Parameters
    ----------
    path : str or Path
        Target file (parent folders are created). Written to a temporary file
        in the same folder first, then renamed over ``path``.
    model : torch.nn.Module
        The network (``torch.compile`` and DataParallel wrappers are unwrapped,
        so the keys stay torchvision's).
    arch : {"mobilenetv2", "resnet50"}
        Its architecture.
    num_classes : int
        Its head size.
    meta : dict, optional
        Plain data (str, int, float, bool, None, lists, dicts with str keys),
        e.g. the training configuration and history.

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    The file is ``torch.save`` of a plain dict ``{"format":
    "faceexp-checkpoint-1", "arch", "num_classes", "state_dict" (an OrderedDict
    of CPU tensors with torchvision's keys), "meta"}``, readable with
    ``torch.load(weights_only=True)``.
    """
    check_arch(arch)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    model = unwrap_model(model)
    model_arch = getattr(model, "faceexp_arch", arch)
    if model_arch != arch:
        raise ValueError(f"arch={arch!r} but the model was built as {model_arch!r}")
    meta = _plain({} if meta is None else meta, "meta")
    if not isinstance(meta, dict):
        raise ValueError(f"meta must be a dict; got {type(meta).__name__}")
    state = OrderedDict(
        (key, value.detach().to("cpu").contiguous().clone())
        for key, value in model.state_dict().items()
    )
    head = state.get(HEAD_PREFIX[arch] + "weight")
    if head is None:
        raise ValueError(f"model has no {HEAD_PREFIX[arch]}weight: it is not a {arch}")
    if head.shape[0] != num_classes:
        raise ValueError(f"num_classes={num_classes} but the model's head has {head.shape[0]}")
    payload = {"format": CHECKPOINT_FORMAT, "arch": arch, "num_classes": int(num_classes),
               "state_dict": state, "meta": meta}
    path = atomic_write(path, lambda file: torch.save(payload, file))
    return path


def load_checkpoint(path, *, arch: str | None = None, num_classes: int | None = None,
                    device="cpu") -> tuple[nn.Module, dict]:
    """Read a faceexp checkpoint back into a network.

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save_checkpoint`.
    arch, num_classes : optional
        What the caller expects; a checkpoint for anything else raises
        ValueError saying what differs. None accepts what the file holds.
    device : str or torch.device, default "cpu"
        Where the model is put.

    Returns
    -------
    model : torch.nn.Module
        The network (as :func:`build_model` makes it), in eval mode.
    meta : dict
        The checkpoint's ``meta``.
    """
    path = Path(path)
    if arch is not None:
        check_arch(arch)
    if path.is_dir():
        raise ValueError(f"checkpoint {str(path)!r} is a directory; give the checkpoint file "
                         "(e.g. runs/mb2/final.pt)")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:
        raise ValueError(f"{str(path)!r} is not a faceexp checkpoint: "
                         f"{_load_failure(error)}") from error
    if not isinstance(payload, Mapping) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{str(path)!r} is not a faceexp checkpoint (no format {CHECKPOINT_FORMAT!r}); "
            "write checkpoints with faceexp.models.save_checkpoint"
        )
    for key, kind in (("arch", str), ("num_classes", int), ("state_dict", Mapping)):
        if not isinstance(payload.get(key), kind) or isinstance(payload.get(key), bool):
            raise ValueError(f"{str(path)!r} is not a whole faceexp checkpoint: no {key!r} "
                             f"({kind.__name__}); write checkpoints with "
                             "faceexp.models.save_checkpoint")
    have_arch, have_classes = payload["arch"], int(payload["num_classes"])
    if have_arch not in HEAD_PREFIX:
        raise ValueError(f"checkpoint {str(path)!r} is for {have_arch!r}, which faceexp does "
                         f"not build; it builds {', '.join(sorted(HEAD_PREFIX))}")
    want_arch = have_arch if arch is None else arch
    want_classes = have_classes if num_classes is None else int(num_classes)
    if (want_arch, want_classes) != (have_arch, have_classes):
        raise ValueError(
            f"checkpoint {path} is for {have_arch} with {have_classes} classes, "
            f"not {want_arch} with {want_classes} classes"
        )
    check_arch(have_arch)
    with torch.device("meta"):
        model = torchvision_model(have_arch, have_classes)
    problems = _fit_problems(model.state_dict(), payload["state_dict"])
    if problems:
        raise ValueError(f"checkpoint {path} does not fit {have_arch} with {have_classes} "
                         f"classes: {problems}")
    try:
        model.load_state_dict(payload["state_dict"], strict=True, assign=True)
    except RuntimeError as error:
        raise ValueError(f"checkpoint {path} does not fit {have_arch}: "
                         f"{' '.join(str(error).split())[:300]}") from error
    model.to(device)
    model.eval()
    return model, dict(payload.get("meta") or {})


def _load_failure(error: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in one line."""
    import re

    text = str(error)
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if refused:
        return (f"it holds a Python object ({refused.group(1)}) that torch.load("
                "weights_only=True) does not load; faceexp checkpoints hold only tensors and "
                "plain data (faceexp.models.save_checkpoint)")
    if "zip archive" in text or "central directory" in text or isinstance(error, EOFError):
        return "a torch file that is truncated or corrupt (copy it again)"
    if "weights_only" in text or "Weights only load failed" in text:
        return (f"torch.load(weights_only=True) refuses it "
                f"({' '.join(text.split())[:160]})")
    first = " ".join(text.split())[:160]
    return f"not a torch file (torch.load failed: {type(error).__name__}: {first})"


def _fit_problems(expected: Mapping, given: Mapping) -> str:
    """How a checkpoint's state_dict differs from a network's (keys, shapes), in one line;
    empty when it fits."""
    missing = [key for key in expected if key not in given]
    extra = [key for key in given if key not in expected]
    shapes = [key for key in expected if key in given and isinstance(given[key], torch.Tensor)
              and tuple(given[key].shape) != tuple(expected[key].shape)]
    parts = []
    for label, keys in (("missing key(s)", missing), ("unexpected key(s)", extra),
                        ("key(s) of another shape", shapes)):
        if keys:
            shown = ", ".join(repr(key) for key in keys[:3]) + (", ..." if len(keys) > 3 else "")
            parts.append(f"{len(keys)} {label} ({shown})")
    return "; ".join(parts)


def checkpoint_hash(path) -> str:
    """SHA-256 hex digest of a checkpoint file's content (a cache key for it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    return file_sha256(path)


def state_dict_hash(model: torch.nn.Module) -> str:
    """SHA-256 of a model's weights: names, dtypes, shapes and bytes of its state_dict.

    A content hash that follows the weights (a fine-tuned model gets a new
    one), usable as ``model_id`` when there is no checkpoint file to hash.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    str
        64 hex digits.
    """
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if not isinstance(tensor, torch.Tensor):
            digest.update(f"{name}:{tensor!r};".encode())
            continue
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
