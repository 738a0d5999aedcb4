"""The layer catalogue of the paper's CNNs: every FX node with its output shape, the
paper's 16 blocks, Matlab r2022b layer numbers, and the aliases ("gap", "block3",
"matlab:150") that :func:`resolve_layer` turns into node names."""
from __future__ import annotations

import functools
import re

import numpy as np
import pandas as pd
import torch
from torch import fx, nn
from torchvision.models.feature_extraction import NodePathTracer

from faceexp.models.networks import LOGITS_NODE, GAP_NODE, check_arch, torchvision_model

# Layers the Matlab r2022b layer list counts (after the input, which is layer 1).
_MATLAB_COUNTED_OPS = frozenset({"Conv2d", "BatchNorm2d", "ReLU", "ReLU6", "MaxPool2d", "add"})


# ----------------------------------------------------------------------------
# Layer catalogue
# ----------------------------------------------------------------------------
def trace_network(model: nn.Module) -> tuple[fx.Graph, dict]:
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
        model = torchvision_model(arch, num_classes)
    graph, names = trace_network(model)
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
    gap_shape = by_name.loc[GAP_NODE[arch], "shape"]
    logits_shape = by_name.loc[LOGITS_NODE[arch], "shape"]
    special = [
        {"name": "gap", "op": "gap", "shape": gap_shape, "node": GAP_NODE[arch],
         "matlab_layer": matlab + 1},
        {"name": "logits", "op": "Linear", "shape": logits_shape,
         "node": LOGITS_NODE[arch], "matlab_layer": matlab + 2},
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
    check_arch(arch)
    if isinstance(input_size, bool) or not isinstance(input_size, (int, np.integer)) \
            or input_size < 32:
        raise ValueError(f"input_size must be an integer >= 32; got {input_size!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
    return _catalogue(arch, int(input_size), int(num_classes)).copy()


def block_ends(arch: str) -> list[str]:
    """Node names of the last layer of each of the paper's 16 blocks, in order."""
    table = _catalogue(check_arch(arch), 113, 1000)
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
    table = _catalogue(check_arch(arch), 113, 1000)
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


