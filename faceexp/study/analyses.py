"""The paper's analyses, end to end, as functions the book's notebooks call.

A :class:`Study` holds the trained networks and the labelled images; each
``*_analysis`` function runs one section of the paper on it (explanations and
embeddings come from the :mod:`faceexp.study.artifacts` cache) and returns plain
DataFrames and arrays for :mod:`faceexp.report.plots`. The notebooks set parameters,
call these and show figures; what the pages say about them (captions, readings,
the results-page summaries) is :mod:`faceexp.report`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from faceexp.study import artifacts as fcache
from faceexp.study import cache as fkeys
from faceexp.explain import explainer as fexplain
from faceexp.evaluate import faithfulness as ffaith
from faceexp.evaluate import heatmaps as fheat
from faceexp.verify import fusion as ffusion
from faceexp import models as fmodels
from faceexp.verify import protocol as fprot
from faceexp.evaluate import removal as fremoval
from faceexp.evaluate import stability as fstab


def resolve_device(device) -> str:
    """``"auto"``/None -> "cuda" when available else "cpu"; anything else as given.

    The availability probe is asked with its warnings caught: on a machine with a CUDA
    build of torch and no driver it warns instead of answering quietly False.
    """
    if device in (None, "auto"):
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            available = torch.cuda.is_available()
        return "cuda" if available else "cpu"
    return str(device)


@dataclass
class Study:
    """The networks and images every chapter of the book works on.

    Attributes
    ----------
    runs : dict
        ``arch -> faceexp.models.training.TrainResult`` (trained once, then read).
    images : pandas.DataFrame
        Every image with its ``split`` (train / val / test) and, for the test
        identities, its ``pose``, ``looks`` and ``yaw_proxy``.
    artifacts : Path
    dataset : str
    device : str
    options : dict
        The training options used.
    """

    runs: dict
    images: pd.DataFrame
    artifacts: Path
    dataset: str
    device: str = "cpu"
    options: dict = field(default_factory=dict)
    recognisers: list = field(default_factory=list)
    _subjects: dict = field(default_factory=dict, repr=False)

    @property
    def models(self) -> list:
        """The paper's CNNs trained here, in order."""
        return list(self.runs)

    @property
    def subjects(self) -> list:
        """Everything the book explains: the real recognisers first, then the paper's CNNs."""
        return list(self.recognisers) + self.models

    def subject(self, name: str):
        """The :mod:`faceexp.study.subjects` object of a recogniser or trained network."""
        if name not in self._subjects:
            from faceexp.study import subjects as fsub

            if name in self.recognisers:
                self._subjects[name] = fsub.RecogniserSubject(name, self.artifacts)
            elif name in self.runs:
                self._subjects[name] = fsub.PaperSubject(name, self.checkpoint(name), device=self.device)
            else:
                raise ValueError(f"{name!r} is not in this study: choose one of {self.subjects}")
        return self._subjects[name]

    def checkpoint(self, arch: str) -> Path:
        return Path(self.runs[arch].final_checkpoint)

    def split(self, name: str) -> pd.DataFrame:
        """Images of one split ("train", "val" or "test"), index reset."""
        return self.images[self.images["split"] == name].reset_index(drop=True)

    def embedder(self, arch: str, layers=("gap",), **options):
        """An :class:`faceexp.models.Embedder` of a trained network."""
        return fmodels.load_embedder(self.checkpoint(arch), layers, device=self.device, **options)

    def class_indices(self, frame: pd.DataFrame) -> np.ndarray:
        """Training class index of each row's identity (for softmax targets)."""
        classes = self.runs[self.models[0]].classes
        lookup = {c: i for i, c in enumerate(classes)}
        missing = sorted(set(frame["identity"]) - set(lookup))
        if missing:
            raise ValueError(f"identities {missing[:5]} were not trained on; softmax targets "
                             "exist only for training identities")
        return frame["identity"].map(lookup).to_numpy()

    def summary(self) -> pd.DataFrame:
        """Identities and images per split."""
        g = self.images.groupby("split", sort=False)
        return pd.DataFrame({"identities": g["identity"].nunique(), "images": g.size()}) \
            .reindex(["train", "val", "test"])

    def training_table(self) -> pd.DataFrame:
        """Per network: its initial weights (as its run recorded them, see
        :func:`faceexp.models.initial_weights.init_weights_text`: ImageNet, random, or fine-tuned from an
        MS1M-style pre-training run), epochs, final/best validation accuracy, training time."""
        from faceexp.models.initial_weights import init_weights_text

        rows = []
        for a, run in self.runs.items():
            m = run.metrics
            rows.append({"network": a,
                         "initial weights": init_weights_text(getattr(run, "init_weights", None)),
                         "epochs": len(m), "final lr": m["lr"].iloc[-1],
                         "val. accuracy (final)": m["val_acc"].iloc[-1],
                         "val. accuracy (best)": m["val_acc"].max(),
                         "train accuracy (final)": m["train_acc"].iloc[-1],
                         "training time (s)": round(float(m["seconds"].sum()), 1)})
        return pd.DataFrame(rows).set_index("network")

    def metrics(self) -> dict:
        """``arch -> DataFrame`` of each network's training metrics, one row per epoch."""
        return {a: run.metrics for a, run in self.runs.items()}

    def test_images(self, images_per_identity: int | None = None) -> pd.DataFrame:
        """The first ``images_per_identity`` test images of every test identity
        (all when None), keeping every non-frontal one."""
        test = self.split("test")
        if images_per_identity is None:
            return test
        rank = test.groupby("identity").cumcount()
        keep = (rank < images_per_identity) | (test["pose"].fillna("frontal") != "frontal")
        return test[keep].reset_index(drop=True)

    def one_per_identity(self, splits=("train", "val"), n_identities: int | None = None
                         ) -> pd.DataFrame:
        """One image of each training identity from each split (paper IV-A)."""
        classes = self.runs[self.models[0]].classes
        if n_identities is not None:
            classes = classes[:n_identities]
        frame = self.images[self.images["split"].isin(splits)
                            & self.images["identity"].isin(classes)]
        return frame.groupby(["split", "identity"], sort=False).head(1).reset_index(drop=True)


