"""The recogniser as the explainers see it.

:class:`FaceModel` (an embedding, a torch module where there is one, every image through
the network counted), :func:`as_face_model` for faceexp's recognisers, and
:func:`randomise_stages` for the model-randomisation check.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Any, Callable, Mapping

import numpy as np
import torch

from faceexp.core import checks
from faceexp.core.batching import layer_outputs
from faceexp.core.similarity import cosine_to


# --------------------------------------------------------------------------- the recogniser


class FaceModel:
    """A recogniser as the explainers see it: an embedding and, where there is one,
    a differentiable torch module; every image through the network is counted.

    Parameters
    ----------
    embed : callable, optional
        ``(N, 3, H, W)`` float in [0, 1] -> ``(N, D)`` tensor or array (or a
        dict with one layer): the forward passes without gradients (a black
        box, or a faster engine of ``module``'s network such as FaceNet's
        onnxruntime graph). Default: ``module`` without gradients.
    module : torch.nn.Module, optional
        Maps [0, 1] input ``(N, 3, H, W)`` to the same ``(N, D)`` embeddings
        and supports gradients (FaceNet's ``rec.model``).
    cam_layer : str, optional
        Name (in ``module.named_modules()``) of the late convolutional layer
        Grad-CAM reads.
    stages : dict of str -> sequence of str, optional
        The module's stages from the top (output side) down for
        :func:`randomise_stages`: label -> the submodules it groups (a
        sequence of groups is labelled by their names); default the top-level
        children that hold parameters, last first.
    name : str
        The recogniser's name, for tables and messages.
    batch_size : int
        Images per call of the network.
    source : dict, optional
        Where the weights came from (``rec.source``), for captions.

    Attributes
    ----------
    compiled : bool
        Whether the network wants one batch shape (``embed.compiled``; an unknown
        callable may be compiled, a torch module or a faceexp recogniser is not):
        faceexp's explainer pads a short last batch only then
        (:class:`faceexp.core.batching.BatchedEmbed`), so the padding rows, which go
        through the network too, do not push it over a budget.
    """

    def __init__(self, embed: Callable | None = None, *, module: torch.nn.Module | None = None,
                 cam_layer: str | None = None, stages: Any = None,
                 name: str = "embed", batch_size: int = 32, source: dict | None = None):
        if module is None and not callable(embed):
            raise ValueError("FaceModel needs embed (a callable mapping (N, 3, H, W) batches "
                             "to (N, D) embeddings) or module (a torch.nn.Module)")
        if module is not None and not isinstance(module, torch.nn.Module):
            raise ValueError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        self.module = module
        self._embed = embed
        self.name = str(name)
        self.batch_size = checks.positive_int(batch_size, "batch_size")
        self.source = dict(source or {})
        self.compiled = bool(getattr(embed, "compiled", True)) if embed is not None else False
        self._counts: list[int] | None = None
        self._in_embed = False        # embed's own calls of the module are counted once
        if module is not None:
            names = dict(module.named_modules())
            if cam_layer is not None and cam_layer not in names:
                raise ValueError(f"cam_layer: the module has no submodule {cam_layer!r}")
            if stages is None:
                stages = {child: (child,) for child, sub in
                          reversed(list(module.named_children()))
                          if any(True for _ in sub.parameters())}
            elif not isinstance(stages, Mapping):
                stages = {"+".join(group): tuple(group) for group in stages}
            stages = {str(label): tuple(group) for label, group in stages.items()}
            unknown = [s for group in stages.values() for s in group if s not in names]
            if unknown:
                raise ValueError(f"stages: the module has no submodule(s) {unknown}")
        else:
            cam_layer, stages = None, {}
        self.cam_layer = cam_layer
        #: Stage groups from the top, and their labels.
        self.stages = list(stages.values())
        self.stage_labels = list(stages)

    @property
    def white_box(self) -> bool:
        """True when there is a torch module to take gradients of."""
        return self.module is not None

    @property
    def device(self) -> torch.device:
        if self.module is None:
            return torch.device("cpu")
        parameter = next(self.module.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    @contextlib.contextmanager
    def counting(self):
        """Count the images that go through the network inside the block:
        ``with model.counting() as counts: ...; counts[0]``."""
        counts = [0]
        previous, self._counts = self._counts, counts
        hook = None
        if self.module is not None:
            def count(_module, inputs):
                if not self._in_embed:
                    counts[0] += int(inputs[0].shape[0])
            hook = self.module.register_forward_pre_hook(count)
        try:
            yield counts
        finally:
            if hook is not None:
                hook.remove()
            self._counts = previous

    def embed(self, batch: Any) -> torch.Tensor:
        """``(N, D)`` float32 CPU embeddings of a ``(N, 3, H, W)`` batch in [0, 1],
        ``batch_size`` images per network call, without gradients."""
        batch = torch.as_tensor(np.asarray(batch) if not isinstance(batch, torch.Tensor)
                                else batch).detach().to(torch.float32)
        parts = []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start:start + self.batch_size]
            if self._counts is not None:
                self._counts[0] += len(chunk)
            self._in_embed = True
            try:
                with torch.no_grad():
                    output = self._embed(chunk) if self._embed is not None else \
                        self.module(chunk.to(self.device))
            finally:
                self._in_embed = False
            (value,) = one_layer(output, len(chunk), self.name)
            parts.append(value.detach().to("cpu", torch.float32))
        return torch.cat(parts)

    def similarity(self, batch: Any, reference: torch.Tensor) -> torch.Tensor:
        """``(N,)`` cosine similarity of each image's embedding to ``reference`` (D,)."""
        return cosine_to(self.embed(batch), reference)

    def differentiable_similarity(self, batch: torch.Tensor,
                                  reference: torch.Tensor) -> torch.Tensor:
        """:meth:`similarity` through the module with gradients (white boxes only)."""
        if self.module is None:
            raise ValueError(f"{self.name} is a black box: no gradients")
        (value,) = one_layer(self.module(batch.to(self.device)), len(batch), self.name)
        return cosine_to(value, reference.to(value.device))

    def __repr__(self) -> str:
        kind = "torch module" if self.white_box else "black box"
        return f"<FaceModel {self.name!r}: {kind}>"


def one_layer(output: Any, rows: int, name: str) -> tuple[torch.Tensor]:
    layers = layer_outputs(output, rows)
    if len(layers) != 1:
        raise ValueError(f"{name}: the embedding callable returns layers {list(layers)}; the "
                         "explainers need one (N, D) embedding (ask it for one layer)")
    return tuple(layers.values())


#: FaceNet's stages from the top: bottleneck, then the Inception-ResNet stages, then the stem.
FACENET_STAGES = {"bottleneck": ("last_linear", "last_bn"), "block8": ("block8",),
                  "repeat_3": ("repeat_3",), "mixed_7a": ("mixed_7a",),
                  "repeat_2": ("repeat_2",), "mixed_6a": ("mixed_6a",),
                  "repeat_1": ("repeat_1",),
                  "stem": ("conv2d_4b", "conv2d_4a", "conv2d_3b", "conv2d_2b", "conv2d_2a",
                           "conv2d_1a")}
#: The paper's CNNs (inside :class:`_GapNetwork`): stages by resolution, top first.
PAPER_STAGES = {
    "mobilenetv2": {"features.18": ("net.features.18",),
                    "features.14-17": tuple(f"net.features.{k}" for k in (17, 16, 15, 14)),
                    "features.7-13": tuple(f"net.features.{k}" for k in range(13, 6, -1)),
                    "features.4-6": tuple(f"net.features.{k}" for k in (6, 5, 4)),
                    "features.0-3": tuple(f"net.features.{k}" for k in (3, 2, 1, 0))},
    "resnet50": {"layer4": ("net.layer4",), "layer3": ("net.layer3",),
                 "layer2": ("net.layer2",), "layer1": ("net.layer1",),
                 "stem": ("net.conv1", "net.bn1")},
}
#: Grad-CAM's layer: the last convolutional stage.
CAM_LAYERS = {"facenet-casia": "block8", "mobilenetv2": "net.features.18",
              "resnet50": "net.layer4"}


class _GapNetwork(torch.nn.Module):
    """A paper CNN from its [0, 1] input to one layer (the GAP), differentiably:
    ImageNet normalisation, then torchvision's feature extractor up to the layer."""

    def __init__(self, model: torch.nn.Module, arch: str, layer: str = "gap"):
        super().__init__()
        from torchvision.models.feature_extraction import create_feature_extractor

        from faceexp.models import resolve_layer
        from faceexp.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD

        self.node = resolve_layer(arch, layer)
        self.net = create_feature_extractor(model, {self.node: "out"})
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, x):
        return self.net((x - self.mean) / self.std)["out"].flatten(1).float()


