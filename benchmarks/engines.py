"""CPU engines for the explainer's forward passes: onnxruntime against OpenVINO, through faceexp.

A benchmark, not a test: it prints figures, and ``faceexp.models.onnx_backend.AUTO_CPU``
(what ``backend="auto"`` picks on a CPU) and the engines' default batches are set from
them. For each network (the paper's CNNs at 113x113, first conv stride 1, ImageNet-
initialised; FaceNet-CASIA at 160x160; SFace at 112x112) and each layer set an
explanation uses (the one embedding layer: GAP, ``last_bn`` or SFace's ``fc1``; the layer
sweep: every block end + GAP + softmax, flattened, or the recognisers' catalogue layers
channel-averaged), faceexp's own exported forward
(:class:`faceexp.models.onnx_backend.ExportedForward`, the same ONNX file for both
engines; SFace: its own ONNX file with the int8 weights folded to float32,
:class:`faceexp.recognisers.sface.SFace`) runs real ORL faces on each engine at several
batch sizes, in interleaved rounds (a change of load on a shared machine hits every
configuration alike). SFace also runs as shipped (int8 weights dequantised on every
forward, onnxruntime: ``onnxruntime-int8``), the figure before folding.

Printed per (network, layers): each engine's images/s at each batch (median over
rounds), each engine's best, the ratio OpenVINO / onnxruntime of the bests, and the
largest difference of any layer output between the engines relative to that layer's
scale (max |a - b| / max |a|) on the faces run.

Run: ``python benchmarks/engines.py [--networks mobilenetv2 resnet50 facenet-casia sface]
[--rounds 7] [--batches 8 16 32] [--images 64] [--json]`` (OpenVINO missing: a line
saying how to install it).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch

ENGINES = ("onnxruntime", "openvino")


def _orl_faces(n: int, size: int) -> torch.Tensor:
    """The first ``n`` ORL faces, (n, 3, size, size) in [0, 1]: the paper's crop at 113, or
    resized from it for FaceNet (the benchmark times the engines, not the alignment)."""
    import faceexp

    orl = faceexp.load_orl()
    images = [faceexp.preprocessed_image(path) for path in orl["path"][:n]]
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    if size != batch.shape[-1]:
        batch = torch.nn.functional.interpolate(batch, size=(size, size), mode="bilinear",
                                                align_corners=False).clamp(0, 1)
    return batch


def _embeds(network: str, which: str) -> tuple[dict, int]:
    """{engine: embed callable -> {layer: (N, D)}} for one network and layer set, and the input size."""
    from faceexp import models as fmodels

    if network == "sface":
        from faceexp.recognisers.sface import EMBEDDING_LAYER, SFace

        recs = {engine: SFace(backend=engine) for engine in ENGINES}
        recs["onnxruntime-int8"] = SFace(backend="onnxruntime", fold=False)
        layers = (EMBEDDING_LAYER,) if which == "embedding" else SFace.layers
        return {engine: rec.embedder(layers) for engine, rec in recs.items()}, 112

    if network == "facenet-casia":
        from faceexp.recognisers.facenet import FaceNetCasia

        rec = FaceNetCasia(backend="onnxruntime")
        layers = ("last_bn",) if which == "embedding" else rec.layers
        return {engine: rec.embedder(layers, backend=engine) for engine in ENGINES}, 160
    model = fmodels.build_model(network, num_classes=10, seed=0)
    layers = ["gap"] if which == "embedding" else fmodels.block_ends(network) + ["gap", "softmax"]
    return {engine: fmodels.Embedder(model, layers, pooling="flatten", backend=engine)
            for engine in ENGINES}, 113


def run(network: str, which: str, batches, rounds: int, n_images: int) -> dict:
    """Images/s of each engine at each batch size, and the engines' largest difference."""
    embeds, size = _embeds(network, which)
    images = _orl_faces(n_images, size)
    outputs = {engine: embed(images) for engine, embed in embeds.items()}   # exports, warms up
    diff = max(float((outputs["openvino"][layer] - outputs["onnxruntime"][layer]).abs().max()
                     / outputs["onnxruntime"][layer].abs().max().clamp_min(1e-12))
               for layer in outputs["onnxruntime"])
    rates = {(engine, b): [] for engine in embeds for b in batches}
    for _ in range(rounds):
        for (engine, b), values in rates.items():
            embed = embeds[engine]
            start = time.perf_counter()
            for i in range(0, n_images, b):
                embed(images[i:i + b])
            values.append(n_images / (time.perf_counter() - start))
    row = {"network": network, "layers": which, "n_layers": len(outputs["onnxruntime"]),
           "rounds": rounds, "images": n_images, "threads": torch.get_num_threads(),
           "max_rel_diff": diff}
    for engine in embeds:
        medians = {b: statistics.median(rates[engine, b]) for b in batches}
        best = max(medians, key=medians.get)
        row[engine] = {"img_s": {str(b): m for b, m in medians.items()},
                       "best_batch": best, "best_img_s": medians[best]}
    row["openvino_over_onnxruntime"] = row["openvino"]["best_img_s"] / row["onnxruntime"]["best_img_s"]
    if "onnxruntime-int8" in row:       # SFace: each engine's gain from folding the int8 weights
        for engine in ENGINES:
            row[f"{engine}_over_int8"] = row[engine]["best_img_s"] / row["onnxruntime-int8"]["best_img_s"]
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+",
                        default=["mobilenetv2", "resnet50", "facenet-casia", "sface"])
    parser.add_argument("--layers", nargs="+", default=["embedding", "sweep"],
                        choices=("embedding", "sweep"))
    parser.add_argument("--batches", nargs="+", type=int, default=[8, 16, 32])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from faceexp.models.onnx_backend import installed

    if not installed("openvino"):
        print("OpenVINO is not installed: pip install openvino (then run this again)")
        return 1
    rows = []
    for network in args.networks:
        for which in args.layers:
            rows.append(run(network, which, args.batches, args.rounds, args.images))
            r = rows[-1]
            if not args.json:
                engines = [e for e in r if isinstance(r[e], dict)]
                per = "  ".join(f"{e[:4]}{e[11:]} " + "/".join(f"{v:.1f}" for v in r[e]["img_s"].values())
                                for e in engines)
                print(f"{network:14s} {which:9s} ({r['n_layers']:2d} layers) img/s at batch "
                      f"{'/'.join(map(str, args.batches))}: {per}  best: onnx "
                      f"{r['onnxruntime']['best_img_s']:.1f} (b{r['onnxruntime']['best_batch']}) "
                      f"openvino {r['openvino']['best_img_s']:.1f} (b{r['openvino']['best_batch']}) "
                      f"ratio {r['openvino_over_onnxruntime']:.2f}  max rel diff "
                      f"{r['max_rel_diff']:.1e}" + "".join(
                          f"  {e} / int8 {r[f'{e}_over_int8']:.2f}" for e in ENGINES
                          if f"{e}_over_int8" in r), flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
