"""Which explainer to trust: faceexp's verification LIME beside lime, captum and Grad-CAM.

Every explainer here explains one scalar, the cosine similarity of a face's
embedding to a reference embedding (the face's own, or a genuine partner's),
and returns an (H, W) map for the face. They are run through the libraries
their users run (``lime``, ``captum``, ``pytorch_grad_cam``), not rewritten;
:data:`EXPLAINERS` is the registry and :func:`explain_with` the one call.
Gradient explainers need a PyTorch recogniser (FaceNet-CASIA, the paper's
CNNs); black boxes (SFace on onnxruntime, dlib) get the perturbation
explainers only.

:func:`compare_explainers` runs a list of them on a recogniser and genuine
pairs of faces and measures, per explainer and face:

* deletion and insertion curves (most relevant pixels first) of the pair's
  and the face's self-similarity, each beside the curve of a random map of the
  explainer's own kind (:func:`baseline_map`): random superpixel coefficients
  for region methods, the explainer's own attributions shuffled over the
  pixels for pixel methods (scattered deletion attacks a recogniser far harder
  than any contiguous map, so it is no baseline for a region map);
* the model-randomisation sanity check (Adebayo et al. 2018): the rank
  correlation of the map with the map of the same explainer on the recogniser
  with its top stages re-initialised, cascading down (:func:`randomise_stages`);
* seed stability: the rank correlation of the maps of two seeds;
* cost: seconds and images through the network per explanation.

:func:`cost_table` (or :func:`comparison_cost` of a comparison) measures the cost
again at each explainer's usual settings beside the equal budget, and
:func:`cost_summary` says what it shows.

:func:`summarise` turns these into one row per explainer with 95% intervals
over faces and :func:`recommendation` into a paragraph that follows from them.

quantus is not used: its metrics score a classifier's class ``y`` rather than
a similarity to a reference, and it requires ``opencv-python`` (a second
``cv2`` beside grad-cam's ``opencv-python-headless``); the metrics here are a
few lines each, reuse :mod:`faceexp.evaluate.faithfulness`, and are tested against
worked examples.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from faceexp.core import checks
from faceexp.core.batching import layer_outputs
from faceexp.explain.explainer import Explainer
from faceexp.evaluate.faithfulness import DEFAULT_STEPS, deletion_order, removal_steps, deletion_auc
from faceexp.explain.lime_steps import as_image, paint, superpixels
from faceexp.evaluate.masking import apply_masks, as_images, as_maps, fill_tensor
from faceexp.core.similarity import cosine_rows, cosine_to

__all__ = [
    "EXPLAINERS", "DEFAULT_EXPLAINERS", "ExplainerSpec", "FaceModel", "Attribution",
    "Comparison", "as_face_model", "explain_with", "run_explainer", "randomise_stages",
    "rank_correlation", "baseline_map", "similarity_curves", "curve_auc", "t_interval",
    "genuine_pairs", "align_pairs", "compare_explainers", "compare_subjects", "summarise",
    "recommendation", "comparison_caption", "explainer_table", "heatmap_grid",
    "occlusion_window", "combine", "headline_table", "COST_SETTINGS", "cost_table",
    "comparison_cost", "cost_summary",
]

#: Superpixels of every region explainer (the paper's 75), made as faceexp's explainer
#: makes them by default (SLIC or SLIC-zero, its ``slic_zero`` default).
N_SEGMENTS = 75
SLIC_ZERO = inspect.signature(Explainer).parameters["slic_zero"].default
#: Samples of the sampling explainers at their usual settings (the paper's and lime's 1000).
USUAL_SAMPLES = 1000
#: Integrated-gradients steps at its usual setting (captum's default).
USUAL_IG_STEPS = 50
#: A map is "random-like" under randomisation when its rank correlation with the
#: original stays below this after the whole network is re-initialised.
RANDOMISATION_PASS = 0.5
BLACK_BOX = "n/a (black box)"


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
            (value,) = _one_layer(output, len(chunk), self.name)
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
        (value,) = _one_layer(self.module(batch.to(self.device)), len(batch), self.name)
        return cosine_to(value, reference.to(value.device))

    def __repr__(self) -> str:
        kind = "torch module" if self.white_box else "black box"
        return f"<FaceModel {self.name!r}: {kind}>"


def _one_layer(output: Any, rows: int, name: str) -> tuple[torch.Tensor]:
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


class _Embedding:
    """A FaceModel's :meth:`FaceModel.embed` for faceexp's explainer, saying whether the
    network is compiled (a bound method cannot: the explainer would pad every short batch)."""

    def __init__(self, model: FaceModel):
        self.model = model
        self.compiled = model.compiled

    def __call__(self, batch: Any) -> torch.Tensor:
        return self.model.embed(batch)


# --------------------------------------------------------------------------- the explainers


@dataclass(frozen=True)
class ExplainerSpec:
    """One entry of :data:`EXPLAINERS`.

    Attributes
    ----------
    name : str
    run : callable
        ``run(model, face, reference, segments, seed, budget) -> (H, W)`` with
        a :class:`FaceModel`, a (H, W, 3) float32 face, a (D,) reference
        tensor, the face's (H, W) superpixels and an int or None budget.
    kind : {"region", "pixel"}
        What the map is made of: its baseline (:func:`baseline_map`).
    gradients : bool
        Needs a torch module.
    stochastic : bool
        Depends on the seed (deterministic ones have seed stability 1).
    library : str
    usual : str
        Its usual settings (``budget=None``).
    budget_sets : str
        What a budget (images through the network per explanation) sets.
    """

    name: str
    run: Callable
    kind: str
    gradients: bool
    stochastic: bool
    library: str
    usual: str
    budget_sets: str = "nothing: one pass whatever the budget"


def _faceexp_lime(**options):
    def run(model, face, reference, segments, seed, budget):
        explainer = Explainer(_Embedding(model), n_samples=budget or USUAL_SAMPLES,
                              n_segments=N_SEGMENTS, batch_size=model.batch_size, **options)
        return explainer.explain(face, reference=reference.numpy(), seed=seed,
                                 segments=segments).heatmaps[0]
    return run


def _lime_package(model, face, reference, segments, seed, budget):
    from unittest import mock

    from lime import lime_image

    def classifier_fn(images):        # (N, H, W, 3) float64 -> (N, 1): the similarity
        batch = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2),
                                                      dtype=np.float32))
        return model.similarity(batch, reference).numpy()[:, None]

    explainer = lime_image.LimeImageExplainer(random_state=seed)
    # lime_image shows a tqdm bar on stderr with no switch to turn it off
    with mock.patch.object(lime_image, "tqdm", lambda iterable, **_: iterable):
        explanation = explainer.explain_instance(
            face.astype(np.float64), classifier_fn, labels=(0,), top_labels=None,
            num_samples=budget or USUAL_SAMPLES, batch_size=model.batch_size,
            random_seed=seed)
    weights = np.zeros(int(explanation.segments.max()) + 1)
    for segment, weight in explanation.local_exp[0]:
        weights[segment] = weight
    return weights[explanation.segments]


def _forward(model, reference):
    return lambda batch: model.similarity(batch, reference)


def _seeded(seed):
    """captum draws its samples from torch's global generator: fork it, seed the fork."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.random.fork_rng(devices=[]))
    torch.manual_seed(seed)
    return stack


def _captum_sampling(method):
    def run(model, face, reference, segments, seed, budget):
        import captum.attr

        x = torch.from_numpy(face.transpose(2, 0, 1)[None].copy())
        mask = torch.from_numpy(segments)[None, None].expand(1, 3, *segments.shape)
        with _seeded(seed):
            attributions = getattr(captum.attr, method)(_forward(model, reference)).attribute(
                x, baselines=0.0, feature_mask=mask.contiguous(),
                n_samples=budget or USUAL_SAMPLES, perturbations_per_eval=model.batch_size)
        return attributions[0, 0].double().numpy()
    return run


