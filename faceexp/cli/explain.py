"""``faceexp explain``: LIME-for-verification heatmaps of one face image.

    faceexp explain face.jpg --model mobilenetv2 --checkpoint runs/mb2/final.pt \\
        --layers gap,softmax --out face.npz --png face.png
    faceexp explain a.jpg --reference b.jpg --model resnet50 --checkpoint r50.pt --out ab.npz
    faceexp explain /data/vggface2/test/n000001/0001_01.jpg \\
        --boxes /data/vggface2/meta/bb_landmark/loose_bb_test.csv --out face.npz
    faceexp explain photo.jpg --box 60,40,120,150 --out face.npz

The model is a real face recogniser (``--model sface``, the default;
``facenet-casia``; ``dlib``), whose alignment reads the image (and the
reference), or one of the paper's CNNs with ``--checkpoint``, read like its
training data (shorter side 129, central 113x113 crop). A paper CNN without
``--checkpoint`` is the ImageNet-initialised one (ImageNet head; ResNet50 is
randomly initialised where no ImageNet weights are installed): that is said on
stderr.

A face box (``--box X,Y,W,H`` for IMAGE, or ``--boxes`` with VGGFace2's
``loose_bb_*.csv``, looked up as ``<identity folder>/<file stem>`` for IMAGE and
``--reference``) restricts what is read to the face: the paper's CNNs read the
box (shorter side 129, central 113x113), the recognisers align the face found in
the box grown by 25% on every side.
"""
from __future__ import annotations

import sys

