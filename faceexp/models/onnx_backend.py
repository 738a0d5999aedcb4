"""The onnxruntime engine for an :class:`~faceexp.models.Embedder`: the same layer outputs,
often several times faster on a CPU than PyTorch's eager or compiled forward.

The Embedder's pruned graph (normalisation, the layers asked for, pooling, softmax), or
FaceNet-CASIA's (:meth:`faceexp.recognisers.facenet.FaceNetCasia.embedder`), is
exported with ``torch.onnx.export`` once per input size and cached in the user cache
(:func:`faceexp.files.cache_dir`, or the caller's folder, ``onnx/<key>.onnx``, written
atomically), keyed by the weights' :func:`~faceexp.models.state_dict_hash`, the layers,
pooling, normalisation, input size and the torch version. It runs on onnxruntime's CPU
provider with as many intra-op threads as ``torch.get_num_threads()`` (so a torchrun
process with ``OMP_NUM_THREADS=1`` does not oversubscribe the cores) and a dynamic batch
size. The exported graph is a snapshot of the weights: an Embedder whose model is still
training must use the torch backend.
"""
from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from faceexp.files import atomic_write, cache_dir

__all__ = ["BACKENDS", "OnnxRuntimeForward", "resolve_backend"]

#: Engines an Embedder can run on.
BACKENDS = ("torch", "onnxruntime", "auto")
#: Bumped when the export changes.
EXPORT_VERSION = 1
_OPSET = 17


def resolve_backend(backend: str, device) -> str:
    """``"auto"``: onnxruntime on a CPU (where it is installed), torch elsewhere."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    if torch.device(device).type != "cpu":
        return "torch"
    import importlib.util

    return "onnxruntime" if importlib.util.find_spec("onnxruntime") else "torch"


class OnnxRuntimeForward:
    """Calls of a pruned torch graph, run by onnxruntime: tensor (N, 3, H, W) -> tuple of tensors.

    Parameters
    ----------
    module : torch.nn.Module
        The graph to export (the Embedder's extractor), on the CPU, in eval mode.
    key : dict
        What identifies it besides its weights (layers, pooling, normalisation).
    n_outputs : int
        How many tensors it returns.
    threads : int, optional
        onnxruntime's intra-op threads; default ``torch.get_num_threads()``.
    cache : path-like, optional
        Folder whose ``onnx/`` sub-folder holds the exported graphs; default
        :func:`faceexp.files.cache_dir` (read when a graph is first needed).
    weights : str, optional
        The weights' hash when the caller already has it (e.g. a recogniser that
        hashes its converted weights once for several layer sets); default
        :func:`~faceexp.models.state_dict_hash` of ``module``.
    """

    def __init__(self, module: torch.nn.Module, key: dict, n_outputs: int,
                 threads: int | None = None, *, cache=None, weights: str | None = None):
        from faceexp.models.checkpoints import state_dict_hash

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
        text = json.dumps(dict(self._key, input_size=list(size)), sort_keys=True, default=str)
        folder = cache_dir() if self.cache is None else self.cache
        return folder / "onnx" / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.onnx"

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
        if size not in self._sessions:
            import onnxruntime as ort

            path = self._path(size)
            if path.is_file():
                graph = path.read_bytes()
            else:
                graph = self._export(size)
                atomic_write(path, lambda file: file.write(graph))
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
            self._sessions[size] = ort.InferenceSession(graph, options,
                                                        providers=["CPUExecutionProvider"])
        return self._sessions[size]

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        session = self._session((int(images.shape[2]), int(images.shape[3])))
        array = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        outputs = session.run(None, {"images": array})
        return tuple(torch.from_numpy(output) for output in outputs)