def prepare_study(models=("mobilenetv2", "resnet50"), artifacts="artifacts", *,
                  recognisers=(), data_root=None, pretrain_root=None, seed=0, device="auto",
                  progress=True, **train_options) -> Study:
    """Train (or read) the networks and label the test images' poses.

    Parameters
    ----------
    models : sequence of str
        Architectures, e.g. ``["mobilenetv2", "resnet50"]``.
    recognisers : sequence of str
        Pretrained face recognisers explained beside them (and first), e.g.
        ``["sface", "facenet-casia", "dlib"]`` (:mod:`faceexp.study.subjects`).
    artifacts : path
        Cache folder (trained runs, poses, explanations, embeddings).
    data_root : path, optional
        One folder per identity; None uses ORL.
    pretrain_root : path, optional
        The paper's two training steps: MS1M-style aligned 113x113 crops, one
        folder per identity, trained on first; ``data_root`` then fine-tunes
        that network (:func:`faceexp.study.artifacts.trained_network`). None: one
        step, from ImageNet weights (or random ones).
    seed : int
        Seed of the identity split, the hold-out and training.
    device : {"auto", "cpu", "cuda", ...}
    **train_options
        :class:`faceexp.models.training.TrainConfig` fields (``max_epochs``,
        ``batch_size``, ...); None values are dropped (paper defaults). A
        field may differ per network: a dict ``{arch: value}`` (see
        :func:`per_model_value`).

    Returns
    -------
    Study
    """
    if isinstance(models, str) or not all(isinstance(m, str) for m in models):
        raise ValueError(f"models must be a list of architectures, e.g. "
                         f"{list(fmodels.ARCHITECTURES)}, got {models!r}")
    models = list(models)
    from faceexp.recognisers import PRETRAINED

    if isinstance(recognisers, str) or any(r not in PRETRAINED for r in recognisers or ()):
        raise ValueError(f"recognisers must be a list of some of {list(PRETRAINED)}, got {recognisers!r}")
    unknown = [m for m in models if m not in fmodels.ARCHITECTURES]
    if unknown:
        raise ValueError(f"models must be some of {fmodels.ARCHITECTURES}, got unknown {unknown}")
    device = resolve_device(device)
    options = {k: v for k, v in train_options.items() if v is not None}
    runs = {}
    for arch in models:
        own = {k: per_model_value(v, arch, k, models) for k, v in options.items()}
        runs[arch] = fcache.trained_network(arch, artifacts, progress=progress,
                                          pretrain_root=pretrain_root,
                                          data_root=data_root, seed=seed, device=device,
                                          **{k: v for k, v in own.items() if v is not None})
    images = runs[models[0]].split
    test = images[images["split"] == "test"]
    labelled = fcache.pose_labels(test, artifacts, progress=progress)
    listed = "pose" in images and images.loc[images["split"] == "test", "pose"].notna().any()
    if listed:  # poses from the data set's pose list (VGGFace2-Pose); MTCNN only says where a face looks
        extra = labelled[["path", "looks", "yaw_proxy"]]
    else:
        extra = labelled[["path", "pose", "looks", "yaw_proxy"]]
        images = images.drop(columns=["pose", "template"], errors="ignore")
    images = images.merge(extra, on="path", how="left")
    from faceexp.data import image_sets as fdata

    dataset = fdata.ORL_NAME if data_root is None else fdata.resolve_dataset(data_root).name
    dataset += " (poses from the data set's pose list)" if listed else ""
    return Study(runs=runs, images=images, artifacts=Path(artifacts), dataset=dataset,
                 device=device, options=dict(options, seed=seed, pretrain_root=pretrain_root),
                 recognisers=list(recognisers or ()))


def per_model_value(value, arch: str, name: str, models=fmodels.ARCHITECTURES):
    """``arch``'s value of an option given for all networks or per network.

    ``value`` is used as it is, unless it is a dict ``{arch: value}`` (papermill
    passes the YAML mapping ``{mobilenetv2: 6, resnet50: 12}`` as one); then every
    network in ``models`` must be given a value, and only known architectures.
    """
    if not isinstance(value, dict):
        return value
    unknown = sorted(set(value) - set(fmodels.ARCHITECTURES))
    missing = [m for m in models if m not in value]
    if unknown or missing:
        raise ValueError(f"{name}: per-network values must name each of {list(models)}; "
                         f"unknown {unknown}, missing {missing}")
    return value[arch]


def example_triplet(frame: pd.DataFrame) -> pd.DataFrame:
    """A probe, another image of the same identity and an image of the next
    identity: rows 'probe', 'genuine', 'impostor' of ``frame``."""
    ids = list(dict.fromkeys(frame["identity"]))
    first = frame[frame["identity"] == ids[0]]
    if len(first) < 2 or len(ids) < 2:
        raise ValueError("frame needs an identity with two images and a second identity")
    other = frame[frame["identity"] == ids[1]]
    out = pd.concat([first.iloc[:2], other.iloc[:1]])
    return out.assign(role=["probe", "genuine", "impostor"]).reset_index(drop=True)


# --------------------------------------------------------------- explaining


def explain_study(study: Study, frame: pd.DataFrame, *, layers=("gap",), target="cosine",
                  seed=0, progress=True, **options) -> dict:
    """Explain ``frame`` with every network of the study -> ``{arch: HeatmapSet}``.

    ``target="softmax"`` (or a dict target with a "softmax" layer) explains each
    image's training identity.
    """
    classes = study.class_indices(frame) if fexplain.needs_class_index(target) else None
    return {arch: fcache.explain_images(study.checkpoint(arch), frame, study.artifacts,
                                      layers=layers, target=target, class_indices=classes,
                                      seed=seed, device=study.device, progress=progress,
                                      **options)
            for arch in study.models}


def _looks(frame: pd.DataFrame) -> np.ndarray:
    """Per-image "left"/"right" for mirroring, only for non-frontal faces (paper Fig. 3)."""
    if "looks" not in frame or "pose" not in frame:
        return None
    return np.where(frame["pose"].fillna("frontal") == "frontal", "unknown",
                    frame["looks"].fillna("unknown"))


@dataclass
class GapSoftmax:
    """Result of :func:`gap_vs_softmax_analysis` (paper IV-A, Fig. 2)."""

    averages: pd.DataFrame  # network, split, source, count, heatmap
    faces: pd.DataFrame  # split, count, image
    psnr: pd.DataFrame  # per image: network, split, identity, psnr
    psnr_mean: pd.DataFrame  # network, split: mean PSNR (dB), ci_low, ci_high, n (images)
    maps: dict = field(default_factory=dict)  # network -> (gap (N, H, W), softmax (N, H, W))
    uninformative: pd.DataFrame = None  # per network, source, split: images, uninformative, mean R²


#: Seed distance between explanations that must not share perturbations (GAP vs softmax,
#: one network vs another): image i of source k is explained with seed + i + k * offset.
SOURCE_SEED_OFFSET = 100_000