from faceexp.cli.common import add_explainer_arguments, add_network_arguments


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "explain", help="LIME heatmaps of which face regions an embedding depends on (paper II)",
        description="Explain one image: superpixels are blacked out at random, the cosine "
                    "similarity of each perturbed embedding to the image's own (or to "
                    "--reference's) is fitted by a weighted linear model, and the superpixel "
                    "coefficients are painted into a heatmap per layer.")
    p.add_argument("image", help="image file (any size; resized-and-cropped to 113x113)")
    p.add_argument("--reference", help="second image: explain the similarity of the pair")
    boxes = p.add_mutually_exclusive_group()
    boxes.add_argument("--box", metavar="X,Y,W,H",
                       help="face box of IMAGE in pixels (top-left corner, width, height)")
    boxes.add_argument("--boxes", metavar="CSV",
                       help="VGGFace2's loose_bb_*.csv (NAME_ID,X,Y,W,H): the boxes of IMAGE "
                            "and --reference, looked up as <identity>/<stem>")
    add_network_arguments(p)
    p.add_argument("--target", default="cosine", choices=("cosine", "softmax"),
                   help="cosine similarity (default) or the softmax probability of "
                        "--class-index (original LIME; needs --layers softmax)")
    p.add_argument("--class-index", type=int,
                   help="class for --target softmax (default: the top class)")
    add_explainer_arguments(p)
    p.add_argument("--out", required=True, help="output .npz (heatmaps, layers, segments, ...)")
    p.add_argument("--png", help="also write a figure: image, superpixels, heatmap per layer "
                                 "(format from the extension: png, pdf, svg, jpg, ...; not an "
                                 "input file)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _figure(path, image, explanation, reference=None) -> None:
    """Image | superpixel boundaries | heatmap overlay per layer, side by side."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import mark_boundaries

    from faceexp.core.files import atomic_write

    panels = 2 + (reference is not None) + len(explanation.layers)
    fig, axes = plt.subplots(1, panels, figsize=(2.4 * panels, 2.8), squeeze=False)
    axes = list(axes[0])
    axes[0].imshow(image)
    axes[0].set_title("image")
    column = 1
    if reference is not None:
        axes[1].imshow(reference)
        axes[1].set_title("reference")
        column = 2
    axes[column].imshow(mark_boundaries(image, explanation.segments))
    axes[column].set_title(f"{int(explanation.segments.max()) + 1} superpixels")
    for ax, layer, heatmap, r2 in zip(axes[column + 1:], explanation.layers,
                                      explanation.heatmaps, explanation.r2):
        ax.imshow(image.mean(axis=2), cmap="gray", vmin=0, vmax=1)
        shown = ax.imshow(heatmap, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        ax.set_title(f"{layer}\nR$^2$={r2:.2f}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.colorbar(shown, ax=axes[-1], fraction=0.046, pad=0.04)
    fig.tight_layout()
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    try:
        atomic_write(path, lambda file: fig.savefig(file, format=fmt, dpi=120))
    finally:
        plt.close(fig)


def _box_of(path, boxes, csv_path) -> tuple[int, int, int, int]:
    """The box of an image file in loose_bb boxes, looked up as ``<folder>/<stem>`` (NAME_ID)."""
    from pathlib import Path

    import pandas as pd

    from faceexp.data.boxes import frame_boxes

    path = Path(path)
    image = f"{path.parent.name}/{path.name}"
    try:
        (box,) = frame_boxes(pd.DataFrame({"image": [image]}), boxes, source=csv_path)
    except ValueError:
        raise ValueError(f"--boxes {str(csv_path)!r} has no box for {str(path)!r} (looked up as "
                         f"{image.rsplit('.', 1)[0]!r}, VGGFace2's NAME_ID): give the CSV of "
                         "the image's split, or --box X,Y,W,H") from None
    return box


def run(args) -> int:
    from faceexp.cli.common import (check_device, check_explainer_arguments, check_figure_path,
                                    check_not_input, check_output_file, explainer_options,
                                    layer_list, load_network_embedder, parse_box)
    from faceexp.explain.explainer import Explainer
    from faceexp.explain.targets import check_class_index

    # Everything that can be checked before minutes of work is checked first.
    layer_list(args.layers)
    check_output_file(args.out, "--out")
    out = check_output_file(args.out if str(args.out).endswith(".npz") else f"{args.out}.npz",
                            "--out")
    # An output must not be an input: --png face.png on face.png would replace the face.
    inputs = {"IMAGE": args.image, "--reference": args.reference, "--boxes": args.boxes,
              "--checkpoint": args.checkpoint}
    check_not_input(out, inputs, "--out")
    if args.png:
        check_figure_path(args.png, "--png")
        check_not_input(args.png, {**inputs, "the --out file": out}, "--png")
    check_device(args.device)
    check_class_index(args.class_index)
    check_explainer_arguments(args)
    # The image files' headers (a regular file, a format read, the pixel cap) before the
    # model is loaded: a bad file is refused in well under a second.
    from faceexp.data.decoding import probe_image

    probe_image(args.image)
    if args.reference:
        probe_image(args.reference)
    box = parse_box(args.box) if args.box else None
    reference_box = None
    if args.boxes:
        from faceexp.data.boxes import load_bounding_boxes

        boxes = load_bounding_boxes(args.boxes)
        box = _box_of(args.image, boxes, args.boxes)
        reference_box = _box_of(args.reference, boxes, args.boxes) if args.reference else None
    embedder, read, notice = load_network_embedder(args, "explain")
    image = read(args.image, box=box)
    reference = read(args.reference, box=reference_box) if args.reference else None
    if notice:
        print(notice, file=sys.stderr)
    explainer = Explainer(embedder, target=args.target, device=args.device,
                          **explainer_options(args))
    explanation = explainer.explain(image, reference=reference, class_index=args.class_index,
                                    seed=args.seed, progress=not args.quiet)
    extra = {"image": image}
    if box is not None:
        extra["box"] = list(box)
    if reference is not None:
        extra["reference_image"] = reference
        if reference_box is not None:
            extra["reference_box"] = list(reference_box)
    # The figure first: a --png that cannot be written leaves no result behind.
    if args.png:
        _figure(args.png, image, explanation, reference)
    from faceexp.explain.provenance import record_for

    explanation.provenance.update(record_for(embedder, args.image, box=box,
                                             reference=args.reference,
                                             reference_box=reference_box,
                                             checkpoint=args.checkpoint))
    out = explanation.save(out, **extra)
    fits = ", ".join(f"{layer} R2={r2:.2f}" for layer, r2 in zip(explanation.layers,
                                                                 explanation.r2))
    used = explanation.samples_used or args.samples
    stability = explanation.stability
    drawn = (f"{used} samples (auto: estimated agreement "
             f"{', '.join(f'{a:.2f}' for a in stability)})" if args.samples == "auto"
             and stability is not None else f"{used} samples")
    print(f"{out}: {len(explanation.layers)} heatmap(s) from {drawn}, "
          f"{int(explanation.segments.max()) + 1} superpixels ({fits})"
          + (f"; png {args.png}" if args.png else ""))
    return 0