class _WarpedModule(torch.nn.Module):
    """A recogniser's torch module behind the canonical frame's warp (differentiable)."""

    def __init__(self, canonical: Any, module: torch.nn.Module):
        super().__init__()
        self.canonical = canonical
        self.net = module

    def forward(self, x):
        return self.net(self.canonical.to_own(x))

    def __deepcopy__(self, memo):
        memo[id(self.canonical)] = self.canonical       # the warp is shared, not copied
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        new.__dict__.update({k: copy.deepcopy(v, memo) for k, v in self.__dict__.items()})
        return new


def as_face_model(recogniser: Any) -> FaceModel:
    """The :class:`FaceModel` of a recogniser, a torch module or an embed callable.

    * FaceNet-CASIA (``faceexp.recognisers.load("facenet-casia")``): forward
      passes through the recogniser (its engine, e.g. onnxruntime), gradients
      through its torch module, Grad-CAM at ``block8``, the stages of
      :data:`FACENET_STAGES`.
    * The paper's CNNs (``load("mobilenetv2", checkpoint=...)``): their layer
      (the GAP) through :class:`_GapNetwork`, Grad-CAM at the last block.
    * A recogniser in the canonical frame (``load(name, frame="canonical")``):
      the same, with the warp into the recogniser's own crop inside the module.
    * Other recognisers (SFace, dlib) and any other callable: a black box.
    * A ``torch.nn.Module``: white box, no Grad-CAM layer (build a
      :class:`FaceModel` with ``cam_layer=`` for one).
    """
    if isinstance(recogniser, FaceModel):
        return recogniser
    from faceexp.recognisers.base import Recogniser
    from faceexp.recognisers.canonical import CanonicalRecogniser
    from faceexp.recognisers.facenet import FaceNetCasia
    from faceexp.recognisers.paper_cnns import PaperCNN

    if isinstance(recogniser, CanonicalRecogniser) and isinstance(recogniser.inner,
                                                                   FaceNetCasia):
        inner = recogniser.inner
        return FaceModel(recogniser, module=_WarpedModule(recogniser, inner.model.eval()),
                         cam_layer=f"net.{CAM_LAYERS['facenet-casia']}",
                         stages={label: tuple(f"net.{m}" for m in group)
                                 for label, group in FACENET_STAGES.items()},
                         name=recogniser.name, batch_size=recogniser.preferred_batch_size,
                         source=recogniser.source)
    if isinstance(recogniser, FaceNetCasia):
        return FaceModel(recogniser, module=recogniser.model.eval(),
                         cam_layer=CAM_LAYERS["facenet-casia"],
                         stages=FACENET_STAGES, name=recogniser.name,
                         batch_size=recogniser.preferred_batch_size, source=recogniser.source)
    if isinstance(recogniser, PaperCNN):
        network = _GapNetwork(recogniser.model, recogniser.name, recogniser.layer)
        network = network.to(next(recogniser.model.parameters()).device).eval()
        return FaceModel(module=network, cam_layer=CAM_LAYERS[recogniser.name],
                         stages=PAPER_STAGES[recogniser.name], name=recogniser.name,
                         batch_size=recogniser.preferred_batch_size,
                         source={"checkpoint": recogniser.source.get("checkpoint")})
    if isinstance(recogniser, Recogniser):
        return FaceModel(recogniser, name=recogniser.name,
                         batch_size=recogniser.preferred_batch_size, source=recogniser.source)
    if isinstance(recogniser, torch.nn.Module):
        return FaceModel(module=recogniser.eval(), name=type(recogniser).__name__)
    if callable(recogniser):
        return FaceModel(recogniser, name=getattr(recogniser, "name", None)
                         or getattr(recogniser, "__name__", "embed"),
                         batch_size=getattr(recogniser, "preferred_batch_size", None) or 32)
    raise ValueError(f"recogniser must be a faceexp recogniser, a torch.nn.Module or an embed "
                     f"callable, got {type(recogniser).__name__}")


