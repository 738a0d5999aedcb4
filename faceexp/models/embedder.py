"""The embedding callable of the paper's CNNs: images in [0, 1] in, one (N, D) tensor per
requested layer out, from one forward pass of the pruned FX graph (optionally compiled).

Why our own graph surgery rather than torchvision's ``create_feature_extractor``: that
hides the convolution, batch norm and ReLU6 inside ``Conv2dNormActivation`` (the paper's
layer sweep needs each of them) and cannot copy an output before an in-place ReLU
overwrites it.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import fx, nn

from faceexp.core.batching import BatchedEmbed
from faceexp.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from faceexp.models.catalogue import trace_network, layer_catalogue, resolve_layer
from faceexp.models.networks import LOGITS_NODE, arch_of, check_arch, unwrap_model
from faceexp.models.onnx_backend import EXPORTED, ExportedForward, check_device, resolve_backend

_POOLINGS = ("flatten", "mean")


# Explanation batches measured fastest on 2-core build machines. torch (compiled,
# channels_last; benchmarks/explain.py, 1000 samples; an AMD EPYC with AVX2):
# MobileNetV2 ran 1000 forwards in 12.3 s at batch 8 against 19.5 s at batch 50 (its
# activations stay in cache); ResNet50 was the same at 10 and 50 (11.9-12.0 img/s). The
# exported engines (an Intel Xeon with AVX-512; benchmarks/engines.py, 9 interleaved
# rounds of 64 faces, img/s at batch 8 / 16 / 32, GAP and the 18-layer sweep):
# onnxruntime MobileNetV2 156 / 148 / 129 and 138 / 133 / 106, ResNet50 26.0 / 24.2 /
# 24.1 and 24.0 / 22.1 / 13.8; OpenVINO MobileNetV2 229 / 226 / 223 and 168 / 176 / 163,
# ResNet50 26.2 / 25.9 / 24.6 and 20.8 / 20.5 / 18.7.
_CPU_BATCH = {"torch": {"mobilenetv2": 8, "resnet50": 50},
              "onnxruntime": {"mobilenetv2": 8, "resnet50": 8},
              "openvino": {"mobilenetv2": 16, "resnet50": 8}}
_OTHER_BATCH = 50


def default_batch_size(arch: str, device="cpu", backend: str = "torch") -> int:
    """Perturbed images per forward pass for explaining with ``arch`` on ``device``.

    On the CPU, the batch measured fastest for each architecture and engine (torch:
    MobileNetV2 8, ResNet50 50; onnxruntime: 8 and 8; OpenVINO: 16 and 8). Elsewhere 50: not measured
    here; on a GPU a larger batch (``batch_size=`` of the explainer) is usually faster.
    """
    arch = check_arch(arch)
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ValueError(f"device: not a torch device: {device!r}") from None
    if kind != "cpu":
        return _OTHER_BATCH
    return _CPU_BATCH[backend if backend in _CPU_BATCH else "torch"][arch]


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
    backend : {"torch", "onnxruntime", "openvino", "auto"}, default "torch"
        The engine that runs the pruned graph: PyTorch (eager or compiled), or
        onnxruntime's CPU provider, or OpenVINO's CPU plugin
        (:mod:`faceexp.models.onnx_backend`; the graph is exported once per input
        size and cached; often several times faster on a CPU; a snapshot of the
        weights, so not for a model still training). "auto": on a CPU the engine
        measured fastest for this architecture among those installed
        (:data:`~faceexp.models.onnx_backend.AUTO_CPU`), torch elsewhere.
        ``compile`` applies to the torch backend only.
    batch_size : int, optional
        Run the input in chunks of this many images (bounds memory); with
        ``compile`` on, the last chunk is padded to this size (repeating its
        last image; see :class:`faceexp.core.batching.BatchedEmbed`) so the compiled
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
                 channels_last: bool | None = None, batch_size: int | None = None,
                 backend: str = "torch"):
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        model = unwrap_model(model)
        arch = arch_of(model)
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
            key = ("softmax", LOGITS_NODE[arch]) if node == "softmax" else (node, node)
            if key not in outputs:
                outputs.append(key)
            self._positions[layer] = outputs.index(key)
        graph, names = trace_network(model)
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
        self.backend = resolve_backend(backend, device, arch)
        if self.backend in EXPORTED:
            check_device(self.backend, device)
            self.compiled = False          # a dynamic batch: nothing to pad for
            self._run = ExportedForward(
                self._extractor, {"arch": arch, "outputs": [key for key, _ in outputs],
                                  "pooling": pooling, "normalize": self.normalize},
                len(outputs), engine=self.backend)
        else:
            self._run = torch.compile(self._extractor, dynamic=False) if compile \
                else self._extractor

    @property
    def preferred_batch_size(self) -> int:
        """The batch an explainer should use: ``batch_size`` if set, else
        :func:`default_batch_size` for this architecture, device and engine."""
        if self.batch_size is not None:
            return self.batch_size
        return default_batch_size(self.arch, self.device, self.backend)

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
        # Chunking and last-batch padding are the shared path's (faceexp.core.batching);
        # padding only when compiled, so that the graph sees one shape.
        size = self.batch_size if self.batch_size is not None else len(batch)
        runner = BatchedEmbed(self._forward, batch_size=size,
                              pad=self.compiled and self.batch_size is not None)
        # An exported engine runs an eval-mode graph: no training flags to switch.
        training = [] if self.backend in EXPORTED else \
            [module for module in self._extractor.modules() if module.training]
        for module in training:
            module.training = False
        try:
            return runner(batch)
        finally:
            for module in training:
                module.training = True

    def _forward(self, chunk: torch.Tensor) -> dict[str, torch.Tensor]:
        """One forward pass of the pruned graph: ``{layer: (n, D)}``."""
        if self.channels_last:
            chunk = chunk.contiguous(memory_format=torch.channels_last)
        values = self._run(chunk)
        return {layer: values[self._positions[layer]] for layer in self.layers}

    def __repr__(self) -> str:
        return (f"Embedder(arch={self.arch!r}, layers={self.layers!r}, pooling={self.pooling!r}, "
                f"normalize={self.normalize}, device={str(self.device)!r}, "
                f"compile={self.compiled}, channels_last={self.channels_last}, "
                f"backend={self.backend!r})")




def load_embedder(checkpoint, layers=("gap",), *, pooling="flatten", compile=False,
                  device=None, batch_size=None, backend="torch") -> Embedder:
    """An :class:`Embedder` of the network in a faceexp checkpoint file.

    ``device`` None means the CPU; the other options are :class:`Embedder`'s.
    """
    from faceexp.models.checkpoints import load_checkpoint

    model, _ = load_checkpoint(checkpoint, device=device or "cpu")
    return Embedder(model, layers, pooling=pooling, compile=compile, batch_size=batch_size,
                    backend=backend)
