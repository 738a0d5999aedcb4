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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mobilenetv2,resnet50",
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
    parser.add_argument("--peak-rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_rss_child:
        _peak_rss_child(args.peak_rss_child, args.samples, args.batch, args.backend)
        return 0

    def log(message):
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    names = [a.strip() for a in args.models.split(",") if a.strip()]
    known = list(fmodels.ARCHITECTURES) + list(RECOGNISER_ENGINES)
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {known}")
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
