"""Issue 22 on the command line: outputs that are inputs, corrupt cache entries, sizes checked
against memory, arguments checked before work, and the smaller cases (eer's CSV, checkpoint
errors, a cache that cannot be written). Every refusal is exit code 2, one stderr line
``faceexp <cmd>: error: ...`` and nothing left behind on disk."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_build_script
from PIL import Image

from faceexp.cli import main
from faceexp.data.folders import load_orl

# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def face_png(tmp_path_factory):
    """An ORL face saved as PNG (as a user's photo would be)."""
    folder = tmp_path_factory.mktemp("png")
    target = folder / "face.png"
    Image.open(load_orl()["path"].iloc[0]).convert("RGB").save(target)
    return target


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("FACEEXP_CACHE", str(folder))
    return folder


def _listing(folder) -> dict:
    """Every file under ``folder`` with its size and content hash."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def _one_line_error(capsys, command) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"faceexp {command}: error: ") and "\n" not in err, err
    return err


def _no_work(monkeypatch):
    """Make the first expensive step of every command fail loudly (an AssertionError is an
    internal error, exit code 1), so a refusal with exit code 2 proves it came first."""
    from faceexp import recognisers
    from faceexp.cli import common

    def refuse(*_args, **_kwargs):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(common, "load_network_embedder", refuse)
    monkeypatch.setattr(common, "dataset_images", refuse)
    monkeypatch.setattr(recognisers, "load", refuse)


def _dead_pid() -> int:
    """The id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --------------------------------------------------------------------------- case 3


def test_png_that_is_the_input_image_is_refused_before_any_work(tmp_path, capsys, monkeypatch,
                                                                 face_png):
    image = tmp_path / "face.png"
    shutil.copy(face_png, image)
    (tmp_path / "link.png").symlink_to(image)
    (tmp_path / "sub").mkdir()
    before = _listing(tmp_path)
    _no_work(monkeypatch)
    for png in (image, tmp_path / "link.png", tmp_path / "sub" / ".." / "face.png"):
        assert main(["explain", str(image), "--model", "mobilenetv2", "--samples", "10",
                     "--out", str(tmp_path / "x.npz"), "--png", str(png), "--quiet"]) == 2
        err = _one_line_error(capsys, "explain")
        assert "--png" in err and "is the input IMAGE" in err, err
    assert _listing(tmp_path) == before           # the face is still the face
    # The reference and the other output count too.
    other = tmp_path / "other.png"
    shutil.copy(face_png, other)
    before = _listing(tmp_path)
    assert main(["explain", str(image), "--reference", str(other), "--model", "mobilenetv2",
                 "--out", str(tmp_path / "x.npz"), "--png", str(other), "--quiet"]) == 2
    assert "is the input --reference" in _one_line_error(capsys, "explain")
    assert main(["explain", str(image), "--model", "mobilenetv2", "--out",
                 str(tmp_path / "x.npz"), "--png", str(tmp_path / "x.npz"), "--quiet"]) == 2
    assert "--png" in _one_line_error(capsys, "explain")
    assert _listing(tmp_path) == before


def test_pose_out_that_is_an_input_is_refused(tmp_path, capsys, monkeypatch, make_identity_tree):
    root = make_identity_tree()
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("NAME_ID,X,Y,W,H\nn000001/0001_01,0,0,10,10\n")
    before = _listing(tmp_path)
    _no_work(monkeypatch)
    assert main(["pose", str(root), "--boxes", str(boxes), "--out", str(boxes)]) == 2
    assert "--out" in _one_line_error(capsys, "pose")
    assert main(["pose", str(root), "--boxes", str(boxes), "--out", str(tmp_path / "p.csv"),
                 "--skipped", str(boxes)]) == 2
    assert "--skipped" in _one_line_error(capsys, "pose")
    assert _listing(tmp_path) == before


def test_train_out_that_is_the_data_root_is_refused(tmp_path, capsys, monkeypatch,
                                                   make_identity_tree):
    from faceexp.models import training

    def refuse(*_args, **_kwargs):
        raise AssertionError("trained before the arguments were checked")

    monkeypatch.setattr(training, "train", refuse)
    root = make_identity_tree()
    before = _listing(tmp_path)
    assert main(["train", "--out", str(root), "--data-root", str(root), "--max-epochs", "1"]) == 2
    assert "is the input --data-root" in _one_line_error(capsys, "train")
    assert _listing(tmp_path) == before


# --------------------------------------------------------------------------- case 4


def _summed(seed: int = 0):
    """A tiny graph: a 1x1 convolution (3 -> 2 channels)."""
    torch.manual_seed(seed)
    return torch.nn.Conv2d(3, 2, 1).eval()


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_a_corrupt_onnx_export_is_rebuilt_with_a_warning(tmp_path, engine):
    from faceexp.models.onnx_backend import ExportedForward

    module = _summed()
    x = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = module(x)
    (y,) = ExportedForward(module, {"t": 1}, 1, 1, cache=tmp_path, engine=engine)(x)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)
    (graph,) = (tmp_path / "onnx").glob("*.onnx")
    good = graph.read_bytes()
    # Truncated (a disk full, a copy cut short): detected by the recorded hash, rebuilt.
    graph.write_bytes(good[: len(good) // 2])
    with pytest.warns(UserWarning, match="corrupt.*exported again"):
        (y,) = ExportedForward(module, {"t": 1}, 1, 1, cache=tmp_path, engine=engine)(x)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)
    assert graph.read_bytes() == good
    # The same without a recorded hash (a cache written before hashes were recorded): the
    # parse error is caught and the graph rebuilt.
    for record in (tmp_path / "onnx").glob("*.sha256"):
        record.unlink()
    graph.write_bytes(good[:100])
    with pytest.warns(UserWarning, match="exported again"):
        (y,) = ExportedForward(module, {"t": 1}, 1, 1, cache=tmp_path, engine=engine)(x)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)
    # An intact graph is read without a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (y,) = ExportedForward(module, {"t": 1}, 1, 1, cache=tmp_path, engine=engine)(x)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)


