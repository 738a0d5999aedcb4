"""``faceexp explain``: LIME-for-verification heatmaps of one face image.

    faceexp explain face.jpg --model mobilenetv2 --checkpoint runs/mb2/final.pt \\
        --layers gap,softmax --out face.npz --png face.png
    faceexp explain a.jpg --reference b.jpg --model resnet50 --checkpoint r50.pt --out ab.npz

The image (and the reference) are read and preprocessed like the training data
(shorter side 129, central 113x113 crop). Without ``--checkpoint`` the network
is the ImageNet-initialised one (ImageNet head; ResNet50 is randomly initialised
where no ImageNet weights are installed): that is said on stderr.
"""
from __future__ import annotations

import sys

_ARCHS = ("mobilenetv2", "resnet50")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "explain", help="LIME heatmaps of which face regions an embedding depends on (paper II)",
        description="Explain one image: superpixels are blacked out at random, the cosine "
                    "similarity of each perturbed embedding to the image's own (or to "
                    "--reference's) is fitted by a weighted linear model, and the superpixel "
                    "coefficients are painted into a heatmap per layer.")
    p.add_argument("image", help="image file (any size; resized-and-cropped to 113x113)")
    p.add_argument("--reference", help="second image: explain the similarity of the pair")
    p.add_argument("--model", required=True, choices=_ARCHS, help="network architecture")
    p.add_argument("--checkpoint", help="faceexp checkpoint (default: ImageNet-initialised net)")
    p.add_argument("--layers", default="gap",
                   help="comma-separated layers or aliases (gap, softmax, logits, block3, "
                        "matlab:150, ...; see faceexp.models.layer_catalogue); default gap")
    p.add_argument("--pooling", default="flatten", choices=("flatten", "mean"),
                   help="how a (C, H, W) layer becomes a vector (default flatten)")
    p.add_argument("--target", default="cosine", choices=("cosine", "softmax"),
                   help="cosine similarity (default) or the softmax probability of "
                        "--class-index (original LIME; needs --layers softmax)")
    p.add_argument("--class-index", type=int,
                   help="class for --target softmax (default: the top class)")
    p.add_argument("--samples", type=int, default=1000, help="perturbed samples (default 1000)")
    p.add_argument("--segments", type=int, default=75, help="SLIC superpixels (default 75)")
    p.add_argument("--p-off", type=float, default=0.6,
                   help="probability of blacking out a superpixel (default 0.6)")
    p.add_argument("--sampling", default="bernoulli", choices=("bernoulli", "matlab"))
    p.add_argument("--kernel", default="matlab", choices=("matlab", "lime"))
    p.add_argument("--sigma", type=float, default=4.0, help="heatmap smoothing (default 4 px)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="perturbed images per forward pass (default: the fastest measured for "
                        "the model and device, faceexp.models.default_batch_size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network (faster for many samples; 5-20 s warm-up)")
    p.add_argument("--out", required=True, help="output .npz (heatmaps, layers, segments, ...)")
    p.add_argument("--png", help="also write a figure: image, superpixels, heatmap per layer")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _read_face(path):
    """(113, 113, 3) float32 in [0, 1], preprocessed as the training data."""
    from faceexp.data import SkipReport, load_image, preprocess

    report = SkipReport(warn=False)
    image = load_image(path, report=report)
    if image is None:
        reason = next(iter(report))[1] if len(report) else "cannot be decoded"
        raise ValueError(f"image file {str(path)!r}: {reason}")
    return preprocess(image, name=str(path)).transpose(1, 2, 0).copy()


def _figure(path, image, explanation, reference=None) -> None:
    """Image | superpixel boundaries | heatmap overlay per layer, side by side."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import mark_boundaries

    from faceexp.files import atomic_write

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


def run(args) -> int:
    from faceexp import checks
    from faceexp.cli.common import check_device, check_output_file
    from faceexp.explainer import Explainer
    from faceexp.targets import check_class_index
    from faceexp.models import Embedder, build_model, load_checkpoint

    # Everything that can be checked before minutes of work is checked first.
    layers = [x.strip() for x in args.layers.split(",") if x.strip()]
    if not layers:
        raise ValueError("--layers must name at least one layer, e.g. gap")
    check_output_file(args.out, "--out")
    out = check_output_file(args.out if str(args.out).endswith(".npz") else f"{args.out}.npz",
                            "--out")
    if args.png:
        check_output_file(args.png, "--png")
    check_device(args.device)
    check_class_index(args.class_index)
    checks.positive_int(args.samples, "--samples", 2)
    checks.positive_int(args.segments, "--segments", 2)
    image = _read_face(args.image)
    reference = _read_face(args.reference) if args.reference else None

    if args.checkpoint:
        model, _ = load_checkpoint(args.checkpoint, arch=args.model, device=args.device)
    else:
        print(f"faceexp explain: no --checkpoint given: explaining the ImageNet-initialised "
              f"{args.model} (1000-class ImageNet head), not a face model", file=sys.stderr)
        model = build_model(args.model, 1000, weights="imagenet")
    embedder = Embedder(model, layers, pooling=args.pooling, device=args.device,
                        compile=args.compile)
    explainer = Explainer(embedder, target=args.target, n_samples=args.samples,
                          n_segments=args.segments, p_off=args.p_off, sampling=args.sampling,
                          kernel=args.kernel, sigma=args.sigma, batch_size=args.batch_size,
                          device=args.device)
    explanation = explainer.explain(image, reference=reference, class_index=args.class_index,
                                    seed=args.seed, progress=not args.quiet)
    extra = {"image": image}
    if reference is not None:
        extra["reference_image"] = reference
    # The figure first: a --png that cannot be written leaves no result behind.
    if args.png:
        _figure(args.png, image, explanation, reference)
    out = explanation.save(out, **extra)
    fits = ", ".join(f"{layer} R2={r2:.2f}" for layer, r2 in zip(explanation.layers,
                                                                 explanation.r2))
    print(f"{out}: {len(explanation.layers)} heatmap(s) from {args.samples} samples, "
          f"{int(explanation.segments.max()) + 1} superpixels ({fits})"
          + (f"; png {args.png}" if args.png else ""))
    return 0
