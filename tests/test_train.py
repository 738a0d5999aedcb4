"""Training: the plateau schedule by hand, resume equality, torchrun/DDP on 2 CPU processes."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from faceexp import data as fdata
from faceexp import models as fmodels
from faceexp.models.schedule import PlateauSchedule
from faceexp.models.training import TrainConfig, train


def test_plateau_schedule_steps_down_then_stops():
    s = PlateauSchedule((0.01, 0.005, 0.001), patience=1, min_delta=0.0)
    # improves, improves, flat, flat -> step to 0.005 after 2 bad epochs (patience 1)
    assert s.step(1.0) and s.lr == 0.01
    assert s.step(0.9) and s.lr == 0.01
    assert s.step(0.95) and s.lr == 0.01 and s.bad_epochs == 1
    assert s.step(0.95) and s.lr == 0.005 and s.bad_epochs == 0
    assert s.step(0.8) and s.best == 0.8
    assert s.step(0.9) and s.step(0.9) and s.lr == 0.001
    assert s.step(0.9)            # one bad epoch at the last rate: keep going
    assert not s.step(0.9)        # plateau at the last rate: stop
    restored = PlateauSchedule((0.01, 0.005, 0.001), patience=1, min_delta=0.0)
    restored.load_state_dict(s.state_dict())
    assert restored.state_dict() == s.state_dict()


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="arch"):
        TrainConfig(arch="vgg16")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({"lr": 0.1})


@pytest.fixture(scope="module")
def tiny_faces(tmp_path_factory):
    """6 real ORL identities x 4 images in the one-folder-per-identity layout."""
    root = tmp_path_factory.mktemp("tiny_faces")
    orl = fdata.orl_root()
    for k in range(1, 7):
        (root / f"s{k}").mkdir()
        for i in range(1, 5):
            shutil.copy(orl / f"s{k}" / f"{i}.pgm", root / f"s{k}" / f"{i}.pgm")
    return root


def _tiny_config(root, **kw):
    base = dict(arch="mobilenetv2", data_root=str(root), test_fraction=0.34, batch_size=4,
                learning_rates=(0.01, 0.001), patience=0, max_epochs=2, weights=None,
                val_fraction=0.02, seed=3, channels_last=False)
    base.update(kw)
    return TrainConfig(**base)


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_resumed_run_ends_with_the_same_weights(tiny_faces, tmp_path):
    config = _tiny_config(tiny_faces)
    full = train(config, tmp_path / "full", progress=False)
    assert (tmp_path / "full" / "final.pt").exists()
    assert list(full.metrics["epoch"]) == list(range(1, len(full.metrics) + 1))
    assert set(full.metrics.columns) >= {"train_loss", "train_acc", "val_loss", "val_acc", "lr"}
    # 4 training identities (6 * (1 - 0.34) rounded), 1 validation image each
    assert len(full.classes) == 4 and len(full.test_identities) == 2
    assert not set(full.classes) & set(full.test_identities)

    first = train(config, tmp_path / "resumed", progress=False, stop_after_epoch=1)
    assert len(first.metrics) == 1 and not (tmp_path / "resumed" / "final.pt").exists()
    second = train(config, tmp_path / "resumed", progress=False)
    pd.testing.assert_frame_equal(full.metrics.drop(columns="seconds"),
                                  second.metrics.drop(columns="seconds"))
    a, b = _weights(tmp_path / "full" / "final.pt"), _weights(tmp_path / "resumed" / "final.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key

    model, meta = fmodels.load_checkpoint(tmp_path / "full" / "final.pt", arch="mobilenetv2")
    assert meta["classes"] == full.classes


def test_resume_with_another_config_is_refused(tiny_faces, tmp_path):
    config = _tiny_config(tiny_faces, max_epochs=1)
    train(config, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        train(_tiny_config(tiny_faces, max_epochs=1, seed=4), tmp_path / "run", progress=False)


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tiny_faces, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "faceexp", "train",
           "--arch", "mobilenetv2", "--out", str(tmp_path / "ddp"), "--data-root", str(tiny_faces),
           "--weights", "none", "--batch-size", "4", "--max-epochs", "1", "--test-fraction",
           "0.34", "--device", "cpu", "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = pd.read_csv(tmp_path / "ddp" / "metrics.csv")
    assert len(metrics) == 1
    # validation is sharded over the 2 ranks and summed: accuracy is a multiple of 1/4
    assert (metrics["val_acc"].iloc[0] * 4) % 1 == pytest.approx(0)
    fmodels.load_checkpoint(tmp_path / "ddp" / "final.pt", arch="mobilenetv2", num_classes=4)


def test_initial_weights_records_the_file_read_and_its_hash(tmp_path, monkeypatch):
    from faceexp.models import initial_weights as ftrain

    weights = tmp_path / "resnet50-custom.pth"
    weights.write_bytes(b"abc")
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    record = ftrain.initial_weights(TrainConfig(arch="resnet50", weights=str(weights)))
    assert record == {"source": "file", "path": str(weights.resolve()), "sha256": abc,
                      "requested": str(weights)}
    record = ftrain.initial_weights(TrainConfig(arch="resnet50", init_checkpoint=str(weights)))
    assert record["source"] == "checkpoint" and record["sha256"] == abc
    assert ftrain.initial_weights(TrainConfig(weights=None)) == \
        {"source": "random", "path": None, "sha256": None, "requested": None}
    monkeypatch.setattr("faceexp.models.initial_weights.imagenet_weights_file", lambda arch: None)
    assert ftrain.initial_weights(TrainConfig(arch="resnet50"))["source"] == "random"
    monkeypatch.setattr("faceexp.models.initial_weights.imagenet_weights_file", lambda arch: weights)
    assert ftrain.initial_weights(TrainConfig(arch="resnet50"))["source"] == "imagenet"
    with pytest.raises(FileNotFoundError, match="weights must be an existing file, got"):
        ftrain.initial_weights(TrainConfig(weights=str(tmp_path / "missing.pth")))


def test_a_run_records_its_initial_weights(tiny_faces, tmp_path):
    result = train(_tiny_config(tiny_faces, max_epochs=1), tmp_path / "run", progress=False)
    expected = {"source": "random", "path": None, "sha256": None, "requested": None}
    assert result.init_weights == expected
    _, meta = fmodels.load_checkpoint(tmp_path / "run" / "final.pt", arch="mobilenetv2")
    assert meta["init_weights"] == expected


def test_non_finite_learning_rates_are_refused():
    for rates in ((float("nan"),), (float("inf"),), (0.01, -1.0)):
        with pytest.raises(ValueError, match="learning_rates must be finite positive numbers"):
            TrainConfig(learning_rates=rates)


def test_relative_and_absolute_data_roots_are_one_config(tiny_faces, monkeypatch):
    monkeypatch.chdir(tiny_faces.parent)
    spellings = [tiny_faces.name, tiny_faces.name + "/", str(tiny_faces)]
    dicts = [TrainConfig(data_root=s).to_dict() for s in spellings]
    assert dicts[0] == dicts[1] == dicts[2]


def test_a_diverging_run_stops_keeps_its_last_epoch_and_resumes_with_a_lower_rate(
        tiny_faces, tmp_path):
    out = tmp_path / "run"
    train(_tiny_config(tiny_faces, max_epochs=1), out, progress=False)
    # Epoch 2 with an absurd rate: the loss becomes NaN; epoch 1 stays resumable.
    with pytest.raises(ValueError, match=r"epoch 2, step \d+: the training loss is nan.*"
                                         r"epoch 1 is kept"):
        train(_tiny_config(tiny_faces, max_epochs=2, learning_rates=(1e30,)), out,
              progress=False)
    assert not list(out.glob(".*.tmp"))
    with pytest.warns(UserWarning, match="changed settings"):
        result = train(_tiny_config(tiny_faces, max_epochs=2), out, progress=False)
    assert result.metrics["epoch"].tolist() == [1, 2]
    assert all(torch.isfinite(v).all() for v in
               fmodels.load_checkpoint(out / "final.pt")[0].state_dict().values()
               if v.is_floating_point())


def test_unreadable_files_of_every_split_are_listed_and_never_in_the_split(tiny_faces,
                                                                          tmp_path):
    root = tmp_path / "faces"
    shutil.copytree(tiny_faces, root)
    for identity in ("s1", "s2", "s3", "s4", "s5", "s6"):
        (root / identity / "9.pgm").write_bytes(b"P5\n92 112\n255\n" + b"\x00" * 10)
    out = tmp_path / "run"
    with pytest.warns(fdata.SkippedFileWarning):
        train(_tiny_config(root, max_epochs=1), out, progress=False)
    skipped = pd.read_csv(out / "skipped.csv")["path"].tolist()
    assert sorted(Path(p).parent.name for p in skipped) == ["s1", "s2", "s3", "s4", "s5", "s6"]
    split = pd.read_csv(out / "split.csv")
    assert not split["path"].isin(skipped).any()
    assert set(split["split"]) == {"train", "val", "test"}


def test_weights_that_overflow_stop_the_run_even_when_the_loss_is_finite():
    """At --lr 1e6 the batch-norm running variances overflow to inf while the loss stays
    finite; the check after each epoch catches what the loss check cannot."""
    import torch

    from faceexp.models.training import _non_finite_state

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    assert _non_finite_state(net) is None
    net[1].running_var[1:3] = float("inf")
    assert _non_finite_state(net) == ("1.running_var", 2)