def randomise_stages(model: Any, n_stages: int, *, seed: int = 0) -> FaceModel:
    """A copy of a white-box recogniser with its top ``n_stages`` stages re-initialised.

    The cascading randomisation of Adebayo et al. (2018): stage groups of
    ``model.stages`` from the top (output side) down; in each, every
    convolution's and linear layer's weight and bias is redrawn from a normal
    distribution with mean 0 and the standard deviation of the trained values
    it replaces (a zero-spread bias becomes 0), from a generator seeded by
    ``seed`` and the module's name; normalisation layers are kept. The
    original is not changed.

    Parameters
    ----------
    model : recogniser or FaceModel
        White box (see :func:`as_face_model`).
    n_stages : int
        0 .. ``len(model.stages)``.
    seed : int

    Returns
    -------
    FaceModel
        On a deep copy of the module, same name, Grad-CAM layer and stages.
    """
    model = as_face_model(model)
    if not model.white_box:
        raise ValueError(f"randomise_stages: {model.name} is a black box (no torch module "
                         "whose layers could be re-initialised)")
    n_stages = checks.positive_int(n_stages, "n_stages", 0)
    if n_stages > len(model.stages):
        raise ValueError(f"n_stages must be at most {len(model.stages)} (the stages of "
                         f"{model.name}), got {n_stages}")
    seed = checks.seed(seed)
    module = copy.deepcopy(model.module)
    modules = dict(module.named_modules())
    with torch.no_grad():
        for group in model.stages[:n_stages]:
            for top in group:
                for name, sub in modules[top].named_modules():
                    if not isinstance(sub, (torch.nn.Conv2d, torch.nn.Linear)):
                        continue
                    full = f"{top}.{name}" if name else top
                    generator = torch.Generator().manual_seed(
                        int(np.random.default_rng([seed, *full.encode()]).integers(2 ** 62)))
                    for parameter in (sub.weight, sub.bias):
                        if parameter is None:
                            continue
                        spread = float(parameter.std()) if parameter.numel() > 1 else 0.0
                        fresh = torch.randn(parameter.shape, generator=generator) * spread
                        parameter.copy_(fresh.to(parameter.device, parameter.dtype))
    return FaceModel(module=module, cam_layer=model.cam_layer,
                     stages=dict(zip(model.stage_labels, model.stages)),
                     name=model.name, batch_size=model.batch_size, source=model.source)