def gap_vs_softmax_analysis(study: Study, *, n_identities=None, seed=0, progress=True,
                            **options) -> GapSoftmax:
    """GAP-embedding vs softmax heatmaps on training and validation images.

    A heatmap that is constant (it carries no information: the target did not move
    under perturbation, or no coefficient was positive) is left out of the averages and
    of the PSNR means; ``uninformative`` counts them per network, source and set, with
    the fits' mean R² (near 0 when the probability barely moves).
    """
    frame = study.one_per_identity(("train", "val"), n_identities)
    # independent perturbations for the two sources (seeds SOURCE_SEED_OFFSET apart), so
    # their agreement is not built in by shared samples
    with warnings.catch_warnings():
        # a constant map is counted in ``uninformative`` and said on the page instead
        warnings.simplefilter("ignore", fexplain.ExplanationWarning)
        gaps = explain_study(study, frame, layers=["gap"], target="cosine", seed=seed,
                             progress=progress, **options)
        softs = explain_study(study, frame, layers=["softmax"], target="softmax",
                              seed=seed + SOURCE_SEED_OFFSET, progress=progress, **options)
    maps, groups, psnr, pairs, empty = [], [], [], {}, []
    for arch in study.models:
        hs = gaps[arch]
        gap, soft = hs.layer("gap"), softs[arch].layer("softmax")
        r2s = {"gap": hs.r2[:, 0], "softmax": softs[arch].r2[:, 0]}
        pairs[arch] = (gap, soft)
        for source, stack, layer in (("GAP embedding", gap, "gap"), ("softmax", soft, "softmax")):
            informative = stack.reshape(len(stack), -1).std(axis=1) > 0
            maps.append(stack[informative])
            groups.append(hs.frame[informative].assign(network=arch, source=source))
            r2 = r2s[layer]
            for split in dict.fromkeys(hs.frame["split"]):
                rows = (hs.frame["split"] == split).to_numpy()
                empty.append({"network": arch, "source": source, "split": split,
                              "images": int(rows.sum()),
                              "uninformative": int((rows & ~informative).sum()),
                              "mean R²": float(np.nanmean(r2[rows]))})
        keep = (gap.reshape(len(gap), -1).std(axis=1) > 0) & (soft.reshape(len(soft), -1).std(axis=1) > 0)
        if keep.any():       # else every pair has a constant map: counted in ``uninformative``
            psnr.append(fheat.psnr_between(gap[keep], soft[keep],
                                           hs.frame[keep].reset_index(drop=True))
                        .assign(network=arch))
    heat = np.concatenate(maps)
    table = pd.concat(groups, ignore_index=True)
    averages = fheat.average_heatmaps(heat, table, by=["network", "split", "source"])
    first = gaps[study.models[0]]
    faces = fheat.average_faces(first.images, first.frame, by=["split"])
    psnr = (pd.concat(psnr, ignore_index=True) if psnr
            else pd.DataFrame(columns=["network", "split", "psnr"]))
    mean = psnr_means(psnr, seed=seed)
    return GapSoftmax(averages=averages, faces=faces, psnr=psnr, psnr_mean=mean, maps=pairs,
                      uninformative=pd.DataFrame(empty).set_index(["network", "source", "split"]))


def psnr_means(psnr: pd.DataFrame, by=("network", "split"), *, seed=0) -> pd.DataFrame:
    """Mean PSNR per group with its 95% bootstrap interval over images
    (:func:`faceexp.evaluate.uncertainty.mean_interval`); identical maps (infinite PSNR) are left
    out and counted in ``n_excluded``.

    Returns one row per group: the ``by`` columns, ``mean``, ``ci_low``, ``ci_high``
    (dB), ``n``, ``n_excluded``."""
    from faceexp.evaluate import uncertainty as func

    rows = []
    for key, part in psnr.groupby(list(by), sort=False):
        values = part["psnr"].replace([np.inf, -np.inf], np.nan).to_numpy(dtype=float)
        ci = func.mean_interval(values, seed=seed).iloc[0]
        rows.append({**dict(zip(by, key)), "mean": ci["mean"], "ci_low": ci["ci_low"],
                     "ci_high": ci["ci_high"], "n": int(ci["n"]),
                     "n_excluded": int(ci["n_excluded"])})
    return pd.DataFrame(rows, columns=[*by, "mean", "ci_low", "ci_high", "n", "n_excluded"])


@dataclass
class NetworkComparison:
    """Result of :func:`compare_networks_analysis` (paper IV-B, Figs. 3-5)."""

    heatmaps: dict  # name -> HeatmapSet (layers: sweep layers, embedding last)
    averages: pd.DataFrame  # network, pose, count, heatmap (embedding layer, faces looking left)
    faces: pd.DataFrame  # network, pose, count, image
    psnr: pd.DataFrame  # per image and pair of subjects in one frame: pair, a, b, psnr, pose ...
    pair_table: pd.DataFrame  # per pair: images, median and mean PSNR (dB)
    histograms: pd.DataFrame
    examples: pd.DataFrame  # first pair, per pose: max / average / min PSNR rows
    example_pair: tuple = ()


def sweep_layers(arch: str) -> list:
    """The layers explained for every test image: the 16 block ends and GAP."""
    return fmodels.block_ends(arch) + ["gap"]


def explain_test_images(study: Study, frame: pd.DataFrame, *, names=None, seed=0, progress=True,
                        **options) -> dict:
    """Explain the test images once for chapters 4, 6 and 7, with every subject of the
    study (or ``names``): its sweep layers (block ends, embedding last) from one pass.

    Returns ``{name: HeatmapSet}``; a recogniser leaves out photos it finds no face in.
    """
    names = study.subjects if names is None else list(names)
    out = {}
    for name in names:
        # every network draws its own perturbations (seeds SOURCE_SEED_OFFSET apart), so
        # that agreement between two networks' heatmaps is not built in by shared samples
        subject = study.subject(name)
        k = study.subjects.index(name)
        out[name] = fcache.explain_subject(subject, frame, study.artifacts,
                                           layers=subject.sweep_layers,
                                           seed=seed + k * SOURCE_SEED_OFFSET,
                                           progress=progress, **options)
    return out


def _same_frame(study: Study, a: str, b: str) -> bool:
    return study.subject(a).kind == study.subject(b).kind


def comparable_pairs(study: Study, names=None) -> list:
    """Pairs of subjects whose heatmaps share a frame (recognisers with recognisers in the
    canonical crop, the paper's CNNs with each other), in the study's order."""
    names = study.subjects if names is None else list(names)
    return [(a, b) for k, a in enumerate(names) for b in names[k + 1:] if _same_frame(study, a, b)]