def occlusion_window(side: int, budget: int | None) -> tuple[int, int]:
    """(window, stride) of captum-occlusion on a square ``side``: usual window side/10
    with half-window stride; with a budget the stride that places about ``budget``
    windows (window twice the stride)."""
    if budget is None:
        window = max(2, round(side / 10))
        return window, max(1, window // 2)
    per_side = max(2, math.isqrt(max(budget - 1, 4)))
    stride = max(1, math.ceil(side / (per_side + 1)))
    return min(side, 2 * stride), stride


def _captum_occlusion(model, face, reference, segments, seed, budget):
    import captum.attr

    x = torch.from_numpy(face.transpose(2, 0, 1)[None].copy())
    window, stride = occlusion_window(min(face.shape[:2]), budget)
    attributions = captum.attr.Occlusion(_forward(model, reference)).attribute(
        x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
        baselines=0.0, perturbations_per_eval=model.batch_size)
    return attributions[0].sum(0).double().numpy()


def _input(face, model):
    return torch.from_numpy(face.transpose(2, 0, 1)[None].copy()).to(model.device) \
        .requires_grad_(True)


def _captum_ig(model, face, reference, segments, seed, budget):
    import captum.attr

    x = _input(face, model)
    attributions = captum.attr.IntegratedGradients(
        lambda batch: model.differentiable_similarity(batch, reference)).attribute(
        x, baselines=torch.zeros_like(x), n_steps=budget or USUAL_IG_STEPS,
        internal_batch_size=model.batch_size)
    return attributions[0].sum(0).detach().double().cpu().numpy()


def _captum_saliency(model, face, reference, segments, seed, budget):
    import captum.attr

    attributions = captum.attr.Saliency(
        lambda batch: model.differentiable_similarity(batch, reference)).attribute(
        _input(face, model), abs=True)
    return attributions[0].sum(0).detach().double().cpu().numpy()


class _CosineToReference:
    """Grad-CAM target: the cosine similarity of one image's output to a reference
    (the ``SimilarityToConceptTarget`` of grad-cam's embedding tutorial; the package
    does not ship it)."""

    def __init__(self, reference: torch.Tensor):
        self.reference = reference

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return cosine_to(output.reshape(1, -1), self.reference)[0]


def _grad_cam(model, face, reference, segments, seed, budget):
    from pytorch_grad_cam import GradCAM

    if model.cam_layer is None:
        raise ValueError(f"grad-cam: {model.name} names no convolutional layer; build "
                         "FaceModel(module=..., cam_layer='<module name>')")
    layer = dict(model.module.named_modules())[model.cam_layer]
    with GradCAM(model=model.module, target_layers=[layer]) as cam:
        maps = cam(input_tensor=_input(face, model),
                   targets=[_CosineToReference(reference.to(model.device))])
    return np.asarray(maps[0], dtype=np.float64)


_SAMPLES = f"{USUAL_SAMPLES} samples"
_SETS_SAMPLES = "the samples (one image each)"
#: The explainers :func:`explain_with` runs, by name.
EXPLAINERS = {spec.name: spec for spec in (
    ExplainerSpec("faceexp-lime-paper", _faceexp_lime(p_off=0.6), "region", False, True,
                  "faceexp",
                  f"the paper: 75 superpixels, p_off=0.6, faceexp's defaults, {_SAMPLES}",
                  _SETS_SAMPLES),
    ExplainerSpec("faceexp-lime-p0.2", _faceexp_lime(p_off=0.2), "region", False, True,
                  "faceexp", f"chapter 8's most faithful setting: p_off=0.2, {_SAMPLES}",
                  _SETS_SAMPLES),
    ExplainerSpec("faceexp-lime-matlab", _faceexp_lime(sampling="matlab"), "region", False,
                  True, "faceexp", f"the MATLAB LIME's sampling, {_SAMPLES}", _SETS_SAMPLES),
    ExplainerSpec("lime", _lime_package, "region", False, True, "lime",
                  f"lime_image as its users wire it (quickshift segments, segment-mean fill, "
                  f"ridge), {_SAMPLES}", _SETS_SAMPLES),
    ExplainerSpec("captum-occlusion", _captum_occlusion, "region", False, False, "captum",
                  "black patch of side/10 px, stride half the patch",
                  "the stride: about as many patches as the budget, twice the stride wide"),
    ExplainerSpec("captum-kernelshap", _captum_sampling("KernelShap"), "region", False, True,
                  "captum", f"the same superpixels as feature mask, black, {_SAMPLES}",
                  _SETS_SAMPLES),
    ExplainerSpec("captum-lime", _captum_sampling("Lime"), "region", False, True, "captum",
                  f"the same superpixels, captum's defaults (Lasso 0.01), {_SAMPLES}",
                  _SETS_SAMPLES),
    ExplainerSpec("captum-ig", _captum_ig, "pixel", True, False, "captum",
                  f"black baseline, {USUAL_IG_STEPS} steps", "the steps (one image each)"),
    ExplainerSpec("captum-saliency", _captum_saliency, "pixel", True, False, "captum",
                  "|gradient| summed over channels; one pass"),
    ExplainerSpec("grad-cam", _grad_cam, "region", True, False, "grad-cam",
                  "cosine-to-reference target at the last convolutional stage; one pass"),
)}
#: The explainers compared by default (faceexp-lime-matlab is one more faceexp setting).
DEFAULT_EXPLAINERS = ("faceexp-lime-paper", "faceexp-lime-p0.2", "lime", "captum-occlusion",
                      "captum-kernelshap", "captum-lime", "captum-ig", "captum-saliency",
                      "grad-cam")


def explainer_table(names: Sequence[str] | None = None) -> pd.DataFrame:
    """The registry as a table: ``explainer``, ``library``, ``kind``, ``gradients``
    (needs a torch module), ``stochastic``, ``usual`` (its usual settings) and
    ``budget_sets`` (what a budget of images per explanation sets)."""
    names = list(EXPLAINERS) if names is None else [_spec(n).name for n in names]
    return pd.DataFrame([{"explainer": n, "library": EXPLAINERS[n].library,
                          "kind": EXPLAINERS[n].kind, "gradients": EXPLAINERS[n].gradients,
                          "stochastic": EXPLAINERS[n].stochastic, "usual": EXPLAINERS[n].usual,
                          "budget_sets": EXPLAINERS[n].budget_sets}
                         for n in names])


def _spec(name: str) -> ExplainerSpec:
    if name not in EXPLAINERS:
        raise ValueError(f"unknown explainer {name!r}: choose from {list(EXPLAINERS)}")
    return EXPLAINERS[name]


def _check_runs_on(spec: ExplainerSpec, model: FaceModel) -> None:
    if spec.gradients and not model.white_box:
        perturbation = [n for n, s in EXPLAINERS.items() if not s.gradients]
        raise ValueError(f"{spec.name} needs gradients, but {model.name} is a black box (no "
                         f"torch module); use a perturbation explainer: {perturbation}")


def _reference_vector(model: FaceModel, face: np.ndarray, reference: Any) -> torch.Tensor:
    if reference is None:
        return model.embed(face.transpose(2, 0, 1)[None])[0]
    value = reference.detach().cpu() if isinstance(reference, torch.Tensor) \
        else np.asarray(reference)
    if value.ndim == 3:
        partner = as_image(value, "reference")
        if partner.shape != face.shape:
            raise ValueError(f"reference: image of shape {partner.shape} must have the face's "
                             f"shape {face.shape}")
        return model.embed(partner.transpose(2, 0, 1)[None])[0]
    if value.ndim == 1:
        return torch.as_tensor(np.asarray(value, dtype=np.float32))
    raise ValueError(f"reference must be None (the face's own embedding), an (H, W, 3) image or "
                     f"a (D,) embedding, got shape {tuple(value.shape)}")


@dataclass
class Attribution:
    """One explanation: ``heatmap`` (H, W) float64 (higher = more relevant to the
    similarity), ``seconds`` of wall time, ``forwards`` images through the network
    (the reference's embedding included; backward passes not counted)."""

    explainer: str
    heatmap: np.ndarray
    seconds: float
    forwards: int


def run_explainer(name: str, recogniser: Any, face: Any, reference: Any = None, *,
                  seed: int, budget: int | None = None, segments: Any = None,
                  n_segments: int = N_SEGMENTS) -> Attribution:
    """Explain one face with one explainer and measure its cost.

    Parameters
    ----------
    name : str
        A key of :data:`EXPLAINERS`.
    recogniser : recogniser, torch module, embed callable or FaceModel
        See :func:`as_face_model`.
    face : array_like, shape (H, W, 3)
        uint8 or float in [0, 1], the recogniser's input size.
    reference : optional
        None: the face's own embedding; an (H, W, 3) image: its embedding
        (a genuine partner); a (D,) vector: used as given.
    seed : int
    budget : int, optional
        Images through the network the explainer may use (what it sets:
        :attr:`ExplainerSpec.budget_sets`; the reference's embedding comes on
        top, and Saliency and Grad-CAM make one pass whatever the budget);
        None: its usual settings (:attr:`ExplainerSpec.usual`).
    segments : array_like of int, shape (H, W), optional
        Superpixels of the region explainers; default SLIC (the explainer's
        kind, :data:`SLIC_ZERO`) with ``n_segments``.
    n_segments : int
        Requested superpixels when ``segments`` is None (the paper's 75).

    Returns
    -------
    Attribution

    Raises
    ------
    ValueError
        For an unknown explainer, or a gradient explainer on a black box.
    """
    spec = _spec(name)
    model = as_face_model(recogniser)
    _check_runs_on(spec, model)
    face = as_image(face, "face")
    seed = checks.seed(seed)
    if budget is not None:
        budget = checks.positive_int(budget, "budget", 2)
    n_segments = checks.positive_int(n_segments, "n_segments", 2)
    segments = superpixels(face, n_segments, slic_zero=SLIC_ZERO) if segments is None else \
        as_maps(segments, face.shape[:2], "segments", integer=True)
    segments = np.unique(segments, return_inverse=True)[1].reshape(face.shape[:2])
    start = time.perf_counter()
    with model.counting() as counts:
        vector = _reference_vector(model, face, reference)
        heatmap = np.asarray(spec.run(model, face, vector, segments, seed, budget),
                             dtype=np.float64)
    seconds = time.perf_counter() - start
    if heatmap.shape != face.shape[:2] or not np.isfinite(heatmap).all():
        raise ValueError(f"{name} returned a map of shape {heatmap.shape} (or non-finite "
                         f"values); expected finite (H, W) = {face.shape[:2]}")
    return Attribution(name, heatmap, seconds, int(counts[0]))


def explain_with(name: str, recogniser: Any, face: Any, reference: Any = None, *, seed: int,
                 budget: int | None = None) -> np.ndarray:
    """The (H, W) map of one explainer for one face (:func:`run_explainer` without the cost).

    Examples
    --------
    >>> rec = faceexp.recognisers.load("facenet-casia")             # doctest: +SKIP
    >>> face = rec.align("s1/1.pgm")                                 # doctest: +SKIP
    >>> explain_with("grad-cam", rec, face, seed=0).shape            # doctest: +SKIP
    (160, 160)
    """
    return run_explainer(name, recogniser, face, reference, seed=seed, budget=budget).heatmap


# --------------------------------------------------------------------------- metrics


def rank_correlation(a: Any, b: Any) -> float:
    """Spearman rank correlation of two maps over their pixels (average ranks for
    ties); NaN when either map is constant."""
    from scipy.stats import spearmanr

    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"maps must have one shape, got {a.size} and {b.size} pixels")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def baseline_map(heatmap: Any, kind: str, *, segments: Any = None, rng: Any = None
                 ) -> np.ndarray:
    """A random map of the same kind as ``heatmap``: what an explainer is compared with.

    ``"region"``: standard-normal coefficients painted on ``segments`` (no
    smoothing): whole superpixels in random order, the contiguity of a region
    map. ``"pixel"``: ``heatmap``'s own values in a random permutation over
    the pixels (shuffled attributions: same values, scattered).

    ``rng``: a seed or ``np.random.Generator``.
    """
    heatmap = np.asarray(heatmap, dtype=np.float64)
    rng = np.random.default_rng(rng)
    if kind == "pixel":
        return rng.permutation(heatmap.reshape(-1)).reshape(heatmap.shape)
    if kind != "region":
        raise ValueError(f"kind must be 'region' or 'pixel', got {kind!r}")
    if segments is None:
        raise ValueError("segments: a region baseline needs the face's superpixels")
    segments = as_maps(segments, heatmap.shape, "segments", integer=True)
    labels = np.unique(segments, return_inverse=True)[1].reshape(heatmap.shape)
    return paint(rng.standard_normal((1, int(labels.max()) + 1)), labels, sigma=0,
                 positive_only=False)[0]


