"""Chapters 3-4: explaining the study's images and comparing the heatmaps (GAP vs
softmax, every two networks by PSNR, and the seed-to-seed noise floor).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from faceexp import models as fmodels
from faceexp.evaluate import heatmaps as fheat
from faceexp import explain as fexplain
from faceexp.study import artifacts as fcache
from faceexp.study.setup import Study


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


def mirror_looks(frame: pd.DataFrame) -> np.ndarray:
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
    (:func:`faceexp.core.bootstrap.mean_interval`); identical maps (infinite PSNR) are left
    out and counted in ``n_excluded``.

    Returns one row per group: the ``by`` columns, ``mean``, ``ci_low``, ``ci_high``
    (dB), ``n``, ``n_excluded``."""
    from faceexp.core.bootstrap import mean_interval

    rows = []
    for key, part in psnr.groupby(list(by), sort=False):
        values = part["psnr"].replace([np.inf, -np.inf], np.nan).to_numpy(dtype=float)
        ci = mean_interval(values, seed=seed).iloc[0]
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
                        images_per_subject: dict | None = None, **options) -> dict:
    """Explain the test images once for chapters 4, 6 and 7, with every subject of the
    study (or ``names``): its sweep layers (block ends, embedding last) from one pass.

    ``images_per_subject`` (subject -> k) explains only the first ``k`` images of each
    identity of ``frame`` with that subject (e.g. an expensive network that cannot
    recognise faces, shown but not judged); the others explain all of ``frame``.

    Returns ``{name: HeatmapSet}``; a recogniser leaves out photos it finds no face in.
    """
    names = study.subjects if names is None else list(names)
    caps = dict(images_per_subject or {})
    unknown = sorted(set(caps) - set(study.subjects))
    if unknown:
        raise ValueError(f"images_per_subject names {unknown}, which are not subjects of this "
                         f"study ({study.subjects})")
    for name, k in caps.items():
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"images_per_subject[{name!r}] must be an int >= 1, got {k!r}")
    out = {}
    for name in names:
        subset = frame
        if name in caps:
            subset = frame[frame.groupby("identity").cumcount() < caps[name]].reset_index(drop=True)
        # every network draws its own perturbations (seeds SOURCE_SEED_OFFSET apart), so
        # that agreement between two networks' heatmaps is not built in by shared samples
        subject = study.subject(name)
        k = study.subjects.index(name)
        out[name] = fcache.explain_subject(subject, subset, study.artifacts,
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
                                               looks=mirror_looks(table)))
        faces.append(fheat.average_faces(hs.images, table, by=["network", "pose"],
                                         looks=mirror_looks(table)))
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
    (:func:`faceexp.evaluate.seed_floor.relative_to_floor`, unpaired): is the difference between
    two networks larger than between two seeds of one?
    """
    from faceexp.evaluate.seed_floor import noise_floor, relative_to_floor

    subset = frame.head(int(n_images))
    again = explain_test_images(study, subset, names=list(heatmaps), seed=seed + seed_offset,
                                progress=progress, **options)
    rows, per_image = [], {}
    for name, hs in heatmaps.items():
        other = again[name]
        both = hs.frame[["path"]].reset_index().merge(other.frame[["path"]].reset_index(), on="path")
        a, b = hs.embedding[both["index_x"]], other.embedding[both["index_y"]]
        rows.append(noise_floor(a, b, seed=seed).assign(network=name))
        per_image[name] = fheat.psnr_pairs(a, b)
    against = []
    if comparison is not None and comparison.psnr is not None:
        for pair, part in comparison.psnr.groupby("pair", sort=False):
            a, b = part["a"].iloc[0], part["b"].iloc[0]
            floor = np.concatenate([per_image[a], per_image[b]])
            against.append(relative_to_floor(part["psnr"].to_numpy(), floor, paired=False,
                                                  seed=seed).assign(pair=pair))
    against = pd.concat(against, ignore_index=True).set_index("pair") if against else None
    return SeedFloor(floor=pd.concat(rows, ignore_index=True).set_index("network"),
                     per_image=per_image, against=against)
