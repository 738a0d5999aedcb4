"""Tests of faceexp.evaluate.compare: the metrics on worked examples, the registry, the comparison, and
a smoke run of two explainers on a real ORL face with FaceNet-CASIA."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from faceexp.evaluate import compare as fc
from faceexp.evaluate.compare import cost as compare_cost
from faceexp.evaluate.faithfulness import deletion_curves

SIDE = 20          # toy images are 20 x 20 = 400 pixels
BLOCK = (slice(0, 10), slice(0, 10))   # the block the toy embedding sees: 100 pixels, 25%
STEPS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def block_embed(batch):
    """An embedding that depends on the top-left 10 x 10 block only: its pixels, flattened."""
    batch = torch.as_tensor(np.asarray(batch)) if not isinstance(batch, torch.Tensor) else batch
    return batch[:, :, BLOCK[0], BLOCK[1]].reshape(len(batch), -1).float()


class BlockNet(torch.nn.Module):
    """``block_embed`` as a torch module with a conv layer (for gradients and Grad-CAM)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1, bias=False)
        self.head = torch.nn.Linear(300, 300, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.head.weight.copy_(torch.eye(300))

    def forward(self, x):
        features = self.conv(x)
        return self.head(features[:, :, BLOCK[0], BLOCK[1]].reshape(len(x), -1))


def grey_face(value=0.5):
    return np.full((SIDE, SIDE, 3), value, dtype=np.float32)


def block_map(best=True):
    """A perfect map (the block most relevant) or its reverse."""
    heat = np.zeros((SIDE, SIDE))
    heat[BLOCK] = 1.0
    return heat if best else 1.0 - heat


# --------------------------------------------------------------------------- curve areas


def test_curve_auc_is_the_mean_similarity_along_a_known_curve():
    f = np.array(STEPS)
    curves = pd.concat([
        pd.DataFrame({"image": 0, "mode": "deletion", "reference": "self", "fraction": f,
                      "similarity": 1 - f}),                     # area 0.375 over a span of 0.5
        pd.DataFrame({"image": 1, "mode": "deletion", "reference": "self", "fraction": f,
                      "similarity": np.ones_like(f)}),
    ])
    aucs = fc.curve_auc(curves)
    assert list(aucs.columns) == ["mode", "reference", "image", "auc"]
    assert aucs["auc"].tolist() == pytest.approx([0.75, 1.0])
    full = pd.DataFrame({"image": 0, "fraction": [0.0, 0.5, 1.0], "similarity": [1.0, 0.5, 0.0]})
    assert fc.curve_auc(full, by=())["auc"].tolist() == pytest.approx([0.5])


def test_deletion_and_insertion_on_an_embed_that_sees_one_block():
    """Deleting k of the block's n = 100 equal pixels leaves cos = sqrt((n - k) / n); a
    perfect map deletes 20 block pixels per 5% step, so the curve is sqrt(1 - 0.2 j) up to
    25% and 0 after. Inserting them gives sqrt(0.2 j) (0 for the blank image, whose
    embedding is zero) and 1 from 25% on."""
    images = grey_face().transpose(2, 0, 1)[None]
    reference = {"self": block_embed(images)}
    hand_deletion = [math.sqrt(max(0.0, 1 - 0.2 * j)) for j in range(11)]
    hand_insertion = [math.sqrt(min(1.0, 0.2 * j)) for j in range(11)]

    deletion = fc.similarity_curves(block_embed, images, block_map()[None], reference,
                                    steps=STEPS)
    assert deletion["similarity"].tolist() == pytest.approx(hand_deletion, abs=1e-6)
    assert deletion["n_pixels"].tolist() == [20 * j for j in range(11)]
    insertion = fc.similarity_curves(block_embed, images, block_map()[None], reference,
                                     mode="insertion", steps=STEPS)
    assert insertion["similarity"].tolist() == pytest.approx(hand_insertion, abs=1e-6)
    # the reverse map leaves the block alone up to 50% deleted, and inserts none of it
    worst = fc.similarity_curves(block_embed, images, block_map(best=False)[None], reference,
                                 steps=STEPS)
    assert worst["similarity"].tolist() == pytest.approx([1.0] * 11)

    aucs = fc.curve_auc(pd.concat([deletion, insertion, worst.assign(mode="worst")]))
    trapezoid = lambda y: float(np.sum((np.array(y[1:]) + np.array(y[:-1])) / 2) * 0.05) / 0.5
    assert aucs["auc"].tolist() == pytest.approx(
        [trapezoid(hand_deletion), trapezoid(hand_insertion), 1.0])


def test_similarity_curves_compare_with_any_reference_in_one_pass():
    images = grey_face().transpose(2, 0, 1)[None]
    clean = block_embed(images)
    partner = clean.clone()
    partner[:, 150:] = 0            # a partner embedding that shares half of the face's
    calls = []

    def counted(batch):
        calls.append(len(batch))
        return block_embed(batch)

    curves = fc.similarity_curves(counted, images, block_map()[None],
                                  {"self": clean, "pair": partner}, steps=(0.0, 0.5),
                                  batch_size=8)
    assert sum(calls) == 2            # two steps, both references from the same pass
    pair = curves[curves["reference"] == "pair"]["similarity"].tolist()
    assert pair == pytest.approx([math.sqrt(0.5), 0.0])


def test_self_deletion_is_faithfulness_deletion_curves_most_relevant_first():
    rng = np.random.default_rng(0)
    projection = torch.from_numpy(rng.standard_normal((3 * SIDE * SIDE, 8)).astype(np.float32))

    def embed(batch):
        return torch.as_tensor(batch).reshape(len(batch), -1) @ projection

    images = rng.random((3, 3, SIDE, SIDE)).astype(np.float32)
    heatmaps = rng.random((3, SIDE, SIDE))
    ours = fc.similarity_curves(embed, images, heatmaps, {"self": embed(images)},
                                steps=STEPS, fill="black")
    theirs = deletion_curves(embed, images, heatmaps, steps=STEPS, orders=["most-relevant-first"],
                             fill="black", layer="embedding", progress=False)
    # float32 embeddings of differently composed batches: equal to rounding
    assert ours["similarity"].to_numpy() == pytest.approx(theirs["similarity"].to_numpy(),
                                                          abs=1e-6)


def test_similarity_curves_refuse_bad_input():
    images = grey_face().transpose(2, 0, 1)[None]
    with pytest.raises(ValueError, match="mode must be one of"):
        fc.similarity_curves(block_embed, images, block_map()[None], {"self": np.ones((1, 300))},
                             mode="sideways")
    with pytest.raises(ValueError, match=r"references\['pair'\] must be \(1, D\)"):
        fc.similarity_curves(block_embed, images, block_map()[None], {"pair": np.ones(300)})


# --------------------------------------------------------------------------- other metrics


def test_rank_correlation_of_known_maps():
    a = np.arange(16.0).reshape(4, 4)
    assert fc.rank_correlation(a, a ** 3) == pytest.approx(1.0)      # monotone: same ranks
    assert fc.rank_correlation(a, -a) == pytest.approx(-1.0)
    assert math.isnan(fc.rank_correlation(a, np.ones((4, 4))))
    assert fc.rank_correlation([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)  # 1 - 6*2/60


def test_baseline_maps_share_the_kind_of_the_map():
    segments = np.repeat(np.arange(4), 100).reshape(SIDE, SIDE)     # four horizontal bands
    region = fc.baseline_map(np.zeros((SIDE, SIDE)), "region", segments=segments, rng=3)
    for label in range(4):
        assert np.ptp(region[segments == label]) == 0               # one value per superpixel
    assert np.unique(region).size == 4
    assert np.array_equal(region, fc.baseline_map(np.zeros((SIDE, SIDE)), "region",
                                                  segments=segments, rng=3))
    heat = np.arange(SIDE * SIDE, dtype=float).reshape(SIDE, SIDE)
    pixel = fc.baseline_map(heat, "pixel", rng=0)
    assert sorted(pixel.ravel()) == sorted(heat.ravel()) and not np.array_equal(pixel, heat)
    with pytest.raises(ValueError, match="needs the face's superpixels"):
        fc.baseline_map(heat, "region")
    with pytest.raises(ValueError, match="kind must be 'region' or 'pixel'"):
        fc.baseline_map(heat, "patch")


def test_t_interval_is_the_student_t_interval():
    mean, low, high = fc.t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)          # t(0.975, 2) * sd 1 / sqrt(3)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert fc.t_interval([5.0, np.nan])[0] == 5.0 and math.isnan(fc.t_interval([5.0])[1])
    assert all(math.isnan(v) for v in fc.t_interval([]))


def test_genuine_pairs_spread_over_identities_then_take_second_pairs():
    frame = pd.DataFrame({"path": ["a1", "a2", "a3", "a4", "b1", "b2", "c1"],
                          "identity": ["a", "a", "a", "a", "b", "b", "c"]})
    first = fc.genuine_pairs(frame, 2, seed=0)
    assert sorted(first["identity"]) == ["a", "b"]        # c has one image: no pair
    assert {tuple(r) for r in first[["probe", "partner"]].to_numpy()} == {("a1", "a2"),
                                                                           ("b1", "b2")}
    third = fc.genuine_pairs(frame, 3, seed=0).iloc[2]
    assert (third["probe"], third["partner"]) == ("a3", "a4")
    with pytest.raises(ValueError, match="only 3 disjoint genuine pairs"):
        fc.genuine_pairs(frame, 4)


# --------------------------------------------------------------------------- the registry


def test_the_registry_refuses_gradient_explainers_on_a_black_box():
    for name in ("captum-ig", "captum-saliency", "grad-cam"):
        with pytest.raises(ValueError, match=rf"{name} needs gradients, but .* is a black box"):
            fc.explain_with(name, block_embed, grey_face(), seed=0)
    with pytest.raises(ValueError, match="unknown explainer 'shap'"):
        fc.explain_with("shap", block_embed, grey_face(), seed=0)


def test_forwards_are_counted_for_black_boxes_and_modules():
    # occlusion at budget 10 on a 20-pixel side: stride 5, window 10, 3 x 3 windows,
    # plus captum's unoccluded pass and the reference's embedding
    assert fc.occlusion_window(SIDE, 10) == (10, 5)
    black_box = fc.FaceModel(block_embed, name="block", batch_size=64)
    run = fc.run_explainer("captum-occlusion", black_box, grey_face(), seed=0, budget=10)
    assert run.forwards == 11 and run.heatmap.shape == (SIDE, SIDE)
    assert run.heatmap[BLOCK].mean() > run.heatmap[10:, 10:].mean()
    white_box = fc.FaceModel(module=BlockNet(), cam_layer="conv", name="blocknet")
    saliency = fc.run_explainer("captum-saliency", white_box, grey_face(), seed=0)
    assert saliency.forwards == 2                      # the reference and one gradient pass
    outside = np.ones((SIDE, SIDE), bool)
    outside[BLOCK] = False
    assert np.all(saliency.heatmap[outside] == 0)


def test_gradient_explainers_run_on_a_module_and_ig_stays_in_the_block():
    model = fc.FaceModel(module=BlockNet(), cam_layer="conv", name="blocknet")
    rng = np.random.default_rng(0)
    face = grey_face()
    face[BLOCK] = rng.uniform(0.2, 0.9, size=(10, 10, 3))
    partner = np.clip(face + rng.normal(0, 0.1, face.shape), 0, 1).astype(np.float32)
    outside = np.ones((SIDE, SIDE), bool)
    outside[BLOCK] = False
    ig = fc.explain_with("captum-ig", model, face, partner, seed=0, budget=8)
    assert np.all(ig[outside] == 0) and np.abs(ig[BLOCK]).sum() > 0
    cam = fc.explain_with("grad-cam", model, face, partner, seed=0)
    assert cam.shape == (SIDE, SIDE) and np.isfinite(cam).all()


def test_captum_sampling_explainers_are_seeded_without_touching_the_global_generator():
    model = fc.FaceModel(block_embed, name="block")
    segments = np.repeat(np.arange(4), 100).reshape(SIDE, SIDE)
    before = torch.random.get_rng_state()
    first = fc.run_explainer("captum-kernelshap", model, grey_face(), seed=5, budget=30,
                             segments=segments).heatmap
    again = fc.run_explainer("captum-kernelshap", model, grey_face(), seed=5, budget=30,
                             segments=segments).heatmap
    assert torch.equal(before, torch.random.get_rng_state())
    assert np.array_equal(first, again)


def test_randomise_stages_redraws_the_top_stages_only_and_reproducibly():
    model = fc.FaceModel(module=BlockNet(), cam_layer="conv")
    assert model.stage_labels == ["head", "conv"]             # top-level children, top first
    top = fc.randomise_stages(model, 1, seed=0)
    assert not torch.equal(top.module.head.weight, model.module.head.weight)
    assert torch.equal(top.module.conv.weight, model.module.conv.weight)
    assert torch.equal(model.module.head.weight, torch.eye(300))        # the original stays
    again = fc.randomise_stages(model, 1, seed=0)
    assert torch.equal(top.module.head.weight, again.module.head.weight)
    both = fc.randomise_stages(model, 2, seed=0)
    assert not torch.equal(both.module.conv.weight, model.module.conv.weight)
    with pytest.raises(ValueError, match="n_stages must be at most 2"):
        fc.randomise_stages(model, 3)
    with pytest.raises(ValueError, match="black box"):
        fc.randomise_stages(block_embed, 1)


def test_a_paper_cnn_is_a_white_box_from_input_to_its_gap(tmp_path):
    from faceexp import recognisers
    from faceexp.models import build_model, save_checkpoint

    path = save_checkpoint(tmp_path / "final.pt", build_model("mobilenetv2", 4, weights=None,
                                                              seed=0),
                           arch="mobilenetv2", num_classes=4)
    rec = recognisers.load("mobilenetv2", checkpoint=path)
    model = fc.as_face_model(rec)
    assert model.white_box and model.cam_layer == "net.features.18"
    assert model.stage_labels[0] == "features.18" and len(model.stages) == 5
    faces = np.random.default_rng(0).random((2, 113, 113, 3)).astype(np.float32)
    chw = faces.transpose(0, 3, 1, 2)
    assert model.embed(chw).numpy() == pytest.approx(rec(chw).numpy(), abs=1e-4)
    randomised = fc.randomise_stages(model, 1)
    assert not torch.equal(randomised.embed(chw), model.embed(chw))


# --------------------------------------------------------------------------- the comparison


def test_compare_explainers_on_a_black_box_says_na_for_gradient_explainers():
    faces = np.stack([grey_face(0.5), grey_face(0.6)])
    faces[:, 0:10, 0:10] = 0.9
    partners = np.stack([grey_face(0.4), grey_face(0.7)])
    result = fc.compare_explainers(fc.FaceModel(block_embed, name="block", batch_size=64),
                                   faces, partners,
                                   explainers=["captum-occlusion", "captum-saliency"],
                                   budget=10, steps=(0.0, 0.25, 0.5), data="toy faces")
    table = result.table.set_index("explainer")
    assert table.loc["captum-saliency", "note"] == fc.BLACK_BOX
    occlusion = table.loc["captum-occlusion"]
    assert occlusion["faces"] == 2 and occlusion["forwards"] == 11
    assert occlusion["seed_rank_corr"] == 1.0                  # deterministic
    assert math.isnan(occlusion["randomisation_rank_corr"])     # a black box: not run
    assert occlusion["deletion_gain"] == pytest.approx(
        occlusion["deletion_baseline"] - occlusion["deletion_auc"])
    assert set(result.curves["map"]) == {"explainer", "baseline"}
    assert result.randomisation.empty and result.settings["cascade"] == []
    assert "Data: toy faces. Recognisers: block (?; 2 genuine pairs)" in fc.comparison_caption(result)


def test_compare_explainers_runs_the_cascade_on_a_module():
    faces = np.stack([grey_face(0.5)])
    faces[:, 0:10, 0:10] = 0.9
    result = fc.compare_explainers(fc.FaceModel(module=BlockNet(), cam_layer="conv",
                                                name="blocknet"),
                                   faces, explainers=["captum-saliency", "faceexp-lime-paper"],
                                   reference="self", seeds=(0, 1), budget=20,
                                   steps=(0.0, 0.5), cascade=[1, 8])
    assert sorted(set(result.randomisation["stages"])) == [1, 2]      # 8 capped at 2 stages
    assert set(result.table["randomised"]) == {"2/2"}
    assert set(result.randomisation["stage"]) == {"head", "conv"}
    assert result.table["randomisation_rank_corr"].notna().all()
    with pytest.raises(ValueError, match="reference='pair' needs partners"):
        fc.compare_explainers(block_embed, faces, explainers=["captum-occlusion"])


def test_recommendation_follows_from_the_numbers():
    def row(explainer, deletion_gain, insertion_gain, randomisation, seed_corr):
        return {"recogniser": "toy", "explainer": explainer, "deletion_auc": 0.3,
                "deletion_baseline": 0.3 + deletion_gain, "insertion_auc": 0.5,
                "insertion_baseline": 0.5 - insertion_gain, "deletion_gain": deletion_gain,
                "insertion_gain": insertion_gain, "randomisation_rank_corr": randomisation,
                "seed_rank_corr": seed_corr, "seconds": 2.0, "forwards": 300.0, "faces": 6,
                "white_box": True, "randomised": "8/8", "note": ""}

    table = pd.DataFrame([row("faceexp-lime-paper", -0.02, 0.05, 0.1, 0.3),
                          row("captum-occlusion", 0.20, 0.30, 0.9, 1.0),
                          row("captum-kernelshap", 0.10, 0.10, 0.2, 0.8)])
    text = fc.recommendation(table)
    assert text.startswith("**toy** (6 faces): use **captum-kernelshap**")
    assert "Fails the randomisation check (rank correlation with the trained map at least " \
           "0.5 with its top 8 of 8 stages re-initialised): captum-occlusion" in text
    assert "Unstable across seeds (rank correlation below 0.5): faceexp-lime-paper" in text
    assert "The paper's LIME (p_off=0.6) does not beat its random baseline" in text
    none = fc.recommendation(table.iloc[[0]])
    assert "no explainer beats a random map of its own kind" in none
    constant = table.assign(randomisation_rank_corr=[0.1, 0.9, np.nan])
    text = fc.recommendation(constant)
    assert "Randomisation check undetermined (a constant map, or not run): captum-kernelshap" \
        in text and "use **" not in text
    black_box = fc.recommendation(table.assign(white_box=False,
                                               randomisation_rank_corr=np.nan))
    assert black_box.startswith("**toy** (6 faces): use **captum-occlusion**")
    assert "the randomisation check cannot be run on a black box" in black_box


# --------------------------------------------------------------------------- a real face


def test_two_explainers_on_a_real_orl_face_with_facenet():
    from faceexp import recognisers
    from faceexp import data as data

    rec = recognisers.load("facenet-casia")
    root = data.orl_root()
    faces, partners, _ = fc.align_pairs(rec, pd.DataFrame(
        {"identity": ["s1"], "probe": [str(root / "s1" / "1.pgm")],
         "partner": [str(root / "s1" / "2.pgm")]}))
    result = fc.compare_explainers(rec, faces, partners,
                                   explainers=["faceexp-lime-paper", "grad-cam"], seeds=(0,),
                                   budget=30, steps=(0.0, 0.25, 0.5), cascade=[8],
                                   data="ORL s1")
    table = result.table.set_index("explainer")
    assert table.loc["grad-cam", "forwards"] == 2 and table.loc["faceexp-lime-paper",
                                                                "forwards"] >= 31
    assert table[["deletion_auc", "insertion_auc", "randomisation_rank_corr"]].notna().all().all()
    # the pair was embedded by FaceNet: a genuine ORL pair scores well above 0
    clean = result.curves[(result.curves["mode"] == "deletion")
                          & (result.curves["fraction"] == 0.0)
                          & (result.curves["reference"] == "pair")]["similarity"]
    assert (clean > 0.3).all()
    assert result.heatmaps["grad-cam"].shape == (1, 160, 160)


# --------------------------------------------------------------------------- cost


COST_COLUMNS = ["recogniser", "explainer", "setting", "settings", "budget", "seconds", "forwards",
                "faces", "note"]


def test_cost_table_runs_each_explainer_at_its_usual_settings_and_at_the_budget():
    """Images through the network per explanation, the reference's embedding included: at
    the usual settings faceexp's LIME draws 1000 samples (in 64-image batches, the last one
    not padded: a torch module is not compiled), Integrated Gradients takes 50 steps,
    Occlusion slides occlusion_window(side, None) over the face plus captum's unoccluded
    pass, Saliency and Grad-CAM make one pass; at an equal budget none passes budget + 1."""
    model = fc.FaceModel(module=BlockNet(), cam_layer="conv", name="blocknet", batch_size=64)
    assert not model.compiled and fc.FaceModel(block_embed).compiled
    face = grey_face()
    face[BLOCK] = 0.9
    names = ["faceexp-lime-paper", "captum-occlusion", "captum-ig", "captum-saliency", "grad-cam"]
    table = fc.cost_table(model, face[None], explainers=names, budget=30, n_segments=8,
                          warmup=False)
    assert list(table.columns) == COST_COLUMNS
    assert table[["explainer", "setting"]].to_numpy().tolist() == \
        [[n, s] for n in names for s in fc.COST_SETTINGS]
    window, stride = fc.occlusion_window(SIDE, None)
    patches = (math.ceil((SIDE - window) / stride) + 1) ** 2    # as captum: 19 x 19 of 2 px
    usual = table[table["setting"] == "usual"].set_index("explainer")
    assert usual["forwards"].to_dict() == {
        "faceexp-lime-paper": fc.USUAL_SAMPLES + 1, "captum-occlusion": patches + 2,
        "captum-ig": fc.USUAL_IG_STEPS + 1, "captum-saliency": 2, "grad-cam": 2}
    assert usual["budget"].isna().all() and usual.loc["captum-ig", "settings"] == \
        fc.EXPLAINERS["captum-ig"].usual
    equal = table[table["setting"] == "equal budget"].set_index("explainer")
    assert (equal["forwards"] <= 30 + 1).all() and (equal["budget"] == 30).all()
    assert equal.loc["faceexp-lime-paper", "forwards"] == 31
    assert equal.loc["captum-occlusion", "settings"] == \
        "30 images per explanation; a budget sets the stride: about as many patches as the " \
        "budget, twice the stride wide"
    assert (table["seconds"] > 0).all() and (table["faces"] == 1).all()
    assert (table["note"] == "").all()


def test_comparison_cost_takes_the_comparisons_faces_reference_budget_and_seed(monkeypatch):
    faces = np.stack([grey_face(0.5), grey_face(0.6)])
    faces[:, 0:10, 0:10] = 0.9
    partners = np.stack([grey_face(0.4), grey_face(0.7)])
    black_box = fc.FaceModel(block_embed, name="block", batch_size=64)
    result = fc.compare_explainers(black_box, faces, partners,
                                   explainers=["captum-occlusion", "captum-saliency"],
                                   seeds=(0,), budget=10, steps=(0.0, 0.5))
    assert result.model is black_box
    calls = []
    run = fc.run_explainer

    def recorded(name, *args, **options):
        calls.append((name, options["budget"], options["seed"]))
        return run(name, *args, **options)

    # cost_table calls run_explainer from the cost module
    monkeypatch.setattr(compare_cost, "run_explainer", recorded)
    cost = fc.comparison_cost(result, n_faces=1)
    # no warm-up: the comparison ran the explainer on this network already
    assert calls == [("captum-occlusion", None, 0), ("captum-occlusion", 10, 0)]
    calls.clear()
    fc.cost_table(black_box, faces[:1], explainers=["captum-occlusion", "captum-saliency"],
                  budget=20, seed=3, warmup=True)
    assert calls == [("captum-occlusion", fc.WARMUP_BUDGET, 3), ("captum-occlusion", None, 3),
                     ("captum-occlusion", 20, 3)]
    monkeypatch.undo()
    assert list(cost.columns) == COST_COLUMNS
    occlusion = cost[cost["explainer"] == "captum-occlusion"].set_index("setting")
    # 19 x 19 patches and the unoccluded pass at usual settings, 3 x 3 at budget 10 (as the
    # comparison counted), each with the partner's embedding
    assert occlusion["forwards"].to_dict() == {"usual": 363, "equal budget": 11}
    assert result.table.set_index("explainer").loc["captum-occlusion", "forwards"] == 11
    assert occlusion["faces"].tolist() == [1, 1]
    saliency = cost[cost["explainer"] == "captum-saliency"]
    assert saliency["note"].tolist() == [fc.BLACK_BOX] * 2 and saliency["seconds"].isna().all()
    text = fc.cost_summary(cost)
    assert text.startswith("**block** (1 face, median per explanation): at its usual settings "
                           "captum-occlusion takes ")
    assert text.endswith("s and 363 images through the network. Not run (black box, no "
                         "gradients): captum-saliency.")
    usual = dict(result.settings, budget=None)
    with pytest.raises(ValueError, match="ran at usual settings: pass budget="):
        fc.comparison_cost(fc.Comparison(**{**result.__dict__, "settings": usual}))
    with pytest.raises(ValueError, match=r"references: one per face \(2\), got 1"):
        fc.cost_table(black_box, faces, partners[:1], explainers=["captum-occlusion"], budget=10)


def test_cost_summary_follows_from_the_numbers():
    def row(explainer, setting, seconds, forwards):
        return {"recogniser": "toy", "explainer": explainer, "setting": setting,
                "budget": None if setting == "usual" else 150, "seconds": seconds,
                "forwards": forwards, "faces": 5, "note": ""}

    table = pd.DataFrame([row("faceexp-lime-paper", "usual", 12.04, 1001),
                          row("faceexp-lime-paper", "equal budget", 1.8, 151),
                          row("captum-occlusion", "usual", 4.5, 363),
                          row("captum-occlusion", "equal budget", 2.0, 145),
                          row("grad-cam", "usual", 0.052, 2),
                          row("grad-cam", "equal budget", 0.05, 2)])
    assert fc.cost_summary(table) == (
        "**toy** (5 faces, median per explanation): at their usual settings grad-cam is the "
        "cheapest (0.052 s, 2 images through the network) and faceexp-lime-paper the most "
        "expensive (12 s, 1001 images: 232x the seconds of grad-cam). At an equal budget of 150 "
        "images the most expensive, captum-occlusion (2.0 s, 145 images), takes 40x the seconds "
        "of the cheapest, grad-cam (0.05 s, 2 images).")
    with pytest.raises(ValueError, match="must be cost_table"):
        fc.cost_summary(table.drop(columns="setting"))