CURVE_MODES = ("deletion", "insertion")


def similarity_curves(embed: Callable, images: Any, heatmaps: Any, references: dict, *,
                      mode: str = "deletion", steps: Any = DEFAULT_STEPS, fill: Any = "black",
                      batch_size: int = 32) -> pd.DataFrame:
    """Similarity to reference embeddings as pixels are deleted or inserted, most relevant first.

    Deletion: the first ``round(fraction * H * W)`` pixels of the heatmap's
    order (decreasing value, ties in raster order: the order of
    :func:`faceexp.evaluate.faithfulness.deletion_curves`) are set to ``fill``.
    Insertion: only those pixels are kept and every other is set to
    ``fill`` (the curve starts at the blank image). For self-similarity
    deletion this is :func:`faceexp.evaluate.faithfulness.deletion_curves`'s
    ``"most-relevant-first"`` curve (tested); the reference may also be another
    embedding (a genuine partner's), and one pass serves every reference.

    Parameters
    ----------
    embed : callable
        ``(N, 3, H, W)`` in [0, 1] -> ``(N, D)`` (called ``batch_size`` images at a time).
    images : array_like, shape (N, 3, H, W)
    heatmaps : array_like, shape (N, H, W)
    references : dict of str -> array_like (N, D)
        Named reference embeddings, one row per image (e.g. ``{"self": ...,
        "pair": ...}``).
    mode : {"deletion", "insertion"}
    steps : fractions in [0, 1] (or an int number of steps), as ``deletion_curves``
    fill : "black", "mean", a number or 3 numbers in [0, 1]
    batch_size : int

    Returns
    -------
    DataFrame
        Columns ``image``, ``mode``, ``fraction``, ``n_pixels`` (changed),
        ``reference``, ``similarity``; rows by image, reference, fraction.
    """
    if mode not in CURVE_MODES:
        raise ValueError(f"mode must be one of {CURVE_MODES}, got {mode!r}")
    if not callable(embed):
        raise ValueError("embed must be a callable mapping (N, 3, H, W) batches to embeddings")
    tensor = as_images(images)
    n, _, height, width = tensor.shape
    maps = as_maps(heatmaps, (n, height, width), "heatmaps")
    fractions = removal_steps(steps)
    if not isinstance(references, dict) or not references:
        raise ValueError("references must be a dict name -> (N, D) embeddings, e.g. "
                         "{'self': ..., 'pair': ...}")
    refs = {}
    for name, value in references.items():
        value = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value,
                           dtype=np.float64)
        if value.ndim != 2 or value.shape[0] != n:
            raise ValueError(f"references[{name!r}] must be ({n}, D), got {value.shape}")
        refs[name] = value
    batch_size = checks.positive_int(batch_size, "batch_size")
    fill_t = fill_tensor(fill, tensor)
    counts = np.floor(fractions * height * width + 0.5).astype(np.int64)
    jobs = [(k, s) for k in range(n) for s in range(len(fractions))]
    orders = [deletion_order(maps[k], None, "most-relevant-first", 0, k) for k in range(n)]
    embedded = np.empty((len(jobs), next(iter(refs.values())).shape[1]))
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        masks = np.zeros((len(chunk), height * width), dtype=bool)
        for row, (k, s) in enumerate(chunk):
            masks[row, orders[k][:counts[s]]] = True
        if mode == "insertion":
            masks = ~masks
        index = torch.tensor([k for k, _ in chunk])
        batch = apply_masks(tensor[index], masks.reshape(-1, height, width), fill_t)
        (value,) = _one_layer(embed(batch), len(chunk), "embed")
        embedded[start:start + len(chunk)] = value.detach().cpu().double().numpy()
    rows = []
    for name, ref in refs.items():
        sims = cosine_rows(embedded, ref[[k for k, _ in jobs]])
        rows += [{"image": k, "mode": mode, "fraction": float(fractions[s]),
                  "n_pixels": int(counts[s]), "reference": name, "similarity": float(sim)}
                 for (k, s), sim in zip(jobs, sims)]
    table = pd.DataFrame(rows)
    return table.sort_values(["image", "reference", "fraction"], kind="stable") \
        .reset_index(drop=True)


