"""Cost of one LIME-for-verification explanation, against its floor and against lime.

A benchmark, not a test: it prints figures. For each network at 113x113 (ImageNet
initialised; ResNet50 random where no ImageNet weights are installed), on a real
ORL face:

- ``forward_s``: forward passes alone, ``n_samples`` images at faceexp's batch
  (``--batch``, default ``faceexp.models.default_batch_size``), on the engine the
  explanations use (``--backend``, default "auto": onnxruntime on a CPU; "torch" is
  ``Embedder(compile=True, channels_last=True)``): the floor of an explanation;
  ``forward_torch_s`` and ``forward_onnxruntime_s`` give the floor of each engine;
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

Compilation warm-up is excluded (each compiled model explains once first).
Each repeat runs forward, gap explanation, sweep and lime back to back (a change
of load on a shared machine hits all four alike). Timings are medians of
``--repeats``; on a shared machine compare the ratios of
one run, not absolute times across runs. Targets: explain <= 1.15 x forward,
sweep <= 1.25 x single layer, >= 2x faster than lime_image, peak RSS < 3 GB
(ResNet50 sweep).

    python benchmarks/explain.py [--models mobilenetv2,resnet50] [--samples 1000]
                                 [--repeats 3] [--batch N] [--json]
"""
from __future__ import annotations

import argparse
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
from faceexp import preprocessing as fpre
from faceexp import models as fmodels
from faceexp.explainer import Explainer
from faceexp.models.onnx_backend import resolve_backend

LIME_BATCH = 50     # lime_image's batch_size, as its users run it
N_SEGMENTS = 75


def _face() -> np.ndarray:
    """A real ORL face, preprocessed to (113, 113, 3) float32 in [0, 1]."""
    path = fdata.orl_root() / "s1" / "1.pgm"
    return fpre.preprocess(fpre.load_image(path)).transpose(1, 2, 0).copy()


def _sweep_layers(arch: str) -> list[str]:
    return fmodels.block_ends(arch) + ["gap", "softmax"]


def _compiled_embedder(model, layers, backend="torch"):
    """The fastest Embedder of an engine: compiled + channels_last torch, or onnxruntime."""
    if resolve_backend(backend, "cpu") == "onnxruntime":
        return fmodels.Embedder(model, layers, pooling="flatten", backend="onnxruntime")
    return fmodels.Embedder(model, layers, pooling="flatten", compile=True, channels_last=True)


def _explainer(embedder, n_samples, batch):
    return Explainer(embedder, n_samples=n_samples, n_segments=N_SEGMENTS, batch_size=batch)


