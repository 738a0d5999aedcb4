"""The exported-graph engines of an :class:`~faceexp.models.Embedder` (onnxruntime and
OpenVINO): the same layer outputs, often several times faster on a CPU than PyTorch's
eager or compiled forward.

The Embedder's pruned graph (normalisation, the layers asked for, pooling, softmax), or
FaceNet-CASIA's (:meth:`faceexp.recognisers.facenet.FaceNetCasia.embedder`), is
exported with ``torch.onnx.export`` once per input size and cached in the user cache
(:func:`faceexp.core.files.cache_dir`, or the caller's folder, ``onnx/<key>.onnx``, written
atomically), keyed by the weights' :func:`~faceexp.models.state_dict_hash`, the layers,
pooling, normalisation, input size and the torch version; its SHA-256 is recorded beside it
and checked on every read, and a corrupt export (a truncated file) is exported again with a
warning (:func:`faceexp.core.files.cached`). A cache that cannot be written (a read-only
folder) does not stop a run: the graph then runs on PyTorch, with a one-line warning that
says so. It runs on onnxruntime's CPU
provider, or on OpenVINO's CPU plugin (the same ONNX file, compiled with f32 inference
stated: left to itself the plugin may compute in a lower precision, which changed
MobileNetV2's outputs by up to 6e-2 of their scale on the build machine), with as many
threads as ``torch.get_num_threads()`` (so a torchrun process with ``OMP_NUM_THREADS=1``
does not oversubscribe the cores; OpenVINO's pinning of threads to cores is turned off
for the same reason) and a dynamic batch size. The exported graph is a snapshot of the
weights: an Embedder whose model is still training must use the torch backend.

``backend="auto"`` picks, on a CPU, the engine ``benchmarks/engines.py`` measured fastest
for the network (:data:`AUTO_CPU`) among those installed, and torch on any other device.
"""
from __future__ import annotations

import functools
import io
import warnings
from pathlib import Path

import numpy as np
import torch

from faceexp.core.files import CacheWarning, cache_dir, cached, json_sha256

__all__ = ["AUTO_CPU", "BACKENDS", "EXPORTED", "ExportedForward", "OnnxRuntimeForward",
           "check_device", "installed", "openvino_core", "resolve_backend"]

#: Engines an Embedder can run on.
BACKENDS = ("torch", "onnxruntime", "openvino", "auto")
#: The engines that run the exported ONNX graph, on the CPU only.
EXPORTED = ("onnxruntime", "openvino")
#: The package each exported engine needs.
_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
#: What "auto" prefers on a CPU, per network, fastest first; an engine not installed is
#: skipped, a network not listed gets the default order. Measured by benchmarks/engines.py
#: on a 2-core Intel Xeon with AVX-512 (9 interleaved rounds of 64 ORL faces, each engine at
#: its best of batch 8/16/32; OpenVINO / onnxruntime images/s, one layer and the layer
#: sweep): MobileNetV2 1.47x and 1.27x; ResNet50 1.01x and 0.87x; FaceNet-CASIA 0.99x and
#: 0.96x; SFace (int8 weights folded to float32; 3 rounds of 32 faces, a loaded machine)
#: 1.72x and 2.33x. OpenVINO is preferred only where it wins.
AUTO_CPU = {"mobilenetv2": ("openvino", "onnxruntime", "torch"),
            "resnet50": ("onnxruntime", "openvino", "torch"),
            "facenet-casia": ("onnxruntime", "openvino", "torch"),
            "sface": ("openvino", "onnxruntime"),
            "default": ("onnxruntime", "openvino", "torch")}
#: Bumped when the export changes.
EXPORT_VERSION = 1
_OPSET = 17


def installed(engine: str) -> bool:
    """Whether ``engine``'s package can be imported (torch always can)."""
    import importlib.util

    return engine == "torch" or importlib.util.find_spec(_PACKAGES[engine]) is not None


