"""The paper's analyses, end to end, as functions the book's notebooks call.

A :class:`Study` holds the trained networks and the labelled images; each
``*_analysis`` function runs one section of the paper on it (explanations and
embeddings come from the :mod:`faceexp.artifacts` cache) and returns plain
DataFrames and arrays for :mod:`faceexp.plots`. The notebooks set parameters,
call these and show figures; what the pages say about them (captions, readings,
the results-page summaries) is :mod:`faceexp.report`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from faceexp import artifacts as fcache
from faceexp import preprocessing as fpre
from faceexp import explainer as fexplain
from faceexp import faithfulness as ffaith
from faceexp import heatmaps as fheat
from faceexp import fusion as ffusion
from faceexp import metrics as fmetrics
from faceexp import models as fmodels
from faceexp import protocol as fprot
from faceexp import removal as fremoval
from faceexp import stability as fstab


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
        ``arch -> faceexp.train.TrainResult`` (trained once, then read).
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

    @property
    def models(self) -> list:
        return list(self.runs)

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
        """Per network: epochs, final/best validation accuracy, training time."""
        rows = []
        for a, run in self.runs.items():
            m = run.metrics
            rows.append({"network": a, "epochs": len(m), "final lr": m["lr"].iloc[-1],
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
                  data_root=None, seed=0, device="auto", progress=True,
                  **train_options) -> Study:
    """Train (or read) the networks and label the test images' poses.

    Parameters
    ----------
    models : sequence of str
        Architectures, e.g. ``["mobilenetv2", "resnet50"]``.
    artifacts : path
        Cache folder (trained runs, poses, explanations, embeddings).
    data_root : path, optional
        One folder per identity; None uses ORL.
    seed : int
        Seed of the identity split, the hold-out and training.
    device : {"auto", "cpu", "cuda", ...}
    **train_options
        :class:`faceexp.train.TrainConfig` fields (``max_epochs``,
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
    unknown = [m for m in models if m not in fmodels.ARCHITECTURES]
    if unknown:
        raise ValueError(f"models must be some of {fmodels.ARCHITECTURES}, got unknown {unknown}")
    device = resolve_device(device)
    options = {k: v for k, v in train_options.items() if v is not None}
    runs = {}
    for arch in models:
        own = {k: per_model_value(v, arch, k, models) for k, v in options.items()}
        runs[arch] = fcache.trained_network(arch, artifacts, progress=progress,
                                          data_root=data_root, seed=seed, device=device,
                                          **{k: v for k, v in own.items() if v is not None})
    images = runs[models[0]].split
    test = images[images["split"] == "test"]
    labelled = fcache.pose_labels(test, artifacts, progress=progress)
    images = images.merge(labelled[["path", "pose", "looks", "yaw_proxy"]], on="path", how="left")
    dataset = ("ORL faces (AT&T Laboratories Cambridge)" if data_root is None
               else f"images under {data_root}")
    return Study(runs=runs, images=images, artifacts=Path(artifacts), dataset=dataset,
                 device=device, options=dict(options, seed=seed))


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
    psnr_mean: pd.DataFrame  # network x split mean PSNR (dB)


def gap_vs_softmax_analysis(study: Study, *, n_identities=None, seed=0, progress=True,
                            **options) -> GapSoftmax:
    """GAP-embedding vs softmax heatmaps on training and validation images."""
    frame = study.one_per_identity(("train", "val"), n_identities)
    # both heatmaps of an image come from the same perturbed samples and forward passes
    both = explain_study(study, frame, layers=["gap", "softmax"],
                         target={"gap": "cosine", "softmax": "softmax"}, seed=seed,
                         progress=progress, **options)
    maps, groups, psnr = [], [], []
    for arch in study.models:
        hs = both[arch]
        gap, soft = hs.layer("gap"), hs.layer("softmax")
        maps += [gap, soft]
        groups += [hs.frame.assign(network=arch, source="GAP embedding"),
                   hs.frame.assign(network=arch, source="softmax")]
        psnr.append(fheat.psnr_between(gap, soft, hs.frame).assign(network=arch))
    heat = np.concatenate(maps)
    table = pd.concat(groups, ignore_index=True)
    averages = fheat.average_heatmaps(heat, table, by=["network", "split", "source"])
    first = both[study.models[0]]
    faces = fheat.average_faces(first.images, first.frame, by=["split"])
    psnr = pd.concat(psnr, ignore_index=True)
    finite = psnr.replace([np.inf], np.nan)
    mean = finite.groupby(["network", "split"])["psnr"].mean().unstack("split")
    return GapSoftmax(averages=averages, faces=faces, psnr=psnr, psnr_mean=mean)


@dataclass
class NetworkComparison:
    """Result of :func:`compare_networks_analysis` (paper IV-B, Figs. 3-5)."""

    heatmaps: dict  # arch -> HeatmapSet (layers: block ends + gap)
    averages: pd.DataFrame  # network, pose, count, heatmap (gap layer, faces looking left)
    faces: pd.DataFrame  # pose, count, image
    psnr: pd.DataFrame  # per image PSNR between the two networks (gap layer)
    histograms: pd.DataFrame
    examples: pd.DataFrame  # per pose: max / average / min PSNR rows


def sweep_layers(arch: str) -> list:
    """The layers explained for every test image: the 16 block ends and GAP."""
    return fmodels.block_ends(arch) + ["gap"]


def explain_test_images(study: Study, frame: pd.DataFrame, *, seed=0, progress=True,
                        **options) -> dict:
    """Explain the test images once for chapters 4, 6 and 7: block ends + GAP, one pass."""
    return {arch: fcache.explain_images(study.checkpoint(arch), frame, study.artifacts,
                                      layers=sweep_layers(arch), seed=seed, device=study.device,
                                      progress=progress, **options)
            for arch in study.models}


def compare_networks_analysis(study: Study, heatmaps: dict, *, bins=15) -> NetworkComparison:
    """Average heatmaps per pose and network, and per-image PSNR between networks."""
    maps, groups = [], []
    for arch, hs in heatmaps.items():
        maps.append(hs.layer("gap"))
        groups.append(hs.frame.assign(network=arch))
    table = pd.concat(groups, ignore_index=True)
    averages = fheat.average_heatmaps(np.concatenate(maps), table, by=["network", "pose"],
                                      looks=_looks(table))
    first = next(iter(heatmaps.values()))
    faces = fheat.average_faces(first.images, first.frame, by=["pose"], looks=_looks(first.frame))
    psnr = histograms = examples = None
    if len(heatmaps) >= 2:
        (a, ha), (b, hb) = list(heatmaps.items())[:2]
        both = ha.frame[["path"]].reset_index().merge(hb.frame[["path"]].reset_index(), on="path")
        psnr = fheat.psnr_between(ha.layer("gap")[both["index_x"]],
                                  hb.layer("gap")[both["index_y"]],
                                  ha.frame.iloc[both["index_x"]].reset_index(drop=True))
        histograms = fheat.psnr_histograms(psnr, by="pose", bins=bins)
        examples = fheat.psnr_examples(psnr, by="pose")
    return NetworkComparison(heatmaps=heatmaps, averages=averages, faces=faces, psnr=psnr,
                             histograms=histograms, examples=examples)


# -------------------------------------------------------------- verification


@dataclass
class Complementarity:
    """Result of :func:`complementarity_analysis` (paper IV-C, Table I, Fig. 6)."""

    pairs: pd.DataFrame
    scores: dict  # arch -> (P,) cosine scores at GAP
    table: pd.DataFrame  # Table I (EER %), with the fused row
    sweep: pd.DataFrame  # a, group, eer
    best: dict
    eer_gap: pd.Series  # overall EER (%) per network


def embed_test_images(study: Study, frame: pd.DataFrame, arch: str, layers=("gap",), *,
                      batch_size=50, progress=True) -> dict:
    """Flip-averaged descriptors of ``frame``, cached under the study's artifacts."""
    from faceexp import embeddings as femb

    embedder = study.embedder(arch, list(layers))
    return femb.compute_embeddings(embedder, frame, model_id=fmodels.checkpoint_hash(
        study.checkpoint(arch)), layers=list(layers), batch_size=batch_size,
        cache_dir=study.artifacts / "embeddings", progress=progress)


def complementarity_analysis(study: Study, frame: pd.DataFrame | None = None, *,
                             all_impostors=False, progress=True) -> Complementarity:
    """Table I: EER per pose pair of both networks and of their best score fusion."""
    frame = study.split("test") if frame is None else frame
    pairs = fprot.verification_pairs_by_pose(frame, all_impostors=all_impostors)
    scores = {arch: fprot.cosine_scores(embed_test_images(study, frame, arch, progress=progress)["gap"],
                                        pairs)
              for arch in study.models}
    names = {"mobilenetv2": "MB2", "resnet50": "R50"}
    eer = fprot.eer_table({names.get(a, a): s for a, s in scores.items()}, pairs)
    if len(study.models) >= 2:
        a, b = study.models[:2]
        table = fprot.table_one({names.get(a, a): scores[a], names.get(b, b): scores[b]}, pairs)
        sweep = ffusion.fusion_sweep(scores[a], scores[b], pairs["label"].to_numpy(),
                                      groups=pairs["pose_pair"].to_numpy())
        best = ffusion.best_fusion(sweep)
    else:
        table, sweep, best = eer, None, None
    return Complementarity(pairs=pairs, scores=scores, table=table, sweep=sweep, best=best,
                           eer_gap=eer["overall"])


# -------------------------------------------------------------------- layers


@dataclass
class LayerAnalysis:
    """Result of :func:`layers_analysis` (paper IV-D, Figs. 7-8)."""

    averages: pd.DataFrame  # network, layer, block, count, heatmap
    faces: pd.DataFrame
    per_layer: pd.DataFrame  # network, layer, index, block_end, eer


def layers_analysis(study: Study, heatmaps: dict, frame: pd.DataFrame | None = None, *,
                    layer_step: int = 1, memory_budget_mb: float = 2000,
                    all_impostors=False, progress=True) -> LayerAnalysis:
    """Average heatmaps across block ends, and the EER of every layer's descriptor.

    ``layer_step`` > 1 keeps every n-th layer of the catalogue (block ends and
    GAP always), to fit a small machine; the paper uses every layer.
    """
    from faceexp import layer_sweep as flayers

    maps, groups = [], []
    for arch, hs in heatmaps.items():
        ends = fmodels.block_ends(arch)
        for k, layer in enumerate(hs.layers):
            maps.append(hs.layer(layer))
            block = ends.index(layer) + 1 if layer in ends else "GAP"
            groups.append(hs.frame.assign(network=arch, layer=layer, block=str(block)))
    table = pd.concat(groups, ignore_index=True)
    averages = fheat.average_heatmaps(np.concatenate(maps), table, by=["network", "block"],
                                      looks=_looks(table))
    first = next(iter(heatmaps.values()))
    faces = fheat.average_faces(first.images, first.frame, looks=_looks(first.frame))

    frame = study.split("test") if frame is None else frame
    pairs = fprot.verification_pairs(frame, all_impostors=all_impostors)
    labels = pairs["label"].to_numpy()
    rows = []
    for arch in study.models:
        cat = fmodels.layer_catalogue(arch)
        cat = cat[~cat["name"].isin(["input", "x", "logits", "softmax"])].reset_index(drop=True)
        keep = (np.arange(len(cat)) % layer_step == 0) | cat["block_end"].to_numpy() \
            | (cat["name"] == "gap").to_numpy()
        cat = cat[keep]
        model, _ = fmodels.load_checkpoint(study.checkpoint(arch), device=study.device)
        scores = flayers.layer_sweep_scores(
            model, frame, pairs, layers=list(cat["name"]), memory_budget_mb=memory_budget_mb,
            cache_dir=study.artifacts / "layer-scores",
            model_id=fmodels.checkpoint_hash(study.checkpoint(arch)), progress=progress)
        for _, r in cat.iterrows():
            s = scores[r["name"]].to_numpy()
            e = fmetrics.equal_error_rate(s[labels == 0], s[labels == 1]).eer
            index = r["matlab_layer"] if pd.notna(r["matlab_layer"]) else r.name
            rows.append({"network": arch, "layer": r["name"], "index": int(index),
                         "block_end": bool(r["block_end"]), "eer": e})
    return LayerAnalysis(averages=averages, faces=faces, per_layer=pd.DataFrame(rows))


# ------------------------------------------------------------------- removal


@dataclass
class RemovalAnalysis:
    """Result of :func:`removal_analysis` (paper IV-E, Figs. 9-11, deletion curves)."""

    eer: pd.DataFrame  # network, threshold, method, pose_pair, eer
    fractions: pd.DataFrame  # network, image, threshold, fraction
    examples: list  # (image (H, W, 3), title)
    curves: pd.DataFrame  # network, image, order, fraction, similarity
    auc: pd.DataFrame  # network, order, mean auc


def removal_analysis(study: Study, heatmaps: dict, *, thresholds=fremoval.DEFAULT_THRESHOLDS,
                     deletion_images=None, seed=0, all_impostors=False, batch_size=None,
                     compile=False, progress=True) -> RemovalAnalysis:
    """EER as the most significant pixels are removed, against both random baselines,
    and deletion curves (most/least relevant first, random superpixels)."""
    eers, fractions, curves, aucs = [], [], [], []
    examples = []
    for arch, hs in heatmaps.items():
        # the removal functions always call embed with batch_size rows: compiles once
        embed = study.embedder(arch, ["gap"], compile=compile)
        images = hs.images.transpose(0, 3, 1, 2)
        gapmaps = hs.layer("gap")
        pairs = fprot.verification_pairs_by_pose(hs.frame, all_impostors=all_impostors)
        res = fremoval.removal_experiment(embed, images, gapmaps, hs.frame, pairs,
                                          thresholds=thresholds, segments=hs.segments,
                                          seed=seed, batch_size=batch_size, progress=progress)
        eers.append(res.assign(network=arch))
        fractions.append(fremoval.removed_fraction(gapmaps, thresholds).assign(network=arch))
        n = len(images) if deletion_images is None else min(deletion_images, len(images))
        c = ffaith.deletion_curves(embed, images[:n], gapmaps[:n], segments=hs.segments[:n],
                                   seed=seed, batch_size=batch_size, progress=progress)
        curves.append(c.assign(network=arch))
        aucs.append(ffaith.deletion_auc(c).assign(network=arch))
        for t in (0.8, 0.5, 0.3):
            removed, _ = fremoval.remove_significant(images[:1], gapmaps[:1], t)
            examples.append((removed[0].transpose(1, 2, 0), f"{arch}, > {t}"))
    curves = pd.concat(curves, ignore_index=True)
    auc = pd.concat(aucs, ignore_index=True)
    auc_mean = auc.groupby(["network", "order"])["auc"].mean().unstack("order")
    return RemovalAnalysis(eer=pd.concat(eers, ignore_index=True),
                           fractions=pd.concat(fractions, ignore_index=True),
                           examples=examples, curves=curves, auc=auc_mean)


# ------------------------------------------------------------------ sampling


def sampling_analysis(study: Study, frame: pd.DataFrame, arch: str = "mobilenetv2", *,
                      settings=fstab.DEFAULT_SETTINGS, seeds=(0, 1, 2), n_samples=1000,
                      n_segments=75, batch_size=None, compile=False, progress=True) -> tuple:
    """The explainer's sampling compared by faithfulness and stability, cached.

    Returns ``(per_image, summary)`` DataFrames (see
    :func:`faceexp.stability.sampling_study`).
    """
    def compute():
        images = fpre.preprocessed_images(frame)
        return fstab.sampling_study(study.embedder(arch, ["gap"], compile=compile), images,
                                    settings=settings, seeds=seeds, n_samples=n_samples,
                                    n_segments=n_segments, batch_size=batch_size,
                                    progress=progress)

    per_image = fcache.cached_table(
        study.artifacts, "sampling", compute,
        model=fmodels.checkpoint_hash(study.checkpoint(arch)), images=list(frame["path"]),
        settings=list(settings), seeds=list(seeds), n_samples=n_samples, n_segments=n_segments,
        code=fcache.source_hash("stability", "faithfulness", "removal", "explainer", "lime_steps",
                              "targets", "batching", "similarity", "models", "preprocessing"))
    return per_image, fstab.summarise_sampling_study(per_image)