def compare_networks_analysis(study: Study, heatmaps: dict, *, bins=15) -> NetworkComparison:
    """Average heatmaps per pose and subject, and per-image PSNR between every two subjects
    whose heatmaps share a frame (:func:`comparable_pairs`)."""
    averages, faces = [], []
    for name, hs in heatmaps.items():
        table = hs.frame.assign(network=name)
        averages.append(fheat.average_heatmaps(hs.embedding, table, by=["network", "pose"],
                                               looks=_looks(table)))
        faces.append(fheat.average_faces(hs.images, table, by=["network", "pose"],
                                         looks=_looks(table)))
    psnr = []
    for a, b in comparable_pairs(study, list(heatmaps)):
        ha, hb = heatmaps[a], heatmaps[b]
        both = ha.frame[["path"]].reset_index().merge(hb.frame[["path"]].reset_index(), on="path")
        part = fheat.psnr_between(ha.embedding[both["index_x"]], hb.embedding[both["index_y"]],
                                  ha.frame.iloc[both["index_x"]].reset_index(drop=True))
        psnr.append(part.assign(pair=f"{a} vs {b}", a=a, b=b,
                                position_a=both["index_x"].to_numpy(),
                                position_b=both["index_y"].to_numpy()))
    psnr = pd.concat(psnr, ignore_index=True) if psnr else None
    pair_table = histograms = examples = None
    example_pair = ()
    if psnr is not None:
        finite = psnr.replace([np.inf], np.nan)
        pair_table = finite.groupby("pair", sort=False)["psnr"].agg(
            images="count", median="median", mean="mean").round(2)
        histograms = fheat.psnr_histograms(psnr, by="pair", bins=bins)
        first = psnr[psnr["pair"] == psnr["pair"].iloc[0]]
        example_pair = (first["a"].iloc[0], first["b"].iloc[0])
        examples = fheat.psnr_examples(first.drop(columns=["pair", "a", "b"]).reset_index(drop=True),
                                       by="pose")
        # psnr_examples gives positions in ``first``; map them to each set's own positions
        examples["position_a"] = first["position_a"].to_numpy()[examples["position"].to_numpy()]
        examples["position_b"] = first["position_b"].to_numpy()[examples["position"].to_numpy()]
    return NetworkComparison(heatmaps=heatmaps, averages=pd.concat(averages, ignore_index=True),
                             faces=pd.concat(faces, ignore_index=True), psnr=psnr,
                             pair_table=pair_table, histograms=histograms, examples=examples,
                             example_pair=example_pair)


@dataclass
class SeedFloor:
    """Result of :func:`seed_floor`: how much two seeds of one network disagree."""

    floor: pd.DataFrame  # per network: psnr, ci_low, ci_high, n, n_constant, n_identical
    per_image: dict  # network -> (K,) PSNR between the two seeds
    against: pd.DataFrame  # per pair: between, floor, difference, ci_low, ci_high, reading


def seed_floor(study: Study, frame: pd.DataFrame, heatmaps: dict, comparison=None, *,
               n_images=8, seed=0, seed_offset=1000, progress=True, **options) -> SeedFloor:
    """The seed-to-seed noise floor of the heatmap PSNR, and every between-network PSNR
    against it.

    The first ``n_images`` rows of ``frame`` are explained again by every network of
    ``heatmaps`` with seeds shifted by ``seed_offset`` (independent perturbations, the
    same superpixels' algorithm and settings ``options``); the PSNR between the two
    explanations of an image is the floor: what chance alone makes two heatmaps of one
    network differ. Each pair of networks of ``comparison`` (a
    :class:`NetworkComparison`) is then compared with the mean floor of its two networks
    (:func:`faceexp.evaluate.uncertainty.relative_to_floor`, unpaired): is the difference between
    two networks larger than between two seeds of one?
    """
    from faceexp.evaluate import uncertainty as func

    subset = frame.head(int(n_images))
    again = explain_test_images(study, subset, names=list(heatmaps), seed=seed + seed_offset,
                                progress=progress, **options)
    rows, per_image = [], {}
    for name, hs in heatmaps.items():
        other = again[name]
        both = hs.frame[["path"]].reset_index().merge(other.frame[["path"]].reset_index(), on="path")
        a, b = hs.embedding[both["index_x"]], other.embedding[both["index_y"]]
        rows.append(func.noise_floor(a, b, seed=seed).assign(network=name))
        per_image[name] = fheat.psnr_pairs(a, b)
    against = []
    if comparison is not None and comparison.psnr is not None:
        for pair, part in comparison.psnr.groupby("pair", sort=False):
            a, b = part["a"].iloc[0], part["b"].iloc[0]
            floor = np.concatenate([per_image[a], per_image[b]])
            against.append(func.relative_to_floor(part["psnr"].to_numpy(), floor, paired=False,
                                                  seed=seed).assign(pair=pair))
    against = pd.concat(against, ignore_index=True).set_index("pair") if against else None
    return SeedFloor(floor=pd.concat(rows, ignore_index=True).set_index("network"),
                     per_image=per_image, against=against)


# -------------------------------------------------------------- verification


@dataclass
class Complementarity:
    """Result of :func:`complementarity_analysis` (paper IV-C, Table I, Fig. 6)."""

    pairs: pd.DataFrame
    scores: dict  # name -> (P,) cosine scores of the embedding
    eer: pd.DataFrame  # EER (fraction) per subject and Table I column
    tables: dict  # "a + b" -> Table I of the pair (fractions), fused row included
    sweeps: dict  # "a + b" -> fusion sweep (a, group, eer)
    bests: dict  # "a + b" -> best fusion
    frame: pd.DataFrame = None  # the verified images
    fused_pairs: list = field(default_factory=list)  # (a, b) of each fused pair
    kfold: dict = field(default_factory=dict)  # "a + b" -> faceexp.evaluate.uncertainty.kfold_fusion table
    intervals: pd.DataFrame = None  # eer with 95% identity-bootstrap interval per subject, pose pair

    @property
    def table(self) -> pd.DataFrame:
        """The first fused pair's Table I."""
        return next(iter(self.tables.values()))

    @property
    def sweep(self) -> pd.DataFrame:
        return next(iter(self.sweeps.values()))

    @property
    def best(self) -> dict:
        return next(iter(self.bests.values()))

    @property
    def eer_gap(self) -> pd.Series:
        """Overall EER (fraction) per subject."""
        return self.eer["overall"]

    @property
    def fusion_table(self) -> pd.DataFrame:
        """Every fused pair's Table I stacked, indexed by (fused pair, row); the fused row is
        labelled the oracle it is (its weight was tuned on these same pairs)."""
        table = pd.concat(self.tables, names=["fused pair", "row"])
        return table.rename(index={"combined (best)": "combined (oracle: a tuned on these pairs)"})

    @property
    def fusion_summary(self) -> pd.DataFrame:
        """Per fused pair: the fused EER with the weight chosen on held-out identities
        (k-fold) and the oracle's, with 95% intervals, and the change against the better
        network alone (fractions)."""
        rows = []
        for key, table in self.kfold.items():
            for line in ("k-fold", "oracle"):
                r = table[table["line"] == line].iloc[0]
                rows.append({"fused pair": key, "weight chosen": "on held-out identities"
                             if line == "k-fold" else "on these pairs (oracle)",
                             "EER": r["eer"], "EER low": r["ci_low"], "EER high": r["ci_high"],
                             "change": r["change"], "change low": r["change_low"],
                             "change high": r["change_high"]})
        return pd.DataFrame(rows).set_index(["fused pair", "weight chosen"])


