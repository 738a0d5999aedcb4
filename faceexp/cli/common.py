"""What the subcommands share: checks of outputs and devices, network, explainer and data-set options.

A wrong ``--out`` or ``--device`` is reported in one line before minutes of work,
not after them. The data-set options (``ROOT``, ``--boxes``, ``--pose-list``) are read
the same way by ``pose``, ``verify`` and ``explain-set`` (:func:`dataset_images`).
"""
from __future__ import annotations

import argparse

from pathlib import Path


def check_output_file(path, option: str = "--out") -> Path:
    """``path`` as a writable file path: not an existing folder, parent a folder
    (created when missing). ValueError naming ``option`` otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a directory; give a file path")
    parent = path.parent
    for folder in (parent, *parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"{option} {str(path)!r}: {str(folder)!r} is a file, not a "
                                 "directory")
            break
    return path


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same path once symlinks and ``..`` are
    resolved, or (where both exist) the same inode (hard links, bind mounts)."""
    try:
        if a.resolve() == b.resolve():
            return True
    except (OSError, RuntimeError):      # a symlink loop: compare what the OS says
        pass
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def check_not_input(path, inputs: dict, option: str = "--out") -> Path:
    """Refuse an output that is one of the inputs (it would be overwritten by the result).

    Parameters
    ----------
    path : path-like
        The output file.
    inputs : dict
        What each input is called in a message (``"IMAGE"``, ``"--reference"``) -> its
        path; None values are skipped. Another output of the same command may be listed
        too (``"the --out file"``: a name with a space is used as it is).
    option : str
        The output's option, named in the message.

    Raises
    ------
    ValueError
        One line naming the option and the input it would overwrite.
    """
    path = Path(path)
    for name, given in inputs.items():
        if given is not None and _same_file(path, Path(given)):
            what = name if " " in name else f"the input {name}"
            raise ValueError(f"{option} {str(path)!r} is {what} ({str(given)!r}): writing "
                             f"{option} would overwrite it; give {option} another path")
    return path


def figure_formats() -> dict:
    """The file formats matplotlib writes (extension -> description), e.g. png, pdf, svg."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return FigureCanvasAgg.get_supported_filetypes()


def check_figure_path(path, option: str = "--png") -> Path:
    """A figure's path whose extension matplotlib can write (none: PNG); ValueError naming
    ``option`` and the formats otherwise."""
    path = check_output_file(path, option)
    extension = path.suffix.lstrip(".").lower()
    formats = figure_formats()
    if extension and extension not in formats:
        raise ValueError(f"{option} {str(path)!r}: matplotlib cannot write {extension!r} "
                         f"figures; end the name with one of {', '.join(sorted(formats))}")
    return path


def check_output_folder(path, option: str = "--out") -> Path:
    """``path`` as a folder to write into: ValueError naming ``option`` when it is a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a file; give a folder (new or existing)")
    check_output_file(path / "x", option)
    return path


def check_device(device, option: str = "--device") -> str | None:
    """A torch device the machine has: ValueError for an unknown name or a missing GPU."""
    if device is None:
        return None
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ValueError(f"{option} must be a torch device such as cpu or cuda, got "
                         f"{device!r}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{option} {device!r}: CUDA is not available on this machine; use "
                         f"{option} cpu")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{option} {device!r}: MPS is not available on this machine; use "
                         f"{option} cpu")
    return str(device)


#: The paper's CNNs (layers, checkpoints) and the real face recognisers (one embedding);
#: the names of faceexp.recognisers.available(), listed here so that --help imports no torch.
ARCHS = ("mobilenetv2", "resnet50")
MODELS = ("sface", "facenet-casia", "dlib", *ARCHS)


def add_network_arguments(parser) -> None:
    """--model, --checkpoint, --layers, --pooling, --device, --compile."""
    parser.add_argument("--model", default="sface", choices=MODELS,
                        help="a face recogniser (sface, the default; facenet-casia; dlib) or one "
                             "of the paper's CNNs (mobilenetv2, resnet50, with --checkpoint)")
    parser.add_argument("--checkpoint",
                        help="faceexp checkpoint of mobilenetv2/resnet50 (without it: the "
                             "ImageNet-initialised net, which has never seen a face)")
    parser.add_argument("--layers", default="gap",
                        help="comma-separated layers or aliases (gap, softmax, logits, block3, "
                             "matlab:150, ...; see faceexp.models.layer_catalogue); default gap")
    parser.add_argument("--pooling", default="flatten", choices=("flatten", "mean"),
                        help="how a (C, H, W) layer becomes a vector (default flatten)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the network (faster for many samples; 5-20 s "
                             "warm-up)")
    parser.add_argument("--backend", default="auto",
                        choices=("auto", "torch", "onnxruntime", "openvino"),
                        help="engine of the paper's CNNs and FaceNet: auto (default) runs, on "
                             "a CPU, the installed engine measured fastest for the network "
                             "(onnxruntime or OpenVINO), torch elsewhere")


