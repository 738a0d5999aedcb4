"""Edits of an ONNX graph in memory: fold constant ``DequantizeLinear`` nodes into float
initialisers, and expose intermediate tensors as extra (pooled) graph outputs.

Why our own: ``onnx`` gives the protobuf and ``numpy_helper`` but no folding pass that
keeps a graph's other nodes untouched, and onnxruntime deliberately leaves
``DequantizeLinear`` unfolded (to keep QDQ patterns for its int8 kernels), so a graph
whose only int8 parts are weights runs the dequantisation on every forward and keeps the
convolutions from being fused and prepacked. :func:`fold_dequantize` computes each
constant dequantisation once with numpy, exactly as the operator defines it (opset 21:
per-tensor, per-axis and blocked, the last block along ``axis`` may be shorter), and also
folds a ``Reshape`` of a folded weight, so the engines see a plain float graph.
"""
from __future__ import annotations

import numpy as np

__all__ = ["add_layer_outputs", "dequantize", "fold_dequantize", "prune_to_outputs"]

_POOLINGS = ("mean", "flatten")


def dequantize(quantized: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None,
               *, axis: int = 1, block_size: int = 0) -> np.ndarray:
    """``(quantized - zero_point) * scale`` as ONNX ``DequantizeLinear`` (opset 21) defines it.

    Parameters
    ----------
    quantized : numpy.ndarray, integer, shape (D0, ..., Dn)
    scale : numpy.ndarray, float
        A scalar (per-tensor), shape (D_axis,) (per-axis, ``block_size`` 0), or the
        shape of ``quantized`` with ``D_axis`` replaced by ``S`` with
        ``ceil(D_axis / S) <= block_size`` (blocked: scale ``k`` covers entries
        ``k * block_size .. (k + 1) * block_size - 1`` along ``axis``; the last block
        may be shorter).
    zero_point : numpy.ndarray, optional
        The shape of ``scale``, the dtype of ``quantized``; default 0.
    axis : int, default 1
        The quantisation axis (negative counts from the end).
    block_size : int, default 0
        0 for per-tensor / per-axis, else the block length along ``axis``.

    Returns
    -------
    numpy.ndarray, the dtype of ``scale``, the shape of ``quantized``
        Computed as onnxruntime does: the integer difference, cast to the scale's
        dtype, times the scale.

    Raises
    ------
    ValueError
        If the shapes of ``scale`` / ``zero_point`` do not fit ``quantized``, ``axis``
        and ``block_size``.
    """
    q = np.asarray(quantized)
    scale = np.asarray(scale)
    zero = np.zeros(scale.shape, q.dtype) if zero_point is None else np.asarray(zero_point)
    if zero.shape != scale.shape:
        raise ValueError(f"zero_point has shape {zero.shape} but scale has {scale.shape}; they must match")
    if scale.size == 1 and block_size == 0:
        s, z = scale.reshape(()), zero.reshape(())
    else:
        if not -q.ndim <= axis < q.ndim:
            raise ValueError(f"axis {axis} is out of range for a {q.ndim}-d tensor")
        axis %= q.ndim
        if block_size == 0:
            if scale.shape != (q.shape[axis],):
                raise ValueError(f"per-axis scale must have shape ({q.shape[axis]},), got {scale.shape}")
            where = [1] * q.ndim
            where[axis] = q.shape[axis]
            s, z = scale.reshape(where), zero.reshape(where)
        else:
            if block_size < 0:
                raise ValueError(f"block_size must be >= 0, got {block_size}")
            blocks = -(-q.shape[axis] // block_size)
            expected = q.shape[:axis] + (blocks,) + q.shape[axis + 1:]
            if scale.ndim != q.ndim or scale.shape[:axis] + scale.shape[axis + 1:] != \
                    expected[:axis] + expected[axis + 1:] or not \
                    -(-q.shape[axis] // scale.shape[axis]) <= block_size:
                raise ValueError(f"blocked scale of shape {scale.shape} does not fit a tensor of "
                                 f"shape {q.shape} with axis={axis}, block_size={block_size}")
            index = np.arange(q.shape[axis]) // block_size
            s, z = np.take(scale, index, axis=axis), np.take(zero, index, axis=axis)
    difference = q.astype(np.int64) - z.astype(np.int64)
    return (difference.astype(scale.dtype) * s).astype(scale.dtype, copy=False)


def _attributes(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def fold_dequantize(model) -> int:
    """Fold every ``DequantizeLinear`` whose inputs are all initialisers, in place.

    Each becomes a float initialiser named as the node's output (so its consumers read
    it unchanged) and the node goes; a ``Reshape`` of a folded tensor by a constant shape
    is folded too. Initialisers no node reads any more (the int8 weights, scales and
    zero points) and graph inputs that name them are removed.

    Parameters
    ----------
    model : onnx.ModelProto
        Edited in place.

    Returns
    -------
    int
        The number of ``DequantizeLinear`` nodes folded.
    """
    from onnx import numpy_helper

    graph = model.graph
    values = {init.name: init for init in graph.initializer}
    keep, folded, new = [], 0, {}
    for node in graph.node:
        constant = all(name == "" or name in values or name in new for name in node.input)
        if node.op_type == "DequantizeLinear" and node.domain in ("", "ai.onnx") and constant:
            arrays = [new[n] if n in new else numpy_helper.to_array(values[n]) for n in node.input if n]
            attrs = _attributes(node)
            if attrs.get("output_dtype", 0) not in (0,):
                keep.append(node)
                continue
            new[node.output[0]] = dequantize(*arrays, axis=int(attrs.get("axis", 1)),
                                             block_size=int(attrs.get("block_size", 0)))
            folded += 1
            continue
        if node.op_type == "Reshape" and node.input[0] in new and node.input[1] in values \
                and not _attributes(node).get("allowzero", 0):
            shape = numpy_helper.to_array(values[node.input[1]])
            source = new.pop(node.input[0])
            new[node.output[0]] = source.reshape([d if d else source.shape[k]
                                                  for k, d in enumerate(shape)])
            continue
        keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    for name, array in new.items():
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
    _drop_unused_initialisers(graph)
    return folded


def _drop_unused_initialisers(graph) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    inputs = [value for value in graph.input if value.name in used]
    del graph.input[:]
    graph.input.extend(inputs)


def prune_to_outputs(model) -> None:
    """Remove, in place, the nodes (and initialisers) no graph output depends on."""
    graph = model.graph
    needed = {output.name for output in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(name in needed for name in node.output):
            keep.append(node)
            needed.update(name for name in node.input if name)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    _drop_unused_initialisers(graph)


def add_layer_outputs(model, tensors: dict, pooling: str = "mean"):
    """A copy of ``model`` whose outputs are the given tensors, each pooled to (N, C) or
    flattened to (N, C*H*W) inside the graph, in the given order; nodes no output needs
    are pruned (:func:`prune_to_outputs`).

    Parameters
    ----------
    model : onnx.ModelProto
        Not changed.
    tensors : dict of str to str
        Output name -> name of a tensor the graph computes: a 4-d (N, C, H, W) tensor,
        pooled as ``pooling`` says, or one of ``model``'s own (N, D) outputs, passed as
        it is.
    pooling : {"mean", "flatten"}
        ``mean``: ``ReduceMean`` over H and W (global average pooling); ``flatten``:
        ``Flatten(axis=1)``. A tensor that is already a graph output is passed as it is.

    Returns
    -------
    onnx.ModelProto
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if pooling not in _POOLINGS:
        raise ValueError(f"pooling must be one of {_POOLINGS}, got {pooling!r}")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    final = {value.name for value in graph.output}
    produced = {name for node in graph.node for name in node.output}
    missing = [t for t in tensors.values() if t not in produced]
    if missing:
        raise ValueError(f"tensors {missing} are not computed by the graph; name node outputs")
    clash = [name for name, tensor in tensors.items() if name in produced and name != tensor]
    if clash:
        raise ValueError(f"output names {clash} are already tensors of the graph; choose other names")
    del graph.output[:]
    axes = "faceexp_spatial_axes"
    if pooling == "mean":
        graph.initializer.append(numpy_helper.from_array(np.array([2, 3], np.int64), axes))
    for name, tensor in tensors.items():
        if tensor in final and tensor == name:
            pass
        elif tensor in final:
            graph.node.append(helper.make_node("Identity", [tensor], [name]))
        elif pooling == "mean":
            graph.node.append(helper.make_node("ReduceMean", [tensor, axes], [name], keepdims=0))
        else:
            graph.node.append(helper.make_node("Flatten", [tensor], [name], axis=1))
        graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", None]))
    prune_to_outputs(out)
    return out