def embed_test_images(study: Study, frame: pd.DataFrame, arch: str, layers=("gap",), *,
                      batch_size=50, progress=True) -> dict:
    """Flip-averaged descriptors of ``frame`` by a subject, cached under the study's
    artifacts: ``{layer: (N, D)}`` (recognisers: rows of the photos they align, see
    :func:`verifiable_frame`)."""
    from faceexp.verify import embeddings as femb

    subject = study.subject(arch)
    if subject.kind == "recogniser":
        return _recogniser_descriptors(study, subject, frame, list(layers), progress=progress)
    embedder = study.embedder(arch, list(layers))
    return femb.compute_embeddings(embedder, frame, model_id=fmodels.checkpoint_hash(
        study.checkpoint(arch)), layers=list(layers), batch_size=batch_size,
        cache_dir=study.artifacts / "embeddings", progress=progress)


def _recogniser_descriptors(study: Study, subject, frame: pd.DataFrame, layers: list, *,
                            progress=True) -> dict:
    import torch

    from faceexp.core.batching import BatchedEmbed
    from faceexp.verify.embeddings import frame_fingerprint

    key = fkeys.make_key(model=subject.model_id, images=frame_fingerprint(frame), layers=layers,
                          code=fkeys.source_hash("faceexp.core.batching", "faceexp.study.subjects", "faceexp.recognisers"))
    path = study.artifacts / "descriptors" / f"{key}.npz"
    if path.exists():
        with np.load(path) as z:
            return {layer: z[f"layer{k}"] for k, layer in enumerate(layers)}
    images, keep, failed = subject.images(frame)
    if len(keep) != len(frame):
        raise ValueError(f"{subject.name} finds no face in {len(frame) - len(keep)} of the photos "
                         f"(e.g. {failed['path'].iloc[0]}); verify on verifiable_frame(study, frame)")
    runner = BatchedEmbed(subject.embedder(layers), flip_average=True, layers=layers)
    out = runner(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()), progress=progress,
                 desc=f"embed {subject.name}")
    out = {layer: out[layer].numpy() for layer in layers}
    from faceexp.core.files import atomic_write

    atomic_write(path, lambda file: np.savez(file, **{f"layer{k}": out[layer]
                                                      for k, layer in enumerate(layers)}))
    return out