def add_explainer_arguments(parser) -> None:
    """The explainer's options: --samples, --segments, --p-off, --sampling, --kernel, ..."""
    parser.add_argument("--samples", type=samples_value, default=1000,
                        help="perturbed samples (default 1000), or 'auto': draw in rounds and "
                             "stop when the map has converged (--tolerance), at most "
                             "--max-samples")
    parser.add_argument("--tolerance", type=float, default=0.1,
                        help="with --samples auto: stop when the estimated rank agreement with "
                             "the infinite-sample map reaches 1 - tolerance (default 0.1)")
    parser.add_argument("--max-samples", type=int, default=1000,
                        help="with --samples auto: the most samples drawn (default 1000)")
    parser.add_argument("--segments", type=int, default=75, help="SLIC superpixels (default 75)")
    parser.add_argument("--p-off", type=float, default=0.6,
                        help="probability of blacking out a superpixel (default 0.6)")
    parser.add_argument("--sampling", default="bernoulli", choices=("bernoulli", "matlab"))
    parser.add_argument("--kernel", default="matlab", choices=("matlab", "lime"))
    parser.add_argument("--sigma", type=float, default=4.0,
                        help="heatmap smoothing (default 4 px)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="perturbed images per forward pass (default: the fastest measured "
                             "for the model and device, faceexp.models.default_batch_size)")
    parser.add_argument("--seed", type=int, default=0)


def samples_value(text: str):
    """--samples: a whole number, or "auto" (stop when converged)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a whole number or 'auto', got {text!r}") from None


def layer_list(text: str) -> list[str]:
    """The --layers option as a list; ValueError when it names none."""
    layers = [x.strip() for x in text.split(",") if x.strip()]
    if not layers:
        raise ValueError("--layers must name at least one layer, e.g. gap")
    return layers


#: The largest input of the CLI's models (FaceNet-CASIA's 160x160), for --batch-size's estimate.
_LARGEST_INPUT = (3, 160, 160)


def check_explainer_arguments(args) -> None:
    """Refuse impossible explainer options before any work: values out of range, and sizes
    whose memory exceeds the limit (:mod:`faceexp.core.limits`)."""
    from faceexp.core import checks
    from faceexp.core.limits import check_memory, explanation_memory

    if args.samples == "auto":
        checks.positive_int(args.max_samples, "--max-samples", 3)
        if not 0 < args.tolerance < 1:
            raise ValueError(f"--tolerance must lie strictly between 0 and 1 (1 - the target "
                             f"rank agreement, e.g. 0.1), got {args.tolerance}")
    else:
        checks.positive_int(args.samples, "--samples", 2)
    checks.positive_int(args.segments, "--segments", 2)
    largest = args.max_samples if args.samples == "auto" else args.samples
    if args.batch_size is not None:
        checks.positive_int(args.batch_size, "--batch-size")
    n_layers = len(layer_list(args.layers)) if getattr(args, "layers", None) else 1
    check_memory(explanation_memory(largest, args.segments, n_layers),
                 f"--samples {largest} (with --segments {args.segments})",
                 lower="--samples or --segments")
    if args.batch_size is not None:
        # The perturbed batch and its padded copy, float32.
        channels, height, width = _LARGEST_INPUT
        check_memory(2 * 4 * args.batch_size * channels * height * width,
                     f"--batch-size {args.batch_size}", lower="--batch-size")


def explainer_options(args) -> dict:
    """Keyword options of :class:`faceexp.explain.explainer.Explainer` from the arguments."""
    options = dict(n_samples=args.samples, n_segments=args.segments, p_off=args.p_off,
                   sampling=args.sampling, kernel=args.kernel, sigma=args.sigma,
                   batch_size=args.batch_size)
    if args.samples == "auto":
        options.update(tolerance=args.tolerance, max_samples=args.max_samples)
    return options


def load_network_embedder(args, command: str, device=None):
    """The embed callable the arguments ask for, and how to read an image for it.

    Returns
    -------
    (embed, read, notice)
        ``embed``: a face recogniser (:func:`faceexp.recognisers.load`) or a
        :class:`faceexp.models.Embedder` of one of the paper's CNNs; ``read``:
        ``read(path, box=None) -> (H, W, 3)`` float image in that model's
        geometry (the recogniser's alignment, of the face box grown by
        :data:`faceexp.data.preprocessing.BOX_MARGIN` when ``box`` is
        given; or the paper's crop of the box, 113x113); ``notice``: a line
        for stderr once the inputs are read, or None. Without ``--checkpoint`` a
        paper CNN is the ImageNet-initialised one, and the notice says so: it has
        never seen a face.
    """
    from faceexp.data.preprocessing import preprocessed_image
    from faceexp.models import Embedder, build_model, load_checkpoint

    device = args.device if device is None else device
    layers = layer_list(args.layers)
    if args.model not in ARCHS:
        from faceexp import recognisers

        if args.checkpoint:
            raise ValueError(f"--checkpoint is for mobilenetv2/resnet50; {args.model} brings "
                             "its own weights")
        if layers not in (["gap"], ["embedding"]):
            raise ValueError(f"--layers: {args.model} gives one embedding (layer 'embedding'), "
                             f"got {layers}; intermediate layers need mobilenetv2/resnet50")
        from faceexp.verify.verification import align_images

        # --backend picks FaceNet's engine; SFace is onnxruntime's, dlib is dlib's.
        options = {"backend": args.backend} if args.model == "facenet-casia" else {}
        recogniser = recognisers.load(args.model, device=device, **options)

        def read(path, box=None):
            (face,) = align_images(recogniser, [path], None if box is None else [box],
                                   errors="raise")
            return face

        return recogniser, read, None
    notice = None
    if args.checkpoint:
        model, _ = load_checkpoint(args.checkpoint, arch=args.model, device=device)
    else:
        notice = (f"faceexp {command}: no --checkpoint given: explaining the ImageNet-"
                  f"initialised {args.model} (1000-class ImageNet head), not a face model")
        model = build_model(args.model, 1000, weights="imagenet")
    embedder = Embedder(model, layers, pooling=args.pooling, device=device,
                        compile=args.compile, backend=args.backend)
    return embedder, preprocessed_image, notice


# --------------------------------------------------------------------------- #
# Data sets
# --------------------------------------------------------------------------- #
def add_dataset_arguments(parser, *, pose_list_help: str) -> None:
    """ROOT's companions: --boxes CSV and --pose-list TXT."""
    parser.add_argument("--boxes", metavar="CSV",
                        help="face boxes of the images read (VGGFace2's loose_bb_test.csv or "
                             "loose_bb_train.csv: NAME_ID,X,Y,W,H); default: the file of that "
                             "name found under ROOT (ROOT, meta/, bb_landmark/, one level down)")
    parser.add_argument("--pose-list", metavar="TXT", help=pose_list_help)


def parse_box(text: str, option: str = "--box") -> tuple[int, int, int, int]:
    """``"X,Y,W,H"`` -> four integers (pixels); ValueError naming ``option`` otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        x, y, w, h = (int(round(float(p))) for p in parts)
    except ValueError:
        raise ValueError(f"{option} must be four numbers X,Y,W,H (pixels: top-left corner, "
                         f"width, height), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"{option} {text!r}: width and height must be positive")
    return x, y, w, h


def dataset_images(args, *, report=None):
    """The images ``pose``, ``verify`` and ``explain-set`` read, from ``args.root``,
    ``args.boxes`` and ``args.pose_list`` (:func:`faceexp.data.resolve_dataset`).

    ROOT omitted: the ORL faces. A data set root with ``test/`` (VGGFace2 as
    released) or a pose list: the test images (exactly the listed ones, with the
    list's poses, when there is a list: :meth:`~faceexp.data.Dataset.held_out_frame`).
    Any other root (one folder per identity, e.g. ``/data/vggface2/train``): all its
    images. ``--boxes`` replaces the box file of the folder read; without it the
    released file is used when found.

    Returns
    -------
    (dataset, frame, source)
        :class:`faceexp.data.Dataset`, the images (with box columns when there are
        boxes, and ``pose`` from a list) and a line naming what was read.
    """
    from faceexp.data.layouts import resolve_dataset

    if args.root is None and (args.boxes or args.pose_list):
        raise ValueError("--boxes and --pose-list need ROOT: the ORL faces (ROOT omitted) have "
                         "neither")
    dataset = resolve_dataset(args.root, pose_list=args.pose_list)
    if args.boxes:
        which = "test_boxes" if dataset.test_root is not None else "boxes"
        dataset = resolve_dataset(args.root, pose_list=args.pose_list, **{which: args.boxes})
    if dataset.has_test_set:
        frame = dataset.held_out_frame(report=report)
        folder = dataset.test_root or dataset.train_root
    else:
        frame = dataset.frame("train", report=report)
        folder = dataset.train_root
    if folder is None:
        return dataset, frame, dataset.name
    parts = [f"{dataset.name} ({folder})"]
    if dataset.pose_list is not None:
        parts.append(f"images and poses of {dataset.pose_list}")
    box_file = dataset.test_boxes_file if dataset.test_root is not None else dataset.boxes_file
    if box_file is not None:
        parts.append(f"boxes of {box_file}")
    return dataset, frame, ", ".join(parts)
