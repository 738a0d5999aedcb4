"""The explainers compared: the registry and the one call that runs them.

:data:`EXPLAINERS` holds faceexp's LIME, lime, captum, Grad-CAM and CorrRISE, each explaining a
face's cosine similarity to a reference; :func:`run_explainer` runs one and measures its
cost, :func:`explain_with` returns its map.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from faceexp.core import checks
from faceexp.explain.explainer import Explainer
from faceexp.explain.lime_steps import as_image, superpixels
from faceexp.evaluate.masking import as_maps
from faceexp.core.similarity import cosine_to
from faceexp.evaluate.compare.model import FaceModel, as_face_model

#: Superpixels of every region explainer (the paper's 75), made as faceexp's explainer
#: makes them by default (SLIC or SLIC-zero, its ``slic_zero`` default).
N_SEGMENTS = 75
SLIC_ZERO = inspect.signature(Explainer).parameters["slic_zero"].default
#: Samples of the sampling explainers at their usual settings (the paper's and lime's 1000).
USUAL_SAMPLES = 1000
#: Integrated-gradients steps at its usual setting (captum's default).
USUAL_IG_STEPS = 50
BLACK_BOX = "n/a (black box)"


# --------------------------------------------------------------------------- the explainers


class _Embedding:
    """A FaceModel's :meth:`FaceModel.embed` for faceexp's explainer, saying whether the
    network is compiled (a bound method cannot: the explainer would pad every short batch)."""

    def __init__(self, model: FaceModel):
        self.model = model
        self.compiled = model.compiled

    def __call__(self, batch: Any) -> torch.Tensor:
        return self.model.embed(batch)


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


def _corrrise(model, face, reference, segments, seed, budget):
    from faceexp.explain.corrrise import corrrise

    # the signed correlation: its positive part is CorrRISE's similarity map
    return corrrise(lambda batch: model.similarity(batch, reference), face,
                    n_masks=budget or USUAL_SAMPLES, seed=seed,
                    batch_size=model.batch_size).correlation


_SAMPLES = f"{USUAL_SAMPLES} samples"
_SETS_SAMPLES = "the samples (one image each)"
#: The explainers :func:`explain_with` runs, by name.
EXPLAINERS = {spec.name: spec for spec in (
    ExplainerSpec("faceexp-lime-paper", _faceexp_lime(p_off=0.6), "region", False, True,
                  "faceexp",
                  f"the paper: 75 superpixels, p_off=0.6, faceexp's defaults, {_SAMPLES}",
                  _SETS_SAMPLES),
    ExplainerSpec("faceexp-lime-p0.2", _faceexp_lime(p_off=0.2), "region", False, True,
                  "faceexp", f"a low drop rate, p_off=0.2 (chapter 8 compares drop rates), {_SAMPLES}",
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
    ExplainerSpec("corrrise", _corrrise, "region", False, True, "faceexp",
                  f"CorrRISE (Lu et al. 2024): {USUAL_SAMPLES} RISE masks (8x8 grid, "
                  "p=0.5, black), mask-score correlation", "the masks (one image each)"),
)}
#: The explainers compared by default (faceexp-lime-matlab is one more faceexp setting).
DEFAULT_EXPLAINERS = ("faceexp-lime-paper", "faceexp-lime-p0.2", "lime", "captum-occlusion",
                      "captum-kernelshap", "captum-lime", "captum-ig", "captum-saliency",
                      "grad-cam")


def explainer_table(names: Sequence[str] | None = None) -> pd.DataFrame:
    """The registry as a table: ``explainer``, ``library``, ``kind``, ``gradients``
    ("yes": needs a torch module), ``stochastic`` ("yes"/"no"), ``usual`` (its usual settings) and
    ``budget_sets`` (what a budget of images per explanation sets)."""
    names = list(EXPLAINERS) if names is None else [explainer_spec(n).name for n in names]
    def yes(flag):
        return "yes" if flag else "no"

    return pd.DataFrame([{"explainer": n, "library": EXPLAINERS[n].library,
                          "kind": EXPLAINERS[n].kind, "gradients": yes(EXPLAINERS[n].gradients),
                          "stochastic": yes(EXPLAINERS[n].stochastic), "usual": EXPLAINERS[n].usual,
                          "budget_sets": EXPLAINERS[n].budget_sets}
                         for n in names])


def explainer_spec(name: str) -> ExplainerSpec:
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
    spec = explainer_spec(name)
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