def resolve_backend(backend: str, device, network: str | None = None) -> str:
    """The engine ``backend`` means for ``network`` on ``device``.

    ``"auto"``: on a CPU, the first installed engine of :data:`AUTO_CPU` for ``network``
    (``"mobilenetv2"``, ``"resnet50"``, ``"facenet-casia"``; None: the default order);
    torch on any other device. An engine named outright must be installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        if not installed(backend):
            raise ValueError(f"backend={backend!r} needs the {_PACKAGES[backend]} package "
                             f"(pip install {_PACKAGES[backend]}), or use backend='auto'")
        return backend
    if torch.device(device).type != "cpu":
        return "torch"
    order = AUTO_CPU.get(network, AUTO_CPU["default"])
    return next(engine for engine in order if installed(engine))


def check_device(backend: str, device) -> None:
    """Refuse an exported engine on a device other than the CPU, saying what to use."""
    device = torch.device(device)
    if backend in EXPORTED and device.type != "cpu":
        raise ValueError(f"backend={backend!r} runs on the CPU, but device is {device}; "
                         "use backend='torch' (or 'auto') there")


@functools.cache
def _openvino_core():
    """The process's one ``openvino.Core``, made on first use and kept.

    OpenVINO's CPU plugin points the calling thread's signal stack (``sigaltstack``) at
    memory of its own and, when a Core goes, back at the stack it found. With a Core per
    graph, graphs dropped out of order left the stack pointing at freed memory, and the
    next Python signal handler (torch's DataLoader installs one for SIGCHLD) killed the
    process with a segmentation fault (the test suite died this way; see
    ``tests/test_onnx_backend.py``). A single Core that lives as long as the process keeps
    the stack valid.
    """
    import openvino as ov

    return ov.Core()


#: The process's one OpenVINO Core (see :func:`_openvino_core`), for graphs not exported
#: here (SFace's ONNX file, :mod:`faceexp.recognisers.sface`).
openvino_core = _openvino_core


class ExportedForward:
    """Calls of a pruned torch graph, exported to ONNX and run by onnxruntime or OpenVINO:
    tensor (N, 3, H, W) -> tuple of float32 CPU tensors.

    Parameters
    ----------
    module : torch.nn.Module
        The graph to export (the Embedder's extractor), on the CPU, in eval mode.
    key : dict
        What identifies it besides its weights (layers, pooling, normalisation).
    n_outputs : int
        How many tensors it returns.
    threads : int, optional
        The engine's threads (onnxruntime's intra-op threads, OpenVINO's
        ``INFERENCE_NUM_THREADS``); default ``torch.get_num_threads()``.
    cache : path-like, optional
        Folder whose ``onnx/`` sub-folder holds the exported graphs; default
        :func:`faceexp.core.files.cache_dir` (read when a graph is first needed).
    weights : str, optional
        The weights' hash when the caller already has it (e.g. a recogniser that
        hashes its converted weights once for several layer sets); default
        :func:`~faceexp.models.state_dict_hash` of ``module``.
    engine : {"onnxruntime", "openvino"}, default "onnxruntime"
        What runs the exported graph (the same file for both).
    """

    def __init__(self, module: torch.nn.Module, key: dict, n_outputs: int,
                 threads: int | None = None, *, cache=None, weights: str | None = None,
                 engine: str = "onnxruntime"):
        from faceexp.models.checkpoints import state_dict_hash

        if engine not in EXPORTED:
            raise ValueError(f"engine must be one of {EXPORTED}, got {engine!r}")
        if not installed(engine):
            raise ValueError(f"engine {engine!r} needs the {_PACKAGES[engine]} package "
                             f"(pip install {_PACKAGES[engine]})")
        self.engine = engine
        if threads is not None and (isinstance(threads, bool) or not isinstance(
                threads, (int, np.integer)) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self.module = module
        self.n_outputs = int(n_outputs)
        self.threads = torch.get_num_threads() if threads is None else int(threads)
        self.cache = None if cache is None else Path(cache).expanduser()
        self._key = dict(key, weights=state_dict_hash(module) if weights is None else str(weights),
                         torch=torch.__version__, opset=_OPSET, version=EXPORT_VERSION)
        self._sessions: dict[tuple[int, int], object] = {}

    def _path(self, size: tuple[int, int]) -> Path:
        """Where the graph for inputs of ``size`` (H, W) is cached."""
        folder = cache_dir() if self.cache is None else self.cache
        return folder / "onnx" / f"{json_sha256(dict(self._key, input_size=list(size)))[:24]}.onnx"

    def _export(self, size: tuple[int, int]) -> bytes:
        names = [f"out{k}" for k in range(self.n_outputs)]
        example = torch.zeros(2, 3, *size)
        buffer = io.BytesIO()
        training = [module for module in self.module.modules() if module.training]
        self.module.eval()
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript exporter: it needs no extra package; its deprecation
            # notice says nothing about this graph.
            warnings.simplefilter("ignore")
            torch.onnx.export(self.module, (example,), buffer, dynamo=False,
                              opset_version=_OPSET, input_names=["images"], output_names=names,
                              dynamic_axes={"images": {0: "n"}, **{n: {0: "n"} for n in names}})
        for module in training:
            module.training = True
        return buffer.getvalue()

    def _session(self, size: tuple[int, int]):
        """The engine's function for inputs of ``size`` (H, W): the cached export, checked
        (and exported on first use, or again when corrupt), opened once; PyTorch's forward,
        with a warning, when the cache cannot be written."""
        if size not in self._sessions:
            path = self._path(size)
            open_graph = self._onnxruntime if self.engine == "onnxruntime" else self._openvino
            try:
                run = cached(path, lambda file: file.write(self._export(size)), open_graph,
                             what="cached ONNX export", redo="exported again")
            except OSError as error:
                reason = error.strerror or str(error)
                warnings.warn(
                    f"cannot write the exported graph to {path.parent} ({reason}): running on "
                    f"torch instead of {self.engine} (slower; set FACEEXP_CACHE to a writable "
                    "folder)", CacheWarning, stacklevel=3)
                run = self._torch
            self._sessions[size] = run
        return self._sessions[size]

    def _torch(self, array: np.ndarray) -> list:
        """The graph on PyTorch (the exported engines' fallback): array -> list of arrays,
        in eval mode as the export is (the caller's training flags are put back)."""
        training = [module for module in self.module.modules() if module.training]
        self.module.eval()
        try:
            with torch.no_grad():
                outputs = self.module(torch.from_numpy(array))
        finally:
            for module in training:
                module.training = True
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return [output.detach().float().numpy() for output in outputs]

    def _openvino(self, path: Path):
        """OpenVINO's CPU plugin on the exported file: a function array -> list of arrays."""
        compiled = _openvino_core().compile_model(str(path), "CPU", {
            "INFERENCE_NUM_THREADS": self.threads, "PERFORMANCE_HINT": "LATENCY",
            # f32 stated (see the module's docstring); no pinning, for torchrun shards.
            "INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": False})
        request = compiled.create_infer_request()
        outputs = [compiled.output(f"out{k}") for k in range(self.n_outputs)]

        def run(array):
            result = request.infer({"images": array}, share_outputs=False)
            return [result[output] for output in outputs]
        run.compiled = compiled          # its properties, for whoever checks them
        return run

    def _onnxruntime(self, path: Path):
        """onnxruntime's CPU provider on the exported file: a function array -> list of arrays."""
        import onnxruntime as ort

        graph = path.read_bytes()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # No arena: flattened early layers are hundreds of MB per batch; an arena keeps
        # its peak for the whole session.
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
        # onnxruntime's default, stated: on the 2-core build machine BASIC and EXTENDED
        # ran FaceNet-CASIA (160x160) at 0.62x / 0.60x and ResNet50 (113x113) at
        # 0.56x / 0.53x of ENABLE_ALL's throughput (batch 16, interleaved rounds).
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        return lambda array: session.run(None, {"images": array})

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        run = self._session((int(images.shape[2]), int(images.shape[3])))
        array = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        return tuple(torch.from_numpy(np.asarray(output)) for output in run(array))


#: The name this class had before OpenVINO joined (onnxruntime is its default engine).
OnnxRuntimeForward = ExportedForward
