"""Training and inference throughput (images/s), eager vs compiled, both networks.

A benchmark, not a test: it prints figures. Ratios measured in one run are what
to compare on a shared machine; medians of ``--repeats`` timings are reported.

    python benchmarks/train.py [--models mobilenetv2,resnet50] [--batch 32] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from faceexp import data as fdata
from faceexp.data import preprocessing as fpre
from faceexp import models as fmodels


def _orl_batch(n):
    frame = fdata.load_orl().iloc[:n]
    ds = fpre.FaceDataset(frame, train=False)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.arange(len(ds)) % 10
    return x, y


def _time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(arch, *, batch, infer_batch, steps, repeats, channels_last_options=(False, True)):
    x_train, y_train = _orl_batch(batch)
    x_inf, _ = _orl_batch(infer_batch)
    out = {"model": arch, "train_batch": batch, "infer_batch": infer_batch}
    for compiled in (False, True):
        for cl in channels_last_options:
            model = fmodels.build_model(arch, 10, weights=None)
            fmt = torch.channels_last if cl else torch.contiguous_format
            model = model.to(memory_format=fmt)
            xt = x_train.contiguous(memory_format=fmt)
            xi = x_inf.contiguous(memory_format=fmt)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            loss_fn = nn.CrossEntropyLoss()
            net = torch.compile(model) if compiled else model

            def train_steps():
                net.train()
                for _ in range(steps):
                    opt.zero_grad(set_to_none=True)
                    loss_fn(net(xt), y_train).backward()
                    opt.step()

            def infer():
                net.eval()
                with torch.inference_mode():
                    net(xi)

            t0 = time.perf_counter()
            train_steps()  # warm-up (compilation for the compiled variant)
            warm_train = time.perf_counter() - t0
            t0 = time.perf_counter()
            infer()
            warm_infer = time.perf_counter() - t0
            key = ("compiled" if compiled else "eager") + ("_channels_last" if cl else "")
            out[f"train_{key}_img_s"] = steps * batch / _time(train_steps, repeats)
            out[f"infer_{key}_img_s"] = infer_batch / _time(infer, repeats)
            out[f"warmup_{key}_s"] = warm_train + warm_infer
    out["train_speedup"] = max(v for k, v in out.items() if k.startswith("train_") and k.endswith("img_s")) / out["train_eager_img_s"]
    out["infer_speedup"] = max(v for k, v in out.items() if k.startswith("infer_") and k.endswith("img_s")) / out["infer_eager_img_s"]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mobilenetv2,resnet50")
    p.add_argument("--batch", type=int, default=32, help="training batch")
    p.add_argument("--infer-batch", type=int, default=50)
    p.add_argument("--steps", type=int, default=2, help="training steps per timing")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = [bench(m, batch=args.batch, infer_batch=args.infer_batch, steps=args.steps,
                  repeats=args.repeats) for m in args.models.split(",")]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device cpu; medians of {args.repeats}")
    for r in rows:
        print(f"\n{r['model']} (train batch {r['train_batch']}, inference batch {r['infer_batch']})")
        print(f"{'variant':<26}{'train img/s':>12}{'infer img/s':>13}{'warm-up s':>11}")
        for key in ("eager", "eager_channels_last", "compiled", "compiled_channels_last"):
            print(f"{key:<26}{r[f'train_{key}_img_s']:>12.1f}{r[f'infer_{key}_img_s']:>13.1f}"
                  f"{r[f'warmup_{key}_s']:>11.1f}")
        print(f"best/eager: train x{r['train_speedup']:.2f}, inference x{r['infer_speedup']:.2f}")


if __name__ == "__main__":
    main()