def _lime_runner(arch: str, image: np.ndarray, n_samples: int):
    """A function of a seed running lime_image as its users do (eager PyTorch model)."""
    from lime import lime_image
    from skimage.segmentation import slic

    eager = fmodels.build_model(arch, 1000, weights="imagenet", seed=0).eval()
    mean = torch.tensor(fpre.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(fpre.IMAGENET_STD).view(1, 3, 1, 1)

    def classifier_fn(images):
        t0 = time.perf_counter()
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            probabilities = torch.softmax(eager((x - mean) / std), dim=1).numpy()
        run.seconds += time.perf_counter() - t0
        return probabilities

    def segmentation_fn(x):
        return slic(x, n_segments=N_SEGMENTS, compactness=10, start_label=0)

    def run(seed):
        run.seconds = 0.0
        lime_image.LimeImageExplainer(random_state=seed).explain_instance(
            image, classifier_fn, top_labels=1, hide_color=0, num_samples=n_samples,
            batch_size=LIME_BATCH, segmentation_fn=segmentation_fn)

    run.seconds = 0.0      # wall time inside classifier_fn (its forward passes)
    return run


def _peak_rss_mb(arch: str, n_samples: int, batch: int, backend: str) -> float:
    """Peak RSS (MB) of a fresh process running one sweep explanation."""
    done = subprocess.run([sys.executable, __file__, "--peak-rss-child", arch,
                           "--samples", str(n_samples), "--batch", str(batch),
                           "--backend", backend],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def _peak_rss_child(arch: str, n_samples: int, batch: int, backend: str) -> None:
    model = fmodels.build_model(arch, 1000, weights="imagenet", seed=0)
    embedder = _compiled_embedder(model, _sweep_layers(arch), backend)
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
    backend = resolve_backend(backend, "cpu")
    if batch is None:
        batch = fmodels.default_batch_size(arch, "cpu", backend)
    model = fmodels.build_model(arch, 1000, weights="imagenet", seed=0)
    single = _Timed(_compiled_embedder(model, ["gap"], backend))
    sweep = _Timed(_compiled_embedder(model, _sweep_layers(arch), backend))
    floors = {engine: _compiled_embedder(model, ["gap"], engine)
              for engine in ("torch", "onnxruntime")}
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

    lime = _lime_runner(arch, image, n_samples)
    runs = {"forward": [], "explain": [], "sweep": [], "lime": [], "forward_torch": [],
            "forward_onnxruntime": []}
    inside = {"explain": [], "sweep": [], "lime": []}
    for r in range(repeats):
        log(f"{arch}: repeat {r + 1}/{repeats}: forward floor, gap explanation, sweep, "
            "lime_image (eager)")
        runs["forward"].append(_clock(lambda: forward(single.embed)))
        for engine, embed in floors.items():
            runs[f"forward_{engine}"].append(_clock(lambda: forward(embed)))
        for name, timed, explainer in (("explain", single, single_explainer),
                                       ("sweep", sweep, sweep_explainer)):
            timed.seconds = 0.0
            runs[name].append(_clock(lambda: explainer.explain(image, seed=r)))
            inside[name].append(runs[name][-1][0] / timed.seconds)
        runs["lime"].append(_clock(lambda: lime(r)))
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
    fastest_s = min(median("forward_torch", 0), median("forward_onnxruntime", 0))
    return {
        "model": arch, "backend": backend, "n_samples": n_samples, "repeats": repeats,
        "batch_size": batch, "lime_batch_size": LIME_BATCH,
        "explain_s": explain_s, "forward_s": forward_s,
        "forward_torch_s": median("forward_torch", 0),
        "forward_onnxruntime_s": median("forward_onnxruntime", 0),
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mobilenetv2,resnet50")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=None,
                        help="faceexp's batch (explanations and the forward floor); default: "
                             "faceexp.models.default_batch_size(model, 'cpu'). lime_image "
                             f"always runs at batch_size={LIME_BATCH}")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"),
                        help="engine of faceexp's explanations (default auto: onnxruntime "
                             "on a CPU)")
    parser.add_argument("--json", action="store_true", help="print one JSON list")
    parser.add_argument("--peak-rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_rss_child:
        _peak_rss_child(args.peak_rss_child, args.samples, args.batch, args.backend)
        return 0

    def log(message):
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    results = []
    for arch in (a.strip() for a in args.models.split(",") if a.strip()):
        results.append(bench(arch, n_samples=args.samples, repeats=args.repeats,
                             batch=args.batch, log=log, backend=args.backend))
        log(json.dumps(results[-1]))
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"{'model':12s} {'forward':>8s} {'explain':>8s} {'ratio':>6s} {'sweep':>8s} "
          f"{'ratio':>6s} {'lime':>8s} {'x':>6s} {'rss MB':>8s}")
    for r in results:
        print(f"{r['model']:12s} {r['forward_s']:8.2f} {r['explain_s']:8.2f} "
              f"{r['explain_over_forward']:6.3f} {r['sweep_s']:8.2f} "
              f"{r['sweep_over_single']:6.3f} {r['lime_s']:8.2f} "
              f"{r['lime_over_explain']:6.2f} {r['peak_rss_mb']:8.0f}")
    for r in results:
        print(f"{r['model']}: CPU-time ratios explain/forward "
              f"{r['explain_cpu_over_forward_cpu']:.3f}, sweep/single "
              f"{r['sweep_cpu_over_single_cpu']:.3f}, lime/explain "
              f"{r['lime_cpu_over_explain_cpu']:.2f}; explanation / its own forwards "
              f"{r['explain_over_its_forwards']:.3f} (gap), {r['sweep_over_its_forwards']:.3f} "
              f"(sweep), {r['lime_over_its_forwards']:.3f} (lime_image)")
    print("targets: explain/forward <= 1.15, sweep/single <= 1.25, lime/explain >= 2, "
          "rss < 3000 MB (resnet50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