def curve_auc(curves: pd.DataFrame, by: Sequence[str] = ("mode", "reference")) -> pd.DataFrame:
    """Normalised area under each curve: the trapezoid area of
    :func:`faceexp.evaluate.faithfulness.deletion_auc` divided by the span of the fractions
    (the mean similarity along the curve, so curves to 50% and to 100% share one scale).

    Parameters
    ----------
    curves : DataFrame
        Columns ``image``, ``fraction``, ``similarity`` and the ``by`` columns;
        one curve per image and ``by`` value.
    by : sequence of str

    Returns
    -------
    DataFrame
        The ``by`` columns, ``image``, ``auc``.
    """
    by = list(by)
    missing = [c for c in by + ["image", "fraction", "similarity"] if c not in curves]
    if missing:
        raise ValueError(f"curves: missing column(s) {missing}")
    parts = []
    for key, group in (curves.groupby(by, sort=False) if by else [((), curves)]):
        areas = deletion_auc(group.assign(order="curve"))
        spans = group.groupby("image", sort=False)["fraction"].agg(np.ptp)
        areas["auc"] = areas["auc"] / areas["image"].map(spans).to_numpy()
        key = key if isinstance(key, tuple) else (key,)
        parts.append(areas.drop(columns="order").assign(**dict(zip(by, key))))
    return pd.concat(parts, ignore_index=True)[by + ["image", "auc"]]


