"""CPU inference engines for the explainer's forward passes: onnxruntime against OpenVINO.

A benchmark, not a test: it prints figures. Issue 15 asks whether OpenVINO (a
registry package, ``pip install openvino``; not a faceexp dependency) would beat
onnxruntime, the engine faceexp's ``backend="auto"`` picks on a CPU. For each of the
paper's CNNs at 113x113 (first conv stride 1; the GAP layer), the very graph faceexp
exports for onnxruntime (:class:`faceexp.models.onnx_backend.OnnxRuntimeForward`) is
also compiled by OpenVINO's CPU plugin (``openvino.Core().compile_model``, the ONNX
file as is), and both run batches of real ORL faces in interleaved rounds (a change
of load on a shared machine hits both alike). Printed per network: images/s of each
engine (median over rounds), their ratio, and the largest difference of the GAP
outputs relative to their scale (max |a - b| / max |a|).

Run: ``python benchmarks/engines.py [--rounds 5] [--batch 50] [--json]`` (OpenVINO
missing: the onnxruntime rows alone, and a line saying how to install it).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch


def _faces(n: int) -> torch.Tensor:
    import faceexp

    orl = faceexp.load_orl()
    images = [faceexp.preprocessed_image(path) for path in orl["path"][:n]]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def _openvino_model(onnx_path, threads: int):
    try:
        import openvino as ov
    except ImportError:
        return None
    core = ov.Core()
    # f32 inference stated: OpenVINO's CPU plugin may otherwise pick a lower precision
    return core.compile_model(str(onnx_path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                      "PERFORMANCE_HINT": "LATENCY",
                                                      "INFERENCE_PRECISION_HINT": "f32"})


def run(arch: str, batch: int, rounds: int) -> dict:
    from faceexp import models as fmodels

    model = fmodels.build_model(arch, num_classes=10, seed=0)
    embedder = fmodels.Embedder(model, ["gap"], backend="onnxruntime")
    images = _faces(batch)
    reference = embedder(images)["gap"].numpy()        # exports and caches the graph
    path = _onnx_path(embedder, images)
    compiled = _openvino_model(path, torch.get_num_threads())
    row = {"arch": arch, "batch": batch, "rounds": rounds, "threads": torch.get_num_threads(),
           "onnx": str(path)}
    array = np.ascontiguousarray(images.numpy())
    ort_rates, ov_rates = [], []
    ov_out = None
    for _ in range(rounds):
        start = time.perf_counter()
        embedder(images)
        ort_rates.append(batch / (time.perf_counter() - start))
        if compiled is not None:
            start = time.perf_counter()
            result = compiled(array)
            ov_rates.append(batch / (time.perf_counter() - start))
            ov_out = next(iter(result.values()))
    row["onnxruntime_img_s"] = statistics.median(ort_rates)
    if compiled is None:
        row["openvino"] = "not installed (pip install openvino)"
        return row
    ov_out = np.asarray(ov_out).reshape(len(reference), -1)
    row["openvino_img_s"] = statistics.median(ov_rates)
    row["openvino_over_onnxruntime"] = row["openvino_img_s"] / row["onnxruntime_img_s"]
    row["max_rel_diff"] = float(np.abs(ov_out - reference.reshape(len(reference), -1)).max()
                                / np.abs(reference).max())
    return row


def _onnx_path(embedder, images):
    """The ONNX file faceexp exported for this Embedder and input size."""
    from faceexp.models.onnx_backend import OnnxRuntimeForward

    for value in vars(embedder).values():
        if isinstance(value, OnnxRuntimeForward):
            return value._path((int(images.shape[2]), int(images.shape[3])))
    raise RuntimeError("the Embedder has no onnxruntime forward; faceexp's internals changed")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["mobilenetv2", "resnet50"])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [run(arch, args.batch, args.rounds) for arch in args.arch]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        line = f"{r['arch']:12s} onnxruntime {r['onnxruntime_img_s']:7.1f} img/s"
        if "openvino_img_s" in r:
            line += (f"  openvino {r['openvino_img_s']:7.1f} img/s  ratio "
                     f"{r['openvino_over_onnxruntime']:.2f}  max rel diff {r['max_rel_diff']:.1e}")
        else:
            line += f"  openvino {r['openvino']}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
