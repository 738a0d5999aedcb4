"""The artifacts cache: keys change with inputs, explanations are stored per image and reused."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from faceexp.study import artifacts as fart
from faceexp.study import cache as fkeys
from faceexp import data as fdata
from faceexp import models as fmodels
from faceexp.models.initial_weights import init_weights_text


def test_make_key_is_stable_and_sensitive():
    assert fkeys.make_key(a=1, b=[1, 2]) == fkeys.make_key(b=[1, 2], a=1)
    assert fkeys.make_key(a=1) != fkeys.make_key(a=2)
    assert fkeys.source_hash("faceexp.data") != fkeys.source_hash("faceexp.data", "faceexp.models")


def test_source_hash_keys_on_dotted_names_and_refuses_stale_ones():
    import hashlib
    import inspect

    from faceexp.study import cache

    # a module: its name and file, worked out by hand
    path = Path(inspect.getfile(cache))
    h = hashlib.sha256(f"faceexp.study.cache:{path.name}".encode() + path.read_bytes())
    assert fkeys.source_hash("faceexp.study.cache") == h.hexdigest()[:16]
    # a package hashes every file below it, so editing any of them changes the key
    assert fkeys.source_hash("faceexp.study") != fkeys.source_hash("faceexp.study.cache")
    # a name that moved (the flat module of old) raises instead of hashing nothing
    with pytest.raises(ModuleNotFoundError):
        fkeys.source_hash("faceexp.train")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "mb2.pt"
    model = fmodels.build_model("mobilenetv2", 3, weights=None, seed=0)
    fmodels.save_checkpoint(path, model, arch="mobilenetv2", num_classes=3)
    return path


def test_explain_images_caches_per_image(checkpoint, tmp_path, monkeypatch):
    frame = fdata.load_orl().head(2)
    options = dict(n_samples=12, n_segments=10, batch_size=12)
    first = fart.explain_images(checkpoint, frame, tmp_path, layers=["gap"], progress=False,
                                **options)
    assert first.heatmaps.shape == (2, 1, 113, 113)
    assert first.images.shape == (2, 113, 113, 3)
    assert first.heatmaps.min() >= 0 and first.heatmaps.max() <= 1
    assert len(list((tmp_path / "explain").glob("*/*.npz"))) == 2

    # A second call reads from disk: building an embedder would be an error now.
    def refuse(*args, **kwargs):
        raise AssertionError("recomputed instead of reading the cache")

    monkeypatch.setattr(fmodels, "load_embedder", refuse)
    again = fart.explain_images(checkpoint, frame, tmp_path, layers=["gap"], progress=False,
                                **options)
    np.testing.assert_array_equal(first.heatmaps, again.heatmaps)
    # Other options are another key: a recomputation (which the patched loader refuses).
    with pytest.raises(AssertionError, match="recomputed"):
        fart.explain_images(checkpoint, frame, tmp_path, layers=["gap"], progress=False,
                            **dict(options, n_samples=13))


def test_explain_images_skips_a_bad_image_and_keeps_the_rest(checkpoint, tmp_path, monkeypatch):
    frame = fdata.load_orl().head(3)
    import faceexp.explain.explainer as fexplain_module

    real = fexplain_module.Explainer.explain
    calls = {"n": 0}

    def flaky(self, image, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ValueError("embed returned NaN for layer 'gap'")
        return real(self, image, **kw)

    monkeypatch.setattr(fexplain_module.Explainer, "explain", flaky)
    with pytest.warns(UserWarning, match="could not explain"):
        result = fart.explain_images(checkpoint, frame, tmp_path, layers=["gap"], progress=False,
                                     n_samples=12, n_segments=10, batch_size=12)
    assert len(result.frame) == 2 and len(result.failed) == 1
    assert result.failed["path"].iloc[0] == frame["path"].iloc[1]


# ------------------------------------------------------- the networks `make book` trained


def _fake_run(folder, name, *, finished=True, mtime=None):
    run = folder / name
    run.mkdir(parents=True)
    if finished:
        (run / "final.pt").write_bytes(b"not read by the finder")
        if mtime is not None:
            os.utime(run / "final.pt", (mtime, mtime))
    return run


def test_trained_checkpoint_returns_the_newest_finished_run_of_the_network(tmp_path):
    train = tmp_path / "artifacts" / "demo" / "train"
    _fake_run(train, "mobilenetv2-aaaa", mtime=1_000_000)
    newest = _fake_run(train, "mobilenetv2-bbbb", mtime=3_000_000)
    _fake_run(train, "mobilenetv2-cccc", mtime=2_000_000)
    _fake_run(train, "mobilenetv2-dddd", finished=False)              # still training
    _fake_run(train, "resnet50-eeee", mtime=4_000_000)                # another network
    _fake_run(tmp_path / "artifacts" / "demo" / "pretrain", "mobilenetv2-ffff", mtime=5_000_000)
    found = fart.trained_checkpoint("mobilenetv2", artifacts=tmp_path / "artifacts")
    assert found == newest / "final.pt" and isinstance(found, Path)
    assert fart.trained_checkpoint("resnet50", artifacts=tmp_path / "artifacts") == \
        train / "resnet50-eeee" / "final.pt"
    # profile=None: `artifacts` is the folder given to trained_network itself
    assert fart.trained_checkpoint("mobilenetv2", None, tmp_path / "artifacts" / "demo") == \
        newest / "final.pt"
    # a run finished later wins; the package exports the finder
    os.utime(train / "mobilenetv2-aaaa" / "final.pt", (6_000_000, 6_000_000))
    import faceexp

    assert faceexp.trained_checkpoint is fart.trained_checkpoint
    assert faceexp.trained_checkpoint("mobilenetv2", artifacts=tmp_path / "artifacts") == \
        train / "mobilenetv2-aaaa" / "final.pt"


def test_trained_checkpoint_says_what_it_looked_at_and_how_to_train(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as missing:
        fart.trained_checkpoint("mobilenetv2")
    message = str(missing.value)
    assert "'artifacts/demo/train'" in message and "the folder does not exist" in message
    assert "`make book`" in message and "faceexp train --arch mobilenetv2 --out RUN" in message

    train = tmp_path / "artifacts" / "demo" / "train"
    _fake_run(train, "mobilenetv2-dddd", finished=False)
    _fake_run(train, "resnet50-eeee")
    _fake_run(tmp_path / "artifacts" / "quick" / "train", "mobilenetv2-gggg")
    with pytest.raises(FileNotFoundError) as unfinished:
        fart.trained_checkpoint("mobilenetv2")
    message = str(unfinished.value)
    assert "no finished training run of mobilenetv2" in message
    assert "mobilenetv2-dddd (unfinished: no final.pt)" in message and "resnet50-eeee" in message
    assert "profiles with a finished mobilenetv2 run under 'artifacts': ['quick']" in message
    # relative artifacts (the README's default, from the working directory): a relative path
    assert fart.trained_checkpoint("mobilenetv2", "quick") == \
        Path("artifacts/quick/train/mobilenetv2-gggg/final.pt")
    with pytest.raises(FileNotFoundError, match=r"`make book PROFILE=full`"):
        fart.trained_checkpoint("mobilenetv2", "full")
    with pytest.raises(ValueError, match=r"arch must be one of \['mobilenetv2', 'resnet50'\], got 'vgg'"):
        fart.trained_checkpoint("vgg")


# ------------------------------------------- the paper's two steps: MS1M-style, then fine-tune


TINY_RECIPE = dict(max_epochs=1, batch_size=4, weights=None, channels_last=False,
                   test_fraction=0.34, learning_rates=(0.01,), device="cpu")


def test_pretrain_root_trains_aligned_crops_first_then_fine_tunes_and_reuses_both(
        make_identity_tree, tmp_path, monkeypatch):
    from faceexp import report as report
    from faceexp import study as fs
    from faceexp.models import training as ftrain
    from faceexp.core.files import file_sha256

    ms1m = make_identity_tree("ms1m", size=(113, 113), seed=1)     # aligned crops, as they are
    faces = make_identity_tree("faces", seed=2)                    # 40x30: resize-crop
    artifacts = tmp_path / "artifacts"
    run = fart.trained_network("mobilenetv2", artifacts, pretrain_root=ms1m, data_root=faces,
                               progress=False, **TINY_RECIPE)
    firsts = sorted((artifacts / "pretrain").glob("mobilenetv2-*/final.pt"))
    assert len(firsts) == 1 and run.out_dir.parent == artifacts / "train"
    first_config = json.loads((firsts[0].parent / "config.json").read_text())
    assert first_config["mode"] == "aligned" and first_config["data_root"] == str(ms1m.resolve())
    assert first_config["init_checkpoint"] is None and first_config["max_epochs"] == 1
    first_split = pd.read_csv(firsts[0].parent / "split.csv")
    assert set(first_split["identity"]) == {"n000001", "n000002", "n000003"}
    config = json.loads((run.out_dir / "config.json").read_text())
    assert config["mode"] == "resize-crop" and config["data_root"] == str(faces.resolve())

    record = run.init_weights
    assert record["source"] == "checkpoint" and record["path"] == str(firsts[0].resolve())
    assert record["sha256"] == file_sha256(firsts[0])
    text = init_weights_text(record)
    assert text == (f"fine-tuned from an MS1M-style pre-training run on ms1m (final.pt, sha256 "
                    f"{record['sha256'][:12]}; that run: random init)")
    study = fs.Study(runs={"mobilenetv2": run}, images=run.split, artifacts=artifacts,
                     dataset="toy faces")
    assert study.training_table().loc["mobilenetv2", "initial weights"] == text
    assert text in report.caption(study)

    # A second call reads both runs: training again would be an error now.
    monkeypatch.setattr(ftrain, "train", lambda *a, **k: pytest.fail("retrained a cached run"))
    again = fart.trained_network("mobilenetv2", artifacts, pretrain_root=ms1m, data_root=faces,
                                 progress=False, **TINY_RECIPE)
    assert again.out_dir == run.out_dir and again.init_weights == record
    # The finder returns the fine-tuned network, never the pre-training run.
    assert fart.trained_checkpoint("mobilenetv2", None, artifacts) == run.final_checkpoint
    # Without pretrain_root it is another run (another key): training it is refused here.
    with pytest.raises(pytest.fail.Exception, match="retrained"):
        fart.trained_network("mobilenetv2", artifacts, data_root=faces, progress=False, **TINY_RECIPE)


def test_pretrain_root_is_checked_before_any_training(tmp_path, make_identity_tree):
    with pytest.raises(FileNotFoundError, match=r"pretrain_root must be a folder of aligned 113x113 "
                                                r"face crops.*got '.*nowhere'"):
        fart.trained_network("mobilenetv2", tmp_path, pretrain_root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="pass pretrain_root or init_checkpoint, not both"):
        fart.trained_network("mobilenetv2", tmp_path, pretrain_root=make_identity_tree(),
                             init_checkpoint=str(tmp_path / "x.pt"))


def test_init_weights_text_reads_the_run_a_checkpoint_came_from(tmp_path):
    from faceexp import report as report
    from faceexp.data.layouts import ORL_NAME

    digest = "cd" * 32
    run = tmp_path / "pretrain" / "resnet50-1234"
    run.mkdir(parents=True)
    (run / "final.pt").write_bytes(b"")
    record = {"source": "checkpoint", "path": str(run / "final.pt"), "sha256": digest}
    assert init_weights_text(record) == "fine-tuned from final.pt (sha256 cdcdcdcdcdcd)"
    (run / "config.json").write_text(json.dumps({"data_root": "/data/ms1m-112", "mode": "aligned"}))
    (run / "init_weights.json").write_text(json.dumps(
        {"source": "imagenet", "path": "/w/resnet50-0676ba61.pth", "sha256": "ef" * 32}))
    assert init_weights_text(record) == (
        "fine-tuned from an MS1M-style pre-training run on ms1m-112 (final.pt, sha256 cdcdcdcdcdcd; "
        "that run: ImageNet init (resnet50-0676ba61.pth, sha256 efefefefefef))")
    (run / "config.json").write_text(json.dumps({"data_root": None, "mode": "resize-crop"}))
    (run / "init_weights.json").unlink()
    assert init_weights_text(record) == (
        f"fine-tuned from a run on {ORL_NAME} (final.pt, sha256 cdcdcdcdcdcd; "
        "that run: initial weights not recorded)")


def test_prepare_study_and_setup_notebook_pass_pretrain_root_on(monkeypatch, tmp_path):
    from faceexp import report as report
    from faceexp import study as fs

    seen = {}

    class Stop(Exception):
        pass

    def trained_network(arch, artifacts, **kw):
        seen["trained_network"] = kw
        raise Stop

    monkeypatch.setattr(fart, "trained_network", trained_network)
    with pytest.raises(Stop):
        fs.prepare_study(["mobilenetv2"], tmp_path, pretrain_root="/data/ms1m", device="cpu")
    assert seen["trained_network"]["pretrain_root"] == "/data/ms1m"

    def prepare_study(*args, **kw):
        seen["prepare_study"] = kw
        raise Stop

    monkeypatch.setattr(fs, "prepare_study", prepare_study)
    with pytest.raises(Stop):
        report.setup_notebook("full", ["mobilenetv2"], tmp_path, pretrain_root="/data/ms1m")
    assert seen["prepare_study"]["pretrain_root"] == "/data/ms1m"