def t_interval(values: Any, *, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval of the mean of the finite ``values``:
    ``(mean, low, high)``; the interval is NaN with fewer than two values and the
    mean NaN with none."""
    from scipy.stats import t

    values = np.asarray(values, dtype=np.float64).reshape(-1)
    values = values[np.isfinite(values)]
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if values.size < 2:
        return mean, float("nan"), float("nan")
    half = float(t.ppf((1 + confidence) / 2, values.size - 1) * values.std(ddof=1)
                 / math.sqrt(values.size))
    return mean, mean - half, mean + half


# --------------------------------------------------------------------------- faces


def genuine_pairs(frame: pd.DataFrame, n_pairs: int, *, seed: int = 0) -> pd.DataFrame:
    """``n_pairs`` genuine pairs, spread over as many identities as possible.

    Each identity's images (in frame order) make disjoint pairs: the 1st with
    the 2nd, the 3rd with the 4th, ...; the identities are put in a random
    order and pairs are taken round-robin: every identity's first pair, then
    every identity's second pair, and so on.

    Parameters
    ----------
    frame : DataFrame
        Columns ``path`` and ``identity`` (e.g. :func:`faceexp.load_orl`).
    n_pairs : int
    seed : int
        Seed of the identities' order (``np.random.default_rng(seed)``).

    Returns
    -------
    DataFrame
        Columns ``identity``, ``probe``, ``partner`` (paths).
    """
    for column in ("path", "identity"):
        if column not in frame:
            raise ValueError(f"frame needs a column {column!r}; it has {list(frame.columns)}")
    n_pairs = checks.positive_int(n_pairs, "n_pairs")
    paths = {identity: group["path"].astype(str).tolist()
             for identity, group in frame.groupby("identity", sort=False)}
    identities = list(paths)
    order = [identities[i] for i in np.random.default_rng(checks.seed(seed)).permutation(
        len(identities))]
    rounds = max((len(v) // 2 for v in paths.values()), default=0)
    rows = [{"identity": identity, "probe": paths[identity][2 * r],
             "partner": paths[identity][2 * r + 1]}
            for r in range(rounds) for identity in order if len(paths[identity]) >= 2 * r + 2]
    if len(rows) < n_pairs:
        raise ValueError(f"n_pairs: {n_pairs} requested but the frame holds only {len(rows)} "
                         "disjoint genuine pairs")
    return pd.DataFrame(rows[:n_pairs])


def align_pairs(recogniser: Any, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray,
                                                                pd.DataFrame]:
    """Both faces of each pair aligned by the recogniser (``rec.align_many``).

    Returns ``(faces, partners, kept)``: two (P, H, W, 3) float32 arrays and
    the pairs whose two faces were found (a pair with a missing face is dropped).
    """
    found = recogniser.align_many(pairs["probe"].tolist() + pairs["partner"].tolist(),
                                  errors="return")
    n = len(pairs)
    keep = [k for k in range(n) if not isinstance(found[k], Exception)
            and not isinstance(found[n + k], Exception)]
    if not keep:
        raise ValueError("no pair has both faces found by the recogniser's alignment")
    faces = np.stack([found[k] for k in keep]).astype(np.float32)
    partners = np.stack([found[n + k] for k in keep]).astype(np.float32)
    return faces, partners, pairs.iloc[keep].reset_index(drop=True)


# --------------------------------------------------------------------------- the comparison


@dataclass
class Comparison:
    """What :func:`compare_explainers` measured on one recogniser.

    Attributes
    ----------
    recogniser : str
    table : DataFrame
        :func:`summarise` of ``per_face``: one row per explainer.
    per_face : DataFrame
        One row per (explainer, face): ``seconds``, ``forwards``, the normalised
        AUCs ``<mode>_auc_<reference>`` and ``<mode>_baseline_<reference>``,
        ``seed_rank_corr``, ``randomisation_rank_corr``; a black box's
        gradient explainers have one row with ``note`` "n/a (black box)".
    curves : DataFrame
        ``explainer``, ``kind``, ``map`` ("explainer" or the random "baseline"
        of its kind), ``image``, ``mode``, ``reference``, ``fraction``,
        ``n_pixels``, ``similarity``.
    randomisation : DataFrame
        ``explainer``, ``image``, ``stages`` (randomised from the top),
        ``stage`` (the lowest one randomised), ``rank_corr``.
    heatmaps : dict
        explainer -> (N, H, W) maps of the first seed.
    faces, partners : ndarray (N, H, W, 3)
    settings : dict
        What was run (explainers, faces, budget, seeds, reference, steps, fill,
        cascade, the recogniser's source).
    model : FaceModel, optional
        The recogniser the explainers ran on (for :func:`comparison_cost`).
    """

    recogniser: str
    table: pd.DataFrame
    per_face: pd.DataFrame
    curves: pd.DataFrame
    randomisation: pd.DataFrame
    heatmaps: dict
    faces: np.ndarray
    partners: np.ndarray | None
    settings: dict = field(default_factory=dict)
    model: FaceModel | None = field(default=None, repr=False)


def _cascade_points(cascade: Any, n_stages: int) -> list[int]:
    if cascade is None:
        return list(range(1, n_stages + 1))
    # capped at the network's depth, so one cascade serves networks of different depths
    return sorted({min(checks.positive_int(c, "cascade"), n_stages) for c in cascade})


def compare_explainers(recogniser: Any, faces: Any, partners: Any = None, *,
                       explainers: Sequence[str] = DEFAULT_EXPLAINERS,
                       reference: str = "pair", seeds: Sequence[int] = (0, 1),
                       budget: int | None = None, n_segments: int = N_SEGMENTS,
                       steps: Any = DEFAULT_STEPS,
                       fill: Any = "black", cascade: Sequence[int] | None = None,
                       stability_faces: int | None = None,
                       randomisation_faces: int | None = None, data: str | None = None,
                       progress: bool = False) -> Comparison:
    """Run explainers on one recogniser and faces and measure them side by side.

    Each face is explained by each explainer (seed ``seeds[0]``) for the
    similarity named by ``reference``; then, per map: deletion and insertion
    curves on both the pair's and the self-similarity (:func:`similarity_curves`)
    beside those of a random map of its kind (:func:`baseline_map`, one per
    face and kind, seeded by the face; the pixel kind shuffles the first pixel
    explainer's map: any shuffle is a uniformly random pixel order, ties
    aside); the rank correlation with the map of
    ``seeds[1]`` (stochastic explainers; 1 for deterministic ones); and, for a
    white box, the rank correlation with the map on the recogniser with its
    top ``c`` stages re-initialised for every ``c`` in ``cascade``
    (:func:`randomise_stages`, seed ``seeds[0]``).

    Parameters
    ----------
    recogniser : recogniser, torch module, embed callable or FaceModel
    faces : array_like, shape (N, H, W, 3)
        Aligned faces in [0, 1].
    partners : array_like, shape (N, H, W, 3), optional
        A genuine partner of each face (another image of the same person).
        Needed for ``reference="pair"`` and for the pair curves.
    explainers : sequence of str
        Keys of :data:`EXPLAINERS`. On a black box the gradient ones get a
        row saying "n/a (black box)".
    reference : {"pair", "self"}
        Which similarity the explainers explain.
    seeds : sequence of int
        One seed, or two for seed stability.
    budget : int, optional
        Images through the network per explanation (see :func:`run_explainer`).
    n_segments : int
        Superpixels of the region explainers and of the region baseline.
    steps : fractions, as :func:`faceexp.evaluate.faithfulness.deletion_curves`
        Shared by deletion and insertion (default 0, 0.05, ..., 0.5).
    fill : pixel value of deleted (and not yet inserted) pixels; default black.
    cascade : sequence of int, optional
        Numbers of top stages randomised (capped at the network's stages);
        None: every depth. Empty: no check.
    stability_faces, randomisation_faces : int, optional
        Run the second seed / the randomisation on the first this many faces
        only (None: all).
    data : str, optional
        What the faces are (e.g. "ORL faces (AT&T Laboratories Cambridge)"),
        recorded for captions.
    progress : bool
        A progress bar over the explanations.

    Returns
    -------
    Comparison
    """
    from tqdm import tqdm

    model = as_face_model(recogniser)
    faces = np.stack([as_image(f, "faces") for f in faces])
    n = len(faces)
    if partners is not None:
        partners = np.stack([as_image(f, "partners") for f in partners])
        if partners.shape != faces.shape:
            raise ValueError(f"partners must have the faces' shape {faces.shape}, got "
                             f"{partners.shape}")
    if reference not in ("pair", "self"):
        raise ValueError(f"reference must be 'pair' or 'self', got {reference!r}")
    if reference == "pair" and partners is None:
        raise ValueError("reference='pair' needs partners (a genuine partner per face); "
                         "or explain the self-similarity with reference='self'")
    explainers = [_spec(name).name for name in explainers]
    if not explainers or len(set(explainers)) != len(explainers):
        raise ValueError(f"explainers must be distinct names from {list(EXPLAINERS)}")
    seeds = [checks.seed(s) for s in seeds]
    if not 1 <= len(seeds) <= 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be one or two distinct seeds, got {seeds}")
    stability_faces = n if stability_faces is None else min(n, checks.positive_int(
        stability_faces, "stability_faces", 0))
    randomisation_faces = n if randomisation_faces is None else min(n, checks.positive_int(
        randomisation_faces, "randomisation_faces", 0))
    points = _cascade_points(cascade, len(model.stages)) if model.white_box else []

    chw = torch.from_numpy(np.ascontiguousarray(faces.transpose(0, 3, 1, 2)))
    embeddings = {"self": model.embed(chw)}
    if partners is not None:
        embeddings["pair"] = model.embed(np.ascontiguousarray(partners.transpose(0, 3, 1, 2)))
    n_segments = checks.positive_int(n_segments, "n_segments", 2)
    segments = [superpixels(face, n_segments, slic_zero=SLIC_ZERO) for face in faces]

    def explained(k):
        return None if reference == "self" else partners[k]

    runnable = [e for e in explainers if not (EXPLAINERS[e].gradients and not model.white_box)]
    jobs = [(e, k) for e in runnable for k in range(n)]
    heatmaps = {e: np.zeros(faces.shape[:3]) for e in runnable}
    rows = {}
    for e, k in tqdm(jobs, disable=not progress, desc=f"explain ({model.name})", unit="map"):
        spec = EXPLAINERS[e]
        first = run_explainer(e, model, faces[k], explained(k), seed=seeds[0], budget=budget,
                              segments=segments[k])
        heatmaps[e][k] = first.heatmap
        row = {"explainer": e, "face": k, "white_box": model.white_box,
               "seconds": first.seconds,
               "forwards": first.forwards, "seed_rank_corr": np.nan}
        if not spec.stochastic:
            row["seed_rank_corr"] = 1.0
        elif len(seeds) == 2 and k < stability_faces:
            second = run_explainer(e, model, faces[k], explained(k), seed=seeds[1],
                                   budget=budget, segments=segments[k])
            row["seed_rank_corr"] = rank_correlation(first.heatmap, second.heatmap)
        rows[e, k] = row

    # deletion and insertion: every explainer's maps and one baseline per face and kind
    kinds = sorted({EXPLAINERS[e].kind for e in runnable})
    baselines = {}
    for kind in kinds:
        owner = next(e for e in runnable if EXPLAINERS[e].kind == kind)
        baselines[kind] = np.stack([baseline_map(heatmaps[owner][k], kind, segments=segments[k],
                                                 rng=[seeds[0], k]) for k in range(n)])
    maps = [("explainer", e, heatmaps[e]) for e in runnable] + \
        [("baseline", kind, baselines[kind]) for kind in kinds]
    curve_parts = []
    for label, name, stack in maps:
        for mode in CURVE_MODES:
            part = similarity_curves(model.embed, chw, stack, embeddings, mode=mode,
                                     steps=steps, fill=fill, batch_size=model.batch_size)
            curve_parts.append(part.assign(map=label, source=name))
    curves = pd.concat(curve_parts, ignore_index=True) if curve_parts else pd.DataFrame()
    if curve_parts:
        aucs = curve_auc(curves, by=("map", "source", "mode", "reference"))
        for record in aucs.itertuples():
            if record.map == "explainer":
                rows[record.source, record.image][
                    f"{record.mode}_auc_{record.reference}"] = record.auc
            else:
                for e in runnable:
                    if EXPLAINERS[e].kind == record.source:
                        rows[e, record.image][
                            f"{record.mode}_baseline_{record.reference}"] = record.auc
    explainer_curves = []
    for e in runnable:
        kind = EXPLAINERS[e].kind
        explainer_curves.append(curves[(curves["map"] == "explainer") & (curves["source"] == e)]
                                .assign(explainer=e, kind=kind))
        explainer_curves.append(curves[(curves["map"] == "baseline")
                                       & (curves["source"] == kind)]
                                .assign(explainer=e, kind=kind))
    curves = pd.concat(explainer_curves, ignore_index=True).drop(columns="source") \
        if explainer_curves else pd.DataFrame()

    # model randomisation, cascading from the top
    randomisation = []
    for depth in points:
        randomised = randomise_stages(model, depth, seed=seeds[0])
        stage = model.stage_labels[depth - 1]
        for e in runnable:
            for k in range(randomisation_faces):
                other = run_explainer(e, randomised, faces[k], explained(k), seed=seeds[0],
                                      budget=budget, segments=segments[k])
                randomisation.append({"explainer": e, "image": k, "stages": depth,
                                      "stage": stage,
                                      "rank_corr": rank_correlation(heatmaps[e][k],
                                                                    other.heatmap)})
        del randomised
    randomisation = pd.DataFrame(randomisation, columns=["explainer", "image", "stages",
                                                         "stage", "rank_corr"])
    if points:
        deepest = randomisation[randomisation["stages"] == points[-1]]
        for record in deepest.itertuples():
            rows[record.explainer, record.image]["randomisation_rank_corr"] = record.rank_corr
        for row in rows.values():
            row["randomised"] = f"{points[-1]}/{len(model.stages)}"

    per_face = pd.DataFrame(list(rows.values()))
    blocked = [e for e in explainers if e not in runnable]
    if blocked:
        per_face = pd.concat([per_face, pd.DataFrame({"explainer": blocked, "white_box": False,
                                                      "note": BLACK_BOX})], ignore_index=True)
    per_face.insert(0, "recogniser", model.name)
    settings = {"data": data, "explainers": explainers, "faces": n, "budget": budget,
                "n_segments": n_segments, "seeds": seeds,
                "reference": reference, "steps": [float(s) for s in removal_steps(steps)],
                "fill": fill, "cascade": points, "stages": len(model.stages),
                "stability_faces": stability_faces if len(seeds) == 2 else 0,
                "randomisation_faces": randomisation_faces if points else 0,
                "source": model.source, "white_box": model.white_box}
    return Comparison(recogniser=model.name, table=summarise(per_face, reference=reference,
                                                             order=explainers),
                      per_face=per_face, curves=curves, randomisation=randomisation,
                      heatmaps=heatmaps, faces=faces, partners=partners, settings=settings,
                      model=model)


def compare_subjects(study: Any, names: Sequence[str], *, n_faces: int, seed: int = 0,
                     **options: Any) -> dict:
    """:func:`compare_explainers` on subjects of a :class:`faceexp.study.Study`, on the
    same genuine pairs of its test identities.

    Parameters
    ----------
    study : faceexp.study.Study
    names : sequence of str
        Subjects (``study.subject(name)``): pretrained recognisers, explained in
        the canonical frame (so their maps share one frame), or the paper's
        CNNs trained in the study (their own 113x113 frame).
    n_faces : int
        Genuine pairs (:func:`genuine_pairs` of the test split, seed ``seed``);
        a pair with a face the recogniser cannot find is left out.
    **options
        :func:`compare_explainers` options (``explainers``, ``budget``,
        ``seeds``, ``cascade``, ...).

    Returns
    -------
    dict
        name -> :class:`Comparison`, in the order of ``names``.
    """
    with warnings.catch_warnings():
        # captum and facenet-pytorch import tqdm.auto, which warns once in a kernel without
        # ipywidgets; faceexp shows no progress bars in the book (as report.setup_notebook)
        warnings.filterwarnings("ignore", message=r"IProgress not found")
        return _compare_subjects(study, names, n_faces=n_faces, seed=seed, **options)


def _compare_subjects(study, names, *, n_faces, seed, **options):
    from faceexp import recognisers

    test = study.split("test")
    pairs = genuine_pairs(test, n_faces, seed=seed)
    lookup = test.drop_duplicates("path").set_index("path")
    both = lookup.loc[pairs["probe"].tolist() + pairs["partner"].tolist()].reset_index()
    result = {}
    for name in names:
        subject = study.subject(name)
        if subject.kind == "recogniser":
            recogniser = subject.recogniser
        else:
            recogniser = recognisers.load(name, checkpoint=subject.checkpoint,
                                          device=study.device)
        images, keep, _ = subject.images(both)
        position = {int(k): i for i, k in enumerate(keep)}
        n = len(pairs)
        found = [k for k in range(n) if k in position and n + k in position]
        if not found:
            raise ValueError(f"{name}: no pair has both faces aligned")
        faces = images[[position[k] for k in found]]
        partners = images[[position[n + k] for k in found]]
        result[name] = compare_explainers(
            recogniser, faces, partners,
            data=f"{study.dataset}, test identities ({subject.frame_name})", **options)
    return result


# --------------------------------------------------------------------------- cost


#: The settings of :func:`cost_table`'s rows, in order.
COST_SETTINGS = ("usual", "equal budget")
#: Images per explanation of :func:`cost_table`'s untimed first run of each explainer.
WARMUP_BUDGET = 10


def cost_table(recogniser: Any, faces: Any, references: Any = None, *,
               explainers: Sequence[str] = DEFAULT_EXPLAINERS, budget: int, seed: int = 0,
               n_segments: int = N_SEGMENTS, warmup: bool | Sequence[str] = True,
               progress: bool = False) -> pd.DataFrame:
    """What one explanation costs at each explainer's usual settings and at an equal budget.

    Every explainer explains every face twice through :func:`run_explainer`:
    at its usual settings (``budget=None``: :attr:`ExplainerSpec.usual`, e.g.
    1000 samples) and with ``budget`` images through the network
    (:attr:`ExplainerSpec.budget_sets`), the budget :func:`compare_explainers`
    gives them all. Superpixels are made once per face, outside the timing, as
    in :func:`compare_explainers`. With ``warmup`` each explainer first runs
    once, untimed, on the first face at a budget of :data:`WARMUP_BUDGET`, so
    that no row pays for importing its library or for the network's first call
    (a torch network's first gradient pass can take seconds).

    Parameters
    ----------
    recogniser : recogniser, torch module, embed callable or FaceModel
        See :func:`as_face_model`.
    faces : array_like, shape (N, H, W, 3)
        Aligned faces, uint8 or float in [0, 1].
    references : sequence, optional
        None: each face's similarity to its own embedding is explained; else one
        reference per face (an (H, W, 3) image such as its genuine partner, or a
        (D,) embedding), as :func:`run_explainer`'s ``reference``.
    explainers : sequence of str
        Keys of :data:`EXPLAINERS`. On a black box the gradient ones get rows
        saying "n/a (black box)".
    budget : int
        The equal budget: images through the network per explanation.
    seed : int
        Seed of the stochastic explainers.
    n_segments : int
        Superpixels of the region explainers (the paper's 75).
    warmup : bool or sequence of str
        Warm up every explainer (True), none (False) or those named.
    progress : bool
        A progress bar over the explanations.

    Returns
    -------
    DataFrame
        Per explainer (in the given order) a row per setting of
        :data:`COST_SETTINGS`: ``recogniser``, ``explainer``, ``setting``,
        ``settings`` (what the setting means), ``budget`` (None at usual
        settings), ``seconds`` (median wall time of one explanation over the
        faces), ``forwards`` (median images through the network per
        explanation, the reference's embedding included, as
        :func:`run_explainer` counts them: at most ``budget + 1`` at the equal
        budget), ``faces`` and ``note`` ("n/a (black box)" where the explainer
        cannot run).

    Examples
    --------
    >>> rec = faceexp.recognisers.load("sface")                       # doctest: +SKIP
    >>> cost_table(rec, faces[:1], explainers=["faceexp-lime-paper", "captum-occlusion"],
    ...            budget=150)                                        # doctest: +SKIP
    """
    from tqdm import tqdm

    model = as_face_model(recogniser)
    if getattr(faces, "ndim", None) == 3:
        raise ValueError("faces must be (N, H, W, 3); pass one face as faces[None]")
    faces = [as_image(f, "faces") for f in faces]
    if not faces:
        raise ValueError("faces: none given")
    n = len(faces)
    if references is None:
        references = [None] * n
    elif len(references) != n:
        raise ValueError(f"references: one per face ({n}), got {len(references)}")
    explainers = [_spec(name).name for name in explainers]
    if not explainers or len(set(explainers)) != len(explainers):
        raise ValueError(f"explainers must be distinct names from {list(EXPLAINERS)}")
    budget = checks.positive_int(budget, "budget", 2)
    seed = checks.seed(seed)
    n_segments = checks.positive_int(n_segments, "n_segments", 2)
    segments = [superpixels(face, n_segments, slic_zero=SLIC_ZERO) for face in faces]
    runnable = [e for e in explainers if not (EXPLAINERS[e].gradients and not model.white_box)]
    budgets = {"usual": None, "equal budget": budget}
    if isinstance(warmup, str):
        warmup = [warmup]
    warm = runnable if warmup is True else [] if warmup is False else \
        [e for e in runnable if e in {_spec(name).name for name in warmup}]
    if warm:
        with warnings.catch_warnings():
            # a fit on so few samples may warn; the run is discarded
            warnings.simplefilter("ignore")
            for e in warm:
                run_explainer(e, model, faces[0], references[0], seed=seed,
                              budget=min(budget, WARMUP_BUDGET), segments=segments[0])
    jobs = [(e, setting, k) for e in runnable for setting in COST_SETTINGS for k in range(n)]
    runs: dict = {}
    for e, setting, k in tqdm(jobs, disable=not progress, desc=f"cost ({model.name})",
                              unit="map"):
        runs.setdefault((e, setting), []).append(
            run_explainer(e, model, faces[k], references[k], seed=seed,
                          budget=budgets[setting], segments=segments[k]))
    rows = []
    for e in explainers:
        spec = EXPLAINERS[e]
        for setting in COST_SETTINGS:
            done = runs.get((e, setting), [])
            settings = spec.usual if setting == "usual" else \
                f"{budget} images per explanation; a budget sets {spec.budget_sets}"
            rows.append({"recogniser": model.name, "explainer": e, "setting": setting,
                         "settings": settings, "budget": budgets[setting],
                         "seconds": float(np.median([r.seconds for r in done]))
                         if done else np.nan,
                         "forwards": float(np.median([r.forwards for r in done]))
                         if done else np.nan,
                         "faces": len(done), "note": "" if done else BLACK_BOX})
    table = pd.DataFrame(rows)
    table["budget"] = pd.Series([row["budget"] for row in rows], dtype=object)   # None or int
    return table


def comparison_cost(comparison: Comparison, *, n_faces: int | None = None,
                    explainers: Sequence[str] | None = None, budget: int | None = None,
                    warmup: bool | Sequence[str] | None = None,
                    progress: bool = False) -> pd.DataFrame:
    """:func:`cost_table` of a comparison's recogniser on its first ``n_faces`` faces
    (None: all), with the comparison's settings: the similarity it explained (to the
    genuine partner or the face itself), its budget, its first seed and its superpixels.

    ``explainers``: the explainers to time (None: those the comparison ran);
    ``budget``: the equal budget, needed only when the comparison ran at usual
    settings; ``warmup``: as :func:`cost_table`'s, None: the explainers the
    comparison did not run (the others have run on the network already).
    """
    if comparison.model is None:
        raise ValueError("comparison has no model: make it with compare_explainers")
    settings = comparison.settings
    budget = settings.get("budget") if budget is None else budget
    if budget is None:
        raise ValueError("the comparison ran at usual settings: pass budget=, the equal "
                         "budget of images per explanation")
    n = len(comparison.faces) if n_faces is None else checks.positive_int(n_faces, "n_faces")
    faces = comparison.faces[:n]
    references = None if settings.get("reference") == "self" or comparison.partners is None \
        else comparison.partners[:n]
    explainers = list(settings["explainers"] if explainers is None else explainers)
    if warmup is None:
        warmup = [e for e in explainers if e not in settings["explainers"]]
    return cost_table(comparison.model, faces, references, explainers=explainers,
                      budget=budget, seed=settings["seeds"][0],
                      n_segments=settings.get("n_segments", N_SEGMENTS), warmup=warmup,
                      progress=progress)


def _seconds(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}" if value >= 1 else f"{value:.2g}"


def _times(value: float, base: float) -> str:
    if not (np.isfinite(value) and np.isfinite(base)) or base <= 0:
        return "n/a"
    ratio = value / base
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def cost_summary(table: pd.DataFrame) -> str:
    """A Markdown paragraph per recogniser from :func:`cost_table`'s numbers: which
    explainer is cheapest and which most expensive at their usual settings (seconds
    and images through the network per explanation, and how many times the
    cheapest's seconds the most expensive takes), and the same spread at the
    equal budget."""
    needed = {"recogniser", "explainer", "setting", "budget", "seconds", "forwards", "faces"}
    if not needed <= set(table):
        raise ValueError(f"table must be cost_table()'s table; missing "
                         f"{sorted(needed - set(table))}")
    paragraphs = []
    for recogniser, part in table.groupby("recogniser", sort=False):
        ran = part[part["seconds"].notna()]
        blocked = [e for e in dict.fromkeys(part["explainer"]) if e not in set(ran["explainer"])]
        usual = ran[ran["setting"] == "usual"]
        equal = ran[ran["setting"] == "equal budget"]
        if ran.empty:
            paragraphs.append(f"**{recogniser}**: no explainer could run.")
            continue
        faces = int(ran["faces"].max())
        text = [f"**{recogniser}** ({faces} face{'s' if faces != 1 else ''}, median per "
                "explanation):"]
        if not usual.empty:
            cheap = usual.loc[usual["seconds"].idxmin()]
            dear = usual.loc[usual["seconds"].idxmax()]
            if len(usual) == 1:
                text.append(f"at its usual settings {cheap['explainer']} takes "
                            f"{_seconds(cheap['seconds'])} s and {cheap['forwards']:.0f} images "
                            "through the network.")
            else:
                text.append(f"at their usual settings {cheap['explainer']} is the cheapest "
                            f"({_seconds(cheap['seconds'])} s, {cheap['forwards']:.0f} images "
                            f"through the network) and {dear['explainer']} the most expensive "
                            f"({_seconds(dear['seconds'])} s, {dear['forwards']:.0f} images: "
                            f"{_times(dear['seconds'], cheap['seconds'])} the seconds of "
                            f"{cheap['explainer']}).")
        if len(equal) > 1:
            budget = int(equal["budget"].dropna().iloc[0])
            cheap = equal.loc[equal["seconds"].idxmin()]
            dear = equal.loc[equal["seconds"].idxmax()]
            text.append(f"At an equal budget of {budget} images the most expensive, "
                        f"{dear['explainer']} ({_seconds(dear['seconds'])} s, "
                        f"{dear['forwards']:.0f} images), takes "
                        f"{_times(dear['seconds'], cheap['seconds'])} the seconds of the "
                        f"cheapest, {cheap['explainer']} ({_seconds(cheap['seconds'])} s, "
                        f"{cheap['forwards']:.0f} images).")
        if blocked:
            text.append("Not run (black box, no gradients): " + ", ".join(blocked) + ".")
        paragraphs.append(" ".join(text))
    return "\n\n".join(paragraphs)


def heatmap_grid(comparisons: Any, *, names: Sequence[str] | None = None, faces: int = 2
                 ) -> tuple[list, list, list]:
    """Faces x explainers of several comparisons, ready for
    :func:`faceexp.report.plots.plot_heatmap_row` (``ncols`` = explainers + 1).

    ``comparisons``: a Comparison, a list, or a dict (``names`` picks and orders
    its entries). Per comparison and face: the face alone, then each explainer's map scaled
    to [0, 1] (min-max; a constant map is 0), or the face alone titled
    "n/a (black box)" where the explainer cannot run.

    Returns
    -------
    images, heatmaps, titles : lists of equal length
    """
    if names is not None and isinstance(comparisons, Mapping):
        comparisons = [comparisons[name] for name in names]
    comparisons = _as_list(comparisons)
    columns = []
    for comparison in comparisons:
        columns += [e for e in comparison.settings["explainers"] if e not in columns]
    images, maps, titles = [], [], []
    for comparison in comparisons:
        for k in range(min(faces, len(comparison.faces))):
            face = comparison.faces[k]
            images.append(face)
            maps.append(None)
            titles.append(f"{comparison.recogniser}, face {k}")
            for name in columns:
                images.append(face)
                stack = comparison.heatmaps.get(name)
                if stack is None:
                    maps.append(None)
                    ran = name in comparison.settings["explainers"]
                    titles.append(f"{name}: {BLACK_BOX if ran else 'not run'}")
                    continue
                heat = stack[k]
                low, high = heat.min(), heat.max()
                maps.append((heat - low) / (high - low) if high > low else np.zeros_like(heat))
                titles.append(name)
    return images, maps, titles


#: Measures of :func:`summarise`: (column in the table, column in per_face).
_MEASURES = ("deletion_auc", "insertion_auc", "deletion_baseline", "insertion_baseline",
             "randomisation_rank_corr", "seed_rank_corr", "seconds")


def summarise(per_face: pd.DataFrame, *, reference: str = "pair",
              order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (recogniser, explainer): means over faces with 95% intervals.

    ``deletion_auc``, ``insertion_auc`` and their ``*_baseline`` are those of
    the ``reference`` similarity ("pair" or "self"; the other's are given as
    ``*_auc_<other>``); ``deletion_gain`` = baseline - explainer and
    ``insertion_gain`` = explainer - baseline (positive: the map beats a random
    map of its kind). Each mean ``m`` has ``m_low`` and ``m_high`` (Student-t,
    :func:`t_interval`). ``forwards`` is the mean per explanation,
    ``faces`` the faces explained, ``note`` "n/a (black box)" where the
    explainer cannot run, ``randomised`` how many of the stages the
    ``randomisation_rank_corr`` had re-initialised ("k/M").
    """
    if reference not in ("pair", "self"):
        raise ValueError(f"reference must be 'pair' or 'self', got {reference!r}")
    if "explainer" not in per_face or "recogniser" not in per_face:
        raise ValueError("per_face must be Comparison.per_face (columns recogniser, "
                         "explainer, ...)")
    other = "self" if reference == "pair" else "pair"
    data = per_face.copy()
    for mode in CURVE_MODES:
        for kind, column in (("auc", f"{mode}_auc"), ("baseline", f"{mode}_baseline")):
            data[column] = data.get(f"{mode}_{kind}_{reference}", np.nan)
        data[f"{mode}_auc_{other}"] = data.get(f"{mode}_auc_{other}", np.nan)
        data[f"{mode}_baseline_{other}"] = data.get(f"{mode}_baseline_{other}", np.nan)
    data["deletion_gain"] = data["deletion_baseline"] - data["deletion_auc"]
    data["insertion_gain"] = data["insertion_auc"] - data["insertion_baseline"]
    measures = list(_MEASURES[:4]) + ["deletion_gain", "insertion_gain"] + \
        list(_MEASURES[4:]) + [f"{m}_auc_{other}" for m in CURVE_MODES]
    rows = []
    for (recogniser, explainer), part in data.groupby(["recogniser", "explainer"],
                                                      sort=False):
        note = part["note"].dropna() if "note" in part else pd.Series([], dtype=object)
        spec = EXPLAINERS.get(explainer)
        row = {"recogniser": recogniser, "explainer": explainer,
               "kind": spec.kind if spec else None, "library": spec.library if spec else None,
               "white_box": bool(part["white_box"].fillna(False).any())
               if "white_box" in part else False}
        for measure in measures:
            column = part[measure] if measure in part else pd.Series([np.nan])
            mean, low, high = t_interval(column.to_numpy(dtype=np.float64))
            row.update({measure: mean, f"{measure}_low": low, f"{measure}_high": high})
        forwards = part["forwards"] if "forwards" in part else pd.Series([np.nan])
        row["forwards"] = float(np.nanmean(forwards)) if forwards.notna().any() else np.nan
        row["faces"] = int(part["deletion_auc"].notna().sum())
        randomised = part["randomised"].dropna() if "randomised" in part else []
        row["randomised"] = str(randomised.iloc[0]) if len(randomised) else ""
        row["note"] = str(note.iloc[0]) if len(note) else ""
        rows.append(row)
    table = pd.DataFrame(rows)
    if order is not None and not table.empty:
        rank = {name: i for i, name in enumerate(order)}
        table = table.sort_values("explainer", key=lambda s: s.map(rank), kind="stable") \
            .reset_index(drop=True)
    return table


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"


def recommendation(table: pd.DataFrame, *, tolerance: float = 0.01) -> str:
    """A Markdown paragraph per recogniser saying which explainer to trust, from the numbers.

    An explainer is *faithful* when its map beats the random map of its own
    kind on deletion and on insertion by more than ``tolerance`` (normalised
    AUC), *model-sensitive* when its rank correlation with itself on the
    network with the deepest cascade computed (``randomised``) re-initialised
    is below :data:`RANDOMISATION_PASS` (a black box cannot be tested and is
    not held against; on a network with a torch module an undefined
    correlation, from a constant map or a check not run, does not pass), and
    *stable* when two seeds agree to a rank correlation of at least 0.5. The
    recommended explainer is the faithful, model-sensitive one with the
    largest deletion gain plus insertion gain; the paragraph also says where
    the paper's setting stands and what each choice costs.
    """
    needed = {"recogniser", "explainer", "deletion_gain", "insertion_gain",
              "randomisation_rank_corr", "seed_rank_corr", "seconds", "forwards"}
    if not needed <= set(table):
        raise ValueError(f"table must be summarise()'s table; missing {sorted(needed - set(table))}")
    paragraphs = []
    for recogniser, part in table.groupby("recogniser", sort=False):
        part = part[part["note"].fillna("") == ""] if "note" in part else part
        blocked = sorted(set(table.loc[table["recogniser"] == recogniser, "explainer"])
                         - set(part["explainer"]))
        if part.empty:
            paragraphs.append(f"**{recogniser}**: no explainer could run.")
            continue
        faithful = (part["deletion_gain"] > tolerance) & (part["insertion_gain"] > tolerance)
        corr = part["randomisation_rank_corr"]
        white = part["white_box"].fillna(False).astype(bool) if "white_box" in part \
            else pd.Series(False, index=part.index)
        sensitive = ~white | (corr < RANDOMISATION_PASS)
        undetermined = white & corr.isna()
        stable = part["seed_rank_corr"] >= 0.5
        score = part["deletion_gain"] + part["insertion_gain"]
        good = part[faithful & sensitive]
        faces = int(part["faces"].max())
        depth = next((str(d) for d in part.get("randomised", pd.Series(dtype=object))
                      if isinstance(d, str) and d), "")
        stages = f"its top {depth.split('/')[0]} of {depth.split('/')[1]} stages" if depth \
            else "its layers"
        text = [f"**{recogniser}** ({faces} face{'s' if faces != 1 else ''}):"]
        if good.empty:
            best = part.loc[score.idxmax()]
            text.append(f"no explainer beats a random map of its own kind on both deletion and "
                        f"insertion while passing the randomisation check; the closest is "
                        f"{best['explainer']} (deletion gain {_fmt(best['deletion_gain'], 3)}, "
                        f"insertion gain {_fmt(best['insertion_gain'], 3)}). Trust none of "
                        "these maps as a ranking of pixels for this recogniser.")
        else:
            best = good.loc[score[good.index].idxmax()]
            text.append(f"use **{best['explainer']}**: removing its most relevant pixels "
                        f"lowers the similarity more than a random map of its kind "
                        f"(normalised deletion AUC {_fmt(best['deletion_auc'], 3)} vs "
                        f"{_fmt(best['deletion_baseline'], 3)}) and inserting them restores "
                        f"more ({_fmt(best['insertion_auc'], 3)} vs "
                        f"{_fmt(best['insertion_baseline'], 3)});")
            if white[best.name]:
                text.append(f"its map changes when {stages} are re-initialised (rank "
                            f"correlation {_fmt(best['randomisation_rank_corr'])} with the "
                            "trained map),")
            else:
                text.append("the randomisation check cannot be run on a black box,")
            text.append(f"two seeds agree to {_fmt(best['seed_rank_corr'])}, and one map costs "
                        f"{_fmt(best['seconds'], 1)} s and {best['forwards']:.0f} images "
                        "through the network.")
            others = [e for e in good["explainer"] if e != best["explainer"]]
            if others:
                text.append("Also faithful" + (" and passing the randomisation check"
                                               if white.any() else "") + ": "
                            + ", ".join(others) + ".")
        failed_sanity = part.loc[white & (corr >= RANDOMISATION_PASS), "explainer"].tolist()
        if failed_sanity:
            text.append(f"Fails the randomisation check (rank correlation with the trained map "
                        f"at least {RANDOMISATION_PASS} with {stages} re-initialised): "
                        + ", ".join(failed_sanity) + ".")
        if undetermined.any():
            text.append("Randomisation check undetermined (a constant map, or not run): "
                        + ", ".join(part.loc[undetermined, "explainer"]) + ".")
        unstable = part.loc[~stable & part["seed_rank_corr"].notna(), "explainer"].tolist()
        if unstable:
            text.append("Unstable across seeds (rank correlation below 0.5): "
                        + ", ".join(unstable) + ".")
        paper = part[part["explainer"] == "faceexp-lime-paper"]
        if not paper.empty:
            p = paper.iloc[0]
            verdict = "beats" if bool(faithful[paper.index[0]]) else "does not beat"
            text.append(f"The paper's LIME (p_off=0.6) {verdict} its random baseline (deletion "
                        f"gain {_fmt(p['deletion_gain'], 3)}, insertion gain "
                        f"{_fmt(p['insertion_gain'], 3)}).")
        if blocked:
            text.append("Not run (black box, no gradients): " + ", ".join(blocked) + ".")
        paragraphs.append(" ".join(text))
    return "\n\n".join(paragraphs)


#: The headline columns of :func:`headline_table` (and of the benchmark).
HEADLINE = ("recogniser", "explainer", "deletion_auc", "deletion_baseline", "insertion_auc",
            "insertion_baseline", "randomisation_rank_corr", "seed_rank_corr", "seconds",
            "forwards", "faces", "note")


def _as_list(comparisons: Any) -> list:
    if isinstance(comparisons, Comparison):
        return [comparisons]
    if isinstance(comparisons, Mapping):
        return list(comparisons.values())
    return list(comparisons)


def combine(comparisons: Any, what: str) -> pd.DataFrame:
    """One table of several comparisons' ``what`` ("table", "per_face", "curves" or
    "randomisation"), with a ``recogniser`` column."""
    if what not in ("table", "per_face", "curves", "randomisation"):
        raise ValueError(f"what must be 'table', 'per_face', 'curves' or 'randomisation', "
                         f"got {what!r}")
    parts = [getattr(c, what).assign(recogniser=c.recogniser) for c in _as_list(comparisons)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def headline_table(comparisons: Any, *, digits: int = 3) -> pd.DataFrame:
    """The :data:`HEADLINE` columns of the comparisons' tables, rounded."""
    table = combine(comparisons, "table")
    return table[list(HEADLINE)].round(digits)


def comparison_caption(comparisons: Any, extra: str = "") -> str:
    """A caption saying what comparisons ran: data, recognisers and their weights, faces,
    budget, seeds, the explained similarity and the deletion settings."""
    items = _as_list(comparisons)
    if not items:
        raise ValueError("comparisons: none given")
    s = items[0].settings
    models = []
    for c in items:
        source = c.settings.get("source") or {}
        weights = source.get("package") or source.get("checkpoint") or source.get("file") or "?"
        models.append(f"{c.recogniser} ({weights}; {c.settings.get('faces')} genuine pairs)")
    budget = "usual settings" if s.get("budget") is None else \
        f"budget {s['budget']} images per explanation"
    steps = s.get("steps") or [0.0]
    text = (f"Data: {s.get('data') or 'faces given by the caller'}. Recognisers: "
            + "; ".join(models) + ". Explained: cosine similarity to the "
            f"{'genuine partner' if s.get('reference') == 'pair' else 'face itself'}; "
            f"{budget}; {s.get('n_segments')} superpixels; seeds {s.get('seeds')}; pixels set "
            f"to {s.get('fill')} in steps to {100 * max(steps):.0f}%.")
    return text + (f" {extra}" if extra else "")