def test_a_killed_export_leaves_no_temporary_file(tmp_path):
    from faceexp.models.onnx_backend import ExportedForward

    folder = tmp_path / "onnx"
    folder.mkdir()
    dead = folder / f".0123456789abcdef01234567.onnx.{_dead_pid()}-0badf00d.tmp"
    dead.write_bytes(b"\0" * 1000)          # what a killed export leaves
    alive = folder / f".0123456789abcdef01234567.onnx.{os.getppid()}-0badf00d.tmp"
    alive.write_bytes(b"\0" * 10)           # a write still running elsewhere: kept
    ExportedForward(_summed(), {"t": 2}, 1, 1, cache=tmp_path)(torch.rand(1, 3, 2, 2))
    assert not dead.exists() and alive.exists()


def test_the_cli_rebuilds_a_truncated_export(tmp_path, capsys, cache, face_png):
    options = ["explain", str(face_png), "--model", "mobilenetv2", "--backend", "onnxruntime",
               "--samples", "20", "--segments", "8", "--quiet"]
    assert main([*options, "--out", str(tmp_path / "a.npz")]) == 0
    (graph,) = (cache / "onnx").glob("*.onnx")
    graph.write_bytes(graph.read_bytes()[:4096])
    capsys.readouterr()
    assert main([*options, "--out", str(tmp_path / "b.npz")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warned) == 1 and "exported again" in warned[0], warned
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    np.testing.assert_allclose(a["heatmaps"], b["heatmaps"], atol=1e-6)


def test_a_corrupt_facenet_weights_cache_is_rebuilt(tmp_path, monkeypatch):
    from faceexp.recognisers import facenet

    graphdef = tmp_path / "graph.pb"
    graphdef.write_bytes(b"a graph")
    state = {"w": torch.arange(1000, dtype=torch.float32)}
    calls = []

    def convert(path):
        calls.append(path)
        return {k: v.clone() for k, v in state.items()}

    monkeypatch.setattr(facenet, "convert_graphdef", convert)
    got, source = facenet.converted_state_dict(graphdef, cache=tmp_path / "c")
    assert len(calls) == 1 and torch.equal(got["w"], state["w"])
    cached = Path(source["cache"])
    # A flipped byte in the tensor data: torch.load may read it without complaint; the hash
    # recorded when the weights were converted catches it.
    data = bytearray(cached.read_bytes())
    at = data.find(np.arange(1000, dtype=np.float32)[500:502].tobytes())
    assert at > 0
    data[at] ^= 0x40
    cached.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="corrupt.*converted again"):
        got, _ = facenet.converted_state_dict(graphdef, cache=tmp_path / "c")
    assert len(calls) == 2 and torch.equal(got["w"], state["w"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        facenet.converted_state_dict(graphdef, cache=tmp_path / "c")
    assert len(calls) == 2


# --------------------------------------------------------------------------- case 9


def test_huge_resamples_are_refused_before_aligning(capsys, monkeypatch):
    from faceexp import recognisers
    from faceexp.verify import verification

    def refuse(*_args, **_kwargs):
        raise AssertionError("aligned before the memory check")

    monkeypatch.setattr(recognisers, "load", refuse)
    monkeypatch.setattr(verification, "verify_frame", refuse)
    assert main(["verify", "--resamples", "1000000000"]) == 2
    err = _one_line_error(capsys, "verify")
    assert "--resamples 1000000000" in err and "GB" in err and "FACEEXP_MAX_MEMORY_GB" in err, err


def test_huge_samples_are_refused_before_any_work(tmp_path, capsys, monkeypatch, face_png):
    before = _listing(tmp_path)
    _no_work(monkeypatch)
    assert main(["explain", str(face_png), "--samples", "1000000000", "--out",
                 str(tmp_path / "x.npz"), "--quiet"]) == 2
    err = _one_line_error(capsys, "explain")
    assert "--samples 1000000000" in err and "FACEEXP_MAX_MEMORY_GB" in err, err
    assert main(["explain-set", "--samples", "1000000000", "--out", str(tmp_path / "set"),
                 "--quiet"]) == 2
    assert "FACEEXP_MAX_MEMORY_GB" in _one_line_error(capsys, "explain-set")
    # The limit is the user's to set: 1 MB refuses what the default allows.
    monkeypatch.setenv("FACEEXP_MAX_MEMORY_GB", "0.001")
    assert main(["explain", str(face_png), "--samples", "1000", "--out",
                 str(tmp_path / "x.npz"), "--quiet"]) == 2
    err = _one_line_error(capsys, "explain")
    assert "limit of 1.0 MB" in err and "FACEEXP_MAX_MEMORY_GB" in err, err
    monkeypatch.setenv("FACEEXP_MAX_MEMORY_GB", "lots")
    assert main(["explain", str(face_png), "--out", str(tmp_path / "x.npz"), "--quiet"]) == 2
    assert "FACEEXP_MAX_MEMORY_GB must be a positive number" in _one_line_error(capsys, "explain")
    assert _listing(tmp_path) == before


def test_the_explainer_checks_n_samples_against_memory(monkeypatch):
    from faceexp.core import limits
    from faceexp.explain.explainer import Explainer

    def embed(batch):
        return batch.flatten(1)[:, :4]

    with pytest.raises(ValueError, match=r"n_samples=1000000000 needs about .* "
                                         r"FACEEXP_MAX_MEMORY_GB"):
        Explainer(embed, n_samples=10 ** 9)
    assert Explainer(embed, n_samples=1000).n_samples == 1000
    # The estimate: 33 bytes per sample and superpixel (the draw's float64 and bool arrays,
    # the fit's float64 design and its copies) 32 bytes per sample and layer and 24 per sample (targets, weights, the fit's copies).
    monkeypatch.setenv(limits.MEMORY_VARIABLE, str(1000 * (33 * 75 + 56) / 1e9))
    Explainer(embed, n_samples=1000)
    with pytest.raises(ValueError, match="n_samples=1001"):
        Explainer(embed, n_samples=1001)


# --------------------------------------------------------------------------- case 10


def test_unsupported_png_format_is_refused_before_computing(tmp_path, capsys, monkeypatch,
                                                           face_png):
    before = _listing(tmp_path)
    _no_work(monkeypatch)
    assert main(["explain", str(face_png), "--model", "mobilenetv2", "--out",
                 str(tmp_path / "x.npz"), "--png", str(tmp_path / "fig.xyz"), "--quiet"]) == 2
    err = _one_line_error(capsys, "explain")
    assert "--png" in err and "'xyz'" in err and "png" in err and "pdf" in err, err
    assert _listing(tmp_path) == before


def test_zero_resamples_are_refused_before_aligning(capsys, monkeypatch):
    _no_work(monkeypatch)
    for value in ("0", "-3"):
        assert main(["verify", "--resamples", value]) == 2
        assert f"--resamples must be an int >= 1, got {value}" in _one_line_error(capsys, "verify")


@pytest.mark.parametrize("param, message", [
    ("n_samples=abc", "--param n_samples must be an int >= 2"),
    ("n_samples=-5", "--param n_samples must be an int >= 2"),
    ("n_samples=2.5", "--param n_samples must be an int >= 2"),
    ("images_per_identity=0", "--param images_per_identity must be an int >= 1 or None"),
    ("device=5", "--param device must be a string"),
    ("models=resnet50", "--param models must be a list"),
    ("seed=-1", "--param seed must be an int >= 0"),
])
def test_book_parameters_are_checked_before_any_notebook_runs(capsys, monkeypatch, param,
                                                              message):
    import book.execute

    build = load_build_script()

    def refuse(*_args, **_kwargs):
        raise AssertionError("a notebook ran before the parameters were checked")

    monkeypatch.setattr(book.execute, "execute_notebook", refuse)
    monkeypatch.setattr(book.execute, "check_kernel", lambda *a, **k: None)
    assert build.main(["--profile", "quick", "--param", param, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("build.py: error: ") and "\n" not in err, err
    assert message in err, err


def test_every_profile_passes_the_parameter_check():
    from book import parameters
    from book.notebooks import notebook_paths

    for profile in parameters.profiles():
        parameters.check_profile_parameters(profile, notebook_paths())
        parameters.check_profile_parameters(profile, notebook_paths(), overrides={
            "n_samples": 100, "max_epochs": 2, "batch_size": None, "data_root": "/data/x",
            "study_seeds": [0, 3], "steps": [0, 0.5]})
    with pytest.raises(ValueError, match="--param max_epochs"):
        parameters.check_profile_parameters("quick", notebook_paths(),
                                            overrides={"max_epochs": {"resnet50": 0}})


# --------------------------------------------------------------------------- case 11


@pytest.mark.parametrize("text, message", [
    ("score,label,score\n0.9,1,0.1\n0.1,0,0.9\n", "columns 1 and 3 are both named 'score'"),
    ("score,label\n0.9,1\n0.1,0,7\n", "line 3 has 3 fields; the header (line 1) has 2"),
    ("score,label\n1_000,1\n0.1,0\n", "line 2: score '1_000' is not a number"),
    ("score,label\n0.9,1\n0.1,0_0\n", "line 3: label '0_0' must be 1"),
])
def test_eer_refuses_ambiguous_csv(tmp_path, capsys, text, message):
    path = tmp_path / "s.csv"
    path.write_text(text)
    assert main(["eer", str(path)]) == 2
    assert message in _one_line_error(capsys, "eer")


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory):
    from faceexp.models import build_model, save_checkpoint
    from faceexp.models.networks import CHECKPOINT_FORMAT

    folder = tmp_path_factory.mktemp("checkpoints")
    small = build_model("mobilenetv2", 5, weights=None)
    torch.save(small.state_dict(), folder / "state_dict.pt")
    save_checkpoint(folder / "good.pt", small, arch="mobilenetv2", num_classes=5)
    data = (folder / "good.pt").read_bytes()
    (folder / "truncated.pt").write_bytes(data[: len(data) // 2])
    (folder / "text.pt").write_text("hello")
    torch.save({"when": __import__("datetime").date(2020, 1, 1)}, folder / "object.pt")
    state = small.state_dict()
    state.pop("features.0.0.weight")
    torch.save({"format": CHECKPOINT_FORMAT, "arch": "mobilenetv2", "num_classes": 5,
                "state_dict": state, "meta": {}}, folder / "missing_key.pt")
    torch.save({"format": CHECKPOINT_FORMAT, "state_dict": {}}, folder / "no_arch.pt")
    return folder


@pytest.mark.parametrize("name, message", [
    ("truncated", "truncated or corrupt"),
    ("text", "not a torch file"),
    ("object", "datetime.date"),
    ("missing_key", "1 missing key(s) ('features.0.0.weight')"),
    ("no_arch", "no 'arch'"),
])
def test_checkpoint_errors_are_one_line(tmp_path, capsys, face_png, bad_checkpoints, name,
                                        message):
    checkpoint = bad_checkpoints / f"{name}.pt"
    assert main(["explain", str(face_png), "--model", "mobilenetv2", "--checkpoint",
                 str(checkpoint), "--out", str(tmp_path / "x.npz"), "--quiet"]) == 2
    err = _one_line_error(capsys, "explain")
    assert message in err and f"{name}.pt" in err, err
    assert not (tmp_path / "x.npz").exists()


def test_multi_line_messages_print_as_one_line(capsys, monkeypatch):
    import faceexp.cli.eer as cli_eer

    def broken(args):
        raise ValueError("first line\n\tsecond line\n\nthird")

    monkeypatch.setattr(cli_eer, "run", broken)
    assert main(["eer", "x.csv"]) == 2
    assert _one_line_error(capsys, "eer").endswith("first line second line third")


def test_an_unwritable_cache_falls_back_to_torch(tmp_path, capsys, monkeypatch, face_png):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("FACEEXP_CACHE", str(blocker / "cache"))   # cannot be created
    out = tmp_path / "x.npz"
    assert main(["explain", str(face_png), "--model", "mobilenetv2", "--samples", "20",
                 "--segments", "8", "--out", str(out), "--quiet"]) == 0
    lines = capsys.readouterr().err.splitlines()
    warned = [line for line in lines if line.startswith("faceexp explain: warning: ")]
    assert len(warned) == 1 and "running on torch" in warned[0] and "FACEEXP_CACHE" in warned[0]
    reference = tmp_path / "torch.npz"
    assert main(["explain", str(face_png), "--model", "mobilenetv2", "--samples", "20",
                 "--segments", "8", "--out", str(reference), "--quiet",
                 "--backend", "torch"]) == 0
    np.testing.assert_allclose(np.load(out)["heatmaps"], np.load(reference)["heatmaps"],
                               atol=1e-6)
