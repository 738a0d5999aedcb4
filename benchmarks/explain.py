"""Cost of one LIME-for-verification explanation, against its floor and against lime.

A benchmark, not a test: it prints figures. For each network at 113x113 (ImageNet
initialised; ResNet50 random where no ImageNet weights are installed), on a real
ORL face:

- ``forward_s``: forward passes alone, ``n_samples`` images at faceexp's batch
  (``--batch``, default ``faceexp.models.default_batch_size``), on the engine the
  explanations use (``--backend``, default "auto": on a CPU the engine
  ``faceexp.models.onnx_backend.AUTO_CPU`` names for the network; "torch" is
  ``Embedder(compile=True, channels_last=True)``): the floor of an explanation;
  ``forward_torch_s``, ``forward_onnxruntime_s`` and ``forward_openvino_s`` (where
  OpenVINO is installed) give the floor of each engine at that batch;
- ``explain_s`` (= ``single_layer_s``): one explanation of the "gap" layer on it;
- ``sweep_s``: one explanation of all 16 block ends + gap + softmax (flattened)
  from the same forward passes;
- ``lime_s``: ``lime_image`` on the same network (eager PyTorch, as its users give
  it: ``classifier_fn`` returning softmax, ``batch_size=50``), image, SLIC-75
  segmentation and sample count;
- ``peak_rss_mb``: peak resident memory of a fresh process that runs the sweep
  (torch, compilation and all).

Extra keys give ratios that a busy shared CPU disturbs less: process CPU time
ratios, and each explanation's wall time over the time spent inside its own
forward passes (the explainer's own overhead; for lime, inside ``classifier_fn``).

For each face recogniser (``facenet-casia``, ``sface``, ``dlib``), on the same ORL face
aligned by ``rec.align`` (160x160, 112x112, 150x150):

- ``forward_<engine>_s``: the forward floor of each engine it runs on (FaceNet:
  ``torch`` eager, ``onnxruntime`` and ``openvino``; SFace: ``onnxruntime``; dlib: ``dlib``), at
  the explanation's batch; ``forward_s`` is the default engine's (``backend``);
- ``explain_s``: one explanation of its embedding (FaceNet: ``rec.embedder()``'s
  ``last_bn``, the 512-d embedding before L2 normalisation; the others: ``rec``)
  on the default engine;
- ``lime_s`` (FaceNet, the PyTorch one): ``lime_image`` on the eager model, with the
  ``classifier_fn`` a lime user would write for verification: one column, the cosine
  similarity of each perturbed image's embedding to the face's own (``lime_target``).

Compilation warm-up is excluded (each compiled model explains once first).
Each repeat runs forward, gap explanation, sweep and lime back to back (a change
of load on a shared machine hits all four alike). Timings are medians of
``--repeats``; on a shared machine compare the ratios of
one run, not absolute times across runs. Targets: explain <= 1.15 x forward,
sweep <= 1.25 x single layer, >= 2x faster than lime_image, peak RSS < 3 GB
(ResNet50 sweep).

    python benchmarks/explain.py [--models mobilenetv2,resnet50,facenet-casia,sface,dlib]
                                 [--samples 1000] [--repeats 3] [--batch N] [--json]

``--converge`` measures the time to a converged map instead (issue 23): per ORL face
(s1/1 .. sN/1), faceexp's superpixels (SLIC-zero, 75) for both explainers; a reference map
of ``--reference-samples`` (10,000; ``--quick`` 2000) from an independent seed; then along
one sample stream (up to ``--stream-samples``) the first n of 100, 200, ..., 1000, 1250, ...
whose map has Spearman >= 0.9 with the reference over superpixels (raw coefficients), and
the wall time of one explanation with that n (``converge_seconds``, ``converge_samples``).
The same for ``lime_image`` against its own reference (its ``data_labels`` sampling and
fit replayed on prefixes; its time from one ``explain_instance`` at that n, whose
``segmentation_fn`` returns faceexp's superpixels; classifier_fn: the cosine similarity to
the face's own embedding on the eager model, SFace on its ONNX engine) and
``explanation_seconds`` (1000 samples). ``auto_*``: the ``n_samples="auto"`` rule (max
1000) on the same face. Models: sface, facenet-casia (its ``last_bn``), mobilenetv2 and
resnet50 (``gap``; the quick-profile checkpoint in artifacts/quick/train where there is
one, else ImageNet weights, recorded in ``weights``); dlib is left out (a black box at
~0.1 s a forward). Times are medians over faces.

``--honesty`` measures the stopping rule's estimate (faceexp only): on ``--faces`` faces
(10; ``--quick`` 3), the split-half estimate every 100 samples of a 1000-sample stream and at
the rule's stop, against the true Spearman with the reference; also the Spearman predicted
against the finite (noisy) reference. ``--samplings`` compares samplings at equal sample
counts against the first one's reference (meaningful for samplings of the same law, whose
maps have the same limit; antithetic and stratified Bernoulli rows were measured so and left
out: no gain beyond the noise).

    python benchmarks/explain.py --converge [--quick] [--models ...] [--reference-samples N]
                                 [--stream-samples N] [--faces N] [--no-lime] [--json]
    python benchmarks/explain.py --honesty [--quick] [--models ...] [--faces N]
                                 [--samplings bernoulli,matlab] [--json]
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from faceexp import data as fdata
from faceexp.data import preprocessing as fpre
from faceexp import models as fmodels
from faceexp.explain.explainer import Explainer
from faceexp.models.onnx_backend import EXPORTED, installed, resolve_backend

LIME_BATCH = 50     # lime_image's batch_size, as its users run it
N_SEGMENTS = 75


def _face() -> np.ndarray:
    """A real ORL face, preprocessed to (113, 113, 3) float32 in [0, 1]."""
    path = fdata.orl_root() / "s1" / "1.pgm"
    return fpre.preprocess(fpre.load_image(path)).transpose(1, 2, 0).copy()


def _sweep_layers(arch: str) -> list[str]:
    return fmodels.block_ends(arch) + ["gap", "softmax"]


def _compiled_embedder(arch, model, layers, backend="torch"):
    """The fastest Embedder of an engine: compiled + channels_last torch, or onnxruntime."""
    engine = resolve_backend(backend, "cpu", arch)
    if engine in EXPORTED:
        return fmodels.Embedder(model, layers, pooling="flatten", backend=engine)
    return fmodels.Embedder(model, layers, pooling="flatten", compile=True, channels_last=True)


def _explainer(embedder, n_samples, batch):
    return Explainer(embedder, n_samples=n_samples, n_segments=N_SEGMENTS, batch_size=batch)


def _lime_runner(classifier, image: np.ndarray, n_samples: int):
    """A function of a seed running lime_image as its users do.

    ``classifier`` maps a float tensor (N, 3, H, W) in [0, 1] to the (N, K) numpy
    array ``classifier_fn`` returns; ``run.seconds`` is the wall time inside
    ``classifier_fn`` (its forward passes) during the last run.
    """
    from lime import lime_image
    from skimage.segmentation import slic

    def classifier_fn(images):
        t0 = time.perf_counter()
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            out = classifier(x)
        run.seconds += time.perf_counter() - t0
        return out

    def segmentation_fn(x):
        return slic(x, n_segments=N_SEGMENTS, compactness=10, start_label=0)

    def run(seed):
        run.seconds = 0.0
        lime_image.LimeImageExplainer(random_state=seed).explain_instance(
            image, classifier_fn, top_labels=1, hide_color=0, num_samples=n_samples,
            batch_size=LIME_BATCH, segmentation_fn=segmentation_fn)

    run.seconds = 0.0
    return run


def _softmax_classifier(arch: str):
    """The eager ImageNet network returning softmax (lime's classifier_fn for a classifier)."""
    eager = fmodels.build_model(arch, 1000, weights="imagenet", seed=0).eval()
    mean = torch.tensor(fpre.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(fpre.IMAGENET_STD).view(1, 3, 1, 1)
    return lambda x: torch.softmax(eager((x - mean) / std), dim=1).numpy()


def _peak_rss_mb(arch: str, n_samples: int, batch: int, backend: str) -> float:
    """Peak RSS (MB) of a fresh process running one sweep explanation."""
    done = subprocess.run([sys.executable, __file__, "--peak-rss-child", arch,
                           "--samples", str(n_samples), "--batch", str(batch),
                           "--backend", backend],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def _peak_rss_child(arch: str, n_samples: int, batch: int, backend: str) -> None:
    model = fmodels.build_model(arch, 1000, weights="imagenet", seed=0)
    embedder = _compiled_embedder(arch, model, _sweep_layers(arch), backend)
    _explainer(embedder, n_samples, batch).explain(_face(), seed=0)
    # Linux reports ru_maxrss in KiB
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


class _Timed:
    """Wraps an embed callable and adds up the wall time spent inside it."""

    def __init__(self, embed):
        self.embed = embed
        self.seconds = 0.0

    def __call__(self, batch):
        t0 = time.perf_counter()
        out = self.embed(batch)
        self.seconds += time.perf_counter() - t0
        return out


def _clock(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of fn()."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench(arch: str, *, n_samples: int, repeats: int, batch: int | None, log,
          backend: str = "auto") -> dict:
    """Time one network (forwards, gap explanation, sweep and lime interleaved per repeat)."""
    image = _face()
    backend = resolve_backend(backend, "cpu", arch)
    if batch is None:
        batch = fmodels.default_batch_size(arch, "cpu", backend)
    model = fmodels.build_model(arch, 1000, weights="imagenet", seed=0)
    single = _Timed(_compiled_embedder(arch, model, ["gap"], backend))
    sweep = _Timed(_compiled_embedder(arch, model, _sweep_layers(arch), backend))
    floors = {engine: _compiled_embedder(arch, model, ["gap"], engine)
              for engine in ("torch", *EXPORTED) if installed(engine)}
    log(f"{arch}: compiling (gap, then the sweep over {len(sweep.embed.layers)} layers)")
    with warnings.catch_warnings():      # warm-ups: a batch of samples, an under-determined fit
        warnings.simplefilter("ignore")
        _explainer(single, batch, batch).explain(image, seed=0)
        _explainer(sweep, batch, batch).explain(image, seed=0)
    single_explainer = _explainer(single, n_samples, batch)
    sweep_explainer = _explainer(sweep, n_samples, batch)
    noise = torch.rand(batch, 3, 113, 113, generator=torch.Generator().manual_seed(0))
    n_batches = math.ceil(n_samples / batch)

    def forward(embed):
        for _ in range(n_batches):
            embed(noise)

    for embed in (single.embed, *floors.values()):
        embed(noise)        # warm-up (a batch made outside inference mode may recompile)

    lime = _lime_runner(_softmax_classifier(arch), image, n_samples)
    runs = {"forward": [], "explain": [], "sweep": [], "lime": [],
            **{f"forward_{engine}": [] for engine in floors}}
    inside = {"explain": [], "sweep": [], "lime": []}
    for r in range(repeats):
        log(f"{arch}: repeat {r + 1}/{repeats}: forward floor, gap explanation, sweep, "
            "lime_image (eager)")
        runs["forward"].append(_clock(functools.partial(forward, single.embed)))
        for engine, embed in floors.items():
            runs[f"forward_{engine}"].append(_clock(lambda: forward(embed)))
        for name, timed, explainer in (("explain", single, single_explainer),
                                       ("sweep", sweep, sweep_explainer)):
            timed.seconds = 0.0
            runs[name].append(_clock(lambda: explainer.explain(image, seed=r)))
            inside[name].append(runs[name][-1][0] / timed.seconds)
        runs["lime"].append(_clock(functools.partial(lime, r)))
        inside["lime"].append(runs["lime"][-1][0] / lime.seconds)
    del single, sweep, single_explainer, sweep_explainer, lime

    log(f"{arch}: peak RSS of a sweep process")
    peak_rss_mb = _peak_rss_mb(arch, n_samples, batch, backend)

    def median(name, which):
        return statistics.median(run[which] for run in runs[name])

    explain_s, forward_s, sweep_s, lime_s = (
        median(k, 0) for k in ("explain", "forward", "sweep", "lime"))
    explain_cpu, forward_cpu, sweep_cpu, lime_cpu = (
        median(k, 1) for k in ("explain", "forward", "sweep", "lime"))
    fastest_s = min(median(f"forward_{engine}", 0) for engine in floors)
    return {
        "model": arch, "backend": backend, "n_samples": n_samples, "repeats": repeats,
        "batch_size": batch, "lime_batch_size": LIME_BATCH,
        "explain_s": explain_s, "forward_s": forward_s,
        **{f"forward_{engine}_s": median(f"forward_{engine}", 0) for engine in floors},
        "explain_over_fastest_forward": explain_s / fastest_s,
        "single_layer_s": explain_s, "sweep_s": sweep_s, "lime_s": lime_s,
        "peak_rss_mb": peak_rss_mb,
        "explain_over_forward": explain_s / forward_s,
        "sweep_over_single": sweep_s / explain_s,
        "lime_over_explain": lime_s / explain_s,
        # less sensitive to the load of a shared machine:
        "explain_cpu_over_forward_cpu": explain_cpu / forward_cpu,
        "sweep_cpu_over_single_cpu": sweep_cpu / explain_cpu,
        "lime_cpu_over_explain_cpu": lime_cpu / explain_cpu,
        "explain_over_its_forwards": statistics.median(inside["explain"]),
        "sweep_over_its_forwards": statistics.median(inside["sweep"]),
        "lime_over_its_forwards": statistics.median(inside["lime"]),
    }


#: The face recognisers benchmarked, and the engines each runs on (the first is the default
#: on a CPU, as ``backend="auto"`` picks it).
RECOGNISER_ENGINES = {"facenet-casia": ("onnxruntime", "openvino", "torch"), "sface": ("onnxruntime",),
                      "dlib": ("dlib",)}


def _recogniser_embeds(rec, backend: str) -> tuple[str, dict]:
    """(default engine, {engine: embed callable}) of a recogniser: FaceNet's layer embedder
    per engine (``last_bn``), or the recogniser itself."""
    if rec.name == "facenet-casia":
        default = resolve_backend(backend, "cpu", rec.name)
        return default, {engine: rec.embedder(("last_bn",), backend=engine)
                         for engine in RECOGNISER_ENGINES[rec.name] if installed(engine)}
    (engine,) = RECOGNISER_ENGINES[rec.name]
    return engine, {engine: rec}


def _cosine_classifier(rec, face: np.ndarray):
    """lime's classifier_fn for verification on the eager FaceNet: one column, the cosine
    similarity of each image's (L2-normalised) embedding to the face's own."""
    model = rec.model.eval()
    with torch.no_grad():
        own = model(torch.from_numpy(face).permute(2, 0, 1)[None].float())[0]
    return lambda x: (model(x) @ own)[:, None].numpy()


def bench_recogniser(name: str, *, n_samples: int, repeats: int, batch: int | None, log,
                     backend: str = "auto") -> dict:
    """Time one face recogniser: forward floor per engine, explanation on the default engine,
    and (FaceNet) lime_image on the eager model, interleaved per repeat."""
    from faceexp import recognisers

    options = {"backend": backend} if name == "facenet-casia" else {}
    rec = recognisers.load(name, **options)
    path = fdata.orl_root() / "s1" / "1.pgm"
    face = rec.align(path)
    default, embeds = _recogniser_embeds(rec, backend)
    timed = _Timed(embeds[default])
    if batch is None:
        batch = int(getattr(embeds[default], "preferred_batch_size", None) or rec.preferred_batch_size)
    explainer = _explainer(timed, n_samples, batch)
    noise = torch.rand(batch, 3, *rec.input_size, generator=torch.Generator().manual_seed(0))
    n_batches = math.ceil(n_samples / batch)

    def forward(embed):
        for _ in range(n_batches):
            embed(noise)

    log(f"{name}: warm-up (export or load of each engine, one small explanation)")
    for embed in embeds.values():
        embed(noise)
    with warnings.catch_warnings():      # a batch of samples: an under-determined fit
        warnings.simplefilter("ignore")
        _explainer(timed, batch, batch).explain(face, seed=0)
    lime = _lime_runner(_cosine_classifier(rec, face), face, n_samples) \
        if name == "facenet-casia" else None

    runs = {"explain": [], "lime": [], **{f"forward_{engine}": [] for engine in embeds}}
    inside = {"explain": [], "lime": []}
    for r in range(repeats):
        log(f"{name}: repeat {r + 1}/{repeats}: forward floor ({', '.join(embeds)}), explanation"
            + (", lime_image (eager)" if lime else ""))
        for engine, embed in embeds.items():
            runs[f"forward_{engine}"].append(_clock(lambda: forward(embed)))
        timed.seconds = 0.0
        runs["explain"].append(_clock(lambda: explainer.explain(face, seed=r)))
        inside["explain"].append(runs["explain"][-1][0] / timed.seconds)
        if lime is not None:
            runs["lime"].append(_clock(lambda: lime(r)))
            inside["lime"].append(runs["lime"][-1][0] / lime.seconds)

    def median(key, which=0):
        return statistics.median(run[which] for run in runs[key])

    floors = {engine: median(f"forward_{engine}") for engine in embeds}
    explain_s, forward_s = median("explain"), floors[default]
    row = {
        "model": name, "backend": default, "n_samples": n_samples, "repeats": repeats,
        "batch_size": batch, "input_size": list(rec.input_size), "face": f"ORL {path.parent.name}/{path.name}",
        "explained": "last_bn" if name == "facenet-casia" else "embedding",
        "explain_s": explain_s, "forward_s": forward_s,
        **{f"forward_{engine}_s": floor for engine, floor in floors.items()},
        "explain_over_forward": explain_s / forward_s,
        "explain_over_fastest_forward": explain_s / min(floors.values()),
        "explain_cpu_over_forward_cpu": median("explain", 1) / median(f"forward_{default}", 1),
        "explain_over_its_forwards": statistics.median(inside["explain"]),
    }
    if lime is not None:
        lime_s = median("lime")
        row.update({
            "lime_batch_size": LIME_BATCH,
            "lime_target": "cosine to the face's own embedding, 1 column (eager torch)",
            "lime_s": lime_s, "lime_over_explain": lime_s / explain_s,
            "lime_cpu_over_explain_cpu": median("lime", 1) / median("explain", 1),
            "lime_over_its_forwards": statistics.median(inside["lime"]),
        })
    return row


# ------------------------------------------------------------------ time to a converged map

#: The models of the converge measurement; dlib is left out: a black box at about 0.1 s a
#: forward, a 10,000-sample reference costs about 17 minutes per face and explainer.
CONVERGE_MODELS = ("sface", "facenet-casia", "mobilenetv2", "resnet50")
CONVERGE_SKIPPED = {"dlib": "a black box at ~0.1 s a forward: a 10,000-sample reference per "
                            "face and explainer costs ~17 min on 2 cores"}
#: Spearman agreement with the reference that counts as converged.
CONVERGE_AT = 0.9
#: Seed offset of the reference maps (independent of the sample stream being measured).
REFERENCE_SEED = 10 ** 6


def _grid(limit: int) -> list[int]:
    """Sample counts at which a stream's map is compared with its reference."""
    steps = [100 * k for k in range(1, 11)] + [1250, 1500, 2000, 2500, 3000, 4000, 5000,
                                                6000, 8000, 10000]
    return [n for n in steps if n < limit] + [limit]


def _first_converged(curve: dict) -> int | None:
    return next((n for n, r in sorted(curve.items()) if r >= CONVERGE_AT), None)


def _embedding_fn(embed):
    """(N, 3, H, W) tensor -> (N, D) float tensor of an Embedder, recogniser or callable."""
    def run(x):
        out = embed(x)
        if isinstance(out, dict):
            (out,) = out.values()
        return torch.as_tensor(np.asarray(out) if not isinstance(out, torch.Tensor) else out
                               ).float().reshape(len(x), -1)
    return run


def _cosine_column(embed, face: np.ndarray):
    """lime's classifier_fn for verification: (N, H, W, 3) -> (N, 1) cosine similarity of each
    image's embedding (``embed``) to the face's own."""
    run = _embedding_fn(embed)
    with torch.no_grad():
        own = torch.nn.functional.normalize(run(torch.from_numpy(face).permute(2, 0, 1)[None]), dim=1)

    def classifier_fn(images):
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32))
        with torch.no_grad():
            return (torch.nn.functional.normalize(run(x), dim=1) @ own[0])[:, None].numpy()
    return classifier_fn


def _converge_subject(name: str, backend: str, n_faces: int) -> dict:
    """The embed callable faceexp explains, the eager callable lime_image gets, the faces."""
    paths = [fdata.orl_root() / f"s{k}" / "1.pgm" for k in range(1, n_faces + 1)]
    if name in RECOGNISER_ENGINES:
        from faceexp import recognisers

        rec = recognisers.load(name, **({"backend": backend} if name == "facenet-casia" else {}))
        engine, embeds = _recogniser_embeds(rec, backend)
        eager = rec.model.eval() if name == "facenet-casia" else rec
        return {"embed": embeds[engine], "backend": engine, "lime_embed": eager,
                "lime_engine": "torch eager" if name == "facenet-casia" else engine,
                "faces": [rec.align(p) for p in paths], "weights": "as shipped",
                "batch": int(getattr(embeds[engine], "preferred_batch_size", None)
                             or rec.preferred_batch_size),
                "explained": "last_bn" if name == "facenet-casia" else "embedding"}
    checkpoints = sorted(Path("artifacts/quick/train").glob(f"{name}-*/final.pt"))
    if checkpoints:
        model, _ = fmodels.load_checkpoint(checkpoints[-1], arch=name)
        weights = f"quick-profile checkpoint {checkpoints[-1]}"
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = fmodels.build_model(name, 1000, weights="imagenet", seed=0)
        weights = "random (no quick checkpoint, no ImageNet file)" if caught else \
            "ImageNet (no quick-profile checkpoint)"
    model = model.eval()
    engine = resolve_backend(backend, "cpu", name)
    return {"embed": _compiled_embedder(name, model, ["gap"], backend), "backend": engine,
            "lime_embed": fmodels.Embedder(model, ["gap"]), "lime_engine": "torch eager",
            "faces": [fpre.preprocess(fpre.load_image(p)).transpose(1, 2, 0).copy()
                      for p in paths], "weights": weights,
            "batch": fmodels.default_batch_size(name, "cpu", engine), "explained": "gap"}


def _spearman(a, b) -> float:
    from faceexp.explain.convergence import rank_correlation

    return float(rank_correlation(np.asarray(a, float)[None], np.asarray(b, float)[None])[0])


def _lime_data(classifier_fn, face, segments, n: int, seed: int):
    """lime_image's own sampling and scoring (``data_labels``), its distances, and a function
    of k fitting its map on the first k rows exactly as ``explain_instance`` does."""
    from unittest import mock

    import sklearn.metrics
    from lime import lime_image

    explainer = lime_image.LimeImageExplainer(random_state=seed)
    with mock.patch.object(lime_image, "tqdm", lambda iterable, **_: iterable):
        data, labels = explainer.data_labels(face.astype(np.float64), np.zeros_like(face, np.float64),
                                             segments, classifier_fn, n, batch_size=LIME_BATCH)
    distances = sklearn.metrics.pairwise_distances(data, data[0].reshape(1, -1),
                                                   metric="cosine").ravel()

    def fit(k):
        local = explainer.base.explain_instance_with_data(
            data[:k], labels[:k], distances[:k], 0, 100000, model_regressor=None,
            feature_selection=explainer.feature_selection)[1]
        weights = np.zeros(int(segments.max()) + 1)
        for segment, weight in local:
            weights[segment] = weight
        return weights
    return fit


def _lime_seconds(classifier_fn, face, segments, n: int, seed: int) -> float:
    """Wall time of one ``explain_instance`` with ``n`` samples, as its users call it (the
    segmentation function returns faceexp's superpixels)."""
    from unittest import mock

    from lime import lime_image

    t0 = time.perf_counter()
    with mock.patch.object(lime_image, "tqdm", lambda iterable, **_: iterable):
        lime_image.LimeImageExplainer(random_state=seed).explain_instance(
            face.astype(np.float64), classifier_fn, labels=(0,), top_labels=None, hide_color=0,
            num_samples=n, batch_size=LIME_BATCH, segmentation_fn=lambda _: segments)
    return time.perf_counter() - t0


def _prefix_maps(explanation, grid, reference, batch: int, tolerance: float,
                 reference_samples: int) -> dict:
    """Along one faceexp sample stream: the Spearman with the reference at every n of the
    grid, the split-half estimate there, and the n=auto rule replayed on the stream."""
    from faceexp.explain.convergence import sample_until_agreement, split_half_agreement
    from faceexp.explain.lime_steps import fit_linear

    from faceexp.explain.convergence import spearman_brown

    s, y, w = explanation.samples, explanation.targets.T, explanation.weights
    true, estimated, predicted = {}, {}, {}
    for n in grid:
        true[n] = _spearman(fit_linear(s[:n], y[:n], w[:n])[0][0], reference)
        if n >= 2 * (s.shape[1] + 1) + 1:
            agreement, r_half = split_half_agreement(s[:n], y[:n], w[:n], rng=n)
            estimated[n] = float(agreement[0])
            # the finite reference is noisy too: predicted Spearman(map_n, reference_R) =
            # sqrt(reliability_n * reliability_R), both from this r_half by Spearman-Brown
            predicted[n] = float(np.sqrt(spearman_brown(r_half[0]) * spearman_brown(
                r_half[0], 2 * reference_samples / n)))
    total = s.shape[0]
    batches = ((min(total, k), ["x"], explanation.targets, None)
               for k in range(batch, total + batch, batch))
    used, _, _, _, record = sample_until_agreement(batches, s, w, tolerance=tolerance,
                                                   round_samples=100, ridge=0.0,
                                                   seed=explanation.seed)
    auto = {"auto_samples": used, "auto_estimate": record["agreement"][0],
            "auto_converged": record["converged"],
            "auto_spearman": _spearman(fit_linear(s[:used], y[:used], w[:used])[0][0], reference)}
    return {"curve": true, "estimated": estimated, "predicted": predicted, **auto}


def bench_converge(name: str, *, reference_samples: int, stream_samples: int, n_faces: int,
                   log, backend: str = "auto", lime: bool = True, seed: int = 0,
                   p_off: float = 0.6) -> dict:
    """Time to a converged map (Spearman >= CONVERGE_AT with the explainer's own
    ``reference_samples`` map over faceexp's superpixels) for faceexp and lime_image."""
    from faceexp.explain.lime_steps import superpixels

    subject = _converge_subject(name, backend, n_faces)
    embed, batch = subject["embed"], subject["batch"]
    grid = _grid(min(stream_samples, reference_samples))
    per_face = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Explainer(embed, n_samples=batch, batch_size=batch).explain(subject["faces"][0], seed=0)
    for i, face in enumerate(subject["faces"]):
        segments = superpixels(face, N_SEGMENTS)
        s = seed + i
        log(f"{name}: face {i + 1}/{n_faces}: faceexp reference ({reference_samples}) and stream "
            f"({grid[-1]})")

        def explain(n, face_seed, **options):
            explainer = Explainer(embed, n_samples=n, batch_size=batch, p_off=p_off,
                                  **options)
            t0 = time.perf_counter()
            result = explainer.explain(face, seed=face_seed, segments=segments)
            return result, time.perf_counter() - t0

        reference = explain(reference_samples, REFERENCE_SEED + s)[0].coefficients[0]
        stream = explain(grid[-1], s)[0]
        row = {"face": i, "superpixels": int(segments.max()) + 1,
               **_prefix_maps(stream, grid, reference, batch, 1 - CONVERGE_AT,
                              reference_samples)}
        row["converge_samples"] = _first_converged(row["curve"])
        row["explanation_seconds"] = explain(1000, s)[1]
        row["converge_seconds"] = (explain(row["converge_samples"], s)[1]
                                   if row["converge_samples"] else None)
        auto, row["auto_seconds"] = explain("auto", s, max_samples=min(1000, grid[-1]))
        row["auto_rule_samples"] = auto.samples_used
        if lime:
            log(f"{name}: face {i + 1}/{n_faces}: lime_image reference and stream")
            column = _cosine_column(subject["lime_embed"], face)
            lime_reference = _lime_data(column, face, segments, reference_samples,
                                        REFERENCE_SEED + s)(reference_samples)
            fit = _lime_data(column, face, segments, grid[-1], s)
            row["lime_curve"] = {n: _spearman(fit(n), lime_reference) for n in grid}
            row["lime_converge_samples"] = _first_converged(row["lime_curve"])
            row["lime_converge_seconds"] = (
                _lime_seconds(column, face, segments, row["lime_converge_samples"], s)
                if row["lime_converge_samples"] else None)
        per_face.append(row)
        log(f"{name}: face {i + 1}: faceexp converges at {row['converge_samples']} samples "
            f"({row['converge_seconds']}), lime at {row.get('lime_converge_samples')} "
            f"({row.get('lime_converge_seconds')})")

    def middle(key):
        values = [r[key] for r in per_face if r.get(key) is not None]
        return statistics.median(values) if len(values) == len(per_face) else None

    result = {"model": name, "backend": subject["backend"], "weights": subject["weights"],
              "explained": subject["explained"], "faces": len(per_face),
              "reference_samples": reference_samples, "stream_samples": grid[-1],
              "converge_at": CONVERGE_AT, "batch_size": batch, "p_off": p_off,
              "lime_engine": subject["lime_engine"] if lime else None,
              **{key: middle(key) for key in (
                  "explanation_seconds", "converge_seconds", "converge_samples",
                  "lime_converge_seconds", "lime_converge_samples", "auto_seconds",
                  "auto_rule_samples", "auto_spearman")},
              "per_face": per_face}
    if result["converge_seconds"] and result["lime_converge_seconds"]:
        result["lime_over_faceexp_converge"] = (result["lime_converge_seconds"]
                                                / result["converge_seconds"])
    return result


def bench_honesty(name: str, *, reference_samples: int, n_faces: int, log,
                  backend: str = "auto", seed: int = 0, max_samples: int = 1000,
                  samplings: tuple = ("bernoulli",), p_off: float = 0.6) -> dict:
    """Is the stopping rule's estimate honest? Per face: the split-half estimate at every 100
    samples of one Bernoulli stream and at the rule's stop, against the true Spearman with an
    independent ``reference_samples`` map (and the Spearman predicted against that noisy
    reference). Mean errors with bootstrap intervals over faces. Other ``samplings`` (same
    estimator, same limit) get their Spearman with the same reference along their own
    stream, to compare at equal sample counts."""
    from faceexp.core.bootstrap import mean_interval
    from faceexp.explain.lime_steps import superpixels

    subject = _converge_subject(name, backend, n_faces)
    embed, batch = subject["embed"], subject["batch"]
    grid = _grid(max_samples)
    rows, by_sampling = [], []
    for i, face in enumerate(subject["faces"]):
        log(f"{name}: honesty, face {i + 1}/{n_faces}")
        segments = superpixels(face, N_SEGMENTS)
        explainer = Explainer(embed, n_samples=reference_samples, batch_size=batch,
                              p_off=p_off)
        reference = explainer.explain(face, seed=REFERENCE_SEED + seed + i,
                                      segments=segments).coefficients[0]
        row = {}
        for sampling in samplings:
            stream = Explainer(embed, n_samples=max_samples, batch_size=batch,
                               sampling=sampling, p_off=p_off).explain(face, seed=seed + i, segments=segments)
            row[sampling] = _prefix_maps(stream, grid, reference, batch, 1 - CONVERGE_AT,
                                         reference_samples)
        by_sampling.append(row)
        rows.append(row[samplings[0]])
    per_face_error = np.array([np.mean([r["estimated"][n] - r["curve"][n] for n in r["estimated"]])
                               for r in rows])
    stop_error = np.array([r["auto_estimate"] - r["auto_spearman"] for r in rows])
    predicted_error = np.array([np.mean([r["predicted"][n] - r["curve"][n]
                                         for n in r["predicted"]]) for r in rows])

    def interval(values):
        frame = mean_interval(values)
        return [float(frame["mean"].iloc[0]), float(frame["ci_low"].iloc[0]),
                float(frame["ci_high"].iloc[0])]

    return {"model": name, "backend": subject["backend"], "weights": subject["weights"],
            "faces": len(rows), "reference_samples": reference_samples,
            "max_samples": max_samples, "target": CONVERGE_AT, "p_off": p_off,
            "estimate_minus_true_mean_ci": interval(per_face_error),
            "abs_error_mean_ci": interval(np.array([
                np.mean([abs(r["estimated"][n] - r["curve"][n]) for n in r["estimated"]])
                for r in rows])),
            "at_stop_estimate_minus_true_mean_ci": interval(stop_error),
            "predicted_minus_true_mean_ci": interval(predicted_error),
            "spearman_by_sampling": {
                sampling: {n: interval(np.array([row[sampling]["curve"][n]
                                                 for row in by_sampling])) for n in grid}
                for sampling in samplings},
            "at_stop_true_below_target": int(sum(r["auto_spearman"] < CONVERGE_AT for r in rows)),
            "checks": [[n, e, r["predicted"][n], t] for r in rows for n, e, t in
                       [(n, r["estimated"][n], r["curve"][n]) for n in r["estimated"]]],
            "per_face": [{k: r[k] for k in ("auto_samples", "auto_estimate", "auto_spearman",
                                            "auto_converged")} for r in rows],
            "note": "true = Spearman with a finite reference, itself noisy: it lies below the "
                    "agreement with the infinite-sample map by about the reference's own noise"}


def _cell(row: dict, key: str, spec: str, width: int) -> str:
    value = row.get(key)
    return f"{'-':>{width}s}" if value is None else f"{value:{width}{spec}}"


def print_table(results: list) -> None:
    """The rows of :func:`bench` / :func:`bench_recogniser` as a text table, then their ratios."""
    engines = ("torch", "onnxruntime", "dlib")
    print(f"{'model':14s} {'backend':>11s} " + " ".join(f"{'fwd ' + e[:7]:>11s}" for e in engines)
          + f" {'explain':>8s} {'/floor':>6s} {'/fast':>6s} {'sweep':>8s} {'ratio':>6s} "
          f"{'lime':>8s} {'x':>6s} {'rss MB':>8s}")
    for r in results:
        print(f"{r['model']:14s} {r['backend']:>11s} "
              + " ".join(_cell(r, f"forward_{e}_s", ".2f", 11) for e in engines)
              + f" {r['explain_s']:8.2f} {r['explain_over_forward']:6.3f} "
              f"{r['explain_over_fastest_forward']:6.3f} {_cell(r, 'sweep_s', '.2f', 8)} "
              f"{_cell(r, 'sweep_over_single', '.3f', 6)} {_cell(r, 'lime_s', '.2f', 8)} "
              f"{_cell(r, 'lime_over_explain', '.2f', 6)} {_cell(r, 'peak_rss_mb', '.0f', 8)}")
    for r in results:
        text = (f"{r['model']}: CPU-time ratio explain/forward "
                f"{r['explain_cpu_over_forward_cpu']:.3f}; explanation / its own forwards "
                f"{r['explain_over_its_forwards']:.3f}")
        if "sweep_s" in r:
            text += (f" (gap), {r['sweep_over_its_forwards']:.3f} (sweep); CPU-time sweep/single "
                     f"{r['sweep_cpu_over_single_cpu']:.3f}")
        if "lime_s" in r:
            text += (f"; lime_image / its own forwards {r['lime_over_its_forwards']:.3f}, "
                     f"CPU-time lime/explain {r['lime_cpu_over_explain_cpu']:.2f}")
        print(text)
    print("targets: explain/forward <= 1.15, sweep/single <= 1.25, lime/explain >= 2 (PyTorch "
          "models), rss < 3000 MB (resnet50)")


def print_converge(results: list) -> str:
    """The rows of :func:`bench_converge` / :func:`bench_honesty` as text."""
    lines = []
    for r in results:
        if "skipped" in r:
            lines.append(f"{r['model']}: left out ({r['skipped']})")
        elif "abs_error_mean_ci" in r:
            lines.append(f"{r['model']} ({r['faces']} faces, reference {r['reference_samples']}): "
                         "estimate - true Spearman {:.3f} [{:.3f}, {:.3f}], |error| {:.3f} "
                         "[{:.3f}, {:.3f}]; at the rule's stop {:.3f} [{:.3f}, {:.3f}]".format(
                             *r["estimate_minus_true_mean_ci"], *r["abs_error_mean_ci"],
                             *r["at_stop_estimate_minus_true_mean_ci"]))
        else:
            lines.append(f"{r['model']} ({r['backend']}, {r['faces']} faces): 1000 samples "
                         f"{r['explanation_seconds']:.2f} s; converged at {r['converge_samples']} "
                         f"samples in {r['converge_seconds']} s; lime_image at "
                         f"{r['lime_converge_samples']} in {r['lime_converge_seconds']} s; "
                         f"ratio {r.get('lime_over_faceexp_converge')}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None,
                        help="comma-separated: the paper's CNNs (mobilenetv2, resnet50) and "
                             f"face recognisers ({', '.join(RECOGNISER_ENGINES)})")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=None,
                        help="faceexp's batch (explanations and the forward floor); default: "
                             "faceexp.models.default_batch_size(model, 'cpu'). lime_image "
                             f"always runs at batch_size={LIME_BATCH}")
    parser.add_argument("--backend", default="auto",
                        choices=("auto", "torch", "onnxruntime", "openvino"),
                        help="engine of faceexp's explanations (default auto: on a CPU the "
                             "engine AUTO_CPU names for the network)")
    parser.add_argument("--json", action="store_true", help="print one JSON list")
    parser.add_argument("--converge", action="store_true",
                        help="measure the time to a converged map (Spearman >= "
                             f"{CONVERGE_AT} with a --reference-samples map) for faceexp and "
                             "lime_image instead of the timing table; default models "
                             + ",".join(CONVERGE_MODELS))
    parser.add_argument("--honesty", action="store_true",
                        help="measure the n_samples='auto' rule's estimated agreement against "
                             "the true Spearman with a --reference-samples map (faceexp only)")
    parser.add_argument("--reference-samples", type=int, default=None,
                        help="samples of the reference maps (default 10000; --quick 2000)")
    parser.add_argument("--stream-samples", type=int, default=None,
                        help="--converge: longest sample stream searched for convergence "
                             "(default 4000; --quick 1000)")
    parser.add_argument("--faces", type=int, default=None,
                        help="ORL faces s1/1 .. sN/1 (default --converge 3, --honesty 10; "
                             "--quick 1 and 3)")
    parser.add_argument("--quick", action="store_true",
                        help="--converge/--honesty at a small scale: few faces, 2000-sample "
                             "references")
    parser.add_argument("--samplings", default="bernoulli",
                        help="--honesty: comma-separated samplings compared at equal sample "
                             "counts against the same reference (first: the honesty one), "
                             "e.g. bernoulli,matlab")
    parser.add_argument("--p-off", type=float, default=0.6,
                        help="--converge/--honesty: faceexp's drop probability (paper 0.6)")
    parser.add_argument("--no-lime", action="store_true", help="--converge: faceexp only")
    parser.add_argument("--peak-rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_rss_child:
        _peak_rss_child(args.peak_rss_child, args.samples, args.batch, args.backend)
        return 0

    def log(message):
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    args.models = args.models or (",".join(CONVERGE_MODELS) if args.converge or args.honesty
                                  else "mobilenetv2,resnet50")
    names = [a.strip() for a in args.models.split(",") if a.strip()]
    known = list(fmodels.ARCHITECTURES) + list(RECOGNISER_ENGINES)
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {known}")
    for name, value in (("--reference-samples", args.reference_samples),
                        ("--stream-samples", args.stream_samples), ("--faces", args.faces)):
        if value is not None and value < (1 if name == "--faces" else 200):
            parser.error(f"{name} must be >= {1 if name == '--faces' else 200}, got {value}")
    if args.converge or args.honesty:
        reference = args.reference_samples or (2000 if args.quick else 10000)
        results = []
        for name in names:
            if name in CONVERGE_SKIPPED:
                results.append({"model": name, "skipped": CONVERGE_SKIPPED[name]})
                log(f"{name}: left out: {CONVERGE_SKIPPED[name]}")
                continue
            if args.honesty:
                results.append(bench_honesty(
                    name, reference_samples=reference, backend=args.backend, log=log,
                    n_faces=args.faces or (3 if args.quick else 10),
                    samplings=tuple(args.samplings.split(",")), p_off=args.p_off))
            else:
                results.append(bench_converge(
                    name, reference_samples=reference, backend=args.backend, log=log,
                    stream_samples=args.stream_samples or (1000 if args.quick else 4000),
                    n_faces=args.faces or (1 if args.quick else 3), lime=not args.no_lime,
                    p_off=args.p_off))
            log(json.dumps({k: v for k, v in results[-1].items()
                            if k not in ("per_face", "checks")}))
        print(json.dumps(results, indent=1) if args.json else print_converge(results))
        return 0
    results = []
    for name in names:
        run = bench_recogniser if name in RECOGNISER_ENGINES else bench
        results.append(run(name, n_samples=args.samples, repeats=args.repeats,
                           batch=args.batch, log=log, backend=args.backend))
        log(json.dumps(results[-1]))
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