def verifiable_frame(study: Study, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` every recogniser of the study finds a face in (all rows
    without recognisers), so that every subject is scored on the same pairs."""
    if not study.recognisers:
        return frame.reset_index(drop=True)
    from faceexp.study.subjects import canonical_crops

    _, keep, _ = canonical_crops(frame, study.artifacts)
    return frame.iloc[keep].reset_index(drop=True)


def default_fusions(study: Study) -> list:
    """The pairs fused in chapter 5: the first two recognisers, then the paper's pair."""
    pairs = []
    for group in (study.recognisers, study.models):
        if len(group) >= 2:
            pairs.append((group[0], group[1]))
    return pairs


def complementarity_analysis(study: Study, frame: pd.DataFrame | None = None, *, fusions=None,
                             all_impostors=True, n_boot=1000, kfold_k=5,
                             progress=True) -> Complementarity:
    """Table I: EER per pose pair of every subject (with a 95% interval from a bootstrap
    over identities, ``n_boot`` resamples), and of the best score fusion of each pair in
    ``fusions`` (pairs, or strings "a+b"; default :func:`default_fusions`): the paper's oracle (weight tuned on
    these pairs) and the weight chosen on held-out identities (``kfold_k`` folds over
    identities, :func:`faceexp.evaluate.uncertainty.kfold_fusion`). ``all_impostors``: every
    impostor pair (default; ORL has few people), or the paper's next-100-users rule."""
    frame = verifiable_frame(study, study.split("test") if frame is None else frame)
    pairs = fprot.verification_pairs_by_pose(frame, all_impostors=all_impostors)
    scores = {}
    for name in study.subjects:
        layer = study.subject(name).embedding_layer
        scores[name] = fprot.cosine_scores(
            embed_test_images(study, frame, name, [layer], progress=progress)[layer], pairs)
    eer = fprot.eer_table(scores, pairs)
    from faceexp.evaluate import uncertainty as func

    intervals = func.eer_interval(scores, pairs, by="pose_pair", n_boot=n_boot, seed=0)
    fusions = default_fusions(study) if fusions is None else \
        [tuple(f.split("+")) if isinstance(f, str) else tuple(f) for f in fusions]
    unknown = sorted({n for pair in fusions for n in pair} - set(study.subjects))
    if unknown or any(len(pair) != 2 for pair in fusions):
        raise ValueError(f"fusions must be pairs of this study's networks such as "
                         f"'facenet-casia+dlib' (networks: {study.subjects}), got {fusions}")
    tables, sweeps, bests, kfold = {}, {}, {}, {}
    for a, b in fusions:
        key = f"{a} + {b}"
        tables[key] = fprot.table_one({a: scores[a], b: scores[b]}, pairs)
        sweeps[key] = ffusion.fusion_sweep(scores[a], scores[b], pairs["label"].to_numpy(),
                                           groups=pairs["pose_pair"].to_numpy())
        bests[key] = ffusion.best_fusion(sweeps[key])
        kfold[key] = func.kfold_fusion(scores[a], scores[b], pairs, k=kfold_k, seed=0)
    if not tables:
        tables, sweeps, bests = {"": eer}, {"": None}, {"": None}
    return Complementarity(pairs=pairs, scores=scores, eer=eer, tables=tables, sweeps=sweeps,
                           bests=bests, frame=frame, fused_pairs=fusions, intervals=intervals,
                           kfold=kfold)


def verification_analysis(study: Study, *, n_resamples=1000, identities=None,
                          frames=("canonical",), progress=True) -> pd.DataFrame:
    """Every recogniser on every photo of the data set (all genuine and impostor pairs,
    descriptors averaged with the mirror image), in the canonical crop the book explains
    it in (``"canonical"``) and, if asked, aligned its own way (``"own"``, as
    ``faceexp verify``); EER with a 95% interval from a bootstrap over identities
    (:func:`faceexp.evaluate.uncertainty.eer_interval`). Cached.

    ``identities`` keeps only the first n identities (None: all).

    Returns
    -------
    pandas.DataFrame
        ``recogniser``, ``frame``, ``eer``, ``ci_low``, ``ci_high`` (fractions),
        ``genuine``, ``impostor``, ``identities``, ``images``, ``failed`` (photos
        without a face, left out).
    """
    from faceexp import recognisers
    from faceexp.evaluate import uncertainty as func
    from faceexp.verify.embeddings import frame_fingerprint

    unknown = sorted(set(frames) - {"own", "canonical"})
    if unknown:
        raise ValueError(f"frames must be some of ['own', 'canonical'], got {unknown}")
    photos = study.images[["path", "identity"]].reset_index(drop=True)
    if identities is not None:
        keep = list(dict.fromkeys(photos["identity"]))[:int(identities)]
        photos = photos[photos["identity"].isin(keep)].reset_index(drop=True)

    def compute():
        rows = []
        for name in study.recognisers:
            if "canonical" in frames:
                subject = study.subject(name)
                usable = verifiable_frame(study, photos)
                layer = subject.embedding_layer
                descriptors = embed_test_images(study, usable, name, [layer], progress=progress)[layer]
                pairs = fprot.verification_pairs(usable, all_impostors=True)
                scores = fprot.cosine_scores(descriptors, pairs)
                r = func.eer_interval(scores, pairs, n_boot=n_resamples, seed=0).iloc[-1]
                rows.append({"recogniser": name, "frame": "canonical", "eer": r["eer"],
                             "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                             "genuine": int(r["genuine"]), "impostor": int(r["impostor"]),
                             "identities": int(r["identities"]), "images": len(usable),
                             "failed": len(photos) - len(usable)})
            if "own" in frames:
                r = recognisers.verify_frame(photos, recognisers.load(name),
                                             n_resamples=n_resamples, progress=progress)
                rows.append({"recogniser": name, "frame": "own", "eer": r.eer,
                             "ci_low": r.ci95[0], "ci_high": r.ci95[1], "genuine": r.genuine,
                             "impostor": r.impostor, "identities": r.identities,
                             "images": r.images, "failed": len(r.failed)})
        return pd.DataFrame(rows)

    return fkeys.cached_table(study.artifacts, "verification", compute,
                               images=frame_fingerprint(photos), recognisers=study.recognisers,
                               n_resamples=n_resamples, frames=list(frames),
                               code=fkeys.source_hash("faceexp.recognisers", "faceexp.verify.metrics", "faceexp.core.batching",
                                                       "faceexp.evaluate.uncertainty", "faceexp.study.subjects", "faceexp.verify.protocol"))


# -------------------------------------------------------------------- layers


@dataclass
class LayerAnalysis:
    """Result of :func:`layers_analysis` (paper IV-D, Figs. 7-8)."""

    averages: pd.DataFrame  # network, layer, block, count, heatmap
    faces: pd.DataFrame  # network, count, image
    per_layer: pd.DataFrame  # network, layer, index, block_end, eer, ci_low, ci_high, genuine, impostor


def block_label(subject, layer: str) -> str:
    """Column label of a layer in Fig. 7: the block number, "GAP" or the embedding."""
    if layer == subject.embedding_layer:
        return "GAP" if layer == "gap" else "embedding"
    if subject.kind == "paper":
        return str(fmodels.block_ends(subject.name).index(layer) + 1)
    return layer


def layered(study: Study) -> list:
    """The study's subjects with layers to analyse (the paper's CNNs, FaceNet)."""
    return [n for n in study.subjects if study.subject(n).has_layers]


def depth_columns(study: Study, heatmaps: dict) -> dict:
    """Per subject with layers, the Fig. 7 columns in depth order (paper CNNs: blocks
    1, 3, 6, 10, 13, 16 and GAP; FaceNet: each explained layer)."""
    out = {}
    for name, hs in heatmaps.items():
        subject = study.subject(name)
        if not subject.has_layers:
            continue
        labels = [block_label(subject, layer) for layer in hs.layers]
        if subject.kind == "paper":
            labels = [x for x in labels if x in ("1", "3", "6", "10", "13", "16", "GAP")]
        out[name] = labels
    return out


def layers_analysis(study: Study, heatmaps: dict, frame: pd.DataFrame | None = None, *,
                    layer_step: int = 1, memory_budget_mb: float = 2000,
                    all_impostors=False, n_boot: int = 1000, seed=0,
                    progress=True) -> LayerAnalysis:
    """Average heatmaps across depth, and the EER of every layer's descriptor with its
    95% identity-bootstrap interval and pair counts (``n_boot`` resamples,
    :func:`faceexp.evaluate.uncertainty.eer_interval`), for every subject with layers (the
    paper's CNNs and FaceNet; black boxes are left out).

    ``layer_step`` > 1 keeps every n-th layer of the paper CNNs' catalogue (block ends and
    GAP always), to fit a small machine; the paper uses every layer. FaceNet's layers
    are its stem, every Inception-ResNet block end and reduction, mean-pooled.
    """
    from faceexp.verify import layer_sweep as flayers

    averages, faces = [], []
    for name, hs in heatmaps.items():
        subject = study.subject(name)
        if not subject.has_layers:
            continue
        maps, groups = [], []
        for layer in hs.layers:
            maps.append(hs.layer(layer))
            groups.append(hs.frame.assign(network=name, layer=layer,
                                          block=block_label(subject, layer)))
        table = pd.concat(groups, ignore_index=True)
        averages.append(fheat.average_heatmaps(np.concatenate(maps), table,
                                               by=["network", "block"], looks=_looks(table)))
        own = hs.frame.assign(network=name)
        faces.append(fheat.average_faces(hs.images, own, by=["network"], looks=_looks(own)))

    frame = verifiable_frame(study, study.split("test") if frame is None else frame)
    from faceexp.evaluate import uncertainty as func

    pairs = fprot.verification_pairs(frame, all_impostors=all_impostors)
    rows, intervals = [], []
    for name in study.subjects:
        subject = study.subject(name)
        if not subject.has_layers:
            continue
        if subject.kind == "recogniser":
            from faceexp.recognisers.facenet import LAYERS

            layers = [x for x in LAYERS if x != "last_bn"] + [subject.embedding_layer]
            descriptors = embed_test_images(study, frame, name, layers, progress=progress)
            scores = {layer: fprot.cosine_scores(descriptors[layer], pairs) for layer in layers}
            for index, layer in enumerate(layers):
                rows.append({"network": name, "layer": layer, "index": index,
                             "block_end": layer in subject.sweep_layers})
            intervals.append(func.eer_interval(scores, pairs, n_boot=n_boot, seed=seed)
                             .assign(network=name))
            continue
        cat = fmodels.layer_catalogue(name)
        cat = cat[~cat["name"].isin(["input", "x", "logits", "softmax"])].reset_index(drop=True)
        keep = (np.arange(len(cat)) % layer_step == 0) | cat["block_end"].to_numpy() \
            | (cat["name"] == "gap").to_numpy()
        cat = cat[keep]
        model, _ = fmodels.load_checkpoint(study.checkpoint(name), device=study.device)
        scores = flayers.layer_sweep_scores(
            model, frame, pairs, layers=list(cat["name"]), memory_budget_mb=memory_budget_mb,
            cache_dir=study.artifacts / "layer-scores",
            model_id=fmodels.checkpoint_hash(study.checkpoint(name)), progress=progress)
        for _, r in cat.iterrows():
            index = r["matlab_layer"] if pd.notna(r["matlab_layer"]) else r.name
            rows.append({"network": name, "layer": r["name"], "index": int(index),
                         "block_end": bool(r["block_end"])})
        intervals.append(func.eer_interval({x: scores[x].to_numpy() for x in cat["name"]}, pairs,
                                           n_boot=n_boot, seed=seed).assign(network=name))
    per_layer = pd.DataFrame(rows)
    if intervals:
        ci = pd.concat(intervals, ignore_index=True).rename(columns={"system": "layer"})
        per_layer = per_layer.merge(ci[["network", "layer", "eer", "ci_low", "ci_high",
                                        "genuine", "impostor"]], on=["network", "layer"],
                                    how="left")
    return LayerAnalysis(averages=pd.concat(averages, ignore_index=True),
                         faces=pd.concat(faces, ignore_index=True), per_layer=per_layer)


# ------------------------------------------------------------------- removal


@dataclass
class RemovalAnalysis:
    """Result of :func:`removal_analysis` (paper IV-E, Figs. 9-11, deletion curves)."""

    eer: pd.DataFrame  # network, seed, threshold, method, pose_pair, eer, ci_low, ci_high, ...
    fractions: pd.DataFrame  # network, image, threshold, fraction
    examples: list  # (image (H, W, 3), title)
    curves: pd.DataFrame  # network, image, order, fraction, similarity (self, deletion)
    auc: pd.DataFrame  # network x order: mean deletion AUC (self-similarity)
    #: per image after removal: network, seed, image, threshold, method, similarity to a
    #: clean genuine partner
    similarities: pd.DataFrame | None = None
    #: network, baseline, threshold, significant, random, difference, ci_low, ci_high, ...
    paired: pd.DataFrame | None = None
    #: network, mode, image, order, fraction, similarity: the probe against a clean
    #: genuine partner as pixels are deleted or inserted
    pair_curves: pd.DataFrame | None = None
    #: network, mode, order, mean, ci_low, ci_high, n: AUCs of ``pair_curves``
    pair_auc: pd.DataFrame | None = None


def _first_partners(pairs: pd.DataFrame, n: int) -> np.ndarray:
    """Each image's first genuine partner among the ``n`` images (-1: none)."""
    return np.array([p[0] if len(p) else -1 for p in fremoval.genuine_partners(pairs, n)])


def curve_auc_table(curves: pd.DataFrame, *, seed=0) -> pd.DataFrame:
    """Mean AUC per (network, mode, order) of deletion/insertion curves, with its 95%
    bootstrap interval over images (:func:`faceexp.evaluate.uncertainty.mean_interval`)."""
    from faceexp.evaluate import uncertainty as func

    auc = pd.concat([ffaith.deletion_auc(part.drop(columns="network")).assign(network=network)
                     for network, part in curves.groupby("network", sort=False)],
                    ignore_index=True)
    rows = []
    for (network, mode, order), part in auc.groupby(["network", "mode", "order"], sort=False):
        ci = func.mean_interval(part["auc"].to_numpy(), seed=seed).iloc[0]
        rows.append({"network": network, "mode": mode, "order": order, "mean": ci["mean"],
                     "ci_low": ci["ci_low"], "ci_high": ci["ci_high"], "n": int(ci["n"])})
    return pd.DataFrame(rows, columns=["network", "mode", "order", "mean", "ci_low", "ci_high",
                                       "n"])


def removal_analysis(study: Study, heatmaps: dict, *, thresholds=fremoval.DEFAULT_THRESHOLDS,
                     deletion_images=None, seed=0, random_seeds=5, all_impostors=False,
                     n_boot=1000, batch_size=None, compile=False,
                     progress=True) -> RemovalAnalysis:
    """EER as the most significant pixels are removed, against both random baselines,
    and deletion / insertion curves, for every subject of ``heatmaps`` (its embedding
    layer).

    * ``eer``: every EER with its identity-bootstrap interval (``n_boot`` resamples);
      each random baseline is drawn with ``random_seeds`` seeds (a ``seed`` column).
    * ``paired``: at each threshold, per image, the similarity of the probe after
      removal to a clean genuine partner, random minus significant removal (mean over
      the random seeds), with a paired bootstrap interval over images
      (:func:`faceexp.evaluate.removal.significant_vs_random`).
    * ``curves`` / ``auc``: deletion curves on the face's self-similarity (most/least
      relevant first, random superpixels), ``deletion_images`` faces.
    * ``pair_curves`` / ``pair_auc``: deletion and insertion curves scored on the
      genuine pair (the probe degraded, its first genuine partner clean), for the
      faces among the first ``deletion_images`` that have a partner: the explainer
      was fitted to the self-similarity, so this is the out-of-sample test.
    """
    eers, fractions, curves, aucs, sims, paired, pair_curves = [], [], [], [], [], [], []
    examples = []
    for name, hs in heatmaps.items():
        subject = study.subject(name)
        layer = subject.embedding_layer
        # the removal functions always call embed with batch_size rows: compiles once
        embed = (subject.embedder([layer], compile=compile) if subject.kind == "paper"
                 else subject.embedder([layer]))
        images = hs.images.transpose(0, 3, 1, 2)
        maps = hs.embedding
        pairs = fprot.verification_pairs_by_pose(hs.frame, all_impostors=all_impostors)
        for k, s in enumerate(range(seed, seed + max(int(random_seeds), 1))):
            methods = fremoval.METHODS if k == 0 else ("random-pixels", "random-superpixels")
            res, sim = fremoval.removal_experiment(
                embed, images, maps, hs.frame, pairs, thresholds=thresholds, methods=methods,
                segments=hs.segments, seed=s, batch_size=batch_size, layer=layer,
                n_boot=n_boot if k == 0 else 0,   # further seeds: the band is their spread
                similarities=True, progress=progress)
            if k:
                res = res[res["method"] != fremoval.NO_REMOVAL]
                sim = sim[sim["method"] != fremoval.NO_REMOVAL]
            eers.append(res.assign(network=name, seed=s))
            sims.append(sim.assign(network=name, seed=s))
        own = pd.concat([x for x in sims if x["network"].iloc[0] == name], ignore_index=True)
        paired.append(fremoval.significant_vs_random(own, seed=seed).assign(network=name))
        fractions.append(fremoval.removed_fraction(maps, thresholds).assign(network=name))
        n = len(images) if deletion_images is None else min(deletion_images, len(images))
        c = ffaith.deletion_curves(embed, images[:n], maps[:n], segments=hs.segments[:n],
                                   seed=seed, batch_size=batch_size, layer=layer,
                                   progress=progress)
        curves.append(c.assign(network=name))
        aucs.append(ffaith.deletion_auc(c).assign(network=name))
        partner = _first_partners(pairs, len(images))
        with_partner = np.flatnonzero(partner >= 0)[:n]
        if len(with_partner):
            for mode in ffaith.MODES:
                c = ffaith.deletion_curves(
                    embed, images[with_partner], maps[with_partner],
                    segments=hs.segments[with_partner], seed=seed, batch_size=batch_size,
                    layer=layer, references=images[partner[with_partner]], mode=mode,
                    progress=progress)
                c["image"] = with_partner[c["image"].to_numpy()]
                pair_curves.append(c.assign(network=name, mode=mode))
        for t in (0.8, 0.5, 0.3):
            removed, _ = fremoval.remove_significant(images[:1], maps[:1], t)
            examples.append((removed[0].transpose(1, 2, 0), f"{name}, > {t}"))
    curves = pd.concat(curves, ignore_index=True)
    auc = pd.concat(aucs, ignore_index=True)
    auc_mean = auc.groupby(["network", "order"], sort=False)["auc"].mean().unstack("order")
    pair_curves = pd.concat(pair_curves, ignore_index=True) if pair_curves else None
    return RemovalAnalysis(eer=pd.concat(eers, ignore_index=True),
                           fractions=pd.concat(fractions, ignore_index=True),
                           examples=examples, curves=curves, auc=auc_mean,
                           similarities=pd.concat(sims, ignore_index=True),
                           paired=pd.concat(paired, ignore_index=True),
                           pair_curves=pair_curves,
                           pair_auc=None if pair_curves is None else curve_auc_table(
                               pair_curves, seed=seed))


# ------------------------------------------------------------------ sampling


def sampling_analysis(study: Study, frame: pd.DataFrame, arch: str = "mobilenetv2", *,
                      settings=fstab.DEFAULT_SETTINGS, seeds=(0, 1, 2), n_samples=1000,
                      n_segments=75, batch_size=None, compile=False, progress=True) -> tuple:
    """The explainer's sampling compared by faithfulness and stability, cached, for one
    subject (``arch``: a trained network or a recogniser of the study).

    Returns ``(per_image, summary)`` DataFrames (see
    :func:`faceexp.evaluate.stability.sampling_study`).
    """
    subject = study.subject(arch)
    layer = subject.embedding_layer
    images, keep, _ = subject.images(frame)

    def compute():
        embed = (subject.embedder([layer], compile=compile) if subject.kind == "paper"
                 else subject.embedder([layer]))
        return fstab.sampling_study(embed, images, settings=settings, seeds=seeds,
                                    n_samples=n_samples, n_segments=n_segments, layer=layer,
                                    batch_size=batch_size, progress=progress)

    per_image = fkeys.cached_table(
        study.artifacts, "sampling", compute,
        model=subject.model_id, images=list(frame["path"].iloc[keep]),
        settings=list(settings), seeds=list(seeds), n_samples=n_samples, n_segments=n_segments,
        code=fkeys.source_hash("faceexp.evaluate.stability", "faceexp.evaluate.faithfulness", "faceexp.evaluate.removal", "faceexp.explain.explainer", "faceexp.explain.lime_steps",
                                "faceexp.explain.targets", "faceexp.core.batching", "faceexp.core.similarity", "faceexp.models", "faceexp.data.preprocessing",
                                "faceexp.study.subjects", "faceexp.recognisers"))
    return per_image, fstab.summarise_sampling_study(per_image)


def sampling_comparison(study: Study, frame: pd.DataFrame, names, **options) -> tuple:
    """:func:`sampling_analysis` for several subjects: ``(per_image, summary)`` with a
    ``network`` column."""
    per_image, summary = [], []
    for name in names:
        p, m = sampling_analysis(study, frame, name, **options)
        per_image.append(p.assign(network=name))
        summary.append(m.assign(network=name))
    return pd.concat(per_image, ignore_index=True), pd.concat(summary, ignore_index=True)


def sensitivity_analysis(study: Study, frame: pd.DataFrame, name: str, *, seeds=(0, 1),
                         n_samples=150, n_segments=75, batch_size=None, choices=None,
                         progress=True) -> tuple:
    """Each explainer choice's effect on one network's heatmaps, cached
    (:func:`faceexp.evaluate.sensitivity.sensitivity_study`): ``(per_image, summary)``."""
    from faceexp.evaluate import sensitivity as fsens

    subject = study.subject(name)
    layer = subject.embedding_layer
    images, keep, _ = subject.images(frame)
    choices = fsens.DEFAULT_CHOICES if choices is None else choices

    def compute():
        return fsens.sensitivity_study(subject.embedder([layer]), images, choices=choices,
                                       seeds=seeds, n_samples=n_samples, n_segments=n_segments,
                                       layer=layer, batch_size=batch_size, progress=progress)

    per_image = fkeys.cached_table(
        study.artifacts, "sensitivity", compute, model=subject.model_id,
        images=list(frame["path"].iloc[keep]), seeds=list(seeds), n_samples=n_samples,
        n_segments=n_segments, choices=[[label, dict(o)] for label, o in choices],
        code=fkeys.source_hash("faceexp.evaluate.sensitivity", "faceexp.evaluate.faithfulness", "faceexp.explain.explainer", "faceexp.explain.lime_steps",
                                "faceexp.explain.targets", "faceexp.core.batching", "faceexp.core.similarity", "faceexp.models", "faceexp.study.subjects",
                                "faceexp.recognisers", "faceexp.data.preprocessing"))
    return per_image, fsens.summarise_sensitivity(per_image)
